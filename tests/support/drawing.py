"""Fields drawn the way the corpus prints and fills them, for the segmentation tests.

OpenCV lines and digits by the synthetic writer, at the segmenter's canonical
crop scale (4 px a point).
"""

import cv2
import numpy as np

from corpus.handwriting import WriterStyle
from pipeline.segmentation.guides import remove_guides
from pipeline.templates.model import Field

# A census-style boxed field: 136 px tall at the crop scale (34 pt at 4 px/pt), with margins around it.
BOX = (20, 60, 256, 136)


def boxed(max_length=2, label=""):
    return Field("f", "boxed", (0, 0, 64, 34), min_length=1, max_length=max_length, label=label)


def blank_field(with_box=True, label=""):
    page = np.full((260, 330), 255, np.uint8)
    x, y, w, h = BOX
    if with_box:
        cv2.rectangle(page, (x, y), (x + w, y + h), 150, 4)
    if label:
        cv2.putText(page, label, (x, y - 24), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 60, 3, cv2.LINE_AA)
    return page


def masks(page, spec):
    """(ink strength, cleaned ink mask) of a drawn field, guides removed as the segmenter does."""
    ink = 255 - page
    binary = ((ink > 40) * 255).astype(np.uint8)
    return ink, remove_guides(ink, binary, BOX, spec)


def writer(slant=0.1, width=0.7):
    """A plain stroke writer: first allograph of every digit, no font."""
    return WriterStyle(allograph=(0,) * 10, slant=slant, width=width, pen=0.09, shake=0.01,
                       habit=tuple(np.zeros((64, 2)) for _ in range(10)), font=None, pressure=0.0, darkness=1.0)
