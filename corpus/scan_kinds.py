"""Scan kinds: grey scans, bitonal (1-bit) scans, and colour scans of forms printed in a dropout colour.

A corpus is made of one kind or a mix (`synth-forms --scans grey,bitonal,colour`;
documents take the kinds in turn). A colour corpus prints every form without
marks in its dropout colour, fixed by the form's name (one form, one print run),
and its templates say so (`print_colour`); each colour document is filled in black
or blue ballpoint ink (never blue ink on a blue form, which no dropout scanner
could read). Layers mix as inks on paper do: each lets through its share of the
light below it. A bitonal scan is the grey scan through a production scanner's
1-bit mode (`corpus.scanner.bitonal`).
"""

from __future__ import annotations

import dataclasses
import io
import zlib

import numpy as np
from PIL import Image

from pipeline.reading.dropout import as_grey
from pipeline.templates.model import Template

__all__ = ["SCAN_KINDS", "DROPOUT_COLOURS", "INK_COLOURS", "dropout_colour", "hex_colour", "print_in_colour",
           "ink_colour", "add_ink", "colour_template", "check_scan_kinds"]

SCAN_KINDS = ("grey", "bitonal", "colour")
# RGB of the print on white paper at full strength: the light reds, greens and blues of dropout forms.
DROPOUT_COLOURS = {"red": (236, 92, 84), "green": (88, 182, 112), "blue": (96, 148, 236)}
INK_COLOURS = {"black": (34, 32, 38), "blue": (28, 52, 160)}


def check_scan_kinds(scans: tuple[str, ...], templates: list[Template]) -> None:
    """Raises ValueError for an unknown kind, or colour scans asked of forms with corner marks."""
    bad = [k for k in scans if k not in SCAN_KINDS]
    if bad:
        raise ValueError(f"unknown scan kind {bad[0]!r}; choose from {', '.join(SCAN_KINDS)}")
    if "colour" in scans and any(t.has_marks for t in templates):
        raise ValueError("colour scans are of forms printed in a dropout colour, the forms without marks: "
                         "pick them with --layouts (the built-in forms print black corner marks)")


def dropout_colour(form_name: str) -> tuple[int, int, int]:
    """The print colour of form `form_name`: the same for every copy of it."""
    names = sorted(DROPOUT_COLOURS)
    return DROPOUT_COLOURS[names[zlib.crc32(form_name.encode()) % len(names)]]


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def ink_colour(print_rgb: tuple[int, int, int], blue_pen: bool) -> tuple[int, int, int]:
    """The ink on a form printed in `print_rgb`: the writer's blue ballpoint, or black; black on a blue form."""
    return INK_COLOURS["blue"] if blue_pen and print_rgb != DROPOUT_COLOURS["blue"] else INK_COLOURS["black"]


def _filter(layer: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """How much light of each channel (BGR) a grey layer (255 = none, 0 = full strength) lets through."""
    strength = (255.0 - layer.astype(np.float32)) / 255.0
    absorbed = 1.0 - np.float32(rgb[::-1]) / 255.0
    return 1.0 - strength[:, :, None] * absorbed


def print_in_colour(printed: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """A grey printed page (dark print) printed in colour `rgb` instead: BGR uint8."""
    return np.clip(255.0 * _filter(printed, rgb), 0, 255).astype(np.uint8)


def add_ink(page: np.ndarray, ink: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """The colour page with a grey ink layer (dark ink on white) written over it in colour `rgb`: BGR uint8."""
    return np.clip(page.astype(np.float32) * _filter(ink, rgb), 0, 255).astype(np.uint8)


def colour_template(template: Template, printed: np.ndarray) -> Template:
    """`template` for its form printed in its dropout colour: the print colour noted, and the reference
    blank (`printed`, grey at the template's reference dpi) as the pipeline sees the colour print in grey."""
    rgb = dropout_colour(template.name)
    grey = as_grey(print_in_colour(printed, rgb))
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG", optimize=True)
    return dataclasses.replace(template, print_colour=hex_colour(rgb), reference_png=buf.getvalue())
