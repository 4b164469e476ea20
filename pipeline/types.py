"""The types the stages hand each other: cuts of a page, and how it was registered.

Plain data, no behaviour: segmentation fills them, inference and assembly read them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.templates.model import Field, Template

__all__ = ["SegmentError", "FieldPicture", "DigitRead", "DigitCut", "AlternativeCut", "FieldCut", "PageCut",
           "Registration"]


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


@dataclasses.dataclass(frozen=True)
class DigitRead:
    """The model's answer for one digit crop."""

    probabilities: np.ndarray         # float32 [10]
    model_name: str
    model_version: int


@dataclasses.dataclass
class DigitCut:
    """One digit as cut from the page, and once the model has read its crop, that reading."""

    position: int
    image: np.ndarray                 # grey crop, ink bright, background 0
    bbox: tuple[int, int, int, int]   # on the page as scanned
    crop: np.ndarray | None = None    # MNIST-normalised uint8 [28, 28]; None when the cut holds no ink
    field_box: tuple[int, int, int, int] | None = None  # in the field's cut, which its review picture shrinks
    read: DigitRead | None = None     # set by `PageCut.read_by`, after inference


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
        """Returns the digits the model reads, in field and position order (blank cuts have no crop)."""
        return [d for f in self.fields for d in f.digits if d.crop is not None]

    def alternatives_with_ink(self) -> list[AlternativeCut]:
        """Returns the other cuts the model also reads (those whose every digit has ink), in field order."""
        return [a for f in self.fields for a in f.alternatives if all(d.crop is not None for d in a.digits)]

    def crop_count(self) -> int:
        """Counts the crops the model reads (`len(crops())`) without stacking them."""
        return len(self.digits_with_ink()) + sum(len(a.digits) for a in self.alternatives_with_ink())

    def _read_in_order(self) -> list[DigitCut]:
        """The digits the model reads, in the one order `crops` sends them and `read_by` takes the answers."""
        return self.digits_with_ink() + [d for a in self.alternatives_with_ink() for d in a.digits]

    def crops(self) -> np.ndarray:
        """Stacks the crops the model reads: uint8 [N, 28, 28], the normalised crops of `digits_with_ink()`, then of `alternatives_with_ink()`."""
        crops = [d.crop for d in self._read_in_order()]
        return np.stack(crops) if crops else np.zeros((0, 28, 28), np.uint8)

    def read_by(self, probabilities: np.ndarray, model_name: str, model_versions: list[int]) -> "PageCut":
        """Returns the page with each digit carrying the model's answer for its crop (row i for `crops()[i]`)."""
        order = self._read_in_order()
        if len(probabilities) != len(order) or len(model_versions) != len(order):
            raise ValueError(f"{len(probabilities)} answers for {len(order)} crops of {self.source_uri} "
                             f"page {self.page}")
        read = {id(d): DigitRead(p, model_name, v) for d, p, v in zip(order, probabilities, model_versions)}

        def with_read(digits: list[DigitCut]) -> list[DigitCut]:
            return [dataclasses.replace(d, read=read[id(d)]) if id(d) in read else d for d in digits]

        fields = [dataclasses.replace(f, digits=with_read(f.digits), alternatives=[
            dataclasses.replace(a, digits=with_read(a.digits)) for a in f.alternatives]) for f in self.fields]
        return dataclasses.replace(self, fields=fields)


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
