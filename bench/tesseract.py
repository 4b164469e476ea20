"""The baseline users try first: Tesseract 5, digits only, one line per field.

It reads the same registered, line-cleaned field images our digit splitter
gets (Debian's `tesseract-ocr`, installed by `make setup`), and is scored by
the evaluator's rules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import cv2

from bench.corpora import registered_pages
from bench.pipeline import process_pool
from corpus.evaluate import evaluate
from pipeline.segmentation.segment import field_images

__all__ = ["TESSERACT", "tesseract_available", "tesseract_digits", "tesseract_baseline"]

TESSERACT = "tesseract"


def tesseract_available() -> bool:
    return shutil.which(TESSERACT) is not None


def tesseract_digits(image) -> str | None:
    """One line of digits from a grey image (dark ink on white), as `tesseract` reads it; None if it died.

    Tesseract 5 dies now and then on a field image (SIGFPE in its line finder): for the
    baseline that field is read as nothing, and counted.
    """
    padded = cv2.copyMakeBorder(image, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255)
    ok, png = cv2.imencode(".png", padded)
    done = subprocess.run([TESSERACT, "stdin", "stdout", "--psm", "7", "-l", "eng",
                           "-c", "tessedit_char_whitelist=0123456789"],
                          input=png.tobytes(), capture_output=True,
                          env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    if done.returncode != 0:
        return None
    return "".join(ch for ch in done.stdout.decode(errors="replace") if ch.isdigit())


def _tesseract_file(args) -> tuple[int, list[dict]]:
    path, templates = args
    pages, rows = 0, []
    for number, upright, registration in registered_pages(path, templates):
        pages += 1
        for spec, image in field_images(upright, registration) if registration else []:
            value = tesseract_digits(image)
            rows.append({"source_uri": path, "page": number, "field": spec.name, "value": value or "",
                         "needs_review": False, "died": value is None})
    return pages, rows


def tesseract_baseline(files: list[str], templates: list, truth: list[dict], workers: int) -> dict:
    """Tesseract on the same registered field images, `workers` processes, scored like our results."""
    started = time.perf_counter()
    rows, pages = [], 0
    with process_pool(workers) as pool:
        for n, found in pool.imap_unordered(_tesseract_file, [(f, templates) for f in files], chunksize=1):
            pages += n
            rows.extend(found)
    wall = time.perf_counter() - started
    report = evaluate({"fields": rows, "digits": [], "rejects": []}, truth)
    return {"pages": pages, "wall_s": round(wall, 2), "pages_per_s": round(pages / wall, 3),
            "field_accuracy": report["field_exact_match"], "digit_accuracy": report["digit_accuracy"],
            "fields_tesseract_died_on": sum(r["died"] for r in rows)}
