"""Splitting a cleaned field into digits: what counts as the field's writing, joining pieces, cutting touching digits."""

import cv2
import numpy as np
import pytest

from corpus.filling import glyph, stamp_ink
from pipeline.segmentation.guides import remove_guides
from pipeline.segmentation.split import split_digits, split_digits_and_alternatives
from pipeline.templates.model import Field
from support.drawing import BOX, blank_field, boxed, masks, writer


def test_the_printed_label_above_the_box_is_not_a_digit():
    spec = boxed(label="HOUSEHOLD")
    _, clean = masks(blank_field(label="HOUSEHOLD"), spec)
    assert split_digits(clean, BOX, spec) == [], "an empty field read its label"
    page = blank_field(label="HOUSEHOLD")
    g = glyph(4, writer(), np.random.default_rng(1), 90)
    stamp_ink(page, g, BOX[0] + 30, BOX[1] + 25, 1.0)
    _, clean = masks(page, boxed(label="HOUSEHOLD"))
    regions = split_digits(clean, BOX, boxed(label="HOUSEHOLD"))
    assert len(regions) == 1
    (rx, ry, rw, rh), _ = regions[0]
    assert ry >= BOX[1], "the label's letters were taken into the digit"


def test_the_top_of_a_digit_in_the_row_below_is_not_this_fields_writing():
    # A table row under this one: the top of its 7 reaches into this crop's lower margin, cut off by the crop's edge.
    page = blank_field()
    stamp_ink(page, glyph(4, writer(), np.random.default_rng(1), 90), BOX[0] + 30, BOX[1] + 25, 1.0)
    cv2.line(page, (100, 208), (160, 208), 20, 8)
    cv2.line(page, (160, 208), (140, 259), 20, 8)
    _, clean = masks(page, boxed())
    regions = split_digits(clean, BOX, boxed())
    assert len(regions) == 1 and regions[0][0][1] + regions[0][0][3] < BOX[1] + BOX[3] + 10


def test_print_beside_the_field_is_not_writing_but_writing_over_its_edge_is():
    spec = Field("line01", "free", (0, 0, 160, 34), min_length=1, max_length=12)
    box = (20, 60, 640, 136)
    x, y, w, h = box
    rng = np.random.default_rng(2)
    digits = [glyph(d, writer(), rng, 90) for d in (4, 0, 7, 2)]
    page = np.full((260, 1000), 255, np.uint8)
    cursor = x + 300
    for g in digits[:3]:
        stamp_ink(page, g, cursor, y + 40, 1.0)
        cursor += g.shape[1] + 12
    cv2.putText(page, "REF 4821", (x + w + 30, y + 110), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 70, 4, cv2.LINE_AA)
    ink = 255 - page
    assert len(split_digits(((ink > 40) * 255).astype(np.uint8), box, spec)) == 3
    # Writing that runs on past the field's right edge is still the field's.
    page[:, x + w:] = 255
    stamp_ink(page, digits[3], x + w - 20, y + 40, 1.0)
    ink = 255 - page
    assert len(split_digits(((ink > 40) * 255).astype(np.uint8), box, spec)) == 4


def test_a_detached_bar_stays_with_its_digit():
    page = blank_field()
    x, y, _, _ = BOX
    cv2.line(page, (x + 40, y + 20), (x + 100, y + 20), 20, 6)   # the bar, a gap, then the stem
    cv2.line(page, (x + 100, y + 32), (x + 66, y + 120), 20, 6)
    _, clean = masks(page, boxed())
    [((rx, ry, rw, rh), _)] = split_digits(clean, BOX, boxed())
    assert rx <= x + 40 and ry <= y + 20


def _one_and_open_four(stem_gap):
    page = blank_field()
    x, y, _, _ = BOX
    cv2.line(page, (x + 30, y + 20), (x + 30, y + 125), 20, 6)                    # a 1
    # A 4 written in two strokes: its open top, ending well above the line, then the stem.
    cv2.polylines(page, [np.int32([(x + 110, y + 20), (x + 85, y + 85), (x + 122, y + 85)])], False, 20, 6)
    cv2.line(page, (x + 122 + stem_gap, y + 20), (x + 122 + stem_gap, y + 125), 20, 6)
    return masks(page, boxed())[1]


