"""`formdigits eval`: score a results directory against a corpus's truth.jsonl.

Fields are matched on (source file name, page, field). Digits are compared by
position, so a dropped or extra digit costs the digits after it in digit
accuracy as well as the field in exact match.
"""

from __future__ import annotations

import collections
import json
import os

import duckdb
import numpy as np

from pipeline.output.store import snapshot

__all__ = ["expected_calibration_error", "EvalError", "load_truth", "load_results", "evaluate", "format_report"]


class EvalError(ValueError):
    """The results or the truth cannot be scored (missing, empty or unrelated)."""


def _source_key(uri: str) -> str:
    # Results carry full URIs (file:///..., gs://...); the truth names files in the corpus.
    return uri.rstrip("/").rsplit("/", 1)[-1]


def load_truth(path: str | os.PathLike) -> list[dict]:
    if not os.path.isfile(path):
        raise EvalError(f"truth file {os.fspath(path)!r} does not exist (formdigits synth-forms writes DIR/truth.jsonl)")
    rows = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    rows.append({"source": row["source"], "page": int(row["page"]), "field": row["field"],
                                 "template": row.get("template", ""), "value": str(row["value"])})
                except (ValueError, KeyError) as exc:
                    raise EvalError(f"{os.fspath(path)} line {n} is not a truth record: {exc}") from None
    if not rows:
        raise EvalError(f"truth file {os.fspath(path)!r} is empty")
    return rows


def load_results(results_dir: str | os.PathLike) -> dict[str, list[dict]]:
    """The fields, digits and rejects tables of a results directory, as lists of dicts.

    Reads a snapshot of `DIR/results.duckdb` (a run may be writing it), or the
    Parquet files `DIR/<table>/*.parquet` when there is no database file.
    """
    results_dir = os.fspath(results_dir)
    if not os.path.isdir(results_dir):
        raise EvalError(f"results directory {results_dir!r} does not exist")
    with snapshot(results_dir) as db:
        con = duckdb.connect(db, read_only=True) if db else duckdb.connect()
        try:
            return _read_tables(con, results_dir, from_database=db is not None)
        finally:
            con.close()


def _read_tables(con, results_dir: str, from_database: bool) -> dict[str, list[dict]]:
    tables = ("fields", "digits", "rejects")
    if from_database:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        source = {t: (t, []) for t in tables if t in present}
    else:
        source = {}
        for t in tables:
            shard_dir = os.path.join(results_dir, t)
            if os.path.isdir(shard_dir) and any(n.endswith(".parquet") for n in os.listdir(shard_dir)):
                # The folder is a bound parameter, never SQL.
                source[t] = ("read_parquet(?, union_by_name=true)", [os.path.join(shard_dir, "*.parquet")])
    if "fields" not in source:
        raise EvalError(f"{results_dir!r} holds no results: no results.duckdb with a fields table and no "
                        "fields/*.parquet (run formdigits run --output DIR first)")
    out = {t: [] for t in tables}
    for t, (expr, params) in source.items():
        cur = con.execute(f"SELECT * FROM {expr}", params)
        names = [d[0] for d in cur.description]
        out[t] = [dict(zip(names, r)) for r in cur.fetchall()]
    return out


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: |accuracy - confidence| per confidence bin, weighted by the bin's share of the samples."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.clip(np.digitize(confidence, np.linspace(0.0, 1.0, bins + 1)[1:-1]), 0, bins - 1)
    return float(sum((which == b).mean() * abs(correct[which == b].mean() - confidence[which == b].mean())
                     for b in range(bins) if (which == b).any()))


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def _match(results: dict[str, list[dict]], truth: list[dict]) -> tuple[dict, dict]:
    """(results' fields by key, truth by key), keyed (file name, page, field); refuses unrelated sets."""
    predicted = {(_source_key(str(row["source_uri"])), int(row["page"]), row["field"]): row
                 for row in results["fields"]}
    truth_by_key = {(t["source"], t["page"], t["field"]): t for t in truth}
    if not predicted:
        raise EvalError("the results hold no fields")
    if not any(k in predicted for k in truth_by_key):
        raise EvalError(f"none of the {len(predicted)} result fields match the truth's "
                        f"{len(truth_by_key)} fields on (source, page, field): are --results and --truth "
                        "from the same corpus?")
    return predicted, truth_by_key


def _bucket_figures(c: collections.Counter) -> dict:
    return {"fields": c["fields"], "field_exact_match": _rate(c["exact"], c["fields"]),
            "digit_accuracy": _rate(c["digits_ok"], c["digits"]),
            "written_fields_flagged": _rate(c["written_flagged"], c["written"])}


