"""The local results store: `DIR/results.duckdb`, its Parquet snapshot, and who may touch them when.

Workers only stage batches (`pipeline.output.write`). One committer, in the job's
driver, merges them into the database; a page is the unit of work, so a page's
new rows replace all of its old ones (a shorter re-read leaves no digits
behind, a page read fine clears its earlier rejects) and the tables keep one
row per key without any index. The Parquet files beside the database
(`DIR/<table>/<table>.parquet`) are rewritten from it at the end of a run.

Locks (`flock` on files in DIR): `.write.lock`, exclusive while the database
changes and shared while a reader copies it; `.run.lock`, held by a run for
its whole length, so a second run into the same directory refuses at start.
Readers query a copy taken under the shared lock: a long query never holds
the database, so it never stalls a run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
import time

import duckdb

from pipeline import schema
from pipeline.output.write import remove_partial_files, staged_batches

__all__ = ["DB_NAME", "StoreBusy", "commit_staged", "export_parquet", "snapshot", "RunLock", "Committer",
           "ensure_tables", "locked_reader", "locked_writer"]

DB_NAME = "results.duckdb"
WRITE_LOCK = ".write.lock"
RUN_LOCK = ".run.lock"


class StoreBusy(RuntimeError):
    """Another run holds the output directory."""


@contextlib.contextmanager
def _locked(output_dir: str, shared: bool = False):
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, WRITE_LOCK), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_tables(con) -> None:
    """Returns the run's tables, the reviewers' corrections and the final-value view, created where missing."""
    for table in (*schema.TABLES, *schema.REVIEW_TABLES):
        con.execute(schema.duckdb_ddl(table))
    con.execute(schema.FIELDS_REVIEWED)


# DuckDB writes its file's header (three 4 kB blocks) when it creates it: a shorter file never held a row.
_DUCKDB_HEADER_BYTES = 3 * 4096


def _never_written(path: str) -> bool:
    """A database file cut short at its creation (a disk that filled just then): nothing in it to lose."""
    try:
        return os.path.getsize(path) < _DUCKDB_HEADER_BYTES
    except OSError:
        return False


def _remove_stillborn(path: str) -> None:
    for stale in (path, path + ".wal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)


def _connect(path: str, wait_s: float):
    """A writing connection; while another program holds the file (the duckdb shell, say), waits up to `wait_s`."""
    deadline = time.monotonic() + wait_s
    delay, removed = 0.05, False
    while True:
        try:
            con = duckdb.connect(path)
            break
        except duckdb.IOException as exc:
            if _never_written(path) and not removed:  # "not a valid DuckDB database", "could not read enough"
                _remove_stillborn(path)
                removed = True
                continue
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    # The committer shares the machine with the job's workers: a small, bounded share of it.
    con.execute("SET threads = 2")
    con.execute("SET memory_limit = '256MB'")
    return con


_REPLACE_PAGES = """
    CREATE OR REPLACE TEMP TABLE read_pages AS SELECT DISTINCT source_uri, page FROM new_fields;
    CREATE OR REPLACE TEMP TABLE touched_pages AS
        SELECT source_uri, page FROM read_pages
        UNION SELECT DISTINCT source_uri, page FROM new_rejects WHERE page IS NOT NULL;
    CREATE OR REPLACE TEMP TABLE touched_files AS
        SELECT source_uri FROM new_fields UNION SELECT source_uri FROM new_rejects;
    DELETE FROM digits t USING read_pages p WHERE t.source_uri = p.source_uri AND t.page = p.page;
    DELETE FROM fields t USING read_pages p WHERE t.source_uri = p.source_uri AND t.page = p.page;
    DELETE FROM crops t USING read_pages p WHERE t.source_uri = p.source_uri AND t.page = p.page;
    DELETE FROM rejects t USING touched_pages p WHERE t.source_uri = p.source_uri AND t.page = p.page;
    DELETE FROM rejects t USING touched_files f WHERE t.source_uri = f.source_uri AND t.page IS NULL;
"""


def _merge_batch(con, batch: str) -> None:
    """One staged batch into the tables: its pages' old rows out, its rows in."""
    for table in schema.TABLES:
        path = os.path.join(batch, f"{table}.parquet")
        # The path is a bound parameter, never SQL: an output folder may be named anything.
        if os.path.exists(path):
            con.execute(f"CREATE OR REPLACE TEMP TABLE new_{table} AS SELECT * FROM read_parquet(?)", [path])
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE new_{table} AS SELECT * FROM {table} LIMIT 0")
    con.execute(_REPLACE_PAGES)
    for table in schema.TABLES:
        cols = ", ".join(schema.column_names(table))
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM new_{table}")


