"""Faults a run meets (issue 28): seconds to the one clear line, and the peak memory on the way.

Each case breaks a real thing: a Beam worker killed mid-run, the driver killed under its embedded
model server, a query past its memory or time bound, a model name nobody serves, four oversized
requests at once to the model server. Every process runs as a user runs it (`python -m formdigits`,
`python -m serving.server`); memory is the peak resident set of the process tree, sampled every 50 ms.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import subprocess
import sys
import time

import grpc
import numpy as np
import psutil

from serving.server.engine import ServerProcess

__all__ = ["bench_faults"]

_SAMPLE_S = 0.05


def _tree_mb(root: psutil.Process) -> float:
    total = 0
    for process in [root, *_children(root)]:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total / 2**20


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


def _formdigits(args: list[str], log_path: str) -> subprocess.Popen:
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, "-m", "formdigits", *args], stdout=log, stderr=subprocess.STDOUT,
                            text=True)


def _wait_measuring(job: subprocess.Popen, timeout_s: float, peak_mb: float = 0.0) -> tuple[int | None, float]:
    """Waits for `job` to end (at most timeout_s); its exit status (None: still running) and peak tree MB."""
    root = psutil.Process(job.pid)
    deadline = time.monotonic() + timeout_s
    while job.poll() is None and time.monotonic() < deadline:
        peak_mb = max(peak_mb, _tree_mb(root))
        time.sleep(_SAMPLE_S)
    return job.poll(), peak_mb


def _said(log_path: str) -> str:
    with open(log_path) as fh:
        lines = [line.strip() for line in fh if line.startswith("formdigits")]
    return lines[-1] if lines else "(nothing said)"


def _find(job: subprocess.Popen, marker: str, timeout_s: float) -> psutil.Process | None:
    """The first process under `job` whose command line holds `marker` (not a `sh -c` wrapper)."""
    deadline = time.monotonic() + timeout_s
    while job.poll() is None and time.monotonic() < deadline:
        for child in _children(psutil.Process(job.pid)):
            with contextlib.suppress(psutil.Error):
                cmdline = child.cmdline()
                if cmdline and cmdline[0] != "/bin/sh" and any(marker in part for part in cmdline):
                    return child
        time.sleep(_SAMPLE_S)
    return None


def _case(seconds: float | None, peak_mb: float, exit_status, said: str) -> dict:
    return {"seconds": None if seconds is None else round(seconds, 2), "peak_mb": round(peak_mb, 1),
            "exit": exit_status, "said": said[:300]}


def _worker_killed(run_args: list[str], work_dir: str) -> dict:
    log_path = os.path.join(work_dir, "worker_killed.log")
    job = _formdigits(run_args + ["--output", os.path.join(work_dir, "worker_killed"), "--direct_num_workers=2"],
                      log_path)
    worker = _find(job, "sdk_worker_main", 120)
    if worker is None:
        job.kill()
        return _case(None, 0.0, job.wait(), "no Beam worker seen before the run ended")
    time.sleep(1.0)  # mid-run, bundles in flight
    with contextlib.suppress(psutil.Error):
        worker.kill()
    killed = time.monotonic()
    status, peak = _wait_measuring(job, 120)
    if status is None:
        job.kill()
    return _case(time.monotonic() - killed if status is not None else None, peak, status, _said(log_path))


def _driver_killed(run_args: list[str], work_dir: str) -> dict:
    """kill -9 of the driver: seconds until the embedded model server it started is gone too."""
    log_path = os.path.join(work_dir, "driver_killed.log")
    job = _formdigits(run_args + ["--output", os.path.join(work_dir, "driver_killed"),
                                  "--direct_running_mode=in_memory"], log_path)
    server = _find(job, "serving.server", 120)
    if server is None:
        job.kill()
        return _case(None, 0.0, job.wait(), "no embedded server seen")
    peak = _tree_mb(psutil.Process(job.pid))
    job.kill()
    killed = time.monotonic()
    job.wait()
    gone, alive = psutil.wait_procs([server], timeout=60)
    for process in alive:
        process.kill()
    return _case(time.monotonic() - killed if gone else None, peak, job.returncode,
                 "embedded server gone" if gone else "embedded server still running after 60 s")


def _timed_command(args: list[str], log_path: str, timeout_s: float = 180) -> dict:
    """A formdigits command that should end in one line: seconds to it, peak memory, what it said."""
    started = time.monotonic()
    job = _formdigits(args, log_path)
    status, peak = _wait_measuring(job, timeout_s)
    if status is None:
        job.kill()
        job.wait()
    return _case(time.monotonic() - started if status is not None else None, peak, status, _said(log_path))


def _oversized_requests(models_dir: str, mb: int = 200, at_once: int = 4) -> dict:
    """Four requests of `mb` MB at once to the local server: seconds until all are refused, server peak."""
    from serving.client import PredictClient

    images = np.zeros((mb * 2**20 // 784, 28, 28, 1), np.uint8)
    with ServerProcess(models_dir) as server:
        process = psutil.Process(server.proc.pid)
        client = PredictClient(server.target, "lenet5", timeout_s=120)
        client.wait_until_available()
        before = peak = _tree_mb(process)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(at_once) as pool:
            calls = [pool.submit(client.predict, images) for _ in range(at_once)]
            while not all(call.done() for call in calls):
                peak = max(peak, _tree_mb(process))
                time.sleep(_SAMPLE_S)
        seconds = time.monotonic() - started
        codes = {call.exception().code().name if isinstance(call.exception(), grpc.RpcError) else "OK"
                 for call in calls}
        details = next((call.exception().details() for call in calls if call.exception() is not None), "")
    return {**_case(seconds, peak, sorted(codes), details), "server_mb_before": round(before, 1),
            "request_mb": mb, "at_once": at_once}


def bench_faults(corpus_dir: str, models_dir: str, work_dir: str, log=print) -> dict:
    """Every fault case over the scans in `corpus_dir` (a corpus with templates/); a dict per case."""
    os.makedirs(work_dir, exist_ok=True)
    run_args = ["run", "--input", os.path.join(corpus_dir, "scan_*"), "--templates",
                os.path.join(corpus_dir, "templates"), "--models-dir", models_dir]
    results_dir = os.path.join(work_dir, "results")
    cases = {
        "beam_worker_killed": lambda: _worker_killed(run_args, work_dir),
        "driver_killed": lambda: _driver_killed(run_args, work_dir),
        "model_not_served": lambda: _timed_command(run_args + ["--output", os.path.join(work_dir, "unserved"),
                                                               "--model", "lenet6"],
                                                   os.path.join(work_dir, "unserved.log")),
        "query_over_memory": lambda: _timed_command(
            ["query", "--db", results_dir, "--memory-limit", "256MB", "SELECT list(range) FROM range(200000000)"],
            os.path.join(work_dir, "query_memory.log")),
        "query_over_time": lambda: _timed_command(
            ["query", "--db", results_dir, "--timeout", "2", "SELECT count(*) FROM range(100000) a, range(100000) b "
                                                             "WHERE (a.range * b.range) % 7 = 3"],
            os.path.join(work_dir, "query_time.log")),
        "oversized_requests": lambda: _oversized_requests(models_dir),
    }
    subprocess.run([sys.executable, "-m", "formdigits", *run_args, "--output", results_dir,
                    "--direct_running_mode=in_memory"], check=True, capture_output=True)
    out = {}
    for name, case in cases.items():
        out[name] = case()
        seconds = "never" if out[name]["seconds"] is None else f"{out[name]['seconds']:6.2f} s"
        log(f"  {name:20s} {seconds:>8s} to the line, {out[name]['peak_mb']:6.0f} MB peak  {out[name]['said'][:90]}")
    timed = [case["seconds"] for case in out.values()]
    return {"cases": out, "faults_max_seconds": None if None in timed else max(timed),
            "faults_all_ended": None not in timed}
