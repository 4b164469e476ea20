"""Assembling a field: value, confidence, review reasons, and readings made to fit the field's rules."""

import datetime

import numpy as np
import pytest

from corpus import builtin_templates
from pipeline.assembly.assemble import FieldInfo, ReadDigit, assemble_field, best_fitting_reading, settle_alternatives
from pipeline.segmentation.field_pictures import GREY_LEVELS, clean_paper
from pipeline.templates.model import Field, luhn_complete, luhn_valid
from pipeline.types import AlternativeCut, DigitCut, FieldCut, PageCut

TEMPLATES = {t.name: t for t in builtin_templates()}
BIRTH_YEAR = TEMPLATES["census_sheet"].field("r01_birth_year")
ACCOUNT = TEMPLATES["deposit_slip"].field("account")


def _probs(reading: str, doubts: dict[int, tuple[int, float]] | None = None) -> np.ndarray:
    """Confident probabilities for `reading`; doubts[position] = (other digit, its probability)."""
    out = np.full((len(reading), 10), 0.001)
    for i, ch in enumerate(reading):
        other, p = (doubts or {}).get(i, (None, 0.0))
        out[i, int(ch)] = 0.99 - p
        if other is not None:
            out[i, other] = p
    return out / out.sum(axis=1, keepdims=True)


def _assemble(spec, probabilities, template="census_sheet"):
    info = FieldInfo(("file:///s.png", 1, spec.name), template, spec, (0, 0, 10, 10), len(probabilities))
    digits = [ReadDigit(i, (i, 0, 1, 1), p, "lenet5", 1) for i, p in enumerate(probabilities)]
    return assemble_field(info, digits, review_threshold=0.9, run_id="t", processed_at=datetime.datetime(2026, 1, 1))


def test_a_reading_that_breaks_the_pattern_takes_the_likeliest_fitting_one():
    # "7987": a 1 read as 7, with 1 as the runner-up; birth years are 19xx or 20xx.
    probabilities = _probs("7987", {0: (1, 0.3)})
    assert best_fitting_reading(BIRTH_YEAR, probabilities) == "1987"
    row, digit_rows = _assemble(BIRTH_YEAR, probabilities)
    assert row.value == "1987"
    assert row.needs_review and "read as 7987, corrected to fit the field's pattern" in row.review_reason
    assert (digit_rows[0].digit, digit_rows[0].second_digit) == (1, 7)
    assert row.confidence == digit_rows[0].confidence < 0.5
    assert f"low confidence {row.confidence:.2f} at digit 1" in row.review_reason


def test_a_failed_check_digit_changes_the_least_certain_digit():
    account = luhn_complete("799273987")
    wrong = account[:4] + "5" + account[5:]         # the 5th digit misread as 5, with 7 close behind
    assert not luhn_valid(wrong)
    probabilities = _probs(wrong, {4: (int(account[4]), 0.35)})
    assert best_fitting_reading(ACCOUNT, probabilities) == account
    row, _ = _assemble(ACCOUNT, probabilities, "deposit_slip")
    assert row.value == account and "luhn check digit" in row.review_reason


def test_no_correction_when_nothing_fitting_is_nearly_as_likely():
    # Every digit sure of itself: the rule more likely caught a writing mistake than a misread.
    probabilities = _probs("7987")
    assert best_fitting_reading(BIRTH_YEAR, probabilities) is None
    row, _ = _assemble(BIRTH_YEAR, probabilities)
    assert row.value == "7987" and "pattern mismatch" in row.review_reason


def test_a_reading_that_fits_is_left_alone():
    row, _ = _assemble(BIRTH_YEAR, _probs("1987", {2: (3, 0.05)}))
    assert row.value == "1987" and not row.needs_review


def _cut_page(spec, n_digits: int, first: int, count: int, n_other: int) -> PageCut:
    """One field of `n_digits` digit cuts, with `n_other` other cuts offered for digits [first, first + count)."""
    crop = np.full((28, 28), 255, np.uint8)
    digits = [DigitCut(i, crop, (10 * i, 0, 8, 10), crop, field_box=(10 * i, 0, 8, 10)) for i in range(n_digits)]
    width = (10 * count - 2) // n_other
    others = [DigitCut(first + k, crop, (10 * first + k * width, 0, width, 10), crop) for k in range(n_other)]
    return PageCut("file:///s.png", 1, [FieldCut("t", spec.name, spec, (0, 0, 99, 10), digits,
                                                 alternatives=[AlternativeCut(first, count, others)])])


def _settle(spec, now: str, count: int, other: str, other_p: float, doubt: float = 0.0):
    """Settles a field read as `now`, whose last `count` digits (each `doubt` unsure) segmentation could also
    cut as `other`, each of those read with probability `other_p`."""
    page = _cut_page(spec, len(now), len(now) - count, count, len(other))
    doubts = {len(now) - 1 - k: (9, doubt) for k in range(count)}
    other_p = np.vstack([np.where(np.arange(10) == int(ch), other_p, (1 - other_p) / 9) for ch in other])
    versions = [1] * len(now) + [2] * len(other)
    settled = settle_alternatives(page.read_by(np.vstack([_probs(now, doubts), other_p]), "lenet5", versions))
    [cut] = settled.fields
    assert [d.position for d in cut.digits] == list(range(len(cut.digits))) and cut.alternatives == []
    assert all(d.read is not None for d in cut.digits)  # each digit kept its own reading
    return "".join(str(int(d.read.probabilities.argmax())) for d in cut.digits), cut, [d.read for d in cut.digits]


