"""The scanned-forms corpus and the evaluator."""

import datetime
import json
import os
import subprocess
import sys

import cv2
import duckdb
import numpy as np
import pytest

from pipeline import schema
from corpus.evaluate import EvalError, evaluate, load_results, load_truth
from corpus.forms import synth_forms
from corpus import builtin_templates
from pipeline.templates import check_value, load_templates, luhn_complete, luhn_valid


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    summary = synth_forms(9, str(out), seed=5, workers=2)
    return out, summary


def _truth(out):
    return [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]


def _page(out, source, page):
    path = str(out / source)
    if source.endswith(".tif"):
        from PIL import Image

        img = Image.open(path)
        img.seek(page - 1)
        return np.array(img)
    if source.endswith(".pdf"):
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(path)
        dpi = next(t["dpi"] for t in _truth(out) if t["source"] == source)
        return np.array(pdf[page - 1].render(scale=dpi / 72).to_pil().convert("L"))
    return cv2.imread(path, cv2.IMREAD_GRAYSCALE)


def test_same_seed_same_bytes(corpus, tmp_path):
    out, _ = corpus
    synth_forms(9, str(tmp_path), seed=5, workers=1)
    assert (tmp_path / "truth.jsonl").read_bytes() == (out / "truth.jsonl").read_bytes()
    for name in os.listdir(out):
        if name.endswith((".png", ".jpg", ".pdf")):
            assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
        elif name.endswith(".tif"):  # libtiff's multi-page byte layout varies; the pixels must not
            pages = max(t["page"] for t in _truth(out) if t["source"] == name)
            for page in range(1, pages + 1):
                assert np.array_equal(_page(tmp_path, name, page), _page(out, name, page)), (name, page)


def test_every_format_opens_with_standard_readers(corpus):
    from PIL import Image
    import pypdfium2 as pdfium

    out, summary = corpus
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


def test_truth_boxes_land_on_ink(corpus):
    out, _ = corpus
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


def test_templates_written_as_data_and_reloadable(corpus):
    out, _ = corpus
    templates = load_templates(out / "templates")
    assert set(templates) == {"deposit_slip", "census_sheet", "invoice", "digit_lines"}
    assert {f.kind for t in templates.values() for f in t.fields} == {"comb", "boxed", "underline", "free"}
    assert {t.page for t in templates.values()} == {"letter", "a4"}
    account = templates["deposit_slip"].field("account")
    assert account.check == "luhn" and account.cells == 10 and len(templates["deposit_slip"].registration_marks) == 4
    raw = json.loads((out / "templates" / "invoice.json").read_text())
    assert raw["width_pt"] == 612 and raw["fields"][0]["kind"] == "underline"


def test_truth_values_fit_their_templates(corpus):
    out, _ = corpus
    templates = {t.name: t for t in builtin_templates()}
    truth = _truth(out)
    for t in truth:
        if t["value"]:
            assert check_value(templates[t["template"]].field(t["field"]), t["value"]) == [], t
    assert any(not t["value"] for t in truth) or len(truth) < 50  # empty fields occur


def test_luhn():
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert luhn_valid(luhn_complete("123456789"))


# -- evaluator ----------------------------------------------------------------
def _write_results(directory, fields, digits=(), rejects=()):
    os.makedirs(directory, exist_ok=True)
    con = duckdb.connect(str(directory / "results.duckdb"))
    now = datetime.datetime(2026, 11, 23, 12, 0)
    for table, rows in (("fields", fields), ("digits", digits), ("rejects", rejects)):
        con.execute(schema.duckdb_ddl(table))
        cols = schema.column_names(table)
        for row in rows:
            full = {c: None for c in cols}
            full.update({"run_id": "r1", "processed_at": now, "digit_count": len(row.get("value") or ""),
                         "needs_review": False} if table == "fields" else {"processed_at": now})
            full.update(row)
            full = {c: full[c] for c in cols}
            con.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", list(full.values()))
    con.close()


def test_perfect_results_score_100(corpus, tmp_path):
    out, _ = corpus
    truth = _truth(out)
    _write_results(tmp_path, [{"source_uri": f"file://{out}/{t['source']}", "page": t["page"], "field": t["field"],
                               "template": t["template"], "value": t["value"], "confidence": 0.99}
                              for t in truth])
    report = evaluate(load_results(tmp_path), load_truth(out / "truth.jsonl"))
    assert report["field_exact_match"] == 1.0 and report["digit_accuracy"] == 1.0
    assert report["missing_fields"] == 0 and report["extra_fields"] == 0
    assert sum(map(sum, report["confusion_matrix"])) == report["digits"]
    assert all(t["field_exact_match"] == 1.0 for t in report["per_template"].values())


