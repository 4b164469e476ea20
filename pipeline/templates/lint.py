"""Template files checked before any page is read with them: one line per problem, naming the file and field.

People edit templates by hand (rename, delete, add a rule), and a template that is wrong does not crash:
it reads wrong. A box off the page, a duplicate name (two rows under one key), a 1x1 box or a length range
no field can meet are each a line here; `formdigits run` and `template check` refuse to start on any,
and `formdigits template lint DIR|FILE` lists them all.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import cv2
import numpy as np

from pipeline.reading.dropout import parse_colour
from pipeline.templates.model import PAGE_SIZES, Field

__all__ = ["TemplateProblems", "lint_path", "lint_template", "MAX_FIELDS", "MAX_DIGITS", "MIN_BOX_PT"]

TEMPLATE_KEYS = {"name", "title", "page", "width_pt", "height_pt", "registration_marks", "reference",
                 "reference_dpi", "print_colour", "fields"}
FIELD_KEYS = {f.name for f in dataclasses.fields(Field)}
KINDS = ("comb", "boxed", "underline", "free")
CHECKS = ("luhn",)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")        # a field's name: a column people query by
TEMPLATE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")    # `template propose --name` allows '-'

MAX_FIELDS = 500      # the densest real forms hold a few hundred; more is a generated file gone wrong
MAX_DIGITS = 64
MIN_BOX_PT = 6.0      # a digit written smaller than this cannot be read at any scan resolution
MAX_OVERLAP = 0.25    # of the smaller box: two fields this much on top of each other read the same ink


class TemplateProblems(ValueError):
    """A template file (or folder) with problems; `problems` holds one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _remote(path: str) -> bool:
    return "://" in path


def _json_files(path: str) -> list[str] | None:
    """The `*.json` files of a folder (local, or gs:// through Beam's file systems); None when `path` is a file."""
    if _remote(path):
        from apache_beam.io.filesystems import FileSystems

        if path.endswith(".json"):
            return None
        found = FileSystems.match([path.rstrip("/") + "/*.json"])[0].metadata_list
        return sorted(m.path for m in found)
    if os.path.isdir(path):
        return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".json"))
    return None


def _open(path: str, mode: str = "r"):
    if _remote(path):
        import io

        from apache_beam.io.filesystems import FileSystems

        raw = FileSystems.open(path)
        return raw if "b" in mode else io.TextIOWrapper(raw, encoding="utf-8")
    return open(path, mode)


def _folder_of(file: str) -> str:
    return file.rsplit("/", 1)[0] if _remote(file) else os.path.dirname(os.path.abspath(file))


def lint_path(path: str) -> list[str]:
    """Returns every problem of a template file, or of every `*.json` in a folder (and names used twice across
    them)."""
    try:
        files = _json_files(path)
    except Exception as exc:  # a bucket out of reach: Beam's file systems raise their own kinds
        return [f"{path}: cannot list the templates ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"]
    if files is None:
        files = [path]
    elif not files:
        return [f"{path}: no template .json files"]
    problems, names = [], {}
    for file in files:
        problems += lint_file(file)
        name = _name_of(file)
        if name in names:
            problems.append(f"{file}: template name {name!r} is also used by {names[name]}")
        names.setdefault(name, file)
    return problems


def _name_of(file: str):
    try:
        with _open(file) as fh:
            return json.load(fh).get("name")
    except (OSError, ValueError, AttributeError):
        return None


def lint_file(file: str) -> list[str]:
    """Returns every problem of one template file."""
    try:
        with _open(file) as fh:
            d = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"{file}: not readable as JSON ({exc})"]
    if not isinstance(d, dict):
        return [f"{file}: a template is a JSON object, not a {type(d).__name__}"]
    return [f"{file}: {p}" for p in lint_template(d, _folder_of(file))]


def lint_template(d: dict, folder: str | None = None) -> list[str]:
    """Returns every problem of a template as parsed JSON; `folder` (where its file is) to check its reference page."""
    problems = [f"unknown key {k!r} (known: {', '.join(sorted(TEMPLATE_KEYS))})" for k in d if k not in TEMPLATE_KEYS]
    if not isinstance(d.get("name"), str) or not TEMPLATE_NAME.fullmatch(d["name"]):
        problems.append(f"name {d.get('name')!r} is not a plain name (letters, digits, _ and -)")
    size = _page_size(d, problems)
    if d.get("print_colour") is not None:
        try:
            parse_colour(d["print_colour"])
        except ValueError as exc:
            problems.append(f"{exc} (the form's print colour, e.g. \"#e06060\"; leave it out for black print)")
    if not d.get("registration_marks", True) or d.get("reference"):
        problems += _reference_problems(d, folder)
    fields = d.get("fields")
    if not isinstance(fields, list) or not fields:
        return problems + ["fields: a non-empty list is needed"]
    if len(fields) > MAX_FIELDS:
        return problems + [f"fields: {len(fields)}, more than {MAX_FIELDS}"]
    seen, boxes = set(), []
    for i, f in enumerate(fields):
        label = f"field {f.get('name')!r}" if isinstance(f, dict) else f"field #{i + 1}"
        if not isinstance(f, dict):
            problems.append(f"{label}: not a JSON object")
            continue
        field_problems = _field_problems(f, size)
        problems += [f"{label}: {p}" for p in field_problems]
        if f.get("name") in seen:
            problems.append(f"{label}: the name is used twice (two rows would share one key)")
        seen.add(f.get("name"))
        if not field_problems:
            boxes.append((f["name"], [float(v) for v in f["box"]]))
    return problems + _overlaps(boxes)


