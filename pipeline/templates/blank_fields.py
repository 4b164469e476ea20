"""Where digits go on a blank form: the empty cells, combs, boxes and lines to write on, found in its print.

On the empty form the places people write digits are printed guides with
nothing inside them: rows of equal cells (combs, drawn as one frame with ticks
or as separate boxes), single boxes, the empty cells of a ruled table, and
lines (solid or dotted) with room above them. Boxes that hold printed text,
logos, boxes too small for a digit (a table's spacer column, its header row)
and long rules with no label beside them are left out. Plain functions over
the blank's pixels at `scale` pixels a point; `template propose` names what
they find.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from pipeline.ink import ink_strength

__all__ = ["Proposal", "find_fields", "length_range", "MAX_FIELD_WIDTH_PT", "LABEL_GAP_PT"]

MIN_CELL_PT, MAX_CELL_PT = 10.0, 45.0   # a digit box is this tall
MIN_BOX_PT = 15.5            # a box on its own (not a comb's cell) this tall: a table's 14-point header row is not
MIN_BOX_WIDTH_PT = 10.0      # nor a box narrower than this, or than half its height (a table's spacer column)
PRINT_STEP = 32              # grey levels below the local paper that count as print (scan noise is a few)
DOT_GAP_PT = 2.2             # gaps a dotted line leaves between its dots
LINE_PT = 2.2                # a line to write on is at most this thick (fine print's joined letters are thicker)
MARGIN_PT = 30.0             # a line longer than MAX_FIELD_WIDTH_PT is a field only with its label on its left,
LABEL_GAP_PT = 40.0          # this close, and short of the page's width less these margins
MAX_FIELD_WIDTH_PT = 330.0


def _ink(image: np.ndarray) -> np.ndarray:
    """Returns the blank's print as a binary image: whatever is clearly darker than the paper around it.

    A fixed step below the local paper, not Otsu's threshold: between black text and white paper, Otsu's
    threshold lies where light grey or thin lines (a form printed in grey, a 0.4-point ruling) fall
    on the paper's side, and boxes drawn with them lose their sides.
    """
    return (ink_strength(image) > PRINT_STEP).astype(np.uint8) * 255


def _lines(binary: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Returns horizontal and vertical printed lines: runs longer than any letter's stroke."""
    horizontal = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((1, int(12 * scale)), np.uint8))
    vertical = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((int(5 * scale), 1), np.uint8))
    return horizontal, vertical


