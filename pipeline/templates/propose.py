"""`formdigits template propose`: a template from a blank form.

On the empty form the places people write digits are printed guides with
nothing inside them: rows of equal cells (combs), single boxes, the empty
cells of a ruled table, and lines with room above them. Each becomes a field
with its kind, box, cells and a length range from the room it has, named from
the printed label beside it (read by Tesseract). Boxes that hold printed text,
logos and boxes too large for digits are left out.

Every step is a plain function over arrays, in points where it can be: the
blank is first brought to `WORK_DPI`.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tempfile

import cv2
import numpy as np

from pipeline.reading.dropout import as_grey, is_colour, print_colour_of
from pipeline.templates.model import PAGE_SIZES, Field, Template

__all__ = ["WORK_DPI", "REFERENCE_DPI", "Blank", "read_blank", "read_blanks", "find_fields", "read_labels",
           "name_fields", "propose_template", "draw_fields", "Proposal", "TextLine"]

WORK_DPI = 200
REFERENCE_DPI = 150          # the blank kept beside the template for registration
MIN_CELL_PT, MAX_CELL_PT = 10.0, 45.0   # a digit box is this tall
MAX_FIELD_WIDTH_PT = 330.0


@dataclasses.dataclass
class Blank:
    """The empty form at WORK_DPI, and its paper size."""

    image: np.ndarray            # grey uint8
    page: str                    # letter | a4 | custom
    size_pt: tuple[float, float]
    print_colour: str | None = None  # "#rrggbb" for a form printed in a dropout colour
    seen: np.ndarray | None = None   # a colour blank as registration sees pages (`dropout.as_grey`); else `image`

    @property
    def scale(self) -> float:    # pixels per point
        return WORK_DPI / 72.0


def read_blanks(path: str, page: int | None = None) -> list[Blank]:
    """Returns every page of a blank form (a PDF, or a PNG/JPEG/TIFF scan, multi-page TIFF included) at WORK_DPI;
    only page `page` (from 1) when given."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:5] == b"%PDF-":
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(data)
        try:
            numbers = _pages_wanted(len(pdf), page, path)
            pages = [(pdf[i].get_size(), cv2.cvtColor(np.asarray(pdf[i].render(scale=WORK_DPI / 72.0).to_pil()
                                                                 .convert("RGB")), cv2.COLOR_RGB2BGR))
                     for i in numbers]
        finally:
            pdf.close()
    else:
        ok, frames = cv2.imdecodemulti(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if not ok or not frames:
            raise ValueError(f"{path}: not a PDF or an image this tool reads (PNG, JPEG, TIFF)")
        pages = []
        for i in _pages_wanted(len(frames), page, path):
            w_pt, h_pt = _paper_of(frames[i].shape[:2], path)
            size_px = (round(w_pt * WORK_DPI / 72), round(h_pt * WORK_DPI / 72))
            pages.append(((w_pt, h_pt), cv2.resize(frames[i], size_px, interpolation=cv2.INTER_AREA)))
    # In grey by luminance, not `as_grey`'s darkest channel: a colour blank is often a JPEG, whose colour
    # is kept at a quarter of the resolution, and the darkest channel's blocky edges broke combs into boxes.
    return [Blank(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), _paper_name(w_pt, h_pt), (float(w_pt), float(h_pt)),
                  print_colour_of(image), as_grey(image) if is_colour(image) else None)
            for (w_pt, h_pt), image in pages]


def _pages_wanted(count: int, page: int | None, path: str) -> list[int]:
    if page is None:
        return list(range(count))
    if not 1 <= page <= count:
        raise ValueError(f"{path} has {count} page{'s' if count != 1 else ''}; there is no page {page}")
    return [page - 1]


def _paper_name(w_pt: float, h_pt: float) -> str:
    return next((name for name, (pw, ph) in PAGE_SIZES.items() if abs(pw - w_pt) < 4 and abs(ph - h_pt) < 4),
                "custom")


def read_blank(path: str) -> Blank:
    """Returns the first page of a blank form (see `read_blanks`)."""
    return read_blanks(path, page=1)[0]


