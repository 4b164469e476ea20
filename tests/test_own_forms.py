"""Forms of the user's own design: a template proposed from the blank, registration by the form's print."""

import json

import cv2
import numpy as np
import pytest

from corpus import builtin_templates
from corpus.forms import Ink, corpus_templates, render_document
from corpus.layouts import NAMED_LAYOUTS, named_layout, truth_template, write_blank_pdf
from corpus.proposals import iou, rename_like, score_proposal
from pipeline.registration.features import _pairs_within
from pipeline.registration.register import register_page
from pipeline.segmentation.segment import cut_fields
from pipeline.templates.propose import propose_template, read_blank
from pipeline.types import SegmentError

FORMS = tuple(NAMED_LAYOUTS)


@pytest.fixture(scope="module")
def proposed(tmp_path_factory):
    """Each named form's template as `template propose` makes it from the blank PDF."""
    out = {}
    for name in FORMS:
        pdf = tmp_path_factory.mktemp("blank") / f"{name}.pdf"
        write_blank_pdf(named_layout(name), str(pdf))
        out[name] = propose_template(read_blank(str(pdf)), name)
    return out


@pytest.mark.slow  # proposing four blanks reads every label with Tesseract (~8 s)
@pytest.mark.parametrize("name", FORMS)
def test_every_digit_field_is_proposed_with_its_kind_and_cells(proposed, name):
    score = score_proposal(proposed[name], truth_template(named_layout(name)))
    assert score["right"] == score["true_fields"] and score["false_fields"] == 0, score
    assert not any(f.required for f in proposed[name].fields)  # tables have spare rows: empty is not a flag


@pytest.mark.slow
def test_fields_are_named_from_their_printed_labels_in_reading_order(proposed):
    names = [f.name for f in proposed["bank_giro"].fields]
    assert names == ["account_number", "sort_code", "amount_whole_units", "cheques", "date_ddmmyyyy",
                     "payment_reference"]
    marks = [f.name for f in proposed["school_marks"].fields]
    assert "alice_moreau_maths" in marks and "farid_haddad_absences" in marks  # row label + column head


def _filled(index: int, layouts=FORMS):
    [page], truth, _, _ = render_document(77, index, "png", 1, Ink(), f"scan_{index}.png", layouts=layouts)
    return page, truth


def test_filled_scans_register_by_their_print_and_fields_land_on_their_boxes():
    templates = corpus_templates(FORMS)
    for index in range(6):
        page, truth = _filled(index)
        upright, registration = register_page(page, templates)
        assert registration.method == "features" and registration.template.name == truth[0]["template"]
        assert registration.upside_down == truth[0]["upside_down"]
        boxes = {cut.field: cut.bbox for cut in cut_fields(upright, registration)}
        for row in truth:
            assert iou(boxes[row["field"]], row["box"]) > 0.6, (index, row["field"])


def test_a_page_scanned_sideways_is_turned_and_boxes_reported_as_scanned():
    page, truth = _filled(1)
    sideways = np.ascontiguousarray(np.rot90(page, -1))  # turned clockwise on the scanner
    upright, registration = register_page(sideways, corpus_templates(FORMS))
    assert registration.rotation == 90 and upright.shape == page.shape
    H, _ = page.shape
    boxes = {cut.field: cut.bbox for cut in cut_fields(upright, registration)}
    for row in truth:
        x, y, w, h = row["box"]
        assert iou(boxes[row["field"]], (H - y - h, x, h, w)) > 0.6, row["field"]


def test_a_page_of_no_known_form_says_so_with_the_best_score():
    page, _ = _filled(0, layouts=("builtin",))  # a built-in form, but only the marks-free forms are known
    with pytest.raises(SegmentError, match=r"no template matches this page \(best score \d+ matching points"):
        register_page(page, corpus_templates(FORMS))


