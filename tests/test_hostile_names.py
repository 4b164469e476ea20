"""Folder names are data, never SQL or shell: an output folder named like an injection runs like any other."""

import os

from beam_helpers import count, run
from corpus.evaluate import evaluate, load_results, load_truth
from formdigits.cli import main

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
