"""Per-epoch distortions of normalised crops (model_export.augment)."""

import numpy as np
import pytest

from corpus import handwriting as synthetic
from model_export.augment import Distortions, distort_batch


@pytest.fixture(scope="module")
def crops():
    return synthetic.generate(200, seed=5, workers=1)[0]


def test_no_movement_is_the_identity(crops):
    still = Distortions(share=1.0, rotate_deg=0, scale=0, shear=0, shift_px=0)
    assert np.array_equal(distort_batch(crops, np.random.default_rng(0), still), crops)


def test_share_of_crops_warped_and_the_input_untouched(crops):
    before = crops.copy()
    out = distort_batch(crops, np.random.default_rng(1), Distortions(share=0.5))
    changed = (out != crops).reshape(len(crops), -1).any(axis=1).mean()
    assert 0.35 < changed < 0.65
    assert np.array_equal(crops, before)


def test_warped_digits_stay_mnist_like(crops):
    out = distort_batch(crops, np.random.default_rng(2), Distortions(share=1.0))
    # Small moves: the digit keeps most of its ink, stays inside the frame and near the centre, so
    # its centre of mass stays within a couple of pixels of where normalisation put it.
    ink_before = crops.reshape(len(crops), -1).sum(axis=1)
    ink_after = out.reshape(len(out), -1).sum(axis=1)
    assert np.all(ink_after > 0.75 * ink_before) and np.all(ink_after < 1.25 * ink_before)
    assert out[:, :, 0].max() < 128 and out[:, 0, :].max() < 128
    ys, xs = np.mgrid[:28, :28]
    for image in out[:20]:
        w = image.astype(np.float64)
        assert abs((w * xs).sum() / w.sum() - 13.5) < 2.5 and abs((w * ys).sum() / w.sum() - 13.5) < 2.5


def test_same_seed_same_distortions(crops):
    a = distort_batch(crops, np.random.default_rng(3))
    b = distort_batch(crops, np.random.default_rng(3))
    assert np.array_equal(a, b)