def _paper_of(shape, path: str) -> tuple[float, float]:
    """A scan's paper size from its shape: letter or A4 by aspect (a scan carries no size of its own)."""
    h, w = shape
    for pw, ph in PAGE_SIZES.values():
        if abs(w / h - pw / ph) < 0.012:
            return pw, ph
    raise ValueError(f"{path}: page aspect {w / h:.3f} is neither letter (0.773) nor A4 (0.707); "
                     "export the blank form as a PDF, which carries its size")


# -- guides --------------------------------------------------------------------
def _ink(image: np.ndarray) -> np.ndarray:
    _, binary = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return binary


def _lines(binary: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical printed lines: runs longer than any letter's stroke."""
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
        ticks = lines[y + m:y + h - m, x + m:x + w - m]
        if inside.size and (np.count_nonzero(inside) - np.count_nonzero(ticks)) > 0.004 * inside.size:
            continue  # printed text in it: a table's label cell, a logo
        cells.append((x, y, w, h))
    # A table cell holding a comb is the comb's frame, not a field of its own.
    return [c for c in cells if not any(o != c and _contains(c, o) for o in cells)]


def _contains(outer, inner) -> bool:
    return (outer[0] <= inner[0] and outer[1] <= inner[1] and inner[0] + inner[2] <= outer[0] + outer[2]
            and inner[1] + inner[3] <= outer[1] + outer[3])


def _ticks(vertical: np.ndarray, cell, scale: float) -> int:
    """Separators standing inside a box, evenly spaced (a comb drawn as one frame with ticks): how many."""
    x, y, w, h = cell
    m = max(2, int(1.5 * scale))
    band = vertical[y + h - max(3, h // 4):y + h, x + m:x + w - m]
    columns = np.flatnonzero(band.any(axis=0))
    if columns.size == 0:
        return 0
    runs = np.split(columns, np.flatnonzero(np.diff(columns) > 2) + 1)
    centres = np.array([r.mean() + m for r in runs])
    expected = np.arange(1, len(runs) + 1) * w / (len(runs) + 1)
    return len(runs) if np.all(np.abs(centres - expected) < 0.15 * w / (len(runs) + 1)) else 0


def _combs_and_boxes(cells, vertical, scale: float) -> list[tuple[str, tuple, int]]:
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
            ticks = _ticks(vertical, run[0], scale)
            out.append(("comb", run[0], ticks + 1) if ticks else ("boxed", run[0], 0))
        run = [cell] if cell is not None else []
    return out


def _continues(prev, cell, scale: float) -> bool:
    narrow = prev[2] <= 1.3 * prev[3] and cell[2] <= 1.3 * cell[3]
    return (narrow and abs(prev[1] - cell[1]) <= 2 * scale and abs(prev[3] - cell[3]) <= 2 * scale
            and 0 <= cell[0] - (prev[0] + prev[2]) <= 4 * scale)


def _underlines(binary, horizontal, vertical, scale: float) -> list[tuple[int, int, int, int]]:
    """Free-standing lines (no box around them) with empty room above: (x, y of the line, width, room)."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(horizontal, connectivity=8)
    near_vertical = cv2.dilate(vertical, np.ones((int(4 * scale), int(4 * scale)), np.uint8))
    out = []
    for x, y, w, h, _ in stats[1:n]:
        if not 36 * scale <= w <= MAX_FIELD_WIDTH_PT * scale or h > 3 * scale:
            continue
        if near_vertical[y:y + h, x:x + w].any():
            continue  # part of a box or a table
        # Clear rows straight above the line, looking up to 30 points.
        above = binary[max(0, y - int(30 * scale)) + 1:y, x:x + w].any(axis=1)[::-1]
        inked = np.flatnonzero(above)
        room = int(inked[0]) if inked.size else len(above)
        if room >= 14 * scale:
            out.append((int(x), int(y), int(w), int(room)))
    return out


@dataclasses.dataclass
class Proposal:
    """A proposed field in points, before it has a name."""

    kind: str
    box: tuple[float, float, float, float]
    cells: int = 0


def find_fields(blank: Blank) -> list[Proposal]:
    """Returns every place on the blank form that takes digits, in reading order."""
    s = blank.scale
    binary = _ink(blank.image)
    horizontal, vertical = _lines(binary, s)
    cells = _empty_cells(binary, cv2.bitwise_or(horizontal, vertical), s)
    found = [Proposal(kind, tuple(v / s for v in box), n) for kind, box, n in _combs_and_boxes(cells, vertical, s)]
    for x, y, w, room in _underlines(binary, horizontal, vertical, s):
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


def _length_range(p: Proposal) -> tuple[int, int]:
    """How many digits fit: one a cell in a comb; by width over handwriting's ~0.6 height per digit otherwise."""
    if p.kind == "comb":
        return 1, p.cells
    _, _, w, h = p.box
    return 1, max(1, int((w - 4.0) / (0.6 * min(h, 24.0))))


# -- labels ----------------------------------------------------------------------
@dataclasses.dataclass
class TextLine:
    text: str
    box: tuple[float, float, float, float]   # points


def read_labels(blank: Blank) -> list[TextLine]:
    """Returns the printed text lines of the blank, by Tesseract (none when Tesseract is not installed)."""
    exe = shutil.which("tesseract")
    if exe is None:
        return []
    ok, png = cv2.imencode(".png", blank.image)
    with tempfile.NamedTemporaryFile(suffix=".png") as tmp:
        tmp.write(png.tobytes())
        tmp.flush()
        done = subprocess.run([exe, tmp.name, "stdout", "--psm", "11", "--dpi", str(WORK_DPI), "tsv"],
                              capture_output=True, text=True, timeout=120)
    lines: dict[tuple, list] = {}
    for row in done.stdout.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or not cols[11].strip() or float(cols[10]) < 40:
            continue
        key = tuple(int(c) for c in cols[2:5])
        lines.setdefault(key, []).append((cols[11].strip(), *(int(c) / blank.scale for c in cols[6:10])))
    out = []
    for words in lines.values():
        x0 = min(w[1] for w in words)
        y0 = min(w[2] for w in words)
        x1 = max(w[1] + w[3] for w in words)
        y1 = max(w[2] + w[4] for w in words)
        text = " ".join(w[0] for w in sorted(words, key=lambda w: w[1]))
        if re.search(r"[A-Za-z]{2}", text):
            out.append(TextLine(text, (x0, y0, x1 - x0, y1 - y0)))
    return out


def _label_of(p: Proposal, lines: list[TextLine], found: list[Proposal]) -> tuple[str, str, bool]:
    """The nearest text left of the field on its row (with no other field between), the nearest just
    above or below it, and whether the second is much the closer (then it is the field's label)."""
    x, y, w, h = p.box
    # Text left of another field on the same row is that field's label.
    stop = max([q.box[0] + q.box[2] for q in found if q is not p and q.box[0] + q.box[2] <= x + 1
                and q.box[1] < y + h and y < q.box[1] + q.box[3]], default=-1e9)
    left, side = None, 250.0
    for t in lines:
        tx, ty, tw, th = t.box
        gap = x - (tx + tw)
        if -2 <= gap < side and tx >= stop - 2 and y - 4 <= ty + th / 2 <= y + h + 4:
            left, side = t.text, gap
    near, best = None, 24.0
    for t in lines:
        tx, ty, tw, th = t.box
        overlaps = tx < x + w and x - 4 < tx + tw
        gap = min(abs(y - (ty + th)), abs(ty - (y + h)))
        if overlaps and gap < best and not (y < ty + th / 2 < y + h):
            near, best = t.text, gap
    return left or "", near or "", bool(near and best * 4 < side)


def _slug(text: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return text[:40].rstrip("_")


def name_fields(found: list[Proposal], lines: list[TextLine]) -> list[str]:
    """Returns a name for each field from its label; a table's cells from their row's label and their column's head."""
    labels = [_label_of(p, lines, found) for p in found]
    names = []
    for i, p in enumerate(found):
        column = [j for j, q in enumerate(found) if abs(q.box[0] - p.box[0]) < 2 and abs(q.box[2] - p.box[2]) < 2
                  and q.kind == p.kind]
        stacked = len(column) > 1 and any(abs(found[j].box[1] - (p.box[1] + p.box[3])) < 4 or
                                          abs(p.box[1] - (found[j].box[1] + found[j].box[3])) < 4 for j in column)
        left, near, near_is_closer = labels[i]
        if stacked:  # a table: the row's label is left of its first cell, the column's head above its top one
            middle = p.box[1] + p.box[3] / 2
            row = [j for j, q in enumerate(found) if abs(q.box[1] + q.box[3] / 2 - middle) < p.box[3] / 2]
            left = left or labels[min(row, key=lambda j: found[j].box[0])][0]
            head = labels[min(column, key=lambda j: found[j].box[1])][1]
            name = "_".join(part for part in (_slug(left), _slug(head)) if part)
        else:
            name = _slug(near) if near_is_closer else _slug(left) or _slug(near)
        if not name and len(column) > 1:  # a grid without row labels: the column's head and the row
            top = sorted(column, key=lambda j: found[j].box[1])
            head = _slug(labels[top[0]][1]) or _slug(labels[top[0]][0])
            name = f"{head}_{top.index(i) + 1}" if head else ""
        names.append(name or f"field_{i + 1:02d}")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[i] = f"{name}_{seen[name]}"
    return names


def propose_template(blank: Blank, name: str, labels: bool = True) -> Template:
    """Returns the template for a blank form: its fields, named, and the blank itself as the registration reference."""
    found = find_fields(blank)
    lines = read_labels(blank) if labels else []
    fields = []
    for p, field_name in zip(found, name_fields(found, lines)):
        lo, hi = _length_range(p)
        fields.append(Field(field_name, p.kind, tuple(round(v, 1) for v in p.box), lo, hi, cells=p.cells,
                            required=False))
    k = REFERENCE_DPI / WORK_DPI
    reference = cv2.resize(blank.image if blank.seen is None else blank.seen, None, fx=k, fy=k,
                           interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", reference, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    title = max(lines, key=lambda t: t.box[3]).text if lines else name
    return Template(name, title, blank.page, tuple(fields), has_marks=False, reference=f"{name}.png",
                    reference_dpi=float(REFERENCE_DPI), custom_size=blank.size_pt if blank.page == "custom" else None,
                    print_colour=blank.print_colour, reference_png=png.tobytes())


# -- pictures to check by eye -----------------------------------------------------------
def draw_fields(image: np.ndarray, template: Template, homography: np.ndarray) -> np.ndarray:
    """Returns the image in colour with every field's box drawn, numbered, where `homography` (points -> pixels)
    puts it."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    thick = max(1, round(image.shape[1] / 800))
    for i, f in enumerate(template.fields, 1):
        x, y, w, h = f.box
        corners = np.float32([[[x, y]], [[x + w, y]], [[x + w, y + h]], [[x, y + h]]])
        pts = cv2.perspectiveTransform(corners, np.asarray(homography, np.float64)).astype(np.int32)
        colour = {"comb": (200, 60, 0), "boxed": (0, 140, 0), "underline": (0, 0, 220)}.get(f.kind, (160, 0, 160))
        cv2.polylines(out, [pts], True, colour, thick * 2)
        if f.kind == "comb":
            for c in range(1, f.cells):
                tick = np.float32([[[x + c * w / f.cells, y + h * 0.6]], [[x + c * w / f.cells, y + h]]])
                a, b = cv2.perspectiveTransform(tick, np.asarray(homography, np.float64)).astype(int).reshape(2, 2)
                cv2.line(out, tuple(a), tuple(b), colour, thick)
        label = f"{i} {f.name}"
        org = tuple(int(v) for v in pts[0, 0] + [0, -4 * thick])
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thick, (255, 255, 255), thick * 3, cv2.LINE_AA)
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thick, colour, thick, cv2.LINE_AA)
    return out
