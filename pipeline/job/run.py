"""`formdigits run`: runner choice, the embedded server, progress and the summary.

Without `--serving`, the local server from `serving/` is started on a free
loopback port over `--models-dir` and stopped when the job ends. DirectRunner
uses every core (multi-processing); `--runner DataflowRunner` submits to
Google Cloud, and `--dry-run` translates the Dataflow job offline and writes
its description instead. A run's summary is its own Beam counters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob
import json
import logging
import os
import re
import sys
import shutil
import threading
import time
import uuid

import apache_beam as beam
import grpc
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions

from pipeline.job.beam_pipeline import SUMMARY_COUNTERS, build_pipeline
from pipeline.job.config import RunConfig
from pipeline.job.dataflow import job_description, pipeline_options
from pipeline.job.loopback import loopback_only
from pipeline.job.progress import ProgressPrinter, read_stop
from pipeline.job.streaming import watch_micro_batches
from pipeline.job.workers import WorkerDied, stop_on_dead_worker
from pipeline.output.store import Committer, RunLock, StoreBusy
from serving.client import ModelLoadFailed, PredictClient
from serving.server.config import ConfigError
from serving.server.engine import ServerProcess
from serving.server.models import versions_on_disk
from serving.signature import UnfitModel

__all__ = ["RunError", "ServingStopped", "ModelRefused", "EmbeddedServer", "check_served_model", "run_job",
           "WorkerLost", "counts_from_metrics", "new_run_id"]

REPO_SETUP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "setup.py"))


class RunError(RuntimeError):
    """The job cannot start; the message says what to do."""


class ServingStopped(RunError):
    """The job stopped because TF Serving could not be reached for longer than --serving-timeout."""

    def __init__(self, reason: str, output: str):
        super().__init__(f"stopped: {reason}. Check that TF Serving is running and reachable from here (or raise "
                         f"--serving-timeout); what was written to {output} is whole pages, and a run over the "
                         "same input again reads the rest")


class ModelRefused(RunError):
    """The served model does not answer [N, 10] digit probabilities, or is not served at all."""

    def __init__(self, reason: str):
        super().__init__(f"stopped: {reason.rstrip('.')}. Serve a digit classifier (serving_default: uint8 "
                         "[N, 28, 28, 1] in, [N, 10] probabilities out), or pin a good version with --model-version")


class WorkerLost(RunError):
    """A Beam worker process died mid-run; the whole pages staged before it were committed.

    The runner's threads still wait on the dead worker, so the caller should end the process
    (`os._exit`) once it has said so.
    """

    def __init__(self, reason: str, output: str):
        super().__init__(f"stopped: {reason}, killed from outside or out of memory. What was written to {output} "
                         "is whole pages, and a run over the same input again reads the rest")


class _QuietWorkers(logging.Filter):
    """Which of the workers' log records, re-logged by the DirectRunner's driver, reach the person running the job.

    Start-up chatter that looks like trouble and is not, and the traceback of a TF Serving outage (the job
    says that itself, in one line) stay out; everything else comes through.
    """

    NOISE = ("Resource module is not available", "No semi_persistent_directory", "Discarding unparseable args",
             "ServingUnreachable", "unreachable for", "UnfitModel", "KeyboardInterrupt")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(n in text for n in self.NOISE)


@contextlib.contextmanager
def _workers_write_to(path: str):
    """Worker processes inherit the driver's stderr (fd 2), where Beam prints each failed bundle's traceback.

    While they run, fd 2 is a pipe that a thread here copies into `path`; this process's own messages
    (sys.stderr) stay on the terminal. Not the file itself: on a full disk a worker's print of a failed
    bundle raises, the worker never answers the bundle, and Beam's driver waits for it for ever.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sys.stderr.flush()
    terminal, previous = os.dup(2), sys.stderr
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    copier = threading.Thread(target=_copy_lines, args=(read_end, path), name="worker-log", daemon=True)
    copier.start()
    sys.stderr = open(terminal, "w", buffering=1, closefd=False)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # the last write end here: the copier sees the end once the workers are gone
        os.close(terminal)
        sys.stderr = previous
        copier.join(timeout=5)


def _copy_lines(read_end: int, path: str) -> None:
    """Copies the workers' stderr into the run's log, dropping what a full disk will not take."""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            with contextlib.suppress(OSError):
                with open(path, "ab") as log:
                    log.write(chunk)


