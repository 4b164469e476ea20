"""Shared fixtures: real models trained and exported once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """A models directory holding a small LeNet-5 trained by `formdigits train` (version 1)."""
    from formdigits.cli import main

    out = tmp_path_factory.mktemp("models")
    rc = main(["train", "--arch", "lenet5", "--data", "synthetic", "--samples", "3000",
               "--heldout-samples", "1000", "--epochs", "2", "--seed", "7", "--export-dir", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def lenet_v1(models_dir):
    return models_dir / "lenet5" / "1"
