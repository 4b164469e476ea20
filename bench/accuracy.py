"""Accuracy as users get it, from the served model: MNIST's test split, and fresh corpora of scanned forms.

- MNIST: the test split (used here, for reported figures only) through the
  model server's `serving_default`, as the pipeline calls it: accuracy,
  accuracy per digit, and the expected calibration error of the served
  probabilities.
- Forms: corpora generated for the run from seeds given on the command line
  (never used in development), written with real MNIST ink (`--ink mnist`,
  glyphs of a split the model never trained on) and with synthetic ink, read by
  `formdigits run` against the same server, scored by `formdigits eval`'s rules.
"""

from __future__ import annotations

import os

import numpy as np

from bench.corpora import make_corpus
from bench.pipeline import run_pipeline
from corpus.evaluate import evaluate, expected_calibration_error, load_results, load_truth
from corpus.forms import Ink
from corpus.handwriting import find_handwriting_fonts
from corpus.mnist import mnist_splits
from serving.client import PredictClient

__all__ = ["bench_mnist", "bench_forms"]


def bench_mnist(target: str, model: str, mnist_path: str, split: str = "test", log=print) -> dict:
    """MNIST `split` through the server at `target`: accuracy, per-digit accuracy, ECE."""
    images, labels = mnist_splits(mnist_path)[split]
    client = PredictClient(target, model, timeout_s=120)
    version = client.wait_until_available(120)
    probabilities = np.concatenate([client.predict(images[i:i + 512]).outputs["probabilities"]
                                    for i in range(0, len(images), 512)])
    read = probabilities.argmax(axis=1)
    per_digit = {str(d): round(float((read[labels == d] == d).mean()), 5) for d in range(10)}
    result = {"split": split, "images": int(len(labels)), "model": model, "model_version": int(version),
              "accuracy": round(float((read == labels).mean()), 5), "per_digit": per_digit,
              "min_digit_accuracy": min(per_digit.values()),
              "ece": round(expected_calibration_error(probabilities, labels.astype(np.int64)), 5)}
    log(f"  MNIST {split} through the server ({model} v{version}): {result['accuracy']:.2%}, weakest digit "
        f"{result['min_digit_accuracy']:.2%}, ECE {result['ece']:.4f}")
    return result


def bench_forms(work_dir: str, target: str, seeds: list[int], pages: int, mnist_path: str, log=print) -> dict:
    """Fresh corpora per seed and ink through `formdigits run`; the evaluator's figures for each."""
    inks = {"real": Ink(kind="mnist", mnist_path=mnist_path, mnist_split="test"),
            "synthetic": Ink(fonts=tuple(find_handwriting_fonts()))}
    out = {}
    for ink_name, ink in inks.items():
        for seed in seeds:
            corpus = make_corpus(os.path.join(work_dir, f"accuracy-{ink_name}-{seed}-{pages}"), pages, seed, ink=ink)
            output = os.path.join(work_dir, f"accuracy-out-{ink_name}-{seed}")
            run_pipeline(os.path.join(corpus, "scan_*"), os.path.join(corpus, "templates"), output, target,
                         os.cpu_count() or 1, pages, log)
            report = evaluate(load_results(output), load_truth(os.path.join(corpus, "truth.jsonl")))
            out[f"{ink_name}-{seed}"] = {k: report[k] for k in (
                "truth_fields", "field_exact_match", "digit_accuracy", "needs_review_rate",
                "unflagged_field_accuracy", "errors_flagged_share", "rejects")}
            log(f"  {ink_name} ink, seed {seed}: fields {report['field_exact_match']:.2%}, digits "
                f"{report['digit_accuracy']:.2%}, unflagged {report['unflagged_field_accuracy']:.2%}, "
                f"flagged {report['needs_review_rate']:.1%}, wrong ones flagged {report['errors_flagged_share']:.0%}")
    return out