def _quiet_workers() -> None:
    # Worker records re-logged by the driver, and the in-process workers' own (streaming runs them in the driver).
    for name in ("apache_beam.runners.portability.local_job_service", "apache_beam.runners.common",
                 "apache_beam.runners.worker.sdk_worker"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietWorkers) for f in logger.filters):
            logger.addFilter(_QuietWorkers())


class EmbeddedServer:
    """The local server from `serving/` over `models_dir`, for the length of a job."""

    def __init__(self, models_dir: str, model: str):
        if not versions_on_disk(os.path.join(models_dir, model)):
            raise RunError(f"no {model} model under {models_dir}/; train one: "
                           f"formdigits train --arch {model if model in ('lenet5', 'vgg16') else 'lenet5'} "
                           f"--export-dir {models_dir}")
        self.model = model
        self.process = ServerProcess(models_dir)
        self.target = ""

    def __enter__(self) -> "EmbeddedServer":
        try:
            self.target = self.process.__enter__().target
        except ConfigError as exc:
            raise RunError(str(exc)) from None
        try:
            PredictClient(self.target, self.model).wait_until_available(120, give_up_on_failed_load=True)
        except ModelLoadFailed as exc:
            self.process.__exit__(None, None, None)
            raise ModelRefused(str(exc)) from None
        return self

    def __exit__(self, *exc) -> None:
        self.process.__exit__(*exc)


def check_served_model(cfg: RunConfig) -> None:
    """Checks, before the first page, that the model (version, label) is served and answers [N, 10] probabilities.

    A server that cannot be reached yet is left to the workers, which wait for it up to --serving-timeout.

    Raises:
        ModelRefused: the model is not served there, or is not a digit classifier.
    """
    serving = cfg.serving
    client = PredictClient(serving.target, serving.model, version=serving.model_version,
                           version_label=serving.model_label, ca_file=serving.ca_file, timeout_s=30.0)
    try:
        client.check_signature()
    except UnfitModel as exc:
        raise ModelRefused(str(exc)) from None
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise ModelRefused(f"TF Serving at {serving.target} does not serve model {serving.model}: "
                               f"{exc.details()}") \
                from None


def run_job(cfg: RunConfig, beam_args: list[str], *, runner: str = "DirectRunner", dry_run: bool = False,
            models_dir: str = "models", job_file: str | None = None, quiet: bool = False) -> dict:
    """Runs (or, with dry_run, translates) the pipeline. Returns the summary."""
    # Local streaming runs bounded micro-batches (see pipeline.job.streaming): small, in one process.
    local_streaming = runner == "DirectRunner" and cfg.input.streaming
    args = beam_args + ["--direct_running_mode=in_memory", "--direct_num_workers=1"] if local_streaming else beam_args
    options = pipeline_options(args, runner=runner,
                               streaming=cfg.input.unbounded and not local_streaming,
                               dry_run=dry_run, setup_file=REPO_SETUP if os.path.exists(REPO_SETUP) else None)
    if runner == "DataflowRunner":
        return _run_dataflow(cfg, options, dry_run, job_file)
    try:
        return _run_local(cfg, options, models_dir, quiet)
    except Exception as exc:
        if _disk_full(exc):
            raise RunError(f"no space left on the device holding {os.path.abspath(cfg.output.location)}: free some "
                           "and run "
                           "again (what was written is whole pages; the rest is read then)") from None
        raise


