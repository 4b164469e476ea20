"""Segment stage: a page becomes fields, and each field becomes digit crops.

With templates, a page is registered by its four corner marks (the larger
top-left one tells an upside-down scan), matched to the template whose printed
layout it resembles most, and each field is warped to a canonical crop of
`CROP_SCALE` pixels per point. Printed guides (box borders, comb separators,
underlines) are removed while strokes that cross them are kept; then the
field is split into digits: by cell for comb fields, by connected components
elsewhere, merging broken strokes and splitting touching digits.

Without templates, lines of handwriting are found on the page and each
becomes a field named by its position (`line01`, `line02`, ...).

Every function here works on numpy arrays and knows nothing of Beam or gRPC.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np

from pipeline.templates import Field, Template, render_blank

__all__ = [
    "SegmentError",
    "DigitCut",
    "FieldCut",
    "field_images",
    "Registration",
    "register_page",
    "cut_fields",
    "drop_struck",
    "find_lines",
    "remove_guides",
    "split_digits",
    "CROP_SCALE",
    "box_through",
]

CROP_SCALE = 4.0  # canonical field crops: pixels per point (~288 dpi)


class SegmentError(ValueError):
    """A page that cannot be registered or segmented."""


@dataclasses.dataclass
class DigitCut:
    position: int
    image: np.ndarray                 # grey crop, ink bright, background 0
    bbox: tuple[int, int, int, int]   # on the page as scanned


@dataclasses.dataclass
class FieldCut:
    template: str
    field: str
    spec: Field | None
    bbox: tuple[int, int, int, int]   # the field's box on the page as scanned
    digits: list[DigitCut]
    struck: int = 0                   # struck-through digits left out of `digits`


@dataclasses.dataclass
class Registration:
    template: Template
    homography: np.ndarray            # template points -> page pixels (of the upright page)
    upside_down: bool
    score: float


# -- registration ---------------------------------------------------------------
def _find_marks(page: np.ndarray) -> list[tuple[float, float, float]]:
    """Solid square blobs near the four corners: (cx, cy, area) per corner, TL, TR, BL, BR."""
    h, w = page.shape
    f = 800.0 / max(h, w)
    small = cv2.resize(page, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    # Against the local paper level, not one global threshold: uneven scanner light
    # darkens whole corners of the page, right where the marks are.
    paper = cv2.GaussianBlur(cv2.dilate(small, np.ones((61, 61), np.uint8)), (0, 0), 10)
    ink = cv2.subtract(paper, small)
    binary = ((ink > max(50.0, 0.45 * float(ink.max()))) * 255).astype(np.uint8)
    n, _, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
    sh, sw = small.shape
    min_side = 0.008 * max(sh, sw)
    corners = {0: [], 1: [], 2: [], 3: []}
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if bw < min_side or bh < min_side or not 0.6 < bw / bh < 1.6 or area < 0.75 * bw * bh:
            continue
        cx, cy = centroids[i]
        if bw > 0.1 * sw:
            continue
        near_x = cx < 0.2 * sw or cx > 0.8 * sw
        near_y = cy < 0.2 * sh or cy > 0.8 * sh
        if near_x and near_y:
            corners[(cy > sh / 2) * 2 + (cx > sw / 2)].append((cx / f, cy / f, area / f / f))
    marks = []
    for k in range(4):
        if not corners[k]:
            raise SegmentError("registration marks not found (is this page one of the templates?)")
        ox, oy = (w if k % 2 else 0), (h if k >= 2 else 0)
        marks.append(min(corners[k], key=lambda m: (m[0] - ox) ** 2 + (m[1] - oy) ** 2))
    return marks


@functools.lru_cache(maxsize=16)
def _printed(template: Template) -> np.ndarray:
    """The template's printed ink (bright) at 1 px/pt, rendered once; read-only, shared by the cues below."""
    ink = 255.0 - render_blank(template, 72, line_grey=100).astype(np.float32)
    ink.setflags(write=False)
    return ink


def _clear_marks(image: np.ndarray, template: Template, value) -> None:
    """Sets the registration marks (and 4 points around them) of a 1 px/pt image to `value`, in place."""
    for x, y, s in template.registration_marks:
        image[max(0, int(y) - 4):int(y + s) + 4, max(0, int(x) - 4):int(x + s) + 4] = value


@functools.lru_cache(maxsize=16)
def _blank(template: Template) -> np.ndarray:
    """The template's printed layout at 1 px/pt, blurred, zero-mean: for matching."""
    return _layout_signal(_printed(template), template)


def _layout_signal(ink: np.ndarray, template: Template) -> np.ndarray:
    """Blurred, zero-mean ink at 1 px/pt with the marks masked: what tells one layout from another."""
    ink = ink.copy()
    _clear_marks(ink, template, 0)
    return _zero_mean(cv2.GaussianBlur(ink, (0, 0), 2.0))


