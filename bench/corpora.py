"""The benchmark's corpora: generated once per seed and size, kept between runs, and copied tenfold."""

from __future__ import annotations

import os
import shutil

from corpus.forms import synth_forms
from pipeline.reading.read import Page, read_pages
from pipeline.registration.register import register_scan
from pipeline.types import SegmentError

__all__ = ["make_corpus", "corpus_files", "replicate", "registered_pages"]


def make_corpus(directory: str, pages: int, seed: int, **options) -> str:
    """Returns a corpus of `pages` pages (`synth_forms`' `options`: ink, layouts, scans...), generated once per
    directory."""
    if not os.path.exists(os.path.join(directory, "truth.jsonl")):
        synth_forms(pages, directory, seed=seed, **options)
    return directory


def corpus_files(directory: str) -> list[str]:
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.startswith("scan_"))


def replicate(directory: str, copies: int, out_dir: str) -> str:
    """`copies` copies of a corpus's scans under new names (hard links where possible)."""
    os.makedirs(out_dir, exist_ok=True)
    for path in corpus_files(directory):
        stem, ext = os.path.splitext(os.path.basename(path))
        for k in range(copies):
            target = os.path.join(out_dir, f"{stem}_copy{k:02d}{ext}")
            if not os.path.exists(target):
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copyfile(path, target)
    return out_dir


def registered_pages(path: str, templates: list):
    """(page number, upright page, registration or None when it does not register) for each page of a file."""
    with open(path, "rb") as fh:
        data = fh.read()
    for page in read_pages(path, data):
        if isinstance(page, Page):
            try:
                yield (page.page, *register_scan(page.image, templates))
            except SegmentError:
                yield page.page, page.image, None
