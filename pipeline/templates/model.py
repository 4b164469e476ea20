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
import functools
import json
import os
import re

import cv2
import numpy as np

__all__ = [
    "PAGE_SIZES",
    "Field",
    "Template",
    "luhn_valid",
    "luhn_complete",
    "check_value",
    "render_blank",
    "reference_image",
    "load_template_file",
    "load_templates",
    "save_templates",
    "template_json",
]

PAGE_SIZES = {"letter": (612.0, 792.0), "a4": (595.0, 842.0)}
MARK_SIZE = 18.0   # registration marks: filled squares this many points wide
MARK_MARGIN = 30.0
TITLE_ORIGIN = (72.0, 95.0)           # points: where the title's baseline starts
TITLE_BOX = (60.0, 72.0, 360.0, 32.0)  # points: the region the title is printed in (x, y, w, h)


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
    required: bool = True            # left empty, flagged (a proposed field is not: tables have spare rows)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["box"] = list(self.box)
        # `required` is written only where it is not the default: `"required": false`.
        d = {k: v for k, v in d.items()
             if k != "required" and (v not in (None, "", 0) or k in ("min_length", "max_length"))}
        if not self.required:
            d["required"] = False
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Field":
        return cls(**{**d, "box": tuple(float(v) for v in d["box"])})


@dataclasses.dataclass(frozen=True)
class Template:
    """A form layout.

    Built-in layouts are drawn from their fields (`render_blank`) and carry corner
    marks. A form of the user's own (`formdigits template propose`) has neither:
    its blank page, `reference` (a PNG beside the JSON, read into `reference_png`
    at load so workers need no access to the folder), is what registration matches.
    """

    name: str
    title: str
    page: str                        # letter | a4 | custom (then `custom_size`)
    fields: tuple[Field, ...]
    has_marks: bool = True           # the four corner marks of `registration_marks` are printed
    reference: str = ""              # file name of the blank page, beside the JSON
    reference_dpi: float = 0.0
    custom_size: tuple[float, float] | None = None
    print_colour: str | None = None  # "#rrggbb": a dropout-colour form's print, taken out before cutting
    reference_png: bytes = dataclasses.field(default=b"", compare=False, repr=False)

    @property
    def size_pt(self) -> tuple[float, float]:
        return self.custom_size if self.page == "custom" and self.custom_size else PAGE_SIZES[self.page]

    @property
    def registration_marks(self) -> list[tuple[float, float, float]]:
        """Returns (x, y, size) of the four corner marks, in points: top-left, top-right, bottom-left, bottom-right.

        The top-left mark is larger, so a page scanned upside down can be told
        from one scanned upright.
        """
        w, h = self.size_pt
        m, s, big = MARK_MARGIN, MARK_SIZE, MARK_SIZE * 1.6
        return [(m, m, big), (w - m - s, m, s), (m, h - m - s, s), (w - m - s, h - m - s, s)]

    @property
    def title_box(self) -> tuple[float, float, float, float]:
        """Returns (x, y, w, h) in points of the region `render_blank` prints the title in; registration compares it."""
        return TITLE_BOX

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"template {self.name} has no field {name!r}")

    def to_json(self) -> dict:
        w, h = self.size_pt
        out = {
            "name": self.name, "title": self.title, "page": self.page, "width_pt": w, "height_pt": h,
            "registration_marks": [list(m) for m in self.registration_marks] if self.has_marks else [],
        }
        if self.reference:
            out.update(reference=self.reference, reference_dpi=self.reference_dpi)
        if self.print_colour:
            out["print_colour"] = self.print_colour
        out["fields"] = [f.to_json() for f in self.fields]
        return out

    @classmethod
    def from_json(cls, d: dict, reference_png: bytes = b"") -> "Template":
        page = d.get("page")
        if page not in PAGE_SIZES and page != "custom":
            raise ValueError(f"template {d.get('name')!r}: page must be one of {sorted(PAGE_SIZES)} or custom")
        size = (float(d["width_pt"]), float(d["height_pt"])) if page == "custom" else None
        has_marks = bool(d.get("registration_marks", True))
        if not has_marks and not d.get("reference"):
            raise ValueError(f"template {d.get('name')!r}: without registration marks it needs a reference "
                             "blank page (\"reference\": \"NAME.png\"; `formdigits template propose` writes one)")
        return cls(name=d["name"], title=d.get("title", d["name"]), page=page,
                   fields=tuple(Field.from_json(f) for f in d["fields"]), has_marks=has_marks,
                   reference=d.get("reference", ""), reference_dpi=float(d.get("reference_dpi", 0.0)),
                   custom_size=size, print_colour=d.get("print_colour") or None, reference_png=reference_png)


def luhn_valid(digits: str) -> bool:
    """Returns True when `digits` passes the Luhn (mod 10) check."""
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
    """Returns why `value` does not fit `field` (empty list when it fits)."""
    problems = []
    if not value:
        return ["empty"] if field.required else []
    if not field.min_length <= len(value) <= field.max_length:
        problems.append(f"length {len(value)} not in {field.min_length}..{field.max_length}")
    if field.pattern and not re.fullmatch(field.pattern, value):
        problems.append("pattern mismatch")
    if field.check == "luhn" and not luhn_valid(value):
        problems.append("check digit failed")
    return problems


def template_json(template: Template) -> str:
    """Returns the template as JSON text a person can edit: one field per line."""
    d = template.to_json()
    head = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items() if k != "fields")
    fields = ",\n".join(f"    {json.dumps(f)}" for f in d["fields"])
    return f"{{\n{head},\n  \"fields\": [\n{fields}\n  ]\n}}\n"