def test_built_in_forms_keep_their_corner_mark_fast_path():
    page, truth = _filled(0, layouts=("builtin",))
    _, registration = register_page(page, builtin_templates() + corpus_templates(FORMS))
    assert registration.method == "marks" and registration.template.name == truth[0]["template"]


@pytest.mark.slow
def test_propose_and_check_from_the_command_line(tmp_path, capsys):
    from formdigits.cli import main

    write_blank_pdf(named_layout("clinic_intake"), str(tmp_path / "blank.pdf"))
    assert main(["template", "propose", str(tmp_path / "blank.pdf"), "--name", "clinic", "--out",
                 str(tmp_path / "t")]) == 0
    written = json.loads((tmp_path / "t" / "clinic.json").read_text())
    assert written["registration_marks"] == [] and written["reference"] == "clinic.png"
    assert len(written["fields"]) == len(named_layout("clinic_intake").fields)
    assert cv2.imread(str(tmp_path / "t" / "clinic.preview.png")) is not None
    page, _ = _filled(0, layouts=("clinic_intake",))
    cv2.imwrite(str(tmp_path / "scan.png"), page)
    assert main(["template", "check", str(tmp_path / "t" / "clinic.json"), str(tmp_path / "scan.png"),
                 "--out", str(tmp_path / "check.png")]) == 0
    assert "registered by features" in capsys.readouterr().out
    assert cv2.imread(str(tmp_path / "check.png")).shape[:2] == page.shape