@functools.lru_cache(maxsize=16)
def _title_signal(template: Template) -> np.ndarray:
    x, y, w, h = (int(v) for v in template.title_box)
    return _zero_mean(cv2.GaussianBlur(_printed(template)[y:y + h, x:x + w], (0, 0), 1.0))


def _zero_mean(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-6)


def _title_match(ink: np.ndarray, template: Template) -> float:
    """Normalised correlation of the title region; the page may sit a few points off."""
    x, y, w, h = (int(v) for v in template.title_box)
    region = cv2.GaussianBlur(ink[y - 6:y + h + 6, x - 6:x + w + 6], (0, 0), 1.0)
    result = cv2.matchTemplate(region.astype(np.float32), _title_signal(template).astype(np.float32),
                               cv2.TM_CCOEFF_NORMED)
    return float(result.max())


@functools.lru_cache(maxsize=16)
def _guide_mask(template: Template) -> np.ndarray:
    """Where the template prints its boxes and lines at 1 px/pt, title and marks left out."""
    mask = _printed(template) > 50
    x, y, w, h = (int(v) for v in template.title_box)
    mask[y - 8:y + h + 8, x - 8:x + w + 8] = False
    _clear_marks(mask, template, False)
    return mask


def _guide_cover(ink: np.ndarray, template: Template) -> float:
    """Share of the template's printed lines that have ink on the page within a point (1.0: no lines)."""
    mask = _guide_mask(template)
    if not mask.any():
        return 1.0
    near = cv2.dilate((ink > 40).astype(np.uint8), np.ones((3, 3), np.uint8))
    return float(near[mask].mean())


def _aspect(centres: np.ndarray) -> float:
    """Height over width of the marks' rectangle (TL, TR, BL, BR centres)."""
    width = np.linalg.norm(centres[1] - centres[0]) + np.linalg.norm(centres[3] - centres[2])
    height = np.linalg.norm(centres[2] - centres[0]) + np.linalg.norm(centres[3] - centres[1])
    return float(height / width)


def _mark_centres(template: Template) -> np.ndarray:
    return np.float32([[x + s / 2, y + s / 2] for x, y, s in template.registration_marks])


def register_page(page: np.ndarray, templates: list[Template]) -> tuple[np.ndarray, Registration]:
    """Finds orientation, template and homography for a scanned page.

    Returns:
        (the page upright, its registration).

    Raises:
        SegmentError: no marks, or no template matches.
    """
    marks = _find_marks(page)
    areas = [m[2] for m in marks]
    upside_down = int(np.argmax(areas)) == 3
    if upside_down:
        page = cv2.rotate(page, cv2.ROTATE_180)
        marks = _find_marks(page)
    elif int(np.argmax(areas)) != 0:
        raise SegmentError("page is rotated by 90 degrees or its top-left mark is damaged")
    found = np.float32([[m[0], m[1]] for m in marks])
    best, best_rank = None, 0.0
    for template in templates:
        expected = _mark_centres(template)
        if abs(_aspect(found) / _aspect(expected) - 1.0) > 0.04:  # letter vs A4 differ by 10%
            continue
        homography = cv2.getPerspectiveTransform(expected, found)
        w_pt, h_pt = template.size_pt
        # The page seen in template coordinates at 1 px/pt, compared with the printed layout.
        seen = cv2.warpPerspective(page, homography, (int(w_pt), int(h_pt)),
                                   flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderValue=255)
        ink = 255.0 - seen.astype(np.float32)
        layout = float((_layout_signal(ink, template) * _blank(template)).mean())
        # The printed title sits in the same place on every form and differs between forms: the strongest
        # cue, unless a rubber stamp lands on it; then whether the template's own lines are on the page
        # tells the forms apart.
        score = _title_match(ink, template) + 0.5 * layout
        rank = score + _guide_cover(ink, template)
        if best is None or rank > best_rank:
            best, best_rank = Registration(template, homography, upside_down, score), rank
    if best is None or best.score < 0.3:
        raise SegmentError(f"no template matches this page (best score {best.score if best else 0:.2f})")
    return page, best


# -- one field ------------------------------------------------------------------
# The paper level is the brightest grey within this window (crop pixels): it must be wider than
# the thickest marker stroke, or the stroke's middle passes for paper and the digit goes hollow.
PAPER_WINDOW = 61


