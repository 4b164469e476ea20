"""TF Serving going away, readers during a run, two runs at once (issue 16): nothing lost, nothing hangs.

These break things on purpose against the real local server and a real DuckDB file.
"""

import contextlib
import json
import shutil
import socket
import time

import psutil
import pytest

from serving.server.engine import ServerProcess
from support.beam import count, one_line, rows, run, start

pytestmark = pytest.mark.slow  # model servers killed and restarted under running jobs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def clean(scans, server, tmp_path_factory):
    """Rows of an undisturbed run over the scans."""
    out = tmp_path_factory.mktemp("clean")
    run("--input", str(scans / "scan_*"), "--templates", str(scans / "templates"), "--output", str(out),
        "--serving", server.target, "--direct_running_mode=in_memory")
    return rows(out)


@pytest.fixture(scope="module")
def many(scans, server, tmp_path_factory):
    """The scans eight times over (48 pages, long enough to lose the server under), and an undisturbed
    run's rows of them."""
    folder = tmp_path_factory.mktemp("many")
    for copy in range(8):
        for scan in scans.glob("scan_*"):
            shutil.copy(scan, folder / f"c{copy}_{scan.name}")  # copies: links out of the folder are refused
    out = tmp_path_factory.mktemp("many-clean")
    run("--input", str(folder / "*"), "--templates", str(scans / "templates"), "--output", str(out),
        "--serving", server.target)
    return folder, rows(out)


def _pages_read(out) -> int:
    total = 0
    for record in out.glob(".progress/*/*.json"):
        with contextlib.suppress(OSError, ValueError):
            total += json.loads(record.read_text()).get("pages", 0)
    return total


def test_a_server_killed_and_restarted_mid_run_loses_and_duplicates_nothing(scans, many, models_dir, tmp_path):
    folder, clean = many
    port = _free_port()
    first = ServerProcess(str(models_dir), port=port).__enter__()
    job = start(["run", "--input", str(folder / "*"), "--templates", str(scans / "templates"),
                 "--output", str(tmp_path / "out"), "--serving", f"127.0.0.1:{port}"], tmp_path / "run.log")
    deadline = time.monotonic() + 120
    while _pages_read(tmp_path / "out") < 6 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
    assert job.poll() is None and _pages_read(tmp_path / "out") < 48  # pages still pending when the server goes
    first.proc.kill()
    first.proc.wait()
    time.sleep(8)
    assert job.poll() is None, (tmp_path / "run.log").read_text()[-3000:]  # waiting, not done without it
    with ServerProcess(str(models_dir), port=port):
        assert job.wait(timeout=240) == 0, (tmp_path / "run.log").read_text()[-2000:]
    log = (tmp_path / "run.log").read_text()
    assert "unreachable for" in log and "retrying" in log, log[-2000:]  # the outage was seen and waited out
    assert rows(tmp_path / "out") == clean
    assert count(tmp_path / "out", "SELECT count(*) FROM rejects") == [(0,)]


def test_a_server_gone_for_good_stops_the_run_with_one_line_and_a_rerun_completes(
        scans, server, clean, tmp_path):
    out = tmp_path / "out"
    started = time.monotonic()
    rc, lines = one_line(["run", "--input", str(scans / "scan_*"), "--templates", str(scans / "templates"),
                          "--output", str(out), "--serving", f"127.0.0.1:{_free_port()}", "--serving-timeout", "5"])
    assert rc == 3 and time.monotonic() - started < 5 + 30
    stopped = [line for line in lines if "stopped" in line]
    assert len(stopped) == 1 and "unreachable for" in stopped[0] and "--serving-timeout" in stopped[0]
    if (out / "results.duckdb").exists():  # whatever was written is whole pages: no field without its digits
        assert count(out, "SELECT count(*) FROM fields f WHERE digit_count <> (SELECT count(*) FROM digits d "
                          "WHERE d.source_uri = f.source_uri AND d.page = f.page AND d.field = f.field)") == [(0,)]
    run("--input", str(scans / "scan_*"), "--templates", str(scans / "templates"), "--output", str(out),
        "--serving", server.target, "--direct_running_mode=in_memory")
    assert rows(out) == clean
    assert count(out, "SELECT count(*) FROM rejects") == [(0,)]


def test_queries_during_a_run_never_break_it(scans, server, clean, tmp_path):
    out = tmp_path / "out"
    job = start(["run", "--input", str(scans / "scan_*"), "--templates", str(scans / "templates"),
                 "--output", str(out), "--serving", server.target], tmp_path / "run.log")
    answered = 0
    while job.poll() is None:
        if (out / "results.duckdb").exists():
            rc, _ = one_line(["query", "--db", str(out), "SELECT count(*) FROM fields, range(300000)"])
            answered += rc == 0
        time.sleep(0.2)
    assert job.returncode == 0, (tmp_path / "run.log").read_text()[-2000:]
    assert answered >= 1
    assert rows(out) == clean


def test_a_second_run_into_the_same_output_refuses_at_start(scans, server, tmp_path):
    out = tmp_path / "out"
    first = start(["run", "--input", str(scans / "scan_*"), "--templates", str(scans / "templates"),
                   "--output", str(out), "--serving", server.target], tmp_path / "first.log")
    deadline = time.monotonic() + 60
    while not (out / ".run.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    rc, lines = one_line(["run", "--input", str(scans / "scan_00001*"), "--templates", str(scans / "templates"),
                          "--output", str(out), "--serving", server.target])
    assert rc == 2 and len(lines) == 1 and "another formdigits run" in lines[0] and "--output" in lines[0]
    assert first.wait(timeout=240) == 0
    (pages,), = count(out, "SELECT count(DISTINCT (source_uri, page)) FROM fields")
    assert pages == 6  # the first run's summary and rows are its own


def _beam_workers_of(job) -> list:
    """The job's Beam SDK worker processes, their `sh -c` wrappers left out (an OOM kill hits the Python)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline and cmdline[0] != "/bin/sh" and any("sdk_worker_main" in part for part in cmdline):
            with contextlib.suppress(psutil.Error):
                if process.environ().get("FORMDIGITS_DRIVER_PID") == str(job.pid):
                    found.append(process)
    return found


def test_a_beam_worker_killed_mid_run_stops_it_in_one_line_and_a_rerun_completes(scans, server, clean, tmp_path):
    out = tmp_path / "out"
    job = start(["run", "--input", str(scans / "scan_*"), "--templates", str(scans / "templates"),
                 "--output", str(out), "--serving", server.target, "--direct_num_workers=2"], tmp_path / "run.log")
    deadline = time.monotonic() + 120
    while not (workers := _beam_workers_of(job)) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers, "no Beam worker started: " + (tmp_path / "run.log").read_text()[-2000:]
    workers[0].kill()
    killed = time.monotonic()
    assert job.wait(timeout=60) == 2, (tmp_path / "run.log").read_text()[-2000:]
    assert time.monotonic() - killed < 30
    said = [line for line in (tmp_path / "run.log").read_text().splitlines() if line.startswith("formdigits")]
    assert len(said) == 1 and "a Beam worker process died" in said[0], said
    assert not _beam_workers_of(job), "the run left Beam workers behind"
    run("--input", str(scans / "scan_*"), "--templates", str(scans / "templates"), "--output", str(out),
        "--serving", server.target, "--direct_running_mode=in_memory")
    assert rows(out) == clean
