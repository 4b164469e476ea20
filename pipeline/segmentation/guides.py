"""Ink and printed guides: a field crop's ink strength, its ink mask, and the box lines taken out of it.

Guides are looked for only where the template prints them, so a tall 1 is
never taken for a box's side; strokes that cross a removed line are joined
again, and strokes written along one are kept.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from pipeline.templates.model import Field

__all__ = ["GuideFit", "ink_mask", "remove_guides", "fit_guides"]


def _percentile_u8(image: np.ndarray, q: float) -> float:
    """np.percentile for uint8 images (nearest rank) from a histogram: linear time, no sort."""
    counts = np.bincount(image.ravel(), minlength=256).cumsum()
    return float(np.searchsorted(counts, q / 100.0 * (counts[-1] - 1), side="right"))


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """Returns ink pixels: above the paper's noise floor and a fair share of the strongest strokes.

    (Hysteresis, keeping fainter pixels joined to confident ones, mends strokes
    broken by pen pressure but also keeps faint guide-line remnants: measured
    worse overall on the dev corpus, 88.5% against 91.4% exact fields.)
    """
    strong = _percentile_u8(ink, 99.7)
    return (ink > max(28.0, 0.35 * strong)).astype(np.uint8) * 255


def remove_guides(ink: np.ndarray, binary: np.ndarray, field_px: tuple[float, float, float, float],
                  spec: Field | None, gap: float = 0.0) -> np.ndarray:
    """Removes printed box borders, comb separators and underlines; keeps strokes crossing them.

    Guides are looked for only where the template prints them (bands a few
    pixels wide around each expected line) and on a lower threshold than the
    writing, so faint, broken guide lines go too and a tall "1" never does.

    Args:
        ink: ink strength of the field crop (bright = ink).
        binary: ink mask of the field crop (255 = ink).
        field_px: the field's box (x, y, w, h) within the crop.
        spec: the field's template entry.
        gap: between a comb's boxes, when it is drawn as separate boxes (`fit_guides`).
    """
    if spec is None or spec.kind == "free":
        return binary
    x, y, w, h = field_px
    weak = _faint_ink(ink) * 255
    rows, cols, tol = _expected_guides(spec, field_px, gap)
    horizontal = cv2.morphologyEx(weak, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (max(9, int(0.3 * h)), 1)))
    vertical = cv2.morphologyEx(weak, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(9, int(0.3 * h)))))
    short = cv2.morphologyEx(weak, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(5, int(0.12 * h)))))
    lines = np.zeros_like(binary)
    x0, x1 = int(max(0, x - tol)), int(x + w + tol)
    for r in rows:
        _keep_guide(horizontal, lines, int(max(0, r - tol)), int(r + tol + 1), x0, x1, axis=1)
    rules = cv2.dilate(lines, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))  # the horizontal guides alone
    for i, c in enumerate(cols):
        # A comb's wall between two cells is the height of the box, not a "1" (unless the walls' gap was found:
        # then they are known to be there, and one printed faint or broken still goes).
        inner = 0 < i < len(cols) - 1 and not gap
        _keep_guide(vertical.T, lines.T, int(max(0, c - tol)), int(c + tol + 1), int(max(0, y - tol)),
                    int(y + h + tol), axis=1, min_cover=0.7 if inner else 0.25)
    if spec.kind == "comb":
        lines = cv2.bitwise_or(lines, cv2.bitwise_and(short, _tick_bands(binary.shape, field_px, spec.cells, tol)))
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


def _faint_ink(ink: np.ndarray) -> np.ndarray:
    """1 where there is ink at all (a lower threshold than the writing's), 0 elsewhere: faint, broken guides too."""
    return (ink > max(12.0, 0.12 * _percentile_u8(ink, 99.7))).astype(np.uint8)


def _expected_guides(spec: Field, field_px, gap: float = 0.0) -> tuple[list[float], list[float], int]:
    """Where the template prints the field's lines (rows, columns, in crop pixels) and how far off to look."""
    x, y, w, h = field_px
    # A table cell's wall a point or two from where registration puts it is still its wall; a comb's cells
    # are too narrow for that much slack (it would take the digits' own strokes).
    tol = max(5, int((0.15 if spec.kind == "boxed" else 0.08) * h))
    if spec.kind == "underline":
        return [y + h], [], tol
    # A wall left as a stub beside the digit reads a 1 as 8 and a 9 as 4. Where a comb has short ticks
    # instead of walls, `short` takes them.
    return [y, y + h], _wall_positions(spec, field_px, gap), tol


def _tick_bands(shape, field_px, cells: int, tol: int) -> np.ndarray:
    """Where a comb prints the ticks between its cells: the lower part of each cell boundary."""
    x, y, w, h = field_px
    bands = np.zeros(shape, np.uint8)
    cell = w / cells
    for i in range(1, cells):
        cx = x + i * cell
        bands[int(y + h * 0.45):int(y + h + tol), int(max(0, cx - tol)):int(cx + tol + 1)] = 255
    return bands


def _keep_guide(opened: np.ndarray, out: np.ndarray, lo: int, hi: int, start: int, stop: int, axis: int,
                min_cover: float = 0.25) -> None:
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
    if counts[peak] < min_cover * (stop - start):
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


@dataclasses.dataclass(frozen=True)
class GuideFit:
    """Where a field's printed lines are found in its crop, against where the template puts them (crop pixels)."""

    dx: int = 0
    dy: int = 0
    gap: float = 0.0   # a comb of separate boxes: the gap between one box and the next


def fit_guides(ink: np.ndarray, field_px: tuple[float, float, float, float], spec: Field | None,
               reach: int) -> GuideFit:
    """Returns how far (within `reach`) the field's printed lines lie from where the template puts them, and the
    gap between a comb's boxes when it is drawn as separate boxes.

    Registration by a form's print can be points off in one part of a page (a form whose print
    sits in its top half, paper that curls on the glass), and a box's wall 3 points from where it is
    looked for stays in the crop as a 1. The whole pattern of the field's lines (both walls of a
    box, every wall of a comb, its top and bottom rules) moves together, so a digit's stroke beside
    one wall does not pull it. A comb of separate boxes has two walls a gap apart between cells
    (a template gives only the comb's outer edges and its cell count): the gap is found the same way.
    """
    if spec is None or spec.kind == "free":
        return GuideFit()
    x, y, w, h = field_px
    weak = _faint_ink(ink)
    rows, _, _ = _expected_guides(spec, field_px)
    dy = _best_shift(_profile(weak, (max(9, int(0.6 * h)), 1), axis=1, span=(x, x + w)), [np.float64(rows)], reach)[0]
    if spec.kind == "underline":
        return GuideFit(dy=dy)
    # Walls run the box's whole height; a digit's strokes seldom do. (A comb drawn with short ticks
    # has no walls to find, and keeps the template's positions.)
    gaps = np.arange(0.0, 0.3 * w / spec.cells, 1.0) if spec.kind == "comb" and spec.cells > 1 else np.zeros(1)
    walls = [np.float64(_wall_positions(spec, field_px, g)) for g in gaps]
    dx, k = _best_shift(_profile(weak, (1, max(9, int(0.6 * h))), axis=0, span=(y + dy, y + dy + h)), walls, reach)
    return GuideFit(dx, dy, float(gaps[k]))


def _wall_positions(spec: Field, field_px, gap: float) -> list[float]:
    """A field's walls (crop columns): a box's two sides, or each of a comb's boxes' two sides."""
    x, _, w, _ = field_px
    if spec.kind != "comb" or spec.cells <= 1:
        return [x, x + w]
    if gap <= 0:
        return [x + i * w / spec.cells for i in range(spec.cells + 1)]
    cell = (w - (spec.cells - 1) * gap) / spec.cells
    return [x + i * (cell + gap) + side for i in range(spec.cells) for side in (0.0, cell)]


def _profile(weak: np.ndarray, kernel: tuple[int, int], axis: int, span: tuple[float, float]) -> np.ndarray:
    """Share of `span` (columns for axis=1, rows for axis=0) that long runs of ink cover, along the other axis."""
    opened = cv2.morphologyEx(weak, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel))
    lo, hi = int(max(0, span[0])), int(max(span[0] + 1, span[1]))
    part = opened[:, lo:hi] if axis == 1 else opened[lo:hi, :]
    return part.sum(axis=axis) / max(1, hi - lo)