def test_the_open_top_of_a_four_joins_its_stem_when_they_all_but_touch():
    x = BOX[0]
    [one, four] = split_digits(_one_and_open_four(stem_gap=12), BOX, boxed(max_length=3))
    assert one[0][0] < x + 40 and four[0][0] < x + 90 < x + 130 < four[0][0] + four[0][2]


def test_pieces_of_broken_strokes_join_up_to_the_fields_length():
    x = BOX[0]
    clean = _one_and_open_four(stem_gap=24)   # too far apart to join on sight
    assert len(split_digits(clean, BOX, boxed(max_length=3))) == 3
    [one, four] = split_digits(clean, BOX, boxed(max_length=2))
    assert one[0][0] < x + 40 and four[0][0] < x + 90 < x + 140 < four[0][0] + four[0][2]


def test_one_wide_digit_is_not_cut_but_touching_digits_are():
    x, y, _, _ = BOX
    one = blank_field()
    # A 1 beside a wide, flat 4 whose bar runs well past the stem: one blob much wider than tall.
    cv2.line(one, (x + 30, y + 30), (x + 30, y + 125), 20, 6)
    cv2.polylines(one, [np.int32([(x + 95, y + 45), (x + 60, y + 95), (x + 200, y + 95)])], False, 20, 6)
    cv2.line(one, (x + 150, y + 45), (x + 150, y + 125), 20, 6)
    _, clean = masks(one, boxed(max_length=3))
    regions = split_digits(clean, BOX, boxed(max_length=3))
    assert len(regions) == 2 and regions[1][0][0] < x + 62 and regions[1][0][0] + regions[1][0][2] > x + 195
    wide = blank_field()
    cv2.ellipse(wide, (x + 120, y + 70), (60, 50), 0, 0, 360, 20, 6)   # a 0 1.2x as wide as tall
    _, clean = masks(wide, boxed(max_length=3))
    assert len(split_digits(clean, BOX, boxed(max_length=3))) == 1
    flat = blank_field()
    cv2.ellipse(flat, (x + 120, y + 70), (72, 50), 0, 0, 360, 20, 14)  # a thick 0, 1.45x as wide as tall
    _, clean = masks(flat, boxed(max_length=3))
    assert len(split_digits(clean, BOX, boxed(max_length=3))) == 1
    touching = blank_field()
    # Two 0s written so close that they share a stroke: each runs the blob's full height.
    cv2.ellipse(touching, (x + 80, y + 75), (36, 50), 0, 0, 360, 20, 6)
    cv2.ellipse(touching, (x + 150, y + 75), (36, 50), 0, 0, 360, 20, 6)
    _, clean = masks(touching, boxed(max_length=3))
    assert len(split_digits(clean, BOX, boxed(max_length=3))) == 2


def test_a_field_short_of_digits_cuts_a_narrower_blob():
    page = blank_field()
    x, y, _, _ = BOX
    # Two narrow 0s joined by a stray stroke: one blob hardly wider than tall.
    cv2.ellipse(page, (x + 90, y + 70), (25, 50), 0, 0, 360, 20, 6)
    cv2.ellipse(page, (x + 150, y + 70), (25, 50), 0, 0, 360, 20, 6)
    cv2.line(page, (x + 112, y + 70), (x + 128, y + 70), 20, 4)
    _, clean = masks(page, boxed())
    free = Field("f", "boxed", (0, 0, 64, 34), min_length=1, max_length=5)
    postcode = Field("f", "boxed", (0, 0, 64, 34), min_length=2, max_length=5)
    assert len(split_digits(clean, BOX, free)) == 1
    [left, right] = split_digits(clean, BOX, postcode)
    assert left[0][0] + left[0][2] <= right[0][0] + 4 and abs(left[0][2] - right[0][2]) < 16


