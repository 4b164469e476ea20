"""`formdigits export`: every field's final value (the view `fields_reviewed`) as CSV or Parquet."""

from __future__ import annotations

import os

import duckdb

from pipeline.review.queue import ReviewError, check_database
from pipeline.store import snapshot

__all__ = ["EXPORT_COLUMNS", "export_final_values"]

EXPORT_COLUMNS = ("source_uri", "page", "template", "field", "value", "value_read", "confidence", "needs_review",
                  "review_reason", "review_status", "reviewer", "reviewed_at", "run_id", "processed_at")


def export_final_values(db_dir: str, out: str) -> int:
    """Writes fields_reviewed, ordered by key, to `out` (.csv or .parquet); returns the number of fields.

    Written aside and renamed into place, so a reader never sees half a file.
    """
    check_database(db_dir)
    fmt = "parquet" if out.endswith(".parquet") else "csv"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    part = out + ".part"
    with snapshot(db_dir) as copy:
        con = duckdb.connect(copy, read_only=True)
        try:
            (n,), = con.execute("SELECT count(*) FROM fields_reviewed").fetchall()
            final = con.sql(f"SELECT {', '.join(EXPORT_COLUMNS)} FROM fields_reviewed ORDER BY source_uri, page, field")
            # Written through DuckDB's API: the path never becomes SQL.
            if fmt == "parquet":
                final.write_parquet(part)
            else:
                final.write_csv(part, header=True)
        except duckdb.Error as exc:
            raise ReviewError(f"cannot write {out}: {str(exc).splitlines()[0]}") from None
        finally:
            con.close()
    os.replace(part, out)
    return n

