"""Cutting a registered page's fields: how far a field reaches, and what comes out of it."""

from corpus import builtin_templates
from corpus.forms import Ink, render_document
from pipeline.register import register_page
from pipeline.segment import cut_fields


def test_writing_that_runs_past_the_last_box_of_a_row_is_kept(real_mnist):
    # Real-ink corpus seed 7373, file 89: the postcode "46062" runs past its box, the last on its row,
    # towards the paper's edge; the field stopped 24 points short of the edge and lost the final 2.
    ink = Ink(kind="mnist", mnist_path=str(real_mnist), mnist_split="validation")
    [page], truth, _, _ = render_document(7373, 88, "png", 1, ink, "scan_00089.png")
    upright, registration = register_page(page, builtin_templates())
    [postcode] = [cut for cut in cut_fields(upright, registration) if cut.field == "r05_postcode"]
    assert [row["value"] for row in truth if row["field"] == "r05_postcode"] == ["46062"]
    assert len(postcode.digits) == 5
