"""Export a trained Keras model as a versioned SavedModel that TF Serving reads.

Layout: ``<export_dir>/<name>/<version>/`` holding ``saved_model.pb``,
``variables/`` and ``assets.extra/`` (the warmup requests and the model card).
A version is written to a hidden, non-numeric directory beside its final place
and renamed in, so a server polling ``<export_dir>/<name>`` never loads half a
model (TF Serving skips non-numeric directories).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

import numpy as np
import tensorflow as tf

__all__ = [
    "SERVING_DEFAULT",
    "PREDICT_IMAGES",
    "WARMUP_FILE",
    "MODEL_CARD_FILE",
    "MAX_WARMUP_RECORDS",
    "SINGLE_VIEW",
    "SHIFTED_VIEWS",
    "mean_over_views",
    "list_versions",
    "next_version",
    "export_model",
    "build_warmup_logs",
]

SERVING_DEFAULT = "serving_default"
PREDICT_IMAGES = "predict_images"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MODEL_CARD_FILE = os.path.join("assets.extra", "model_card.json")
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many
_VERSION_RE = re.compile(r"^\d+$")
# The crop and its four one-pixel shifts, (rows, columns): LeNet-5's pooling makes it read a digit a
# pixel off differently, and the mean of the five readings is the surer one (on the development sets,
# errors fell by about a tenth: MNIST validation 69 -> 56, real-ink form crops 147 -> 134). A roll is a shift
# here: an MNIST-normalised crop has four blank pixels on every side.
SHIFTED_VIEWS = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0))
SINGLE_VIEW = ((0, 0),)  # the crop as it is


def mean_over_views(model, images, views=SHIFTED_VIEWS):
    """The model's probabilities for uint8 [N, 28, 28, 1] `images`, averaged over `views` (row, column shifts)."""
    if tuple(map(tuple, views)) == SINGLE_VIEW:
        return tf.cast(model(images, training=False), tf.float32)
    count = tf.shape(images)[0]
    stacked = tf.concat([tf.roll(images, shift=[dy, dx], axis=[1, 2]) for dy, dx in views], axis=0)
    probabilities = tf.cast(model(stacked, training=False), tf.float32)
    return tf.reduce_mean(tf.reshape(probabilities, [len(views), count, probabilities.shape[-1]]), axis=0)


class _ServingModule(tf.Module):
    """Holds the Keras model and exposes the contract's two signatures.

    The model reads each crop in every one of `views` (`SHIFTED_VIEWS`) and the
    mean is served. `temperature` (from calibration) then divides its logits:
    the served probabilities are softmax(log p / T), the classes unchanged.
    """

    def __init__(self, model, temperature: float = 1.0, views=SINGLE_VIEW):
        super().__init__()
        self.model = model
        self.temperature = tf.constant(temperature, tf.float32)
        self.views = tuple(tuple(int(v) for v in view) for view in views)

    def _probabilities(self, images):
        probabilities = mean_over_views(self.model, images, self.views)
        return tf.nn.softmax(tf.math.log(tf.maximum(probabilities, 1e-12)) / self.temperature, axis=-1)

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.uint8, name="images")])
    def serving_default(self, images):
        probabilities = self._probabilities(images)
        return {
            "probabilities": tf.cast(probabilities, tf.float32),
            "classes": tf.argmax(probabilities, axis=-1, output_type=tf.int64),
        }

    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="images")])
    def predict_images(self, images):
        # The TF Serving MNIST tutorial's contract: float 0..1, ink = 1, flattened.
        as_uint8 = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)
        return {"scores": self._probabilities(tf.reshape(as_uint8, [-1, 28, 28, 1]))}


def list_versions(model_base: str | os.PathLike) -> list[int]:
    """Numeric version directories under a model's base path, ascending."""
    try:
        names = os.listdir(model_base)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if _VERSION_RE.match(n) and os.path.isdir(os.path.join(model_base, n)))


def next_version(model_base: str | os.PathLike) -> int:
    versions = list_versions(model_base)
    return (versions[-1] + 1) if versions else 1


def build_warmup_logs(crops: np.ndarray, model_name: str, batch_sizes=(1, 8, 64)) -> list:
    """PredictionLog records exercising both signatures at typical batch sizes.

    Args:
        crops: real normalised crops, uint8 [N, 28, 28].
        model_name: the served model's name.
        batch_sizes: batch sizes to warm up (each gets one request per signature).
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    from serving.tensors import as_tensor_content

    if len(crops) == 0:
        raise ValueError("warmup needs at least one real crop")
    logs = []
    for size in batch_sizes:
        batch = np.resize(crops, (size, 28, 28))  # repeats crops when there are fewer than size
        for signature, tensor in (
            (SERVING_DEFAULT, batch.reshape(size, 28, 28, 1).astype(np.uint8)),
            (PREDICT_IMAGES, batch.reshape(size, 784).astype(np.float32) / 255.0),
        ):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            request.inputs["images"].CopyFrom(as_tensor_content(tensor))  # as the client sends them
            logs.append(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)))
    if len(logs) > MAX_WARMUP_RECORDS:
        raise ValueError(f"TF Serving reads at most {MAX_WARMUP_RECORDS} warmup records")
    return logs


def _write_warmup(version_dir: str, logs: list) -> None:
    path = os.path.join(version_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


def export_model(model, export_dir: str | os.PathLike, name: str, warmup_crops: np.ndarray,
                 model_card: dict | None = None, temperature: float = 1.0,
                 views=SINGLE_VIEW) -> tuple[int, str]:
    """Exports `model` as the next version of `name` under `export_dir`.

    Args:
        model: a Keras model taking uint8 [N, 28, 28, 1] and returning [N, 10] probabilities.
        export_dir: the models directory (TF Serving's base paths live under it).
        name: model name, e.g. "lenet5".
        warmup_crops: real normalised crops for the warmup file, uint8 [N, 28, 28].
        model_card: JSON-serialisable facts about the model; the version is added.
        temperature: divides the logits in both signatures (calibration; 1: none).
        views: the (row, column) shifts of each crop the model reads, the mean served
            (`SHIFTED_VIEWS`; the default: the crop alone).

    Returns:
        (version, path of the version directory).
    """
    model_base = os.path.join(os.fspath(export_dir), name)
    os.makedirs(model_base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=model_base)
    try:
        module = _ServingModule(model, temperature, views)
        tf.saved_model.save(module, staging, signatures={
            SERVING_DEFAULT: module.serving_default.get_concrete_function(),
            PREDICT_IMAGES: module.predict_images.get_concrete_function(),
        })
        _write_warmup(staging, build_warmup_logs(warmup_crops, name))
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the server may run as another user
        # Another trainer may claim a version while we write: take the next one.
        for _ in range(100):
            version = next_version(model_base)
            card = dict(model_card or {}, name=name, version=version)
            with open(os.path.join(staging, MODEL_CARD_FILE), "w") as fh:
                json.dump(card, fh, indent=2, sort_keys=True)
            final = os.path.join(model_base, str(version))
            try:
                os.rename(staging, final)  # atomic on one filesystem
                return version, final
            except OSError:
                if not os.path.exists(final):
                    raise
        raise RuntimeError(f"could not claim a version directory under {model_base}")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

