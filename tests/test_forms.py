"""The scanned-forms corpus: same seed same pages, every format readable, truth that fits the pages."""

import json
import os

import cv2
import numpy as np
import pypdfium2 as pdfium
from PIL import Image

from corpus import builtin_templates
from corpus.filling import stamp_ink
from corpus.forms import Ink, synth_forms
from corpus.mnist_ink import mnist_pool
from pipeline.templates.model import check_value


def _truth(out):
    return [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]


def _page(out, source, page):
    path = str(out / source)
    if source.endswith(".tif"):
        img = Image.open(path)
        img.seek(page - 1)
        return np.array(img)
    if source.endswith(".pdf"):
        pdf = pdfium.PdfDocument(path)
        dpi = next(t["dpi"] for t in _truth(out) if t["source"] == source)
        return np.array(pdf[page - 1].render(scale=dpi / 72).to_pil().convert("L"))
    return cv2.imread(path, cv2.IMREAD_GRAYSCALE)


def test_same_seed_same_bytes(forms_corpus, tmp_path):
    out, _ = forms_corpus
    synth_forms(9, str(tmp_path), seed=5, workers=1)
    assert (tmp_path / "truth.jsonl").read_bytes() == (out / "truth.jsonl").read_bytes()
    for name in os.listdir(out):
        if name.endswith((".png", ".jpg", ".pdf")):
            assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
        elif name.endswith(".tif"):  # libtiff's multi-page byte layout varies; the pixels must not
            pages = max(t["page"] for t in _truth(out) if t["source"] == name)
            for page in range(1, pages + 1):
                assert np.array_equal(_page(tmp_path, name, page), _page(out, name, page)), (name, page)


def test_every_format_opens_with_standard_readers(forms_corpus):
    out, summary = forms_corpus
    truth = _truth(out)
    pages_by_source = {}
    for t in truth:
        pages_by_source[t["source"]] = max(pages_by_source.get(t["source"], 0), t["page"])
    kinds = {os.path.splitext(s)[1] for s in pages_by_source}
    assert kinds == {".png", ".jpg", ".tif", ".pdf"}
    for source, pages in pages_by_source.items():
        path = str(out / source)
        if source.endswith(".tif"):
            assert Image.open(path).n_frames == pages >= 2
        elif source.endswith(".pdf"):
            assert len(pdfium.PdfDocument(path)) == pages >= 2
        else:
            with Image.open(path) as img:
                assert img.mode == "L" and pages == 1
    assert sum(pages_by_source.values()) == summary["pages"] == 9


def test_truth_boxes_land_on_ink(forms_corpus):
    out, _ = forms_corpus
    truth = _truth(out)
    cache = {}
    filled, empty = [], []
    for t in truth:
        key = (t["source"], t["page"])
        if key not in cache:
            cache[key] = _page(out, *key)
        page = cache[key]
        x, y, w, h = t["box"]
        inner = page[max(0, y + h // 10):y + h - h // 10, max(0, x + w // 20):x + w - w // 20]
        # Ink relative to this box's paper: pencil writers and dim scans are lighter than pen ink.
        dark = float((inner < np.median(inner) - 60).mean()) if inner.size else 0.0
        (filled if t["value"] else empty).append(dark)
    assert len(filled) > 100
    assert np.percentile(filled, 5) > 0.01      # handwriting inside nearly every filled box
    assert np.mean(filled) > 5 * max(np.mean(empty) if empty else 0.0, 0.002)


def test_truth_values_fit_their_templates(forms_corpus):
    out, _ = forms_corpus
    templates = {t.name: t for t in builtin_templates()}
    truth = _truth(out)
    for t in truth:
        if t["value"]:
            assert check_value(templates[t["template"]].field(t["field"]), t["value"]) == [], t
    assert any(not t["value"] for t in truth) or len(truth) < 50  # empty fields occur


# -- evaluator ----------------------------------------------------------------


def test_full_ink_on_a_dark_writer_stays_dark():
    # A writer's darkness may exceed 1: full ink must not wrap round to white (hollow strokes).
    page = np.full((20, 20), 230, np.uint8)
    ink = np.zeros((10, 10), np.uint8)
    ink[2:8, 2:8] = 255
    stamp_ink(page, ink, 5, 5, 1.05)
    assert page[7:13, 7:13].max() == 0 and page[0, 0] == 230


def test_real_ink_forms_are_written_with_glyphs_of_the_split_asked_for(real_mnist, tmp_path):
    ink = Ink(kind="mnist", mnist_path=str(real_mnist), mnist_split="validation")
    for out in ("a", "b"):
        synth_forms(2, str(tmp_path / out), seed=11, formats=("png",), workers=1, ink=ink)
    assert (tmp_path / "a" / "scan_00001.png").read_bytes() == (tmp_path / "b" / "scan_00001.png").read_bytes()
    assert {t["ink"] for t in _truth(tmp_path / "a")} == {"mnist-validation"}
    pool = mnist_pool(str(real_mnist), "validation")
    writer = ink.writer(np.random.default_rng(1))
    glyphs = [writer.ink(d, np.random.default_rng(d)) for d in range(10)]
    assert all(g.dtype == np.uint8 and g.max() == 255 and g.shape[0] == 112 for g in glyphs)
    assert sum(len(v) for v in pool.values()) == 10000


def test_a_two_page_form_fills_each_document_in_page_order_and_has_a_two_page_blank(tmp_path):
    from corpus.evaluate import load_truth

    synth_forms(4, str(tmp_path), seed=5, formats=("pdf",), workers=1, layouts=("clinic_intake+census_return",))
    pages = {(row["source"], row["page"], row["template"]) for row in load_truth(str(tmp_path / "truth.jsonl"))}
    assert pages == {(f"scan_0000{i}.pdf", n, name) for i in (1, 2) for n, name in ((1, "clinic_intake"),
                                                                                  (2, "census_return"))}
    assert len(pdfium.PdfDocument(str(tmp_path / "blanks" / "clinic_intake+census_return.pdf"))) == 2


def test_a_bitonal_copy_keeps_the_ink_and_loses_the_scanners_shadow():
    from corpus.scanner import bitonal

    grey = np.tile(np.linspace(150, 245, 400).astype(np.uint8), (200, 1))  # light falling off to one side
    cv2.putText(grey, "42", (40, 150), cv2.FONT_HERSHEY_SIMPLEX, 4, 30, 10)
    bw = bitonal(grey)
    assert set(np.unique(bw)) == {0, 255}
    assert bw[100:180, 40:60].min() == 0 and bw[10:30, 300:390].min() == 255  # ink stays, shadow goes
