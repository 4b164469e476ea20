"""Dropout colour: forms printed in red, green or blue are read with their print taken out by colour."""

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from corpus.forms import Ink, corpus_templates, render_document
from corpus.layouts import named_layout, write_blank_pdf
from corpus.scan_kinds import DROPOUT_COLOURS, INK_COLOURS, dropout_colour, hex_colour
from pipeline.reading.dropout import as_grey, drop_print, is_colour, print_colour_of
from pipeline.reading.read import read_pages
from pipeline.registration.register import register_scan
from pipeline.segmentation.segment import cut_fields
from pipeline.templates.lint import lint_template
from pipeline.templates.model import Template
from pipeline.templates.propose import propose_template, read_blank


def _nine() -> np.ndarray:
    """Where the digit's ink is: a '9' whose loop runs through the cell's top line."""
    mask = np.zeros((200, 200), np.uint8)
    cv2.putText(mask, "9", (70, 125), cv2.FONT_HERSHEY_SIMPLEX, 3.2, 255, 9)
    return mask > 0


def _red_box_with_a_digit(light: np.ndarray | None = None) -> np.ndarray:
    """A red comb cell with a black '9' written through its top line; BGR."""
    page = np.full((200, 200, 3), 250, np.uint8)
    cv2.rectangle(page, (50, 60), (150, 170), DROPOUT_COLOURS["red"][::-1], 3)
    page[_nine()] = INK_COLOURS["black"][::-1]
    if light is not None:
        page = (page * light[:, :, None]).astype(np.uint8)
    return page


def test_the_print_goes_and_ink_crossing_it_stays_under_uneven_light():
    light = np.tile(np.linspace(0.75, 1.0, 200, dtype=np.float32), (200, 1))
    page = _red_box_with_a_digit(light)
    dropped = drop_print(page, hex_colour(DROPOUT_COLOURS["red"]))
    assert dropped.ndim == 2
    # The cell's left and bottom walls, in the dark and the light half alike, are paper now.
    assert dropped[100:130, 49:53].min() > 230 and dropped[168:172, 60:140].min() > 230
    # The digit is whole, where it crosses the wall too.
    nine = _nine()
    assert nine[58:63].any() and dropped[nine].max() < 60


def test_a_blank_notes_its_print_colour_and_black_print_notes_none():
    red = _red_box_with_a_digit()
    cv2.rectangle(red, (10, 10), (190, 40), (30, 30, 30), 1)  # a black frame beside red boxes: still a red form
    found = print_colour_of(red)
    assert found is not None and int(found[1:3], 16) > 180 and int(found[3:5], 16) < 160
    grey = cv2.cvtColor(cv2.cvtColor(red, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert print_colour_of(grey) is None
    assert is_colour(red) and not is_colour(grey)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "PDF"])
def test_colour_pages_are_read_in_colour_and_grey_pages_in_grey(fmt):
    rgb = _red_box_with_a_digit()[:, :, ::-1]
    buf = io.BytesIO()
    Image.fromarray(rgb.copy()).save(buf, fmt)
    [page] = list(read_pages(f"f.{fmt.lower()}", buf.getvalue()))
    assert page.image.shape == (200, 200, 3)
    assert abs(int(page.image[100, 51, 2]) - DROPOUT_COLOURS["red"][0]) < 40  # channels in OpenCV's BGR order
    buf = io.BytesIO()
    Image.fromarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).convert("RGB").save(buf, fmt)
    [page] = list(read_pages(f"g.{fmt.lower()}", buf.getvalue()))
    assert page.image.ndim == 2


@pytest.fixture(scope="module")
def colour_template(tmp_path_factory):
    """`template propose` on the clinic form's blank printed in its dropout colour (a PDF)."""
    pdf = tmp_path_factory.mktemp("blank") / "clinic_intake.pdf"
    write_blank_pdf(named_layout("clinic_intake"), str(pdf), colour=dropout_colour("clinic_intake"))
    return propose_template(read_blank(str(pdf)), "clinic_intake", labels=False)


def test_propose_notes_the_print_colour_and_the_template_keeps_it(colour_template):
    r, g, b = dropout_colour("clinic_intake")
    noted = colour_template.print_colour
    assert noted and abs(int(noted[1:3], 16) - r) < 40 and abs(int(noted[3:5], 16) - g) < 50
    d = json.loads(json.dumps(colour_template.to_json()))
    assert d["print_colour"] == noted and not lint_template(d)
    assert Template.from_json(d, colour_template.reference_png).print_colour == noted
    assert any("#rrggbb" in p for p in lint_template({**d, "print_colour": "red"}))


def test_a_colour_scan_registers_by_its_print_and_is_cut_with_the_print_dropped(colour_template):
    templates = corpus_templates(("clinic_intake",), colour=True)
    for index in range(3):
        [page], truth, _, _ = render_document(31, index, "png", 1, Ink(), "s.png", layouts=("clinic_intake",),
                                              scans=("colour",))
        assert page.ndim == 3
        for template in (templates[0], colour_template):
            upright, registration = register_scan(page, [template])
            assert upright.ndim == 2 and registration.upside_down == truth[0]["upside_down"]
            cuts = {c.field: c for c in cut_fields(upright, registration, review=False)}
            if template is templates[0]:  # true field names: every written digit is cut, none merged or lost
                counted = [len(cuts[t["field"]].digits) == len(t["value"]) for t in truth]
                assert sum(counted) >= len(truth) - 1


def test_synth_forms_colour_scans_need_forms_without_marks(tmp_path, capsys):
    from formdigits.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["synth-forms", "--count", "1", "--out", str(tmp_path), "--scans", "colour"])
    assert exit_info.value.code == 2 and "--layouts" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the built-in forms print black marks: one line, not a traceback
        main(["synth-forms", "--count", "1", "--out", str(tmp_path), "--scans", "colour", "--layouts", "builtin"])
    assert "corner marks" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth-forms", "--count", "1", "--out", str(tmp_path), "--scans", "sepia"])
    assert "choose from grey,bitonal,colour" in capsys.readouterr().err
