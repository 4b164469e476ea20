"""Ink strength: a grey picture's ink as bright on black, the local paper level taken out.

Shared by registration (the page's print) and segmentation (a field's writing).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["PAPER_WINDOW", "ink_strength"]


# The paper level is the brightest grey within this window (crop pixels): it must be wider than
# the thickest marker stroke, or the stroke's middle passes for paper and the digit goes hollow.
PAPER_WINDOW = 61


def ink_strength(crop: np.ndarray, paper_blur: float = 8.0) -> np.ndarray:
    """Maps a grey crop (dark ink) to its ink strength (bright ink), the local paper level taken out.

    `paper_blur` is the sigma, in crop pixels, of the blur that smooths the paper level.
    """
    paper = cv2.dilate(crop, cv2.getStructuringElement(cv2.MORPH_RECT, (PAPER_WINDOW, PAPER_WINDOW)))
    # The paper level is smooth: blur it at a quarter of the size (a sigma-8 blur at full size
    # was a fifth of all segmentation time).
    h, w = paper.shape
    small = cv2.resize(paper, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    paper = cv2.resize(cv2.GaussianBlur(small, (0, 0), paper_blur / 4), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(paper, crop)
