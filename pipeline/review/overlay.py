"""A page as scanned, each field the run read boxed and labelled, beside the `fields` rows it became.

The picture a newcomer sees first (`make demo`, the README): one scan and its table, side by side.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from pipeline.output.store import locked_reader

__all__ = ["FieldReading", "page_readings", "draw_readings"]

SURE, FLAGGED = (40, 150, 40), (0, 130, 240)   # BGR: green, orange
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclasses.dataclass(frozen=True)
class FieldReading:
    """One `fields` row, as much of it as the picture shows."""

    field: str
    value: str
    confidence: float | None
    needs_review: bool
    box: tuple[int, int, int, int]  # x, y, w, h in the scanned page's pixels


def page_readings(db_dir: str, source_uri: str, page: int) -> list[FieldReading]:
    """Reads one page's `fields` rows from a results directory, top to bottom."""
    with locked_reader(db_dir) as con:
        rows = con.execute("SELECT field, value, confidence, needs_review, bbox_x, bbox_y, bbox_w, bbox_h "
                           "FROM fields WHERE source_uri = ? AND page = ? ORDER BY bbox_y, bbox_x",
                           [source_uri, int(page)]).fetchall()
    return [FieldReading(f, v or "", c, bool(r), (int(x), int(y), int(w), int(h)))
            for f, v, c, r, x, y, w, h in rows]


def _boxed_page(image: np.ndarray, readings: list[FieldReading], height: int) -> np.ndarray:
    """The page in colour, scaled to `height`, each field boxed and numbered in its colour."""
    scale = height / image.shape[0]
    page = cv2.resize(image, (round(image.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    if page.ndim == 2:
        page = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    for i, r in enumerate(readings, 1):
        x, y, w, h = (round(v * scale) for v in r.box)
        colour = FLAGGED if r.needs_review else SURE
        cv2.rectangle(page, (x, y), (x + w, y + h), colour, 2)
        cv2.putText(page, str(i), (x, max(12, y - 4)), FONT, 0.45, (255, 255, 255), 3, cv2.LINE_AA)
        cv2.putText(page, str(i), (x, max(12, y - 4)), FONT, 0.45, colour, 1, cv2.LINE_AA)
    return page


def _table(readings: list[FieldReading], height: int, width: int = 500) -> np.ndarray:
    """The rows as a table drawn on white: number, field, value, confidence."""
    panel = np.full((height, width, 3), 255, np.uint8)
    columns = (10, 48, 240, 380)
    line = min(22, max(12, (height - 40) // max(1, len(readings) + 1)))
    size = line / 32
    for x, text in zip(columns, ("#", "field", "value", "confidence")):
        cv2.putText(panel, text, (x, line), FONT, size, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.line(panel, (5, line + 6), (width - 5, line + 6), (0, 0, 0), 1)
    for i, r in enumerate(readings, 1):
        y = line * (i + 1) + 6
        colour = FLAGGED if r.needs_review else (0, 0, 0)
        confidence = "" if r.confidence is None else f"{r.confidence:.3f}"
        for x, text in zip(columns, (str(i), r.field[:18], r.value[:14] or "-", confidence)):
            cv2.putText(panel, text, (x, y), FONT, size, colour, 1, cv2.LINE_AA)
    return panel


def draw_readings(image: np.ndarray, readings: list[FieldReading], height: int = 900) -> np.ndarray:
    """Returns the scanned page with its fields boxed (green sure, orange flagged) beside the table they became."""
    return np.hstack([_boxed_page(image, readings, height), _table(readings, height)])