def test_partly_wrong_results_score_exactly(tmp_path):
    truth = tmp_path / "truth.jsonl"
    rows = [("a.png", 1, "acct", "deposit_slip", "1234"),
            ("a.png", 1, "date", "deposit_slip", "010203"),
            ("b.pdf", 2, "qty", "invoice", "56"),
            ("b.pdf", 2, "total", "invoice", "789")]
    truth.write_text("".join(json.dumps({"source": s, "page": p, "field": f, "template": t, "value": v}) + "\n"
                             for s, p, f, t, v in rows))
    _write_results(tmp_path / "res", [
        {"source_uri": "gs://bucket/scans/a.png", "page": 1, "field": "acct", "value": "1234"},           # right
        {"source_uri": "gs://bucket/scans/a.png", "page": 1, "field": "date", "value": "010803",          # one digit wrong
         "needs_review": True, "review_reason": "low confidence"},
        {"source_uri": "gs://bucket/scans/b.pdf", "page": 2, "field": "qty", "value": "5"},               # one digit missing
        {"source_uri": "gs://bucket/scans/b.pdf", "page": 9, "field": "qty", "value": "1"},               # extra
    ], rejects=[{"source_uri": "gs://bucket/scans/c.tif", "page": None, "stage": "read", "error_type": "DecodeError",
                 "message": "not an image"}])
    report = evaluate(load_results(tmp_path / "res"), load_truth(truth))
    assert report["matched_fields"] == 3 and report["missing_fields"] == 1 and report["extra_fields"] == 1
    assert report["field_exact_match"] == 0.25                       # 1 of 4 truth fields
    assert report["digit_accuracy"] == round(10 / 15, 6)             # 4 + 5 + 1 + 0 right of 4 + 6 + 2 + 3
    assert report["needs_review_rate"] == round(1 / 3, 6)
    assert report["unflagged_field_accuracy"] == 0.5                 # acct right, qty wrong
    assert report["errors_flagged_share"] == 0.5                     # date flagged, qty not
    assert report["rejects"] == 1 and report["rejects_by_stage"] == {"read": 1}
    assert report["confusion_matrix"][2][8] == 1 and report["confusion_matrix"][5][5] == 1
    assert report["per_template"]["invoice"] == {"fields": 2, "field_exact_match": 0.0, "digit_accuracy": 0.2}


def test_empty_or_unrelated_results_are_errors(tmp_path, corpus):
    out, _ = corpus
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="holds no results"):
        load_results(tmp_path / "empty")
    _write_results(tmp_path / "other", [{"source_uri": "file:///x/other.png", "page": 1, "field": "f", "value": "1"}])
    with pytest.raises(EvalError, match="same corpus"):
        evaluate(load_results(tmp_path / "other"), load_truth(out / "truth.jsonl"))
    res = subprocess.run([sys.executable, "-m", "formdigits", "eval", "--results", str(tmp_path / "empty"),
                          "--truth", str(out / "truth.jsonl")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "holds no results" in res.stderr


def test_eval_reads_parquet_shards(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    truth = tmp_path / "truth.jsonl"
    truth.write_text(json.dumps({"source": "a.png", "page": 1, "field": "f", "template": "t", "value": "42"}) + "\n")
    (tmp_path / "res" / "fields").mkdir(parents=True)
    pq.write_table(pa.table({"source_uri": ["/data/a.png"], "page": [1], "field": ["f"], "value": ["42"],
                             "needs_review": [False]}), tmp_path / "res" / "fields" / "part-0.parquet")
    report = evaluate(load_results(tmp_path / "res"), load_truth(truth))
    assert report["field_exact_match"] == 1.0


def test_full_ink_on_a_dark_writer_stays_dark():
    # A writer's darkness may exceed 1: full ink must not wrap round to white (hollow strokes).
    from corpus.forms import stamp_ink

    page = np.full((20, 20), 230, np.uint8)
    ink = np.zeros((10, 10), np.uint8)
    ink[2:8, 2:8] = 255
    stamp_ink(page, ink, 5, 5, 1.05)
    assert page[7:13, 7:13].max() == 0 and page[0, 0] == 230
