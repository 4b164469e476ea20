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
import functools
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from corpus import builtin_templates
from corpus.filling import CROSS_OUT_RATE, fill_value, write_field
from corpus.handwriting import draw_writer, find_handwriting_fonts
from corpus.layouts import NAMED_LAYOUTS, named_layout, print_layout, random_layout, truth_template, write_blank_pdf
from corpus.mnist_ink import draw_mnist_writer, mnist_pool
from corpus.scan_kinds import add_ink, check_scan_kinds, colour_template, dropout_colour, ink_colour, print_in_colour
from corpus.scanner import (EXTENSIONS, FORMATS, bitonal, box_on_scan, jpeg_roundtrip, print_clutter, scan,
                            scribble, write_document)
from pipeline.templates.model import Template, render_blank, save_templates

__all__ = ["FORMATS", "Ink", "synth_forms", "corpus_forms", "corpus_templates", "render_document"]

DPIS = (150, 200, 300)


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


def corpus_forms(layouts: tuple[str, ...] | None, colour: bool = False) -> list[list[Template]]:
    """The forms a corpus is filled from, each the templates of its pages: the built-in layouts (None), or
    forms named in `layouts` (`clinic_intake` ..., `builtin` for the four built-in ones, `random:SEED` for a
    generated form, `tight:SEED` for a generated tight one, `A+B` for a form of two pages, A then B); printed in their dropout colours for `colour`."""
    forms = _forms(layouts)
    if colour:
        check_scan_kinds(("colour",), [t for form in forms for t in form])
        return [[_in_colour(t) for t in form] for form in forms]
    return forms


@functools.lru_cache(maxsize=64)
def _in_colour(template: Template) -> Template:
    return colour_template(template, print_layout(named_layout(template.name), int(template.reference_dpi)))


def _forms(layouts: tuple[str, ...] | None) -> list[list[Template]]:
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
    if name.startswith("tight:") and name[6:].isdigit():
        return [truth_template(named_layout(f"tight_{name[6:]}"))]
    if name in NAMED_LAYOUTS:
        return [truth_template(named_layout(name))]
    raise ValueError(f"unknown layout {name!r}; choose from builtin, {', '.join(NAMED_LAYOUTS)}, random:SEED, "
                     "tight:SEED, "
                     "or A+B for a form of two pages")


def corpus_templates(layouts: tuple[str, ...] | None, colour: bool = False) -> list[Template]:
    """Every page template of `corpus_forms(layouts, colour)`, each once."""
    seen = {}
    for form in corpus_forms(layouts, colour):
        for template in form:
            seen.setdefault(template.name, template)
    return list(seen.values())


def _printed(template: Template, dpi: int, rng: np.random.Generator) -> np.ndarray:
    """A template's printed page at `dpi`: drawn from its fields (built-in) or from its layout (marks-free forms)."""
    if template.has_marks:
        return render_blank(template, dpi, line_grey=int(rng.integers(120, 200)))
    return print_layout(named_layout(template.name), dpi, ink=int(rng.integers(20, 70)))


def _make_document(args) -> list[dict]:
    seed, index, fmt, pages, out_dir, ink, layouts, scans = args
    name = f"scan_{index + 1:05d}.{EXTENSIONS[fmt]}"
    kind = scans[index % len(scans)]
    images, truth, dpi, rng = render_document(seed, index, fmt, pages, ink, name, layouts=layouts, scans=scans)
    write_document(os.path.join(out_dir, name), fmt, images, dpi, rng, bilevel=kind == "bitonal")
    return truth


