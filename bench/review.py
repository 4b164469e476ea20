"""Review at scale: the queue's next item on a 100,000-field database, and a 1,000-page run's report.

The databases are a real run's results (a fresh corpus through `formdigits
run`, crops kept for flagged fields) copied under new file names until they
hold 100,000 fields, or 1,000 pages: the reads are real, the volume is what a
night's batch leaves. The app is `formdigits review` in its own process,
timed from this one over HTTP on loopback, as the page calls it: an action
(save, then the next item, one request) and a skip (the next item).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse

import duckdb

from bench.corpora import make_corpus
from bench.pipeline import run_pipeline
from pipeline.output.store import DB_NAME
from pipeline.review.report import write_report
from pipeline.schema import TABLES

__all__ = ["bench_review", "grow_database"]

REVIEW_SEED = 6161


def grow_database(base_dir: str, out_dir: str, *, fields: int | None = None, pages: int | None = None) -> dict:
    """A copy of `base_dir`'s results, its pages repeated under new file names up to `fields` or `pages`."""
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    path = os.path.join(out_dir, DB_NAME)
    shutil.copyfile(os.path.join(base_dir, DB_NAME), path)
    con = duckdb.connect(path)
    try:
        n_fields, n_pages = con.execute("SELECT count(*), count(DISTINCT (source_uri, page)) FROM fields").fetchone()
        copies = math.ceil(fields / n_fields) if fields else math.ceil(pages / n_pages)
        for table in TABLES:
            con.execute(f"CREATE TEMP TABLE base_{table} AS SELECT * FROM {table}")
            con.execute(f"INSERT INTO {table} SELECT b.* REPLACE (b.source_uri || '#copy' || k AS source_uri) "
                        f"FROM base_{table} b, range(1, {copies}) r(k)")
        con.execute("CHECKPOINT")
        total = con.execute("SELECT count(*), count(DISTINCT (source_uri, page)), count(*) FILTER (WHERE needs_review) "
                            "FROM fields").fetchone()
    finally:
        con.close()
    return {"fields": total[0], "pages": total[1], "flagged": total[2], "copies": copies}


class _App:
    """`formdigits review --port 0` in its own process, and a keep-alive HTTP connection to it."""

    def __init__(self, db_dir: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "formdigits", "review", "--db", db_dir, "--port", "0",
                                      "--reviewer", "bench"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        line = self.proc.stdout.readline()
        if "http://" not in line:
            raise RuntimeError(f"formdigits review did not start: {line}{self.proc.stdout.read()[-2000:]}")
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[float, dict]:
        """(milliseconds, answer) of one request."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        started = time.perf_counter()
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        res = self.conn.getresponse()
        data = res.read()
        ms = (time.perf_counter() - started) * 1000
        if res.status != 200:
            raise RuntimeError(f"{method} {path}: {res.status} {data[:300]!r}")
        return ms, json.loads(data)

    def close(self):
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(10)


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(values), "median_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1), "max_ms": round(ordered[-1], 1)}


def _walk_queue(app: _App, actions: int) -> dict:
    """A reviewer's session: accept, correct, skip in turn; every request timed."""
    first_ms, answer = app.call("GET", "/api/next")
    item, acted, skipped = answer["item"], [], []
    for i in range(actions):
        if item is None:
            break
        if i % 3 == 2:
            ms, answer = app.call("GET", "/api/next?" + urllib.parse.urlencode({"after": json.dumps(item["cursor"])}))
            skipped.append(ms)
        else:
            value = None if i % 3 == 0 else "7" * max(1, item["digit_count"])
            body = {"key": item["key"], "action": "accept" if value is None else "correct", "value": value,
                    "confirm": True, "after": item["cursor"]}
            ms, answer = app.call("POST", "/api/review", body)
            acted.append(ms)
        item = answer["item"]
    return {"first_next_ms": round(first_ms, 1), "save_and_next": _percentiles(acted), "skip_next": _percentiles(skipped)}


def bench_review(work_dir: str, target: str, quick: bool, log=print) -> dict:
    pages = 20 if quick else 50
    corpus = make_corpus(os.path.join(work_dir, f"review-corpus-{pages}-{REVIEW_SEED}"), pages, REVIEW_SEED)
    base = os.path.join(work_dir, "review-out")
    run_pipeline(os.path.join(corpus, "scan_*"), os.path.join(corpus, "templates"), base, target,
                 os.cpu_count() or 1, pages, log)
    big = os.path.join(work_dir, "review-100k")
    size = grow_database(base, big, fields=100_000)
    log(f"  database: {size['fields']} fields, {size['flagged']} flagged, {size['pages']} pages "
        f"({size['copies']} copies of a {pages}-page run)")
    app = _App(big)
    try:
        _, options = app.call("GET", "/api/options")
        session = _walk_queue(app, 60 if quick else 300)
        template = sorted(options["templates"])[0]
        filtered_ms, _ = app.call("GET", f"/api/next?template={template}&reason=low+confidence")
    finally:
        app.close()
    session["filtered_next_ms"] = round(filtered_ms, 1)
    log(f"  next item after an action: median {session['save_and_next']['median_ms']} ms, p95 "
        f"{session['save_and_next']['p95_ms']} ms; after a skip: p95 {session['skip_next']['p95_ms']} ms")
    report_db = os.path.join(work_dir, "review-1000-pages")
    report_size = grow_database(base, report_db, pages=1000)
    started = time.perf_counter()
    out = os.path.join(work_dir, "report-1000-pages.html")
    shown = write_report(report_db, out)
    report = {"pages": report_size["pages"], "flagged": report_size["flagged"], "crops_shown": shown["crops_shown"],
              "seconds": round(time.perf_counter() - started, 2), "mb": round(os.path.getsize(out) / 1e6, 2)}
    log(f"  report of {report['pages']} pages: {report['mb']} MB, {report['crops_shown']} pictures, "
        f"{report['seconds']} s")
    return {"database": size, "session": session, "report": report,
            "review_next_item_p95_ms": max(session["save_and_next"]["p95_ms"], session["skip_next"]["p95_ms"]),
            "report_mb_1000_pages": report["mb"]}
