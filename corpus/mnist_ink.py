"""Real handwriting on forms: MNIST digits written into the fields by one "writer" per document.

MNIST's digits were written by some 500 people; here each is taken as one
handwritten glyph. A writer is what stays the same across one document: a
scale, a slant, a pen weight and an ink darkness applied to every glyph drawn
for it. The glyphs come from one MNIST split (`validation` for development
corpora, `test` for reported figures, `train` for training crops), so a
corpus says which real digits it holds.

The form filler (`corpus.forms`) draws a glyph with `writer.ink(digit, rng)`
from either kind of writer: this one or the synthetic `WriterStyle`.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np

from corpus.mnist import mnist_splits

__all__ = ["MnistWriter", "draw_mnist_writer", "mnist_pool", "UPSCALE"]

UPSCALE = 4  # an MNIST glyph (28 x 28) is drawn at 112 x 112: a pen's weight and a slant have room there


@functools.lru_cache(maxsize=4)
def mnist_pool(path: str, split: str) -> dict[int, np.ndarray]:
    """The images of one MNIST split by digit: {digit: uint8 [N, 28, 28]} (read once per process)."""
    images, labels = mnist_splits(path)[split]
    return {d: np.ascontiguousarray(images[labels == d]) for d in range(10)}


@dataclasses.dataclass(frozen=True, eq=False)
class MnistWriter:
    """One document's hand: real MNIST glyphs, all drawn at one slant, width, pen weight and darkness."""

    pool: dict[int, np.ndarray]   # digit -> MNIST images of one split
    slant: float                  # horizontal shear; positive leans right
    width: float                  # horizontal scale of every glyph
    weight: int                   # pen weight: pixels the strokes grow (or, negative, thin) at 4x
    darkness: float               # ink darkness 0..1 (pencil to marker)
    pen: float                    # pen width relative to glyph height (for strokes drawn with it: cross-outs)

    def ink(self, digit: int, rng: np.random.Generator) -> np.ndarray:
        """One of this writer's glyphs of `digit`, ink bright on 0."""
        images = self.pool[digit]
        glyph = images[int(rng.integers(len(images)))]
        size = 28 * UPSCALE
        big = cv2.resize(glyph, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        # MNIST's anti-aliased 28 x 28 strokes, enlarged, have soft flanks; a pen's are steeper.
        big = np.clip((big - 40.0) * 1.5, 0, 255).astype(np.uint8)
        if self.weight:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(self.weight) + 1,) * 2)
            big = cv2.dilate(big, kernel) if self.weight > 0 else cv2.erode(big, kernel)
        # x' = width * x - slant * y + shift: the top leans right of the bottom for a positive slant.
        shear = np.float32([[self.width, -self.slant, max(self.slant, 0.0) * size], [0, 1, 0]])
        out_width = int(np.ceil((self.width + abs(self.slant)) * size))
        return cv2.warpAffine(big, shear, (out_width, size), flags=cv2.INTER_LINEAR)


def draw_mnist_writer(rng: np.random.Generator, pool: dict[int, np.ndarray]) -> MnistWriter:
    """Draws one document's writer over `pool`'s glyphs."""
    return MnistWriter(pool=pool, slant=float(rng.normal(0.0, 0.12)), width=float(rng.uniform(0.85, 1.15)),
                       weight=int(rng.choice([-1, 0, 0, 1, 2])), darkness=float(rng.uniform(0.55, 1.0)),
                       pen=float(rng.uniform(0.05, 0.11)))
