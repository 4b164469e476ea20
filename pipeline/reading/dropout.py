"""Dropout colour: a form printed in a colour the scan can take out, so only the handwriting is left.

Forms meant for machine reading are printed in a "dropout" colour (red, green or
blue boxes and labels) and filled in black or blue ink. A colour scan keeps both;
in the colour channel where the print is lightest, the print is near paper and
ink is dark, which is what a scanner's dropout lamp does in hardware. Where ink
crosses a printed line, the pixel is ink's and stays: strokes on the lines stay whole.

The template notes its print colour (`Template.print_colour`, "#rrggbb" as the
print shows on white paper; `template propose` measures it on a colour blank).
Registration matches the page's grey, print included; the fields are cut from
the page with the print dropped.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["is_colour", "as_grey", "print_colour_of", "drop_print", "parse_colour", "MIN_PRINT_CHROMA"]

# A pixel of a form's print is coloured when its channels differ by this much; black print's JPEG noise stays below.
MIN_PRINT_CHROMA = 48
# A page is kept in colour when this share of its pixels differ by MIN_PAGE_CHROMA: thin coloured lines, their
# colour halved by JPEG's colour subsampling, are ~0.5% of a form at 32 (a grey scan saved as RGB: none).
MIN_PAGE_CHROMA = 32
MIN_COLOUR_SHARE = 0.002
# Dropping the print lifts its channel so that the print reaches paper's level; a print darker than this
# share of paper in every channel (a navy on a blue form) cannot be dropped without losing the ink too.
MIN_PRINT_LEVEL = 0.45
PAPER_WINDOW = 7  # quarter-size pixels: ~28 px, wider than a pen stroke at 300 dpi


def _chroma(bgr: np.ndarray) -> np.ndarray:
    return cv2.subtract(bgr.max(axis=2), bgr.min(axis=2))


def is_colour(bgr: np.ndarray) -> bool:
    """Returns True when a 3-channel page holds colour worth keeping (not a grey scan saved as RGB)."""
    sample = bgr[::4, ::4]
    return float((_chroma(sample) > MIN_PAGE_CHROMA).mean()) >= MIN_COLOUR_SHARE


def as_grey(image: np.ndarray) -> np.ndarray:
    """Returns the page in grey, print and all: a colour (BGR) page's darkest channel, a grey page as it is.

    The darkest channel, not the luminance: a light blue or green print is as dark as black print in it,
    so registration and `template propose` see the lines of a dropout form as clearly as any other."""
    return cv2.min(cv2.min(image[:, :, 0], image[:, :, 1]), image[:, :, 2]) if image.ndim == 3 else image


def parse_colour(text: str) -> tuple[int, int, int]:
    """Parses '#rrggbb' into (r, g, b).

    Raises:
        ValueError: not six hex digits after '#'.
    """
    if not (isinstance(text, str) and len(text) == 7 and text[0] == "#"):
        raise ValueError(f"print colour {text!r} is not '#rrggbb'")
    try:
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
    except ValueError:
        raise ValueError(f"print colour {text!r} is not '#rrggbb'") from None


def print_colour_of(bgr: np.ndarray) -> str | None:
    """Returns the colour a blank form is printed in, as '#rrggbb' on white paper; None when its print is black or grey.

    The print is every pixel clearly darker than the paper; its colour is the median of
    its coloured pixels, when they are at least a third of it (black labels beside
    red boxes still make a red form; a black form with a red logo does not).
    """
    grey = as_grey(bgr)
    paper = np.percentile(grey[::2, ::2], 90)
    printed = grey < 0.8 * paper
    if printed.sum() < 100:
        return None
    pixels = bgr[printed]
    coloured = pixels[_chroma(pixels[None])[0] > MIN_PRINT_CHROMA]
    if len(coloured) < len(pixels) / 3:
        return None
    paper_bgr = np.percentile(bgr[::2, ::2].reshape(-1, 3), 90, axis=0)
    b, g, r = np.clip(np.median(coloured, axis=0) / np.maximum(paper_bgr, 1) * 255, 0, 255).round().astype(int)
    if max(r, g, b) < MIN_PRINT_LEVEL * 255:
        return None
    return f"#{r:02x}{g:02x}{b:02x}"


def _paper_level(channel: np.ndarray) -> np.ndarray:
    """The paper's level under every pixel of one channel: a max filter wider than a pen stroke, on a
    quarter-size copy (the light over a page changes slowly), smoothed and brought back to full size."""
    h, w = channel.shape
    small = cv2.resize(channel, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(cv2.dilate(small, np.ones((PAPER_WINDOW, PAPER_WINDOW), np.uint8)), (0, 0), 2.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def drop_print(bgr: np.ndarray, print_colour: str) -> np.ndarray:
    """Returns the page in grey with the form's print taken out.

    Takes the channel where the print is lightest and divides it by the paper's level
    and by the print's share of it, so print and paper both come out white under any
    light; ink, darker than the print in that channel, stays dark.
    """
    r, g, b = parse_colour(print_colour)
    channel, level = max(enumerate((b, g, r)), key=lambda item: item[1])
    plane = bgr[:, :, channel]
    paper = _paper_level(plane).astype(np.float32) * (max(level, MIN_PRINT_LEVEL * 255) / 255.0)
    return cv2.divide(plane.astype(np.float32), np.maximum(paper, 1.0), scale=255.0, dtype=cv2.CV_8U)
