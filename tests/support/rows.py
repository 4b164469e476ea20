"""Result rows as the pipeline's stages make them, for the write and store tests."""

import datetime

import numpy as np

from pipeline.assembly.assemble import FieldInfo, ReadDigit, assemble_field
from pipeline.assembly.crops import crop_rows
from pipeline.rows import CropRow, RejectRow
from pipeline.segmentation.field_pictures import field_picture
from pipeline.templates.model import Field
from pipeline.types import DigitCut, FieldCut, PageCut

WHEN = datetime.datetime(2026, 1, 1, 12, 30)


def field_rows(value: str, run_id: str = "r1", source: str = "file:///s.png", page: int = 1, field: str = "amount",
               sure: bool = True):
    """(field row, digit rows) of a field read as `value`, every digit sure (0.982) or, `sure=False`, unsure (0.64)."""
    info = FieldInfo((source, page, field), "invoice", None, (1, 2, 3, 4), len(value))
    rest = 0.002 if sure else 0.04
    probabilities = np.eye(10, dtype=np.float32)[[int(c) for c in value]] * (1 - 10 * rest) + rest
    digits = [ReadDigit(i, (i, 0, 5, 5), p, "lenet5", 3) for i, p in enumerate(probabilities)]
    return assemble_field(info, digits, review_threshold=0.9, run_id=run_id, processed_at=WHEN)


def reject_row(source: str, page, stage: str = "read", message: str = "empty file") -> RejectRow:
    return RejectRow(source, page, stage, "ReadError", message, WHEN)


def crop_row(source: str = "file:///s.png", page: int = 1, field: str = "amount") -> CropRow:
    """The `crops` row of a flagged field: a grey picture with two dark digits, through pipeline.assembly.crops."""
    grey = np.full((60, 120), 230, np.uint8)
    grey[10:50, 10:20] = 20
    grey[10:50, 40:60] = 20
    digits = [DigitCut(i, np.zeros((4, 4), np.uint8), (0, 0, 1, 1), np.zeros((28, 28), np.uint8), box)
              for i, box in enumerate([(8, 8, 14, 44), (38, 8, 24, 44)])]
    spec = Field(field, "boxed", (0, 0, 60, 30), 2, 6, pattern=r"\d{2,6}")
    cut = FieldCut("invoice", field, spec, (1, 2, 3, 4), digits, review=field_picture(grey, 0.5))
    flagged, _ = field_rows("47", source=source, page=page, field=field, sure=False)
    return crop_rows(PageCut(source, page, [cut]), [flagged], "flagged", "r1", WHEN)[0]
