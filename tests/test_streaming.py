"""Streaming locally (issue 16): files still being written, poison files, and Ctrl-C from a terminal."""

import pytest
import os
import shutil
import signal
import time

import psutil

from corpus.hostile import make_hostile_files
from support.beam import count, start

pytestmark = pytest.mark.slow  # streaming jobs in subprocesses


def _wait_for(predicate, timeout: float, what: str, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log else ""))


def _sources(out):
    if not (out / "results.duckdb").exists():
        return set()
    return {r[0] for r in count(out, "SELECT DISTINCT regexp_extract(source_uri, '[^/]+$') FROM fields")}


def _watch(scans, watched, out, log, *extra, **popen):
    return start(["run", "--input", str(watched / "*"), "--output", str(out), "--templates", str(scans / "templates"),
                  "--streaming", "--poll-seconds", "0.5", "--settle-seconds", "1.5", *extra], log, **popen)


def test_a_file_still_being_written_is_read_once_it_is_whole(scans, server, tmp_path):
    watched, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "run.log"
    watched.mkdir()
    job = _watch(scans, watched, out, log, "--serving", server.target, "--stop-after", "60")
    try:
        data = (scans / "scan_00001.png").read_bytes()
        with open(watched / "slow.png", "wb") as fh:  # a scanner writing a page over three seconds
            for k in range(4):
                fh.write(data[k * len(data) // 4:(k + 1) * len(data) // 4])
                fh.flush()
                time.sleep(1.0)
        _wait_for(lambda: "slow.png" in _sources(out), 60, "the slow file's rows", log)
        assert count(out, "SELECT count(*) FROM rejects") == [(0,)]
    finally:
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=60)


def test_a_poison_file_is_rejected_once_and_holds_back_nothing(scans, server, tmp_path):
    watched, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "run.log"
    watched.mkdir()
    make_hostile_files(str(tmp_path / "hostile"))
    job = _watch(scans, watched, out, log, "--serving", server.target, "--stop-after", "60")
    try:
        staging = tmp_path / "staging"
        staging.mkdir()
        shutil.copy(tmp_path / "hostile" / "cut-in-half.tif", staging / "poison.tif")
        shutil.copy(scans / "scan_00001.png", staging / "good1.png")
        shutil.copy(scans / "scan_00002.jpg", staging / "good2.jpg")
        for name in os.listdir(staging):  # the three arrive together: one micro-batch
            os.replace(staging / name, watched / name)
        _wait_for(lambda: {"good1.png", "good2.jpg"} <= _sources(out), 60, "the good files' rows", log)
        time.sleep(3)  # several more polls: the poison file must not be tried again
    finally:
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=60)
    batches = [line for line in log.read_text().splitlines() if "new file(s):" in line]
    assert len(batches) == 1 and batches[0].startswith("  3 new file(s): "), log.read_text()[-2000:]
    assert batches[0].endswith(", 3 rejects (the rejects table says why)")  # counted apart from what was written
    assert count(out, "SELECT page, stage FROM rejects WHERE source_uri LIKE '%poison.tif' ORDER BY page") == [
        (1, "segment"), (2, "read"), (3, "read")]


def _servers_of(models_dir):
    return [p for p in psutil.process_iter(["cmdline"]) if "serving.server" in " ".join(p.info["cmdline"] or [])
            and str(models_dir) in " ".join(p.info["cmdline"] or [])]


def test_ctrl_c_drains_the_batch_in_flight_then_stops_the_embedded_server(scans, models_dir, tmp_path):
    watched, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "run.log"
    watched.mkdir()
    job = _watch(scans, watched, out, log, "--models-dir", str(models_dir), start_new_session=True)
    _wait_for(lambda: "watching" in log.read_text(), 120, "the watch to start", log)
    for name in ("scan_00001.png", "scan_00002.jpg", "scan_00003.tif"):
        shutil.copy(scans / name, watched / name)
    _wait_for(lambda: os.path.isdir(out / ".progress"), 30, "a batch to start", log)
    os.killpg(job.pid, signal.SIGINT)  # what a terminal sends: the whole foreground process group
    assert job.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert {"scan_00001.png", "scan_00002.jpg", "scan_00003.tif"} <= _sources(out)
    assert "stopping after the batch in flight" in log.read_text()
    assert not _servers_of(models_dir)


def test_a_second_ctrl_c_stops_at_once_leaving_nothing_half_written(scans, models_dir, tmp_path):
    watched, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "run.log"
    watched.mkdir()
    job = _watch(scans, watched, out, log, "--models-dir", str(models_dir), start_new_session=True)
    _wait_for(lambda: "watching" in log.read_text(), 120, "the watch to start", log)
    for name in sorted(os.listdir(scans)):
        if name.startswith("scan_"):
            shutil.copy(scans / name, watched / name)
    _wait_for(lambda: os.path.isdir(out / ".progress"), 30, "a batch to start", log)
    os.killpg(job.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(job.pid, signal.SIGINT)
    started = time.monotonic()
    assert job.wait(timeout=60) == 130, log.read_text()[-3000:]
    assert time.monotonic() - started < 20
    staging = out / ".staging"
    assert not staging.exists() or not [n for n in os.listdir(staging) if n.endswith(".part")]
    if (out / "results.duckdb").exists():
        assert count(out, "SELECT count(*) FROM fields f WHERE digit_count <> (SELECT count(*) FROM digits d "
                          "WHERE d.source_uri = f.source_uri AND d.page = f.page AND d.field = f.field)") == [(0,)]
    assert not _servers_of(models_dir)
