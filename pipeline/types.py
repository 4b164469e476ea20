"""The types the stages hand each other: cuts of a page, and how it was registered.

Plain data, no behaviour: segmentation fills them, inference and assembly read them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.templates.model import Field, Template

__all__ = ["SegmentError", "FieldPicture", "DigitCut", "AlternativeCut", "FieldCut", "PageCut", "Registration"]


class SegmentError(ValueError):
    """A page that cannot be registered or segmented."""


@dataclasses.dataclass
class FieldPicture:
    """A field as a person sees it: dark ink on white, upright.

    Its digits' boxes are the digits' own `field_box` (in the field cut it was
    shrunk from) times `scale`: they follow the digits through strike-out's renumbering.
    """

    image: np.ndarray   # uint8 [h, w], grey as scanned; whitened only when kept (`crop_rows`)
    scale: float        # pixels of `image` per pixel of the field cut


@dataclasses.dataclass
class DigitCut:
    """One digit as cut from the page."""

    position: int
    image: np.ndarray                 # grey crop, ink bright, background 0
    bbox: tuple[int, int, int, int]   # on the page as scanned
    crop: np.ndarray | None = None    # MNIST-normalised uint8 [28, 28]; None when the cut holds no ink
    field_box: tuple[int, int, int, int] | None = None  # in the field's cut, which its review picture shrinks


@dataclasses.dataclass
class AlternativeCut:
    """Another way to cut part of a field: `digits` in place of the field's digits [first, first + count).

    Where shape alone cannot tell, segmentation offers both: a blob it cut into touching
    digits is offered whole as well. The model reads both, and assembly keeps the likelier
    (`pipeline.assembly.assemble.settle_alternatives`).
    """

    first: int
    count: int
    digits: list[DigitCut]


@dataclasses.dataclass
class FieldCut:
    """One field of a page: where it is and its digits, in reading order."""

    template: str
    field: str
    spec: Field | None
    bbox: tuple[int, int, int, int]   # the field's box on the page as scanned
    digits: list[DigitCut]
    struck: int = 0                   # struck-through digits left out of `digits`
    review: FieldPicture | None = None  # the field's picture for a person (`--keep-crops`)
    alternatives: list[AlternativeCut] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class PageCut:
    """A page's fields and their normalised digit crops: one element from segmentation to assembly.

    A page travels the graph whole, so its digits are read together and its
    rows are written together: no join between stages, no page half written.
    """

    source_uri: str
    page: int                         # 1-based
    fields: list[FieldCut]

    def digits_with_ink(self) -> list[DigitCut]:
        """The digits the model reads, in field and position order (blank cuts have no crop)."""
        return [d for f in self.fields for d in f.digits if d.crop is not None]

    def alternatives_with_ink(self) -> list[AlternativeCut]:
        """The other cuts the model also reads (those whose every digit has ink), in field order."""
        return [a for f in self.fields for a in f.alternatives if all(d.crop is not None for d in a.digits)]

    def crop_count(self) -> int:
        """len(crops()), without stacking them."""
        return len(self.digits_with_ink()) + sum(len(a.digits) for a in self.alternatives_with_ink())

    def crops(self) -> np.ndarray:
        """uint8 [N, 28, 28]: the normalised crops of `digits_with_ink()`, then of `alternatives_with_ink()`."""
        crops = [d.crop for d in self.digits_with_ink()]
        crops += [d.crop for a in self.alternatives_with_ink() for d in a.digits]
        return np.stack(crops) if crops else np.zeros((0, 28, 28), np.uint8)


@dataclasses.dataclass
class Registration:
    """Which template a page is, and where its points lie on the (upright) page."""

    template: Template
    homography: np.ndarray            # template points -> page pixels (of the upright page)
    rotation: int                     # degrees the scan was turned clockwise from upright: 0, 90, 180, 270
    score: float
    method: str = "marks"             # marks | features

    @property
    def upside_down(self) -> bool:
        return self.rotation == 180
