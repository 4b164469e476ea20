"""Tight forms, drawn the way tax returns, lab requests and giro slips are: generated, a seed a form.

Beside `corpus.layouts`' roomy blocks they use the primitives such forms have:
combs of separate boxes with gaps between them, combs drawn as one frame with short
ticks, dense ruled tables of amounts a third of an inch a row with narrow spacer
columns, long and dotted underlines with their label on their left, lines printed thin
or in light grey, barcodes, fine print and signature lines (which are not fields).
Cells are 12-17 points. `tight_layout(seed)` draws one; its template is `tight_SEED`
(`synth-forms --layouts tight:SEED`).
"""

from __future__ import annotations

import functools

import numpy as np

from corpus.sheet import NOUNS, WORDS, Layout, Sheet, slug
from pipeline.templates.model import Field

__all__ = ["tight_layout"]


class _TightSheet(Sheet):
    """A sheet with the tight primitives; `grey` is the print's level for lines (None: the ink's own)."""

    def __init__(self, page: str, rng: np.random.Generator, font: str, grey: int | None, width: float):
        super().__init__(page, rng, font)
        self.grey, self.width_pt = grey, width

    def rect(self, x, y, w, h, width=None, fill=None):
        self.ops.append(("rect", x, y, w, h, self.width_pt if width is None else width, fill)
                        + ((self.grey,) if self.grey and fill is None else ()))

    def line(self, x0, y0, x1, y1, width=None):
        self.ops.append(("line", x0, y0, x1, y1, self.width_pt if width is None else width)
                        + ((self.grey,) if self.grey else ()))

    def box_comb(self, name, x, y, cells, cell, h, gap, label) -> float:
        """Separate boxes with `gap` points between them, one digit each."""
        for i in range(cells):
            self.rect(x + i * (cell + gap), y, cell, h)
        w = cells * cell + (cells - 1) * gap
        self.fields.append(Field(name, "comb", (x, y, w, h), cells, cells, cells=cells, label=label))
        return w

    def tick_comb(self, name, x, y, cells, cell, h, label) -> float:
        """One frame with short ticks up from its base line between the cells."""
        w = cells * cell
        self.rect(x, y, w, h)
        for i in range(1, cells):
            self.line(x + i * cell, y + h * 0.7, x + i * cell, y + h)
        self.fields.append(Field(name, "comb", (x, y, w, h), cells, cells, cells=cells, label=label))
        return w

    def long_line(self, name, label, width, dotted=False, h=18.0):
        """A long underline (or a dotted one) with its label on its left, on the same line."""
        size = 8.5
        x = self.left + 0.55 * size * len(label) + 8
        self.text(self.left, self.y + h - size - 1, label, size)
        if dotted:
            for dx in np.arange(0.0, width, 3.0):
                self.line(x + dx, self.y + h, x + dx + 1.0, self.y + h, 0.8)
        else:
            self.line(x, self.y + h, x + width, self.y + h)
        self.fields.append(Field(name, "underline", (x, self.y, width, h), 1, max(2, int(width / 14.0)), label=label))
        self.y += h + 12

    def amounts(self, prefix, rows, heads, row_h, col_w, spacer):
        """A dense ruled table of amounts: row labels, amount columns with narrow spacer columns between them."""
        x0, y0, head_h, first = self.left, self.y, 14.0, 150.0
        widths = [first] + [w for _ in heads for w in (col_w, spacer)][:-1]
        xs = np.cumsum([x0] + widths)
        total = float(sum(widths))
        self.rect(x0, y0, total, head_h + row_h * len(rows))
        self.line(x0, y0 + head_h, x0 + total, y0 + head_h)
        for x in xs[1:-1]:
            self.line(float(x), y0, float(x), y0 + head_h + row_h * len(rows))
        for c, head in enumerate(heads):
            self.text(float(xs[1 + 2 * c]) + 3, y0 + 3, head, 7.0, "sans-bold")
        for r, label in enumerate(rows):
            ry = y0 + head_h + r * row_h
            if r:
                self.line(x0, ry, x0 + total, ry)
            self.text(x0 + 3, ry + row_h / 2 - 4, label, 7.5)
            for c, head in enumerate(heads):
                cx = float(xs[1 + 2 * c])
                self.fields.append(Field(f"{prefix}{r + 1:02d}_{slug(head)}", "boxed", (cx, ry, col_w, row_h), 1,
                                         max(2, int((col_w - 4) / (0.6 * row_h))), label=head))
        self.y = y0 + head_h + row_h * len(rows) + 16

    def barcode(self, x, y, w, h):
        bx = x
        while bx < x + w:
            bar = float(self.rng.choice([0.7, 1.4, 2.1]))
            self.rect(bx, y, bar, h, 0, fill=0)
            bx += bar + float(self.rng.choice([0.7, 1.4, 2.1]))

    def signature_line(self, label="Signature"):
        """A line to sign on, its label on its left: not a field."""
        self.text(self.left, self.y + 6, label, 8.5)
        self.line(self.left + 70, self.y + 18, self.left + 300, self.y + 18)
        self.y += 32


