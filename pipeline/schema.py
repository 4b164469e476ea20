"""The results tables of ../shared/CONTRACTS.md: one definition for DuckDB, Parquet and BigQuery."""

from __future__ import annotations

__all__ = ["TABLES", "KEYS", "column_names", "duckdb_ddl", "bigquery_schema"]

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
}

# A re-run leaves one row per key.
KEYS = {
    "fields": ("source_uri", "page", "field"),
    "digits": ("source_uri", "page", "field", "position"),
    "rejects": ("source_uri", "page", "stage"),
}


def column_names(table: str) -> list[str]:
    return [c[0] for c in TABLES[table]]


def duckdb_ddl(table: str) -> str:
    cols = ", ".join(f"{name} {sql}{'' if nullable else ' NOT NULL'}" for name, sql, _, nullable in TABLES[table])
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


def bigquery_schema(table: str) -> dict:
    """The table schema in the form `beam.io.WriteToBigQuery(schema=...)` takes."""
    return {"fields": [{"name": name, "type": bq, "mode": "NULLABLE" if nullable else "REQUIRED"}
                       for name, _, bq, nullable in TABLES[table]]}
