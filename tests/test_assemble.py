"""Assembling a field: value, confidence, review reasons, and readings made to fit the field's rules."""

import datetime

import numpy as np

from pipeline.assemble import FieldInfo, ReadDigit, assemble_field, best_fitting_reading
from corpus import builtin_templates
from pipeline.templates import luhn_complete, luhn_valid

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
    assert row["value"] == "1987"
    assert row["needs_review"] and "read as 7987, corrected to fit the field's pattern" in row["review_reason"]
    assert (digit_rows[0]["digit"], digit_rows[0]["second_digit"]) == (1, 7)
    assert row["confidence"] == digit_rows[0]["confidence"] < 0.5
    assert f"low confidence {row['confidence']:.2f} at position 0" in row["review_reason"]


def test_a_failed_check_digit_changes_the_least_certain_digit():
    account = luhn_complete("799273987")
    wrong = account[:4] + "5" + account[5:]         # the 5th digit misread as 5, with 7 close behind
    assert not luhn_valid(wrong)
    probabilities = _probs(wrong, {4: (int(account[4]), 0.35)})
    assert best_fitting_reading(ACCOUNT, probabilities) == account
    row, _ = _assemble(ACCOUNT, probabilities, "deposit_slip")
    assert row["value"] == account and "luhn check digit" in row["review_reason"]


def test_no_correction_when_nothing_fitting_is_nearly_as_likely():
    # Every digit sure of itself: the rule more likely caught a writing mistake than a misread.
    probabilities = _probs("7987")
    assert best_fitting_reading(BIRTH_YEAR, probabilities) is None
    row, _ = _assemble(BIRTH_YEAR, probabilities)
    assert row["value"] == "7987" and "pattern mismatch" in row["review_reason"]


def test_a_reading_that_fits_is_left_alone():
    row, _ = _assemble(BIRTH_YEAR, _probs("1987", {2: (3, 0.05)}))
    assert row["value"] == "1987" and not row["needs_review"]
