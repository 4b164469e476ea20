"""Result rows as the pipeline's stages make them, for the write and store tests."""

import datetime

import numpy as np

from pipeline.assemble import FieldInfo, ReadDigit, assemble_field

WHEN = datetime.datetime(2026, 1, 1, 12, 30)


def field_rows(value: str, run_id: str = "r1", source: str = "file:///s.png", page: int = 1, field: str = "amount"):
    """(field row, digit rows) of a field read as `value`, every digit sure."""
    info = FieldInfo((source, page, field), "invoice", None, (1, 2, 3, 4), len(value))
    probabilities = np.eye(10, dtype=np.float32)[[int(c) for c in value]] * 0.98 + 0.002
    digits = [ReadDigit(i, (i, 0, 5, 5), p, "lenet5", 3) for i, p in enumerate(probabilities)]
    return assemble_field(info, digits, review_threshold=0.9, run_id=run_id, processed_at=WHEN)


def reject_row(source: str, page, stage: str = "read", message: str = "empty file") -> dict:
    return {"source_uri": source, "page": page, "stage": stage, "error_type": "ReadError", "message": message,
            "processed_at": WHEN}
