"""`formdigits eval`: score a results directory against a corpus's truth.jsonl.

Fields are matched on (source file name, page, field). Digits are compared by
position, so a dropped or extra digit costs the digits after it in digit
accuracy as well as the field in exact match.
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np

__all__ = ["EvalError", "load_truth", "load_results", "evaluate", "format_report"]


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

    Reads `DIR/results.duckdb`, or the Parquet shards `DIR/<table>/*.parquet` when
    there is no database file.
    """
    import duckdb

    results_dir = os.fspath(results_dir)
    if not os.path.isdir(results_dir):
        raise EvalError(f"results directory {results_dir!r} does not exist")
    db = os.path.join(results_dir, "results.duckdb")
    tables = {}
    if os.path.isfile(db):
        con = duckdb.connect(db, read_only=True)
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        source = {t: t for t in ("fields", "digits", "rejects") if t in present}
    else:
        con = duckdb.connect()
        source = {}
        for t in ("fields", "digits", "rejects"):
            shard_dir = os.path.join(results_dir, t)
            if os.path.isdir(shard_dir) and any(n.endswith(".parquet") for n in os.listdir(shard_dir)):
                source[t] = f"read_parquet('{shard_dir}/*.parquet', union_by_name=true)"
    if "fields" not in source:
        raise EvalError(f"{results_dir!r} holds no results: no results.duckdb with a fields table and no "
                        "fields/*.parquet (run formdigits run --output DIR first)")
    try:
        for t, expr in source.items():
            cur = con.execute(f"SELECT * FROM {expr}")
            names = [d[0] for d in cur.description]
            tables[t] = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()
    tables.setdefault("digits", [])
    tables.setdefault("rejects", [])
    return tables


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def evaluate(results: dict[str, list[dict]], truth: list[dict]) -> dict:
    """Scores results against truth; see the module docstring for the matching rules."""
    predicted = {}
    for row in results["fields"]:
        key = (_source_key(str(row["source_uri"])), int(row["page"]), row["field"])
        predicted[key] = row
    truth_by_key = {(t["source"], t["page"], t["field"]): t for t in truth}
    matched = [k for k in truth_by_key if k in predicted]
    if predicted and not matched:
        raise EvalError(f"none of the {len(predicted)} result fields match the truth's "
                        f"{len(truth_by_key)} fields on (source, page, field): are --results and --truth "
                        "from the same corpus?")
    if not predicted:
        raise EvalError("the results hold no fields")

    confusion = np.zeros((10, 10), np.int64)
    exact = digits_ok = digits_total = flagged = flagged_errors = unflagged = unflagged_ok = 0
    per_template = collections.defaultdict(lambda: collections.Counter())
    for key in truth_by_key:
        t = truth_by_key[key]
        tmpl = per_template[t["template"]]
        tmpl["fields"] += 1
        tmpl["digits"] += len(t["value"])
        digits_total += len(t["value"])
        if key not in predicted:
            continue
        p = predicted[key]
        value = "" if p.get("value") is None else str(p["value"])
        ok = value == t["value"]
        exact += ok
        tmpl["exact"] += ok
        tmpl["matched"] += 1
        for i, ch in enumerate(t["value"]):
            if i < len(value) and value[i].isdigit():
                confusion[int(ch), int(value[i])] += 1
                if value[i] == ch:
                    digits_ok += 1
                    tmpl["digits_ok"] += 1
        if p.get("needs_review"):
            flagged += 1
            flagged_errors += not ok
        else:
            unflagged += 1
            unflagged_ok += ok
    errors = len(matched) - exact
    missing = len(truth_by_key) - len(matched)
    extra = len([k for k in predicted if k not in truth_by_key])
    rejects = collections.Counter(r.get("stage", "?") for r in results["rejects"])
    return {
        "truth_fields": len(truth_by_key),
        "result_fields": len(predicted),
        "matched_fields": len(matched),
        "missing_fields": missing,
        "extra_fields": extra,
        "field_exact_match": _rate(exact, len(truth_by_key)),
        "digit_accuracy": _rate(digits_ok, digits_total),
        "digits": digits_total,
        "needs_review_rate": _rate(flagged, len(matched)),
        "unflagged_field_accuracy": _rate(unflagged_ok, unflagged),
        "errors_flagged_share": _rate(flagged_errors, errors),
        "rejects": sum(rejects.values()),
        "rejects_by_stage": dict(sorted(rejects.items())),
        "per_template": {
            name: {"fields": c["fields"], "field_exact_match": _rate(c["exact"], c["fields"]),
                   "digit_accuracy": _rate(c["digits_ok"], c["digits"])}
            for name, c in sorted(per_template.items())
        },
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