def _score_field(tally: collections.Counter, buckets: list[collections.Counter], confusion: np.ndarray,
                 truth_value: str, row: dict | None) -> None:
    """Adds one truth field (and the row read for it, if any) to the tallies and to each of its buckets."""
    flagged = bool(row is not None and row.get("needs_review"))
    value = "" if row is None or row.get("value") is None else str(row["value"])
    ok = row is not None and value == truth_value
    right = sum(1 for i, ch in enumerate(truth_value) if i < len(value) and value[i] == ch)
    written = row is not None and bool(truth_value)
    for counter in buckets:
        counter.update(fields=1, digits=len(truth_value), exact=ok, digits_ok=right, written=written,
                       written_flagged=written and flagged)
    tally.update(digits=len(truth_value), exact=ok, digits_ok=right, written=written,
                 written_flagged=written and flagged)
    if row is None:
        return
    for i, ch in enumerate(truth_value):
        if i < len(value) and value[i].isdigit():
            confusion[int(ch), int(value[i])] += 1
    if flagged:
        tally["flagged"] += 1
        tally["flagged_errors"] += not ok
    else:
        tally["unflagged"] += 1
        tally["unflagged_ok"] += ok


def evaluate(results: dict[str, list[dict]], truth: list[dict], group_by=None) -> dict:
    """Scores results against truth; see the module docstring for the matching rules.

    `group_by(truth_row) -> label`, when given, adds `per_group`: the same figures for each label
    (cell size, scan kind...) beside `per_template`.
    """
    predicted, truth_by_key = _match(results, truth)
    confusion = np.zeros((10, 10), np.int64)
    tally = collections.Counter()
    per_template = collections.defaultdict(collections.Counter)
    per_group = collections.defaultdict(collections.Counter)
    for key, t in truth_by_key.items():
        buckets = [per_template[t["template"]]] + ([per_group[group_by(t)]] if group_by else [])
        _score_field(tally, buckets, confusion, t["value"], predicted.get(key))
    matched = sum(1 for k in truth_by_key if k in predicted)
    rejects = collections.Counter(r.get("stage", "?") for r in results["rejects"])
    return {
        "truth_fields": len(truth_by_key),
        "result_fields": len(predicted),
        "matched_fields": matched,
        "missing_fields": len(truth_by_key) - matched,
        "extra_fields": len([k for k in predicted if k not in truth_by_key]),
        "field_exact_match": _rate(tally["exact"], len(truth_by_key)),
        "digit_accuracy": _rate(tally["digits_ok"], tally["digits"]),
        "digits": tally["digits"],
        "needs_review_rate": _rate(tally["flagged"], matched),
        "unflagged_field_accuracy": _rate(tally["unflagged_ok"], tally["unflagged"]),
        "errors_flagged_share": _rate(tally["flagged_errors"], matched - tally["exact"]),
        "rejects": sum(rejects.values()),
        "rejects_by_stage": dict(sorted(rejects.items())),
        "written_fields_flagged": _rate(tally["written_flagged"], tally["written"]),
        "per_template": {name: _bucket_figures(c) for name, c in sorted(per_template.items())},
        **({"per_group": {name: _bucket_figures(c) for name, c in sorted(per_group.items())}} if group_by else {}),
        "confusion_matrix": confusion.tolist(),
    }


def _pct(v) -> str:
    return "-" if v is None else f"{v * 100:.2f}%"


def format_report(report: dict) -> str:
    lines = [
        f"fields: {report['matched_fields']} of {report['truth_fields']} matched, "
        f"{report['missing_fields']} missing, {report['extra_fields']} extra; rejects: {report['rejects']}"
        + (f" {report['rejects_by_stage']}" if report["rejects"] else ""),
        f"field exact match     {_pct(report['field_exact_match'])}",
        f"digit accuracy        {_pct(report['digit_accuracy'])}  ({report['digits']} digits)",
        f"needs review          {_pct(report['needs_review_rate'])} of fields; "
        f"unflagged fields {_pct(report['unflagged_field_accuracy'])} exact; "
        f"{_pct(report['errors_flagged_share'])} of wrong fields were flagged",
        "",
        f"{'template':<16}{'fields':>8}{'exact':>10}{'digits':>10}",
    ]
    for name, t in report["per_template"].items():
        lines.append(f"{name:<16}{t['fields']:>8}{_pct(t['field_exact_match']):>10}{_pct(t['digit_accuracy']):>10}")
    lines += ["", "confusion (rows: truth, columns: read)", "     " + "".join(f"{d:>6}" for d in range(10))]
    for d, row in enumerate(report["confusion_matrix"]):
        lines.append(f"{d:>5}" + "".join(f"{v:>6}" for v in row))
    return "\n".join(lines)
