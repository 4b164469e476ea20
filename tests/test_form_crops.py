"""Training crops cut from filled forms by the pipeline's own code, labelled by the generator's truth."""

import numpy as np
import pytest

from bench.own_forms import HELD_OUT_LAYOUT_SEEDS, SCAN_LAYOUTS
from corpus.forms import Ink
from model_export.form_crops import OWN_FORM_LAYOUTS, OWN_FORM_SCANS, generate_own_form_crops


def test_the_tight_forms_training_cuts_from_are_none_the_bench_reads():
    bench = set(SCAN_LAYOUTS) | {f"random:{seed}" for seed in HELD_OUT_LAYOUT_SEEDS}
    assert not bench & set(OWN_FORM_LAYOUTS["train"]) and not bench & set(OWN_FORM_LAYOUTS["heldout"])
    assert not set(OWN_FORM_LAYOUTS["train"]) & set(OWN_FORM_LAYOUTS["heldout"])
    assert set(OWN_FORM_SCANS) == {"grey", "bitonal", "colour"}


@pytest.mark.slow  # each worker draws the 24 layouts' blanks once (~15 s)
def test_crops_from_forms_without_marks_are_labelled_digits_and_repeat_by_seed():
    ink = Ink(fonts=())  # stroke writers: no fonts needed
    x, y = generate_own_form_crops(120, seed=3, stream=1, workers=1, ink=ink)
    assert x.shape == (120, 28, 28) and x.dtype == np.uint8 and set(np.unique(y)) <= set(range(10))
    assert len(set(y.tolist())) >= 8 and (x.reshape(len(x), -1).max(axis=1) > 128).all()  # ink bright, as served
    again, labels = generate_own_form_crops(120, seed=3, stream=1, workers=1, ink=ink)
    assert np.array_equal(again, x) and np.array_equal(labels, y)