def test_a_reference_number_run_in_beside_an_empty_box_is_not_writing():
    page = blank_field()
    x, y, _, h = BOX
    cv2.putText(page, "REF 51451", (x - 40, y + 60), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 60, 2, cv2.LINE_AA)
    _, clean = masks(page, boxed(max_length=5))
    assert clean.any() and split_digits(clean, BOX, boxed(max_length=5)) == []


def test_hard_slanted_wide_writing_is_not_split_into_pieces():
    page = np.full((260, 700), 255, np.uint8)
    spec = Field("line01", "free", (0, 0, 160, 34), min_length=4, max_length=12)
    box = (20, 60, 640, 136)
    rng = np.random.default_rng(5)
    cursor = box[0] + 10
    for digit in (3, 8, 6, 2):
        g = glyph(digit, writer(slant=0.45, width=0.95), rng, 80)
        g = cv2.resize(g, (int(1.3 * g.shape[0]), g.shape[0]))  # flat and wide, as some writers' are
        stamp_ink(page, g, cursor, box[1] + 40, 1.0)
        cursor += g.shape[1] + 12
    ink = 255 - page
    clean = remove_guides(ink, ((ink > 40) * 255).astype(np.uint8), box, spec)
    assert len(split_digits(clean, box, spec)) == 4


@pytest.mark.parametrize("spec_kind", ["boxed", "underline"])
def test_empty_field_gives_no_digits(spec_kind):
    spec = Field("f", spec_kind, (0, 0, 64, 34), min_length=1, max_length=2)
    page = blank_field(with_box=spec_kind == "boxed")
    _, clean = masks(page, spec)
    assert split_digits(clean, BOX, spec) == []


def test_a_cut_blob_is_also_offered_whole_for_the_model_to_judge():
    x, y, _, _ = BOX
    touching = blank_field()
    cv2.ellipse(touching, (x + 80, y + 75), (36, 50), 0, 0, 360, 20, 6)
    cv2.ellipse(touching, (x + 150, y + 75), (36, 50), 0, 0, 360, 20, 6)
    _, clean = masks(touching, boxed(max_length=3))
    regions, [(first, count, [((wx, wy, ww, wh), mask)])] = split_digits_and_alternatives(clean, BOX,
                                                                                          boxed(max_length=3))
    assert len(regions) == 2 and (first, count) == (0, 2)
    assert wx == regions[0][0][0] and wx + ww == regions[1][0][0] + regions[1][0][2]
    assert mask.sum() >= regions[0][1].sum() + regions[1][1].sum() - 2 * wh  # both pieces' ink, one column shared
    separate = blank_field()
    cv2.ellipse(separate, (x + 60, y + 75), (25, 50), 0, 0, 360, 20, 6)
    cv2.ellipse(separate, (x + 160, y + 75), (25, 50), 0, 0, 360, 20, 6)
    _, clean = masks(separate, boxed(max_length=3))
    regions, alternatives = split_digits_and_alternatives(clean, BOX, boxed(max_length=3))
    assert len(regions) == 2 and alternatives == [], "digits apart were never one blob"


def _comb_page(zeros, ones=()):
    """A four-cell comb over BOX (cells 64 px wide, ticks up from its bottom): "0"s (centre, half-width), "1"s at x."""
    page = blank_field()
    x, y, w, h = BOX
    for k in range(1, 4):
        cv2.line(page, (x + 64 * k, y + h - 30), (x + 64 * k, y + h), 150, 4)
    for cx, half_width in zeros:
        cv2.ellipse(page, (x + cx, y + 70), (half_width, 45), 0, 0, 360, 20, 6)
    for cx in ones:
        cv2.line(page, (x + cx, y + 25), (x + cx, y + 115), 20, 6)
    return page


