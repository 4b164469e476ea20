"""Trains the struck-through-digit detector that `pipeline.segmentation.segment` uses.

    python -m model_export.strikeout [--samples 40000] [--out pipeline/data/strikeout.npz]

Data: digit crops that the pipeline's own segmenter cut from rendered, scanned
forms in which many fields have a wrong digit struck through
(`form_crops.generate_strike_crops`), plus digits rendered alone, half of them
struck (forms hold few struck digits); training and held-out documents come
from different seed streams. The decision threshold is set on the held-out crops so
that at most `--max-false-rate` of ordinary digits are taken for struck ones:
struck digits are rare on real forms, so a false hit (a good digit dropped) must
be rarer still.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import cv2
import keras
import numpy as np
from keras import layers

from corpus.filling import cross_out, glyph, stamp_ink
from corpus.forms import Ink
from corpus.handwriting import HELDOUT_STREAM, SAMPLES_PER_WRITER, TRAIN_STREAM, find_handwriting_fonts
from corpus.mnist import DEFAULT_MNIST_PATH, fetch_mnist
from corpus.mnist_ink import mnist_pool
from model_export.form_crops import generate_strike_crops
from pipeline.segmentation.normalize import EmptyCropError, mnist_normalize
from pipeline.segmentation.strikeout import DEFAULT_WEIGHTS, WEIGHT_NAMES, StrikeDetector

__all__ = ["train_detector", "main"]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _isolated(args) -> tuple[np.ndarray, np.ndarray]:
    """One writer's digits rendered alone, every other one struck through: (28x28 crops, struck 0/1)."""
    seed, stream, writer_id, count, ink = args
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, 7000 + writer_id]))
    writer = ink.writer(rng)
    crops, labels = [], []
    for i in range(count):
        struck = i % 2
        height = rng.uniform(30, 90)
        ink = glyph(int(rng.integers(10)), writer, rng, height)
        page = np.full((int(height * 2), ink.shape[1] + int(height)), 255, np.uint8)
        x0 = y0 = int(height * 0.5)
        stamp_ink(page, ink, x0, y0, writer.darkness)
        if struck:
            cross_out(page, x0, y0, ink.shape[1], ink.shape[0], rng, max(1, int(round(writer.pen * height * 0.9))))
        page = 255 - cv2.GaussianBlur(page, (0, 0), rng.uniform(0.3, 1.2))
        try:
            crops.append(mnist_normalize(page))
        except EmptyCropError:
            continue
        labels.append(struck)
    return np.array(crops, np.uint8).reshape(-1, 28, 28), np.array(labels, np.uint8)


def isolated_strike_crops(n: int, seed: int, stream: int, workers: int | None = None, ink: Ink | None = None):
    """`n` digits rendered alone, half of them struck through: (28x28 crops, struck 0/1).

    They add struck examples of every writer style and size; forms have few.
    """
    ink = ink or Ink(fonts=tuple(find_handwriting_fonts()))
    if ink.kind == "mnist":
        mnist_pool(ink.mnist_path, ink.mnist_split)  # read once here; the workers fork with it
    jobs = [(seed, stream, w, SAMPLES_PER_WRITER, ink) for w in range(math.ceil(n / SAMPLES_PER_WRITER))]
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        parts = list(pool.map(_isolated, jobs, chunksize=8))
    return np.concatenate([p[0] for p in parts])[:n], np.concatenate([p[1] for p in parts])[:n]


# conv1 filters, conv2 filters, dense units. Held out, at each one's own threshold: (8, 16, 32) caught 88% for
# 94% of (16, 32, 64); on the same held-out forms (16, 32, 64) with 10 epochs caught 89% / 87% of struck
# synthetic / real-ink digits, (32, 64, 128) with 15 epochs 93% / 94%, and it took fewer ordinary digits
# for struck ones (0.0% / 0.021% against 0.021% / 0.064%).
NETWORK_WIDTH = (32, 64, 128)


