"""The local results store: the committer's page-by-page merge, Parquet beside it, locks, snapshots for readers."""

import os
import subprocess
import sys
import time

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline.output.store import Committer, RunLock, StoreBusy, commit_staged, export_parquet, snapshot
from pipeline.output.write import stage_rows
from support.beam import count
from support.rows import field_rows, reject_row


def _stage(tmp_path, run_id="r1", fields=(), rejects=()):
    tables = {"fields": [], "digits": [], "rejects": list(rejects)}
    for field, digits in fields:
        tables["fields"].append(field)
        tables["digits"].extend(digits)
    return stage_rows(str(tmp_path), tables, run_id)


def test_a_shorter_reread_leaves_no_digits_behind(tmp_path):
    _stage(tmp_path, "r1", [field_rows("40719")])
    _stage(tmp_path, "r2", [field_rows("407", run_id="r2")])
    assert commit_staged(str(tmp_path)) == 2
    assert count(tmp_path, "SELECT value, digit_count, run_id FROM fields") == [("407", 3, "r2")]
    assert count(tmp_path, "SELECT position, digit FROM digits ORDER BY position") == [(0, 4), (1, 0), (2, 7)]
    assert not os.listdir(tmp_path / ".staging")


def test_a_page_read_fine_clears_its_earlier_rejects(tmp_path):
    _stage(tmp_path, "r1", rejects=[reject_row("file:///s.png", None, message="truncated"),
                                    reject_row("file:///s.png", 1, stage="infer", message="UNAVAILABLE")])
    commit_staged(str(tmp_path))
    _stage(tmp_path, "r2", [field_rows("12", run_id="r2")])
    commit_staged(str(tmp_path))
    assert count(tmp_path, "SELECT count(*) FROM rejects") == [(0,)]
    assert count(tmp_path, "SELECT value FROM fields") == [("12",)]


def test_a_page_that_fails_later_keeps_its_rows_and_gets_its_reject(tmp_path):
    _stage(tmp_path, "r1", [field_rows("12")])
    _stage(tmp_path, "r2", rejects=[reject_row("file:///s.png", 1, stage="infer", message="UNAVAILABLE")])
    _stage(tmp_path, "r3", rejects=[reject_row("file:///s.png", 1, stage="infer", message="UNAVAILABLE")])
    commit_staged(str(tmp_path))
    assert count(tmp_path, "SELECT value FROM fields") == [("12",)]
    assert count(tmp_path, "SELECT stage, message FROM rejects") == [("infer", "UNAVAILABLE")]


def test_parquet_beside_the_database_has_one_row_per_key_after_reruns(tmp_path):
    for run in ("r1", "r2"):
        _stage(tmp_path, run, [field_rows("40719", run_id=run), field_rows("88", run_id=run, field="total")])
        commit_staged(str(tmp_path))
        export_parquet(str(tmp_path))
    assert os.listdir(tmp_path / "fields") == ["fields.parquet"]
    assert pq.read_table(tmp_path / "fields" / "fields.parquet").num_rows == 2
    assert pq.read_table(tmp_path / "digits" / "digits.parquet").num_rows == 7


def test_a_second_run_into_the_same_output_refuses(tmp_path):
    with RunLock(str(tmp_path)):
        with pytest.raises(StoreBusy, match=f"pid {os.getpid()}.*another --output"):
            RunLock(str(tmp_path)).__enter__()
    with RunLock(str(tmp_path)):  # free again once the first is done
        pass


def test_a_snapshot_is_a_private_copy_a_commit_does_not_touch(tmp_path):
    _stage(tmp_path, "r1", [field_rows("12")])
    commit_staged(str(tmp_path))
    with snapshot(str(tmp_path)) as copy:
        _stage(tmp_path, "r2", [field_rows("34", run_id="r2")])
        assert commit_staged(str(tmp_path)) == 1  # a reader with its copy open does not hold the writer
        con = duckdb.connect(copy, read_only=True)
        assert con.execute("SELECT value FROM fields").fetchall() == [("12",)]
        con.close()
    assert count(tmp_path, "SELECT value FROM fields") == [("34",)]


def test_the_committer_waits_while_another_program_holds_the_database(tmp_path):
    _stage(tmp_path, "r1", [field_rows("12")])
    commit_staged(str(tmp_path))
    holder = subprocess.Popen(  # the duckdb shell, say, with the file open
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print('open', flush=True); time.sleep(1.5); c.close()", str(tmp_path / "results.duckdb")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    _stage(tmp_path, "r2", [field_rows("34", run_id="r2")])
    started = time.monotonic()
    assert commit_staged(str(tmp_path)) == 1
    assert time.monotonic() - started >= 0.5 and holder.wait(timeout=10) == 0
    assert count(tmp_path, "SELECT value FROM fields") == [("34",)]


def test_the_committer_merges_while_a_run_goes_on_and_the_rest_at_close(tmp_path):
    committer = Committer(str(tmp_path), interval=0.1)
    committer.start()
    _stage(tmp_path, "r1", [field_rows("12")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (tmp_path / "results.duckdb").exists():
        time.sleep(0.05)
    assert count(tmp_path, "SELECT value FROM fields") == [("12",)]
    _stage(tmp_path, "r1", [field_rows("34", page=2)])
    committer.close()
    assert not committer.is_alive()
    assert count(tmp_path, "SELECT page, value FROM fields ORDER BY page") == [(1, "12"), (2, "34")]
    assert (tmp_path / "fields" / "fields.parquet").exists()
