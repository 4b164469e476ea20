"""`formdigits run`: runner choice, the embedded server, progress and the summary.

Without `--serving`, the local server from `serving/` is started on a free
loopback port over `--models-dir` and stopped when the job ends. DirectRunner
uses every core (multi-processing); `--runner DataflowRunner` submits to
Google Cloud, and `--dry-run` translates the Dataflow job offline and writes
its description instead. A run's summary is its own Beam counters.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter

from pipeline.beam_pipeline import SUMMARY_COUNTERS, RunConfig, build_pipeline
from pipeline.dataflow import job_description, pipeline_options
from pipeline.progress import ProgressPrinter
from pipeline.streaming import watch_micro_batches
from pipeline.store import Committer, RunLock, StoreBusy, commit_staged
from serving.client import PredictClient
from serving.server.config import ConfigError
from serving.server.engine import ServerProcess
from serving.server.models import versions_on_disk

__all__ = ["RunError", "EmbeddedServer", "run_job", "counts_from_metrics", "new_run_id"]

REPO_SETUP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


class RunError(RuntimeError):
    """The job cannot start; the message says what to do."""


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
        PredictClient(self.target, self.model).wait_until_available(120)
        return self

    def __exit__(self, *exc) -> None:
        self.process.__exit__(*exc)


def run_job(cfg: RunConfig, beam_args: list[str], *, runner: str = "DirectRunner", dry_run: bool = False,
            models_dir: str = "models", job_file: str | None = None, quiet: bool = False) -> dict:
    """Runs (or, with dry_run, translates) the pipeline. Returns the summary."""
    # Local streaming runs bounded micro-batches (see pipeline.streaming): small, in one process.
    local_streaming = runner == "DirectRunner" and cfg.streaming
    args = beam_args + ["--direct_running_mode=in_memory", "--direct_num_workers=1"] if local_streaming else beam_args
    options = pipeline_options(args, runner=runner,
                               streaming=(cfg.streaming or bool(cfg.input_subscription)) and not local_streaming,
                               dry_run=dry_run, setup_file=REPO_SETUP if os.path.exists(REPO_SETUP) else None)
    if runner == "DataflowRunner":
        return _run_dataflow(cfg, options, dry_run, job_file)
    return _run_local(cfg, options, models_dir, quiet)


def _run_dataflow(cfg: RunConfig, options, dry_run: bool, job_file: str | None) -> dict:
    if not cfg.serving:
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
    try:
        lock = RunLock(cfg.output).__enter__()
    except StoreBusy as exc:
        raise RunError(str(exc)) from None
    cfg.progress_dir = os.path.join(cfg.output, ".progress", cfg.run_id)
    printer = None if quiet else ProgressPrinter(cfg.progress_dir)
    counts = dict.fromkeys(SUMMARY_COUNTERS, 0)
    commit_staged(cfg.output)  # what a run that was killed left staged: whole pages, worth keeping
    committer = Committer(cfg.output)
    server = None
    try:
        if not cfg.serving:
            server = EmbeddedServer(models_dir, cfg.model).__enter__()
            cfg.serving = server.target
        committer.start()
        if printer:
            printer.start()
        if cfg.streaming:
            watch_micro_batches(cfg, lambda batch: _run_bounded(batch, options), lambda c: _add(counts, c))
        else:
            _add(counts, _run_bounded(cfg, options))
    finally:
        if printer:
            printer.stop.set()
        if server:
            server.__exit__(None, None, None)
        shutil.rmtree(cfg.progress_dir, ignore_errors=True)  # the workers' page counters served their purpose
        committer.close()
        lock.__exit__(None, None, None)
    wall = time.monotonic() - started
    return {"run_id": cfg.run_id, **counts, "wall_s": round(wall, 1),
            "pages_per_s": round(counts["pages"] / wall, 2) if wall else 0.0}


def _add(counts: dict, more: dict) -> None:
    for name, n in more.items():
        counts[name] += n


def _run_bounded(cfg: RunConfig, options) -> dict:
    """One bounded run of the graph over `cfg.input`; its counts."""
    p = beam.Pipeline(options=options)
    build_pipeline(p, cfg)
    result = p.run()
    result.wait_until_finish()
    return counts_from_metrics(result)


def counts_from_metrics(result) -> dict:
    """The run's SUMMARY_COUNTERS from its Beam metrics (committed where the runner keeps them)."""
    counts = dict.fromkeys(SUMMARY_COUNTERS, 0)
    for counter in result.metrics().query(MetricsFilter().with_namespace("formdigits"))["counters"]:
        name = counter.key.metric.name
        if name in counts:
            value = counter.committed if counter.committed is not None else counter.attempted
            counts[name] += int(value or 0)
    return counts


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
