"""The results tables of ../shared/CONTRACTS.md: one definition for DuckDB, Parquet and BigQuery."""

from __future__ import annotations

__all__ = ["TABLES", "REVIEW_TABLES", "column_names", "duckdb_ddl", "bigquery_schema", "FIELDS_REVIEWED"]

# Where on the page, and which model read it: shared by fields and digits.
_BOX_AND_MODEL = [
    ("bbox_x", "INTEGER", "INT64", True),
    ("bbox_y", "INTEGER", "INT64", True),
    ("bbox_w", "INTEGER", "INT64", True),
    ("bbox_h", "INTEGER", "INT64", True),
    ("model_name", "VARCHAR", "STRING", True),
    ("model_version", "BIGINT", "INT64", True),
]

# (column, DuckDB/SQL type, BigQuery type, nullable)
TABLES: dict[str, list[tuple[str, str, str, bool]]] = {
    "fields": [
        ("source_uri", "VARCHAR", "STRING", False),
        ("page", "INTEGER", "INT64", False),
        ("template", "VARCHAR", "STRING", True),
        ("field", "VARCHAR", "STRING", False),
        ("value", "VARCHAR", "STRING", True),
        ("confidence", "DOUBLE", "FLOAT64", True),
        ("digit_count", "INTEGER", "INT64", False),
        ("needs_review", "BOOLEAN", "BOOL", False),
        ("review_reason", "VARCHAR", "STRING", True),
        *_BOX_AND_MODEL,
        ("run_id", "VARCHAR", "STRING", False),
        ("processed_at", "TIMESTAMP", "TIMESTAMP", False),
    ],
    "digits": [
        ("source_uri", "VARCHAR", "STRING", False),
        ("page", "INTEGER", "INT64", False),
        ("field", "VARCHAR", "STRING", False),
        ("position", "INTEGER", "INT64", False),
        ("digit", "INTEGER", "INT64", False),
        ("confidence", "DOUBLE", "FLOAT64", False),
        ("second_digit", "INTEGER", "INT64", True),
        ("second_confidence", "DOUBLE", "FLOAT64", True),
        *_BOX_AND_MODEL,
    ],
    "rejects": [
        ("source_uri", "VARCHAR", "STRING", False),
        ("page", "INTEGER", "INT64", True),  # null when the file never opened
        ("stage", "VARCHAR", "STRING", False),
        ("error_type", "VARCHAR", "STRING", False),
        ("message", "VARCHAR", "STRING", False),
        ("processed_at", "TIMESTAMP", "TIMESTAMP", False),
    ],
    # The pictures of the fields `--keep-crops` kept for review (pipeline.assembly.crops).
    "crops": [
        ("source_uri", "VARCHAR", "STRING", False),
        ("page", "INTEGER", "INT64", False),
        ("field", "VARCHAR", "STRING", False),
        ("template", "VARCHAR", "STRING", True),
        ("image", "BLOB", "BYTES", True),          # PNG, grey; locally
        ("image_uri", "VARCHAR", "STRING", True),  # the PNG as an object (Dataflow: gs://...)
        ("width", "INTEGER", "INT64", False),
        ("height", "INTEGER", "INT64", False),
        ("digit_boxes", "VARCHAR", "STRING", False),  # JSON [{"position": p, "box": [x, y, w, h]}] in the image
        ("field_rule", "VARCHAR", "STRING", True),    # JSON {min_length, max_length, pattern, check, decimals}
        ("run_id", "VARCHAR", "STRING", False),
        ("processed_at", "TIMESTAMP", "TIMESTAMP", False),
    ],
}

# Written by people, not by runs: one row per review action, kept (the latest per key counts).
REVIEW_TABLES: dict[str, list[tuple[str, str, str, bool]]] = {
    "corrections": [
        ("source_uri", "VARCHAR", "STRING", False),
        ("page", "INTEGER", "INT64", False),
        ("field", "VARCHAR", "STRING", False),
        ("value_read", "VARCHAR", "STRING", True),
        ("value_corrected", "VARCHAR", "STRING", True),  # null when the field was marked unreadable
        ("action", "VARCHAR", "STRING", False),          # accept | correct | unreadable
        ("reviewer", "VARCHAR", "STRING", False),
        ("reviewed_at", "TIMESTAMP", "TIMESTAMP", False),
    ],
}

# Every field's final value: the latest person's word where there is one, else what the model read.
FIELDS_REVIEWED = """
CREATE OR REPLACE VIEW fields_reviewed AS
WITH latest AS (
    SELECT * FROM corrections
    QUALIFY row_number() OVER (PARTITION BY source_uri, page, field ORDER BY reviewed_at DESC) = 1
)
SELECT f.source_uri, f.page, f.template, f.field,
       CASE WHEN c.action IS NULL THEN f.value ELSE c.value_corrected END AS value,
       f.value AS value_read, f.confidence, f.needs_review, f.review_reason,
       CASE WHEN c.action IS NOT NULL THEN c.action
            WHEN f.needs_review THEN 'pending' ELSE 'not flagged' END AS review_status,
       c.reviewer, c.reviewed_at, f.run_id, f.processed_at
FROM fields f
LEFT JOIN latest c USING (source_uri, page, field)
"""


def _columns(table: str) -> list[tuple[str, str, str, bool]]:
    return TABLES[table] if table in TABLES else REVIEW_TABLES[table]


def column_names(table: str) -> list[str]:
    return [c[0] for c in _columns(table)]


def duckdb_ddl(table: str) -> str:
    cols = ", ".join(f"{name} {sql}{'' if nullable else ' NOT NULL'}" for name, sql, _, nullable in _columns(table))
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


def bigquery_schema(table: str) -> dict:
    """Returns the table schema in the form `beam.io.WriteToBigQuery(schema=...)` takes."""
    return {"fields": [{"name": name, "type": bq, "mode": "NULLABLE" if nullable else "REQUIRED"}
                       for name, _, bq, nullable in _columns(table)]}
