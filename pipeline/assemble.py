"""Assemble stage: a field's digit predictions become one `fields` row and its `digits` rows.

Field confidence is the lowest digit probability. A field needs review when a
digit is below the review threshold, when a digit could not be read, when a
struck-through digit was left out, or when the digit string breaks its
template's length, pattern or check-digit rule.
"""

from __future__ import annotations

import dataclasses
import datetime

import numpy as np

from pipeline.templates import Field, check_value

__all__ = ["FieldInfo", "ReadDigit", "assemble_field", "DEFAULT_REVIEW_THRESHOLD"]

DEFAULT_REVIEW_THRESHOLD = 0.9


@dataclasses.dataclass
class FieldInfo:
    """What segmentation knows about a field before any digit is read."""

    key: tuple                         # (source_uri, page, field)
    template: str
    spec: Field | None
    bbox: tuple[int, int, int, int]
    digits_cut: int                    # digit crops segmentation sent on
    struck: int = 0                    # struck-through digits segmentation left out


@dataclasses.dataclass
class ReadDigit:
    position: int
    bbox: tuple[int, int, int, int]
    probabilities: np.ndarray          # [10]
    model_name: str
    model_version: int


def assemble_field(info: FieldInfo, digits: list[ReadDigit], *, review_threshold: float, run_id: str,
                   processed_at: datetime.datetime) -> tuple[dict, list[dict]]:
    """Builds the `fields` row and the `digits` rows for one field."""
    source_uri, page, field = info.key
    digits = sorted(digits, key=lambda d: d.position)
    digit_rows, value, reasons = [], [], []
    for d in digits:
        order = np.argsort(d.probabilities)[::-1]
        best, second = int(order[0]), int(order[1])
        digit_rows.append({
            "source_uri": source_uri, "page": page, "field": field, "position": d.position,
            "digit": best, "confidence": float(d.probabilities[best]),
            "second_digit": second, "second_confidence": float(d.probabilities[second]),
            "bbox_x": d.bbox[0], "bbox_y": d.bbox[1], "bbox_w": d.bbox[2], "bbox_h": d.bbox[3],
            "model_name": d.model_name, "model_version": d.model_version,
        })
        value.append(str(best))
    text = "".join(value)
    confidence = min((r["confidence"] for r in digit_rows), default=None)
    if info.struck:
        # A correction on the form, and the detector's call: worth a person's look.
        reasons.append(f"{info.struck} struck-through digit(s) left out")
    if len(digits) < info.digits_cut:
        reasons.append(f"{info.digits_cut - len(digits)} digit(s) unreadable")
    low = [r for r in digit_rows if r["confidence"] < review_threshold]
    if low:
        worst = min(low, key=lambda r: r["confidence"])
        reasons.append(f"low confidence {worst['confidence']:.2f} at position {worst['position']}")
    if info.spec is not None:
        reasons.extend(check_value(info.spec, text))
    model_name = digit_rows[0]["model_name"] if digit_rows else None
    model_version = digit_rows[0]["model_version"] if digit_rows else None
    field_row = {
        "source_uri": source_uri, "page": page, "template": info.template or None, "field": field,
        "value": text, "confidence": confidence, "digit_count": len(digit_rows),
        "needs_review": bool(reasons), "review_reason": "; ".join(reasons) or None,
        "bbox_x": info.bbox[0], "bbox_y": info.bbox[1], "bbox_w": info.bbox[2], "bbox_h": info.bbox[3],
        "model_name": model_name, "model_version": model_version,
        "run_id": run_id, "processed_at": processed_at,
    }
    return field_row, digit_rows
