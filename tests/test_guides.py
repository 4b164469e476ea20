"""Guide removal: printed box lines, comb ticks and underlines go; strokes along and across them stay."""

import cv2
import numpy as np

from corpus.filling import glyph, stamp_ink
from pipeline.segmentation.guides import GuideFit, fit_guides, remove_guides
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


def _separate_boxes(page, x, y, w, h, cells, gap):
    cell = (w - (cells - 1) * gap) / cells
    for i in range(cells):
        left = int(round(x + i * (cell + gap)))
        cv2.rectangle(page, (left, y), (int(round(left + cell)), y + h), 90, 2)


def test_a_comb_of_boxes_with_gaps_between_them_is_found_and_both_walls_of_each_gap_go():
    # The template gives the comb's outer edges and its cell count; the boxes stand 3 points (12 px) apart.
    spec = Field("f", "comb", (0, 0, 64, 34), min_length=4, max_length=4, cells=4)
    x, y, w, h = BOX
    page = np.full((260, 330), 255, np.uint8)
    _separate_boxes(page, x, y, w, h, 4, 12)
    ones = [x + 30, x + 95, x + 160, x + 225]  # a 1 in each box, off its middle
    for cx in ones:
        cv2.line(page, (cx, y + 25), (cx, y + h - 25), 20, 7)
    ink = 255 - page
    fit = fit_guides(ink, BOX, spec, reach=16)
    assert (fit.dx, fit.dy) == (0, 0) and abs(fit.gap - 12) <= 1.5, fit
    clean = remove_guides(ink, ((ink > 40) * 255).astype(np.uint8), BOX, spec, fit.gap)
    cell = (w - 3 * 12) / 4
    for i in range(1, 4):
        for wall in (x + i * (cell + 12) - 12, x + i * (cell + 12)):
            assert clean[y + 5:y + h - 5, int(wall) - 2:int(wall) + 3].max() == 0, f"a wall by gap {i} is left"
    for cx in ones:
        assert clean[y + 30:y + h - 30, cx].min() == 255, "a 1 went with the walls"


def test_a_box_whose_lines_lie_points_from_where_registration_puts_them_is_found_there():
    x, y, w, h = BOX
    page = np.full((260, 330), 255, np.uint8)
    cv2.rectangle(page, (x + 12, y - 8), (x + w + 12, y + h - 8), 120, 2)  # 3 points right, 2 points up
    cv2.line(page, (x + 60, y + 30), (x + 60, y + h - 30), 20, 7)        # a 1 beside where the wall should be
    assert fit_guides(255 - page, BOX, boxed(), reach=16) == GuideFit(12, -8, 0.0)
    assert fit_guides(255 - blank_field(), BOX, boxed(), reach=16) == GuideFit(0, 0, 0.0)
