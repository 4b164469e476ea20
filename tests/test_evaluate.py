"""`formdigits eval`: field exact match, digit accuracy by position, review flags, rejects."""

import datetime
import json
import os
import subprocess
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.evaluate import EvalError, evaluate, load_results, load_truth
from pipeline import schema


def _truth(out):
    return [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]


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


def test_perfect_results_score_100(forms_corpus, tmp_path):
    out, _ = forms_corpus
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
    report = evaluate(load_results(tmp_path / "res"), load_truth(truth), group_by=lambda t: t["field"])
    assert report["matched_fields"] == 3 and report["missing_fields"] == 1 and report["extra_fields"] == 1
    assert report["field_exact_match"] == 0.25                       # 1 of 4 truth fields
    assert report["digit_accuracy"] == round(10 / 15, 6)             # 4 + 5 + 1 + 0 right of 4 + 6 + 2 + 3
    assert report["needs_review_rate"] == round(1 / 3, 6)
    assert report["unflagged_field_accuracy"] == 0.5                 # acct right, qty wrong
    assert report["errors_flagged_share"] == 0.5                     # date flagged, qty not
    assert report["rejects"] == 1 and report["rejects_by_stage"] == {"read": 1}
    assert report["confusion_matrix"][2][8] == 1 and report["confusion_matrix"][5][5] == 1
    assert report["per_template"]["invoice"] == {"fields": 2, "field_exact_match": 0.0, "digit_accuracy": 0.2,
                                                 "written_fields_flagged": 0.0}
    assert report["written_fields_flagged"] == round(1 / 3, 6)       # of acct, date, qty: date
    assert report["per_group"]["date"]["written_fields_flagged"] == 1.0
    assert report["per_group"]["acct"] == {"fields": 1, "field_exact_match": 1.0, "digit_accuracy": 1.0,
                                           "written_fields_flagged": 0.0}


def test_empty_or_unrelated_results_are_errors(tmp_path, forms_corpus):
    out, _ = forms_corpus
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
    truth = tmp_path / "truth.jsonl"
    truth.write_text(json.dumps({"source": "a.png", "page": 1, "field": "f", "template": "t", "value": "42"}) + "\n")
    (tmp_path / "res" / "fields").mkdir(parents=True)
    pq.write_table(pa.table({"source_uri": ["/data/a.png"], "page": [1], "field": ["f"], "value": ["42"],
                             "needs_review": [False]}), tmp_path / "res" / "fields" / "part-0.parquet")
    report = evaluate(load_results(tmp_path / "res"), load_truth(truth))
    assert report["field_exact_match"] == 1.0