def test_a_comb_blob_over_a_tick_into_an_empty_cell_is_cut_there_and_offered_whole():
    spec = Field("date", "comb", (0, 0, 64, 34), min_length=4, max_length=4, cells=4)
    x = BOX[0]
    _, clean = masks(_comb_page([(36, 26), (88, 26), (160, 26), (224, 26)]), spec)  # the first two touch
    regions, alternatives = split_digits_and_alternatives(clean, BOX, spec)
    assert len(regions) == 4
    assert abs(regions[0][0][0] + regions[0][0][2] - (x + 64)) <= 14, "not cut near the tick"
    [(first, count, [_])] = alternatives
    assert (first, count) == (0, 2)


def test_a_comb_digit_over_a_tick_is_not_cut_if_it_is_no_wider_than_a_digit_or_the_next_cell_is_written():
    spec = Field("date", "comb", (0, 0, 64, 34), min_length=1, max_length=4, cells=4)
    _, clean = masks(_comb_page([(64, 26)]), spec)  # astride the first tick, no wider than a digit
    assert len(split_digits(clean, BOX, spec)) == 1
    _, clean = masks(_comb_page([(110, 40)], ones=[180]), spec)  # wide, over the second tick, into cell 2's 1
    assert len(split_digits(clean, BOX, spec)) == 2


def _boxed_postcode_running_over(beyond):
    """Three digits in a wide boxed field, then `beyond(page, x)` drawn right of its edge at x."""
    spec = Field("postcode", "boxed", (0, 0, 160, 34), min_length=3, max_length=5)
    box = (20, 60, 480, 136)
    x, y, w, h = box
    page = np.full((260, 700), 255, np.uint8)
    cv2.rectangle(page, (x, y), (x + w, y + h), 150, 4)
    rng = np.random.default_rng(5)
    cursor = x + 240
    for d in (5, 5, 7):
        g = glyph(d, writer(), rng, 90)
        stamp_ink(page, g, cursor, y + 25, 1.0)
        cursor += g.shape[1] + 14
    beyond(page, max(cursor, x + w + 8))
    ink = 255 - page
    return split_digits(remove_guides(ink, ((ink > 40) * 255).astype(np.uint8), box, spec), box, spec)


def test_a_digit_in_pieces_past_the_edge_is_writing_but_marks_one_above_another_are_not():
    def nine_in_two_pieces(page, x):
        cv2.circle(page, (x + 25, 60 + 45), 20, 30, 6)             # the loop
        cv2.line(page, (x + 44, 60 + 75), (x + 36, 60 + 125), 30, 6)  # its tail, a gap below it
    assert len(_boxed_postcode_running_over(nine_in_two_pieces)) == 4

    def dashes(page, x):  # two thin marks one above the other: as tall as a digit, with a tenth of its ink
        for top in (20, 70):
            cv2.line(page, (x + 20, 60 + top), (x + 20, 60 + top + 30), 30, 4)
    assert len(_boxed_postcode_running_over(dashes)) == 3


def test_a_field_short_of_digits_cuts_the_next_widest_blob_when_the_widest_is_one_wide_zero():
    spec = Field("f", "boxed", (0, 0, 160, 34), min_length=3, max_length=3)
    box = (20, 60, 480, 136)
    x, y, _, _ = box
    page = np.full((260, 560), 255, np.uint8)
    cv2.ellipse(page, (x + 90, y + 70), (52, 40), 0, 0, 360, 20, 6)   # one wide 0: a cut would go through its loop
    cv2.ellipse(page, (x + 240, y + 70), (25, 45), 0, 0, 360, 20, 6)  # two narrow 0s, touching
    cv2.ellipse(page, (x + 292, y + 70), (25, 45), 0, 0, 360, 20, 6)
    ink = 255 - page
    regions = split_digits(((ink > 40) * 255).astype(np.uint8), box, spec)
    assert len(regions) == 3 and regions[0][0][2] > 100, "the wide 0 was cut, or the touching pair was not"


