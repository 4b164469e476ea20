"""MNIST-style normalisation of one digit crop.

This is the single normalisation used both to build training data and, in the
pipeline, to prepare crops cut from scanned pages. Keeping it in one place is
what makes the model see the same kind of image in production as in training.

The steps follow the MNIST recipe (LeCun et al.):

1. stretch contrast so paper is 0 and the stroke core is 255 (grey levels kept);
2. fit the ink's bounding box into a 20x20 box, keeping the aspect ratio;
3. place it in a 28x28 image so that its centre of mass is at the centre.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "MNIST_SIZE",
    "MNIST_BOX",
    "INK_THRESHOLD",
    "EmptyCropError",
    "stretch_ink",
    "mnist_normalize",
]

MNIST_SIZE = 28
MNIST_BOX = 20
# After stretching, pixels above this count as ink when finding the bounding box;
# lower grey levels are kept in the image but do not widen the box (scanner haze).
INK_THRESHOLD = 64


class EmptyCropError(ValueError):
    """Raised when a crop holds no ink to normalise."""


def stretch_ink(crop: np.ndarray) -> np.ndarray:
    """Maps a grey crop (ink bright, paper dark) to 0 = paper, 255 = stroke core.

    The paper level is just above the noise of the darker Otsu class and the
    ink level a high percentile of the brighter one, so uneven scanner exposure and pen
    pressure end up on the same scale as the training data.

    Args:
        crop: 2-D uint8 array, ink brighter than paper.

    Returns:
        2-D uint8 array of the same shape.
    """
    if crop.ndim != 2:
        raise ValueError(f"expected a 2-D grey crop, got shape {crop.shape}")
    lo, hi = int(crop.min()), int(crop.max())
    if hi - lo < 24:  # flat: blank paper or a solid blob; nothing to stretch
        if hi < 128:
            return np.zeros_like(crop)
        return np.full_like(crop, 255)
    # Class statistics from the 256-bin histogram: cheaper than indexing pixels.
    otsu, _ = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    otsu = int(otsu)
    hist = np.bincount(crop.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    paper_n = hist[:otsu + 1].sum()
    if paper_n:
        mean = float((hist[:otsu + 1] * levels[:otsu + 1]).sum() / paper_n)
        std = float(np.sqrt((hist[:otsu + 1] * (levels[:otsu + 1] - mean) ** 2).sum() / paper_n))
        # Paper level sits above the paper's own noise so that noise maps to 0,
        # as MNIST's background is exactly 0.
        paper = mean + 2.0 * std
    else:
        paper = float(lo)
    ink_hist = hist[otsu + 1:]
    if ink_hist.sum():
        cumulative = np.cumsum(ink_hist) / ink_hist.sum()
        ink = float(otsu + 1 + np.searchsorted(cumulative, 0.9))
    else:
        ink = float(hi)
    if ink - paper < 1.0:
        ink = paper + 1.0
    lut = np.clip((np.arange(256, dtype=np.float32) - paper) * (255.0 / (ink - paper)), 0, 255)
    return cv2.LUT(crop, lut.astype(np.uint8))


def _ink_bbox(img: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(img > INK_THRESHOLD)
    if ys.size == 0:
        raise EmptyCropError("crop has no ink")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def mnist_normalize(crop: np.ndarray, *, ink_is_dark: bool = False, stretch: bool = True) -> np.ndarray:
    """Normalises one digit crop the way MNIST digits were normalised.

    Args:
        crop: 2-D grey image (uint8, or float in 0..1) holding one digit.
        ink_is_dark: True for crops straight from a scan (dark ink on white
            paper); they are inverted first.
        stretch: Stretch contrast first (see `stretch_ink`). Off only for
            images that are already 0 = paper, 255 = ink.

    Returns:
        28x28 uint8 array, 0 = paper, 255 = ink.

    Raises:
        EmptyCropError: the crop holds no ink.
    """
    img = np.asarray(crop)
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img.astype(np.float32) * (255.0 if img.max() <= 1.0 else 1.0)), 0, 255)
        img = img.astype(np.uint8)
    if ink_is_dark:
        img = 255 - img
    if stretch:
        img = stretch_ink(img)
    x0, y0, x1, y1 = _ink_bbox(img)
    digit = img[y0:y1, x0:x1]
    h, w = digit.shape
    scale = MNIST_BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    digit = cv2.resize(digit, (new_w, new_h), interpolation=interp)

    # Centre of mass to the middle of the 28x28 frame, as MNIST did; sub-pixel
    # shifts are resampled rather than rounded so thin strokes keep their weight.
    moments = cv2.moments(digit, binaryImage=False)
    if moments["m00"] > 0:
        cx, cy = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
    else:
        cx, cy = new_w / 2.0, new_h / 2.0
    shift = np.float32([[1, 0, MNIST_SIZE / 2.0 - cx - 0.5], [0, 1, MNIST_SIZE / 2.0 - cy - 0.5]])
    return cv2.warpAffine(
        digit, shift, (MNIST_SIZE, MNIST_SIZE), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
