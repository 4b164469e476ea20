"""Segmentation of one field: guide removal, what counts as the field's writing, splitting and joining.

Fields are drawn here the way the corpus prints and fills them (OpenCV lines,
digits by the synthetic writer), at the segmenter's canonical crop scale.
"""

import cv2
import numpy as np
import pytest

from corpus.handwriting import WriterStyle
from pipeline import strikeout
from pipeline.guides import remove_guides
from pipeline.split import split_digits
from pipeline.strikeout import drop_struck
from pipeline.types import DigitCut
from corpus.forms import glyph, stamp_ink
from pipeline.templates import Field

# A census-style boxed field: 136 px tall at the crop scale (34 pt at 4 px/pt), with margins around it.
BOX = (20, 60, 256, 136)


def _boxed(max_length=2, label=""):
    return Field("f", "boxed", (0, 0, 64, 34), min_length=1, max_length=max_length, label=label)


def _page(with_box=True, label=""):
    page = np.full((260, 330), 255, np.uint8)
    x, y, w, h = BOX
    if with_box:
        cv2.rectangle(page, (x, y), (x + w, y + h), 150, 4)
    if label:
        cv2.putText(page, label, (x, y - 24), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 60, 3, cv2.LINE_AA)
    return page


def _masks(page, spec):
    ink = 255 - page
    binary = ((ink > 40) * 255).astype(np.uint8)
    return ink, remove_guides(ink, binary, BOX, spec)


def _writer(slant=0.1, width=0.7):
    return WriterStyle(allograph=(0,) * 10, slant=slant, width=width, pen=0.09, shake=0.01,
                       habit=tuple(np.zeros((64, 2)) for _ in range(10)), font=None, pressure=0.0, darkness=1.0)


def test_guide_removal_keeps_a_bar_that_runs_along_the_box_line():
    page = _page()
    x, y, w, h = BOX
    # The top bar of a 7 written high in the box, just under the box's top line, and its stem.
    cv2.line(page, (x + 40, y + 9), (x + 110, y + 9), 20, 7)
    cv2.line(page, (x + 110, y + 9), (x + 70, y + 120), 20, 7)
    _, clean = _masks(page, _boxed())
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
    _, clean = _masks(page, spec)
    assert clean[y + h - 6:y + h + 3, x + 50:x + 105].min() == 255, "the 2's foot went with the underline"
    assert clean[y + h - 1:y + h + 2, x + 140:x + w - 10].max() == 0, "the underline is still there"


def test_the_printed_label_above_the_box_is_not_a_digit():
    spec = _boxed(label="HOUSEHOLD")
    _, clean = _masks(_page(label="HOUSEHOLD"), spec)
    assert split_digits(clean, BOX, spec) == [], "an empty field read its label"
    page = _page(label="HOUSEHOLD")
    g = glyph(4, _writer(), np.random.default_rng(1), 90)
    stamp_ink(page, g, BOX[0] + 30, BOX[1] + 25, 1.0)
    _, clean = _masks(page, _boxed(label="HOUSEHOLD"))
    regions = split_digits(clean, BOX, _boxed(label="HOUSEHOLD"))
    assert len(regions) == 1
    (rx, ry, rw, rh), _ = regions[0]
    assert ry >= BOX[1], "the label's letters were taken into the digit"


def test_print_beside_the_field_is_not_writing_but_writing_over_its_edge_is():
    spec = Field("line01", "free", (0, 0, 160, 34), min_length=1, max_length=12)
    box = (20, 60, 640, 136)
    x, y, w, h = box
    rng = np.random.default_rng(2)
    digits = [glyph(d, _writer(), rng, 90) for d in (4, 0, 7, 2)]
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
    page = _page()
    x, y, _, _ = BOX
    cv2.line(page, (x + 40, y + 20), (x + 100, y + 20), 20, 6)   # the bar, a gap, then the stem
    cv2.line(page, (x + 100, y + 32), (x + 66, y + 120), 20, 6)
    _, clean = _masks(page, _boxed())
    [((rx, ry, rw, rh), _)] = split_digits(clean, BOX, _boxed())
    assert rx <= x + 40 and ry <= y + 20