def test_a_bad_template_name_fails_fast_with_one_line(tmp_path, capsys):
    from formdigits.cli import main

    write_blank_pdf(named_layout("bank_giro"), str(tmp_path / "blank.pdf"))
    with pytest.raises(SystemExit) as exit_info:
        main(["template", "propose", str(tmp_path / "blank.pdf"), "--name", "my form", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "use letters, digits" in capsys.readouterr().err


@pytest.mark.slow
def test_run_over_own_forms_from_proposed_templates(proposed, server, tmp_path):
    """End to end: proposed templates (fields renamed only) through the real pipeline and server."""
    from corpus.forms import synth_forms
    from formdigits.cli import main
    from pipeline.output.query import run_query
    from pipeline.templates.model import save_templates

    synth_forms(4, str(tmp_path / "scans"), seed=78, formats=("png",), workers=1, layouts=FORMS)
    save_templates([rename_like(proposed[n], truth_template(named_layout(n))) for n in FORMS], tmp_path / "t")
    assert main(["run", "--input", str(tmp_path / "scans" / "scan_*"), "--templates", str(tmp_path / "t"),
                 "--output", str(tmp_path / "out"), "--serving", server.target]) == 0
    truth = [json.loads(line) for line in (tmp_path / "scans" / "truth.jsonl").read_text().splitlines()]
    _, rows = run_query(str(tmp_path / "out"), "SELECT source_uri, field FROM fields")
    assert {(r["source"], r["field"]) for r in truth} <= {(r[0].rsplit("/", 1)[-1], r[1]) for r in rows}
    assert not run_query(str(tmp_path / "out"), "SELECT * FROM rejects WHERE stage = 'segment'")[1]


def test_keypoint_pairs_within_a_radius_are_every_such_pair_in_order():
    # The registration refit pairs keypoints by distance without measuring every pair; it must find the same
    # pairs, in the same order, as the full distance matrix (MAGSAC's result depends on the order).
    rng = np.random.default_rng(3)
    a = rng.random((300, 2), dtype=np.float32) * 200
    b = np.concatenate([a[:100] + rng.normal(0, 2, (100, 2)).astype(np.float32),
                        rng.random((400, 2), dtype=np.float32) * 200])
    d = (a[:, None, :] - b[None, :, :]) ** 2
    expected = np.nonzero(d[..., 0] + d[..., 1] < 16.0)
    i, j = _pairs_within(a, b, 4.0)
    assert len(i) > 100
    np.testing.assert_array_equal(i, expected[0])
    np.testing.assert_array_equal(j, expected[1])
    empty = _pairs_within(a, b[:0], 4.0)
    assert len(empty[0]) == len(empty[1]) == 0


def test_a_two_page_form_is_proposed_page_by_page_and_scans_register_to_their_page(tmp_path, capsys):
    import pypdfium2 as pdfium

    from formdigits.cli import main
    from pipeline.templates.model import load_templates

    two = pdfium.PdfDocument.new()
    for number, name in enumerate(("clinic_intake", "census_return")):
        write_blank_pdf(named_layout(name), str(tmp_path / f"{name}.pdf"))
        two.import_pages(pdfium.PdfDocument(str(tmp_path / f"{name}.pdf")), index=number)
    two.save(str(tmp_path / "form.pdf"))
    out = tmp_path / "t"
    assert main(["template", "propose", str(tmp_path / "form.pdf"), "--name", "lab", "--out", str(out),
                 "--no-labels"]) == 0
    templates = load_templates(out)
    assert sorted(templates) == ["lab_p1", "lab_p2"]
    assert len(templates["lab_p2"].fields) == len(named_layout("census_return").fields)
    page, _ = _filled(0, layouts=("census_return",))
    _, registration = register_page(page, list(templates.values()))
    assert registration.template.name == "lab_p2"
    assert main(["template", "propose", str(tmp_path / "form.pdf"), "--name", "lab", "--out", str(tmp_path / "one"),
                 "--no-labels", "--page", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "one").glob("*.json")) == ["lab_p2.json"]
    assert main(["template", "propose", str(tmp_path / "form.pdf"), "--name", "lab", "--out", str(out),
                 "--page", "3"]) == 2
    assert "has 2 pages; there is no page 3" in capsys.readouterr().err


@pytest.mark.slow  # Tesseract reads each blank's labels
@pytest.mark.parametrize("seed", [9001, 9003, 9056])
def test_tight_forms_are_proposed_whole(seed, tmp_path):
    """Tight primitives (dev seeds): separate-box and ticked combs of 12-17 pt, a table of amounts with spacer
    columns and a 14-point header row, long and dotted lines with the label on their left, a signature line,
    lines printed thin and light grey (9056), fine print and a barcode."""
    from corpus.tight_layouts import tight_layout

    layout = tight_layout(seed)
    write_blank_pdf(layout, str(tmp_path / "blank.pdf"))
    proposed = propose_template(read_blank(str(tmp_path / "blank.pdf")), layout.name)
    score = score_proposal(proposed, truth_template(layout))
    assert score["right"] == score["true_fields"] and score["false_fields"] == 0, score


@pytest.mark.slow  # Tesseract reads each blank's labels
def test_tight_forms_with_light_rulings_and_little_print_register_to_their_own_template(tmp_path):
    """Dev designs that registration refused: 9028 prints its table rulings light grey (the blank's level
    threshold missed them, so the filled page seemed to print lines its form does not), 9026 shares its title
    block with 9014 (9014 had the most matching points)."""
    from corpus.tight_layouts import tight_layout

    templates = []
    for seed in (9014, 9026, 9028):
        layout = tight_layout(seed)
        write_blank_pdf(layout, str(tmp_path / f"{seed}.pdf"))
        templates.append(propose_template(read_blank(str(tmp_path / f"{seed}.pdf")), layout.name))
    for index in range(6):
        [page], truth, _, _ = render_document(5151, index, "png", 1, Ink(), "scan.png",
                                              layouts=("tight:9026", "tight:9028"))
        upright, registration = register_page(page, templates)
        assert registration.template.name == truth[0]["template"], index
        boxes = [cut.bbox for cut in cut_fields(upright, registration)]
        for row in truth:  # every written field lands on a proposed field's box
            assert max(iou(box, row["box"]) for box in boxes) > 0.6, (index, row["field"])
