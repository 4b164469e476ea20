"""Forms of other people's design: layouts with no registration marks, drawn like real forms.

Each layout is a list of blocks (a letterhead with a logo, labelled fields with
the label left of, above or under the box, tables whose printed cells hold
text and whose empty cells are fields, printed paragraphs, a signature box)
laid out down the page. The same description draws the printed page at any
dpi and gives the true template, so a filled scan has exact ground truth and
`formdigits template propose` can be scored against it.

`NAMED_LAYOUTS` are four forms the tests use; `random_layout(seed)` makes as
many more as wanted, for scoring the proposer on forms nobody has looked at.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from corpus.scan_kinds import print_in_colour
from pipeline.templates.model import PAGE_SIZES, Field, Template

__all__ = ["NAMED_LAYOUTS", "Layout", "named_layout", "random_layout", "print_layout", "truth_template",
           "write_blank_pdf"]

REFERENCE_DPI = 150
_FONT_DIR = "/usr/share/fonts/truetype/dejavu"
_FONTS = {"sans": "DejaVuSans.ttf", "sans-bold": "DejaVuSans-Bold.ttf", "serif": "DejaVuSerif.ttf",
          "serif-bold": "DejaVuSerif-Bold.ttf", "condensed": "DejaVuSansCondensed.ttf",
          "mono": "DejaVuSansMono.ttf"}


@functools.lru_cache(maxsize=128)
def _font(style: str, px: int) -> ImageFont.FreeTypeFont:
    path = os.path.join(_FONT_DIR, _FONTS.get(style, _FONTS["sans"]))
    if os.path.exists(path):
        return ImageFont.truetype(path, px)
    return ImageFont.load_default(px)  # Pillow's own font, where Debian's DejaVu is not installed


@dataclasses.dataclass(frozen=True)
class Layout:
    """A form: its page, title and the drawing operations (in points) that print it, fields included."""

    name: str
    title: str
    page: str
    ops: tuple            # ("text", x, y, text, size, style) | ("rect", x, y, w, h, width, fill) | ("line", ...)
    fields: tuple[Field, ...]


class _Sheet:
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
                name = f"{prefix}{r + 1:02d}_{_slug(headers[c + 1])}"
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


def _slug(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "_" for c in text)
    return "_".join(p for p in out.split("_") if p)


# -- the named forms ----------------------------------------------------------------
def _clinic_intake() -> Layout:
    s = _Sheet("a4", np.random.default_rng(1), font="sans")
    s.letterhead("Riverside Family Clinic", "Patient intake form  -  please write one digit per box", "circle")
    s.paragraph(["All information is confidential and used only for your care. Bring this form to reception.",
                 "Use black or blue ink. Write dates as day, month, year."])
    s.labelled("patient_number", "Patient number", "comb", 8)
    s.labelled("date_of_birth", "Date of birth", "comb", 8, where="under")
    s.pair(("phone", "Telephone", "comb", 10, "above"), ("postcode", "Postcode", "boxed", 5, "above"))
    s.table("vitals", ["Visit", "Height cm", "Weight kg", "Pulse"], ["First visit", "Follow-up"],
            [("boxed", 3), ("boxed", 3), ("boxed", 3)])
    s.labelled("children", "Number of children", "boxed", 1)
    s.signature()
    return s.layout("clinic_intake", "Riverside Family Clinic", "a4")


def _school_marks() -> Layout:
    s = _Sheet("letter", np.random.default_rng(2), font="serif")
    s.letterhead("Northfield High School", "Term 2 mark sheet  -  Year 9", "NH", title_size=18, style="serif-bold")
    s.pair(("class_code", "Class", "comb", 3, "left"), ("teacher_id", "Teacher ID", "comb", 5, "left"))
    s.table("s", ["Student", "Maths", "Science", "English", "Absences"],
            ["Alice Moreau", "Ben Okafor", "Chen Wei", "Dara Singh", "Eva Lindqvist", "Farid Haddad"],
            [("boxed", 3), ("boxed", 3), ("boxed", 3), ("boxed", 2)], first_col=120.0, col=80.0)
    s.paragraph(["Marks out of 100. Leave a box empty when the student did not sit the test."])
    s.labelled("total_students", "Students present", "underline", 2, where="left")
    s.signature("Teacher's signature")
    return s.layout("school_marks", "Northfield High School", "letter")


def _bank_giro() -> Layout:
    s = _Sheet("letter", np.random.default_rng(3), font="condensed")
    s.letterhead("CITY SAVINGS BANK", "Bank giro credit  -  cash and cheque deposit", "block", title_size=19)
    s.labelled("account", "Account number", "comb", 10, ticks=True)
    s.labelled("sort_code", "Sort code", "comb", 6, where="under")
    s.labelled("amount", "Amount (whole units)", "underline", 7)
    s.pair(("cheques", "Cheques", "boxed", 2, "left"), ("date", "Date DDMMYYYY", "comb", 8, "above"))
    s.labelled("reference", "Payment reference", "underline", 9, where="under")
    s.paragraph(["Cheques take three working days to clear. The bank may refuse a deposit it cannot verify.",
                 "City Savings Bank plc is registered in England No. 0012345. Keep your counterfoil."], size=6.5)
    s.signature("Paid in by")
    return s.layout("bank_giro", "CITY SAVINGS BANK", "letter")


def _census_return() -> Layout:
    s = _Sheet("a4", np.random.default_rng(4), font="sans")
    s.letterhead("NATIONAL CENSUS 2031", "Household return  -  one row per person living here", "NC")
    s.pair(("household_id", "Household ID", "comb", 9, "under"), ("rooms", "Rooms", "boxed", 2, "under"))
    s.table("p", ["Person", "Age", "Birth year", "Hours"], ["Person 1", "Person 2", "Person 3", "Person 4",
                                                           "Person 5"],
            [("boxed", 3), ("comb", 4), ("boxed", 2)], first_col=90.0, col=95.0)
    s.labelled("persons", "People in household", "comb", 2)
    s.paragraph(["It is an offence to give false information. Return this form within 14 days."])
    return s.layout("census_return", "NATIONAL CENSUS 2031", "a4")


NAMED_LAYOUTS = {"clinic_intake": _clinic_intake, "school_marks": _school_marks, "bank_giro": _bank_giro,
                 "census_return": _census_return}


@functools.lru_cache(maxsize=32)
def named_layout(name: str) -> Layout:
    """A layout by name: one of `NAMED_LAYOUTS`, or `form_SEED` for `random_layout(SEED)`."""
    if name.startswith("form_") and name[5:].isdigit():
        return random_layout(int(name[5:]))
    if name not in NAMED_LAYOUTS:
        raise KeyError(f"no layout {name!r}; choose from {', '.join(NAMED_LAYOUTS)}")
    return NAMED_LAYOUTS[name]()


_WORDS = ("Account", "Member", "Policy", "Invoice", "Customer", "Branch", "Claim", "Order", "Unit", "Office",
          "Meter", "Staff", "Vehicle", "Room", "Ward", "Batch", "Item", "Region", "Parcel", "Case")
_NOUNS = ("number", "code", "count", "total", "year", "reading", "ID", "quantity", "days", "hours")


@functools.lru_cache(maxsize=256)
def random_layout(seed: int) -> Layout:
    """A form nobody designed: letterhead, fields, tables and text in an order and style drawn from `seed`."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 77]))
    page = "letter" if rng.random() < 0.5 else "a4"
    s = _Sheet(page, rng, font=str(rng.choice(["sans", "serif", "condensed"])))
    org = f"{rng.choice(_WORDS)} {rng.choice(['Services', 'Authority', 'Trust', 'Cooperative', 'Agency'])}"
    s.letterhead(org.upper() if rng.random() < 0.5 else org, f"Form {int(rng.integers(10, 99))}-"
                 f"{chr(65 + int(rng.integers(26)))}", str(rng.choice(["circle", "block", org[:2]])),
                 title_size=float(rng.uniform(14, 20)), style=str(rng.choice(["sans-bold", "serif-bold"])))
    used = set()
    for block in rng.permutation(["fields", "fields", "table", "text", "fields"]):
        if s.y > s.height - 200:
            break
        if block == "text":
            s.paragraph([" ".join(rng.choice(_WORDS + _NOUNS, 12)).capitalize() + "."
                         for _ in range(int(rng.integers(1, 4)))])
        elif block == "table":
            cols = [str(rng.choice(_WORDS)) + " " + str(rng.choice(_NOUNS)) for _ in range(int(rng.integers(2, 4)))]
            rows = [f"Line {i + 1}" for i in range(int(rng.integers(2, 5)))]
            kinds = [("comb", 4) if rng.random() < 0.3 else ("boxed", int(rng.integers(2, 5))) for _ in cols]
            s.table(f"t{len(used)}_", ["Entry"] + cols, rows, kinds, col=float(rng.uniform(80, 100)))
            used.add("t")
        else:
            for _ in range(int(rng.integers(2, 4))):
                label = f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)}"
                name = _slug(label)
                if name in used or s.y > s.height - 120:
                    continue
                used.add(name)
                kind = str(rng.choice(["comb", "comb", "boxed", "underline"]))
                n = int(rng.integers(3, 11)) if kind == "comb" else int(rng.integers(2, 7))
                s.labelled(name, label, kind, n, where=str(rng.choice(["left", "left", "above", "under"])),
                           ticks=bool(rng.random() < 0.3))
    if s.y < s.height - 110 and rng.random() < 0.6:
        s.signature()
    return s.layout(f"form_{seed}", org, page)


