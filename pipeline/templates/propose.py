"""`formdigits template propose`: a template from a blank form.

The blank is read at `WORK_DPI` (in colour when it is printed in colour: its print
colour is noted), the places that take digits are found in its print
(`pipeline.templates.blank_fields`), and each becomes a field with its kind, box,
cells and a length range from the room it has, named from the printed label
beside it (read by Tesseract). A line whose label asks for a signature is left
out. The blank itself is kept as the registration reference.
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
from pipeline.templates.blank_fields import LABEL_GAP_PT, Proposal, find_fields, length_range
from pipeline.templates.model import PAGE_SIZES, Field, Template

__all__ = ["WORK_DPI", "REFERENCE_DPI", "Blank", "read_blank", "read_blanks", "read_labels", "name_fields",
           "propose_template", "draw_fields", "TextLine"]

WORK_DPI = 200
REFERENCE_DPI = 150          # the blank kept beside the template for registration


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


def _is_signature(p: Proposal, lines: list[TextLine]) -> bool:
    """Says whether a line's label (on its left, or under it) asks for a signature."""
    x, y, w, h = p.box
    for line in lines:
        lx, ly, lw, lh = line.box
        beside = lx + lw <= x + 4 and x - (lx + lw) <= LABEL_GAP_PT and ly < y + h and ly + lh > y
        under = abs(ly - (y + h)) <= 14 and lx < x + w and lx + lw > x
        if (beside or under) and re.search(r"\bsign", line.text, re.IGNORECASE):
            return True
    return False


def propose_template(blank: Blank, name: str, labels: bool = True) -> Template:
    """Returns the template for a blank form: its fields, named, and the blank itself as the registration reference."""
    found = find_fields(blank.image, blank.scale)
    lines = read_labels(blank) if labels else []
    fields = []
    for p, field_name in zip(found, name_fields(found, lines)):
        if p.kind == "underline" and _is_signature(p, lines):
            continue  # a line to sign on
        lo, hi = length_range(p)
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
