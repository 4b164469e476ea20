"""Templates as data: the built-in layouts' JSON, the field rules (length, pattern, Luhn) and loading."""

import json

import pytest

from corpus import builtin_templates
from pipeline.templates.model import check_value, load_templates, luhn_complete, luhn_valid


def test_templates_written_as_data_and_reloadable(forms_corpus):
    out, _ = forms_corpus
    templates = load_templates(out / "templates")
    assert set(templates) == {"deposit_slip", "census_sheet", "invoice", "digit_lines"}
    assert {f.kind for t in templates.values() for f in t.fields} == {"comb", "boxed", "underline", "free"}
    assert {t.page for t in templates.values()} == {"letter", "a4"}
    account = templates["deposit_slip"].field("account")
    assert account.check == "luhn" and account.cells == 10 and len(templates["deposit_slip"].registration_marks) == 4
    raw = json.loads((out / "templates" / "invoice.json").read_text())
    assert raw["width_pt"] == 612 and raw["fields"][0]["kind"] == "underline"


def test_luhn():
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert luhn_valid(luhn_complete("123456789"))
