"""`formdigits synth-forms`: a corpus of scanned, handwritten forms with ground truth.

Each document is filled by one writer (the handwriting model of
`corpus.handwriting`), then scanned: rotation, shift, scale and
perspective, the odd upside-down page, uneven illumination, blur, noise, JPEG
artefacts, faint printed lines, stamps and printed text near fields. The messy
cases real forms have are there on purpose: digits touching box lines or each
other, digits slightly outside their box, empty fields, crossed-out digits.

Output (`--out DIR`):
    DIR/scan_00001.png ...        single-page PNG and JPEG, multi-page TIFF and PDF
    DIR/templates/<name>.json     the layouts (the pipeline reads the same files)
    DIR/truth.jsonl               one line per field: source, page (1-based), template,
                                  field, value, box [x, y, w, h] in the scanned page's pixels
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from corpus import builtin_templates
from corpus.handwriting import draw_writer, find_handwriting_fonts
from corpus.layouts import NAMED_LAYOUTS, named_layout, print_layout, random_layout, truth_template, write_blank_pdf
from corpus.mnist_ink import draw_mnist_writer, mnist_pool
from corpus.scanner import (EXTENSIONS, FORMATS, box_on_scan, jpeg_roundtrip, print_clutter, scan, scribble,
                            write_document)
from pipeline.templates import Field, Template, luhn_complete, render_blank, save_templates

__all__ = ["FORMATS", "CROSS_OUT_RATE", "Ink", "synth_forms", "corpus_forms", "corpus_templates", "render_document",
           "fill_value", "write_field",
           "glyph", "stamp_ink", "cross_out"]

DPIS = (150, 200, 300)


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


# -- documents ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Ink:
    """Whose handwriting fills the forms: synthetic writers, or real MNIST glyphs of one split."""

    kind: str = "synthetic"              # synthetic | mnist
    fonts: tuple[str, ...] = ()          # synthetic: handwriting fonts for the writers' letterforms
    mnist_path: str | None = None        # mnist: a Keras mnist.npz (corpus.mnist.fetch_mnist)
    mnist_split: str = "validation"      # mnist: train | validation | test

    def writer(self, rng: np.random.Generator):
        """One document's writer."""
        if self.kind == "mnist":
            return draw_mnist_writer(rng, mnist_pool(self.mnist_path, self.mnist_split))
        return draw_writer(rng, list(self.fonts))

    @property
    def label(self) -> str:
        return f"mnist-{self.mnist_split}" if self.kind == "mnist" else "synthetic"


def corpus_forms(layouts: tuple[str, ...] | None) -> list[list[Template]]:
    """The forms a corpus is filled from, each the templates of its pages: the built-in layouts (None), or
    forms named in `layouts` (`clinic_intake` ..., `builtin` for the four built-in ones, `random:SEED` for a
    generated form, `A+B` for a form of two pages, A then B)."""
    if not layouts:
        return [[t] for t in builtin_templates()]
    out = []
    for name in layouts:
        if name == "builtin":
            out.extend([t] for t in builtin_templates())
        elif "+" in name:
            out.append([page for part in name.split("+") for page in _layout_templates(part)])
        else:
            out.append(_layout_templates(name))
    return out


def _layout_templates(name: str) -> list[Template]:
    if name.startswith("random:"):
        return [truth_template(random_layout(int(name.split(":", 1)[1])))]
    if name in NAMED_LAYOUTS:
        return [truth_template(named_layout(name))]
    raise ValueError(f"unknown layout {name!r}; choose from builtin, {', '.join(NAMED_LAYOUTS)}, random:SEED, "
                     "or A+B for a form of two pages")


def corpus_templates(layouts: tuple[str, ...] | None) -> list[Template]:
    """Every page template of `corpus_forms(layouts)`, each once."""
    seen = {}
    for form in corpus_forms(layouts):
        for template in form:
            seen.setdefault(template.name, template)
    return list(seen.values())


def _printed(template: Template, dpi: int, rng: np.random.Generator) -> np.ndarray:
    """A template's printed page at `dpi`: drawn from its fields (built-in) or from its layout (marks-free forms)."""
    if template.has_marks:
        return render_blank(template, dpi, line_grey=int(rng.integers(120, 200)))
    return print_layout(named_layout(template.name), dpi, ink=int(rng.integers(20, 70)))


def _make_document(args) -> list[dict]:
    seed, index, fmt, pages, out_dir, ink, layouts = args
    name = f"scan_{index + 1:05d}.{EXTENSIONS[fmt]}"
    images, truth, dpi, rng = render_document(seed, index, fmt, pages, ink, name, layouts=layouts)
    write_document(os.path.join(out_dir, name), fmt, images, dpi, rng)
    return truth


