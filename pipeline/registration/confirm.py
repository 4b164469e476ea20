"""Confirm a registration: is the page that form where the fit puts it?

A registration stands once the page carries the template's print where the fit puts it: most of the lines the
form prints must carry ink on the page, and the page may print few long lines the form does not. Without
that, a page of a form that has no template (its template file removed, say) was read with the nearest
other one, inventing values. On the development corpora right registrations leave at most 705 points of
unexplained lines and cover 99.7% of the print (60% on a faintly printed own-forms scan); a form read as another
of the same shape leaves 1,699 or more, or covers 18% or less.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from pipeline.templates.model import Template, reference_image, render_blank

__all__ = ["MIN_PRINT_COVER", "MAX_UNEXPLAINED_LINES", "LONG_LINE_PT", "confirm", "printed_ink", "clear_marks",
           "guide_cover", "ink_in_template", "thin_print"]

MIN_PRINT_COVER = 0.35         # share of the template's printed lines with ink on the page (see above)
MAX_UNEXPLAINED_LINES = 1200   # points of long printed lines on the page that the template does not print
LONG_LINE_PT = 40              # a stroke this long and straight is print, not handwriting


@functools.lru_cache(maxsize=16)
def printed_ink(template: Template) -> np.ndarray:
    """Returns the template's printed ink (bright) at 1 px/pt, rendered once; read-only, shared with registration's
    cues."""
    ink = 255.0 - render_blank(template, 72, line_grey=100).astype(np.float32)
    ink.setflags(write=False)
    return ink


def clear_marks(image: np.ndarray, template: Template, value) -> None:
    """Sets the registration marks (and 4 points around them) of a 1 px/pt image to `value`, in place."""
    for x, y, s in template.registration_marks:
        image[max(0, int(y) - 4):int(y + s) + 4, max(0, int(x) - 4):int(x + s) + 4] = value


@functools.lru_cache(maxsize=16)
def _guide_mask(template: Template) -> np.ndarray:
    """Where the template prints its boxes and lines at 1 px/pt, title and marks left out."""
    mask = printed_ink(template) > 50
    x, y, w, h = (int(v) for v in template.title_box)
    mask[y - 8:y + h + 8, x - 8:x + w + 8] = False
    clear_marks(mask, template, False)
    return mask


def thin_print(ink: np.ndarray) -> np.ndarray:
    """Returns where ink (bright) is thin print, 1 there and 0 elsewhere: a top-hat, since a scan's shaded paper
    is "ink" by level alone and would pass for print everywhere."""
    return (cv2.morphologyEx(ink, cv2.MORPH_TOPHAT, np.ones((9, 9), np.uint8)) > 25).astype(np.uint8)


def guide_cover(ink: np.ndarray, template: Template) -> float:
    """Returns the share of the template's printed lines that have ink on the page within a point (1.0: no lines)."""
    mask = _guide_mask(template)
    if not mask.any():
        return 1.0
    near = cv2.dilate(thin_print(ink), np.ones((3, 3), np.uint8))
    return float(near[mask].mean())


@functools.lru_cache(maxsize=32)
def _form_print(template: Template) -> np.ndarray:
    """Where the form prints anything, at 1 px/pt, widened by 4 points: its drawing (title, marks, fields'
    boxes) and, when it has one, its blank page (a form of your own: letterhead, tables, labels)."""
    printed = printed_ink(template) > 50
    if template.reference_png:
        w_pt, h_pt = template.size_pt
        ink = 255.0 - cv2.resize(reference_image(template), (int(w_pt), int(h_pt)),
                                 interpolation=cv2.INTER_AREA).astype(np.float32)
        # Thin print by the measure `_long_lines` takes on the page: rulings printed in light grey are
        # far below a level threshold on the blank, yet count as lines on the filled page.
        printed |= (ink > 50) | (thin_print(ink) > 0)
    mask = cv2.dilate(printed.astype(np.uint8), np.ones((9, 9), np.uint8))
    mask.setflags(write=False)
    return mask


def _long_lines(ink: np.ndarray) -> np.ndarray:
    """Thin, straight horizontal and vertical strokes of at least LONG_LINE_PT (ink at 1 px/pt): rulings."""
    thin = thin_print(ink)
    return (cv2.morphologyEx(thin, cv2.MORPH_OPEN, np.ones((1, LONG_LINE_PT), np.uint8))
            | cv2.morphologyEx(thin, cv2.MORPH_OPEN, np.ones((LONG_LINE_PT, 1), np.uint8)))


def ink_in_template(page: np.ndarray, homography: np.ndarray, template: Template) -> np.ndarray:
    """Returns the page seen in template coordinates at 1 px/pt, as ink (bright on dark)."""
    w_pt, h_pt = template.size_pt
    seen = cv2.warpPerspective(page, np.asarray(homography, np.float64), (int(w_pt), int(h_pt)),
                               flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderValue=255)
    return 255.0 - seen.astype(np.float32)


def confirm(page: np.ndarray, homography: np.ndarray, template: Template,
            ink: np.ndarray | None = None) -> tuple[bool, float, int]:
    """Returns whether the page is this form where `homography` (template points -> page pixels) puts it.

    Args:
        ink: the page already seen in template coordinates (`_ink_in_template`), when the caller has it.

    Returns:
        (confirmed, share of the template's printed lines with ink on the page, points of long lines the
        page prints where the template prints nothing).
    """
    ink = ink_in_template(page, homography, template) if ink is None else ink
    cover = guide_cover(ink, template)
    lines = _long_lines(ink)
    lines[_form_print(template) > 0] = 0
    margin = 20  # the scan's own edges and shadows
    unexplained = int(lines[margin:-margin, margin:-margin].sum())
    return cover >= MIN_PRINT_COVER and unexplained <= MAX_UNEXPLAINED_LINES, cover, unexplained
