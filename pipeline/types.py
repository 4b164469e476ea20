"""The types the stages hand each other: cuts of a page, and how it was registered.

Plain data, no behaviour: segmentation fills them, inference and assembly read them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.templates import Field, Template

__all__ = ["SegmentError", "DigitCut", "FieldCut", "Registration"]


class SegmentError(ValueError):
    """A page that cannot be registered or segmented."""


@dataclasses.dataclass
class DigitCut:
    """One digit as cut from the page."""

    position: int
    image: np.ndarray                 # grey crop, ink bright, background 0
    bbox: tuple[int, int, int, int]   # on the page as scanned
    crop: np.ndarray | None = None    # MNIST-normalised uint8 [28, 28]; None when the cut holds no ink


@dataclasses.dataclass
class FieldCut:
    """One field of a page: where it is and its digits, in reading order."""

    template: str
    field: str
    spec: Field | None
    bbox: tuple[int, int, int, int]   # the field's box on the page as scanned
    digits: list[DigitCut]
    struck: int = 0                   # struck-through digits left out of `digits`


@dataclasses.dataclass
class Registration:
    """Which template a page is, and where its points lie on the (upright) page."""

    template: Template
    homography: np.ndarray            # template points -> page pixels (of the upright page)
    upside_down: bool
    score: float
