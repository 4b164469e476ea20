"""Folder names are data, never SQL or shell: an output folder named like an injection runs like any other."""

import pytest
import os

from corpus.evaluate import evaluate, load_results, load_truth
from formdigits.cli import main
from support.beam import count, run

pytestmark = pytest.mark.slow  # end-to-end runs

HOSTILE = "out'; COPY fields TO 'leak.csv'; --$(touch pwned) \"q\""


def test_an_output_folder_named_with_quotes_semicolons_and_substitutions(scans, server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / HOSTILE
    run("--input", str(scans / "scan_0000[12].*"), "--templates", str(scans / "templates"), "--output", str(out),
        "--serving", server.target)
    (fields,), = count(out, "SELECT count(*) FROM fields")
    assert fields > 0
    assert (out / "fields" / "fields.parquet").is_file()  # the Parquet copies, written through DuckDB's API
    assert main(["export", "--db", str(out), "--out", str(out / "final.csv")]) == 0
    assert (out / "final.csv").read_text().count("\n") == fields + 1
    # eval reads the Parquet copies by the folder's name when the database is gone.
    os.rename(out / "results.duckdb", tmp_path / "aside.duckdb")
    report = evaluate(load_results(out), load_truth(scans / "truth.jsonl"))
    assert report["matched_fields"] == fields
    assert not list(tmp_path.rglob("leak.csv")) and not list(tmp_path.rglob("pwned"))


def test_a_file_name_that_is_not_utf8_is_read_and_shown_escaped(scans, server, tmp_path):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("scan_00001.png", "scan_00002.jpg"):
        shutil.copy(scans / name, folder / name)
    shutil.copy(scans / "scan_00001.png", os.fsdecode(bytes(folder) + b"/bad\xff\xfename.png"))
    out = tmp_path / "out"
    run("--input", str(folder / "*"), "--templates", str(scans / "templates"), "--output", str(out),
        "--serving", server.target)
    pages = count(out, "SELECT regexp_extract(source_uri, '[^/]+$'), count(*) FROM fields GROUP BY ALL ORDER BY 1")
    assert [name for name, _ in pages] == ["bad\\xff\\xfename.png", "scan_00001.png", "scan_00002.jpg"]
    assert pages[0][1] == pages[1][1] > 0  # the same scan under both names, read the same
    assert count(out, "SELECT count(*) FROM rejects") == [(0,)]
