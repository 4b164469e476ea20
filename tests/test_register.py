"""Registration: which template a page is, which way up, and where its fields land."""

import numpy as np
import pytest

from corpus import builtin_templates
from corpus.forms import Ink, render_document
from corpus.handwriting import find_handwriting_fonts
from pipeline.registration.register import register_page
from pipeline.segmentation.segment import cut_fields
from pipeline.types import SegmentError


def _scan(index: int):
    """One rendered, scanned page (corpus seed 31, a document of its own) and its truth rows."""
    [page], truth, _, _ = render_document(31, index, "png", 1, Ink(), f"scan_{index}.png")
    return page, truth


def _overlap(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_upside_down_page_registers_and_reports_boxes_as_scanned():
    page, truth = _scan(3)
    turned = np.ascontiguousarray(page[::-1, ::-1])
    upright, registration = register_page(turned, builtin_templates())
    assert registration.upside_down and registration.template.name == truth[0]["template"]
    H, W = turned.shape
    boxes = {cut.field: cut.bbox for cut in cut_fields(upright, registration)}
    for row in truth:
        x, y, w, h = row["box"]
        assert _overlap(boxes[row["field"]], (W - x - w, H - y - h, w, h)) > 0.6, row["field"]


def test_a_blank_sheet_is_a_clear_error_naming_both_ways_tried():
    # Marks are the fast path; without them the page is matched by its print, and neither finds a form.
    with pytest.raises(SegmentError, match=r"no template matches this page \(best score \d+ .*registration marks "
                                           r"not found"):
        register_page(np.full((1100, 850), 245, np.uint8), builtin_templates())


def test_a_stamp_over_the_title_still_registers_the_right_form():
    # An invoice whose "RECEIVED" stamp landed on the printed title (corpus seed 8675309, file 89, with
    # the handwriting fonts make setup installs): on the title alone it looked more like a deposit slip.
    [page], truth, _, _ = render_document(8675309, 88, "png", 1, Ink(fonts=tuple(find_handwriting_fonts())),
                                          "scan_00089.png")
    assert register_page(page, builtin_templates())[1].template.name == truth[0]["template"] == "invoice"


def test_a_stamp_over_the_title_of_a_shaded_scan_still_registers_the_right_form(real_mnist):
    # Real-ink corpus seed 7373, file 54: the stamp covers "INVOICE" and the scan's paper is shaded grey, so
    # by level alone every template's lines looked inked; only thin print (a top-hat) tells the forms apart.
    ink = Ink(kind="mnist", mnist_path=str(real_mnist), mnist_split="validation")
    [page], truth, _, _ = render_document(7373, 53, "jpeg", 1, ink, "scan_00054.jpg")
    assert register_page(page, builtin_templates())[1].template.name == truth[0]["template"] == "invoice"


def test_a_stamp_touching_a_corner_mark_still_finds_the_mark():
    # Corpus seed 8484, file 5: the "VERIFIED" stamp's frame touches the bottom-right mark; joined to it,
    # the mark was no square and the page had no marks at all.
    [page], truth, _, _ = render_document(8484, 4, "png", 1, Ink(fonts=tuple(find_handwriting_fonts())),
                                          "scan_00005.png")
    assert register_page(page, builtin_templates())[1].template.name == truth[0]["template"] == "digit_lines"


@pytest.mark.parametrize("index", range(4))
def test_a_page_whose_form_has_no_template_is_refused_not_read_with_another(index):
    """Every built-in form, its own template removed: the nearest other one is named and refused."""
    page, truth = _scan(index)
    own = truth[0]["template"]
    others = [t for t in builtin_templates() if t.name != own]
    with pytest.raises(SegmentError, match=r"this page is not form '\w+', the nearest template .* is its template "
                                           r"missing\?"):
        register_page(page, others)
    _, registration = register_page(page, builtin_templates())  # and with it, it is its own form
    assert registration.template.name == own


@pytest.mark.slow  # sixteen pages registered, each fitted to its print
def test_a_corner_mark_cut_off_by_the_scans_edge_still_registers_by_the_other_three():
    """Three marks fix an affine map, refined by the page's print. A page photographed with strong keystone
    whose top-left mark is cut off can still fail (one of these 16: its confirmation score is too low)."""
    templates = builtin_templates()
    right, overlaps = 0, []
    for corner in range(4):
        for index in range(4):
            page, truth = _scan(index)
            h, w = page.shape
            rows = slice(0, int(0.05 * h)) if corner < 2 else slice(int(0.95 * h), h)
            cols = slice(0, int(0.065 * w)) if corner % 2 == 0 else slice(int(0.935 * w), w)
            page[rows, cols] = 255  # the scanner's edge: that corner's mark is not on the page
            try:
                upright, registration = register_page(page, templates)
            except SegmentError:
                continue
            assert registration.method == "marks"
            assert (registration.template.name, registration.upside_down) == (truth[0]["template"],
                                                                              truth[0]["upside_down"])
            right += 1
            boxes = {cut.field: cut.bbox for cut in cut_fields(upright, registration)}
            overlaps += [_overlap(boxes[t["field"]], t["box"]) for t in truth]
    assert right >= 15 and np.median(overlaps) > 0.8


def test_a_fit_points_off_is_moved_onto_the_forms_printed_lines():
    """A registration by keypoints can be points off where a form prints little; its box walls and rules put it
    right (a tight form of the dev range, drawn at 150 dpi)."""
    from corpus.layouts import truth_template
    from corpus.tight_layouts import tight_layout
    from pipeline.registration.snap import line_correction
    from pipeline.templates.model import render_blank

    template = truth_template(tight_layout(9021))
    page = render_blank(template, 150, line_grey=140)
    k = 150 / 72
    exact = np.diag([k, k, 1.0])
    off = exact @ np.float64([[1.02, 0.0, -3.0], [0.005, 0.99, 4.0], [0, 0, 1]])  # 2% wide, 4 points low
    corners = np.float64([[f.box[0] + a * f.box[2], f.box[1] + b * f.box[3], 1]
                          for f in template.fields for a in (0, 1) for b in (0, 1)]).T

    def points_off(homography):  # the worst field corner, in points
        return np.abs((homography @ corners)[:2] / (homography @ corners)[2] - (exact @ corners)[:2]).max() / k

    assert points_off(off) > 5
    assert points_off(line_correction(page, off, template)) < 0.6
    assert np.allclose(line_correction(np.full_like(page, 255), off, template), off)  # no lines: the fit stands
