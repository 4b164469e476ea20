"""The shared MNIST normalisation."""

import cv2
import numpy as np
import pytest

from pipeline.segmentation.normalize import EmptyCropError, mnist_normalize, stretch_ink


def _scan_of_digit(text="7", size=(120, 90)):
    """A dark-on-white crop like a scanner gives: grey paper, noise, a printed digit."""
    rng = np.random.default_rng(0)
    page = np.full(size, 215, np.uint8)
    cv2.putText(page, text, (15, 95), cv2.FONT_HERSHEY_SIMPLEX, 3.2, 40, 9, cv2.LINE_AA)
    noisy = page.astype(np.int16) + rng.normal(0, 6, size).astype(np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def test_output_is_28x28_uint8_with_paper_zero():
    out = mnist_normalize(_scan_of_digit(), ink_is_dark=True)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out[0].max() == 0 and out[:, 0].max() == 0  # paper (and its noise) is exactly 0
    assert out.max() > 230  # stroke core near 255 (sub-pixel centring blurs it slightly)


def test_ink_fits_20x20_box_and_keeps_aspect():
    crop = np.zeros((200, 50), np.uint8)
    crop[10:190, 20:30] = 255  # a tall bar, 18:1
    out = mnist_normalize(crop, stretch=False)
    ys, xs = np.nonzero(out > 64)
    assert ys.max() - ys.min() + 1 in (20, 21)
    assert xs.max() - xs.min() + 1 <= 3


def test_centre_of_mass_is_centred():
    crop = np.zeros((60, 60), np.uint8)
    cv2.circle(crop, (12, 40), 10, 255, -1)  # far off-centre in its crop
    out = mnist_normalize(crop, stretch=False).astype(np.float64)
    m = cv2.moments(out)
    assert abs(m["m10"] / m["m00"] - 13.5) < 0.6
    assert abs(m["m01"] / m["m00"] - 13.5) < 0.6


def test_grey_levels_are_kept():
    out = mnist_normalize(_scan_of_digit(), ink_is_dark=True)
    edges = np.count_nonzero((out > 0) & (out < 255))
    assert edges > 20  # anti-aliased edges, not a binarised digit


def test_dark_and_bright_polarity_give_the_same_digit():
    crop = _scan_of_digit("3")
    a = mnist_normalize(crop, ink_is_dark=True)
    b = mnist_normalize(255 - crop)
    assert np.array_equal(a, b)


def test_faint_pencil_is_stretched_to_full_range():
    faint = (_scan_of_digit("5").astype(np.float32) * 0.25 + 180).astype(np.uint8)  # paper 234, ink 190
    out = mnist_normalize(faint, ink_is_dark=True)
    assert out.max() > 230 and out[0].max() == 0


@pytest.mark.parametrize("crop", [np.zeros((30, 30), np.uint8), np.full((30, 30), 90, np.uint8)])
def test_blank_crop_raises(crop):
    with pytest.raises(EmptyCropError):
        mnist_normalize(crop)


def test_stretch_rejects_colour_images():
    with pytest.raises(ValueError, match="2-D"):
        stretch_ink(np.zeros((5, 5, 3), np.uint8))
