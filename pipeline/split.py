"""Split stage: a cleaned field's ink becomes digit regions.

Connected components are grouped into digits (`Blob`s): broken strokes and the detached pieces of
one digit are joined, touching digits are cut where the ink is thinnest, and a template's length
range decides the close calls. Comb fields are split by cell, and a blob written over a tick into an
empty cell is cut there.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from pipeline.templates import Field

__all__ = ["Blob", "components", "merge_pieces", "join_bows", "split_blobs", "split_digits",
           "split_digits_and_alternatives", "cut_alternatives", "digit_region"]


@dataclasses.dataclass
class Blob:
    """Ink components taken as one digit (or, before grouping, one component): their labels and box."""

    ids: list[int]              # component labels in the field's label image
    x: int
    y: int
    w: int
    h: int
    area: int
    cx: float                   # centre of mass
    cy: float
    cut: tuple[int, int] | None = None   # a piece of a cut blob: its columns


def components(binary: np.ndarray, min_height: float) -> tuple[np.ndarray, list[Blob]]:
    """The label image of `binary`'s 8-connected ink, and a Blob for each component at least `min_height` in w or h."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
    comps = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if h < min_height and w < min_height:
            continue
        comps.append(Blob([i], x, y, w, h, area, centroids[i][0], centroids[i][1]))
    return labels, comps


def _x_overlap(a: Blob, b: Blob) -> int:
    """Columns boxes a and b share (negative: the gap between them)."""
    return min(a.x + a.w, b.x + b.w) - max(a.x, b.x)


def _one_column(a: Blob, b: Blob) -> bool:
    """Whether a and b share most of the narrower one's columns: pieces of one digit, one above the other."""
    return _x_overlap(a, b) > 0.45 * min(a.w, b.w)


def _near(a: Blob, b: Blob, reach: float) -> bool:
    """Whether boxes a and b overlap horizontally and lie within `reach` of each other vertically."""
    y_gap = max(a.y - (b.y + b.h), b.y - (a.y + a.h))
    return _x_overlap(a, b) > 0 and y_gap <= reach


def _union(a: Blob, b: Blob) -> Blob:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    x1, y1 = max(a.x + a.w, b.x + b.w), max(a.y + a.h, b.y + b.h)
    area = a.area + b.area
    return Blob(a.ids + b.ids, x0, y0, x1 - x0, y1 - y0, area,
                (a.cx * a.area + b.cx * b.area) / area, (a.cy * a.area + b.cy * b.area) / area)


def merge_pieces(comps: list[Blob]) -> list[Blob]:
    """Joins pieces of one digit: a broken stroke, the detached flag of a 5 or a 1."""
    comps = sorted(comps, key=lambda c: c.x)
    merged: list[Blob] = []
    for c in comps:
        if merged:
            p = merged[-1]
            rows = min(p.y + p.h, c.y + c.h) - max(p.y, c.y)
            # Or a few columns and no rows: one above the other, as a 5's bar written apart above its body.
            if _one_column(p, c) or (_x_overlap(p, c) > 0.15 * min(p.w, c.w) and rows <= 0.1 * min(p.h, c.h)):
                merged[-1] = _union(p, c)
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
                    overlap = _x_overlap(o, c)
                    gaps.append((max(-overlap, 0), -overlap, j))  # the closest; of two overlapping, the most
            gap, _, j = min(gaps)
            if gap <= (0.25 if c.h < 0.55 * digit_h else 0.1) * digit_h:
                merged[min(i, j)] = _union(merged[min(i, j)], merged[max(i, j)])
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
            out[-1] = _union(p, g)
        else:
            out.append(g)
    return out


# Touching digits each run most of the blob's height; a cut that leaves a piece much shorter went
# through one wide digit instead (a 4's bar, whose open top half stands on its own).
SPLIT_PART_HEIGHT = 0.7


def _split_touching(comp: Blob, labels: np.ndarray, binary: np.ndarray, digit_w: float, digit_h: float,
                    wider_than: float = 1.3) -> list[Blob]:
    """Cuts a blob of touching digits at the thinnest columns near the expected cuts.

    `wider_than` is how many times its height a blob must be wide to be cut; a
    field that is short of digits for its template takes a narrower blob.
    """
    # Only blobs clearly wider than they are tall: two touching digits are 1.3x as wide as tall or
    # more; one wide 0, 2, 3 or 5 is up to about 1.2x (a cut at 1.05x split those: two corpora's
    # length errors 26 -> 12 and 16 -> 8 with 1.3x).
    if comp.w < 1.6 * digit_w or comp.w < wider_than * max(comp.h, 0.8 * digit_h):
        return [comp]
    n = max(2, int(round(comp.w / max(digit_w, 0.6 * comp.h))))
    x, y, w, h = comp.x, comp.y, comp.w, comp.h
    mask = np.isin(labels[y:y + h, x:x + w], comp.ids)
    profile = mask.sum(axis=0).astype(np.float32)
    # A column that meets ink twice, far apart, runs through a loop (a 0's top and bottom): never a cut.
    rows = np.arange(h)[:, None]
    starts = np.count_nonzero(np.diff(mask.astype(np.int8), axis=0, prepend=0) == 1, axis=0)
    spans = np.where(mask, rows, -1).max(axis=0) - np.where(mask, rows, h).min(axis=0)
    loop = (starts >= 2) & (spans > 0.6 * h)
    profile[loop] += h
    cuts = [0]
    for k in range(1, n):
        centre = int(k * w / n)
        lo, hi = max(cuts[-1] + 2, centre - int(0.25 * w / n)), min(w - 2, centre + int(0.25 * w / n))
        cuts.append(lo + int(np.argmin(profile[lo:hi])) if hi > lo else centre)
    cuts.append(w)
    if loop[[min(c, w - 1) for c in cuts[1:-1]]].any():
        return [comp]  # nowhere to cut but through a loop: one wide 0, not two digits
    parts = _pieces(comp, mask, cuts)
    if any(p.h < SPLIT_PART_HEIGHT * h for p in parts):
        return [comp]
    return parts