def _ink(crop: np.ndarray) -> np.ndarray:
    """Grey crop (dark ink) -> ink strength (bright ink) with the local paper level removed."""
    paper = cv2.dilate(crop, cv2.getStructuringElement(cv2.MORPH_RECT, (PAPER_WINDOW, PAPER_WINDOW)))
    # The paper level is smooth: blur it at a quarter of the size (a sigma-8 blur at full size
    # was a fifth of all segmentation time).
    h, w = paper.shape
    small = cv2.resize(paper, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    paper = cv2.resize(cv2.GaussianBlur(small, (0, 0), 2), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(paper, crop)


def _percentile_u8(image: np.ndarray, q: float) -> float:
    """np.percentile for uint8 images (nearest rank) from a histogram: linear time, no sort."""
    counts = np.bincount(image.ravel(), minlength=256).cumsum()
    return float(np.searchsorted(counts, q / 100.0 * (counts[-1] - 1), side="right"))


def _binary(ink: np.ndarray) -> np.ndarray:
    """Ink pixels: above the paper's noise floor and a fair share of the strongest strokes.

    (Hysteresis, keeping fainter pixels joined to confident ones, mends strokes
    broken by pen pressure but also keeps faint guide-line remnants: measured
    worse overall on the dev corpus, 88.5% against 91.4% exact fields.)
    """
    strong = _percentile_u8(ink, 99.7)
    return (ink > max(28.0, 0.35 * strong)).astype(np.uint8) * 255


def remove_guides(ink: np.ndarray, binary: np.ndarray, field_px: tuple[float, float, float, float],
                  spec: Field | None) -> np.ndarray:
    """Removes printed box borders, comb separators and underlines; keeps strokes crossing them.

    Guides are looked for only where the template prints them (bands a few
    pixels wide around each expected line) and on a lower threshold than the
    writing, so faint, broken guide lines go too and a tall "1" never does.

    Args:
        ink: ink strength of the field crop (bright = ink).
        binary: ink mask of the field crop (255 = ink).
        field_px: the field's box (x, y, w, h) within the crop.
        spec: the field's template entry.
    """
    if spec is None or spec.kind == "free":
        return binary
    x, y, w, h = field_px
    weak = (ink > max(12.0, 0.12 * _percentile_u8(ink, 99.7))).astype(np.uint8) * 255
    tol = max(5, int(0.08 * h))
    rows, cols = [y + h], []                      # underline: the bottom line only
    if spec.kind in ("comb", "boxed"):
        rows, cols = [y, y + h], [x, x + w]
    horizontal = cv2.morphologyEx(weak, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (max(9, int(0.3 * h)), 1)))
    vertical = cv2.morphologyEx(weak, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(9, int(0.3 * h)))))
    short = cv2.morphologyEx(weak, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(5, int(0.12 * h)))))
    lines = np.zeros_like(binary)
    x0, x1 = int(max(0, x - tol)), int(x + w + tol)
    for r in rows:
        _keep_guide(horizontal, lines, int(max(0, r - tol)), int(r + tol + 1), x0, x1, axis=1)
    rules = cv2.dilate(lines, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))  # the horizontal guides alone
    for c in cols:
        _keep_guide(vertical.T, lines.T, int(max(0, c - tol)), int(c + tol + 1), int(max(0, y - tol)),
                    int(y + h + tol), axis=1)
    if spec.kind == "comb":
        band_tick = np.zeros_like(binary)
        cell = w / spec.cells
        for i in range(1, spec.cells):
            cx = x + i * cell
            band_tick[int(y + h * 0.45):int(y + h + tol), int(max(0, cx - tol)):int(cx + tol + 1)] = 255
        lines = cv2.bitwise_or(lines, cv2.bitwise_and(short, band_tick))
    lines = cv2.dilate(lines, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
    clean = cv2.bitwise_and(binary, cv2.bitwise_not(lines))
    # A stroke crossing a line was cut where it crossed: close the gap, only inside the removed line.
    thickness = max(3, int(round(_line_thickness(cv2.bitwise_and(horizontal, lines)))) + 4)
    bridged = cv2.morphologyEx(clean, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, thickness)))
    bridged_h = cv2.morphologyEx(clean, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (thickness, 1)))
    # A stroke written along the line (the foot of a 2 on an underline) makes the ink there
    # thicker than the printed line alone: where it is, the stroke is kept.
    along = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, thickness + 2)))
    restore = cv2.bitwise_or(cv2.bitwise_and(cv2.bitwise_or(bridged, bridged_h), lines),
                             cv2.bitwise_and(along, rules))
    return cv2.bitwise_or(clean, restore)


