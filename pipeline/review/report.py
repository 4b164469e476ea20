"""`formdigits report`: one self-contained HTML page for a run, what a team lead opens after a night's batch.

Totals, the review share and progress, rejects by stage and reason, a
histogram of field confidence (inline SVG), figures per template, and the
flagged fields with their pictures (PNG inlined as data URIs). Nothing is
fetched from elsewhere: the file opens offline, mailed or archived. Its size
is bounded: pictures for the `max_crops` least confident flagged fields, and
none past `IMAGE_BUDGET` bytes, so a 1,000-page run stays well under 5 MB.
"""

from __future__ import annotations

import base64
import datetime
import html
import os

import duckdb

from pipeline.defaults import DEFAULT_REVIEW_THRESHOLD
from pipeline.output.store import snapshot
from pipeline.review.queue import QUEUE_ORDER, check_database

__all__ = ["IMAGE_BUDGET", "MAX_LISTED", "write_report", "report_html"]

IMAGE_BUDGET = 3_500_000      # bytes of base64 pictures in one report
MAX_LISTED = 3000             # flagged fields listed (with or without a picture)
HISTOGRAM_BINS = 20

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em 1.5em;color:#1d1d1f}
h1{font-size:1.5em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.tiles{display:flex;flex-wrap:wrap;gap:.8em} .tile{background:#f3f4f6;border-radius:8px;padding:.6em 1em;min-width:9em}
.tile b{display:block;font-size:1.6em} table{border-collapse:collapse;margin:.5em 0;font-variant-numeric:tabular-nums}
th,td{padding:.2em .7em;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:middle}
td.n{text-align:right} .muted{color:#6b7280} img{display:block;max-width:420px}
.why{display:inline-block;min-width:16em;max-width:26em} .bar{fill:#2563eb} .bar.low{fill:#dc2626} svg text{font:11px system-ui,sans-serif;fill:#374151}
"""


def _rows(con, sql: str, params=()) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def _e(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _table(head: list[str], rows: list[tuple], numeric: set[int] = frozenset()) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{_e(v)}</td>"
                                    for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>" if rows else "<p class=muted>none</p>"


def _totals(con) -> dict:
    (pages, files, fields, flagged, empty, low), = _rows(con, """
        SELECT count(DISTINCT (source_uri, page)), count(DISTINCT source_uri), count(*),
               count(*) FILTER (WHERE needs_review), count(*) FILTER (WHERE digit_count = 0),
               count(*) FILTER (WHERE confidence < ?) FROM fields""", [DEFAULT_REVIEW_THRESHOLD])
    (digits,), = _rows(con, "SELECT count(*) FROM digits")
    (rejects,), = _rows(con, "SELECT count(*) FROM rejects")
    reviewed = dict(_rows(con, """SELECT review_status, count(*) FROM fields_reviewed
                                  WHERE review_status NOT IN ('not flagged') GROUP BY ALL"""))
    runs = _rows(con, "SELECT run_id, min(processed_at), max(processed_at), count(*) FROM fields GROUP BY ALL ORDER BY 2")
    models = _rows(con, "SELECT model_name, model_version, count(*) FROM digits GROUP BY ALL ORDER BY ALL")
    return {"pages": pages, "files": files, "fields": fields, "flagged": flagged, "empty": empty, "low": low,
            "digits": digits, "rejects": rejects, "reviewed": reviewed, "runs": runs, "models": models}


def _histogram(con) -> str:
    """Field confidence (its weakest digit) in HISTOGRAM_BINS bins, as an inline SVG bar chart."""
    counts = dict(_rows(con, f"""SELECT least(floor(confidence * {HISTOGRAM_BINS}), {HISTOGRAM_BINS - 1})::INT, count(*)
                                 FROM fields WHERE confidence IS NOT NULL GROUP BY ALL"""))
    top = max(counts.values(), default=1)
    w, h, bar = 640, 180, 640 / HISTOGRAM_BINS
    parts = []
    for b in range(HISTOGRAM_BINS):
        n = counts.get(b, 0)
        bh = 0 if not n else max(1.0, (h - 30) * n / top)
        cls = "bar low" if (b + 1) / HISTOGRAM_BINS <= DEFAULT_REVIEW_THRESHOLD + 1e-9 else "bar"
        parts.append(f'<rect class="{cls}" x="{b * bar + 1:.1f}" y="{h - 20 - bh:.1f}" width="{bar - 2:.1f}" '
                     f'height="{bh:.1f}"><title>{b / HISTOGRAM_BINS:.2f}-{(b + 1) / HISTOGRAM_BINS:.2f}: {n}</title></rect>')
        if n:
            parts.append(f'<text x="{b * bar + bar / 2:.1f}" y="{h - 23 - bh:.1f}" text-anchor="middle">{n}</text>')
    for b in range(0, HISTOGRAM_BINS + 1, 4):
        parts.append(f'<text x="{b * bar:.1f}" y="{h - 5}" text-anchor="middle">{b / HISTOGRAM_BINS:.1f}</text>')
    return (f'<svg viewBox="-10 0 {w + 20} {h}" width="{w + 20}" height="{h}" role="img" '
            f'aria-label="fields by confidence">{"".join(parts)}</svg>')


def _templates(con) -> str:
    rows = _rows(con, """
        SELECT coalesce(f.template, '(no template)'), count(DISTINCT (f.source_uri, f.page)), count(*),
               round(100.0 * count(*) FILTER (WHERE f.needs_review) / count(*), 1)::VARCHAR,
               round(avg(f.confidence), 4), count(*) FILTER (WHERE f.digit_count = 0),
               count(*) FILTER (WHERE r.review_status = 'correct'),
               count(*) FILTER (WHERE r.review_status IN ('accept', 'correct', 'unreadable'))
        FROM fields f JOIN fields_reviewed r USING (source_uri, page, field) GROUP BY ALL ORDER BY 1""")
    return _table(["template", "pages", "fields", "flagged %", "mean confidence", "empty", "corrected", "reviewed"],
                  rows, numeric={1, 2, 3, 4, 5, 6, 7})


def _rejects(con) -> str:
    rows = _rows(con, """SELECT stage, error_type, count(*), count(DISTINCT source_uri), any_value(message)
                         FROM rejects GROUP BY ALL ORDER BY 3 DESC, 1, 2""")
    return _table(["stage", "reason", "rows", "files", "for example"], rows, numeric={2, 3})


def _flagged(con, max_crops: int) -> tuple[str, int, int]:
    """The flagged fields, least confident first; pictures for the first ones within the budget."""
    rows = _rows(con, f"""
        SELECT f.source_uri, f.page, f.field, f.value_read, f.confidence, f.review_reason, f.review_status, f.value,
               c.image
        FROM fields_reviewed f LEFT JOIN crops c USING (source_uri, page, field)
        WHERE f.needs_review ORDER BY {QUEUE_ORDER} LIMIT {MAX_LISTED}""")
    spent, shown, out = 0, 0, []
    for uri, page, field, value, conf, reason, status, final, image in rows:
        picture = ""
        if image is not None and shown < max_crops and spent < IMAGE_BUDGET:
            data = base64.b64encode(image).decode()
            spent, shown = spent + len(data), shown + 1
            picture = f'<img alt="{_e(field)}" loading="lazy" src="data:image/png;base64,{data}">'
        where = f'<span title="{_e(uri)}">{_e(uri.rsplit("/", 1)[-1])}</span> p{page}'
        cells = [where, _e(field), picture, f"<b>{_e(value)}</b>", _e(conf), f"<span class=why>{_e(reason)}</span>",
                 _e(status if status == "pending" else f"{status}: {final or ''}")]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("where", "field", "picture", "read", "confidence", "why", "review"))
    return (f"<table><tr>{head}</tr>{''.join(out)}</table>" if out else "<p class=muted>none</p>"), shown, len(rows)


def report_html(con, db_dir: str, max_crops: int = 600) -> tuple[str, dict]:
    """Returns the report page and its totals, from an open connection to a results database."""
    t = _totals(con)
    share = 100.0 * t["flagged"] / t["fields"] if t["fields"] else 0.0
    done = sum(n for s, n in t["reviewed"].items() if s != "pending")
    tiles = [("pages", t["pages"]), ("files", t["files"]), ("fields", t["fields"]), ("digits", t["digits"]),
             ("flagged for review", f"{t['flagged']} ({share:.1f}%)"), ("reviewed", f"{done} of {t['flagged']}"),
             ("empty fields", t["empty"]), ("rejects", t["rejects"])]
    flagged, shown, listed = _flagged(con, max_crops)
    runs = _table(["run", "first row", "last row", "fields"], t["runs"], numeric={3})
    models = _table(["model", "version", "digits read"], t["models"], numeric={1, 2})
    review = _table(["status", "fields"], sorted(t["reviewed"].items()), numeric={1})
    more = (f"<p class=muted>{shown} pictures shown (least confident first); "
            f"the rest are in <code>formdigits review --db {_e(db_dir)}</code>.</p>" if listed > shown else "")
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = f"""<h1>formdigits run report</h1>
<p class=muted>{_e(os.path.abspath(db_dir))} · written {now}</p>
<div class=tiles>{''.join(f'<div class=tile><b>{_e(v)}</b>{_e(k)}</div>' for k, v in tiles)}</div>
<h2>Runs and models</h2>{runs}{models}
<h2>Review</h2>{review}
<h2>Confidence</h2><p class=muted>Fields by their weakest digit's probability; red: below {DEFAULT_REVIEW_THRESHOLD}, the
default review threshold. {t['low']} fields are below it.</p>{_histogram(con)}
<h2>Templates</h2>{_templates(con)}
<h2>Rejects by stage and reason</h2>{_rejects(con)}
<h2>Flagged fields</h2>{more}{flagged}"""
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>formdigits report</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")
    return page, {"pages": t["pages"], "fields": t["fields"], "flagged": t["flagged"], "crops_shown": shown}


def write_report(db_dir: str, out: str, max_crops: int = 600) -> dict:
    """Writes the report of results directory `db_dir` to `out`; returns its totals."""
    check_database(db_dir)
    with snapshot(db_dir) as copy:
        con = duckdb.connect(copy, read_only=True)
        try:
            page, summary = report_html(con, db_dir, max_crops)
        finally:
            con.close()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".part", "w", encoding="utf-8") as fh:
        fh.write(page)
    os.replace(out + ".part", out)
    return summary
