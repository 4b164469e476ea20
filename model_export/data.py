"""What a model learns from, and what it is checked on, kept apart and counted for its model card.

Three kinds of training data (`--data`):

- `mixed` (the default): MNIST's 50,000 training images (real handwriting),
  synthetic writers (`corpus.handwriting`), and digits the pipeline's own
  segmenter cut from rendered, scanned forms, written both by synthetic
  writers and with real MNIST training glyphs (what real forms add: box-line
  remnants, scan blur, neighbours);
- `mnist`: MNIST's training images alone;
- `synthetic`: synthetic writers and synthetic-ink form crops alone.

Held-out sets never overlap training: MNIST's validation split (the
development set for real handwriting), synthetic writers of another seed
stream, and form crops cut from documents of another stream (real-ink ones
with MNIST *validation* glyphs). MNIST's test split is not read here at all:
it is used once per reported figure, by the benchmark, through the server.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from corpus import handwriting
from corpus.forms import Ink
from corpus.mnist import LICENCE, MnistFileError, mnist_splits
from corpus.progress import progress_printer
from model_export.corrections import LICENCE as REVIEWED_LICENCE, REPEATS as REVIEWED_REPEATS, reviewed_digits
from model_export.form_crops import generate_form_crops, generate_own_form_crops

from model_export.choices import DATA_CHOICES

__all__ = ["DataPlan", "TrainingData", "load_training_data", "DATA_CHOICES"]

SYNTHETIC_SOURCE = "synthetic writers (corpus/handwriting.py), Apache-2.0, generated"
CUT_BY = ", cut by pipeline/segmentation/segment.py"  # the crops are the pipeline's own cuts of filled forms


@dataclasses.dataclass
class DataPlan:
    """How many samples of each source (0: none)."""

    data: str = "mixed"
    mnist_path: str | None = None
    mnist_samples: int | None = None        # None: all 50,000 (mixed, mnist)
    synthetic: int = 0                      # synthetic writers' digits rendered alone
    synthetic_form_crops: int = 0           # cut from forms written by synthetic writers
    mnist_form_crops: int = 0               # cut from forms written with MNIST training glyphs
    own_form_crops: int = 0                 # cut from tight forms without marks in MNIST training glyphs
    heldout: int = 10000                    # per held-out set (MNIST's validation split is always whole)
    seed: int = 0
    workers: int | None = None
    corrections: str | None = None          # a results directory whose reviewed digits join the training set


@dataclasses.dataclass
class TrainingData:
    x: np.ndarray                           # uint8 [N, 28, 28]
    y: np.ndarray                           # [N]
    sources: list[dict]                     # name, samples, licence: for the model card
    heldout: dict[str, tuple[np.ndarray, np.ndarray]]   # name -> (x, y); the first is the one watched per epoch
    reviewed: dict | None = None            # what --corrections gave: fields used and left out (model card)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress(label: str):
    return progress_printer(f"  {label}: {{done}}/{{total}}")


def _mnist(plan: DataPlan, parts: list, heldout: dict) -> None:
    if not plan.mnist_path:
        raise MnistFileError("MNIST data needs --mnist-path FILE.npz (formdigits fetch-mnist writes one)")
    splits = mnist_splits(plan.mnist_path)
    x, y = splits["train"]
    if plan.mnist_samples and plan.mnist_samples < len(x):
        keep = np.random.default_rng(plan.seed).permutation(len(x))[:plan.mnist_samples]
        x, y = x[keep], y[keep]
    parts.append(("MNIST training split", x, y, LICENCE))
    heldout["mnist_validation"] = splits["validation"]


def _synthetic(plan: DataPlan, parts: list, heldout: dict, fonts: list[str]) -> None:
    streams = (handwriting.TRAIN_STREAM, handwriting.HELDOUT_STREAM)
    if plan.synthetic:
        parts.append(("synthetic writers", *handwriting.generate(
            plan.synthetic, seed=plan.seed, stream=streams[0], workers=plan.workers, fonts=fonts,
            progress=_progress("synthetic writers")), SYNTHETIC_SOURCE))
        heldout["synthetic_writers"] = handwriting.generate(plan.heldout, seed=plan.seed, stream=streams[1],
                                                            workers=plan.workers, fonts=fonts)


def _form_crops(plan: DataPlan, parts: list, heldout: dict, fonts: list[str]) -> None:
    streams = (handwriting.TRAIN_STREAM, handwriting.HELDOUT_STREAM)
    held = max(1000, plan.heldout // 5)
    if plan.synthetic_form_crops:
        ink = Ink(fonts=tuple(fonts))
        parts.append(("digits cut from forms by synthetic writers", *generate_form_crops(
            plan.synthetic_form_crops, seed=plan.seed, stream=streams[0], workers=plan.workers, ink=ink,
            progress=_progress("synthetic form crops")), SYNTHETIC_SOURCE + CUT_BY))
        heldout["synthetic_form_crops"] = generate_form_crops(held, seed=plan.seed, stream=streams[1],
                                                              workers=plan.workers, ink=ink)
    if plan.mnist_form_crops:
        train_ink = Ink(kind="mnist", mnist_path=plan.mnist_path, mnist_split="train")
        parts.append(("digits cut from forms written with MNIST training glyphs", *generate_form_crops(
            plan.mnist_form_crops, seed=plan.seed, stream=streams[0], workers=plan.workers, ink=train_ink,
            progress=_progress("MNIST-ink form crops")), LICENCE + CUT_BY))
        validation_ink = Ink(kind="mnist", mnist_path=plan.mnist_path, mnist_split="validation")
        heldout["mnist_form_crops"] = generate_form_crops(held, seed=plan.seed, stream=streams[1],
                                                          workers=plan.workers, ink=validation_ink)
    if plan.own_form_crops:
        train_ink = Ink(kind="mnist", mnist_path=plan.mnist_path, mnist_split="train")
        parts.append(("digits cut from forms without marks (generated tight layouts; grey, bitonal and "
                      "dropout-colour scans) written with MNIST training glyphs", *generate_own_form_crops(
                          plan.own_form_crops, seed=plan.seed, stream=streams[0], workers=plan.workers,
                          ink=train_ink, progress=_progress("forms without marks")), LICENCE + CUT_BY))
        validation_ink = Ink(kind="mnist", mnist_path=plan.mnist_path, mnist_split="validation")
        heldout["own_form_crops"] = generate_own_form_crops(held, seed=plan.seed, stream=streams[1],
                                                            split="heldout", workers=plan.workers,
                                                            ink=validation_ink)


def load_training_data(plan: DataPlan) -> TrainingData:
    """The training set and the held-out sets the plan asks for."""
    parts, heldout = [], {}
    fonts = handwriting.find_handwriting_fonts()
    if plan.data in ("mixed", "mnist"):
        _mnist(plan, parts, heldout)
    if plan.data in ("mixed", "synthetic"):
        _log(f"synthetic handwriting: {len(fonts)} handwriting fonts")
        _synthetic(plan, parts, heldout, fonts)
        _form_crops(plan, parts, heldout, fonts)
    reviewed = _reviewed(plan, parts) if plan.corrections else None
    if not parts:
        raise ValueError(f"--data {plan.data!r} with no samples asked for")
    x = np.concatenate([p[1] for p in parts])
    y = np.concatenate([p[2] for p in parts]).astype(np.uint8)
    sources = [{"name": name, "samples": int(len(py)), "licence": licence} for name, _, py, licence in parts]
    for s in sources:
        _log(f"  {s['samples']:>6} {s['name']}")
    return TrainingData(x, y, sources, heldout, reviewed)


def _reviewed(plan: DataPlan, parts: list) -> dict:
    """Digits people corrected or accepted in `formdigits review`, each REVIEWED_REPEATS times."""
    found = reviewed_digits(plan.corrections)
    stats = {**found.stats, "repeats": REVIEWED_REPEATS}
    left = ", ".join(f"{n} {why}" for why, n in found.stats["left_out"].items() if n) or "none"
    _log(f"reviewed fields in {plan.corrections}: {stats['corrected_fields']} corrected and "
         f"{stats['accepted_fields']} accepted give {len(found.y)} digits (x{REVIEWED_REPEATS}); left out: {left}")
    if len(found.y):
        parts.append(("reviewed_corrections", np.repeat(found.x, REVIEWED_REPEATS, axis=0),
                      np.repeat(found.y, REVIEWED_REPEATS), REVIEWED_LICENCE))
    return stats
