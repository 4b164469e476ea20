"""`formdigits query`: read-only SQL over the results tables.

A query runs on a private copy of the database (`pipeline.store.snapshot`), so
it never holds the file a run is writing, and inside DuckDB's own sandbox:
external access off (no COPY TO, EXPORT, read_csv of other files, ATTACH,
INSTALL or LOAD), the configuration locked, the database read-only. What
DuckDB refuses there becomes one line saying the command is read-only.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os

import duckdb

from pipeline.store import DB_NAME, snapshot

__all__ = ["QueryError", "run_query", "format_rows", "SANDBOX"]

# DuckDB settings that make a connection a reader of its one database file and nothing more.
SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


class QueryError(RuntimeError):
    pass


def run_query(db_dir: str, sql: str) -> tuple[list[str], list[tuple]]:
    """Runs `sql` over a snapshot of DIR/results.duckdb in DuckDB's sandbox; returns (column names, rows)."""
    if not os.path.isfile(os.path.join(db_dir, DB_NAME)):
        raise QueryError(f"no results database at {os.path.join(db_dir, DB_NAME)}; "
                         f"run formdigits run --output {db_dir} first")
    with snapshot(db_dir) as copy:
        con = duckdb.connect(copy, read_only=True, config=SANDBOX)
        try:
            cur = con.execute(sql)
            names = [d[0] for d in cur.description] if cur.description else []
            return names, cur.fetchall() if names else []
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            refused = isinstance(exc, duckdb.PermissionException) or any(
                s in message for s in ("read-only", "configuration has been locked"))
            if refused:
                raise QueryError("formdigits query is read-only: it runs SELECT-style reads of the results "
                                 f"tables and nothing else ({message})") from None
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
