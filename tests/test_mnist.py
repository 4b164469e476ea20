"""The real-MNIST path: Keras mnist.npz format, read locally, and its errors."""

import subprocess
import sys

import numpy as np
import pytest

from model_export.mnist import MnistFileError, load_mnist_npz
from corpus.handwriting import generate


@pytest.fixture
def tiny_mnist(tmp_path):
    """A small file in exactly the layout keras.datasets.mnist.load_data() reads."""
    x_train, y_train = generate(400, seed=5, workers=1)
    x_test, y_test = generate(100, seed=6, workers=1)
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def test_loader_reads_keras_layout(tiny_mnist):
    (x_train, y_train), (x_test, y_test) = load_mnist_npz(tiny_mnist)
    assert x_train.shape == (400, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (400,) and x_test.shape == (100, 28, 28) and y_test.shape == (100,)


def test_missing_file_error_says_what_to_do(tmp_path):
    with pytest.raises(MnistFileError, match="does not exist; download mnist.npz"):
        load_mnist_npz(tmp_path / "nope.npz")


def test_wrong_keys(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(MnistFileError, match="missing x_train, y_train, x_test, y_test"):
        load_mnist_npz(path)


def test_wrong_shapes(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((2, 32, 32), np.uint8), y_train=np.zeros(2, np.uint8),
             x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, np.uint8))
    with pytest.raises(MnistFileError, match=r"x_train must be \[N, 28, 28\]"):
        load_mnist_npz(path)


def test_not_an_archive(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("this is not numpy")
    with pytest.raises(MnistFileError, match="not a readable .npz"):
        load_mnist_npz(path)


def test_train_on_mnist_file(tiny_mnist, tmp_path):
    from formdigits.cli import main

    rc = main(["train", "--data", "mnist", "--mnist-path", str(tiny_mnist), "--epochs", "1",
               "--export-dir", str(tmp_path / "models")])
    assert rc == 0
    import json
    card = json.loads((tmp_path / "models/lenet5/1/assets.extra/model_card.json").read_text())
    assert card["data"] == "mnist" and card["samples"] == 400 and card["heldout_samples"] == 100


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "formdigits", *args], capture_output=True, text=True, timeout=60)


def test_cli_missing_mnist_path_is_one_line(tmp_path):
    res = _cli("train", "--data", "mnist", "--mnist-path", str(tmp_path / "missing.npz"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0]


def test_cli_malformed_mnist_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 broken")
    res = _cli("train", "--data", "mnist", "--mnist-path", str(bad), "--epochs", "1",
               "--export-dir", str(tmp_path / "m"))
    assert res.returncode == 2
    errors = [l for l in res.stderr.splitlines() if l.startswith("formdigits")]
    assert len(errors) == 1 and "not a readable .npz" in errors[0]
    assert not (tmp_path / "m").exists()


def test_cli_data_mnist_without_path():
    res = _cli("train", "--data", "mnist")
    assert res.returncode == 2 and "needs --mnist-path" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_cli_bad_choice_is_one_line():
    res = _cli("train", "--arch", "resnet")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("formdigits train: argument --arch: invalid choice: 'resnet'")
    assert lines[0].endswith("(see 'formdigits train --help')") and "vgg16" in lines[0]
