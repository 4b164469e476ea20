"""Segment stage: a registered page becomes fields, and each field digit crops.

Each field of the page's template is warped to a canonical crop of
`CROP_SCALE` pixels per point (with margins for writing that strays), its
printed guides are removed (`pipeline.segmentation.guides`), it is split into digits
(`pipeline.segmentation.split`), each digit is MNIST-normalised (`pipeline.segmentation.normalize`) and
struck-through digits are left out (`pipeline.segmentation.strikeout`).

Every function here works on numpy arrays and knows nothing of Beam or gRPC.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.ink import ink_strength
from pipeline.registration.register import box_through
from pipeline.segmentation.field_pictures import TEMPLATE_FIELD_SCALE, field_picture
from pipeline.segmentation.guides import fit_guides, ink_mask, remove_guides
from pipeline.segmentation.normalize import EmptyCropError, mnist_normalize
from pipeline.segmentation.split import split_digits_and_alternatives
from pipeline.segmentation.strikeout import drop_struck
from pipeline.templates.model import Field, Template, reference_image
from pipeline.types import AlternativeCut, DigitCut, FieldCut, Registration

__all__ = ["CROP_SCALE", "box_as_scanned", "cut_fields", "field_images", "digit_image", "normalise_cuts",
           "leave_out_struck"]


CROP_SCALE = 4.0  # canonical field crops: pixels per point (~288 dpi)
SNAP_REACH_PT = 4.0  # how far a field's printed lines are looked for around where registration puts them


def digit_image(ink: np.ndarray, bbox, mask: np.ndarray) -> np.ndarray:
    """Returns the ink of one digit region (its mask grown by 2 px, so anti-aliased edges stay), background 0."""
    x, y, w, h = bbox
    keep = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return ink[y:y + h, x:x + w] * keep


def normalise_cuts(digits: list[DigitCut]) -> list[DigitCut]:
    """Sets each cut's MNIST-normalised `crop`, once: the strike detector and the model both read it."""
    for d in digits:
        try:
            d.crop = mnist_normalize(d.image)
        except EmptyCropError:
            d.crop = None
    return digits


def box_as_scanned(box, matrix, page_shape, rotation: int) -> tuple[int, int, int, int]:
    """Returns where rectangle `box` lands, through `matrix` onto the upright page of `page_shape`, on the page as
    it was scanned (the upright page turned back by `rotation`)."""
    x, y, w, h = box_through(matrix, box)
    H, W = page_shape  # of the upright page
    if rotation == 180:
        x, y = W - x - w, H - y - h
    elif rotation == 90:    # the scan is the upright page turned clockwise
        x, y, w, h = H - y - h, x, h, w
    elif rotation == 270:
        x, y, w, h = y, W - x - w, h, w
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
    margin = min(1.2 * fh + 0.08 * fw, template.size_pt[0] - 12.0 - fx - fw)
    for other in template.fields:
        ox, oy, ow, oh = other.box
        # Table cells share a wall: the next one starts where this one ends, give or take rounding.
        if other is not spec and ox >= fx + fw - 2.0 and oy < fy + fh and fy < oy + oh:
            margin = min(margin, max(0.0, 0.5 * (ox - fx - fw)))
    return margin


def _field_crop(page: np.ndarray, registration: Registration, spec: Field):
    """One field of the registered page at CROP_SCALE, with margins for writing that strays.

    Returns (grey crop, ink, cleaned binary, field box in the crop, crop -> page homography).
    """
    s = CROP_SCALE
    fx, fy, fw, fh = spec.box
    mx0, my = 0.15 * fh, 0.45 * fh
    mx1 = _right_margin(registration.template, spec)
    ox, oy = fx - mx0, fy - my
    cw, ch = int((fw + mx0 + mx1) * s), int((fh + 2 * my) * s)
    crop_to_tpl = np.float64([[1 / s, 0, ox], [0, 1 / s, oy], [0, 0, 1]])
    field_px = (mx0 * s, my * s, fw * s, fh * s)
    crop, ink, crop_to_page = _warp_field(page, registration.homography @ crop_to_tpl, (cw, ch))
    fit = fit_guides(ink, field_px, spec, reach=int(SNAP_REACH_PT * s))
    if fit.dx or fit.dy:  # the field's lines are elsewhere on the page than registration says: cut it there
        shift = np.float64([[1, 0, fit.dx], [0, 1, fit.dy], [0, 0, 1]])
        crop, ink, crop_to_page = _warp_field(page, crop_to_page @ shift, (cw, ch))
    if registration.template.reference_png:
        _drop_out_print(ink, registration.template, crop_to_tpl, field_px)
    return crop, ink, remove_guides(ink, ink_mask(ink), field_px, spec, fit.gap), field_px, crop_to_page