def _one_and_open_four(stem_gap):
    page = _page()
    x, y, _, _ = BOX
    cv2.line(page, (x + 30, y + 20), (x + 30, y + 125), 20, 6)                    # a 1
    # A 4 written in two strokes: its open top, ending well above the line, then the stem.
    cv2.polylines(page, [np.int32([(x + 110, y + 20), (x + 85, y + 85), (x + 122, y + 85)])], False, 20, 6)
    cv2.line(page, (x + 122 + stem_gap, y + 20), (x + 122 + stem_gap, y + 125), 20, 6)
    return _masks(page, _boxed())[1]


def test_the_open_top_of_a_four_joins_its_stem_when_they_all_but_touch():
    x = BOX[0]
    [one, four] = split_digits(_one_and_open_four(stem_gap=12), BOX, _boxed(max_length=3))
    assert one[0][0] < x + 40 and four[0][0] < x + 90 < x + 130 < four[0][0] + four[0][2]


def test_pieces_of_broken_strokes_join_up_to_the_fields_length():
    x = BOX[0]
    clean = _one_and_open_four(stem_gap=24)   # too far apart to join on sight
    assert len(split_digits(clean, BOX, _boxed(max_length=3))) == 3
    [one, four] = split_digits(clean, BOX, _boxed(max_length=2))
    assert one[0][0] < x + 40 and four[0][0] < x + 90 < x + 140 < four[0][0] + four[0][2]


def test_one_wide_digit_is_not_cut_but_touching_digits_are():
    x, y, _, _ = BOX
    one = _page()
    # A 1 beside a wide, flat 4 whose bar runs well past the stem: one blob much wider than tall.
    cv2.line(one, (x + 30, y + 30), (x + 30, y + 125), 20, 6)
    cv2.polylines(one, [np.int32([(x + 95, y + 45), (x + 60, y + 95), (x + 200, y + 95)])], False, 20, 6)
    cv2.line(one, (x + 150, y + 45), (x + 150, y + 125), 20, 6)
    _, clean = _masks(one, _boxed(max_length=3))
    regions = split_digits(clean, BOX, _boxed(max_length=3))
    assert len(regions) == 2 and regions[1][0][0] < x + 62 and regions[1][0][0] + regions[1][0][2] > x + 195
    wide = _page()
    cv2.ellipse(wide, (x + 120, y + 70), (60, 50), 0, 0, 360, 20, 6)   # a 0 1.2x as wide as tall
    _, clean = _masks(wide, _boxed(max_length=3))
    assert len(split_digits(clean, BOX, _boxed(max_length=3))) == 1
    flat = _page()
    cv2.ellipse(flat, (x + 120, y + 70), (72, 50), 0, 0, 360, 20, 14)  # a thick 0, 1.45x as wide as tall
    _, clean = _masks(flat, _boxed(max_length=3))
    assert len(split_digits(clean, BOX, _boxed(max_length=3))) == 1
    touching = _page()
    # Two 0s written so close that they share a stroke: each runs the blob's full height.
    cv2.ellipse(touching, (x + 80, y + 75), (36, 50), 0, 0, 360, 20, 6)
    cv2.ellipse(touching, (x + 150, y + 75), (36, 50), 0, 0, 360, 20, 6)
    _, clean = _masks(touching, _boxed(max_length=3))
    assert len(split_digits(clean, BOX, _boxed(max_length=3))) == 2


def test_a_field_short_of_digits_cuts_a_narrower_blob():
    page = _page()
    x, y, _, _ = BOX
    # Two narrow 0s joined by a stray stroke: one blob hardly wider than tall.
    cv2.ellipse(page, (x + 90, y + 70), (25, 50), 0, 0, 360, 20, 6)
    cv2.ellipse(page, (x + 150, y + 70), (25, 50), 0, 0, 360, 20, 6)
    cv2.line(page, (x + 112, y + 70), (x + 128, y + 70), 20, 4)
    _, clean = _masks(page, _boxed())
    free = Field("f", "boxed", (0, 0, 64, 34), min_length=1, max_length=5)
    postcode = Field("f", "boxed", (0, 0, 64, 34), min_length=2, max_length=5)
    assert len(split_digits(clean, BOX, free)) == 1
    [left, right] = split_digits(clean, BOX, postcode)
    assert left[0][0] + left[0][2] <= right[0][0] + 4 and abs(left[0][2] - right[0][2]) < 16


