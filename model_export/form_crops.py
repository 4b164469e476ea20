"""Training digits cut from synthetic scanned forms by the pipeline's own segmenter.

The pipeline reads digits cut out of scans: line remnants, neighbours'
fragments, JPEG blocks and 150-dpi blur included. Training on crops cut by the
same code from rendered, scanned forms (labelled by the generator's truth)
closes that gap. Only fields whose cut digit count equals the true length are
used, so every crop's label is certain.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

__all__ = ["generate_form_crops"]


def _document_crops(args) -> tuple[np.ndarray, np.ndarray]:
    seed, index, fonts = args
    from model_export.normalize import EmptyCropError, mnist_normalize
    from pipeline.segment import SegmentError, cut_fields, register_page
    from pipeline.synth_forms import render_document
    from pipeline.templates import builtin_templates

    templates = builtin_templates()
    images, truth, _, rng = render_document(seed, index, "png", 1, fonts, "train")
    page = images[0]
    if rng.random() < 0.4:  # many scans are JPEGs
        ok, buf = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 90))])
        page = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    values = {t["field"]: t["value"] for t in truth}
    crops, labels = [], []
    try:
        upright, registration = register_page(page, templates)
    except SegmentError:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)
    for cut in cut_fields(upright, registration):
        value = values.get(cut.field, "")
        if not value or len(cut.digits) != len(value):
            continue
        for digit, label in zip(cut.digits, value):
            try:
                crops.append(mnist_normalize(digit.image))
                labels.append(int(label))
            except EmptyCropError:
                continue
    return np.array(crops, np.uint8).reshape(-1, 28, 28), np.array(labels, np.uint8)


def generate_form_crops(n: int, seed: int, stream: int, workers: int | None = None, fonts=None,
                        progress=None) -> tuple[np.ndarray, np.ndarray]:
    """About `n` labelled digit crops cut from rendered forms (deterministic by seed and stream)."""
    from model_export.synthetic import find_handwriting_fonts

    fonts = find_handwriting_fonts() if fonts is None else fonts
    workers = workers or os.cpu_count() or 1
    images, labels, total, index = [], [], 0, 0
    with ProcessPoolExecutor(workers) as pool:
        while total < n:
            jobs = [(seed * 7919 + stream * 104729, index + k, fonts) for k in range(workers * 4)]
            index += len(jobs)
            for imgs, labs in pool.map(_document_crops, jobs):
                images.append(imgs)
                labels.append(labs)
                total += len(labs)
            if progress:
                progress(min(total, n), n)
    return np.concatenate(images)[:n], np.concatenate(labels)[:n]