def build_network(width: tuple[int, int, int] = NETWORK_WIDTH):
    """The detector's network in Keras; `pipeline.segmentation.strikeout.StrikeDetector` runs the same in numpy."""
    conv1, conv2, dense = width
    return keras.Sequential([
        keras.Input((28, 28, 1)), layers.Rescaling(1 / 255),
        layers.Conv2D(conv1, 5, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(conv2, 5, activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(dense, activation="relu"), layers.Dense(1, activation="sigmoid"),
    ], name="strikeout")


def _threshold(scores: np.ndarray, truth: np.ndarray, max_false_rate: float) -> float:
    """The lowest threshold (at least 0.5) that takes at most `max_false_rate` of the ordinary digits for struck."""
    negatives = np.sort(scores[truth == 0])[::-1]
    allowed = int(math.floor(max_false_rate * len(negatives)))
    return max(0.5, float(negatives[allowed])) if len(negatives) > allowed else 0.5


def train_detector(train, heldout, *, epochs: int = 15, max_false_rate: float = 3e-4, seed: int = 0,
                   width: tuple[int, int, int] = NETWORK_WIDTH):
    """Fits the detector; returns (StrikeDetector, held-out report dict).

    Args:
        train: (crops uint8 [N, 28, 28], struck 0/1 [N]).
        heldout: such a pair, or {name: pair} for held-out sets kept apart (each ink of handwriting):
            the threshold holds the false rate within `max_false_rate` on every one of them.
        max_false_rate: the largest share of held-out ordinary digits allowed above the threshold.
    """
    keras.utils.set_random_seed(seed)
    model = build_network(width)
    model.compile(keras.optimizers.Adam(2e-3), "binary_crossentropy")
    model.fit(train[0][..., None], train[1].astype(np.float32), epochs=epochs, batch_size=128, verbose=0)
    weights = [w for layer in model.layers for w in layer.get_weights()]
    detector = StrikeDetector(dict(zip(WEIGHT_NAMES, weights)), threshold=0.5)
    sets = heldout if isinstance(heldout, dict) else {"heldout": heldout}
    scored = {name: (detector.scores(x), np.asarray(y, np.int64)) for name, (x, y) in sets.items()}
    detector.threshold = max(_threshold(s, t, max_false_rate) for s, t in scored.values())
    report = {"threshold": round(detector.threshold, 6)}
    for name, (scores, truth) in scored.items():
        hits = scores > detector.threshold
        report[name] = {
            "struck": int((truth == 1).sum()), "ordinary": int((truth == 0).sum()),
            "recall": round(float(hits[truth == 1].mean()), 4) if (truth == 1).any() else None,
            "false_rate": round(float(hits[truth == 0].mean()), 6) if (truth == 0).any() else None,
        }
    return detector, report


def _training_sets(args, inks: dict[str, Ink]) -> tuple:
    """(training crops and labels, {held-out set name: crops and labels}), half of each from either ink."""
    parts, heldout = [], {}
    for name, ink in inks.items():
        train_ink = dataclasses.replace(ink, mnist_split="train")
        parts.append(generate_strike_crops(args.samples // len(inks), seed=args.seed, stream=TRAIN_STREAM,
                                           ink=train_ink))
        if args.isolated:
            parts.append(isolated_strike_crops(args.isolated // len(inks), seed=args.seed, stream=TRAIN_STREAM,
                                               ink=train_ink))
        heldout[f"{name} forms"] = generate_strike_crops(args.heldout // len(inks), seed=args.seed,
                                                         stream=HELDOUT_STREAM, ink=ink)
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return train, heldout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_export.strikeout", description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=40000, help="crops cut from forms (default 40000)")
    parser.add_argument("--isolated", type=int, default=60000, help="digits rendered alone (default 60000)")
    parser.add_argument("--heldout", type=int, default=10000, help="held-out crops from forms (default 10000)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--max-false-rate", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, nargs=3, default=NETWORK_WIDTH, metavar=("CONV1", "CONV2", "DENSE"),
                        help="filters of the two convolutions and units of the dense layer (default %(default)s)")
    parser.add_argument("--mnist-path", default=DEFAULT_MNIST_PATH,
                        help="real handwriting for half of the data (default: the cached MNIST, fetched if missing)")
    parser.add_argument("--out", default=DEFAULT_WEIGHTS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    inks = {"synthetic-ink": Ink(fonts=tuple(find_handwriting_fonts())),
            "real-ink": Ink(kind="mnist", mnist_path=fetch_mnist(args.mnist_path, log=_log), mnist_split="validation")}
    _log(f"cutting {args.samples} + {args.heldout} crops from forms with struck-through digits, rendering "
         f"{args.isolated} alone; half synthetic writers, half MNIST glyphs (training split; held out: validation)")
    train, heldout = _training_sets(args, inks)
    _log(f"  {int(train[1].sum())} struck of {len(train[1])} in training")
    detector, report = train_detector(train, heldout, epochs=args.epochs, max_false_rate=args.max_false_rate,
                                      seed=args.seed, width=tuple(args.width))
    detector.save(args.out)
    _log(f"held-out: {report}; wrote {args.out} in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
