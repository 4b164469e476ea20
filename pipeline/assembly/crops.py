"""The `crops` rows: the pictures of the fields a person may check, with their digit boxes and rule.

Segmentation takes each field's picture as it cuts it (`pipeline.segmentation.field_pictures`).
After assembly, the fields `--keep-crops` asks for (none, flagged, all) become
`crops` rows: a PNG of a few kB, the digit boxes and the field's rule. Locally
the PNG is in the row; on Dataflow it is an object under `--crops-location`,
named by the field's key so that a re-run replaces it, and its URI is in the row.

Plain functions over rows: nothing here knows Beam or gRPC.
"""

from __future__ import annotations

import hashlib
import json
import re

from pipeline.rows import CropRow, FieldRow
from pipeline.segmentation.field_pictures import clean_paper, encode_png

__all__ = ["KEEP_CROPS", "field_rule", "crop_rows", "object_name", "digit_boxes"]

KEEP_CROPS = ("none", "flagged", "all")


def field_rule(spec) -> str | None:
    """Returns the field's rule (length, pattern, check digit) as JSON, for the reviewer; None without a template."""
    if spec is None:
        return None
    return json.dumps({"min_length": spec.min_length, "max_length": spec.max_length, "pattern": spec.pattern,
                       "check": spec.check, "decimals": spec.decimals})


def digit_boxes(cut) -> list[dict]:
    """Returns the boxes of a field's digits that were read (the `digits` rows' positions), in its review picture."""
    k = cut.review.scale
    return [{"position": d.position, "box": [int(round(v * k)) for v in d.field_box]}
            for d in cut.digits if d.crop is not None and d.field_box is not None]


def object_name(location: str, source_uri: str, page: int, field: str) -> str:
    """Returns where a field's crop lives as an object: one name per key, so a re-run overwrites it."""
    digest = hashlib.sha1(source_uri.encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", field)
    return f"{location.rstrip('/')}/{digest}/p{page:04d}/{safe}.png"


def crop_rows(page, field_rows: list[FieldRow], keep: str, run_id: str, processed_at) -> list[CropRow]:
    """Returns the `crops` rows of one assembled page: its flagged fields' (or all, or none) pictures.

    Args:
        page: the `PageCut` whose fields carry their `review` pictures.
        field_rows: the page's `fields` rows, in the same order as `page.fields`.
        keep: one of KEEP_CROPS.
    """
    if keep == "none":
        return []
    rows = []
    for cut, row in zip(page.fields, field_rows):
        if cut.review is None or (keep == "flagged" and not row.needs_review):
            continue
        image = clean_paper(cut.review.image)
        rows.append(CropRow(
            source_uri=page.source_uri, page=page.page, field=cut.field, template=cut.template or None,
            image=encode_png(image), image_uri=None, width=int(image.shape[1]), height=int(image.shape[0]),
            digit_boxes=json.dumps(digit_boxes(cut)), field_rule=field_rule(cut.spec), run_id=run_id,
            processed_at=processed_at))
    return rows
