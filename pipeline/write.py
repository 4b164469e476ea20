"""Write stage: result rows into DuckDB + Parquet locally, or BigQuery on Dataflow.

Locally each batch of rows becomes one Parquet shard per table
`DIR/<table>/<run>-<n>.parquet` (written aside and renamed into place) and is
upserted into `DIR/results.duckdb` in one transaction, under a file lock so that worker processes take turns.
Readers therefore see whole batches or nothing, and a re-run over the same
input leaves one row per key: fields and digits are replaced by key, digits a
shorter re-read no longer has are deleted, and identical rejects are kept once.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import time
import uuid

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import schema

__all__ = ["DB_NAME", "arrow_schema", "write_local_batch", "write_local_tables", "to_json_row", "ensure_tables",
           "remove_partial_files"]

DB_NAME = "results.duckdb"
_ARROW = {"VARCHAR": "string", "INTEGER": "int32", "BIGINT": "int64", "DOUBLE": "float64", "BOOLEAN": "bool_",
          "TIMESTAMP": "timestamp"}


def arrow_schema(table: str):
    fields = []
    for name, sql, _, nullable in schema.TABLES[table]:
        kind = _ARROW[sql]
        pa_type = pa.timestamp("us") if kind == "timestamp" else getattr(pa, kind)()
        fields.append(pa.field(name, pa_type, nullable=nullable))
    return pa.schema(fields)


@contextlib.contextmanager
def _locked(output_dir: str):
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, ".write.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_tables(con) -> None:
    for table in schema.TABLES:
        ddl = schema.duckdb_ddl(table)
        if table in ("fields", "digits"):
            ddl = ddl[:-1] + f", PRIMARY KEY ({', '.join(schema.KEYS[table])}))"
        con.execute(ddl)


def _py(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def write_local_batch(output_dir: str, table: str, rows: list[dict], run_id: str) -> str:
    """Writes one batch of `table` rows as a Parquet shard and upserts it into DuckDB. Returns the shard path."""
    return write_local_tables(output_dir, {table: rows}, run_id)[table]


def write_local_tables(output_dir: str, tables: dict[str, list[dict]], run_id: str) -> dict[str, str]:
    """Writes rows of several tables: one Parquet shard each, one DuckDB transaction for all.

    Fields are upserted before their digits, so the clean-up of digits a shorter
    re-read no longer has sees this run's digit counts. Returns {table: shard path}.
    """
    order = [t for t in ("fields", "digits", "rejects") if tables.get(t)]
    data = {}
    for table in order:
        cols = schema.column_names(table)
        data[table] = pa.Table.from_pylist([{c: _py(r.get(c)) for c in cols} for r in tables[table]],
                                           schema=arrow_schema(table))
    shards = {}
    with _locked(output_dir):
        for table in order:
            shard_dir = os.path.join(output_dir, table)
            os.makedirs(shard_dir, exist_ok=True)
            shard = os.path.join(shard_dir, f"{run_id}-{uuid.uuid4().hex[:12]}.parquet")
            pq.write_table(data[table], shard + ".part")
            os.replace(shard + ".part", shard)
            shards[table] = shard
        if not order:
            return shards
        con = _connect_for_write(os.path.join(output_dir, DB_NAME))
        try:
            con.execute("BEGIN TRANSACTION")
            ensure_tables(con)
            for table in order:
                _upsert(con, table, data[table])
            if "fields" in data:
                # Digits beyond what a field now has were left by an earlier read: drop them
                # (for this batch's fields only: the cost must not grow with the database).
                con.register("batch_fields", data["fields"])
                con.execute("""
                    DELETE FROM digits d USING batch_fields f
                    WHERE d.source_uri = f.source_uri AND d.page = f.page AND d.field = f.field
                      AND d.position >= f.digit_count""")
                con.unregister("batch_fields")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()
    return shards


def _upsert(con, table: str, batch) -> None:
    col_list = ", ".join(schema.column_names(table))
    con.register("batch", batch)
    try:
        if table == "rejects":  # the same failure seen again is kept once
            con.execute("""
                DELETE FROM rejects r USING batch b
                WHERE r.source_uri = b.source_uri AND r.page IS NOT DISTINCT FROM b.page
                  AND r.stage = b.stage AND r.error_type = b.error_type AND r.message = b.message""")
            con.execute(f"INSERT INTO rejects SELECT {col_list} FROM batch")
        else:
            con.execute(f"INSERT OR REPLACE INTO {table} SELECT {col_list} FROM batch")
    finally:
        con.unregister("batch")


def _connect_for_write(path: str, wait_s: float = 120.0):
    """Opens the database for writing, waiting while a reader (formdigits query) holds it."""
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(path)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def to_json_row(row: dict) -> dict:
    """A row as BigQuery's JSON API takes it."""
    out = {}
    for k, v in row.items():
        v = _py(v)
        if isinstance(v, datetime.datetime):
            v = v.isoformat()
        out[k] = v
    return out


def remove_partial_files(output_dir: str) -> None:
    """Deletes Parquet shards a stopped writer left half-written (`*.part`)."""
    for table in schema.TABLES:
        directory = os.path.join(output_dir, table)
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name.endswith(".part"):
                    os.remove(os.path.join(directory, name))
