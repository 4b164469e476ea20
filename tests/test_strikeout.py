"""The struck-through-digit detector: its numpy network, the shipped weights, and how segmentation uses it."""

import datetime

import numpy as np
import pytest

from corpus import builtin_templates
from corpus.filling import CROSS_OUT_RATE
from corpus.forms import Ink, render_document
from model_export.strikeout import build_network, isolated_strike_crops, train_detector
from pipeline.assembly.assemble import FieldInfo, ReadDigit, assemble_field
from pipeline.segmentation import strikeout
from pipeline.segmentation.strikeout import WEIGHT_NAMES, StrikeDetector, drop_struck, load_detector
from pipeline.types import DigitCut


@pytest.fixture(scope="module")
def rendered():
    """Digits rendered alone by writers the shipped detector never saw, every other one struck."""
    return isolated_strike_crops(240, seed=4242, stream=9, workers=1, ink=Ink())


def test_numpy_network_matches_keras():
    network = build_network()
    weights = [w for layer in network.layers for w in layer.get_weights()]
    rng = np.random.default_rng(0)
    # Random weights are too small to tell layouts apart; scale them up.
    weights = [w + rng.normal(0, 0.3, w.shape).astype(np.float32) for w in weights]
    network.set_weights(weights)
    detector = StrikeDetector(dict(zip(WEIGHT_NAMES, weights)), threshold=0.5)
    crops = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
    expected = network.predict(crops[..., None], verbose=0)[:, 0]
    np.testing.assert_allclose(detector.scores(crops), expected, rtol=1e-4, atol=1e-5)


def test_shipped_detector_tells_struck_from_ordinary(rendered):
    detector = load_detector()
    assert detector is not None, "pipeline/data/strikeout.npz is missing (python -m model_export.strikeout)"
    crops, struck = rendered
    hits = detector.is_struck(crops)
    assert hits[struck == 1].mean() >= 0.6
    assert hits[struck == 0].mean() <= 0.02


def _cut(position, crop):
    return DigitCut(position, crop, (position * 30, 0, 28, 28), crop)


def test_drop_struck_leaves_out_the_struck_digit_and_renumbers(rendered):
    crops, struck = rendered
    scores = load_detector().scores(crops)
    ordinary = [c for c, s, y in zip(crops, scores, struck) if y == 0 and s < 0.01][:3]
    crossed = next(c for c, s, y in zip(crops, scores, struck) if y == 1 and s > 0.9999)
    digits = [_cut(0, ordinary[0]), _cut(1, crossed), _cut(2, ordinary[1]), _cut(3, ordinary[2])]

    [(kept, dropped)] = drop_struck([(digits, 1, 4)])
    assert dropped == 1
    assert [d.position for d in kept] == [0, 1, 2]
    assert [d.bbox[0] for d in kept] == [0, 60, 90]

    # A field already at its template's minimum length has no extra digit to drop.
    [(kept, dropped)] = drop_struck([(digits, 4, 4)])
    assert dropped == 0 and len(kept) == 4


def test_drop_struck_never_empties_a_field(rendered):
    crops, struck = rendered
    scores = load_detector().scores(crops)
    crossed = [c for c, s, y in zip(crops, scores, struck) if y == 1 and s > 0.9999][:2]
    [(kept, dropped)] = drop_struck([([_cut(0, crossed[0]), _cut(1, crossed[1])], 0, 2)])
    assert len(kept) == 1 and dropped == 1


def test_truth_records_where_a_digit_was_struck():
    _, truth, _, _ = render_document(7, 0, "png", 2, Ink(), "doc.png", cross_out_rate=1.0)
    struck = [t for t in truth if t["struck"] is not None]
    assert struck, "every written underline or free field has a struck digit at rate 1.0"
    assert all(0 <= t["struck"] < len(t["value"]) for t in struck)
    # Comb cells and boxes hold digits apart: people overwrite there, they do not strike through.
    kinds = {(tpl.name, f.name): f.kind for tpl in builtin_templates() for f in tpl.fields}
    assert all(kinds[t["template"], t["field"]] in ("underline", "free") for t in struck)
    assert 0 < CROSS_OUT_RATE < 0.1


def test_a_field_with_a_struck_digit_is_flagged():
    info = FieldInfo(("file:///a.png", 1, "amount"), "invoice", None, (0, 0, 10, 10), digits_cut=2, struck=1)
    probabilities = np.full(10, 0.001, np.float32)
    probabilities[4] = 0.991
    digits = [ReadDigit(i, (0, 0, 5, 5), probabilities, "lenet5", 1) for i in range(2)]
    row, _ = assemble_field(info, digits, review_threshold=0.9, run_id="t", processed_at=datetime.datetime(2026, 1, 1))
    assert row.value == "44"
    assert row.needs_review and "1 struck-through digit(s) left out" in row.review_reason


def test_training_sets_the_threshold_from_held_out_ordinary_digits(rendered):
    crops, struck = rendered
    detector, report = train_detector((crops, struck), (crops, struck), epochs=1, max_false_rate=0.05)
    scores = detector.scores(crops)
    assert report["heldout"]["false_rate"] <= 0.05
    assert (scores[struck == 0] > detector.threshold).mean() == pytest.approx(report["heldout"]["false_rate"], abs=1e-6)
    assert set(detector.weights) == set(WEIGHT_NAMES)


def test_an_overfull_field_drops_its_likeliest_struck_digit_on_weaker_evidence(monkeypatch):
    shipped = strikeout.load_detector()
    crops, struck = isolated_strike_crops(60, seed=4242, stream=9, workers=1, ink=Ink())
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
