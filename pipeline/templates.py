"""Form templates: page layout and digit fields, as data.

A template is a JSON file (`<corpus>/templates/<name>.json`) that both the
corpus generator and the pipeline read. Coordinates are PDF points (1/72 inch)
from the page's top-left corner, so one template serves scans at any dpi.

Field kinds:
    comb       a row of `cells` boxes, one digit per box (account numbers, dates)
    boxed      one rectangle holding a few digits (census grids)
    underline  a printed line to write on (invoices)
    free       no printed guide at all (free lines of digits)
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

__all__ = [
    "PAGE_SIZES",
    "Field",
    "Template",
    "luhn_valid",
    "luhn_complete",
    "check_value",
    "builtin_templates",
    "load_templates",
    "save_templates",
]

PAGE_SIZES = {"letter": (612.0, 792.0), "a4": (595.0, 842.0)}
MARK_SIZE = 18.0   # registration marks: filled squares this many points wide
MARK_MARGIN = 30.0


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    kind: str                        # comb | boxed | underline | free
    box: tuple[float, float, float, float]  # x, y, w, h in points
    min_length: int
    max_length: int
    cells: int = 0                   # comb only
    pattern: str | None = None       # regex the digit string must match
    check: str | None = None         # check-digit rule: "luhn"
    decimals: int = 0                # printed decimal separator before the last N digits
    label: str = ""

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["box"] = list(self.box)
        return {k: v for k, v in d.items() if v not in (None, "", 0) or k in ("min_length", "max_length")}

    @classmethod
    def from_json(cls, d: dict) -> "Field":
        return cls(**{**d, "box": tuple(float(v) for v in d["box"])})


@dataclasses.dataclass(frozen=True)
class Template:
    name: str
    title: str
    page: str                        # letter | a4
    fields: tuple[Field, ...]

    @property
    def size_pt(self) -> tuple[float, float]:
        return PAGE_SIZES[self.page]

    @property
    def registration_marks(self) -> list[tuple[float, float, float]]:
        """(x, y, size) of the four corner marks, in points: top-left, top-right, bottom-left, bottom-right.

        The top-left mark is larger, so a page scanned upside down can be told
        from one scanned upright.
        """
        w, h = self.size_pt
        m, s, big = MARK_MARGIN, MARK_SIZE, MARK_SIZE * 1.6
        return [(m, m, big), (w - m - s, m, s), (m, h - m - s, s), (w - m - s, h - m - s, s)]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"template {self.name} has no field {name!r}")

    def to_json(self) -> dict:
        w, h = self.size_pt
        return {
            "name": self.name, "title": self.title, "page": self.page, "width_pt": w, "height_pt": h,
            "registration_marks": [list(m) for m in self.registration_marks],
            "fields": [f.to_json() for f in self.fields],
        }

    @classmethod
    def from_json(cls, d: dict) -> "Template":
        if d.get("page") not in PAGE_SIZES:
            raise ValueError(f"template {d.get('name')!r}: page must be one of {sorted(PAGE_SIZES)}")
        return cls(name=d["name"], title=d.get("title", d["name"]), page=d["page"],
                   fields=tuple(Field.from_json(f) for f in d["fields"]))


def luhn_valid(digits: str) -> bool:
    """True when `digits` passes the Luhn (mod 10) check."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def luhn_complete(body: str) -> str:
    """Appends the Luhn check digit to `body`."""
    for d in "0123456789":
        if luhn_valid(body + d):
            return body + d
    raise AssertionError("unreachable")


def check_value(field: Field, value: str) -> list[str]:
    """Why `value` does not fit `field` (empty list when it fits)."""
    problems = []
    if not value:
        return ["empty"]
    if not field.min_length <= len(value) <= field.max_length:
        problems.append(f"length {len(value)} not in {field.min_length}..{field.max_length}")
    if field.pattern and not re.fullmatch(field.pattern, value):
        problems.append("pattern mismatch")
    if field.check == "luhn" and not luhn_valid(value):
        problems.append("check digit failed")
    return problems