def _pieces(comp: Blob, mask: np.ndarray, cuts: list[int]) -> list[Blob]:
    """The pieces of `comp` between consecutive `cuts` (columns of its box, 0 and its width included)."""
    parts = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        sub = mask[:, a:b]
        ys = np.nonzero(sub.any(axis=1))[0]
        if ys.size == 0 or b - a < 2:
            continue
        parts.append(Blob(comp.ids, comp.x + a, comp.y + int(ys[0]), b - a, int(ys[-1] - ys[0] + 1),
                          int(sub.sum()), comp.x + (a + b) / 2, comp.y + comp.h / 2, cut=(comp.x + a, comp.x + b)))
    return parts


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
        parts = _pieces(g, mask, [0, lo + int(np.argmin(mask[:, lo:hi].sum(axis=0))), g.w])
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
        if columns and _one_column(columns[-1][0], c):
            columns[-1] = (_union(columns[-1][0], c), columns[-1][1] + [c])
        else:
            columns.append((c, [c]))
    kept, end = [], None
    for c, pieces in columns:
        if c.x > right and (end is None or c.x - end > 0.8 * h or not 0.6 * size <= c.h <= 1.5 * size
                            or sum(p.area for p in pieces) < 0.3 * ink):
            break
        kept.extend(pieces)
        end = max(end or 0, c.x + c.w)
    return kept


def split_blobs(groups: list[Blob], labels: np.ndarray, binary: np.ndarray) -> list[Blob]:
    """Cuts the blobs that are touching digits (see `_split_touching`), at the scale of the field's own digits."""
    # A field's own digits set the scale: writers differ in how wide they write.
    digit_h = float(np.median([g.h for g in groups]))
    single = [g.w for g in groups if g.w < 1.1 * digit_h]
    if len(single) * 2 < len(groups) and len(groups) >= 3:
        # Most pieces are wide: a writer who slants hard or writes wide, not a field of touching pairs.
        single = [g.w for g in groups]
    digit_w = max(float(np.median(single or [0.7 * digit_h])), 0.45 * digit_h)
    return [part for g in groups for part in _split_touching(g, labels, binary, digit_w, digit_h)]


def split_digits(binary: np.ndarray, field_px: tuple[float, float, float, float], spec: Field | None):
    """Digit regions of a cleaned field: list of (mask crop bbox (x, y, w, h) in the crop, pixel mask)."""
    return split_digits_and_alternatives(binary, field_px, spec)[0]


def split_digits_and_alternatives(binary: np.ndarray, field_px: tuple[float, float, float, float],
                                  spec: Field | None):
    """`split_digits`'s regions, and each blob that was cut into several of them, whole (`cut_alternatives`).

    Returns:
        (regions, alternatives): alternatives are (first, count, regions to stand in for
        regions[first:first + count]).
    """
    labels, groups = _field_groups(binary, field_px, spec)
    regions = [digit_region(g, labels, binary) for g in groups]
    alternatives = [(first, count, [digit_region(b, labels, binary) for b in blobs])
                    for first, count, blobs in cut_alternatives(groups)]
    return regions, alternatives


def cut_alternatives(groups: list[Blob]) -> list[tuple[int, int, list[Blob]]]:
    """Each run of `groups` (in reading order) that `_split_touching` cut from one blob, whole: (first, count, [blob]).

    A cut is a guess from shape alone: one wide 2 or 5 looks like two touching digits. (Offering the blobs
    left whole cut as well was measured too: on real-ink dev forms it mended one length in 135 offers.)
    """
    out, i = [], 0
    while i < len(groups):
        j = i
        while j + 1 < len(groups) and _same_cut_blob(groups[j], groups[j + 1]):
            j += 1
        if j > i:
            run = groups[i:j + 1]
            x0, y0 = min(g.x for g in run), min(g.y for g in run)
            x1, y1 = max(g.x + g.w for g in run), max(g.y + g.h for g in run)
            out.append((i, j - i + 1, [dataclasses.replace(run[0], x=x0, y=y0, w=x1 - x0, h=y1 - y0, cut=None)]))
        i = j + 1
    return out


