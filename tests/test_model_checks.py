"""A run checks the model before it reads a page with it: served at all, and [N, 10] probabilities out.

The 3-class model is served by the real local server with its load-time check switched off: that is what
the real TF Serving does with such an export, and what the job must catch by itself.
"""

import numpy as np
import pytest

from formdigits.cli import main
from serving.server.config import ModelEntry
from serving.server.engine import build_local_server
from support.beam import count

pytestmark = pytest.mark.slow  # end-to-end runs and a Keras export


@pytest.fixture
def three_class_server(tmp_path, monkeypatch):
    import keras

    from model_export.export import export_model

    monkeypatch.setattr("serving.server.models.check_signature", lambda *a: None)
    three = keras.Sequential([keras.Input((28, 28, 1), dtype="uint8"), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    export_model(three, tmp_path / "models", "lenet5", np.zeros((4, 28, 28), np.uint8))
    entries = [ModelEntry(name="lenet5", base_path=str(tmp_path / "models" / "lenet5"), policy="latest")]
    server = build_local_server(entries, batching=None, port=0).start()
    yield server
    server.stop(2)


def test_a_model_that_answers_three_classes_is_refused_before_any_page(scans, three_class_server, tmp_path,
                                                                        capsys):
    out = tmp_path / "out"
    rc = main(["run", "--input", str(scans / "scan_00001.png"), "--templates", str(scans / "templates"),
               "--output", str(out), "--serving", three_class_server.target])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("formdigits run")]
    assert rc == 2 and len(err) == 1, err
    assert f"model lenet5 version 1 at {three_class_server.target}" in err[0] and "[N, 3]" in err[0]
    assert not (out / "results.duckdb").exists() or count(out, "SELECT count(*) FROM fields") == [(0,)]


def test_a_model_that_is_not_served_is_refused_at_start(scans, server, tmp_path, capsys):
    rc = main(["run", "--input", str(scans / "scan_00001.png"), "--templates", str(scans / "templates"),
               "--output", str(tmp_path / "out"), "--serving", server.target, "--model", "lenet6"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("formdigits run")]
    assert rc == 2 and len(err) == 1 and "does not serve model lenet6" in err[0], err
