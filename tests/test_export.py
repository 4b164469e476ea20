"""LeNet-5 export: what TF Serving reads (signatures, versions, warmup, model card)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from corpus.handwriting import HELDOUT_STREAM, generate
from model_export import export


def _saved_model_cli():
    path = shutil.which("saved_model_cli") or os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    assert os.path.exists(path), "saved_model_cli is installed with tensorflow"
    return path


def test_lenet5_has_61706_parameters():
    from model_export.models import build_lenet5

    model = build_lenet5()
    assert model.count_params() == 61706
    assert [l.name for l in model.layers if l.weights] == ["c1", "c3", "c5", "f6", "probabilities"]


@pytest.mark.slow
def test_export_layout(trained_models_dir):
    version = trained_models_dir / "lenet5" / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables").is_dir()
    assert (version / export.WARMUP_FILE).is_file()
    # Nothing half-written is left beside the versions.
    assert sorted(os.listdir(version.parent)) == ["1"]


@pytest.mark.slow
def test_saved_model_cli_shows_both_signatures(lenet_v1):
    out = subprocess.run([_saved_model_cli(), "show", "--all", "--dir", str(lenet_v1)],
                         capture_output=True, text=True, check=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).stdout
    default = out[out.index("signature_def['serving_default']"):]
    default = default[:default.index("Method name is")]
    assert "dtype: DT_UINT8" in default and "shape: (-1, 28, 28, 1)" in default and "name: serving_default_images" in default
    assert "outputs['probabilities']" in default and "dtype: DT_FLOAT" in default and "shape: (-1, 10)" in default
    assert "outputs['classes']" in default and "DT_INT64" in default
    predict = out[out.index("signature_def['predict_images']"):]
    assert "inputs['images']" in predict and "shape: (-1, 784)" in predict
    assert "outputs['scores']" in predict
    assert out.count("Method name is: tensorflow/serving/predict") >= 2


def test_loaded_signatures_agree_on_classes(lenet_v1):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(lenet_v1))
    images, labels = generate(200, seed=99, stream=HELDOUT_STREAM, workers=1)
    default = loaded.signatures["serving_default"](images=tf.constant(images[..., None]))
    scores = loaded.signatures["predict_images"](images=tf.constant(images.reshape(-1, 784).astype(np.float32) / 255.0))
    probs = default["probabilities"].numpy()
    assert probs.shape == (200, 10) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert default["classes"].numpy().dtype == np.int64
    assert np.array_equal(default["classes"].numpy(), scores["scores"].numpy().argmax(axis=1))
    assert np.allclose(probs, scores["scores"].numpy(), atol=1e-5)
    # Even a 2-epoch model reads most unseen writers' digits.
    assert (default["classes"].numpy() == labels).mean() > 0.8


def test_warmup_records_parse_as_prediction_logs(lenet_v1):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(str(lenet_v1 / export.WARMUP_FILE)).as_numpy_iterator())
    assert 0 < len(records) <= export.MAX_WARMUP_RECORDS
    signatures = set()
    for raw in records:
        log = prediction_log_pb2.PredictionLog.FromString(raw)
        request = log.predict_log.request
        assert request.model_spec.name == "lenet5"
        signatures.add(request.model_spec.signature_name)
        tensor = tf.make_ndarray(request.inputs["images"])
        if request.model_spec.signature_name == "serving_default":
            assert tensor.dtype == np.uint8 and tensor.shape[1:] == (28, 28, 1)
            assert tensor.max() > 128  # real crops, not zeros
        else:
            assert tensor.dtype == np.float32 and tensor.shape[1:] == (784,)
    assert signatures == {"serving_default", "predict_images"}


@pytest.mark.slow
def test_model_card(trained_models_dir):
    card = json.loads((trained_models_dir / "lenet5" / "1" / export.MODEL_CARD_FILE).read_text())
    assert card["arch"] == "lenet5" and card["data"] == "synthetic" and card["version"] == 1
    assert [(s["name"], s["samples"]) for s in card["sources"]] == [
        ("synthetic writers", 3000), ("digits cut from forms by synthetic writers", 600)]
    assert all("licence" in s for s in card["sources"]) and card["samples"] == 3600
    assert {name: h["samples"] for name, h in card["heldout"].items()} == {
        "synthetic_writers": 1000, "synthetic_form_crops": 1000}
    assert all(0 < h["accuracy"] <= 1 for h in card["heldout"].values())
    assert card["epochs"] == 2 and card["seed"] == 7 and card["parameters"] == 61706
    assert card["views"] == [list(view) for view in export.SHIFTED_VIEWS]  # the held-out figures are the served ones
    assert card["heldout_primary"] == "synthetic_writers"
    assert card["heldout_accuracy"] == card["heldout"]["synthetic_writers"]["accuracy"]
    assert card["calibration"]["fitted_on"] == ["synthetic_writers", "synthetic_form_crops"]
    assert card["calibration"]["ece_after"] <= card["calibration"]["ece_before"]
    matrix = np.array(card["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == card["heldout_samples"]
    assert card["training_seconds"] > 0


def test_the_served_probabilities_carry_the_calibration_temperature(tmp_path):
    import tensorflow as tf

    from model_export.models import build_lenet5

    model = build_lenet5()
    crops = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    _, plain = export.export_model(model, tmp_path, "m", crops)
    _, warm = export.export_model(model, tmp_path, "m", crops, temperature=2.0)
    raw = model(crops[..., None], training=False).numpy()
    expected = np.exp(np.log(raw) / 2.0)
    expected /= expected.sum(axis=1, keepdims=True)
    for path, want in ((plain, raw), (warm, expected)):
        served = tf.saved_model.load(path).signatures["serving_default"](images=tf.constant(crops[..., None]))
        assert np.allclose(served["probabilities"].numpy(), want, atol=1e-5)
        assert np.array_equal(served["classes"].numpy(), raw.argmax(axis=1))


def test_the_served_probabilities_are_the_mean_over_the_shifted_views(tmp_path):
    import tensorflow as tf

    from model_export.models import build_lenet5

    model = build_lenet5()
    crops = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    _, path = export.export_model(model, tmp_path, "m", crops, views=export.SHIFTED_VIEWS)
    readings = [model(np.roll(crops, (dy, dx), axis=(1, 2))[..., None], training=False).numpy()
                for dy, dx in export.SHIFTED_VIEWS]
    loaded = tf.saved_model.load(path)
    served = loaded.signatures["serving_default"](images=tf.constant(crops[..., None]))
    assert np.allclose(served["probabilities"].numpy(), np.mean(readings, axis=0), atol=1e-5)
    flat = loaded.signatures["predict_images"](images=tf.constant(crops.reshape(5, 784) / 255.0, tf.float32))
    assert np.allclose(flat["scores"].numpy(), np.mean(readings, axis=0), atol=1e-5)
    assert not np.allclose(readings[0], readings[1], atol=1e-3), "the shifts made no difference to test"


def test_versions_are_atomic_and_increase(tmp_path):
    from model_export.models import build_lenet5

    base = tmp_path / "lenet5"
    (base / "not-a-version").mkdir(parents=True)  # ignored, like TF Serving does
    crops = np.zeros((4, 28, 28), np.uint8)
    crops[:, 10:18, 12:16] = 255
    model = build_lenet5()
    v1, p1 = export.export_model(model, tmp_path, "lenet5", crops)
    v2, p2 = export.export_model(model, tmp_path, "lenet5", crops)
    assert (v1, v2) == (1, 2)
    assert export.list_versions(base) == [1, 2]
    assert sorted(os.listdir(base)) == ["1", "2", "not-a-version"]  # no staging directory left
    assert oct(os.stat(p2).st_mode & 0o777) == "0o755"


def test_failed_export_leaves_nothing(tmp_path):
    from model_export.models import build_lenet5

    with pytest.raises(Exception):
        export.export_model(build_lenet5(), tmp_path, "lenet5", np.zeros((0, 28, 28), np.uint8))
    assert os.listdir(tmp_path / "lenet5") == []
