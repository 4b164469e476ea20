"""No template: lines of handwriting on a page become fields `line01`, `line02`, ...

Long printed rules and frames are taken out, the remaining ink is grouped into
rows, and each row is split into digits like a free field.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.ink import ink_strength
from pipeline.segmentation.blobs import Blob, components
from pipeline.segmentation.field_pictures import LINE_HEIGHT_PX, field_picture
from pipeline.segmentation.guides import ink_mask
from pipeline.segmentation.segment import digit_image, leave_out_struck, normalise_cuts
from pipeline.segmentation.split import digit_region, join_bows, merge_pieces
from pipeline.segmentation.touching import cut_alternatives, split_blobs
from pipeline.types import AlternativeCut, DigitCut, FieldCut, FieldPicture

__all__ = ["find_lines"]


def find_lines(page: np.ndarray, review: bool = True) -> list[FieldCut]:
    """Finds lines of handwriting on a page without a template; each line becomes a field.

    Args:
        page: the grey page.
        review: keep each line's picture for a person (`FieldCut.review`).
    """
    ink = ink_strength(page)
    binary = ink_mask(ink)
    H, W = page.shape
    # Long printed rules and frames are not writing.
    for kernel in ((max(40, W // 8), 1), (1, max(40, H // 8))):
        lines = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel))
        binary = cv2.bitwise_and(binary, cv2.bitwise_not(cv2.dilate(lines, np.ones((3, 3), np.uint8))))
    labels, comps = components(binary, min_height=max(8.0, H / 250))
    # Solid blocks (a form's corner marks, a filled box) are not writing: a stroke fills little of its box.
    comps = [c for c in comps if c.h < H / 8 and c.w < W / 4 and 0.03 * c.w * c.h < c.area < 0.8 * c.w * c.h]
    out = []
    for row in _written_rows(_rows(comps)):
        heights = np.median([c.h for c in row])
        row = [c for c in row if c.h > 0.4 * heights]
        groups = sorted(split_blobs(join_bows(merge_pieces(row), labels), labels), key=lambda g: g.x)

        def digit_cut(pos, group):
            bbox, mask = digit_region(group, labels, binary)
            return DigitCut(pos, digit_image(ink, bbox, mask), bbox)

        digits = normalise_cuts([digit_cut(pos, g) for pos, g in enumerate(groups)])
        alternatives = [AlternativeCut(first, count, normalise_cuts([digit_cut(first + k, b)
                                                                     for k, b in enumerate(blobs)]))
                        for first, count, blobs in cut_alternatives(groups)]
        x0, y0 = min(c.x for c in row), min(c.y for c in row)
        x1, y1 = max(c.x + c.w for c in row), max(c.y + c.h for c in row)
        box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
        picture = _line_picture(page, box, digits + [d for a in alternatives for d in a.digits]) if review else None
        out.append(FieldCut("", f"line{len(out) + 1:02d}", None, box, digits, review=picture,
                            alternatives=alternatives))
    leave_out_struck(out, [(1, len(c.digits)) for c in out])
    return out


def _line_picture(page: np.ndarray, box, digits: list[DigitCut]) -> FieldPicture:
    """A line of writing with a margin of half its height, shrunk to about LINE_HEIGHT_PX tall.

    Sets each digit's `field_box` (its page box, in the picture's source region).
    """
    x, y, w, h = box
    m = h // 2
    x0, y0 = max(0, x - m), max(0, y - m)
    for d in digits:
        bx, by, bw, bh = d.bbox
        d.field_box = (bx - x0, by - y0, bw, bh)
    return field_picture(page[y0:y + h + m, x0:x + w + m], LINE_HEIGHT_PX / max(h, 1))


def _written_rows(rows: list[list[Blob]]) -> list[list[Blob]]:
    """The rows of handwriting: a printed title or reference number beside them is far smaller than the writing.

    A row whose pieces are under 40% of the tallest rows' height is print; a page of one row keeps it.
    """
    if len(rows) < 2:
        return rows
    heights = [float(np.median([c.h for c in row])) for row in rows]
    writing = float(np.percentile(heights, 75))
    return [row for row, h in zip(rows, heights) if h >= 0.4 * writing]


def _rows(comps: list[Blob]) -> list[list[Blob]]:
    """Components grouped into rows of writing, top to bottom; a row needs two pieces at least."""
    rows: list[list[Blob]] = []
    for c in sorted(comps, key=lambda c: c.cy):
        if rows:
            last = rows[-1]
            top = min(r.y for r in last)
            bottom = max(r.y + r.h for r in last)
            if min(bottom, c.y + c.h) - max(top, c.y) > 0.4 * c.h:
                last.append(c)
                continue
        rows.append([c])
    return [r for r in rows if len(r) >= 2]