def _comb_row(s: _TightSheet, rng: np.random.Generator, used: set) -> None:
    """A labelled comb (separate boxes, or a frame with ticks), its label left of it or above it."""
    label = f"{rng.choice(WORDS)} {rng.choice(NOUNS)}"
    name = slug(label)
    if name in used:
        return
    used.add(name)
    cells, cell = int(rng.integers(4, 12)), float(rng.uniform(12.0, 17.0))
    h = cell * float(rng.uniform(1.05, 1.3))
    above = rng.random() < 0.4
    x = s.left if above else s.left + 0.55 * 8.5 * len(label) + 10
    y = s.y + (12 if above else 0)
    s.text(s.left, s.y if above else y + h / 2 - 5, label, 8.5)
    if rng.random() < 0.5:
        s.box_comb(name, x, y, cells, cell, h, float(rng.uniform(1.5, 4.0)), label)
    else:
        s.tick_comb(name, x, y, cells, cell, h, label)
    s.y = y + h + 12


@functools.lru_cache(maxsize=256)
def tight_layout(seed: int) -> Layout:
    """A tight form drawn from `seed`: letterhead, combs, a table of amounts, long lines, barcode, fine print."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 91]))
    page = "letter" if rng.random() < 0.5 else "a4"
    grey = int(rng.integers(90, 170)) if rng.random() < 0.35 else None
    s = _TightSheet(page, rng, str(rng.choice(["sans", "condensed", "serif"])), grey,
                    float(rng.choice([0.4, 0.6, 0.8])))
    org = f"{rng.choice(WORDS)} {rng.choice(['Revenue', 'Laboratory', 'Registry', 'Bank', 'Office'])}"
    s.letterhead(org, f"Form {int(rng.integers(100, 999))}", None, title_size=float(rng.uniform(12, 16)))
    if rng.random() < 0.6:
        s.barcode(s.right - 150, 52, 140, 26)
    used: set = set()
    for block in rng.permutation(["combs", "amounts", "lines", "combs", "fine"]):
        if s.y > s.height - 160:
            break
        if block == "combs":
            for _ in range(int(rng.integers(2, 4))):
                _comb_row(s, rng, used)
        elif block == "amounts" and "amounts" not in used:
            used.add("amounts")
            heads = [f"{rng.choice(NOUNS).capitalize()} {c}" for c in "ABC"[:int(rng.integers(1, 4))]]
            s.amounts("a", [f"Line {i + 1}" for i in range(int(rng.integers(3, 8)))], heads,
                      float(rng.uniform(18.0, 22.0)), float(rng.uniform(70.0, 100.0)), float(rng.uniform(5.0, 9.0)))
        elif block == "lines":
            for _ in range(int(rng.integers(1, 3))):
                label = f"{rng.choice(WORDS)} {rng.choice(['phone', 'number', 'reference'])}"
                if slug(label) not in used:
                    used.add(slug(label))
                    s.long_line(slug(label), label, float(rng.uniform(180.0, 380.0)), dotted=rng.random() < 0.4)
        else:
            s.paragraph([" ".join(rng.choice(WORDS + NOUNS, 18)).capitalize() + "." for _ in range(3)], size=5.5)
    if s.y < s.height - 60:
        s.signature_line()
    return s.layout(f"tight_{seed}", org, page)