def render_document(seed: int, index: int, fmt: str, pages: int, ink: Ink, name: str,
                    cross_out_rate: float = CROSS_OUT_RATE, layouts: tuple[str, ...] | None = None):
    """Renders one filled, scanned document in memory: (page images, truth rows, dpi, rng).

    `cross_out_rate` is the share of underline and free fields with a struck-through
    wrong digit before one of the true digits (truth row key `struck`: its position
    in the value); training data for the struck-digit detector asks for many.
    Forms without corner marks (`layouts`, see `corpus_templates`) are scanned
    worse: rotation up to 5 degrees, scale 5%, one page in ten upside down, and
    handwriting over their print.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1000 + index]))
    cv2.setRNGSeed(int(rng.integers(2**31 - 1)))
    forms = corpus_forms(layouts)
    writer = ink.writer(rng)  # one writer per document
    dpi = int(DPIS[int(rng.integers(len(DPIS)))])
    scale = dpi / 72.0
    images, truth = [], []
    form, first = [], 1
    for page_no in range(1, pages + 1):
        if len(form) <= 1:  # a form of several pages fills the document's pages in order
            form, first = forms[int(rng.integers(len(forms)))], page_no
        template = form[(page_no - first) % len(form)]
        page = _printed(template, dpi, rng)
        values, struck = {}, {}
        for field in template.fields:
            value = "" if rng.random() < 0.04 else fill_value(field, rng)
            struck[field.name] = write_field(page, field, value, writer, rng, scale, cross_out_rate)
            values[field.name] = value
        print_clutter(page, template, rng, scale)
        if template.has_marks:
            upside_down = bool(rng.random() < 0.04)
            scanned, matrix = scan(page, rng, dpi, upside_down)
        else:
            scribble(page, template, rng, scale)
            upside_down = bool(rng.random() < 0.1)
            scanned, matrix = scan(page, rng, dpi, upside_down, max_angle=5.0, max_scale=0.05)
        if fmt == "png" and rng.random() < 0.2:  # scanned once as JPEG, then converted
            scanned = jpeg_roundtrip(scanned, int(rng.integers(55, 85)))
        images.append(scanned)
        for field in template.fields:
            truth.append({"source": name, "page": page_no, "template": template.name, "field": field.name,
                          "value": values[field.name], "box": box_on_scan(field, scale, matrix), "dpi": dpi,
                          "upside_down": upside_down, "struck": struck[field.name], "ink": ink.label})
    return images, truth, dpi, rng


def _write_templates(forms: list[list[Template]], out_dir: str) -> None:
    """The corpus's templates, and each marks-free form's blank as a PDF (what a user brings to
    `formdigits template propose`): `A+B.pdf` for a form of two pages."""
    templates = {t.name: t for form in forms for t in form}
    save_templates(list(templates.values()), os.path.join(out_dir, "templates"))
    directory = os.path.join(out_dir, "blanks")
    for form in forms:
        if any(t.has_marks for t in form):
            continue
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "+".join(t.name for t in form) + ".pdf")
        for number, t in enumerate(form):
            write_blank_pdf(named_layout(t.name), path if len(form) == 1 else f"{path}.{number}")
        if len(form) > 1:
            _join_pdfs([f"{path}.{number}" for number in range(len(form))], path)


def _join_pdfs(parts: list[str], path: str) -> None:
    import pypdfium2 as pdfium

    whole = pdfium.PdfDocument.new()
    for part in parts:
        whole.import_pages(pdfium.PdfDocument(part), index=len(whole))
    whole.save(path)
    for part in parts:
        os.remove(part)


def _plan_documents(count: int, seed: int, formats, form_pages: int) -> list[tuple[str, int]]:
    """(format, pages) of each document, in order, making `count` pages in all."""
    plan_rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    plan, remaining = [], count
    while remaining > 0:
        fmt = formats[len(plan) % len(formats)]
        pages = 1 if fmt in ("png", "jpeg") else min(remaining, int(plan_rng.integers(2, 4)))
        if form_pages > 1 and fmt not in ("png", "jpeg"):  # a document holds one whole form of several pages
            pages = min(remaining, form_pages)
        plan.append((fmt, pages))
        remaining -= pages
    return plan


def synth_forms(count: int, out_dir: str, seed: int = 0, formats=FORMATS, workers: int | None = None,
                progress=None, ink: Ink | None = None, layouts: tuple[str, ...] | None = None) -> dict:
    """Generates `count` filled, scanned form pages into `out_dir`.

    Single-page formats hold one form per file; TIFF and PDF documents hold two
    or three (fewer at the end, to make exactly `count`), or one whole form of several
    pages (`A+B`). `ink` says whose handwriting fills them (default: synthetic writers); `layouts` which forms
    (default: the built-in ones; see `corpus_templates`; blanks in `DIR/blanks/`).

    Returns:
        A summary: files, pages, fields, seconds.
    """
    if count <= 0:
        raise ValueError("count must be positive")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown format {bad[0]!r}; choose from {', '.join(FORMATS)}")
    started = time.monotonic()
    os.makedirs(out_dir, exist_ok=True)
    forms = corpus_forms(layouts)
    _write_templates(forms, out_dir)
    ink = ink or Ink(fonts=tuple(find_handwriting_fonts()))
    if ink.kind == "mnist":
        mnist_pool(ink.mnist_path, ink.mnist_split)  # read once here; the workers fork with it
    jobs = [(seed, index, fmt, pages, out_dir, ink, layouts)
            for index, (fmt, pages) in enumerate(_plan_documents(count, seed, formats, max(map(len, forms))))]
    workers = workers or os.cpu_count() or 1
    truth: list[dict] = []
    done = 0
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) > 1 else None
    try:
        results = pool.map(_make_document, jobs) if pool else map(_make_document, jobs)
        for rows, job in zip(results, jobs):
            truth.extend(rows)
            done += job[3]
            if progress:
                progress(done, count)
    finally:
        if pool:
            pool.shutdown()
    with open(os.path.join(out_dir, "truth.jsonl"), "w") as fh:
        for row in truth:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
    return {"files": len(jobs), "pages": count, "fields": len(truth),
            "seconds": round(time.monotonic() - started, 1)}
