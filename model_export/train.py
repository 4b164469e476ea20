"""`formdigits train`: data, training, held-out accuracy, calibration, export.

The data and what is held out are `model_export.data`'s; here the model is
fitted (Adam, cosine decay, crops freshly warped each epoch), scored on every
held-out set separately, calibrated, and exported as the next version with a
model card that records all of it.

Calibration: one temperature T, fitted on the real-handwriting development
sets (MNIST's validation split and form crops written with its glyphs) by
least negative log-likelihood, divides the model's logits in the exported
graph. It changes no reading, only how sure the served probabilities say the
model is, so `needs_review` thresholds mean what they say.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from corpus.evaluate import expected_calibration_error
from corpus.mnist import DEFAULT_MNIST_PATH
from model_export.augment import Distortions, distort_batch
from model_export.choices import DEFAULT_EPOCHS, DEFAULT_MIX
from model_export.data import DataPlan, TrainingData, load_training_data
from model_export.export import SHIFTED_VIEWS, SINGLE_VIEW, export_model, mean_over_views
from model_export.models import build_model

__all__ = ["TrainConfig", "TrainResult", "train", "fit_temperature"]

PROGRESS_EVERY_S = 60.0  # a line within an epoch this often; LeNet-5's epochs are shorter
# Adam's starting rate (cosine decay to 2% of it). VGG16's 13 convolutions without batch norm diverge from a
# random start at LeNet-5's rate (chance after 100 steps; 91% at 1e-4).
DEFAULT_LEARNING_RATE = {"lenet5": 2e-3, "vgg16": 1e-4}
# Where the real-handwriting held-out sets are, the temperature is fitted on them; else on the synthetic ones.
CALIBRATION_SETS = (("mnist_validation", "mnist_form_crops"), ("synthetic_writers", "synthetic_form_crops"))


@dataclasses.dataclass
class TrainConfig:
    arch: str = "lenet5"
    data: str = "mixed"
    mnist_path: str | None = None
    samples: int | None = None              # synthetic writers' digits
    form_crops: int | None = None           # digits cut from forms written by synthetic writers
    mnist_form_crops: int | None = None     # digits cut from forms written with MNIST training glyphs
    own_form_crops: int | None = None       # the same, from tight forms without marks (grey, bitonal, colour)
    mnist_samples: int | None = None        # MNIST training images (default: all 50,000)
    heldout_samples: int | None = None
    epochs: int | None = None
    batch_size: int = 128
    learning_rate: float | None = None     # default: DEFAULT_LEARNING_RATE of the arch
    seed: int = 0
    export_dir: str = "models"
    model_name: str | None = None
    vgg_weights: str = "none"
    workers: int | None = None
    augment: float = 0.7                    # share of training crops freshly warped each epoch (0: none)
    calibrate: bool = True
    shift_views: bool = True                # serve the mean over the crop and its one-pixel shifts
    corrections: str | None = None          # results directory: reviewed digits join the training set

    def plan(self) -> DataPlan:
        synthetic, form_crops, mnist_form_crops, own_form_crops = DEFAULT_MIX.get((self.arch, self.data),
                                                                                   (0, 0, 0, 0))
        pick = lambda given, default: default if given is None else given  # noqa: E731
        return DataPlan(data=self.data, mnist_path=self.mnist_path or DEFAULT_MNIST_PATH,
                        mnist_samples=self.mnist_samples, synthetic=pick(self.samples, synthetic),
                        synthetic_form_crops=pick(self.form_crops, form_crops),
                        mnist_form_crops=pick(self.mnist_form_crops, mnist_form_crops),
                        own_form_crops=pick(self.own_form_crops, own_form_crops),
                        heldout=self.heldout_samples or 10000, seed=self.seed, workers=self.workers,
                        corrections=self.corrections)


@dataclasses.dataclass
class TrainResult:
    version: int
    path: str
    heldout_accuracy: float
    confusion: list[list[int]]
    card: dict


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _predictor(model, views=SINGLE_VIEW, batch_size: int = 1024):
    """A batched inference function for `model` as it will be served (`views`), traced once (not once per call)."""
    infer = tf.function(lambda x: mean_over_views(model, x, views))

    def predict(images: np.ndarray) -> np.ndarray:
        return np.concatenate([infer(tf.constant(images[i:i + batch_size, ..., None])).numpy()
                               for i in range(0, len(images), batch_size)])
    return predict


def _fit(model, predict, data: TrainingData, cfg: TrainConfig) -> None:
    """Adam with cosine decay, a line per epoch (and a minute), the crops freshly warped each epoch (`augment`).

    A plain tf.function step over tf.data: on 2 CPU cores it trains LeNet-5
    about a third faster than keras `fit`, whose per-step overhead dominates
    for a model this small.
    """
    steps = cfg.epochs * math.ceil(len(data.x) / cfg.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=max(1, steps), alpha=0.02)
    optimizer = keras.optimizers.Adam(schedule)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            loss = loss_fn(labels, probabilities)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss * tf.cast(tf.shape(labels)[0], tf.float32)

    distortions = Distortions(share=cfg.augment)
    rng = np.random.default_rng(cfg.seed)
    labels = data.y.astype(np.int32)
    watched, (x_watch, y_watch) = next(iter(data.heldout.items()))
    for epoch in range(cfg.epochs):
        t0 = time.monotonic()
        images = distort_batch(data.x, rng, distortions) if cfg.augment > 0 else data.x
        batches = (tf.data.Dataset.from_tensor_slices((images[..., None], labels))
                   .shuffle(len(data.x), seed=cfg.seed + epoch).batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE))
        loss, done, next_line = 0.0, 0, t0 + PROGRESS_EVERY_S
        for x, y in batches:
            loss += float(train_step(x, y))
            done += len(y)
            if time.monotonic() >= next_line:  # a long epoch (VGG16 on a CPU) says how far it is
                next_line += PROGRESS_EVERY_S
                _log(f"epoch {epoch + 1}/{cfg.epochs}  {done:,}/{len(data.x):,} samples  loss {loss / done:.4f}  "
                     f"{time.monotonic() - t0:.0f}s")
        accuracy = float((predict(x_watch).argmax(axis=1) == y_watch).mean())
        _log(f"epoch {epoch + 1}/{cfg.epochs}  loss {loss / len(data.x):.4f}  {watched} {accuracy:.4f}  "
             f"{time.monotonic() - t0:.1f}s")


def _scaled(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(probabilities.astype(np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature (0.5..5) that minimises the negative log-likelihood of `labels`."""
    def nll(t):
        return -np.log(np.clip(_scaled(probabilities, t)[np.arange(len(labels)), labels], 1e-12, 1.0)).mean()

    grid = np.exp(np.linspace(np.log(0.5), np.log(5.0), 48))
    best = float(grid[int(np.argmin([nll(t) for t in grid]))])
    fine = np.linspace(best / 1.06, best * 1.06, 25)
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def _calibration_sets(heldout: dict) -> list[str]:
    """The held-out sets of the first group in CALIBRATION_SETS that has any."""
    for group in CALIBRATION_SETS:
        present = [name for name in group if name in heldout]
        if present:
            return present
    return []


