"""Split stage: a cleaned field's ink becomes digit regions.

Connected components (`pipeline.segmentation.blobs`) are grouped into digits: broken strokes and the detached
pieces of one digit are joined, touching digits are cut where the ink is thinnest (`pipeline.segmentation.touching`),
and a template's length range decides the close calls. Comb fields are split by cell, and a blob
written over a tick into an empty cell is cut there.
"""

from __future__ import annotations

import numpy as np

from pipeline.segmentation.blobs import Blob, components, near, one_column, union, x_overlap
from pipeline.segmentation.touching import cut_alternatives, pieces, split_blobs, split_to
from pipeline.templates.model import Field

__all__ = ["merge_pieces", "join_bows", "split_digits", "split_digits_and_alternatives", "digit_region"]


def merge_pieces(comps: list[Blob]) -> list[Blob]:
    """Joins pieces of one digit: a broken stroke, the detached flag of a 5 or a 1."""
    comps = sorted(comps, key=lambda c: c.x)
    merged: list[Blob] = []
    for c in comps:
        if merged:
            p = merged[-1]
            rows = min(p.y + p.h, c.y + c.h) - max(p.y, c.y)
            # Or a few columns and no rows: one above the other, as a 5's bar written apart above its body.
            if one_column(p, c) or (x_overlap(p, c) > 0.15 * min(p.w, c.w) and rows <= 0.1 * min(p.h, c.h)):
                merged[-1] = union(p, c)
                continue
        merged.append(c)
    if len(merged) < 2:
        return merged
    # A fragment much shorter than its neighbours belongs to the nearest one, if it is close. So
    # does a shortish piece that stops well above the line the digits stand on, if it all but
    # touches a neighbour: the open top of a 4 written in two strokes, beside its stem.
    digit_h = float(np.median([c.h for c in merged]))
    baseline = float(np.median([c.y + c.h for c in merged]))
    changed = True
    while changed and len(merged) > 1:
        changed = False
        for i, c in enumerate(merged):
            high = c.h < 0.8 * digit_h and c.y + c.h < baseline - 0.2 * digit_h
            if c.h >= 0.55 * digit_h and not high:
                continue
            gaps = []
            for j in (i - 1, i + 1):
                if 0 <= j < len(merged):
                    o = merged[j]
                    overlap = x_overlap(o, c)
                    gaps.append((max(-overlap, 0), -overlap, j))  # the closest; of two overlapping, the most
            gap, _, j = min(gaps)
            if gap <= (0.25 if c.h < 0.55 * digit_h else 0.1) * digit_h:
                merged[min(i, j)] = union(merged[min(i, j)], merged[max(i, j)])
                del merged[max(i, j)]
                changed = True
                break
    return merged