def test_a_reference_number_run_in_beside_an_empty_box_is_not_writing():
    page = _page()
    x, y, _, h = BOX
    cv2.putText(page, "REF 51451", (x - 40, y + 60), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 60, 2, cv2.LINE_AA)
    _, clean = _masks(page, _boxed(max_length=5))
    assert clean.any() and split_digits(clean, BOX, _boxed(max_length=5)) == []


def test_hard_slanted_wide_writing_is_not_split_into_pieces():
    page = np.full((260, 700), 255, np.uint8)
    spec = Field("line01", "free", (0, 0, 160, 34), min_length=4, max_length=12)
    box = (20, 60, 640, 136)
    rng = np.random.default_rng(5)
    cursor = box[0] + 10
    for digit in (3, 8, 6, 2):
        g = glyph(digit, _writer(slant=0.45, width=0.95), rng, 80)
        g = cv2.resize(g, (int(1.3 * g.shape[0]), g.shape[0]))  # flat and wide, as some writers' are
        stamp_ink(page, g, cursor, box[1] + 40, 1.0)
        cursor += g.shape[1] + 12
    ink = 255 - page
    clean = remove_guides(ink, ((ink > 40) * 255).astype(np.uint8), box, spec)
    assert len(split_digits(clean, box, spec)) == 4


def test_an_overfull_field_drops_its_likeliest_struck_digit_on_weaker_evidence(monkeypatch):
    from model_export.strikeout import isolated_strike_crops

    shipped = strikeout.load_detector()
    crops, struck = isolated_strike_crops(60, seed=4242, stream=9, workers=1, fonts=[])
    scores = shipped.scores(crops)
    crossed = max((s, i) for i, (s, y) in enumerate(zip(scores, struck)) if y == 1)[1]
    plain = [i for i, (s, y) in enumerate(zip(scores, struck)) if y == 0 and s < 0.01][:2]
    digits = [DigitCut(n, crops[i], (30 * n, 0, 28, 28), crops[i]) for n, i in enumerate([plain[0], crossed, plain[1]])]
    # A detector that needs more certainty than any crop gives: only the overfull rule can drop.
    cautious = strikeout.StrikeDetector(shipped.weights, threshold=1.0)
    monkeypatch.setattr(strikeout, "load_detector", lambda: cautious)

    [(kept, dropped)] = drop_struck([(digits, 1, 3)])
    assert dropped == 0, "a field within its length keeps a digit the detector is not sure of"
    [(kept, dropped)] = drop_struck([(digits, 1, 2)])
    assert dropped == 1 and all(np.array_equal(d.image, crops[i]) for d, i in zip(kept, plain))
    assert [d.position for d in kept] == [0, 1]


@pytest.mark.parametrize("spec_kind", ["boxed", "underline"])
def test_empty_field_gives_no_digits(spec_kind):
    spec = Field("f", spec_kind, (0, 0, 64, 34), min_length=1, max_length=2)
    page = _page(with_box=spec_kind == "boxed")
    _, clean = _masks(page, spec)
    assert split_digits(clean, BOX, spec) == []


def test_a_stamp_over_the_title_still_registers_the_right_form():
    from corpus.handwriting import find_handwriting_fonts
    from pipeline.register import register_page
    from corpus.forms import render_document
    from corpus import builtin_templates

    # An invoice whose "RECEIVED" stamp landed on the printed title (corpus seed 8675309, file 89, with
    # the handwriting fonts make setup installs): on the title alone it looked more like a deposit slip.
    [page], truth, _, _ = render_document(8675309, 88, "png", 1, find_handwriting_fonts(), "scan_00089.png")
    assert register_page(page, builtin_templates())[1].template.name == truth[0]["template"] == "invoice"