def _keep_guide(opened: np.ndarray, out: np.ndarray, lo: int, hi: int, start: int, stop: int, axis: int) -> None:
    """Copies into `out` the printed guide found in rows lo..hi of `opened` (long runs only), and nothing else.

    The band around an expected guide also holds strokes that run along it: the
    top bar of a 7 or 5 under a box's top line, the foot of a 2 on an underline.
    Those are shorter than the guide, which spans the field: only the rows where
    long-run ink covers a good part of the field's width are the guide.
    """
    band = opened[lo:hi, start:stop] > 0
    if band.size == 0:
        return
    counts = band.sum(axis=axis)
    peak = int(np.argmax(counts))
    if counts[peak] < 0.25 * (stop - start):
        return  # no guide here (not printed, or too faint to find)
    # The guide's rows: the peak and its neighbours that the (slightly tilted, anti-aliased) line still fills.
    top = bottom = peak
    while top > 0 and counts[top - 1] >= 0.2 * counts[peak]:
        top -= 1
    while bottom < len(counts) - 1 and counts[bottom + 1] >= 0.2 * counts[peak]:
        bottom += 1
    out[lo + top:lo + bottom + 1, start:stop] |= opened[lo + top:lo + bottom + 1, start:stop]


def _line_thickness(horizontal: np.ndarray) -> float:
    cols = (horizontal > 0).sum(axis=0)
    cols = cols[cols > 0]
    return float(np.median(cols)) if cols.size else 3.0


def _components(binary: np.ndarray, min_height: float):
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
    comps = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if h < min_height and w < min_height:
            continue
        comps.append({"ids": [i], "x": x, "y": y, "w": w, "h": h, "area": area,
                      "cx": centroids[i][0], "cy": centroids[i][1]})
    return labels, comps


def _x_overlap(a: dict, b: dict) -> int:
    """Columns boxes a and b share (negative: the gap between them)."""
    return min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])


def _near(a: dict, b: dict, reach: float) -> bool:
    """Whether boxes a and b overlap horizontally and lie within `reach` of each other vertically."""
    y_gap = max(a["y"] - (b["y"] + b["h"]), b["y"] - (a["y"] + a["h"]))
    return _x_overlap(a, b) > 0 and y_gap <= reach


def _union(a: dict, b: dict) -> dict:
    x0, y0 = min(a["x"], b["x"]), min(a["y"], b["y"])
    x1, y1 = max(a["x"] + a["w"], b["x"] + b["w"]), max(a["y"] + a["h"], b["y"] + b["h"])
    area = a["area"] + b["area"]
    return {"ids": a["ids"] + b["ids"], "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0, "area": area,
            "cx": (a["cx"] * a["area"] + b["cx"] * b["area"]) / area,
            "cy": (a["cy"] * a["area"] + b["cy"] * b["area"]) / area}


def _merge_pieces(comps: list[dict]) -> list[dict]:
    """Joins pieces of one digit: a broken stroke, the detached flag of a 5 or a 1."""
    comps = sorted(comps, key=lambda c: c["x"])
    merged: list[dict] = []
    for c in comps:
        if merged:
            p = merged[-1]
            overlap = _x_overlap(p, c)
            if overlap > 0.45 * min(p["w"], c["w"]):
                merged[-1] = _union(p, c)
                continue
        merged.append(c)
    if len(merged) < 2:
        return merged
    # A fragment much shorter than its neighbours belongs to the nearest one, if it is close. So
    # does a shortish piece that stops well above the line the digits stand on, if it all but
    # touches a neighbour: the open top of a 4 written in two strokes, beside its stem.
    digit_h = float(np.median([c["h"] for c in merged]))
    baseline = float(np.median([c["y"] + c["h"] for c in merged]))
    changed = True
    while changed and len(merged) > 1:
        changed = False
        for i, c in enumerate(merged):
            high = c["h"] < 0.8 * digit_h and c["y"] + c["h"] < baseline - 0.2 * digit_h
            if c["h"] >= 0.55 * digit_h and not high:
                continue
            gaps = []
            for j in (i - 1, i + 1):
                if 0 <= j < len(merged):
                    o = merged[j]
                    overlap = _x_overlap(o, c)
                    gaps.append((max(-overlap, 0), -overlap, j))  # the closest; of two overlapping, the most
            gap, _, j = min(gaps)
            if gap <= (0.25 if c["h"] < 0.55 * digit_h else 0.1) * digit_h:
                merged[min(i, j)] = _union(merged[min(i, j)], merged[max(i, j)])
                del merged[max(i, j)]
                changed = True
                break
    return merged