def _page_size(d: dict, problems: list[str]) -> tuple[float, float] | None:
    page = d.get("page")
    if page in PAGE_SIZES:
        return PAGE_SIZES[page]
    if page == "custom":
        try:
            w, h = float(d["width_pt"]), float(d["height_pt"])
        except (KeyError, TypeError, ValueError):
            w = h = 0.0
        if w > 0 and h > 0:
            return w, h
        problems.append("page custom needs width_pt and height_pt above 0")
        return None
    problems.append(f"page {page!r}: one of {', '.join(sorted(PAGE_SIZES))} or custom")
    return None


def _reference_problems(d: dict, folder: str | None) -> list[str]:
    ref = d.get("reference")
    if not ref:
        return ["without registration marks a template needs a reference blank page (\"reference\": \"NAME.png\")"]
    if not isinstance(ref, str) or os.path.basename(ref) != ref or ref in (".", ".."):
        return [f"reference {ref!r}: a file name beside the template, not a path"]
    if folder is None:
        return []
    path = f"{folder}/{ref}"
    try:
        with _open(path, "rb") as fh:
            data = np.frombuffer(fh.read(), np.uint8)
    except OSError:
        return [f"reference {ref!r}: no such file beside the template"]
    if not data.size or cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) is None:
        return [f"reference {ref!r}: not a readable image"]
    return []


def _field_problems(f: dict, size: tuple[float, float] | None) -> list[str]:
    problems = [f"unknown key {k!r}" for k in f if k not in FIELD_KEYS]
    if not isinstance(f.get("name"), str) or not IDENTIFIER.fullmatch(f["name"]):
        problems.append(f"name {f.get('name')!r} is not a plain identifier (letters, digits and _)")
    if f.get("kind") not in KINDS:
        problems.append(f"kind {f.get('kind')!r}: one of {', '.join(KINDS)}")
    problems += _box_problems(f.get("box"), size)
    problems += _length_problems(f)
    if f.get("pattern") is not None:
        try:
            re.compile(f["pattern"])
        except (re.error, TypeError) as exc:
            problems.append(f"pattern {f['pattern']!r} is not a regular expression ({exc})")
    if f.get("check") is not None and f["check"] not in CHECKS:
        problems.append(f"check {f['check']!r}: one of {', '.join(CHECKS)}")
    if not isinstance(f.get("required", True), bool):
        problems.append(f"required {f['required']!r}: true or false")
    return problems


def _box_problems(box, size: tuple[float, float] | None) -> list[str]:
    if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box):
        return [f"box {box!r}: [x, y, width, height] in points"]
    x, y, w, h = (float(v) for v in box)
    if not (np.isfinite([x, y, w, h]).all() and w >= MIN_BOX_PT and h >= MIN_BOX_PT):
        return [f"box {box}: {w:g} x {h:g} points; a field is at least {MIN_BOX_PT:g} x {MIN_BOX_PT:g}"]
    if size and (x < 0 or y < 0 or x + w > size[0] + 0.5 or y + h > size[1] + 0.5):
        return [f"box {box} lies off the {size[0]:g} x {size[1]:g} point page"]
    return []


def _length_problems(f: dict) -> list[str]:
    lo, hi, cells, decimals = f.get("min_length"), f.get("max_length"), f.get("cells", 0), f.get("decimals", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi, cells, decimals)):
        return ["min_length, max_length, cells and decimals are whole numbers"]
    if not 0 <= lo <= hi or not 1 <= hi <= MAX_DIGITS:
        return [f"length {lo}..{hi}: needs 0 <= min_length <= max_length, max_length 1..{MAX_DIGITS}"]
    if f.get("kind") == "comb" and not hi <= cells:
        return [f"a comb of {cells} cells cannot hold {hi} digits"]
    if not 0 <= decimals < hi:
        return [f"decimals {decimals}: fewer than max_length ({hi})"]
    return []


def _overlaps(boxes: list[tuple[str, list[float]]]) -> list[str]:
    """Pairs of fields on top of each other (sorted by x, so a dense form costs little)."""
    problems = []
    boxes = sorted(boxes, key=lambda b: b[1][0])
    for i, (name, (x, y, w, h)) in enumerate(boxes):
        for other, (ox, oy, ow, oh) in boxes[i + 1:]:
            if ox >= x + w:
                break
            inter = max(0.0, min(x + w, ox + ow) - ox) * max(0.0, min(y + h, oy + oh) - max(y, oy))
            if inter > MAX_OVERLAP * min(w * h, ow * oh):
                problems.append(f"fields {name!r} and {other!r} overlap ({inter / min(w * h, ow * oh):.0%} of "
                                "the smaller one): they would read the same ink")
    return problems
