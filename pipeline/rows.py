"""The rows of the results tables, one type a table: what the stages build and the writers take.

Each type's fields are its table's columns in `pipeline/schema.py`, in the same order
(tests/test_rows.py fails when they drift), so a misspelt column is an error where the
row is built, not a NULL in the table. Rows are built in one place each: `FieldRow` and
`DigitRow` in `pipeline.assembly.assemble`, `CropRow` in `pipeline.assembly.crops`,
`RejectRow` by `reject` here.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

__all__ = ["FieldRow", "DigitRow", "RejectRow", "CropRow", "ROW_TYPES", "Row", "reject", "utc_now", "as_dict",
           "clean_message"]


@dataclasses.dataclass(frozen=True)
class FieldRow:
    source_uri: str
    page: int
    template: str | None
    field: str
    value: str | None
    confidence: float | None
    digit_count: int
    needs_review: bool
    review_reason: str | None
    bbox_x: int | None
    bbox_y: int | None
    bbox_w: int | None
    bbox_h: int | None
    model_name: str | None
    model_version: int | None
    run_id: str
    processed_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class DigitRow:
    source_uri: str
    page: int
    field: str
    position: int
    digit: int
    confidence: float
    second_digit: int | None
    second_confidence: float | None
    bbox_x: int | None
    bbox_y: int | None
    bbox_w: int | None
    bbox_h: int | None
    model_name: str | None
    model_version: int | None


@dataclasses.dataclass(frozen=True)
class RejectRow:
    source_uri: str
    page: int | None               # None when the file never opened
    stage: str                     # read | segment | infer | run
    error_type: str
    message: str
    processed_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class CropRow:
    source_uri: str
    page: int
    field: str
    template: str | None
    image: bytes | None            # PNG, grey; locally
    image_uri: str | None          # the PNG as an object (Dataflow)
    width: int
    height: int
    digit_boxes: str               # JSON [{"position": p, "box": [x, y, w, h]}] in the image
    field_rule: str | None         # JSON {min_length, max_length, pattern, check, decimals}
    run_id: str
    processed_at: datetime.datetime


Row = FieldRow | DigitRow | RejectRow | CropRow
ROW_TYPES: dict[str, type] = {"fields": FieldRow, "digits": DigitRow, "rejects": RejectRow, "crops": CropRow}


def utc_now() -> datetime.datetime:
    """Returns the time now in UTC, without a zone: the tables' TIMESTAMP columns are UTC by convention."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def clean_message(text) -> str:
    """Returns an error message without what changes from run to run (object addresses), so a re-run finds it again."""
    return re.sub(r"\s+at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}", "", str(text))[:2000]


def reject(source_uri: str, page: int | None, stage: str, exc: BaseException | str,
           error_type: str | None = None) -> RejectRow:
    """Builds the `rejects` row for a file or page that could not be read: the one place such rows are made."""
    return RejectRow(source_uri, page, stage, error_type or type(exc).__name__, clean_message(exc), utc_now())


def as_dict(row: Row) -> dict:
    """Returns the row as {column: value}, in the table's column order."""
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
