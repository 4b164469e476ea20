"""Guide removal: printed box lines, comb ticks and underlines go; strokes along and across them stay."""

import cv2
import numpy as np

from corpus.filling import glyph, stamp_ink
from pipeline.segmentation.guides import remove_guides
from pipeline.segmentation.split import split_digits
from pipeline.templates.model import Field
from support.drawing import BOX, blank_field, boxed, masks, writer


def test_guide_removal_keeps_a_bar_that_runs_along_the_box_line():
    page = blank_field()
    x, y, w, h = BOX
    # The top bar of a 7 written high in the box, just under the box's top line, and its stem.
    cv2.line(page, (x + 40, y + 9), (x + 110, y + 9), 20, 7)
    cv2.line(page, (x + 110, y + 9), (x + 70, y + 120), 20, 7)
    _, clean = masks(page, boxed())
    assert clean[y + 9, x + 45:x + 105].min() == 255, "the 7's bar went with the box line"
    assert clean[y - 1:y + 2, x + 150:x + w - 10].max() == 0, "the box's top line is still there"
    assert clean[y + h - 1:y + h + 2, x + 10:x + w - 10].max() == 0, "the box's bottom line is still there"


def test_a_foot_written_on_the_underline_stays_and_the_line_goes():
    spec = Field("f", "underline", (0, 0, 64, 34), min_length=1, max_length=3)
    x, y, w, h = BOX
    page = np.full((260, 330), 255, np.uint8)
    cv2.line(page, (x, y + h), (x + w, y + h), 150, 4)
    # A 2: its curve, then the foot drawn along the printed line, as people write on a rule.
    cv2.polylines(page, [np.int32([(x + 40, y + 40), (x + 70, y + 15), (x + 100, y + 40), (x + 45, y + h - 2)])],
                  False, 20, 10)
    cv2.line(page, (x + 45, y + h - 2), (x + 110, y + h - 2), 20, 10)
    _, clean = masks(page, spec)
    assert clean[y + h - 6:y + h + 3, x + 50:x + 105].min() == 255, "the 2's foot went with the underline"
    assert clean[y + h - 1:y + h + 2, x + 140:x + w - 10].max() == 0, "the underline is still there"


def test_a_comb_of_separate_boxes_loses_its_walls_and_keeps_its_digits():
    # Cells walled to full height (a lab request's comb), a "1" written against the second wall.
    x, y, w, h = BOX
    spec = Field("f", "comb", (0, 0, 64, 34), min_length=4, max_length=4, cells=4)
    page = np.full((260, 330), 255, np.uint8)
    cv2.rectangle(page, (x, y), (x + w, y + h), 60, 3)
    for i in range(1, 4):
        cv2.line(page, (x + i * w // 4, y), (x + i * w // 4, y + h), 60, 3)
    cv2.line(page, (x + 2 * w // 4 - 14, y + 25), (x + 2 * w // 4 - 14, y + h - 25), 20, 7)  # the 1
    _, clean = masks(page, spec)
    for i in range(1, 4):
        wall = clean[y + 5:y + h - 5, x + i * w // 4 - 2:x + i * w // 4 + 3]
        assert wall.max() == 0, f"a stub of wall {i} is left beside the digits"
    assert clean[y + 30:y + h - 30, x + 2 * w // 4 - 14].min() == 255, "the 1 beside the wall went with it"
