"""Cutting a page into fields: how far a registered field reaches; lines of writing found without a template."""

from corpus import builtin_templates
from corpus.forms import Ink, render_document
from corpus.handwriting import find_handwriting_fonts
from pipeline.registration.register import register_page
from pipeline.segmentation.lines import find_lines
from pipeline.segmentation.segment import cut_fields


def test_writing_that_runs_past_the_last_box_of_a_row_is_kept(real_mnist):
    # Real-ink corpus seed 7373, file 89: the postcode "46062" runs past its box, the last on its row,
    # towards the paper's edge; the field stopped 24 points short of the edge and lost the final 2.
    ink = Ink(kind="mnist", mnist_path=str(real_mnist), mnist_split="validation")
    [page], truth, _, _ = render_document(7373, 88, "png", 1, ink, "scan_00089.png")
    upright, registration = register_page(page, builtin_templates())
    [postcode] = [cut for cut in cut_fields(upright, registration) if cut.field == "r05_postcode"]
    assert [row["value"] for row in truth if row["field"] == "r05_postcode"] == ["46062"]
    assert len(postcode.digits) == 5


def test_without_a_template_only_the_handwriting_becomes_lines():
    # Corpus seed 8484, file 5: a digit sheet with corner marks, a printed title, a "REF" number and a stamp.
    # The marks' row and the small print were lines of their own before; each line of writing is one now.
    [page], truth, _, _ = render_document(8484, 4, "png", 1, Ink(fonts=tuple(find_handwriting_fonts())),
                                          "scan_00005.png")
    lines = find_lines(page, review=False)
    written = [row["value"] for row in truth if row["value"]]
    assert len(lines) == len(written) == 11
    assert sum(len(line.digits) == len(value) for line, value in zip(lines, written)) >= 10


def test_a_table_cell_keeps_no_margin_into_the_next_cell_whose_wall_it_shares():
    from pipeline.segmentation.segment import _right_margin
    from pipeline.templates.model import Field, Template

    # Proposed boxes are rounded to 0.1 pt: 334.1 + 80.3 is 414.40000000000003, past the next cell's 414.4.
    english = Field("english", "boxed", (334.1, 182.2, 80.3, 25.9), 1, 5)
    absences = Field("absences", "boxed", (414.4, 182.2, 79.2, 25.9), 1, 5)
    table = Template(name="marks", title="", page="letter", fields=(english, absences), has_marks=False)
    assert _right_margin(table, english) == 0.0
