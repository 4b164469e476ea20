"""Register stage: which template a scanned page is, which way up, and where its fields lie.

Fast path, for templates that print corner marks: a page is found by its four
marks (the larger top-left one tells an upside-down scan), then compared with
each template of the same shape: the printed title, the printed layout, and
how much of the template's printed lines carry ink on the page. Every other
page is matched by the form's own print (`pipeline.registration.features`): the templates with the
most matching points are tried in turn, each with a tight and a wide refit, and the first the page's
print confirms wins. The result maps template points to page pixels.

Either way the winner is then confirmed against the template's print (`pipeline.registration.confirm`).
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np

from pipeline.ink import ink_strength
from pipeline.reading.dropout import as_grey, drop_print
from pipeline.registration.confirm import (MAX_UNEXPLAINED_LINES, MIN_PRINT_COVER, clear_marks, confirm,
                                          guide_cover, ink_in_template, printed_ink)
from pipeline.registration.features import CANDIDATES, FEW_INLIERS, MIN_INLIERS, match_templates, rotation_of
from pipeline.registration.snap import line_correction
from pipeline.templates.model import Template
from pipeline.types import Registration, SegmentError

__all__ = ["register_page", "register_scan", "box_through", "confirm", "MIN_PRINT_COVER", "MAX_UNEXPLAINED_LINES"]

FEW_INLIERS_COVER = 0.8        # print cover that lets a page with few matching points through
CLOSE_COVER = 0.9              # print cover of a fit that needs no second try


def _find_marks(page: np.ndarray) -> tuple[list[tuple[float, float, float]], int | None]:
    """Solid square blobs near the four corners: (cx, cy, area) per corner, TL, TR, BL, BR, and which one
    was missing (None when all four are there).

    A scan's edge can cut one mark off: three fix an affine map, so the fourth is put where the
    parallelogram of the other three says (area 0). Two or more missing is no registration by marks.
    """
    h, w = page.shape
    f = 800.0 / max(h, w)
    small = cv2.resize(page, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    # Against the local paper level, not one global threshold: uneven scanner light
    # darkens whole corners of the page, right where the marks are.
    ink = ink_strength(small, paper_blur=10.0)
    sh, sw = small.shape
    binary = ((ink > max(50.0, 0.45 * float(ink.max()))) * 255).astype(np.uint8)
    min_side = 0.008 * max(sh, sw)
    # Opened by most of the smallest mark's side: a solid mark keeps its square, while the thin
    # frame of a rubber stamp (or a pen stroke) touching it comes away instead of spoiling its shape.
    side = max(3, int(0.7 * min_side))
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
    n, _, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
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
    missing = [k for k in range(4) if not corners[k]]
    if len(missing) > 1:
        raise SegmentError("registration marks not found (is this page one of the templates?)")
    marks = []
    for k in range(4):
        ox, oy = (w if k % 2 else 0), (h if k >= 2 else 0)
        marks.append(min(corners[k], key=lambda m: (m[0] - ox) ** 2 + (m[1] - oy) ** 2) if corners[k] else None)
    if not missing:
        return marks, None
    k = missing[0]
    a, b, opposite = _PARALLELOGRAM[k]
    marks[k] = (marks[a][0] + marks[b][0] - marks[opposite][0], marks[a][1] + marks[b][1] - marks[opposite][1], 0.0)
    return marks, k


# A corner of the marks' rectangle from the other three: the two beside it, less the one across from it.
_PARALLELOGRAM = {0: (1, 2, 3), 1: (0, 3, 2), 2: (0, 3, 1), 3: (1, 2, 0)}


def _big_corner(marks: list[tuple[float, float, float]], missing: int | None) -> int:
    """Where the larger mark (printed top-left) is: 0 upright, 3 upside down, else turned by 90 degrees.

    When the mark cut off is one of the two diagonal corners and the other shows no larger mark, the
    larger one is the mark that is missing.
    """
    k = int(np.argmax([m[2] for m in marks]))
    if k in (0, 3) or missing not in (0, 3):
        return k
    return missing


@functools.lru_cache(maxsize=16)
def _blank(template: Template) -> np.ndarray:
    """The template's printed layout at 1 px/pt, blurred, zero-mean: for matching."""
    return _layout_signal(printed_ink(template), template)


def _layout_signal(ink: np.ndarray, template: Template) -> np.ndarray:
    """Blurred, zero-mean ink at 1 px/pt with the marks masked: what tells one layout from another."""
    ink = ink.copy()
    clear_marks(ink, template, 0)
    return _zero_mean(cv2.GaussianBlur(ink, (0, 0), 2.0))