def save_templates(templates: list[Template], directory: str | os.PathLike) -> None:
    """Writes each template as `<name>.json`, with its reference blank page beside it when it has one."""
    os.makedirs(directory, exist_ok=True)
    for t in templates:
        if t.reference and t.reference_png:
            with open(os.path.join(directory, t.reference), "wb") as fh:
                fh.write(t.reference_png)
        with open(os.path.join(directory, f"{t.name}.json"), "w") as fh:
            fh.write(template_json(t))


def load_templates(directory: str | os.PathLike) -> dict[str, Template]:
    """Returns every `<name>.json` template in `directory` (local or gs://), by name."""
    directory = os.fspath(directory)
    if "://" in directory:
        from apache_beam.io.filesystems import FileSystems

        paths = sorted(m.path for m in FileSystems.match([directory.rstrip("/") + "/*.json"])[0].metadata_list)
        opener = binary_opener = FileSystems.open
    else:
        paths = sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json"))
        opener = open
        binary_opener = functools.partial(open, mode="rb")
    if not paths:
        raise FileNotFoundError(f"no template .json files in {directory!r}")
    templates = {}
    for path in paths:
        t = _load_one(path, opener, binary_opener)
        templates[t.name] = t
    return templates


def _load_one(path: str, opener, binary_opener) -> Template:
    """One template from its JSON file, with the reference page named in it read from beside it."""
    with opener(path) as fh:
        d = json.loads(fh.read())
    reference = b""
    if d.get("reference"):
        ref_path = path[:path.rfind("/") + 1] + d["reference"] if "://" in path else \
            os.path.join(os.path.dirname(path), d["reference"])
        try:
            with binary_opener(ref_path) as fh:
                reference = fh.read()
        except OSError as exc:
            raise FileNotFoundError(f"template {d.get('name')!r}: its reference page {ref_path!r} "
                                    f"cannot be read ({exc})") from None
    return Template.from_json(d, reference)


def load_template_file(path: str | os.PathLike) -> Template:
    """Returns one template from its local JSON file (and its reference page beside it)."""
    try:
        return _load_one(os.fspath(path), open, functools.partial(open, mode="rb"))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{os.path.basename(os.fspath(path))}: not a template file ({exc})") from None


@functools.lru_cache(maxsize=32)
def reference_image(template: Template) -> np.ndarray:
    """Returns the template's blank page as grey pixels at `template.reference_dpi`, decoded once (read-only)."""
    image = cv2.imdecode(np.frombuffer(template.reference_png, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"template {template.name!r}: its reference page is not a readable image")
    image.setflags(write=False)
    return image


# -- the printed form -------------------------------------------------------------
PAPER = 255


def _pt(v: float, scale: float) -> int:
    return int(round(v * scale))


def render_blank(template: Template, dpi: int, line_grey: int) -> np.ndarray:
    """Returns the printed, unfilled form at `dpi`: marks, title, labels and field guides (dark on white).

    Registration compares scans with this drawing, and the corpus generator
    prints its forms with it, so both read the same layout from the template.
    """
    scale = dpi / 72.0
    w_pt, h_pt = template.size_pt
    page = np.full((_pt(h_pt, scale), _pt(w_pt, scale)), PAPER, np.uint8)
    for x, y, s in (template.registration_marks if template.has_marks else []):
        cv2.rectangle(page, (_pt(x, scale), _pt(y, scale)), (_pt(x + s, scale), _pt(y + s, scale)), 0, -1)
    if template.title:
        tx, ty = TITLE_ORIGIN
        cv2.putText(page, template.title, (_pt(tx, scale), _pt(ty, scale)), cv2.FONT_HERSHEY_DUPLEX,
                    0.9 * scale / 4.17, 20, max(1, _pt(1.2, scale)), cv2.LINE_AA)
    for f in template.fields:
        _draw_field(page, f, scale, line_grey)
    return page


def _draw_field(page: np.ndarray, f: Field, scale: float, line_grey: int) -> None:
    """A field's label and printed guide: a box, a comb's ticks (and decimal point) or an underline."""
    thick = max(1, _pt(0.9, scale))
    x, y, w, h = (_pt(v, scale) for v in f.box)
    if f.label:
        cv2.putText(page, f.label, (x, y - _pt(6, scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.38 * scale / 4.17 * 2,
                    60, max(1, _pt(0.6, scale)), cv2.LINE_AA)
    if f.kind in ("comb", "boxed"):
        cv2.rectangle(page, (x, y), (x + w, y + h), line_grey, thick)
    if f.kind == "comb":
        cell = w / f.cells
        for i in range(1, f.cells):
            cx = int(round(x + i * cell))
            if f.decimals and i == f.cells - f.decimals:  # printed decimal separator
                cv2.circle(page, (cx, y + h - _pt(3, scale)), max(1, _pt(1.6, scale)), 40, -1)
            cv2.line(page, (cx, y + h - int(h * 0.35)), (cx, y + h), line_grey, thick)
    elif f.kind == "underline":
        cv2.line(page, (x, y + h), (x + w, y + h), line_grey, thick)
        if f.decimals:
            cv2.putText(page, ".", (x + w + _pt(2, scale), y + h), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5 * scale / 4.17 * 2, 40, max(1, _pt(0.8, scale)), cv2.LINE_AA)