# -- printing -----------------------------------------------------------------------
def print_layout(layout: Layout, dpi: int, ink: int = 30) -> np.ndarray:
    """The printed, unfilled form at `dpi`: grey uint8, dark print on white paper."""
    k = dpi / 72.0
    w, h = PAGE_SIZES[layout.page]
    image = Image.new("L", (round(w * k), round(h * k)), 255)
    draw = ImageDraw.Draw(image)
    for op in layout.ops:
        kind = op[0]
        if kind == "text":
            _, x, y, text, size, style = op
            white = style.endswith("-white")
            draw.text((x * k, y * k), text, fill=255 if white else ink,
                      font=_font(style.removesuffix("-white"), max(6, round(size * k))))
        elif kind in ("rect", "ellipse"):
            _, x, y, bw, bh, width, fill = op
            shape = draw.rectangle if kind == "rect" else draw.ellipse
            shape([x * k, y * k, (x + bw) * k, (y + bh) * k], fill=None if fill is None else ink,
                  outline=ink if width else None, width=max(1, round(width * k)) if width else 0)
        else:
            _, x0, y0, x1, y1, width = op
            draw.line([x0 * k, y0 * k, x1 * k, y1 * k], fill=ink, width=max(1, round(width * k)))
    return np.array(image)


@functools.lru_cache(maxsize=64)
def truth_template(layout: Layout, dpi: int = REFERENCE_DPI) -> Template:
    """The layout's true template, with its blank page as the registration reference (no corner marks).

    Cached: every document of a corpus asks for its forms' templates, and drawing and
    compressing the blank page is the costly part.
    """
    buf = io.BytesIO()
    Image.fromarray(print_layout(layout, dpi)).save(buf, format="PNG", optimize=True)
    return Template(layout.name, layout.title, layout.page, layout.fields, has_marks=False,
                    reference=f"{layout.name}.png", reference_dpi=float(dpi), reference_png=buf.getvalue())


def write_blank_pdf(layout: Layout, path: str, dpi: int = 200, colour: tuple[int, int, int] | None = None) -> None:
    """The blank form as a one-page PDF, as a user would have it; printed in `colour` (RGB) when given."""
    printed = print_layout(layout, dpi)
    if colour:
        image = Image.fromarray(print_in_colour(printed, colour)[:, :, ::-1].copy())
    else:
        image = Image.fromarray(printed)
    image.save(path, format="PDF", resolution=float(dpi))
