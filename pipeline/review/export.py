"""`formdigits export`: every field's final value (the view `fields_reviewed`) as CSV or Parquet.

Long (a row a field, with how it was read and reviewed) or, with `wide`, a row a page and a column a field
(the shape a spreadsheet or a table of forms takes), with the page's fields still pending review counted.
"""

from __future__ import annotations

import os

import duckdb

from pipeline.output.store import snapshot
from pipeline.review.queue import ReviewError, check_database

__all__ = ["EXPORT_COLUMNS", "export_final_values", "PendingReview"]

EXPORT_COLUMNS = ("source_uri", "page", "template", "field", "value", "value_read", "confidence", "needs_review",
                  "review_reason", "review_status", "reviewer", "reviewed_at", "run_id", "processed_at")


# A page a row: the form's fields pivoted into columns by their names (plain identifiers, checked by
# template lint), the page's pending reviews beside them.
_WIDE = """
WITH pages AS (
    PIVOT (SELECT source_uri, page, template, field, value FROM fields_reviewed)
    ON field USING first(value) GROUP BY source_uri, page, template
), pending AS (
    SELECT source_uri, page, count(*) FILTER (WHERE review_status = 'pending') AS fields_pending_review
    FROM fields_reviewed GROUP BY ALL
)
SELECT * FROM pages JOIN pending USING (source_uri, page) ORDER BY source_uri, page
"""


class PendingReview(ReviewError):
    """Fields flagged for review have not been reviewed yet (export --require-reviewed)."""


def export_final_values(db_dir: str, out: str, wide: bool = False, require_reviewed: bool = False) -> dict:
    """Writes fields_reviewed to `out` (.csv or .parquet): a row a field ordered by key, or with `wide` a row a page.

    Returns {"fields", "rows", "pending"}. Written aside and renamed into place, so a reader never sees half
    a file. With `require_reviewed`, raises PendingReview (and writes nothing) while any field is pending.
    """
    check_database(db_dir)
    fmt = "parquet" if out.endswith(".parquet") else "csv"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    part = out + ".part"
    with snapshot(db_dir) as copy:
        con = duckdb.connect(copy, read_only=True)
        try:
            # The wide file's rows are its pages: counted here, so the pivot runs once, when it is written.
            (n, pending, pages), = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE review_status = 'pending'), "
                "count(DISTINCT (source_uri, page, template)) FROM fields_reviewed").fetchall()
            if require_reviewed and pending:
                raise PendingReview(f"{pending} of {n} fields are still pending review; review them "
                                    f"(formdigits review --db {db_dir}) or export without --require-reviewed")
            final = con.sql(_WIDE) if wide else con.sql(
                f"SELECT {', '.join(EXPORT_COLUMNS)} FROM fields_reviewed ORDER BY source_uri, page, field")
            rows = pages if wide else n
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
    return {"fields": n, "rows": rows, "pending": pending}

