"""Write stage, worker side: rows become Parquet shards staged for the results store, or BigQuery rows.

Locally a worker writes each batch of pages as one directory under
`DIR/.staging/`, a Parquet file per table (written aside and renamed in, so a
batch is whole or absent), and nothing else: no database, no lock shared with other workers or
readers, memory bounded by the batch. The driver's committer
(`pipeline.output.store`) merges staged shards into `DIR/results.duckdb`. On Dataflow
the same rows go to BigQuery as JSON (`to_json_row`).
"""

from __future__ import annotations

import datetime
import os
import shutil
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import schema
from pipeline.rows import ROW_TYPES, Row, as_dict

__all__ = ["STAGING", "RowShapeError", "check_rows", "arrow_schema", "stage_rows",
           "staged_batches", "to_json_row", "remove_partial_files"]

STAGING = ".staging"  # DIR/.staging/<run>-<uuid>/<table>.parquet: written by workers, merged by the committer
_ARROW = {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(),
          "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.timestamp("us"), "BLOB": pa.binary()}


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(name, _ARROW[sql], nullable=nullable)
                      for name, sql, _, nullable in schema.TABLES[table]])


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


class RowShapeError(ValueError):
    """A row that is not its table's row type (`pipeline.rows`): a dict's misspelt key would be a silent NULL."""


def check_rows(table: str, rows: list) -> None:
    """Raises RowShapeError unless every one of `rows` is `table`'s row type, whose fields are its columns."""
    kind = ROW_TYPES[table]
    row = next((r for r in rows if type(r) is not kind), None)
    if row is not None:
        raise RowShapeError(f"{table} rows are {kind.__name__}s (pipeline/rows.py), not {type(row).__name__}")


def stage_rows(output_dir: str, tables: dict[str, list[Row]], run_id: str) -> str | None:
    """Writes a batch of pages' rows as one staged directory, a Parquet file per table; returns its path.

    The directory is written under a `.part` name and renamed in whole, so the
    committer sees a batch's fields, digits and rejects together or not at all.
    Callers cut batches between pages.
    """
    if not any(tables.get(t) for t in schema.TABLES):
        return None
    for table in schema.TABLES:  # before anything is written: a refused batch leaves no `.part` behind
        check_rows(table, tables.get(table) or [])
    staging = os.path.join(output_dir, STAGING)
    batch = os.path.join(staging, f"{run_id}-{uuid.uuid4().hex[:12]}")
    os.makedirs(batch + ".part")
    for table in schema.TABLES:
        rows = tables.get(table)
        if rows:
            cols = schema.column_names(table)
            data = pa.Table.from_pylist([{c: _py(getattr(r, c)) for c in cols} for r in rows],
                                        schema=arrow_schema(table))
            pq.write_table(data, os.path.join(batch + ".part", f"{table}.parquet"))
    os.replace(batch + ".part", batch)
    return batch


def staged_batches(output_dir: str) -> list[str]:
    """Returns the whole staged batches waiting to be merged, oldest first."""
    staging = os.path.join(output_dir, STAGING)
    try:
        names = [n for n in os.listdir(staging) if not n.endswith(".part")]
    except FileNotFoundError:
        return []
    paths = [os.path.join(staging, n) for n in names]
    return sorted(paths, key=lambda p: (os.path.getmtime(p), p))


def remove_partial_files(output_dir: str) -> None:
    """Deletes what a stopped writer left half-written (`*.part`)."""
    staging = os.path.join(output_dir, STAGING)
    if os.path.isdir(staging):
        for name in os.listdir(staging):
            if name.endswith(".part"):
                shutil.rmtree(os.path.join(staging, name), ignore_errors=True)
    for table in schema.TABLES:
        directory = os.path.join(output_dir, table)
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name.endswith(".part"):
                    os.remove(os.path.join(directory, name))


def to_json_row(row: Row) -> dict:
    """Returns a row as BigQuery's JSON API takes it."""
    out = {}
    for k, v in as_dict(row).items():
        v = _py(v)
        if isinstance(v, datetime.datetime):
            v = v.isoformat()
        out[k] = v
    return out