def commit_staged(output_dir: str, wait_s: float = 120.0) -> int:
    """Merges every staged batch into the database in one transaction; returns how many were merged.

    Raises duckdb.IOException when another program holds the database file for
    longer than `wait_s`; the batches stay staged for the next commit.
    """
    batches = staged_batches(output_dir)
    if not batches:
        return 0
    with locked_writer(output_dir, wait_s, ensure=False) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            ensure_tables(con)
            for batch in batches:  # in the order they were written: a later read of a page wins
                _merge_batch(con, batch)
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # the failure (a full disk, say) already ended the transaction: its own error is the one to tell
            raise
    for batch in batches:
        shutil.rmtree(batch, ignore_errors=True)
    return len(batches)


def export_parquet(output_dir: str) -> None:
    """Rewrites `DIR/<table>/<table>.parquet` from the database: one row per key, like the tables."""
    path = os.path.join(output_dir, DB_NAME)
    if not os.path.exists(path):
        return
    with _locked(output_dir):
        con = _connect(path, wait_s=120.0)
        try:
            for table in (*schema.TABLES, *schema.REVIEW_TABLES):
                directory = os.path.join(output_dir, table)
                os.makedirs(directory, exist_ok=True)
                final = os.path.join(directory, f"{table}.parquet")
                con.sql(f"SELECT * FROM {table} ORDER BY ALL").write_parquet(final + ".part")  # no path in SQL
                os.replace(final + ".part", final)
                for name in os.listdir(directory):  # shards of older versions of this layout
                    if name.endswith(".parquet") and name != f"{table}.parquet":
                        os.remove(os.path.join(directory, name))
        finally:
            con.close()


@contextlib.contextmanager
def locked_reader(output_dir: str):
    """Returns a read-only connection to the database, held between two commits; keep it short (a commit waits).

    For small, fast reads (the review queue's next item); long queries use `snapshot`.
    """
    with _locked(output_dir, shared=True):
        con = duckdb.connect(os.path.join(output_dir, DB_NAME), read_only=True)
        try:
            yield con
        finally:
            con.close()


@contextlib.contextmanager
def locked_writer(output_dir: str, wait_s: float = 30.0, ensure: bool = True):
    """Returns a writing connection between two commits, for the caller's transaction (staged batches, a review action).

    Takes the same lock as the committer, so a run writing at the same time waits for it, and it for a run.
    `ensure=False` skips creating missing tables, for callers that did so once before.
    """
    with _locked(output_dir):
        con = _connect(os.path.join(output_dir, DB_NAME), wait_s)
        try:
            if ensure:
                ensure_tables(con)
            yield con
            con.execute("CHECKPOINT")  # readers copy the file alone, no write-ahead log beside it
        finally:
            con.close()


@contextlib.contextmanager
def snapshot(output_dir: str):
    """Yields the path of a private copy of the database, taken between two commits (None: no database)."""
    path = os.path.join(output_dir, DB_NAME)
    if not os.path.exists(path):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="formdigits-snapshot-") as tmp:
        copy = os.path.join(tmp, DB_NAME)
        with _locked(output_dir, shared=True):
            shutil.copyfile(path, copy)
            if os.path.exists(path + ".wal"):  # what a commit cut short by a full disk left in the log
                shutil.copyfile(path + ".wal", copy + ".wal")
        yield copy


class RunLock:
    """Held by a run for its whole length: one run writes to an output directory at a time."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, RUN_LOCK)
        self.fh = None

    def __enter__(self) -> "RunLock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StoreBusy(f"another formdigits run ({holder}) is writing to {os.path.dirname(self.path)}; "
                            "wait for it to finish or give this run another --output") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        self.fh = fh
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


class Committer(threading.Thread):
    """Merges staged batches every `interval` seconds while a run goes on; `close()` merges the rest.

    As a context manager: merges what an earlier, killed run left staged (whole pages), starts, and closes.
    """

    def __init__(self, output_dir: str, interval: float = 2.0):
        super().__init__(daemon=True, name="committer")
        self.output_dir, self.interval = output_dir, interval
        self.stopping = threading.Event()

    def __enter__(self) -> "Committer":
        commit_staged(self.output_dir)
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                commit_staged(self.output_dir, wait_s=self.interval)
            except (duckdb.Error, OSError):
                # The file held elsewhere, or the disk full: the batches wait, staged, for the next round,
                # and close() says what still fails then.
                pass

    def close(self, export: bool = True) -> None:
        """Stops the thread, merges what is staged, rewrites the Parquet files."""
        self.stopping.set()
        if self.is_alive():
            self.join()
        remove_partial_files(self.output_dir)
        commit_staged(self.output_dir)
        if export:
            export_parquet(self.output_dir)