def _best_shift(profile: np.ndarray, patterns: list[np.ndarray], reach: int) -> tuple[int, int]:
    """(shift within `reach`, pattern index) that puts the most line ink, a pixel's slack, at a pattern's positions.

    Each pattern's score is its mean cover over its positions. A shift stands only when it clearly
    beats staying put with the same pattern, and a pattern other than the first only when it covers
    clearly more (a gap narrower than the walls' width fits as well as none); neither unless the lines
    are found (half covered on average).
    """
    size = len(profile)
    near = np.r_[np.maximum(profile, np.maximum(np.r_[0, profile[:-1]], np.r_[profile[1:], 0])), 0.0]
    shifts = np.arange(-reach, reach + 1)
    scores = np.empty((len(patterns), len(shifts)))
    for k, positions in enumerate(patterns):
        at = np.rint(positions)[None, :].astype(np.int64) + shifts[:, None]
        at[(at < 0) | (at >= size)] = size  # off the crop: the zero past the end
        scores[k] = near[at].mean(axis=1)
    # A line is a few pixels wide: neighbouring gaps and shifts tie, and the middle of the tie is the fit.
    k = _middle_of_best(scores.max(axis=1))
    if k and scores[k].max() < scores[0].max() + 0.1:  # a gap must explain clearly more walls than none
        k = 0
    row = scores[k]
    j = _middle_of_best(row)
    if row[j] < 0.5:
        return 0, 0
    if row[j] < 1.3 * row[reach] + 0.05:  # row[reach]: staying put
        j = reach
    return int(shifts[j]), int(k)


def _middle_of_best(scores: np.ndarray) -> int:
    """The index in the middle of the run of near-best scores around the best one."""
    best = int(np.argmax(scores))
    tied = scores >= scores[best] - 0.02
    lo = hi = best
    while lo > 0 and tied[lo - 1]:
        lo -= 1
    while hi < len(scores) - 1 and tied[hi + 1]:
        hi += 1
    return (lo + hi) // 2
