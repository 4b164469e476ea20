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

import functools
import io
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from corpus.scan_kinds import print_in_colour
from corpus.sheet import NOUNS, WORDS, Layout, Sheet, slug
from corpus.tight_layouts import tight_layout
from pipeline.templates.model import PAGE_SIZES, Template

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


# -- the named forms ----------------------------------------------------------------
def _clinic_intake() -> Layout:
    s = Sheet("a4", np.random.default_rng(1), font="sans")
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
    s = Sheet("letter", np.random.default_rng(2), font="serif")
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
    s = Sheet("letter", np.random.default_rng(3), font="condensed")
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
    s = Sheet("a4", np.random.default_rng(4), font="sans")
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
    """A layout by name: one of `NAMED_LAYOUTS`, `form_SEED` for `random_layout(SEED)`, `tight_SEED` for
    `corpus.tight_layouts.tight_layout(SEED)`."""
    if name.startswith("form_") and name[5:].isdigit():
        return random_layout(int(name[5:]))
    if name.startswith("tight_") and name[6:].isdigit():
        return tight_layout(int(name[6:]))
    if name not in NAMED_LAYOUTS:
        raise KeyError(f"no layout {name!r}; choose from {', '.join(NAMED_LAYOUTS)}")
    return NAMED_LAYOUTS[name]()


@functools.lru_cache(maxsize=256)
def random_layout(seed: int) -> Layout:
    """A form nobody designed: letterhead, fields, tables and text in an order and style drawn from `seed`."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 77]))
    page = "letter" if rng.random() < 0.5 else "a4"
    s = Sheet(page, rng, font=str(rng.choice(["sans", "serif", "condensed"])))
    org = f"{rng.choice(WORDS)} {rng.choice(['Services', 'Authority', 'Trust', 'Cooperative', 'Agency'])}"
    s.letterhead(org.upper() if rng.random() < 0.5 else org, f"Form {int(rng.integers(10, 99))}-"
                 f"{chr(65 + int(rng.integers(26)))}", str(rng.choice(["circle", "block", org[:2]])),
                 title_size=float(rng.uniform(14, 20)), style=str(rng.choice(["sans-bold", "serif-bold"])))
    used = set()
    for block in rng.permutation(["fields", "fields", "table", "text", "fields"]):
        if s.y > s.height - 200:
            break
        if block == "text":
            s.paragraph([" ".join(rng.choice(WORDS + NOUNS, 12)).capitalize() + "."
                         for _ in range(int(rng.integers(1, 4)))])
        elif block == "table":
            cols = [str(rng.choice(WORDS)) + " " + str(rng.choice(NOUNS)) for _ in range(int(rng.integers(2, 4)))]
            rows = [f"Line {i + 1}" for i in range(int(rng.integers(2, 5)))]
            kinds = [("comb", 4) if rng.random() < 0.3 else ("boxed", int(rng.integers(2, 5))) for _ in cols]
            s.table(f"t{len(used)}_", ["Entry"] + cols, rows, kinds, col=float(rng.uniform(80, 100)))
            used.add("t")
        else:
            for _ in range(int(rng.integers(2, 4))):
                label = f"{rng.choice(WORDS)} {rng.choice(NOUNS)}"
                name = slug(label)
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
            _, x, y, bw, bh, width, fill, *grey = op  # an optional grey level: light print, as forms use
            tone = max(ink, grey[0]) if grey else ink
            shape = draw.rectangle if kind == "rect" else draw.ellipse
            shape([x * k, y * k, (x + bw) * k, (y + bh) * k], fill=None if fill is None else tone,
                  outline=tone if width else None, width=max(1, round(width * k)) if width else 0)
        else:
            _, x0, y0, x1, y1, width, *grey = op
            draw.line([x0 * k, y0 * k, x1 * k, y1 * k], fill=max(ink, grey[0]) if grey else ink,
                      width=max(1, round(width * k)))
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