def _bow(comp: Blob, labels: np.ndarray) -> float:
    """How the piece bulges sideways: > 0 bulges left like "(", < 0 right like ")", ~0 straight like "1".

    Compares the ink's x position in the middle third of its height with the top and bottom
    thirds, relative to its height.
    """
    x, y, w, h = comp.x, comp.y, comp.w, comp.h
    mask = np.isin(labels[y:y + h, x:x + w], comp.ids)
    rows = np.nonzero(mask.any(axis=1))[0]
    if rows.size < 6:
        return 0.0
    centres = np.array([np.nonzero(mask[r])[0].mean() for r in rows])
    third = max(1, rows.size // 3)
    ends = (centres[:third].mean() + centres[-third:].mean()) / 2
    return float((ends - centres[third:-third].mean()) / h)


def join_bows(groups: list[Blob], labels: np.ndarray) -> list[Blob]:
    """Re-joins a digit broken into two facing arcs: a 0 as "(" + ")", a thin-stroked 2 or 3.

    Only narrow, curved pieces whose bows face each other, close together, whose union is no
    wider than one digit; straight pieces (two 1s side by side) are never joined.
    """
    if len(groups) < 2:
        return groups
    digit_h = float(np.median([g.h for g in groups]))
    out = [groups[0]]
    for g in groups[1:]:
        p = out[-1]
        gap = g.x - (p.x + p.w)
        union_w = g.x + g.w - p.x
        if (p.w < 0.5 * digit_h and g.w < 0.5 * digit_h and gap < 0.25 * digit_h
                and union_w < 1.15 * max(p.h, g.h) and _bow(p, labels) > 0.06 and _bow(g, labels) < -0.06):
            out[-1] = union(p, g)
        else:
            out.append(g)
    return out


def _cut_at_ticks(cells: dict[int, Blob], left: float, cell: float, count: int, labels: np.ndarray) -> list[Blob]:
    """Comb fields, `cells` the ink of each written cell: a blob over a tick into an empty cell is two digits.

    Two digits touching across a comb's tick (a 2's tail into the 5 beside it) leave one blob over two
    cells and a cell with nothing of its own: it is cut at the thinnest column near the tick (and
    `cut_alternatives` still offers it whole).
    """
    taken = set(cells)
    out = []
    for home, g in sorted(cells.items()):
        spare = [(left + k * cell, k - 1 if k == home else k) for k in (home, home + 1)]  # its ticks, the cell beyond
        spare = [(tick, other) for tick, other in spare if 0 <= other < count and other not in taken
                 and g.x + 0.35 * cell <= tick <= g.x + g.w - 0.35 * cell]
        if g.w < 1.25 * cell or not spare:
            out.append(g)
            continue
        tick, other = spare[0]
        mask = np.isin(labels[g.y:g.y + g.h, g.x:g.x + g.w], g.ids)
        lo, hi = int(tick - g.x - 0.2 * cell), int(tick - g.x + 0.2 * cell)
        parts = pieces(g, mask, [0, lo + int(np.argmin(mask[:, lo:hi].sum(axis=0))), g.w])
        if len(parts) == 2 and min(p.h for p in parts) >= 0.5 * g.h:
            out.extend(parts)
            taken.add(other)
        else:
            out.append(g)
    return out


def _drop_beyond(comps: list[Blob], right: float, h: float) -> list[Blob]:
    """Leaves out what starts past the field's right edge, apart from writing that runs on.

    Printed matter beside a field (a reference number, a stamp's edge) is smaller
    than the handwriting and stands off by a clear gap; writing that overruns the
    field goes on from its last digit at the writer's own size and spacing.
    """
    inside = [c for c in comps if c.x <= right]
    size = float(np.median([c.h for c in inside])) if inside else 0.0
    ink = float(np.median([c.area for c in inside])) if inside else 0.0
    # A digit past the edge may be in pieces (a 9's loop and its tail): pieces one above the other are judged
    # together, by the height and the ink of the digit they make (marks strung one above another: too little ink).
    columns: list[tuple[Blob, list[Blob]]] = []
    for c in sorted(comps, key=lambda c: c.x):
        if columns and one_column(columns[-1][0], c):
            columns[-1] = (union(columns[-1][0], c), columns[-1][1] + [c])
        else:
            columns.append((c, [c]))
    kept, end = [], None
    for c, parts in columns:
        if c.x > right and (end is None or c.x - end > 0.8 * h or not 0.6 * size <= c.h <= 1.5 * size
                            or sum(p.area for p in parts) < 0.3 * ink):
            break
        kept.extend(parts)
        end = max(end or 0, c.x + c.w)
    return kept


def _drop_before(comps: list[Blob], left: float) -> list[Blob]:
    """Leaves out what is centred left of the field's box unless it is the size of the writing inside: the end of
    the printed label (a broken-off stroke of its last letter) is smaller than the handwriting."""
    inside = [c.h for c in comps if c.cx >= left]
    if not inside:
        return comps
    size = float(np.median(inside))
    return [c for c in comps if c.cx >= left or 0.6 * size <= c.h <= 1.5 * size]


def split_digits(binary: np.ndarray, field_px: tuple[float, float, float, float], spec: Field | None):
    """Returns digit regions of a cleaned field: list of (mask crop bbox (x, y, w, h) in the crop, pixel mask)."""
    return split_digits_and_alternatives(binary, field_px, spec)[0]


def split_digits_and_alternatives(binary: np.ndarray, field_px: tuple[float, float, float, float],
                                  spec: Field | None):
    """Returns `split_digits`'s regions, and each blob that was cut into several of them, whole (`cut_alternatives`).

    Returns:
        (regions, alternatives): alternatives are (first, count, regions to stand in for
        regions[first:first + count]).
    """
    labels, groups = _field_groups(binary, field_px, spec)
    regions = [digit_region(g, labels, binary) for g in groups]
    alternatives = [(first, count, [digit_region(b, labels, binary) for b in blobs])
                    for first, count, blobs in cut_alternatives(groups)]
    return regions, alternatives


def _field_groups(binary: np.ndarray, field_px, spec: Field | None) -> tuple[np.ndarray, list[Blob]]:
    """The label image of the field's ink, and its digits as Blobs of those labels, in reading order."""
    x, y, w, h = field_px
    labels, comps = components(binary, min_height=max(4.0, 0.12 * h))
    # Keep what belongs to this field: centred inside its box (printed text beside it is not), and
    # reaching below its top edge (the printed label sits just above the box).
    right = x + w * 1.08 if spec is None or spec.kind == "comb" else binary.shape[1]  # see _right_margin
    comps = [c for c in comps if x - 0.05 * w <= c.cx <= right and y - 0.25 * h <= c.cy <= y + h * 1.2
             and c.y + c.h > y - 0.08 * h and not _from_next_row(c, y, h, binary.shape[0])
             and not _wall_past_box(c, field_px)]
    if spec is not None and spec.kind != "comb":
        comps = _drop_beyond(_drop_before(comps, x), x + w, h)
    if not comps:
        return labels, []
    tallest = max(c.h for c in comps)
    if spec is not None and tallest < 0.3 * h:
        return labels, []  # only print and specks: a reference number run in from beside an empty field
    big = [c for c in comps if c.h >= 0.3 * tallest or c.area >= 0.15 * tallest ** 2]
    big += _stacked_pieces([c for c in comps if not any(c is b for b in big)], tallest)
    # Small pieces are specks and guide remnants, unless they touch a digit's box: the top bar
    # of a 7 or 5 that a thin pen stroke left detached is short and flat, but it is part of the digit.
    comps = big + [c for c in comps if not any(c is b for b in big) and max(c.w, c.h) >= 0.1 * tallest
                   and any(near(c, b, 0.25 * tallest) for b in big)]
    if spec is not None and spec.kind == "comb":
        cell = w / spec.cells
        cells: dict[int, Blob] = {}
        for c in comps:
            k = int((c.cx - x) // cell)
            if 0 <= k < spec.cells:
                cells[k] = union(cells[k], c) if k in cells else c
        groups = _cut_at_ticks(cells, x, cell, spec.cells, labels)
    else:
        groups = split_blobs(join_bows(merge_pieces(comps), labels), labels)
        if spec is not None:
            # More pieces than the field can hold: strokes broken apart. One extra may be a
            # struck-through digit in fields written freely; the strike detector sees to that.
            groups = _merge_to(groups, spec.max_length + (spec.kind in ("underline", "free")))
            groups = split_to(groups, spec.min_length, labels)
    return labels, groups


def _stacked_pieces(small: list[Blob], tallest: float) -> list[Blob]:
    """The small pieces that, one above another, make a digit's height and ink: a digit written across a box
    line comes out of line removal in two flat pieces, each too small to count alone."""
    kept = []
    for i, a in enumerate(small):
        for b in small[i + 1:]:
            whole = union(a, b)
            if (one_column(a, b) and whole.h >= 0.5 * tallest and whole.area >= 0.1 * tallest ** 2
                    and whole.h - a.h - b.h <= 0.4 * tallest):
                kept += [c for c in (a, b) if not any(c is k for k in kept)]
    return kept


def _from_next_row(c: Blob, y: float, h: float, height: int) -> bool:
    """Says whether a blob cut by the crop's top or bottom edge has its centre outside the box: the top of a digit
    in the row below (or the foot of one above), of which the crop holds only the end nearest this field."""
    return (c.y <= 0 and c.cy < y) or (c.y + c.h >= height and c.cy > y + h)


def _wall_past_box(c: Blob, field_px) -> bool:
    """Says whether a blob is a table's ruling running on past the box: thin, upright, wholly above or below the
    box and in line with its left or right wall (a 1-bit scan leaves it where the print's drop-out missed it);
    or, inside, a dash of a wall too broken to be found, under 1 pt wide (thinner than a pen's line)."""
    x, y, w, h = field_px
    thin = c.w <= 0.04 * h + 2 and c.h >= 3 * c.w
    outside = c.y >= y + h - 1 or c.y + c.h <= y + 1
    return thin and (outside or c.w <= 3) and min(abs(c.cx - x), abs(c.cx - x - w)) <= 0.06 * h + 2


def _merge_to(groups: list[Blob], most: int) -> list[Blob]:
    """Joins neighbouring pieces until at most `most` are left, the narrowest joins first.

    Two pieces of one broken digit join into something no wider than a digit; two
    digits side by side do not.
    """
    groups = list(groups)
    while len(groups) > max(1, most):
        widths = [max(b.x + b.w, a.x + a.w) - min(a.x, b.x) for a, b in zip(groups, groups[1:])]
        i = int(np.argmin(widths))
        groups[i:i + 2] = [union(groups[i], groups[i + 1])]
    return groups


def digit_region(group: Blob, labels: np.ndarray, binary: np.ndarray):
    """Returns (bbox, pixel mask) of one digit: its components' pixels within its box."""
    x, y, w, h = group.x, group.y, group.w, group.h
    mask = np.isin(labels[y:y + h, x:x + w], group.ids)
    if group.cut is not None:  # a piece of a split blob: only its own columns
        mask = mask & (binary[y:y + h, x:x + w] > 0)
    return (int(x), int(y), int(w), int(h)), mask