def test_a_five_whose_bar_was_written_apart_above_and_to_the_right_is_one_digit():
    page = blank_field()
    x, y, _, _ = BOX
    cv2.ellipse(page, (x + 70, y + 95), (30, 22), 0, -120, 150, 20, 6)    # the body, open to the upper left
    cv2.line(page, (x + 82, y + 58), (x + 150, y + 26), 20, 6)  # the bar: a few of its columns, none of its rows
    _, clean = masks(page, boxed())
    [((rx, ry, rw, rh), _)] = split_digits(clean, BOX, boxed())
    assert ry <= y + 30 and rx + rw >= x + 145


def test_a_field_short_of_digits_cuts_a_narrow_one_off_the_blob_that_stands_out_and_only_that():
    year = Field("f", "boxed", (0, 0, 64, 34), min_length=4, max_length=4)
    page = blank_field()
    x, y, _, _ = BOX
    cv2.line(page, (x + 30, y + 24), (x + 30, y + 118), 20, 6)     # a 1, its flag running into the 0 beside it:
    cv2.line(page, (x + 30, y + 70), (x + 50, y + 70), 20, 6)      # one blob 0.7x as wide as tall
    for cx in (70, 140, 210):
        cv2.ellipse(page, (x + cx, y + 71), (22, 45), 0, 0, 360, 20, 6)
    _, clean = masks(page, boxed())
    regions = split_digits(clean, BOX, year)
    assert len(regions) == 4 and regions[0][0][2] < 26, [r[0] for r in regions]
    even = blank_field()
    for cx in (50, 120, 190):  # three 0s alike: nothing says which is two digits, so the field stays short
        cv2.ellipse(even, (x + cx, y + 71), (22, 45), 0, 0, 360, 20, 6)
    _, clean = masks(even, boxed())
    assert len(split_digits(clean, BOX, year)) == 3


def test_a_broken_off_stroke_of_the_label_left_of_an_underline_is_not_a_digit():
    # A bitonal scan breaks the label's last letter: its upright stroke stands alone just left of the field.
    spec = Field("member", "underline", (0, 0, 64, 34), min_length=1, max_length=8)
    page = blank_field(with_box=False)
    x, y, _, _ = BOX
    cv2.line(page, (x - 8, y + 80), (x - 8, y + 118), 20, 5)
    for k, d in enumerate((4, 5, 7)):
        stamp_ink(page, glyph(d, writer(), np.random.default_rng(k), 90), x + 30 + 70 * k, y + 25, 1.0)
    _, clean = masks(page, spec)
    regions = split_digits(clean, BOX, spec)
    assert len(regions) == 3 and min(r[0][0] for r in regions) > x


def test_a_comb_digit_cut_in_two_flat_pieces_by_a_box_line_is_still_a_digit():
    # A 2 written low across the cell's bottom line: removing the line leaves its arc and its foot, each flat.
    spec = Field("id", "comb", (0, 0, 64, 34), min_length=0, max_length=2, cells=2)
    page = blank_field(with_box=False)
    x, y, _, _ = BOX
    stamp_ink(page, glyph(3, writer(), np.random.default_rng(1), 110), x + 10, y + 10, 1.0)
    cv2.ellipse(page, (x + 190, y + 64), (30, 18), 0, 180, 360, 20, 9)
    cv2.line(page, (x + 160, y + 106), (x + 225, y + 106), 20, 9)
    regions = split_digits(((255 - page > 40) * 255).astype(np.uint8), BOX, spec)
    assert len(regions) == 2 and regions[1][0][0] > x + 128


def test_a_table_ruling_running_on_below_the_box_is_not_a_one():
    # The box's left wall goes on down to the next row; a 1-bit scan keeps the stub the print's drop-out missed.
    page = blank_field()
    x, y, w, h = BOX
    cv2.line(page, (x + 1, y + h + 6), (x + 1, y + h + 40), 0, 2)
    stamp_ink(page, glyph(9, writer(), np.random.default_rng(3), 90), x + 120, y + 25, 1.0)
    _, clean = masks(page, boxed())
    regions = split_digits(clean, BOX, boxed())
    assert len(regions) == 1 and regions[0][0][0] > x + 100
