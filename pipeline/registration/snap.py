"""Snap a registration onto the form's printed lines: the last few points of precision.

Registration by a form's print fits keypoints, which crowd into its text; where a form prints
little (its lower half, a table's far side) the fit can be points off, and a box's wall three
points from where segmentation looks for it stays in the crop beside the digits. The template
says where every box wall and rule is: each is looked for a few points around where the fit puts
it, and an affine correction is fitted, robustly, to the offsets found (x and y apart).
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.registration.confirm import thin_print
from pipeline.templates.model import Template

__all__ = ["SNAP_SCALE", "REACH_PT", "line_correction"]

SNAP_SCALE = 2.0      # pixels per point of the page as seen in template coordinates here
REACH_PT = 6.0        # a line is looked for this far either side of where the fit puts it
MIN_LINES = 6         # per axis: fewer lines found than this, no correction
INLIER_PT = 1.0       # a line's offset this close to the fitted correction counts for it
STILL_PT = 0.1        # a round that moves no corner of the page more than this is the last


def _shrunk(page: np.ndarray, homography: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the page shrunk near SNAP_SCALE, the homography onto it): once, for every round.

    Shrunk by area: a thin line sampled at every other pixel of a 300 dpi page would go missing.
    """
    scale = float(np.sqrt(abs(np.linalg.det(homography[:2, :2]))))  # page pixels per point
    if scale <= 1.5 * SNAP_SCALE:
        return page, homography
    f = 1.5 * SNAP_SCALE / scale
    return cv2.resize(page, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), np.diag([f, f, 1.0]) @ homography


def _seen(page: np.ndarray, homography: np.ndarray, template: Template) -> np.ndarray:
    """The page's thin print (`confirm.thin_print`) at SNAP_SCALE px/pt in template coordinates."""
    to_seen = np.diag([SNAP_SCALE, SNAP_SCALE, 1.0])
    w, h = (int(v * SNAP_SCALE) for v in template.size_pt)
    seen = cv2.warpPerspective(page, homography @ np.linalg.inv(to_seen), (w, h),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=255)
    return thin_print(255 - seen)


def _printed_lines(template: Template) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """The rules (y, x0, x1) and walls (x, y0, y1) the template's fields print, in points.

    A comb's inner walls are left out: a comb of separate boxes has two a gap apart, where its
    template says one.
    """
    rules, walls = [], []
    for f in template.fields:
        x, y, w, h = f.box
        if f.kind == "underline":
            rules.append((y + h, x, x + w))
        elif f.kind in ("boxed", "comb"):
            rules += [(y, x, x + w), (y + h, x, x + w)]
            walls += [(x, y, y + h), (x + w, y, y + h)]
    return rules, walls


def _offsets(strong: np.ndarray, lines, vertical: bool) -> list[tuple[float, float, float]]:
    """(x, y, offset in points) of each line found within REACH_PT of where it is expected."""
    s, reach = SNAP_SCALE, int(REACH_PT * SNAP_SCALE)
    out = []
    for at, lo, hi in lines:
        c, a, b = int(round(at * s)), int(lo * s), int(hi * s)
        if b - a < 12 or c - reach < 0:
            continue
        # Rows run along the line, columns across it.
        window = strong[a:b, c - reach:c + reach + 1] if vertical else strong[c - reach:c + reach + 1, a:b].T
        if window.shape != (b - a, 2 * reach + 1):
            continue  # off the page
        run = cv2.getStructuringElement(cv2.MORPH_RECT, (1, int(0.6 * (b - a))))
        profile = cv2.morphologyEx(window, cv2.MORPH_OPEN, run).sum(axis=0) / (b - a)
        peak = int(np.argmax(profile))
        others = np.r_[profile[:max(0, peak - 3)], profile[peak + 4:]]
        if profile[peak] < 0.6 or (others.size and others.max() >= 0.6):
            continue  # not found, or two lines within reach: which one is this is not known
        # The line's middle: the centroid of its few pixels' cover (the first maximum is its edge).
        near = np.arange(max(0, peak - 3), min(len(profile), peak + 4))
        middle = float((near * profile[near]).sum() / profile[near].sum())
        offset = (middle - reach + c) / s - at
        mid = 0.5 * (lo + hi)
        out.append((at, mid, offset) if vertical else (mid, at, offset))
    return out


def _robust_plane(points: list[tuple[float, float, float]]) -> np.ndarray | None:
    """Coefficients (a, b, c) of offset = a*x + b*y + c fitted to (x, y, offset), outliers dropped; None when too
    few lines agree."""
    if len(points) < MIN_LINES:
        return None
    p = np.float64(points)
    design = np.c_[p[:, 0], p[:, 1], np.ones(len(p))]
    keep = np.abs(p[:, 2] - np.median(p[:, 2])) < 3 * INLIER_PT
    for _ in range(3):
        if keep.sum() < MIN_LINES:
            return None
        coef, *_ = np.linalg.lstsq(design[keep], p[keep, 2], rcond=None)
        keep = np.abs(design @ coef - p[:, 2]) < INLIER_PT
    return coef if keep.sum() >= MIN_LINES else None


def line_correction(page: np.ndarray, homography: np.ndarray, template: Template, rounds: int = 3) -> np.ndarray:
    """Returns the homography (template points -> page pixels) moved onto the form's printed lines; as it was when
    too few of its lines are found to say (a form with few boxes).

    A fit a few percent off in scale is more than REACH_PT out at a wide table's far side: each
    round finds the lines the one before brought within reach, until a round moves nothing by
    more than STILL_PT.
    """
    homography = np.asarray(homography, np.float64)
    small, onto_small = _shrunk(page, homography)
    to_page = homography @ np.linalg.inv(onto_small)  # the shrunk page's pixels -> the page's
    for _ in range(rounds):
        correction = _correction(_seen(small, onto_small, template), template)
        if correction is None:
            break
        onto_small = onto_small @ correction
        corners = np.float64([[0, 0, 1], [template.size_pt[0], 0, 1], [0, template.size_pt[1], 1],
                              [template.size_pt[0], template.size_pt[1], 1]]).T
        if np.abs(correction @ corners - corners).max() < STILL_PT:
            break
    return to_page @ onto_small


def _correction(strong: np.ndarray, template: Template) -> np.ndarray | None:
    """The affine map, in template points, from where the fit puts the template's lines to where they are seen."""
    rules, walls = _printed_lines(template)
    x_fit = _robust_plane(_offsets(strong, walls, vertical=True))
    y_fit = _robust_plane(_offsets(strong, rules, vertical=False))
    if x_fit is None and y_fit is None:
        return None
    ax, bx, cx = x_fit if x_fit is not None else (0.0, 0.0, 0.0)
    ay, by, cy = y_fit if y_fit is not None else (0.0, 0.0, 0.0)
    # A line the template prints at p lies at p + offset(p) in template points, as the fit maps them.
    return np.float64([[1 + ax, bx, cx], [ay, 1 + by, cy], [0, 0, 1]])