@functools.lru_cache(maxsize=16)
def _title_signal(template: Template) -> np.ndarray:
    x, y, w, h = (int(v) for v in template.title_box)
    return _zero_mean(cv2.GaussianBlur(printed_ink(template)[y:y + h, x:x + w], (0, 0), 1.0))


def _zero_mean(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-6)


def _title_match(ink: np.ndarray, template: Template) -> float:
    """Normalised correlation of the title region; the page may sit a few points off."""
    x, y, w, h = (int(v) for v in template.title_box)
    region = cv2.GaussianBlur(ink[y - 6:y + h + 6, x - 6:x + w + 6], (0, 0), 1.0)
    result = cv2.matchTemplate(region.astype(np.float32), _title_signal(template).astype(np.float32),
                               cv2.TM_CCOEFF_NORMED)
    return float(result.max())


def _refine_by_print(page: np.ndarray, homography: np.ndarray, template: Template) -> np.ndarray:
    """`homography` moved to fit the page's print to the template's (OpenCV's ECC), for three marks only.

    Three marks fix an affine map, and a scan photographed or fed askew is not quite affine: the fourth
    corner can be points off. The printed lines of the whole page pull it into place.
    """
    ink = cv2.GaussianBlur(ink_in_template(page, homography, template), (0, 0), 1.5)
    printed = cv2.GaussianBlur(np.array(printed_ink(template)), (0, 0), 1.5)
    warp = np.eye(3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5)
    try:
        _, warp = cv2.findTransformECC(printed, ink, warp, cv2.MOTION_HOMOGRAPHY, criteria, None, 5)
    except cv2.error:  # did not converge: the affine map stands
        return homography
    return np.asarray(homography, np.float64) @ warp.astype(np.float64)


def _aspect(centres: np.ndarray) -> float:
    """Height over width of the marks' rectangle (TL, TR, BL, BR centres)."""
    width = np.linalg.norm(centres[1] - centres[0]) + np.linalg.norm(centres[3] - centres[2])
    height = np.linalg.norm(centres[2] - centres[0]) + np.linalg.norm(centres[3] - centres[1])
    return float(height / width)


def _mark_centres(template: Template) -> np.ndarray:
    return np.float32([[x + s / 2, y + s / 2] for x, y, s in template.registration_marks])


def register_page(page: np.ndarray, templates: list[Template]) -> tuple[np.ndarray, Registration]:
    """Finds orientation, template and homography for a scanned page.

    Corner marks are the fast path, for templates that print them; a page without
    them (or with marks that fit no template) is matched by the form's own print
    (`pipeline.registration.features`) against every template.

    Returns:
        (the page upright, its registration).

    Raises:
        SegmentError: no template matches, with the best score.
    """
    marked = [t for t in templates if t.has_marks]
    why_not_marks = ""
    if marked:
        try:
            return _confirmed(*_register_by_marks(page, marked))
        except SegmentError as exc:
            why_not_marks = f"; {exc}"
    return _register_by_features(page, templates, why_not_marks)


def register_scan(image: np.ndarray, templates: list[Template]) -> tuple[np.ndarray, Registration]:
    """Registers a page as read, grey or in colour (`register_page`): a colour page is registered on its grey, print
    and all, and handed on (upright) with its form's print dropped by colour when the template names one.

    Raises:
        SegmentError: no template matches.
    """
    upright, registration = register_page(as_grey(image), templates)
    colour = registration.template.print_colour
    if image.ndim == 3 and colour:
        upright = _turn_upright(drop_print(image, colour), registration.rotation)[0]
    return upright, registration


def _confirmed(upright: np.ndarray, registration: Registration,
               ink: np.ndarray | None = None) -> tuple[np.ndarray, Registration]:
    """The registration, once `confirm` says the page is that form; else SegmentError naming the template."""
    ok, cover, unexplained = confirm(upright, registration.homography, registration.template, ink)
    if not ok:
        raise SegmentError(f"this page is not form {registration.template.name!r}, the nearest template "
                           f"(registered by {registration.method}, score {registration.score:.2f}): "
                           f"{cover:.0%} of its printed lines are on the page ({MIN_PRINT_COVER:.0%} needed) "
                           f"and the page prints {unexplained} points of lines it does not "
                           f"({MAX_UNEXPLAINED_LINES} allowed); is its template missing?")
    return upright, registration