def _bow(comp: dict, labels: np.ndarray) -> float:
    """How the piece bulges sideways: > 0 bulges left like "(", < 0 right like ")", ~0 straight like "1".

    Compares the ink's x position in the middle third of its height with the top and bottom
    thirds, relative to its height.
    """
    x, y, w, h = comp["x"], comp["y"], comp["w"], comp["h"]
    mask = np.isin(labels[y:y + h, x:x + w], comp["ids"])
    rows = np.nonzero(mask.any(axis=1))[0]
    if rows.size < 6:
        return 0.0
    centres = np.array([np.nonzero(mask[r])[0].mean() for r in rows])
    third = max(1, rows.size // 3)
    ends = (centres[:third].mean() + centres[-third:].mean()) / 2
    return float((ends - centres[third:-third].mean()) / h)


def _join_bows(groups: list[dict], labels: np.ndarray) -> list[dict]:
    """Re-joins a digit broken into two facing arcs: a 0 as "(" + ")", a thin-stroked 2 or 3.

    Only narrow, curved pieces whose bows face each other, close together, whose union is no
    wider than one digit; straight pieces (two 1s side by side) are never joined.
    """
    if len(groups) < 2:
        return groups
    digit_h = float(np.median([g["h"] for g in groups]))
    out = [groups[0]]
    for g in groups[1:]:
        p = out[-1]
        gap = g["x"] - (p["x"] + p["w"])
        union_w = g["x"] + g["w"] - p["x"]
        if (p["w"] < 0.5 * digit_h and g["w"] < 0.5 * digit_h and gap < 0.25 * digit_h
                and union_w < 1.15 * max(p["h"], g["h"]) and _bow(p, labels) > 0.06 and _bow(g, labels) < -0.06):
            out[-1] = _union(p, g)
        else:
            out.append(g)
    return out


# Touching digits each run most of the blob's height; a cut that leaves a piece much shorter went
# through one wide digit instead (a 4's bar, whose open top half stands on its own).
SPLIT_PART_HEIGHT = 0.7


def _split_touching(comp: dict, labels: np.ndarray, binary: np.ndarray, digit_w: float, digit_h: float,
                    wider_than: float = 1.3) -> list[dict]:
    """Cuts a blob of touching digits at the thinnest columns near the expected cuts.

    `wider_than` is how many times its height a blob must be wide to be cut; a
    field that is short of digits for its template takes a narrower blob.
    """
    # Only blobs clearly wider than they are tall: two touching digits are 1.3x as wide as tall or
    # more; one wide 0, 2, 3 or 5 is up to about 1.2x (a cut at 1.05x split those: two corpora's
    # length errors 26 -> 12 and 16 -> 8 with 1.3x).
    if comp["w"] < 1.6 * digit_w or comp["w"] < wider_than * max(comp["h"], 0.8 * digit_h):
        return [comp]
    n = max(2, int(round(comp["w"] / max(digit_w, 0.6 * comp["h"]))))
    x, y, w, h = comp["x"], comp["y"], comp["w"], comp["h"]
    mask = np.isin(labels[y:y + h, x:x + w], comp["ids"])
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
    parts = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        sub = mask[:, a:b]
        ys = np.nonzero(sub.any(axis=1))[0]
        if ys.size == 0 or b - a < 2:
            continue
        parts.append({"ids": comp["ids"], "x": x + a, "y": y + int(ys[0]), "w": b - a, "h": int(ys[-1] - ys[0] + 1),
                      "area": int(sub.sum()), "cx": x + (a + b) / 2, "cy": y + h / 2, "cut": (x + a, x + b)})
    if any(p["h"] < SPLIT_PART_HEIGHT * h for p in parts):
        return [comp]
    return parts


def _drop_beyond(comps: list[dict], right: float, h: float) -> list[dict]:
    """Leaves out what starts past the field's right edge, apart from writing that runs on.

    Printed matter beside a field (a reference number, a stamp's edge) is smaller
    than the handwriting and stands off by a clear gap; writing that overruns the
    field goes on from its last digit at the writer's own size and spacing.
    """
    inside = [c["h"] for c in comps if c["x"] <= right]
    size = float(np.median(inside)) if inside else 0.0
    kept: list[dict] = []
    end = None
    for c in sorted(comps, key=lambda c: c["x"]):
        if c["x"] > right and (end is None or c["x"] - end > 0.8 * h or not 0.6 * size <= c["h"] <= 1.5 * size):
            break
        kept.append(c)
        end = max(end or 0, c["x"] + c["w"])
    return kept


def _split_all(groups: list[dict], labels: np.ndarray, binary: np.ndarray) -> list[dict]:
    # A field's own digits set the scale: writers differ in how wide they write.
    digit_h = float(np.median([g["h"] for g in groups]))
    single = [g["w"] for g in groups if g["w"] < 1.1 * digit_h]
    if len(single) * 2 < len(groups) and len(groups) >= 3:
        # Most pieces are wide: a writer who slants hard or writes wide, not a field of touching pairs.
        single = [g["w"] for g in groups]
    digit_w = max(float(np.median(single or [0.7 * digit_h])), 0.45 * digit_h)
    return [part for g in groups for part in _split_touching(g, labels, binary, digit_w, digit_h)]


def split_digits(binary: np.ndarray, field_px: tuple[float, float, float, float], spec: Field | None):
    """Digit regions of a cleaned field: list of (mask crop bbox (x, y, w, h) in the crop, pixel mask)."""
    x, y, w, h = field_px
    labels, comps = _components(binary, min_height=max(4.0, 0.12 * h))
    # Keep what belongs to this field: centred inside its box (printed text beside it is not), and
    # reaching below its top edge (the printed label sits just above the box).
    right = x + w * 1.08 if spec is None or spec.kind == "comb" else binary.shape[1]  # see _right_margin
    comps = [c for c in comps if x - 0.05 * w <= c["cx"] <= right and y - 0.25 * h <= c["cy"] <= y + h * 1.2
             and c["y"] + c["h"] > y - 0.08 * h]
    if spec is not None and spec.kind != "comb":
        comps = _drop_beyond(comps, x + w, h)
    if not comps:
        return []
    tallest = max(c["h"] for c in comps)
    if spec is not None and tallest < 0.3 * h:
        return []  # only print and specks: a reference number run in from beside an empty field
    big = [c for c in comps if c["h"] >= 0.3 * tallest or c["area"] >= 0.15 * tallest ** 2]
    # Small pieces are specks and guide remnants, unless they touch a digit's box: the top bar
    # of a 7 or 5 that a thin pen stroke left detached is short and flat, but it is part of the digit.
    comps = big + [c for c in comps if not any(c is b for b in big) and max(c["w"], c["h"]) >= 0.1 * tallest
                   and any(_near(c, b, 0.25 * tallest) for b in big)]
    if spec is not None and spec.kind == "comb":
        cell = w / spec.cells
        cells: dict[int, dict] = {}
        for c in comps:
            k = int((c["cx"] - x) // cell)
            if 0 <= k < spec.cells:
                cells[k] = _union(cells[k], c) if k in cells else c
        groups = [cells[k] for k in sorted(cells)]
    else:
        groups = _split_all(_join_bows(_merge_pieces(comps), labels), labels, binary)
        if spec is not None:
            # More pieces than the field can hold: strokes broken apart. One extra may be a
            # struck-through digit in fields written freely; the strike detector sees to that.
            groups = _merge_to(groups, spec.max_length + (spec.kind in ("underline", "free")))
            groups = _split_to(groups, spec.min_length, labels, binary)
    return [_region(g, labels, binary) for g in groups]


def _split_to(groups: list[dict], fewest: int, labels: np.ndarray, binary: np.ndarray) -> list[dict]:
    """Fewer pieces than the field must hold: cuts the widest blobs, as long as one will cut.

    Two narrow digits that touch (a 2 leaning into a 5) make a blob barely wider
    than tall, which `_split_all` leaves whole; the template's length says it is two.
    """
    groups = list(groups)
    while 0 < len(groups) < fewest:
        digit_h = float(np.median([g["h"] for g in groups]))
        digit_w = max(float(np.median([g["w"] for g in groups])) if len(groups) > 2 else 0.0, 0.45 * digit_h)
        i = max(range(len(groups)), key=lambda k: groups[k]["w"] / groups[k]["h"])
        parts = _split_touching(groups[i], labels, binary, min(digit_w, 0.6 * digit_h), digit_h, wider_than=0.95)
        if len(parts) < 2:
            break
        groups[i:i + 1] = parts
    return groups


def _merge_to(groups: list[dict], most: int) -> list[dict]:
    """Joins neighbouring pieces until at most `most` are left, the narrowest joins first.

    Two pieces of one broken digit join into something no wider than a digit; two
    digits side by side do not.
    """
    groups = list(groups)
    while len(groups) > max(1, most):
        widths = [max(b["x"] + b["w"], a["x"] + a["w"]) - min(a["x"], b["x"]) for a, b in zip(groups, groups[1:])]
        i = int(np.argmin(widths))
        groups[i:i + 2] = [_union(groups[i], groups[i + 1])]
    return groups


def _region(group: dict, labels: np.ndarray, binary: np.ndarray):
    """(bbox, pixel mask) of one digit: its components' pixels within its box."""
    x, y, w, h = group["x"], group["y"], group["w"], group["h"]
    mask = np.isin(labels[y:y + h, x:x + w], group["ids"])
    if "cut" in group:  # a piece of a split blob: only its own columns
        mask = mask & (binary[y:y + h, x:x + w] > 0)
    return (int(x), int(y), int(w), int(h)), mask


def _digit_image(ink: np.ndarray, bbox, mask: np.ndarray) -> np.ndarray:
    x, y, w, h = bbox
    keep = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return ink[y:y + h, x:x + w] * keep


def box_through(matrix: np.ndarray, box) -> tuple[int, int, int, int]:
    """The axis-aligned box (x, y, w, h) around rectangle `box` after the homography `matrix`."""
    x, y, w, h = box
    pts = np.float32([[[x, y]], [[x + w, y]], [[x + w, y + h]], [[x, y + h]]])
    moved = cv2.perspectiveTransform(pts, np.asarray(matrix, np.float64)).reshape(-1, 2)
    x0, y0 = np.floor(moved.min(axis=0)).astype(int)
    x1, y1 = np.ceil(moved.max(axis=0)).astype(int)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _page_box(field_px_box, crop_to_page, page_shape, upside_down):
    x, y, w, h = box_through(crop_to_page, field_px_box)
    if upside_down:  # report boxes on the page as it was scanned
        H, W = page_shape
        x, y = W - x - w, H - y - h
    return int(x), int(y), int(w), int(h)


def _right_margin(template: Template, spec: Field) -> float:
    """Points of page right of the field that still belong to it.

    Writing runs on past the end of an underline or box when the value is long;
    it is kept to half the way to the next field on the same line. A comb holds
    its digits in its cells.
    """
    fx, fy, fw, fh = spec.box
    if spec.kind == "comb":
        return 0.35 * fh + 0.08 * fw
    # Not past the paper's edge either, where a scan shows the lid's shadow as a long line.
    margin = min(1.2 * fh + 0.08 * fw, template.size_pt[0] - 24.0 - fx - fw)
    for other in template.fields:
        ox, oy, ow, oh = other.box
        if other is not spec and ox >= fx + fw and oy < fy + fh and fy < oy + oh:
            margin = min(margin, 0.5 * (ox - fx - fw))
    return margin


def _field_crop(page: np.ndarray, registration: Registration, spec: Field):
    """One field of the registered page at CROP_SCALE, with margins for writing that strays.

    Returns (ink, cleaned binary, field box in the crop, crop -> page homography).
    """
    s = CROP_SCALE
    fx, fy, fw, fh = spec.box
    mx0, my = 0.15 * fh, 0.45 * fh
    mx1 = _right_margin(registration.template, spec)
    ox, oy = fx - mx0, fy - my
    cw, ch = int((fw + mx0 + mx1) * s), int((fh + 2 * my) * s)
    crop_to_tpl = np.float64([[1 / s, 0, ox], [0, 1 / s, oy], [0, 0, 1]])
    crop_to_page = registration.homography @ crop_to_tpl
    crop = cv2.warpPerspective(page, crop_to_page, (cw, ch), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderValue=255)
    ink = _ink(crop)
    field_px = (mx0 * s, my * s, fw * s, fh * s)
    return ink, remove_guides(ink, _binary(ink), field_px, spec), field_px, crop_to_page


# A field holding more digits than its template allows has an extra piece for sure: a struck-through
# digit there needs much less evidence than one among the right number of digits.
OVERFULL_STRIKE_SCORE = 0.5


def drop_struck(fields: list[tuple]) -> list[tuple[list[DigitCut], int]]:
    """Leaves out digits that were struck through (see `pipeline.strikeout`), renumbering the rest.

    Args:
        fields: per field, (its digits, the fewest digits it may keep) or (its
            digits, the fewest, the most it may hold). The fewest is its
            template's minimum length (at least 1, so a field is never emptied);
            the likeliest struck digits go first, and a field already at that
            minimum has no extra digit to drop. Digits beyond the most are
            dropped on a weaker score (`OVERFULL_STRIKE_SCORE`).

    Returns:
        Per field, (kept digits, how many were dropped). One detector call for
        all of them: a page's crops at once cost little more than one field's.
    """
    from pipeline.normalize import EmptyCropError, mnist_normalize
    from pipeline.strikeout import load_detector

    detector = load_detector()
    rooms = [len(f[0]) - max(1, f[1]) for f in fields]
    extra = [max(0, len(f[0]) - f[2]) if len(f) > 2 else 0 for f in fields]
    crops, owners = [], []
    for f, (digits, *_) in enumerate(fields):
        if detector is None or rooms[f] <= 0:
            continue
        for i, d in enumerate(digits):
            try:
                crops.append(mnist_normalize(d.image))
            except EmptyCropError:
                continue  # blank: the normalise stage rejects it
            owners.append((f, i))
    scores: dict[int, list[tuple[float, int]]] = {}
    for (f, i), score in zip(owners, detector.scores(np.stack(crops)) if crops else []):
        scores.setdefault(f, []).append((float(score), i))
    out = []
    for f, (digits, *_) in enumerate(fields):
        ranked = sorted(scores.get(f, []), reverse=True)[:max(0, rooms[f])]
        struck = {i for n, (score, i) in enumerate(ranked)
                  if score > detector.threshold or (n < extra[f] and score > OVERFULL_STRIKE_SCORE)}
        if struck:
            digits = [dataclasses.replace(d, position=n)
                      for n, d in enumerate(d for i, d in enumerate(digits) if i not in struck)]
        out.append((digits, len(struck)))
    return out


def cut_fields(page: np.ndarray, registration: Registration, drop_struck_digits: bool = True) -> list[FieldCut]:
    """Cuts every field of the registered (upright) page into digit crops.

    Args:
        page: the upright page from `register_page`.
        registration: its registration.
        drop_struck_digits: leave out struck-through digits in fields written
            freely (comb cells hold one digit each, so a correction there is an
            overwrite, not an extra digit). Off only to cut training data.
    """
    out = []
    for spec in registration.template.fields:
        ink, clean, field_px, crop_to_page = _field_crop(page, registration, spec)
        digits = []
        for pos, (bbox, mask) in enumerate(split_digits(clean, field_px, spec)):
            digits.append(DigitCut(pos, _digit_image(ink, bbox, mask),
                                   _page_box(bbox, crop_to_page, page.shape, registration.upside_down)))
        out.append(FieldCut(registration.template.name, spec.name, spec,
                            _page_box(field_px, crop_to_page, page.shape, registration.upside_down), digits))
    if drop_struck_digits:
        free = [cut for cut in out if cut.spec.kind != "comb"]
        for cut, (digits, struck) in zip(free, drop_struck([(c.digits, c.spec.min_length, c.spec.max_length) for c in free])):
            cut.digits, cut.struck = digits, struck
    return out


def field_images(page: np.ndarray, registration: Registration) -> list[tuple[Field, np.ndarray]]:
    """Every field of the registered page as a clean grey image (dark ink on white, guides removed).

    What a whole-field reader such as an OCR engine gets: the same registration
    and line removal as `cut_fields`, without the split into digits.
    """
    out = []
    for spec in registration.template.fields:
        ink, clean, _, _ = _field_crop(page, registration, spec)
        strokes = np.where(clean > 0, ink, 0).astype(np.float32)
        full = float(np.percentile(strokes[clean > 0], 95)) if clean.any() else 1.0
        out.append((spec, (255 - np.clip(strokes * (255 / max(full, 1.0)), 0, 255)).astype(np.uint8)))
    return out


# -- no templates: lines of digits ------------------------------------------------
def find_lines(page: np.ndarray) -> list[FieldCut]:
    """Finds lines of handwriting on a page without a template; each line becomes a field."""
    ink = _ink(page)
    binary = _binary(ink)
    H, W = page.shape
    # Long printed rules and frames are not writing.
    for kernel in ((max(40, W // 8), 1), (1, max(40, H // 8))):
        lines = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel))
        binary = cv2.bitwise_and(binary, cv2.bitwise_not(cv2.dilate(lines, np.ones((3, 3), np.uint8))))
    labels, comps = _components(binary, min_height=max(8.0, H / 250))
    comps = [c for c in comps if c["h"] < H / 8 and c["w"] < W / 4 and c["area"] > 0.1 * c["w"] * c["h"] * 0.3]
    comps.sort(key=lambda c: c["cy"])
    rows: list[list[dict]] = []
    for c in comps:
        if rows:
            last = rows[-1]
            top = min(r["y"] for r in last)
            bottom = max(r["y"] + r["h"] for r in last)
            if min(bottom, c["y"] + c["h"]) - max(top, c["y"]) > 0.4 * c["h"]:
                last.append(c)
                continue
        rows.append([c])
    out = []
    for n, row in enumerate(r for r in rows if len(r) >= 2):
        heights = np.median([c["h"] for c in row])
        row = [c for c in row if c["h"] > 0.4 * heights]
        groups = _split_all(_join_bows(_merge_pieces(row), labels), labels, binary)
        digits = []
        for pos, g in enumerate(sorted(groups, key=lambda g: g["x"])):
            bbox, mask = _region(g, labels, binary)
            digits.append(DigitCut(pos, _digit_image(ink, bbox, mask), bbox))
        x0 = min(c["x"] for c in row)
        y0 = min(c["y"] for c in row)
        x1 = max(c["x"] + c["w"] for c in row)
        y1 = max(c["y"] + c["h"] for c in row)
        out.append(FieldCut("", f"line{len(out) + 1:02d}", None, (int(x0), int(y0), int(x1 - x0), int(y1 - y0)),
                            digits))
    for cut, (digits, struck) in zip(out, drop_struck([(c.digits, 1) for c in out])):
        cut.digits, cut.struck = digits, struck
    return out
