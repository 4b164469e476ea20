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
from corpus.forms import Ink, corpus_templates, render_document
from corpus.handwriting import find_handwriting_fonts
from corpus.mnist_ink import mnist_pool
from pipeline.reading.read import read_pages
from pipeline.registration.register import register_page, register_scan
from pipeline.segmentation.segment import cut_fields
from pipeline.types import SegmentError

__all__ = ["generate_form_crops", "generate_own_form_crops", "generate_strike_crops", "OWN_FORM_LAYOUTS"]

STRUCK = 10  # label of a struck-through digit in `_document_crops`


# Forms without marks that training cuts digits from: generated layouts of their own seeds, never the bench's
# (random:7000-7029 proposal, 7001-7003 scans). Documents take a scan kind in turn: black print scanned grey
# twice, bitonal once, printed in a dropout colour and scanned in colour once.
OWN_FORM_LAYOUTS = {"train": tuple(f"random:{seed}" for seed in range(8000, 8024)),
                    "heldout": tuple(f"random:{seed}" for seed in range(8100, 8104))}
OWN_FORM_SCANS = ("grey", "grey", "bitonal", "colour")


def _document_crops(args) -> tuple[np.ndarray, np.ndarray]:
    """Crops of one rendered document: (28x28 crops, digit labels, STRUCK for a struck-through digit)."""
    seed, index, ink, cross_out_rate, layouts = args
    if layouts:
        return _own_form_crops(seed, index, ink, cross_out_rate, layouts)
    templates = builtin_templates()
    images, truth, _, rng = render_document(seed, index, "png", 1, ink, "train", cross_out_rate=cross_out_rate)
    page = images[0]
    if rng.random() < 0.4:  # many scans are JPEGs
        ok, buf = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 90))])
        page = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    try:
        upright, registration = register_page(page, templates)
    except SegmentError:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)
    return _labelled(cut_fields(upright, registration, drop_struck_digits=False, review=False), truth)


def _own_form_crops(seed: int, index: int, ink: Ink, cross_out_rate: float, layouts: tuple[str, ...]):
    """Crops of one document of a form without marks, read as the pipeline reads a file (`read_pages`:
    colour kept, bitonal edges softened) and registered by the form's print."""
    scans = (OWN_FORM_SCANS[index % len(OWN_FORM_SCANS)],)
    images, truth, _, rng = render_document(seed, index, "png", 1, ink, "train", cross_out_rate=cross_out_rate,
                                            layouts=layouts, scans=scans)
    jpeg = scans[0] != "bitonal" and rng.random() < 0.4  # many scans are JPEGs
    ok, buf = cv2.imencode(".jpg" if jpeg else ".png", images[0], [cv2.IMWRITE_JPEG_QUALITY, 80] if jpeg else [])
    page = next(read_pages("train.png", buf.tobytes()))
    try:
        upright, registration = register_scan(page.image, corpus_templates(layouts, colour=scans == ("colour",)))
    except SegmentError:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)
    return _labelled(cut_fields(upright, registration, drop_struck_digits=False, review=False), truth)


def _labelled(cuts, truth: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The crops of the fields cut into as many digits as the truth holds, each with its digit (or STRUCK)."""
    rows = {t["field"]: t for t in truth}
    crops, labels = [], []
    for cut in cuts:
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
           keep_struck: bool, layouts: tuple[str, ...] = ()):
    ink = ink or Ink(fonts=tuple(find_handwriting_fonts()))
    if ink.kind == "mnist":
        mnist_pool(ink.mnist_path, ink.mnist_split)  # read once here; the workers fork with it
    workers = workers or os.cpu_count() or 1
    parts, total, index = [], 0, 0
    with ProcessPoolExecutor(workers) as pool:
        while total < n:
            jobs = [(seed * 7919 + stream * 104729, index + k, ink, cross_out_rate, layouts)
                    for k in range(workers * 4)]
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


def generate_own_form_crops(n: int, seed: int, stream: int, split: str = "train", workers: int | None = None,
                            ink: Ink | None = None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """About `n` labelled digit crops cut from forms without marks (`OWN_FORM_LAYOUTS[split]`): tight combs and
    table rows, grey, bitonal and dropout-colour scans, each read and registered as the pipeline does."""
    return _crops(n, seed, stream, CROSS_OUT_RATE, workers, ink, progress, keep_struck=False,
                  layouts=OWN_FORM_LAYOUTS[split])


def generate_strike_crops(n: int, seed: int, stream: int, cross_out_rate: float = 0.6, workers: int | None = None,
                          ink: Ink | None = None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """About `n` crops cut from forms with many struck-through digits: (28x28 crops, struck 0/1)."""
    images, labels = _crops(n, seed, stream, cross_out_rate, workers, ink, progress, keep_struck=True)
    return images, (labels == STRUCK).astype(np.uint8)
