"""`formdigits query`: read-only SQL over a results directory, in three formats."""

import json
import subprocess
import sys

import pytest

from support.beam import one_line


def test_query_is_read_only_and_formats(batch_output):
    rc, lines = one_line(["query", "--db", str(batch_output), "DROP TABLE fields"])
    assert rc == 2 and "read-only" in lines[0]
    res = subprocess.run([sys.executable, "-m", "formdigits", "query", "--db", str(batch_output), "--format", "json",
                          "SELECT field, value FROM fields ORDER BY source_uri, page, field LIMIT 3"],
                         capture_output=True, text=True, timeout=60)
    rows = json.loads(res.stdout)
    assert len(rows) == 3 and set(rows[0]) == {"field", "value"}
    res = subprocess.run([sys.executable, "-m", "formdigits", "query", "--db", str(batch_output),
                          "SELECT count(*) AS n FROM digits"], capture_output=True, text=True, timeout=60)
    assert res.stdout.splitlines()[0].strip() == "n" and res.stdout.strip().endswith("(1 row)")


@pytest.mark.parametrize("sql", [
    "COPY fields TO 'x.csv'",
    "COPY (SELECT 'garbage') TO '{db}/results.duckdb'",
    "EXPORT DATABASE '{db}/export'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM glob('/root/*')",
    "SELECT * FROM read_parquet('{db}/fields/*.parquet')",
    "INSTALL httpfs",
    "LOAD httpfs",
    "ATTACH '{db}/other.duckdb' AS other",
    "SET enable_external_access = true",
    "DELETE FROM fields",
    "DROP TABLE fields",
    "INSERT INTO rejects SELECT * FROM rejects",
    "SELECT 1; DROP TABLE fields",
])
def test_anything_beyond_reading_is_refused_in_one_line(batch_output, sql):
    before = (batch_output / "results.duckdb").read_bytes()
    rc, lines = one_line(["query", "--db", str(batch_output), sql.format(db=batch_output)])
    assert rc == 2 and len(lines) == 1 and "read-only" in lines[0], lines
    assert (batch_output / "results.duckdb").read_bytes() == before
    assert not (batch_output / "export").exists() and not (batch_output / "other.duckdb").exists()


def test_a_query_is_bounded_in_time_and_memory_each_with_one_line(batch_output):
    import time

    from pipeline.output.query import QueryError, run_query

    started = time.monotonic()
    with pytest.raises(QueryError, match=r"stopped after 1 s \(--timeout\)"):
        run_query(str(batch_output), "SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b",
                  timeout_s=1.0)
    assert time.monotonic() - started < 10
    with pytest.raises(QueryError, match=r"more than 64MB of memory \(--memory-limit\)"):
        run_query(str(batch_output), "SELECT list(range) FROM range(100000000)", memory_limit="64MB")
    rc, lines = one_line(["query", "--db", str(batch_output), "--timeout", "0", "SELECT 1"])
    assert rc == 2 and "--timeout must be more than 0" in lines[0]


def test_duckdbs_hint_is_kept(batch_output):
    rc, lines = one_line(["query", "--db", str(batch_output), "SELECT * FROM fieldz"])
    assert rc == 2 and len(lines) == 1 and "fieldz" in lines[0] and 'Did you mean "fields' in lines[0], lines