def render_document(seed: int, index: int, fmt: str, pages: int, ink: Ink, name: str,
                    cross_out_rate: float = CROSS_OUT_RATE, layouts: tuple[str, ...] | None = None,
                    scans: tuple[str, ...] = ("grey",)):
    """Renders one filled, scanned document in memory: (page images, truth rows, dpi, rng).

    `cross_out_rate` is the share of underline and free fields with a struck-through
    wrong digit before one of the true digits (truth row key `struck`: its position
    in the value); training data for the struck-digit detector asks for many.
    Forms without corner marks (`layouts`, see `corpus_templates`) are scanned
    worse: rotation up to 5 degrees, scale 5%, one page in ten upside down, and
    handwriting over their print. Documents take the scan kinds of `scans` in turn
    (`corpus.scan_kinds`); the same seed fills and scans a document alike in every kind.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1000 + index]))
    cv2.setRNGSeed(int(rng.integers(2**31 - 1)))
    kind = scans[index % len(scans)]
    forms = corpus_forms(layouts, colour="colour" in scans)
    writer = ink.writer(rng)  # one writer per document
    # The pen is drawn apart, so a colour corpus fills its documents as a grey one of the same seed does.
    blue_pen = bool(np.random.default_rng(np.random.SeedSequence([seed, 2000 + index])).random() < 0.5)
    dpi = int(DPIS[int(rng.integers(len(DPIS)))])
    scale = dpi / 72.0
    images, truth = [], []
    form, first = [], 1
    for page_no in range(1, pages + 1):
        if len(form) <= 1:  # a form of several pages fills the document's pages in order
            form, first = forms[int(rng.integers(len(forms)))], page_no
        template = form[(page_no - first) % len(form)]
        scanned, values, struck, matrix, upside_down = _filled_page(template, kind, blue_pen, writer, rng, dpi,
                                                                    cross_out_rate)
        if fmt == "png" and rng.random() < 0.2:  # scanned once as JPEG, then converted
            scanned = jpeg_roundtrip(scanned, int(rng.integers(55, 85)))
        images.append(bitonal(scanned) if kind == "bitonal" else scanned)
        for field in template.fields:
            truth.append({"source": name, "page": page_no, "template": template.name, "field": field.name,
                          "value": values[field.name], "box": box_on_scan(field, scale, matrix), "dpi": dpi,
                          "upside_down": upside_down, "struck": struck[field.name], "ink": ink.label,
                          "scan": kind})
    return images, truth, dpi, rng


def _filled_page(template: Template, kind: str, blue_pen: bool, writer, rng: np.random.Generator, dpi: int,
                 cross_out_rate: float):
    """One page printed, filled and scanned: (scan, values, struck positions, page-to-scan matrix, upside down).

    A form in a dropout colour is filled on a layer of its own, then printed in its colour and inked in the
    writer's pen; scanned in colour for a colour scan, in grey otherwise."""
    scale = dpi / 72.0
    printed = _printed(template, dpi, rng)
    page = np.full_like(printed, 255) if template.print_colour else printed
    values, struck = {}, {}
    for field in template.fields:
        value = "" if rng.random() < 0.04 else fill_value(field, rng)
        struck[field.name] = write_field(page, field, value, writer, rng, scale, cross_out_rate)
        values[field.name] = value
    print_clutter(page, template, rng, scale)
    if not template.has_marks:
        scribble(page, template, rng, scale)
    if template.print_colour:
        colour = dropout_colour(template.name)
        page = add_ink(print_in_colour(printed, colour), page, ink_colour(colour, blue_pen))
    if template.has_marks:
        upside_down = bool(rng.random() < 0.04)
        scanned, matrix = scan(page, rng, dpi, upside_down)
    else:
        upside_down = bool(rng.random() < 0.1)
        scanned, matrix = scan(page, rng, dpi, upside_down, max_angle=5.0, max_scale=0.05)
    if scanned.ndim == 3 and kind != "colour":
        scanned = cv2.cvtColor(scanned, cv2.COLOR_BGR2GRAY)
    return scanned, values, struck, matrix, upside_down


def _write_templates(forms: list[list[Template]], out_dir: str) -> None:
    """The corpus's templates, and each marks-free form's blank as a PDF (what a user brings to
    `formdigits template propose`): `A+B.pdf` for a form of two pages, printed in colour for a colour corpus."""
    templates = {t.name: t for form in forms for t in form}
    save_templates(list(templates.values()), os.path.join(out_dir, "templates"))
    directory = os.path.join(out_dir, "blanks")
    for form in forms:
        if any(t.has_marks for t in form):
            continue
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "+".join(t.name for t in form) + ".pdf")
        for number, t in enumerate(form):
            write_blank_pdf(named_layout(t.name), path if len(form) == 1 else f"{path}.{number}",
                            colour=dropout_colour(t.name) if t.print_colour else None)
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
                progress=None, ink: Ink | None = None, layouts: tuple[str, ...] | None = None,
                scans: tuple[str, ...] = ("grey",)) -> dict:
    """Generates `count` filled, scanned form pages into `out_dir`.

    Single-page formats hold one form per file; TIFF and PDF documents hold two
    or three (fewer at the end, to make exactly `count`), or one whole form of several
    pages (`A+B`). `ink` says whose handwriting fills them (default: synthetic writers); `layouts` which forms
    (default: the built-in ones; see `corpus_templates`; blanks in `DIR/blanks/`); `scans` the scan kinds,
    documents taking them in turn (`corpus.scan_kinds`).

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
    check_scan_kinds(scans, corpus_templates(layouts))
    forms = corpus_forms(layouts, colour="colour" in scans)
    _write_templates(forms, out_dir)
    ink = ink or Ink(fonts=tuple(find_handwriting_fonts()))
    if ink.kind == "mnist":
        mnist_pool(ink.mnist_path, ink.mnist_split)  # read once here; the workers fork with it
    jobs = [(seed, index, fmt, pages, out_dir, ink, layouts, scans)
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
