"""Filling a form in: plausible values for its fields, written by hand into its boxes and lines.

The messy cases real forms have are here on purpose: digits touching box lines or
each other, digits slightly outside their box, crossed-out digits.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.templates.model import Field, luhn_complete

__all__ = ["CROSS_OUT_RATE", "fill_value", "glyph", "stamp_ink", "cross_out", "write_field"]


# -- values ------------------------------------------------------------------
def fill_value(field: Field, rng: np.random.Generator) -> str:
    """A plausible value for `field` (digits only)."""
    if field.check == "luhn":
        return luhn_complete("".join(str(d) for d in rng.integers(0, 10, field.max_length - 1)))
    if field.pattern and "(0[1-9]|[12]\\d|3[01])" in field.pattern:  # a DDMMYYYY date
        return f"{int(rng.integers(1, 29)):02d}{int(rng.integers(1, 13)):02d}{int(rng.integers(1950, 2027))}"
    if field.pattern and field.pattern.startswith("(19|20)"):
        return str(int(rng.integers(1920, 2026)))
    length = int(rng.integers(field.min_length, field.max_length + 1))
    digits = [int(rng.integers(1, 10))] + [int(d) for d in rng.integers(0, 10, length - 1)]
    if field.kind == "comb" and field.max_length == field.min_length:
        digits[0] = int(rng.integers(0, 10))  # fixed-width codes may start with 0
    return "".join(map(str, digits))


# -- handwriting on the page -------------------------------------------------
def glyph(digit: int, writer, rng, height_px: float) -> np.ndarray:
    """One handwritten digit by `writer` (any writer with `ink(digit, rng)`: synthetic or real MNIST glyphs),
    ink bright, cropped to its ink and scaled to `height_px`."""
    ink = writer.ink(digit, rng)
    ys, xs = np.nonzero(ink > 24)
    if ys.size == 0:
        return np.zeros((1, 1), np.uint8)
    ink = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    scale = height_px / ink.shape[0]
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    return cv2.resize(ink, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def stamp_ink(page: np.ndarray, ink: np.ndarray, x: int, y: int, darkness: float) -> None:
    """Writes ink (bright = ink) onto the page (dark = ink) with its top-left corner at (x, y)."""
    h, w = ink.shape
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(page.shape[1], x + w), min(page.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return
    patch = ink[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float32) * darkness
    region = page[y0:y1, x0:x1]
    # Clipped: a darkness above 1 took full ink below zero, and uint8 wrapped it round to white,
    # leaving thick strokes hollow, outlines only, as no pen writes.
    np.minimum(region, np.clip(255.0 - patch, 0, 255).astype(np.uint8), out=region)


def cross_out(page, x, y, w, h, rng, thickness):
    """Strikes through the box (x, y, w, h) of `page` with a wavy pen line, as people cross out a digit."""
    pts = [(x - 2, y + int(h * rng.uniform(0.3, 0.7)))]
    for i in range(1, 5):
        pts.append((x + w * i // 4, y + int(h * rng.uniform(0.2, 0.8))))
    cv2.polylines(page, [np.array(pts, np.int32)], False, 30, thickness, cv2.LINE_AA)


CROSS_OUT_RATE = 0.04  # share of underline and free fields with one wrong digit struck through


def write_field(page: np.ndarray, field: Field, value: str, writer, rng: np.random.Generator, scale: float,
                cross_out_rate: float = CROSS_OUT_RATE) -> int | None:
    """Writes `value` into `field` the way a person does, messy cases included.

    Returns:
        The position in `value` before which a struck-through wrong digit was
        written, or None when nothing was struck through.
    """
    if not value:
        return None
    box = tuple(v * scale for v in field.box)
    darkness = writer.darkness * rng.uniform(0.9, 1.05)
    if field.kind == "comb":
        _write_comb(page, field, box, value, writer, rng, darkness)
        return None
    return _write_run(page, field, box, value, writer, rng, darkness, cross_out_rate)


def _write_comb(page, field: Field, box, value: str, writer, rng: np.random.Generator, darkness: float) -> None:
    """One digit a cell, right-aligned like amounts on paper; now and then one crosses the box line."""
    x, y, w, h = box
    cell = w / field.cells
    first = field.cells - len(value)
    for i, ch in enumerate(value):
        g = glyph(int(ch), writer, rng, cell * 1.2 * rng.uniform(0.55, 0.8) * (h / (cell * 1.25)))
        cx = x + (first + i + 0.5) * cell + rng.normal(0, cell * 0.06)
        cy = y + h * 0.55 + rng.normal(0, h * 0.05)
        if rng.random() < 0.06:          # crosses the box line below or beside
            cy += h * rng.uniform(0.18, 0.3) * rng.choice([-1, 1])
        stamp_ink(page, g, int(cx - g.shape[1] / 2), int(cy - g.shape[0] / 2), darkness)


def _write_run(page, field: Field, box, value: str, writer, rng: np.random.Generator, darkness: float,
               cross_out_rate: float) -> int | None:
    """boxed / underline / free: a run of digits from the left, sized to fit the box (see `write_field`)."""
    x, y, w, h = box
    pen = max(1, int(round(writer.pen * h * 0.7)))
    height = h * (rng.uniform(0.6, 0.8) if field.kind == "boxed" else rng.uniform(0.7, 0.95))
    gap_share = rng.uniform(0.15, 0.45) * (0.3 if rng.random() < 0.12 else 1.0)  # tight: digits touch
    crossed = int(rng.integers(len(value))) if field.kind in ("underline", "free") and rng.random() < cross_out_rate else -1
    glyphs = [glyph(int(ch), writer, rng, height * rng.uniform(0.92, 1.05)) for ch in value]
    struck = glyph(int(rng.integers(10)), writer, rng, height) if crossed >= 0 else None
    run = sum(g.shape[1] for g in glyphs) + gap_share * height * (len(glyphs) - 1)
    run += (struck.shape[1] + gap_share * height * 1.5) if struck is not None else 0
    room = w * rng.uniform(0.8, 0.92)
    overflow = rng.random() < 0.04           # now and then the writing runs out of the box
    if run > room and not overflow:
        shrink = room / run
        glyphs = [cv2.resize(g, (max(1, round(g.shape[1] * shrink)), max(1, round(g.shape[0] * shrink))),
                             interpolation=cv2.INTER_AREA) for g in glyphs]
        if struck is not None:
            struck = cv2.resize(struck, (max(1, round(struck.shape[1] * shrink)),
                                         max(1, round(struck.shape[0] * shrink))), interpolation=cv2.INTER_AREA)
        height *= shrink
    gap = gap_share * height
    cursor = x + rng.uniform(0.02, 1.0) * max(0.0, w - run) * 0.3 + 0.03 * w
    baseline = y + (h * 0.9 if field.kind == "boxed" else h * 0.97) + rng.normal(0, h * 0.03)
    if overflow:                               # ... and below the line
        baseline += h * 0.15
    for i, g in enumerate(glyphs):
        if i == crossed:  # a wrong digit, struck through, then the right one
            stamp_ink(page, struck, int(cursor), int(baseline - struck.shape[0]), darkness)
            cross_out(page, int(cursor), int(baseline - struck.shape[0]), struck.shape[1], struck.shape[0], rng, pen)
            cursor += struck.shape[1] + gap * 1.5
        stamp_ink(page, g, int(cursor), int(baseline - g.shape[0] + rng.normal(0, height * 0.04)), darkness)
        cursor += g.shape[1] + gap * rng.uniform(0.7, 1.3)
    return crossed if crossed >= 0 else None