def _disk_full(exc: BaseException) -> bool:
    """A full disk, whichever library met it: OSError ENOSPC, or DuckDB's or Arrow's own words for it."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _run_dataflow(cfg: RunConfig, options, dry_run: bool, job_file: str | None) -> dict:
    if not cfg.serving.target:
        raise RunError("DataflowRunner needs --serving HOST:PORT (TF Serving reachable from the workers, "
                       "see infra/tfserving); the embedded server only serves local runs")
    p = beam.Pipeline(options=options)
    build_pipeline(p, cfg)
    result = p.run()
    description = job_description(result)
    if job_file:
        with open(job_file, "w") as fh:
            json.dump(description, fh, indent=1)
    if dry_run:
        return {"dry_run": True, "state": str(result.state), "job_file": job_file,
                "steps": len(description.get("job", {}).get("steps", [])),
                "transforms": len(description.get("pipeline", {}).get("components", {}).get("transforms", {}))}
    return {"job_id": result.job_id(), "state": str(result.state)}


def _run_local(cfg: RunConfig, options, models_dir: str, quiet: bool) -> dict:
    started = time.monotonic()
    _quiet_workers()
    cfg = cfg.local_progress()
    log = os.path.join(cfg.output.location, ".logs", f"{cfg.run_id}.log")
    counts = dict.fromkeys(SUMMARY_COUNTERS, 0)
    with contextlib.ExitStack() as stack:  # unwinds in reverse: log, progress, server, committer, lock
        try:
            stack.enter_context(RunLock(cfg.output.location))
        except StoreBusy as exc:
            raise RunError(str(exc)) from None
        stack.enter_context(Committer(cfg.output.location))
        if not cfg.serving.target:
            target = stack.enter_context(EmbeddedServer(models_dir, cfg.serving.model)).target
            cfg = dataclasses.replace(cfg, serving=dataclasses.replace(cfg.serving, target=target))
        check_served_model(cfg)
        stack.callback(shutil.rmtree, cfg.progress_dir, ignore_errors=True)
        if not quiet:
            stack.enter_context(ProgressPrinter(cfg.progress_dir, files_total=_files_total(cfg),
                                                heartbeat=60.0 if cfg.input.streaming else None))
        stack.enter_context(loopback_only())
        if options.view_as(DirectOptions).direct_running_mode == "multi_processing":
            stack.enter_context(_workers_write_to(log))
            stack.enter_context(stop_on_dead_worker())
        try:
            if cfg.input.streaming:
                watch_micro_batches(cfg, lambda batch: _run_bounded(batch, options), lambda c: _add(counts, c),
                                    fatal=(ServingStopped, ModelRefused))
            else:
                _add(counts, _run_bounded(cfg, options))
        except (RunError, KeyboardInterrupt):
            raise
        except WorkerDied as exc:
            raise WorkerLost(str(exc), cfg.output.location) from None
        except Exception as exc:  # a fault of the job itself, not of a file: the details go to the log
            with open(log, "a") as fh:
                fh.write(f"\n{exc}\n")
            raise RunError(f"failed: {_last_line(exc)} (details in {log})") from None
    wall = time.monotonic() - started
    return {"run_id": cfg.run_id, **counts, "wall_s": round(wall, 1),
            "pages_per_s": round(counts["pages"] / wall, 2) if wall else 0.0}


def _files_total(cfg: RunConfig) -> int | None:
    """How many files a local batch run will read (the total its progress line counts to); None otherwise."""
    if cfg.input.streaming or "://" in cfg.input.pattern:
        return None
    return sum(1 for path in glob.glob(cfg.input.pattern) if os.path.isfile(path))


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


def _add(counts: dict, more: dict) -> None:
    for name, n in more.items():
        counts[name] += n


def _run_bounded(cfg: RunConfig, options) -> dict:
    """One bounded run of the graph over `cfg.input.pattern`; its counts."""
    p = beam.Pipeline(options=options)
    build_pipeline(p, cfg)
    try:
        result = p.run()
        result.wait_until_finish()
    except Exception as exc:
        stop = read_stop(cfg.progress_dir) or _stop_in_text(str(exc))
        if stop and stop[0] == "UnfitModel":
            raise ModelRefused(stop[1]) from None
        if stop:
            raise ServingStopped(stop[1], cfg.output.location) from None
        raise
    return counts_from_metrics(result)


def _stop_in_text(text: str) -> tuple[str, str] | None:
    """(kind, message) of a stop named in a runner's error text: for runners whose workers share no folder
    with the driver (Dataflow), where `read_stop` finds nothing."""
    reason = re.search(r"(ServingUnreachable|UnfitModel): ([^\n]+)", text)
    return (reason.group(1), reason.group(2).strip()) if reason else None


def counts_from_metrics(result) -> dict:
    """Returns the run's SUMMARY_COUNTERS from its Beam metrics (committed where the runner keeps them)."""
    counts = dict.fromkeys(SUMMARY_COUNTERS, 0)
    for counter in result.metrics().query(MetricsFilter().with_namespace("formdigits"))["counters"]:
        name = counter.key.metric.name
        if name in counts:
            value = counter.committed if counter.committed is not None else counter.attempted
            counts[name] += int(value or 0)
    return counts


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
