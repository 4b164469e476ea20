"""Running `formdigits` the way a user does, and reading what it wrote, for the pipeline's tests."""

import subprocess
import sys

import duckdb

from formdigits.cli import main
from pipeline.output.store import snapshot


def run(*args, expect=0):
    """`formdigits run ARGS` in this process; asserts its exit status."""
    rc = main(["run", *args])
    assert rc == expect
    return rc


def count(db_dir, sql):
    """Rows of `sql` over a snapshot of DIR/results.duckdb, as `formdigits query` reads it (a run may be writing)."""
    with snapshot(str(db_dir)) as copy:
        assert copy is not None, f"no results.duckdb in {db_dir}"
        con = duckdb.connect(copy, read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def one_line(args):
    """`formdigits ARGS` in a subprocess: (exit status, the stderr lines it printed as formdigits)."""
    res = subprocess.run([sys.executable, "-m", "formdigits", *args], capture_output=True, text=True, timeout=120)
    lines = [line for line in res.stderr.splitlines() if line.startswith("formdigits")]
    return res.returncode, lines


def start(args, log_path, **popen):
    """`formdigits ARGS` started in a subprocess, its output to `log_path`; returns the Popen."""
    log = open(log_path, "w")  # a file, not a pipe nobody reads: a full pipe would block the job
    return subprocess.Popen([sys.executable, "-m", "formdigits", *args], stdout=log, stderr=subprocess.STDOUT,
                            text=True, **popen)


def rows(db_dir):
    """Every field and digit row of a results directory, without run ids and times: for comparing runs."""
    fields = count(db_dir, "SELECT regexp_extract(source_uri, '[^/]+$'), page, field, value, round(confidence, 5), "
                           "needs_review, review_reason FROM fields ORDER BY ALL")
    digits = count(db_dir, "SELECT regexp_extract(source_uri, '[^/]+$'), page, field, position, digit, "
                           "round(confidence, 5) FROM digits ORDER BY ALL")
    return fields, digits