def _empty_cells(binary: np.ndarray, lines: np.ndarray, scale: float) -> list[tuple[int, int, int, int]]:
    """Closed rectangles of digit-box height with no printed ink inside (pixels)."""
    contours, hierarchy = cv2.findContours(lines, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    cells = []
    for i, contour in enumerate(contours):
        if hierarchy is None or hierarchy[0][i][3] < 0:  # outer borders; the holes are the cells
            continue
        x, y, w, h = cv2.boundingRect(contour)
        if not MIN_CELL_PT * scale <= h <= MAX_CELL_PT * scale or not 6 * scale <= w <= MAX_FIELD_WIDTH_PT * scale:
            continue
        if cv2.contourArea(contour) < 0.8 * w * h:
            continue
        m = max(2, int(1.5 * scale))
        inside = binary[y + m:y + h - m, x + m:x + w - m]
        # A comb's separators are lines; a tight comb's short ticks are upright strokes of a fifth of its height.
        ticks = cv2.bitwise_or(lines[y + m:y + h - m, x + m:x + w - m], cv2.morphologyEx(
            inside, cv2.MORPH_OPEN, np.ones((max(3, int(0.2 * h)), 1), np.uint8)))
        if inside.size and (np.count_nonzero(inside) - np.count_nonzero(ticks)) > 0.004 * inside.size:
            continue  # printed text in it: a table's label cell, a logo
        cells.append((x, y, w, h))
    # A table cell holding a comb is the comb's frame, not a field of its own.
    return [c for c in cells if not any(o != c and _contains(c, o) for o in cells)]


def _contains(outer, inner) -> bool:
    return (outer[0] <= inner[0] and outer[1] <= inner[1] and inner[0] + inner[2] <= outer[0] + outer[2]
            and inner[1] + inner[3] <= outer[1] + outer[3])


def _ticks(binary: np.ndarray, cell, scale: float) -> int:
    """Counts the separators standing inside a box, evenly spaced (a comb drawn as one frame with ticks).

    Upright strokes are looked for in the box itself, at least a fifth of its height: a tight comb's
    ticks are shorter than the page's vertical lines (5 points), and the box's own base line is not one.
    """
    x, y, w, h = cell
    m = max(2, int(1.5 * scale))
    upright = cv2.morphologyEx(binary[y:y + h, x + m:x + w - m], cv2.MORPH_OPEN,
                               np.ones((max(3, int(0.2 * h)), 1), np.uint8))
    band = upright[h - max(3, h // 4):h]
    columns = np.flatnonzero(band.any(axis=0))
    if columns.size == 0:
        return 0
    runs = np.split(columns, np.flatnonzero(np.diff(columns) > 2) + 1)
    centres = np.array([r.mean() + m for r in runs])
    expected = np.arange(1, len(runs) + 1) * w / (len(runs) + 1)
    return len(runs) if np.all(np.abs(centres - expected) < 0.15 * w / (len(runs) + 1)) else 0


def _combs_and_boxes(cells, binary, scale: float) -> list[tuple[str, tuple, int]]:
    """Runs of equal narrow cells side by side are combs; other empty cells are boxes. (kind, box px, cells)."""
    out, run = [], []
    for cell in sorted(cells, key=lambda c: (round(c[1] / (4 * scale)), c[0])) + [None]:
        if run and cell is not None and _continues(run[-1], cell, scale):
            run.append(cell)
            continue
        if len(run) >= 2:
            x0, y0 = run[0][0], min(c[1] for c in run)
            x1, y1 = run[-1][0] + run[-1][2], max(c[1] + c[3] for c in run)
            out.append(("comb", (x0, y0, x1 - x0, y1 - y0), len(run)))
        elif run:
            ticks = _ticks(binary, run[0], scale)
            if ticks:
                out.append(("comb", run[0], ticks + 1))
            elif _holds_digits(run[0], scale):
                out.append(("boxed", run[0], 0))
        run = [cell] if cell is not None else []
    return out


def _holds_digits(box, scale: float) -> bool:
    """Says whether a box on its own is room to write digits in: tall and wide enough for one."""
    _, _, w, h = box
    return h >= MIN_BOX_PT * scale and w >= max(MIN_BOX_WIDTH_PT * scale, 0.5 * h)


def _continues(prev, cell, scale: float) -> bool:
    narrow = prev[2] <= 1.3 * prev[3] and cell[2] <= 1.3 * cell[3]
    # Cells of a frame touch; separate boxes leave a gap, a few points or up to 0.4 of a cell (their sides too).
    gap = max(5 * scale, 0.4 * prev[2])
    return (narrow and abs(prev[1] - cell[1]) <= 2 * scale and abs(prev[3] - cell[3]) <= 2 * scale
            and 0 <= cell[0] - (prev[0] + prev[2]) <= gap)


def _dotted_too(binary: np.ndarray, scale: float) -> np.ndarray:
    """Returns the horizontal lines with dotted ones joined (closed over DOT_GAP_PT): lines to write on.

    Only for finding underlines: closing joins a word's letters too, which must not pass for a box's side."""
    joined = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((1, max(2, int(DOT_GAP_PT * scale))), np.uint8))
    return cv2.morphologyEx(joined, cv2.MORPH_OPEN, np.ones((1, int(12 * scale)), np.uint8))


def _label_on_left(binary: np.ndarray, x: int, y: int, scale: float) -> bool:
    """Says whether print stands just left of a line at (x, y), on the band a label beside it takes."""
    left = binary[max(0, y - int(14 * scale)):y + 1, max(0, x - int(LABEL_GAP_PT * scale)):max(0, x - 2)]
    return bool(left.size) and np.count_nonzero(left) > 0.01 * left.size


def _underlines(binary, horizontal, vertical, scale: float) -> list[tuple[int, int, int, int]]:
    """Free-standing lines (no box around them) with empty room above: (x, y of the line, width, room)."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(horizontal, connectivity=8)
    near_vertical = cv2.dilate(vertical, np.ones((int(4 * scale), int(4 * scale)), np.uint8))
    out = []
    for x, y, w, h, _ in stats[1:n]:
        if not 36 * scale <= w <= binary.shape[1] - 2 * MARGIN_PT * scale or h > LINE_PT * scale:
            continue
        if w > MAX_FIELD_WIDTH_PT * scale and not _label_on_left(binary, x, y, scale):
            continue  # a long rule across the page, not a line to write on
        below = binary[y + h + max(2, int(scale)):y + h + int(2.5 * scale), x:x + w]
        if below.size and below.any(axis=0).mean() > 0.3:
            continue  # the top of a line of print (its letters joined), not a line under empty room
        if near_vertical[y:y + h, x:x + w].any():
            continue  # part of a box or a table
        # Clear rows straight above the line, looking up to 30 points: rows with print over a tenth of its
        # width (a label whose last letter sits on the line's start leaves the rest clear); the line's own
        # grey edge (a thin line's antialiased second row) is not print above it.
        edge = max(2, int(scale))
        above = ((binary[max(0, y - int(30 * scale)) + 1:max(0, y - edge), x:x + w] > 0).mean(axis=1) > 0.1)[::-1]
        inked = np.flatnonzero(above)
        room = edge + (int(inked[0]) if inked.size else len(above))
        if room >= 14 * scale:
            out.append((int(x), int(y), int(w), int(room)))
    return out


@dataclasses.dataclass
class Proposal:
    """A proposed field in points, before it has a name."""

    kind: str
    box: tuple[float, float, float, float]
    cells: int = 0


def find_fields(image: np.ndarray, scale: float) -> list[Proposal]:
    """Returns every place on a blank form's grey `image` (`scale` pixels a point) that takes digits, in reading
    order."""
    s = scale
    binary = _ink(image)
    horizontal, vertical = _lines(binary, s)
    cells = _empty_cells(binary, cv2.bitwise_or(horizontal, vertical), s)
    found = [Proposal(kind, tuple(v / s for v in box), n) for kind, box, n in _combs_and_boxes(cells, binary, s)]
    for x, y, w, room in _underlines(binary, _dotted_too(binary, s), vertical, s):
        h = min(room / s - 2.0, 24.0)
        found.append(Proposal("underline", (x / s, y / s - h, w / s, h)))
    return _reading_order(found)


def _reading_order(found: list[Proposal]) -> list[Proposal]:
    """Top to bottom in rows (fields whose middles lie within each other's height), left to right."""
    rows: list[list[Proposal]] = []
    for p in sorted(found, key=lambda p: p.box[1] + p.box[3] / 2):
        middle = p.box[1] + p.box[3] / 2
        if rows and abs(middle - (rows[-1][0].box[1] + rows[-1][0].box[3] / 2)) < 0.5 * rows[-1][0].box[3]:
            rows[-1].append(p)
        else:
            rows.append([p])
    return [p for row in rows for p in sorted(row, key=lambda p: p.box[0])]


def length_range(p: Proposal) -> tuple[int, int]:
    """Counts how many digits fit: one a cell in a comb; by width over ~half the height per digit otherwise.

    The most is generous: a writer squeezes an amount into a cramped table cell, and the segmenter
    joins pieces until no more than the most are left (8 digits written in a 98 x 19 point cell
    came out 7, two of them merged, at 0.6 of the height per digit).
    """
    if p.kind == "comb":
        return 1, p.cells
    _, _, w, h = p.box
    return 1, max(1, int((w - 4.0) / (0.5 * min(h, 24.0))))