def _same_cut_blob(a: Blob, b: Blob) -> bool:
    """Whether a and b are neighbouring pieces of one blob that `_split_touching` cut."""
    return a.cut is not None and b.cut is not None and a.ids == b.ids and a.cut[1] == b.cut[0]


def _field_groups(binary: np.ndarray, field_px, spec: Field | None) -> tuple[np.ndarray, list[Blob]]:
    """The label image of the field's ink, and its digits as Blobs of those labels, in reading order."""
    x, y, w, h = field_px
    labels, comps = components(binary, min_height=max(4.0, 0.12 * h))
    # Keep what belongs to this field: centred inside its box (printed text beside it is not), and
    # reaching below its top edge (the printed label sits just above the box).
    right = x + w * 1.08 if spec is None or spec.kind == "comb" else binary.shape[1]  # see _right_margin
    comps = [c for c in comps if x - 0.05 * w <= c.cx <= right and y - 0.25 * h <= c.cy <= y + h * 1.2
             and c.y + c.h > y - 0.08 * h]
    if spec is not None and spec.kind != "comb":
        comps = _drop_beyond(comps, x + w, h)
    if not comps:
        return labels, []
    tallest = max(c.h for c in comps)
    if spec is not None and tallest < 0.3 * h:
        return labels, []  # only print and specks: a reference number run in from beside an empty field
    big = [c for c in comps if c.h >= 0.3 * tallest or c.area >= 0.15 * tallest ** 2]
    # Small pieces are specks and guide remnants, unless they touch a digit's box: the top bar
    # of a 7 or 5 that a thin pen stroke left detached is short and flat, but it is part of the digit.
    comps = big + [c for c in comps if not any(c is b for b in big) and max(c.w, c.h) >= 0.1 * tallest
                   and any(_near(c, b, 0.25 * tallest) for b in big)]
    if spec is not None and spec.kind == "comb":
        cell = w / spec.cells
        cells: dict[int, Blob] = {}
        for c in comps:
            k = int((c.cx - x) // cell)
            if 0 <= k < spec.cells:
                cells[k] = _union(cells[k], c) if k in cells else c
        groups = _cut_at_ticks(cells, x, cell, spec.cells, labels)
    else:
        groups = split_blobs(join_bows(merge_pieces(comps), labels), labels, binary)
        if spec is not None:
            # More pieces than the field can hold: strokes broken apart. One extra may be a
            # struck-through digit in fields written freely; the strike detector sees to that.
            groups = _merge_to(groups, spec.max_length + (spec.kind in ("underline", "free")))
            groups = _split_to(groups, spec.min_length, labels, binary)
    return labels, groups


def _split_to(groups: list[Blob], fewest: int, labels: np.ndarray, binary: np.ndarray) -> list[Blob]:
    """Fewer pieces than the field must hold: cuts the widest blob that will cut, while any will.

    Two narrow digits that touch (a 2 leaning into a 5) make a blob barely wider
    than tall, which `split_blobs` leaves whole; the template's length says it is two.
    """
    groups = list(groups)
    while 0 < len(groups) < fewest:
        digit_h = float(np.median([g.h for g in groups]))
        digit_w = max(float(np.median([g.w for g in groups])) if len(groups) > 2 else 0.0, 0.45 * digit_h)
        for i in sorted(range(len(groups)), key=lambda k: -groups[k].w / groups[k].h):  # the widest that will cut
            parts = _split_touching(groups[i], labels, binary, min(digit_w, 0.6 * digit_h), digit_h, wider_than=0.95)
            if len(parts) >= 2:
                groups[i:i + 1] = parts
                break
        else:
            break
    return groups


def _merge_to(groups: list[Blob], most: int) -> list[Blob]:
    """Joins neighbouring pieces until at most `most` are left, the narrowest joins first.

    Two pieces of one broken digit join into something no wider than a digit; two
    digits side by side do not.
    """
    groups = list(groups)
    while len(groups) > max(1, most):
        widths = [max(b.x + b.w, a.x + a.w) - min(a.x, b.x) for a, b in zip(groups, groups[1:])]
        i = int(np.argmin(widths))
        groups[i:i + 2] = [_union(groups[i], groups[i + 1])]
    return groups


def digit_region(group: Blob, labels: np.ndarray, binary: np.ndarray):
    """(bbox, pixel mask) of one digit: its components' pixels within its box."""
    x, y, w, h = group.x, group.y, group.w, group.h
    mask = np.isin(labels[y:y + h, x:x + w], group.ids)
    if group.cut is not None:  # a piece of a split blob: only its own columns
        mask = mask & (binary[y:y + h, x:x + w] > 0)
    return (int(x), int(y), int(w), int(h)), mask
