"""The pipeline against a bare loop, and its memory.

- Pipeline: `formdigits run` (a real subprocess, DirectRunner) on a synthetic
  corpus, against a bare Python loop doing only decode + segment + normalise
  over the same pages with the same number of processes.
- Memory: peak RSS of the whole `formdigits run` process tree, sampled with
  psutil, at N pages and at 10 N pages (the same scans copied ten times).

Both `formdigits run` invocations talk to one server started by the suite, as
production jobs talk to an always-on TF Serving; the server's start-up is not
part of a job.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import threading
import time

import cv2
import psutil

from bench.corpora import registered_pages, replicate
from pipeline.job.beam_pipeline import one_thread_per_process
from pipeline.segmentation.segment import cut_fields

__all__ = ["bare_loop", "run_pipeline", "bench_pipeline"]


def _children_cpu_s() -> float:
    """CPU seconds used so far by this process's finished children (and theirs, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _bare_file(args) -> int:
    """decode + register + cut + normalise one file; returns its page count."""
    path, templates = args
    pages = 0
    for _, upright, registration in registered_pages(path, templates):
        pages += 1
        if registration:
            cut_fields(upright, registration)  # normalises each digit too
    return pages


@contextlib.contextmanager
def process_pool(workers: int):
    """`workers` forked processes, set up as a run's workers are (`one_thread_per_process`).

    Forked, they inherit the imported modules, as a warm loop would. OpenCV's thread count is set
    in this process before the fork and put back after: set in a forked child, whose parent's
    threads did not come with it, it waits for them for ever.
    """
    threads = cv2.getNumThreads()
    one_thread_per_process()
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield pool
    finally:
        cv2.setNumThreads(threads)


def bare_loop(files: list[str], templates: list, workers: int) -> dict:
    """Pages/s of decode + segment + normalise in `workers` processes, nothing else."""
    _bare_file((files[0], templates))  # imports and first-call costs, outside the clock
    started, cpu = time.perf_counter(), _children_cpu_s()
    with process_pool(workers) as pool:
        pages = sum(pool.imap_unordered(_bare_file, [(f, templates) for f in files], chunksize=1))
    wall, cpu = time.perf_counter() - started, _children_cpu_s() - cpu
    return {"pages": pages, "wall_s": round(wall, 2), "pages_per_s": round(pages / wall, 2),
            "cpu_ms_per_page": round(cpu * 1000 / pages, 1)}


class _TreeRss(threading.Thread):
    """Samples the summed RSS of a process and its descendants; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            total = 0
            try:
                for proc in [self.root] + self.root.children(recursive=True):
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            self.peak = max(self.peak, total)
            self.done.wait(self.interval)


def run_pipeline(input_glob: str, templates_dir: str, output: str, serving: str, workers: int,
                 pages: int, log=print) -> dict:
    """Runs `formdigits run` as a user would and times it; peak RSS of its process tree."""
    shutil.rmtree(output, ignore_errors=True)
    cmd = [sys.executable, "-m", "formdigits", "run", "--input", input_glob, "--templates", templates_dir,
           "--output", output, "--serving", serving, f"--direct_num_workers={workers}"]
    started, cpu = time.perf_counter(), _children_cpu_s()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = _TreeRss(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    wall, cpu = time.perf_counter() - started, _children_cpu_s() - cpu  # the run, its driver and workers
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"formdigits run failed ({proc.returncode}):\n{out[-3000:]}")
    summary = next((line for line in out.splitlines() if line.startswith("run ")), "")
    log(f"    {summary}")
    return {"pages": pages, "workers": workers, "wall_s": round(wall, 2), "pages_per_s": round(pages / wall, 2),
            "cpu_ms_per_page": round(cpu * 1000 / pages, 1), "peak_rss_mb": round(sampler.peak / 2**20, 1)}


def _process_cpu_s(pid: int | None) -> float:
    """CPU seconds used so far by a running process (0 without one)."""
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def bench_pipeline(corpus: str, files: list[str], templates: list, work_dir: str, serving: str, workers: int,
                   log=print, server_pid: int | None = None) -> dict:
    """Bare loop; `formdigits run` with 1 and `workers` workers over the corpus, and over it ten times.

    CPU per page is kept beside each speed: on one machine the model server (`server_pid`) shares the
    cores with the run's workers, and the bare loop does none of its work.
    """
    log(f"bare loop (decode + segment + normalise), {workers} processes")
    bare = bare_loop(files, templates, workers)
    pages = bare["pages"]
    log(f"    {bare['pages_per_s']} pages/s")
    templates_dir = os.path.join(corpus, "templates")
    runs = {}
    for n in sorted({1, workers}, reverse=True):
        log(f"formdigits run, {n} worker(s), {pages} pages")
        runs[n] = run_pipeline(os.path.join(corpus, "scan_*"), templates_dir, os.path.join(work_dir, f"out-{n}"),
                               serving, n, pages, log)
    big = replicate(corpus, 10, corpus.rstrip("/") + "-x10")
    log(f"formdigits run, {workers} worker(s), {pages * 10} pages (the corpus ten times)")
    server_cpu = _process_cpu_s(server_pid)
    large = run_pipeline(os.path.join(big, "scan_*"), templates_dir, os.path.join(work_dir, "out-x10"),
                         serving, workers, pages * 10, log)
    server_cpu = _process_cpu_s(server_pid) - server_cpu
    ours = runs[workers]
    return {
        "pages": pages,
        "workers": workers,
        "bare_loop": bare,
        "pipeline": {str(n): r for n, r in runs.items()},
        "pipeline_10x": large,
        # The bulk run (10 N pages) is the headline: a job's fixed start-up (Python, Beam, workers:
        # ~5-7 s here) is amortised there as in real bulk jobs. The N-page figure is kept beside it.
        "pipeline_vs_bare_ratio": round(large["pages_per_s"] / bare["pages_per_s"], 3),
        "pipeline_vs_bare_ratio_at_n": round(ours["pages_per_s"] / bare["pages_per_s"], 3),
        "worker_scaling": round(ours["pages_per_s"] / runs[1]["pages_per_s"], 3),
        "rss_mb": {str(pages): ours["peak_rss_mb"], str(pages * 10): large["peak_rss_mb"]},
        "rss_growth_ratio": round(large["peak_rss_mb"] / ours["peak_rss_mb"], 3),
        "cpu_ms_per_page": {"bare_loop": bare["cpu_ms_per_page"], "run_10x": large["cpu_ms_per_page"],
                            "model_server_10x": round(server_cpu * 1000 / (pages * 10), 1)},
    }
