"""The synthetic handwriting generator."""

import numpy as np

from corpus import handwriting as synthetic
from corpus.glyphs import ALLOGRAPHS, catmull_rom


def test_same_seed_same_bytes_whatever_the_worker_count():
    a_img, a_lab = synthetic.generate(300, seed=11, workers=1)
    b_img, b_lab = synthetic.generate(300, seed=11, workers=2)
    assert a_img.tobytes() == b_img.tobytes() and a_lab.tobytes() == b_lab.tobytes()


def test_different_seed_differs():
    a, _ = synthetic.generate(100, seed=1, workers=1)
    b, _ = synthetic.generate(100, seed=2, workers=1)
    assert not np.array_equal(a, b)


def test_labels_balanced_and_images_mnist_like():
    images, labels = synthetic.generate(600, seed=3, workers=1)
    assert images.shape == (600, 28, 28) and images.dtype == np.uint8
    counts = np.bincount(labels, minlength=10)
    assert counts.min() == counts.max() == 60
    assert (images.reshape(600, -1).max(axis=1) > 128).all()           # every sample has ink
    assert images[:, :2, :].max() == 0 or images[:, :2, :].mean() < 1  # 4-pixel MNIST margin mostly empty
    ink_share = (images > 128).mean()
    assert 0.05 < ink_share < 0.3


def test_heldout_writers_are_not_training_writers():
    fonts = synthetic.find_handwriting_fonts()
    train_rng = np.random.default_rng(np.random.SeedSequence([0, synthetic.TRAIN_STREAM, 0]))
    held_rng = np.random.default_rng(np.random.SeedSequence([0, synthetic.HELDOUT_STREAM, 0]))
    a, b = synthetic.draw_writer(train_rng, fonts), synthetic.draw_writer(held_rng, fonts)
    assert (a.slant, a.width, a.pen) != (b.slant, b.width, b.pen)


def test_writers_vary_style():
    rng = np.random.default_rng(0)
    writers = [synthetic.draw_writer(rng, []) for _ in range(200)]
    slants = np.array([w.slant for w in writers])
    pens = np.array([w.pen for w in writers])
    assert slants.std() > 0.08 and pens.max() / pens.min() > 2.0
    used = {w.allograph[4] for w in writers}
    assert used == set(range(len(ALLOGRAPHS[4])))  # every allograph of 4 appears


def test_font_writers_render_when_fonts_are_installed():
    fonts = synthetic.find_handwriting_fonts()
    if not fonts:
        import pytest
        pytest.skip("no handwriting fonts installed (make setup installs them as root)")
    rng = np.random.default_rng(0)
    writer = synthetic.draw_writer(rng, [fonts[0]])
    writer = synthetic.WriterStyle(**{**writer.__dict__, "font": fonts[0]})
    for digit in range(10):
        out = synthetic.render_digit(digit, writer, rng)
        assert out.max() > 200


def test_catmull_rom_passes_through_control_points():
    pts = np.array([[0, 0], [1, 2], [3, 1], [4, 4]], float)
    curve = catmull_rom(pts, samples_per_segment=8)
    for p in pts:
        assert np.min(np.linalg.norm(curve - p, axis=1)) < 1e-9


def test_italic_font_cuts_are_not_used(monkeypatch, tmp_path):
    # The writer's slant leans the upright cut; on an italic one it made flat, barely legible digits.
    names = ["dkg.ttf", "dkgIt.ttf", "dkgBI.ttf", "dkgBd.ttf", "ComicNeue-Italic.otf", "ComicNeue-Regular.otf"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(synthetic, "FONT_GLOBS", (str(tmp_path / "*"),))
    found = [p.rsplit("/", 1)[1] for p in synthetic.find_handwriting_fonts()]
    assert found == ["ComicNeue-Regular.otf", "dkg.ttf", "dkgBd.ttf"]
