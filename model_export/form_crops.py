"""Training digits cut from synthetic scanned forms by the pipeline's own segmenter.

The pipeline reads digits cut out of scans: line remnants, neighbours'
fragments, JPEG blocks and 150-dpi blur included. Training on crops cut by the
same code from rendered, scanned forms (labelled by the generator's truth)
closes that gap. Only fields whose cut digit count equals the true length are
used, so every crop's label is certain.

The same documents, with many struck-through digits, train the struck-digit
detector (`generate_strike_crops`): a field cut into one piece more than its
true length, with a struck digit at a known place, labels every one of its crops.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from corpus import builtin_templates
from corpus.filling import CROSS_OUT_RATE
from corpus.forms import Ink, render_document
from corpus.handwriting import find_handwriting_fonts
from corpus.mnist_ink import mnist_pool
from pipeline.registration.register import register_page
from pipeline.segmentation.segment import cut_fields
from pipeline.types import SegmentError

__all__ = ["generate_form_crops", "generate_strike_crops"]

STRUCK = 10  # label of a struck-through digit in `_document_crops`


def _document_crops(args) -> tuple[np.ndarray, np.ndarray]:
    """Crops of one rendered document: (28x28 crops, digit labels, STRUCK for a struck-through digit)."""
    seed, index, ink, cross_out_rate = args
    templates = builtin_templates()
    images, truth, _, rng = render_document(seed, index, "png", 1, ink, "train", cross_out_rate=cross_out_rate)
    page = images[0]
    if rng.random() < 0.4:  # many scans are JPEGs
        ok, buf = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 90))])
        page = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    rows = {t["field"]: t for t in truth}
    crops, labels = [], []
    try:
        upright, registration = register_page(page, templates)
    except SegmentError:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)
    for cut in cut_fields(upright, registration, drop_struck_digits=False, review=False):
        row = rows.get(cut.field)
        value = list(row["value"]) if row else []
        if row and row.get("struck") is not None:
            value.insert(row["struck"], STRUCK)
        if not value or len(cut.digits) != len(value):
            continue
        for digit, label in zip(cut.digits, value):
            if digit.crop is not None:
                crops.append(digit.crop)
                labels.append(int(label))
    return np.array(crops, np.uint8).reshape(-1, 28, 28), np.array(labels, np.uint8)


def _crops(n: int, seed: int, stream: int, cross_out_rate: float, workers, ink: Ink | None, progress,
           keep_struck: bool):
    ink = ink or Ink(fonts=tuple(find_handwriting_fonts()))
    if ink.kind == "mnist":
        mnist_pool(ink.mnist_path, ink.mnist_split)  # read once here; the workers fork with it
    workers = workers or os.cpu_count() or 1
    parts, total, index = [], 0, 0
    with ProcessPoolExecutor(workers) as pool:
        while total < n:
            jobs = [(seed * 7919 + stream * 104729, index + k, ink, cross_out_rate) for k in range(workers * 4)]
            index += len(jobs)
            for images, labels in pool.map(_document_crops, jobs):
                if not keep_struck:  # a struck-through digit has no digit label to learn
                    images, labels = images[labels != STRUCK], labels[labels != STRUCK]
                parts.append((images, labels))
                total += len(labels)
            if progress:
                progress(min(total, n), n)
    return tuple(np.concatenate(column)[:n] for column in zip(*parts))


def generate_form_crops(n: int, seed: int, stream: int, workers: int | None = None, ink: Ink | None = None,
                        progress=None) -> tuple[np.ndarray, np.ndarray]:
    """About `n` labelled digit crops cut from rendered forms (deterministic by seed, stream and ink).

    `ink` says whose handwriting fills the forms (default: synthetic writers); real MNIST ink takes
    its glyphs from the split it names, so crops for training come from MNIST's training split.
    """
    return _crops(n, seed, stream, CROSS_OUT_RATE, workers, ink, progress, keep_struck=False)


def generate_strike_crops(n: int, seed: int, stream: int, cross_out_rate: float = 0.6, workers: int | None = None,
                          ink: Ink | None = None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """About `n` crops cut from forms with many struck-through digits: (28x28 crops, struck 0/1)."""
    images, labels = _crops(n, seed, stream, cross_out_rate, workers, ink, progress, keep_struck=True)
    return images, (labels == STRUCK).astype(np.uint8)
