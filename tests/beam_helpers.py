"""Running `formdigits` the way a user does, and reading what it wrote, for the pipeline's tests."""

import subprocess
import sys

import duckdb

from formdigits.cli import main


def run(*args, expect=0):
    """`formdigits run ARGS` in this process; asserts its exit status."""
    rc = main(["run", *args])
    assert rc == expect
    return rc


def count(db_dir, sql):
    """Rows of `sql` over DIR/results.duckdb, opened read-only."""
    con = duckdb.connect(str(db_dir / "results.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def one_line(args):
    """`formdigits ARGS` in a subprocess: (exit status, the stderr lines it printed as formdigits)."""
    res = subprocess.run([sys.executable, "-m", "formdigits", *args], capture_output=True, text=True, timeout=120)
    lines = [line for line in res.stderr.splitlines() if line.startswith("formdigits")]
    return res.returncode, lines