def _register_by_marks(page: np.ndarray, templates: list[Template]):
    """(the page upright, its registration, the page seen in the winner's coordinates: for `confirm`)."""
    marks, missing = _find_marks(page)
    big = _big_corner(marks, missing)
    upside_down = big == 3
    if upside_down:
        page = cv2.rotate(page, cv2.ROTATE_180)
        marks, missing = _find_marks(page)
    elif big != 0:
        raise SegmentError("page is rotated by 90 degrees or its top-left mark is damaged")
    found = np.float32([[m[0], m[1]] for m in marks])
    best, best_rank, best_ink = None, 0.0, None
    for template in templates:
        expected = _mark_centres(template)
        if abs(_aspect(found) / _aspect(expected) - 1.0) > 0.04:  # letter vs A4 differ by 10%
            continue
        homography = cv2.getPerspectiveTransform(expected, found)
        if missing is not None:
            homography = _refine_by_print(page, homography, template)
        # The page seen in template coordinates at 1 px/pt, compared with the printed layout.
        ink = ink_in_template(page, homography, template)
        layout = float((_layout_signal(ink, template) * _blank(template)).mean())
        # The printed title sits in the same place on every form and differs between forms: the strongest
        # cue, unless a rubber stamp lands on it; then whether the template's own lines are on the page
        # tells the forms apart.
        score = _title_match(ink, template) + 0.5 * layout
        rank = score + guide_cover(ink, template)
        if best is None or rank > best_rank:
            best, best_rank = Registration(template, homography, 180 if upside_down else 0, score), rank
            best_ink = ink
    if best is None or best.score < 0.3:
        raise SegmentError(f"no template matches this page's marks (best score {best.score if best else 0:.2f})")
    return page, best, best_ink


def _register_by_features(page: np.ndarray, templates: list[Template], why_not_marks: str):
    """(the page upright, its registration): the first candidate, most inliers first, that `confirm` takes.

    A candidate with fewer than MIN_INLIERS matching points (a form with little print, scanned at
    150 dpi) is taken only when its print is nearly all on the page.
    """
    matches = [m for m in match_templates(page, templates) if m.homography is not None]
    refusal = None
    for match in matches[:CANDIDATES]:
        if match.inliers < FEW_INLIERS:
            break
        taken = None
        for homography in match.fits():
            rotation = rotation_of(homography, match.template)
            upright, turn = _turn_upright(page, rotation)
            registration = Registration(match.template, turn @ homography, rotation, float(match.inliers),
                                        "features")
            registration = dataclasses.replace(
                registration, homography=line_correction(upright, registration.homography, match.template))
            ok, cover, _ = confirm(upright, registration.homography, match.template)
            if ok and (match.inliers >= MIN_INLIERS or cover >= FEW_INLIERS_COVER):
                if taken is None or cover > taken[0]:
                    taken = (cover, upright, registration)
                if cover >= CLOSE_COVER:
                    break
            elif refusal is None and match.inliers >= MIN_INLIERS:
                refusal = (upright, registration)
        if taken is not None:
            return taken[1], taken[2]
    if refusal is not None:
        return _confirmed(*refusal)  # raises, naming the nearest template and why it is not this page
    best = matches[0] if matches else None
    name = f" ({best.template.name})" if best else ""
    raise SegmentError(f"no template matches this page (best score {best.inliers if best else 0} matching "
                       f"points{name}, {MIN_INLIERS} needed){why_not_marks}")


def _turn_upright(page: np.ndarray, rotation: int) -> tuple[np.ndarray, np.ndarray]:
    """The page turned upright, and the matrix from the scan's pixels to the upright page's."""
    h, w = page.shape[:2]
    if rotation == 180:
        return cv2.rotate(page, cv2.ROTATE_180), np.float64([[-1, 0, w - 1], [0, -1, h - 1], [0, 0, 1]])
    if rotation == 90:   # the form's top is at the scan's right
        return cv2.rotate(page, cv2.ROTATE_90_COUNTERCLOCKWISE), np.float64([[0, 1, 0], [-1, 0, w - 1], [0, 0, 1]])
    if rotation == 270:
        return cv2.rotate(page, cv2.ROTATE_90_CLOCKWISE), np.float64([[0, -1, h - 1], [1, 0, 0], [0, 0, 1]])
    return page, np.eye(3)


def box_through(matrix: np.ndarray, box) -> tuple[int, int, int, int]:
    """Returns the axis-aligned box (x, y, w, h) around rectangle `box` after the homography `matrix`."""
    x, y, w, h = box
    pts = np.float32([[[x, y]], [[x + w, y]], [[x + w, y + h]], [[x, y + h]]])
    moved = cv2.perspectiveTransform(pts, np.asarray(matrix, np.float64)).reshape(-1, 2)
    x0, y0 = np.floor(moved.min(axis=0)).astype(int)
    x1, y1 = np.ceil(moved.max(axis=0)).astype(int)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)