FREE = Field("line01", "free", (0, 0, 160, 34), min_length=1, max_length=12)


def test_a_blob_cut_in_two_is_read_whole_when_the_model_finds_one_digit_likelier():
    # One wide 2 cut into a 7 and an L-shaped stroke: neither piece is a sure digit, the whole is.
    value, cut, reads = _settle(FREE, "4172", 2, "2", 0.97, doubt=0.4)
    assert value == "412" and cut.digits[2].bbox == (20, 0, 18, 10) and [r.model_version for r in reads] == [1, 1, 2]
    # Two touching digits, each sure once cut apart, stay two.
    assert _settle(FREE, "4172", 2, "0", 0.9)[0] == "4172"


def test_any_other_cut_is_settled_the_same_way_one_digit_cut_in_two_included():
    # Settling does not care which way the other cut goes: one unsure 4 against a sure 1 and 7.
    value, cut, reads = _settle(FREE, "584", 1, "17", 0.99, doubt=0.5)
    assert value == "5817" and [d.position for d in cut.digits] == [0, 1, 2, 3]
    assert _settle(FREE, "584", 1, "17", 0.7)[0] == "584", "a sure digit is not cut into unsure ones"


def test_the_fields_length_rule_decides_between_the_two_cuts():
    postcode = Field("postcode", "boxed", (0, 0, 116, 34), min_length=5, max_length=5)
    assert _settle(postcode, "12345", 2, "2", 0.99)[0] == "12345", "only the pieces give a postcode's length"
    assert _settle(postcode, "1284", 1, "17", 0.3)[0] == "12817", "only the cut gives a postcode's length"
    household = Field("household", "boxed", (0, 0, 56, 34), min_length=1, max_length=1)
    assert _settle(household, "71", 2, "2", 0.3)[0] == "2", "only the whole fits one digit"


def test_a_kept_review_picture_has_white_paper_under_shading_and_few_grey_levels():
    # A field scanned on paper shaded from 250 down to 150, with a stroke of ink at 40: once kept, the
    # paper is white all across and the stroke dark, in GREY_LEVELS levels (what keeps the PNG small).
    grey = np.tile(np.linspace(250, 150, 240).astype(np.uint8), (60, 1))
    grey[25:35, 20:220] = 40
    clean = clean_paper(grey)
    assert clean.dtype == np.uint8 and clean.shape == grey.shape
    assert (clean[:20] == 255).all() and (clean[40:] == 255).all()
    assert (clean[27:33, 30:210] < 80).all()
    assert len(np.unique(clean)) <= GREY_LEVELS
    assert clean_paper(grey[:5]) is not None and np.array_equal(clean_paper(grey[:5]), grey[:5])


def test_an_empty_field_is_flagged_only_when_the_template_requires_it():
    required = Field("amount", "boxed", (0, 0, 100, 20), 1, 8)
    optional = Field("amount", "boxed", (0, 0, 100, 20), 1, 8, required=False)
    row, _ = _assemble(required, np.zeros((0, 10)))
    assert row.value == "" and row.needs_review and row.review_reason == "empty"
    row, _ = _assemble(optional, np.zeros((0, 10)))
    assert row.value == "" and not row.needs_review
    row, _ = _assemble(optional, _probs("1"))  # written, an optional field keeps its other rules
    assert row.value == "1" and not row.needs_review
    assert Field.from_json(optional.to_json()) == optional and "required" not in required.to_json()


def test_a_digit_with_no_ink_left_flags_its_field_and_is_not_a_reject():
    spec = Field("amount", "boxed", (0, 0, 100, 20), 1, 8)
    info = FieldInfo(("file:///s.png", 1, "amount"), "t", spec, (0, 0, 10, 10), 3)  # three cut, one came out empty
    digits = [ReadDigit(i, (i, 0, 1, 1), p, "lenet5", 1) for i, p in enumerate(_probs("12"))]
    row, digit_rows = assemble_field(info, digits, review_threshold=0.9, run_id="t",
                                     processed_at=datetime.datetime(2026, 1, 1))
    assert row.value == "12" and row.needs_review and "1 digit(s) unreadable" in row.review_reason


def test_each_digit_carries_its_own_reading_in_the_order_its_crop_was_sent():
    page = _cut_page(FREE, 3, 1, 1, 2)  # three digits, the middle one also offered as two
    crops = page.crops()
    assert len(crops) == 5
    answers = np.eye(10, dtype=np.float32)[[1, 2, 3, 4, 5]]
    read = page.read_by(answers, "lenet5", [7] * 5)
    [cut] = read.fields
    assert [int(d.read.probabilities.argmax()) for d in cut.digits] == [1, 2, 3]
    assert [int(d.read.probabilities.argmax()) for d in cut.alternatives[0].digits] == [4, 5]
    assert page.fields[0].digits[0].read is None  # the page as cut is left as it was
    with pytest.raises(ValueError, match="4 answers for 5 crops"):
        page.read_by(answers[:4], "lenet5", [7] * 4)
