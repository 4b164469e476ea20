"""`formdigits query`: read-only SQL over the results tables."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import time

import duckdb

from pipeline.write import DB_NAME

__all__ = ["QueryError", "run_query", "format_rows"]


class QueryError(RuntimeError):
    pass


def run_query(db_dir: str, sql: str, wait_s: float = 10.0) -> tuple[list[str], list[tuple]]:
    """Runs `sql` on DIR/results.duckdb opened read-only; writes are refused by DuckDB itself."""
    path = os.path.join(db_dir, DB_NAME)
    if not os.path.isfile(path):
        raise QueryError(f"no results database at {path}; run formdigits run --output {db_dir} first")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = duckdb.connect(path, read_only=True)
            break
        except duckdb.IOException as exc:  # a running job holds the write lock for a moment
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise QueryError(f"cannot open {path}: {exc}") from None
            time.sleep(0.2)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description] if cur.description else []
        return names, cur.fetchall() if names else []
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        if "read-only" in message.lower():
            raise QueryError("the results are read-only here: formdigits query runs SELECTs "
                             f"({message})") from None
        raise QueryError(message) from None
    finally:
        con.close()


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, datetime.datetime):
        return v.isoformat(sep=" ", timespec="seconds")
    return str(v)


def format_rows(names: list[str], rows: list[tuple], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps([dict(zip(names, r)) for r in rows], default=str, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(names)
        writer.writerows([[_cell(v) for v in r] for r in rows])
        return buf.getvalue().rstrip("\n")
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    numeric = [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) for i in range(len(names))]
    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()
    out = [line(names), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)
