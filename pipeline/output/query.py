"""`formdigits query`: read-only SQL over the results tables.

A query runs on a private copy of the database (`pipeline.output.store.snapshot`), so
it never holds the file a run is writing, and inside DuckDB's own sandbox:
external access off (no COPY TO, EXPORT, read_csv of other files, ATTACH,
INSTALL or LOAD), the configuration locked, the database read-only. What
DuckDB refuses there becomes one line saying the command is read-only. A query
is bounded: a quarter of the machine's memory by default (DuckDB's own default
is 80%), and 60 s, after which it is interrupted.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import threading

import duckdb

from pipeline.output.store import DB_NAME, snapshot

__all__ = ["QueryError", "run_query", "format_rows", "SANDBOX", "DEFAULT_TIMEOUT_S", "default_memory_limit"]

DEFAULT_TIMEOUT_S = 60.0


def default_memory_limit() -> str:
    """Returns a quarter of this machine's memory, in DuckDB's units (DuckDB's own default is 80%)."""
    return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 4 >> 20}MB"

# DuckDB settings that make a connection a reader of its one database file and nothing more.
SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


class QueryError(RuntimeError):
    pass


def run_query(db_dir: str, sql: str, memory_limit: str | None = None,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[list[str], list[tuple]]:
    """Runs `sql` over a snapshot of DIR/results.duckdb in DuckDB's sandbox; returns (column names, rows).

    Args:
        memory_limit: DuckDB's memory_limit for the query, e.g. "4GB" (default: a quarter of RAM).
        timeout_s: the query is interrupted after this long.

    Raises:
        QueryError: one line: no database, a refused statement, DuckDB's error (with its hint), or a limit hit.
    """
    if not os.path.isfile(os.path.join(db_dir, DB_NAME)):
        raise QueryError(f"no results database at {os.path.join(db_dir, DB_NAME)}; "
                         f"run formdigits run --output {db_dir} first")
    memory_limit = memory_limit or default_memory_limit()
    with snapshot(db_dir) as copy:
        try:
            con = duckdb.connect(copy, read_only=True, config={**SANDBOX, "memory_limit": memory_limit})
        except duckdb.Error as exc:
            raise QueryError(f"--memory-limit {memory_limit!r}: {str(exc).splitlines()[0]}") from None
        timer = threading.Timer(timeout_s, con.interrupt)
        timer.start()
        try:
            cur = con.execute(sql)
            names = [d[0] for d in cur.description] if cur.description else []
            return names, cur.fetchall() if names else []
        except duckdb.Error as exc:
            raise QueryError(_explain(exc, memory_limit, timeout_s)) from None
        finally:
            timer.cancel()
            con.close()


def _explain(exc: Exception, memory_limit: str, timeout_s: float) -> str:
    """DuckDB's error as one line: its message and its hint ("Did you mean ...?"), or the limit that was hit."""
    if isinstance(exc, duckdb.InterruptException):
        return f"stopped after {timeout_s:g} s (--timeout); narrow the query, or allow it longer"
    if isinstance(exc, duckdb.OutOfMemoryException):
        return f"the query needs more than {memory_limit} of memory (--memory-limit); narrow it, or allow more"
    lines = []
    for line in str(exc).splitlines():
        if line.startswith("LINE "):  # the query echoed back with a caret: the person has it already
            break
        lines += [line.strip()] if line.strip() else []
    message = " ".join(lines)
    refused = isinstance(exc, duckdb.PermissionException) or any(
        s in message for s in ("read-only", "configuration has been locked"))
    if refused:
        return ("formdigits query is read-only: it runs SELECT-style reads of the results tables and nothing else "
                f"({str(exc).splitlines()[0]})")
    return message


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
