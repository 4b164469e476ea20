"""Test data and scoring: synthetic handwriting, scanned-form corpora with truth, the evaluator.

The four built-in form layouts are JSON data files in `corpus/templates/`, in
the same format the pipeline reads (`pipeline.templates.model`).
"""

from __future__ import annotations

import functools
import os

from pipeline.templates.model import Template, load_templates

__all__ = ["TEMPLATES_DIR", "BUILTIN_LAYOUTS", "builtin_templates"]

TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
# The generator draws a page's layout by index into this order: it is part of what a seed means.
BUILTIN_LAYOUTS = ("deposit_slip", "census_sheet", "invoice", "digit_lines")


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, Template]:
    return load_templates(TEMPLATES_DIR)


def builtin_templates() -> list[Template]:
    """The built-in layouts the corpus generator fills, in `BUILTIN_LAYOUTS` order."""
    templates = _load()
    return [templates[name] for name in BUILTIN_LAYOUTS]
