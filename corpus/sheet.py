"""The sheet forms are laid out on: blocks down the page become drawing operations (in points) and fields.

`corpus.layouts` draws roomy forms with it, `corpus.tight_layouts` tight ones; the same
description prints the page at any dpi and gives the true template.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.templates.model import PAGE_SIZES, Field

__all__ = ["Layout", "Sheet", "slug", "WORDS", "NOUNS"]


@dataclasses.dataclass(frozen=True)
class Layout:
    """A form: its page, title and the drawing operations (in points) that print it, fields included."""

    name: str
    title: str
    page: str
    ops: tuple            # ("text", x, y, text, size, style) | ("rect", x, y, w, h, width, fill) | ("line", ...)
    fields: tuple[Field, ...]


class Sheet:
    """Lays blocks down the page, collecting drawing operations and fields."""

    def __init__(self, page: str, rng: np.random.Generator, font: str = "sans"):
        self.width, self.height = PAGE_SIZES[page]
        self.rng, self.font = rng, font
        self.left, self.right = 54.0, self.width - 54.0
        self.y = 50.0
        self.ops: list[tuple] = []
        self.fields: list[Field] = []

    def text(self, x, y, text, size=9.0, style=None):
        self.ops.append(("text", x, y, text, size, style or self.font))

    def rect(self, x, y, w, h, width=0.8, fill=None):
        self.ops.append(("rect", x, y, w, h, width, fill))

    def line(self, x0, y0, x1, y1, width=0.8):
        self.ops.append(("line", x0, y0, x1, y1, width))

    def ellipse(self, x, y, w, h, width=1.5, fill=None):
        self.ops.append(("ellipse", x, y, w, h, width, fill))

    # -- fields -------------------------------------------------------------------
    def comb(self, name, x, y, cells, cell=17.0, h=22.0, ticks=False, lo=None, label=""):
        """A row of cells, one digit each: full separators, or short ticks up from the base line."""
        w = cells * cell
        self.rect(x, y, w, h)
        for i in range(1, cells):
            cx = x + i * cell
            self.line(cx, y + h * (0.6 if ticks else 0.0), cx, y + h)
        self.fields.append(Field(name, "comb", (x, y, w, h), lo if lo is not None else cells, cells, cells=cells,
                                 label=label))
        return w

    def boxed(self, name, x, y, w, h=24.0, lo=1, hi=3, label=""):
        self.rect(x, y, w, h)
        self.fields.append(Field(name, "boxed", (x, y, w, h), lo, hi, label=label))

    def underline(self, name, x, y, w, h=22.0, lo=1, hi=8, label=""):
        self.line(x, y + h, x + w, y + h)
        self.fields.append(Field(name, "underline", (x, y, w, h), lo, hi, label=label))

    # -- blocks -------------------------------------------------------------------
    def letterhead(self, title, subtitle, logo="circle", title_size=17.0, style="sans-bold"):
        top = self.y
        if logo:
            self.logo(logo, self.left, top, 46.0)
            tx = self.left + 60
        else:
            tx = self.left
        self.text(tx, top + 2, title, title_size, style)
        self.text(tx, top + 8 + title_size * 1.2, subtitle, 10.0, self.font)
        self.line(self.left, top + 56, self.right, top + 56, 1.6)
        self.y = top + 74

    def logo(self, kind, x, y, s):
        if kind == "circle":
            self.ellipse(x, y, s, s, 2.5)
            self.rect(x + s * 0.42, y + s * 0.2, s * 0.16, s * 0.6, 0, fill=0)
            self.rect(x + s * 0.2, y + s * 0.42, s * 0.6, s * 0.16, 0, fill=0)
        elif kind == "block":
            self.rect(x, y, s * 1.1, s, 0, fill=0)
            self.text(x + s * 0.12, y + s * 0.28, "CSB", s * 0.34, "sans-bold-white")
        else:  # initials in a double frame
            self.rect(x, y, s, s, 2.0)
            self.rect(x + 4, y + 4, s - 8, s - 8, 0.8)
            self.text(x + s * 0.2, y + s * 0.3, kind[:2].upper(), s * 0.34, "serif-bold")

    def paragraph(self, lines, size=7.5):
        for line in lines:
            self.text(self.left, self.y, line, size, self.font)
            self.y += size * 1.45
        self.y += 10

    def labelled(self, name, label, kind, n, where="left", ticks=False):
        """One field with its printed label left of, above or under it; n = cells (comb) or digits."""
        size = 9.5
        label_w = 0.56 * size * len(label) + 10
        x = self.left + (label_w if where == "left" else 0)
        y = self.y + (size + 6 if where == "above" else 0)
        if kind == "comb":
            w = self.comb(name, x, y, n, ticks=ticks, label=label)
        elif kind == "boxed":
            w = max(40.0, 15.0 * n + 12)
            self.boxed(name, x, y, w, hi=n, label=label)
        else:
            w = max(90.0, 15.0 * n + 30)
            self.underline(name, x, y, w, hi=n, label=label)
        h = 22.0 if kind != "boxed" else 24.0
        if where == "left":
            self.text(self.left, y + h / 2 - size * 0.6, label, size)
        elif where == "above":
            self.text(x, self.y, label, size)
        else:
            self.text(x, y + h + 3, label, size * 0.85)
        self.y = y + h + (size + 18 if where == "under" else 16)
        return w

    def pair(self, left_spec, right_spec):
        """Two labelled fields side by side on one line."""
        top = self.y
        self.labelled(*left_spec)
        bottom = self.y
        self.y, saved = top, self.left
        self.left = self.width / 2 + 10
        self.labelled(*right_spec)
        self.left, self.y = saved, max(bottom, self.y)

    def table(self, prefix, headers, rows, kinds, first_col=110.0, col=70.0, row_h=26.0):
        """A ruled table: a header row, printed row labels, and empty cells that are fields."""
        x0, y0 = self.left, self.y
        widths = [first_col] + [col] * len(kinds)
        width = sum(widths)
        head_h = 20.0
        self.rect(x0, y0, width, head_h + row_h * len(rows), 1.0)
        self.line(x0, y0 + head_h, x0 + width, y0 + head_h, 1.0)
        xs = np.cumsum([x0] + widths)
        for i, head in enumerate(headers):
            self.text(xs[i] + 4, y0 + 5, head, 8.0, "sans-bold")
            if i:
                self.line(xs[i], y0, xs[i], y0 + head_h + row_h * len(rows), 0.8)
        for r, label in enumerate(rows):
            ry = y0 + head_h + r * row_h
            if r:
                self.line(x0, ry, x0 + width, ry, 0.6)
            self.text(x0 + 4, ry + row_h / 2 - 5, label, 8.5)
            for c, (kind, n) in enumerate(kinds):
                name = f"{prefix}{r + 1:02d}_{slug(headers[c + 1])}"
                # The field is the ruled cell itself (a boxed field), or a comb drawn inside it.
                cx, cw = xs[c + 1], widths[c + 1]
                if kind == "comb":
                    self.comb(name, cx + (cw - n * 14.0) / 2, ry + 4, n, cell=14.0, h=row_h - 8, label=headers[c + 1])
                else:
                    self.fields.append(Field(name, "boxed", (float(cx), ry, cw, row_h), 1, n, label=headers[c + 1]))
        self.y = y0 + head_h + row_h * len(rows) + 22

    def signature(self, label="Signature"):
        self.text(self.left, self.y, label, 9.0)
        self.rect(self.left, self.y + 14, 220, 52, 0.8)
        self.text(self.left + 250, self.y, "Date of signature", 9.0)
        self.rect(self.left + 250, self.y + 14, 150, 52, 0.8)
        self.y += 80

    def layout(self, name, title, page) -> Layout:
        return Layout(name, title, page, tuple(self.ops), tuple(self.fields))


def slug(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "_" for c in text)
    return "_".join(p for p in out.split("_") if p)


WORDS = ("Account", "Member", "Policy", "Invoice", "Customer", "Branch", "Claim", "Order", "Unit", "Office",
          "Meter", "Staff", "Vehicle", "Room", "Ward", "Batch", "Item", "Region", "Parcel", "Case")
NOUNS = ("number", "code", "count", "total", "year", "reading", "ID", "quantity", "days", "hours")
