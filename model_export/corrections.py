"""Digits people reviewed (`formdigits review`) as training data: `formdigits train --corrections DIR`.

A reviewed field whose kept crop (`crops`) has as many digit boxes as its
final value has digits gives one labelled digit per box: corrected fields
(the model was wrong) and accepted ones (it was right, but unsure). Fields
marked unreadable, without a crop, or whose digit count does not match are
counted and left out: a box and a label that might not belong together would
teach the model the wrong thing. Each digit is cut from the crop the person
looked at and MNIST-normalised like the pipeline's own crops.
"""

from __future__ import annotations

import dataclasses
import json

import cv2
import duckdb
import numpy as np

from pipeline.output.store import snapshot
from pipeline.segmentation.normalize import EmptyCropError, mnist_normalize

__all__ = ["ReviewedDigits", "reviewed_digits", "REPEATS", "LICENCE"]

# Reviewed digits are few beside the rest of the mix and come from the forms that matter: each is seen this
# many times an epoch (every copy warped afresh by the augmentation).
REPEATS = 5
LICENCE = "your own forms, reviewed by people in formdigits review"

# Each reviewed field's latest answer, as the view that gives final values has it (pipeline.schema).
_REVIEWED = """
SELECT r.review_status, r.value, c.image, c.digit_boxes
FROM fields_reviewed r LEFT JOIN crops c USING (source_uri, page, field)
WHERE r.review_status IN ('accept', 'correct', 'unreadable')
"""


@dataclasses.dataclass
class ReviewedDigits:
    x: np.ndarray                 # uint8 [N, 28, 28], 0 = paper, 255 = ink
    y: np.ndarray                 # [N]
    stats: dict                   # for the model card: fields used and left out, and why


def _cut(image: np.ndarray, box) -> np.ndarray:
    """One digit from a field picture (dark on white), as ink on black, with a pixel of margin."""
    x, y, w, h = box
    region = image[max(0, y - 1):y + h + 1, max(0, x - 1):x + w + 1]
    ink = 255 - region
    return np.where(ink < 48, 0, ink).astype(np.uint8)  # paper grain, not ink


def reviewed_digits(db_dir: str) -> ReviewedDigits:
    """Every usable reviewed digit of results directory `db_dir`."""
    with snapshot(db_dir) as copy:
        if copy is None:
            raise FileNotFoundError(f"no results database in {db_dir}")
        con = duckdb.connect(copy, read_only=True)
        try:
            rows = con.execute(_REVIEWED).fetchall()
        except duckdb.CatalogException:
            rows = []  # a results database nobody has reviewed yet
        finally:
            con.close()
    xs, ys = [], []
    stats = {"db": db_dir, "reviewed_fields": len(rows), "corrected_fields": 0, "accepted_fields": 0,
             "left_out": {"unreadable": 0, "no digits": 0, "no crop": 0, "digit count differs": 0, "empty digit": 0}, "digits": 0}
    for action, value, png, boxes in rows:
        reason = _unusable(action, value, png, boxes)
        if reason:
            stats["left_out"][reason] += 1
            continue
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        digits = []
        for b, label in zip(sorted(json.loads(boxes), key=lambda b: b["position"]), value):
            try:
                digits.append((mnist_normalize(_cut(image, b["box"])), int(label)))
            except EmptyCropError:
                break
        if len(digits) != len(value):
            stats["left_out"]["empty digit"] += 1
            continue
        stats["corrected_fields" if action == "correct" else "accepted_fields"] += 1
        xs += [d for d, _ in digits]
        ys += [label for _, label in digits]
    stats["digits"] = len(ys)
    x = np.stack(xs) if xs else np.zeros((0, 28, 28), np.uint8)
    return ReviewedDigits(x, np.asarray(ys, np.uint8), stats)


def _unusable(action: str, value: str | None, png, boxes) -> str | None:
    if action == "unreadable":
        return "unreadable"
    if not value:
        return "no digits"
    if png is None:
        return "no crop"
    if len(json.loads(boxes)) != len(value):
        return "digit count differs"
    return None