def _calibrate(predict, heldout: dict, cfg: TrainConfig) -> dict:
    names = _calibration_sets(heldout)
    if not cfg.calibrate or not names:
        return {"temperature": 1.0, "fitted_on": []}
    probabilities = np.concatenate([predict(heldout[n][0]) for n in names])
    labels = np.concatenate([heldout[n][1] for n in names]).astype(np.int64)
    temperature = fit_temperature(probabilities, labels)
    before, after = (expected_calibration_error(p, labels) for p in (probabilities, _scaled(probabilities, temperature)))
    _log(f"calibration: temperature {temperature:.3f} on {', '.join(names)}; ECE {before:.4f} -> {after:.4f}")
    return {"temperature": round(temperature, 4), "fitted_on": list(names), "ece_before": round(before, 5),
            "ece_after": round(after, 5)}


def _confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    matrix = np.zeros((10, 10), np.int64)
    np.add.at(matrix, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    return matrix


def train(cfg: TrainConfig) -> TrainResult:
    """Trains, scores every held-out set, calibrates and exports the next version."""
    cfg = dataclasses.replace(cfg, epochs=cfg.epochs or DEFAULT_EPOCHS[cfg.arch], model_name=cfg.model_name or cfg.arch,
                              learning_rate=cfg.learning_rate or DEFAULT_LEARNING_RATE[cfg.arch])
    started = time.monotonic()
    data = load_training_data(cfg.plan())
    data_seconds = time.monotonic() - started
    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg.arch, vgg_weights=cfg.vgg_weights)
    _log(f"{cfg.arch}: {model.count_params():,} parameters; {cfg.epochs} epochs of {len(data.x)} samples, "
         f"batch {cfg.batch_size}")
    views = SHIFTED_VIEWS if cfg.shift_views else SINGLE_VIEW
    predict = _predictor(model, views)
    _fit(model, predict, data, cfg)
    heldout = {}
    for name, (x, y) in data.heldout.items():
        predicted = predict(x).argmax(axis=1)
        heldout[name] = {"samples": int(len(y)), "accuracy": round(float((predicted == y).mean()), 6)}
        _log(f"held-out {name}: {heldout[name]['accuracy']:.4%} on {len(y)}")
    primary, (x_held, y_held) = next(iter(data.heldout.items()))
    confusion = _confusion(y_held, predict(x_held).argmax(axis=1))
    calibration = _calibrate(predict, data.heldout, cfg)
    card = {
        "arch": cfg.arch, "data": cfg.data, "sources": data.sources, "samples": int(len(data.x)),
        "heldout": heldout, "heldout_primary": primary, "heldout_accuracy": heldout[primary]["accuracy"],
        "heldout_samples": heldout[primary]["samples"], "confusion_matrix": confusion.tolist(),
        "calibration": calibration, "views": [list(v) for v in views], "epochs": cfg.epochs, "augment": cfg.augment,
        "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate,
        "seed": cfg.seed, "vgg_weights": cfg.vgg_weights if cfg.arch == "vgg16" else None,
        "parameters": int(model.count_params()), "data_seconds": round(data_seconds, 1),
        "training_seconds": round(time.monotonic() - started, 1),
        "input": "uint8 [N,28,28,1], 0 = paper, 255 = ink (MNIST-normalised)",
        "corrections": data.reviewed,
    }
    # Warm up with real crops the model has not trained on.
    version, path = export_model(model, cfg.export_dir, cfg.model_name, x_held[:64], model_card=card,
                                 temperature=calibration["temperature"], views=views)
    card.update(name=cfg.model_name, version=version)
    _log(f"exported {cfg.model_name} version {version} to {path}")
    return TrainResult(version=version, path=path, heldout_accuracy=heldout[primary]["accuracy"],
                       confusion=confusion.tolist(), card=card)