def _comb(name, x, y, cells, label, cell_w=24.0, cell_h=30.0, **kw) -> Field:
    return Field(name=name, kind="comb", box=(x, y, cells * cell_w, cell_h), cells=cells,
                 min_length=kw.pop("min_length", cells), max_length=kw.pop("max_length", cells), label=label, **kw)


def builtin_templates() -> list[Template]:
    """The four layouts the corpus generator fills."""
    deposit = Template("deposit_slip", "DEPOSIT SLIP", "letter", (
        _comb("account", 72, 150, 10, "ACCOUNT NUMBER", check="luhn", pattern=r"\d{10}"),
        _comb("amount", 72, 240, 8, "AMOUNT", min_length=3, max_length=8, decimals=2, pattern=r"\d{3,8}"),
        _comb("date", 72, 330, 8, "DATE (DDMMYYYY)", pattern=r"(0[1-9]|[12]\d|3[01])(0[1-9]|1[0-2])(19|20)\d\d"),
        _comb("branch", 360, 150, 4, "BRANCH", pattern=r"\d{4}"),
        _comb("cheques", 360, 240, 2, "NO. OF CHEQUES", min_length=1, max_length=2, pattern=r"\d{1,2}"),
    ))
    census_fields = []
    columns = (("age", 2, 1, 2), ("household", 2, 1, 2), ("birth_year", 4, 4, 4), ("postcode", 5, 5, 5))
    col_x = [150.0, 240.0, 330.0, 450.0]
    for row in range(10):
        y = 150.0 + row * 58.0
        for (name, width, lo, hi), x in zip(columns, col_x):
            census_fields.append(Field(
                name=f"r{row + 1:02d}_{name}", kind="boxed", box=(x, y, 20.0 * width + 16.0, 34.0),
                min_length=lo, max_length=hi, label=name.upper().replace("_", " ") if row == 0 else "",
                pattern=r"(19|20)\d\d" if name == "birth_year" else None))
    census = Template("census_sheet", "HOUSEHOLD CENSUS", "a4", tuple(census_fields))
    invoice_fields = [
        Field("invoice_no", "underline", (90, 130, 160, 30), 6, 8, label="INVOICE NO."),
        Field("invoice_date", "underline", (340, 130, 170, 30), 8, 8, label="DATE",
              pattern=r"(0[1-9]|[12]\d|3[01])(0[1-9]|1[0-2])(19|20)\d\d"),
    ]
    for i in range(6):
        y = 250.0 + i * 60.0
        invoice_fields.append(Field(f"item{i + 1}_qty", "underline", (250, y, 80, 30), 1, 3,
                                    label="QTY" if i == 0 else ""))
        invoice_fields.append(Field(f"item{i + 1}_price", "underline", (380, y, 130, 30), 3, 6, decimals=2,
                                    label="PRICE" if i == 0 else ""))
    invoice_fields.append(Field("total", "underline", (380, 640, 130, 30), 3, 7, decimals=2, label="TOTAL"))
    invoice = Template("invoice", "INVOICE", "letter", tuple(invoice_fields))
    free = Template("digit_lines", "DIGIT SHEET", "a4", tuple(
        Field(f"line{i + 1:02d}", "free", (70, 110 + i * 62.0, 455, 44), 4, 12) for i in range(11)))
    return [deposit, census, invoice, free]


def save_templates(templates: list[Template], directory: str | os.PathLike) -> None:
    os.makedirs(directory, exist_ok=True)
    for t in templates:
        with open(os.path.join(directory, f"{t.name}.json"), "w") as fh:
            json.dump(t.to_json(), fh, indent=2)


def load_templates(directory: str | os.PathLike) -> dict[str, Template]:
    """Every `<name>.json` template in `directory` (local or gs://), by name."""
    directory = os.fspath(directory)
    if "://" in directory:
        from apache_beam.io.filesystems import FileSystems

        paths = sorted(m.path for m in FileSystems.match([directory.rstrip("/") + "/*.json"])[0].metadata_list)
        opener = FileSystems.open
    else:
        paths = sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json"))
        opener = open
    if not paths:
        raise FileNotFoundError(f"no template .json files in {directory!r}")
    templates = {}
    for path in paths:
        with opener(path) as fh:
            t = Template.from_json(json.loads(fh.read()))
        templates[t.name] = t
    return templates