def _warp_field(page: np.ndarray, crop_to_page: np.ndarray, size: tuple[int, int]):
    """(grey crop, its ink, crop -> page homography) of the page through `crop_to_page`."""
    crop = cv2.warpPerspective(page, crop_to_page, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderValue=255)
    return crop, ink_strength(crop), crop_to_page


def _drop_out_print(ink: np.ndarray, template: Template, crop_to_tpl: np.ndarray, field_px) -> None:
    """Clears, in place, the form's own print (labels, neighbouring boxes) from a field crop's margins.

    A form of the user's own prints its labels right under or above its boxes, inside the margin
    a crop keeps for writing that strays; its blank page says where that print is. The field's
    own guides, inside its box, are left to `remove_guides`, which mends the strokes crossing them.
    """
    k = template.reference_dpi / 72.0
    to_reference = np.diag([k, k, 1.0]) @ crop_to_tpl
    printed = cv2.warpPerspective(reference_image(template), to_reference, (ink.shape[1], ink.shape[0]),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=255) < 170
    printed = cv2.dilate(printed.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    x, y, w, h = (int(round(v)) for v in field_px)
    pad = int(CROP_SCALE * 1.5)
    printed[max(0, y + pad):y + h - pad, max(0, x + pad):x + w - pad] = False
    ink[printed] = 0


def cut_fields(page: np.ndarray, registration: Registration, drop_struck_digits: bool = True,
               review: bool = True) -> list[FieldCut]:
    """Cuts every field of the registered (upright) page into digit crops.

    Args:
        page: the upright page from `register_page`.
        registration: its registration.
        drop_struck_digits: leave out struck-through digits in fields written
            freely (comb cells hold one digit each, so a correction there is an
            overwrite, not an extra digit). Off only to cut training data.
        review: keep each field's picture for a person (`FieldCut.review`).
    """
    out = []
    for spec in registration.template.fields:
        grey, ink, clean, field_px, crop_to_page = _field_crop(page, registration, spec)
        regions, alternatives = split_digits_and_alternatives(clean, field_px, spec)

        def digit_cut(pos, bbox, mask):
            return DigitCut(pos, digit_image(ink, bbox, mask),
                            box_as_scanned(bbox, crop_to_page, page.shape, registration.rotation),
                            field_box=tuple(int(v) for v in bbox))

        digits = normalise_cuts([digit_cut(pos, bbox, mask) for pos, (bbox, mask) in enumerate(regions)])
        out.append(FieldCut(registration.template.name, spec.name, spec,
                            box_as_scanned(field_px, crop_to_page, page.shape, registration.rotation), digits,
                            review=field_picture(grey, TEMPLATE_FIELD_SCALE) if review else None,
                            alternatives=[AlternativeCut(first, count, normalise_cuts(
                                [digit_cut(first + k, *region) for k, region in enumerate(others)]))
                                for first, count, others in alternatives]))
    if drop_struck_digits:
        free = [cut for cut in out if cut.spec.kind != "comb"]
        leave_out_struck(free, [(cut.spec.min_length, cut.spec.max_length) for cut in free])
    return out


def leave_out_struck(cuts: list[FieldCut], lengths: list[tuple[int, int]]) -> None:
    """Leaves struck-through digits out of each cut, in place, within its (fewest, most) digits."""
    for cut, (digits, struck) in zip(cuts, drop_struck([(c.digits, *n) for c, n in zip(cuts, lengths)])):
        cut.digits, cut.struck = digits, struck
        if struck:
            cut.alternatives = []  # its digits' positions moved; the detector's call stands


def field_images(page: np.ndarray, registration: Registration) -> list[tuple[Field, np.ndarray]]:
    """Returns every field of the registered page as a clean grey image (dark ink on white, guides removed).

    What a whole-field reader such as an OCR engine gets: the same registration
    and line removal as `cut_fields`, without the split into digits.
    """
    out = []
    for spec in registration.template.fields:
        _, ink, clean, _, _ = _field_crop(page, registration, spec)
        strokes = np.where(clean > 0, ink, 0).astype(np.float32)
        full = float(np.percentile(strokes[clean > 0], 95)) if clean.any() else 1.0
        out.append((spec, (255 - np.clip(strokes * (255 / max(full, 1.0)), 0, 255)).astype(np.uint8)))
    return out
