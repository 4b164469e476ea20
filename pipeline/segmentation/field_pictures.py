"""Field pictures: a small grey picture of each field, cut with it, so that a person can check what was read.

Segmentation takes each field's picture as it cuts it (upright, the field with
some margin, at about 144 dpi) and the boxes of its digits in that picture. The
ones kept (`--keep-crops`) are whitened and stored as PNG by assembly
(`pipeline.assembly.crops`). ("Crop" is the model's 28x28 input; this is the field.)
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from pipeline.types import FieldPicture

__all__ = ["field_picture", "clean_paper", "encode_png", "TEMPLATE_FIELD_SCALE", "LINE_HEIGHT_PX"]

# Pixels of the review picture per pixel of its source; segment's canonical crops are 4 px/pt, so 2 px/pt.
TEMPLATE_FIELD_SCALE = 0.5
# No-template lines are shrunk until their writing is about this tall.
LINE_HEIGHT_PX = 48
GREY_LEVELS = 16  # what a person needs to read ink on paper; fewer levels keep the PNG to a few kB


def field_picture(grey: np.ndarray, scale: float) -> FieldPicture:
    """Makes the picture of a field from its grey cut (shrunk now: a page carries one per field)."""
    scale = min(scale, 1.0)
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return FieldPicture(grey, scale)


def clean_paper(grey: np.ndarray) -> np.ndarray:
    """Turns paper pure white and ink to GREY_LEVELS levels: scanner noise and shading are most of a grey PNG's bytes.

    The paper's own level is taken locally (a closing wider than any stroke, on a quarter-size copy, so about
    60 px wide), so a shaded scan whitens evenly and a thick marker stroke stays whole.
    """
    if min(grey.shape[:2]) < 8:
        return grey
    small = cv2.resize(grey, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    small = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)),
                             borderType=cv2.BORDER_REPLICATE)
    paper = cv2.resize(small, (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_LINEAR)
    return _whitening_table()[(paper.astype(np.uint16) << 8) | grey]


@functools.lru_cache(maxsize=1)
def _whitening_table() -> np.ndarray:
    """uint8 [256 * 256]: the whitened level of a pixel, at index paper level * 256 + pixel level.

    Both levels are bytes, so one lookup replaces four float operations over the picture (5x faster).
    """
    grey = np.arange(256, dtype=np.float32)[None, :]
    paper = np.maximum(np.arange(256, dtype=np.float32)[:, None] - 12.0, 1.0)
    flat = np.clip(grey * (255.0 / paper), 0, 255)
    step = 256 // GREY_LEVELS
    return ((flat // step) * (255 // (GREY_LEVELS - 1))).clip(0, 255).astype(np.uint8).ravel()


def encode_png(image: np.ndarray) -> bytes:
    # zlib level 6: on 600 flagged fields' pictures 0.99 ms and 3.1 kB each; level 9 took 4.7 ms for 2.9 kB,
    # 7% of a worker's time.
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("could not encode the field picture as PNG")
    return buf.tobytes()
