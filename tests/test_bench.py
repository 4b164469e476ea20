"""The benchmark suite's parts, on real data: no timings are asserted here (those belong to `formdigits bench`)."""

import json
import os
import pathlib
import shutil

import cv2
import numpy as np
import pytest

from bench.corpora import corpus_files, replicate
from bench.own_forms import worst_of
from bench.pipeline import bare_loop
from bench.suite import markdown_table, write_results
from bench.tesseract import tesseract_baseline, tesseract_digits as _tesseract_digits
from corpus.evaluate import load_truth
from corpus.forms import synth_forms
from formdigits.cli import main
from pipeline.reading.read import Page, read_pages
from pipeline.registration.register import register_page
from pipeline.segmentation.segment import field_images
from pipeline.templates.model import load_templates

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="tesseract-ocr not installed (make setup installs it when root)")


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-corpus")
    synth_forms(3, str(out), seed=77, formats=("png", "jpeg"), workers=1)
    return out


@pytest.fixture(scope="module")
def templates(small_corpus):
    return list(load_templates(small_corpus / "templates").values())


def test_field_images_are_dark_ink_on_white(small_corpus, templates):
    path = corpus_files(str(small_corpus))[0]
    page = next(p for p in read_pages(path, open(path, "rb").read()) if isinstance(p, Page))
    upright, registration = register_page(page.image, templates)
    images = field_images(upright, registration)
    assert [spec.name for spec, _ in images] == [f.name for f in registration.template.fields]
    truth = {t["field"]: t["value"] for t in load_truth(small_corpus / "truth.jsonl")
             if t["source"] == os.path.basename(path)}
    for spec, image in images:
        assert image.dtype == np.uint8
        assert np.median(image) == 255                       # paper is white, guides removed
        if truth[spec.name]:
            assert (image < 128).sum() > 50, spec.name       # the writing is there, dark


@needs_tesseract
def test_tesseract_reads_printed_digits():
    image = np.full((60, 260), 255, np.uint8)
    cv2.putText(image, "40719", (10, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 0, 3, cv2.LINE_AA)
    assert _tesseract_digits(image) == "40719"


@needs_tesseract
def test_a_field_tesseract_dies_on_is_read_as_nothing_not_a_crash():
    # A real field of the bench's corpus (seed 4242, file 40, page 3, line10): Tesseract 5 dies of SIGFPE on it.
    image = cv2.imread(str(pathlib.Path(__file__).parent / "data" / "tesseract_dies_on_this_field.png"),
                       cv2.IMREAD_GRAYSCALE)
    assert _tesseract_digits(image) is None


@needs_tesseract
@pytest.mark.slow
def test_tesseract_baseline_is_scored_like_our_results(small_corpus, templates):
    truth = load_truth(small_corpus / "truth.jsonl")
    result = tesseract_baseline(corpus_files(str(small_corpus)), templates, truth, workers=1)
    assert result["pages"] == 3
    assert 0.0 <= result["field_accuracy"] <= 1.0 and result["pages_per_s"] > 0


def test_bare_loop_counts_every_page(small_corpus, templates):
    result = bare_loop(corpus_files(str(small_corpus)), templates, workers=2)
    assert result["pages"] == 3 and result["pages_per_s"] > 0
    # The workers' CPU, counted once they are gone: cutting a page takes tens of milliseconds, not nothing.
    assert 10 < result["cpu_ms_per_page"] < 60_000


def test_replicate_names_every_copy_apart(small_corpus, tmp_path):
    out = replicate(str(small_corpus), 3, str(tmp_path / "x3"))
    names = os.listdir(out)
    assert len(names) == 3 * len(corpus_files(str(small_corpus))) == len(set(names))
    assert all(n.startswith("scan_") for n in names)


def test_own_forms_figures_are_the_worse_of_the_seeds_each_way():
    first = {"field_exact_match": 0.96, "errors_flagged_share": 0.85, "written_fields_flagged": 0.14, "rejects": 0,
             "per_group": {"cells <= 16 pt": {"fields": 30, "field_exact_match": 0.95, "written_fields_flagged": 0.2}}}
    second = {"field_exact_match": 0.95, "errors_flagged_share": 0.91, "written_fields_flagged": 0.16, "rejects": 2,
              "per_group": {"cells <= 16 pt": {"fields": 28, "field_exact_match": 0.92, "written_fields_flagged": 0.1}}}
    assert worst_of([first, second]) == {
        "field_exact_match": 0.95, "errors_flagged_share": 0.85, "written_fields_flagged": 0.16, "rejects": 2,
        "per_group": {"cells <= 16 pt": {"fields": 58, "field_exact_match": 0.92, "written_fields_flagged": 0.2}}}


def test_markdown_table_marks_missed_targets():
    results = {
        "inference": {"grpc_vs_inprocess_ratio": 0.79, "batched_vs_unbatched_speedup": 12.0,
                      "grpc_images_per_s": {"1": 100.0, "256": 7000.0}, "inprocess_images_per_s": {"256": 9000.0}},
        "pipeline": {"pipeline_vs_bare_ratio": 0.85, "rss_growth_ratio": 1.3, "speed_vs_tesseract": 11.0,
                     "ours": {"field_accuracy": 0.9, "pages_per_s": 8.0}, "tesseract": {"field_accuracy": 0.3}},
    }
    rows = {line.split("|")[1].strip(): line for line in markdown_table(results).splitlines()[2:]}
    assert "| yes |" in rows["`grpc_vs_inprocess_ratio`"]
    assert "**no**" in rows["`batched_vs_unbatched_speedup`"]
    assert "**no**" in rows["`rss_growth_ratio`"]
    assert "| yes |" in rows["`speed_vs_tesseract`"] and "| yes |" in rows["`ours.field_accuracy`"]


def test_bench_flags_fail_fast(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--models-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "formdigits train" in capsys.readouterr().err


def test_one_part_re_run_keeps_the_other_parts_and_dates_itself(tmp_path):
    path = str(tmp_path / "latest.json")
    full = {"date": "2026-01-01 00:00:00", "machine": "m", "quick": False, "wall_s": 600.0,
            "faults": {"hostile_max_seconds": 0.5}, "review": {"report_mb_1000_pages": 1.0}}
    write_results(full, path)
    write_results({"date": "2026-02-02 00:00:00", "machine": "m", "quick": False, "wall_s": 30.0,
                   "faults": {"hostile_max_seconds": 0.1}}, path, only="faults")
    merged = json.loads(pathlib.Path(path).read_text())
    assert merged["review"] == full["review"] and merged["faults"] == {"hostile_max_seconds": 0.1}
    assert merged["date"] == full["date"] and merged["part_dates"] == {"faults": "2026-02-02 00:00:00"}
    assert "Part faults re-run 2026-02-02" in (tmp_path / "latest.md").read_text()
