"""Struck-through digits: people cross out a wrong digit and write the right one next to it.

`drop_struck` decides which digits of a page's fields to leave out, from the
detector's scores and each field's length rules.

Read as a digit, the struck one becomes an extra digit in the field. The
detector is a small convolutional network over the MNIST-normalised crop
(conv 32@5x5, pool, conv 64@5x5, pool, dense 128, 1 output; 183,425 weights). It
is trained by `python -m model_export.strikeout` on struck and ordinary digits
cut by the segmenter from rendered forms plus isolated renders, and its weights
ship with the package (`pipeline/data/strikeout.npz`, 685 kB). It runs here
in numpy, so workers need neither TensorFlow nor a model server for it; the
segmenter scores a page's free-field crops in one call.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import ThreadpoolController

from pipeline.types import DigitCut

__all__ = ["DEFAULT_WEIGHTS", "OVERFULL_STRIKE_SCORE", "StrikeDetector", "load_detector", "drop_struck"]

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(__file__), "data", "strikeout.npz")
WEIGHT_NAMES = ("conv1_w", "conv1_b", "conv2_w", "conv2_b", "dense_w", "dense_b", "out_w", "out_b")


def _conv_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """'valid' 2-D convolution (Keras Conv2D layout: x [N,H,W,C], w [k,k,C,D]) + ReLU."""
    k, _, c, d = w.shape
    windows = sliding_window_view(x, (k, k), axis=(1, 2))        # [N, H-k+1, W-k+1, C, k, k]
    n, h, wd = windows.shape[:3]
    # im2col: one matrix product; the kernel is reordered to the windows' (C, k, k) order.
    columns = windows.reshape(n * h * wd, c * k * k)
    out = columns @ w.transpose(2, 0, 1, 3).reshape(c * k * k, d) + b
    return np.maximum(out, 0.0).reshape(n, h, wd, d)


def _pool2(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    return x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@functools.lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS once; each limit() after that costs microseconds


class StrikeDetector:
    """Probability that a digit crop is struck through."""

    def __init__(self, weights: dict[str, np.ndarray], threshold: float):
        missing = [n for n in WEIGHT_NAMES if n not in weights]
        if missing:
            raise ValueError(f"strike detector weights lack {missing}")
        self.weights = {n: np.asarray(weights[n], np.float32) for n in WEIGHT_NAMES}
        self.threshold = float(threshold)

    def scores(self, crops: np.ndarray) -> np.ndarray:
        """Scores crops (uint8 [N, 28, 28], 0 = paper, 255 = ink): [N] probabilities that each is struck through."""
        w = self.weights
        x = np.asarray(crops, np.float32).reshape(-1, 28, 28, 1) / 255.0
        # One BLAS thread: workers are processes, one a core, and OpenBLAS's own threads on top of them
        # fight. Two processes scoring 70 crops each took 54 ms with them, 15 ms without.
        with _blas_controller().limit(limits=1, user_api="blas"):
            x = _pool2(_conv_relu(x, w["conv1_w"], w["conv1_b"]))
            x = _pool2(_conv_relu(x, w["conv2_w"], w["conv2_b"]))
            x = np.maximum(x.reshape(len(x), -1) @ w["dense_w"] + w["dense_b"], 0.0)
            logits = (x @ w["out_w"] + w["out_b"]).reshape(-1)
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0)))

    def is_struck(self, crops: np.ndarray) -> np.ndarray:
        return self.scores(crops) > self.threshold

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        np.savez_compressed(path, threshold=np.float32(self.threshold), **self.weights)


@functools.lru_cache(maxsize=4)
def load_detector(path: str = DEFAULT_WEIGHTS) -> StrikeDetector | None:
    """Returns the detector stored at `path`, or None when there is no such file (detection off, said once)."""
    if not os.path.isfile(path):
        logging.getLogger("formdigits.segment").warning(
            "no struck-digit detector at %s: struck-through digits will be read as digits "
            "(python -m model_export.strikeout trains one)", path)
        return None
    with np.load(path) as w:
        return StrikeDetector({n: w[n] for n in w.files if n != "threshold"}, float(w["threshold"]))


# A field holding more digits than its template allows has an extra piece for sure: a struck-through
# digit there needs much less evidence than one among the right number of digits.
OVERFULL_STRIKE_SCORE = 0.5


def drop_struck(fields: list[tuple[list[DigitCut], int, int]]) -> list[tuple[list[DigitCut], int]]:
    """Leaves out digits that were struck through, renumbering the rest.

    Args:
        fields: per field, (its digits, the fewest digits it may keep, the most
            it may hold). The fewest is its template's minimum length (at least
            1, so a field is never emptied); the likeliest struck digits go
            first, and a field already at that minimum has no extra digit to
            drop. Digits beyond the most are dropped on a weaker score
            (`OVERFULL_STRIKE_SCORE`). A digit is scored by its normalised
            `crop`; one without (no ink) is never dropped here.

    Returns:
        Per field, (kept digits, how many were dropped). One detector call for
        all of them: a page's crops at once cost little more than one field's.
    """
    detector = load_detector()
    rooms = [len(digits) - max(1, fewest) for digits, fewest, _ in fields]
    extra = [max(0, len(digits) - most) for digits, _, most in fields]
    owners = [(f, i) for f, (digits, _, _) in enumerate(fields) if detector is not None and rooms[f] > 0
              for i, d in enumerate(digits) if d.crop is not None]
    scores: dict[int, list[tuple[float, int]]] = {}
    if owners:
        crops = np.stack([fields[f][0][i].crop for f, i in owners])
        for (f, i), score in zip(owners, detector.scores(crops)):
            scores.setdefault(f, []).append((float(score), i))
    out = []
    for f, (digits, _, _) in enumerate(fields):
        ranked = sorted(scores.get(f, []), reverse=True)[:max(0, rooms[f])]
        struck = {i for n, (score, i) in enumerate(ranked)
                  if score > detector.threshold or (n < extra[f] and score > OVERFULL_STRIKE_SCORE)}
        if struck:
            digits = [dataclasses.replace(d, position=n)
                      for n, d in enumerate(d for i, d in enumerate(digits) if i not in struck)]
        out.append((digits, len(struck)))
    return out
