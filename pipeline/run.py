"""`formdigits run`: runner choice, the embedded server, progress and the summary.

Without `--serving`, the local server from `serving/` is started on a free
loopback port over `--models-dir` and stopped when the job ends. DirectRunner
uses every core (multi-processing); `--runner DataflowRunner` submits to
Google Cloud, and `--dry-run` translates the Dataflow job offline and writes
its description instead.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import uuid

__all__ = ["RunError", "EmbeddedServer", "pipeline_options", "run_job", "summarise"]


class RunError(RuntimeError):
    """The job cannot start; the message says what to do."""


class EmbeddedServer:
    """The local server from `serving/` over `models_dir`, for the length of a job."""

    def __init__(self, models_dir: str, model: str):
        from serving.server.engine import ServerProcess
        from serving.server.models import versions_on_disk

        if not versions_on_disk(os.path.join(models_dir, model)):
            raise RunError(f"no {model} model under {models_dir}/; train one: "
                           f"formdigits train --arch {model if model in ('lenet5', 'vgg16') else 'lenet5'} "
                           f"--export-dir {models_dir}")
        self.model = model
        self.process = ServerProcess(models_dir)
        self.target = ""

    def __enter__(self) -> "EmbeddedServer":
        from serving.client import PredictClient
        from serving.server.config import ConfigError

        try:
            self.target = self.process.__enter__().target
        except ConfigError as exc:
            raise RunError(str(exc)) from None
        PredictClient(self.target, self.model).wait_until_available(120)
        return self

    def __exit__(self, *exc) -> None:
        self.process.__exit__(*exc)


def pipeline_options(beam_args: list[str], *, runner: str, streaming: bool, dry_run: bool, setup_file: str | None):
    """Beam PipelineOptions: DirectRunner on every core, or DataflowRunner (optionally a dry run)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(beam_args)
    if runner == "DirectRunner" and not streaming:
        # Every core. (Streaming stays single-worker: with several workers the streaming
        # DirectRunner ends an unbounded job at once.)
        if not any(a.startswith("--direct_num_workers") for a in args):
            args.append(f"--direct_num_workers={os.cpu_count() or 1}")
        if not any(a.startswith("--direct_running_mode") for a in args):
            args.append("--direct_running_mode=multi_processing")
    elif runner == "DataflowRunner":
        if dry_run:
            args += ["--dry_run=True", "--no_auth"]
            if not any(a.startswith("--sdk_location") for a in args):
                args.append("--sdk_location=container")
        if setup_file and not any(a.startswith("--setup_file") for a in args):
            args.append(f"--setup_file={setup_file}")
    options = PipelineOptions(args, runner=runner, streaming=streaming, save_main_session=False)
    return options


class _ProgressPrinter(threading.Thread):
    """Sums the workers' page counts every few seconds: pages done and pages/s."""

    def __init__(self, directory: str, interval: float = 5.0):
        super().__init__(daemon=True)
        self.directory, self.interval = directory, interval
        self.stop = threading.Event()
        self.started = time.monotonic()

    def pages(self) -> int:
        total = 0
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 0
        for name in names:
            if name.endswith(".json"):
                try:
                    with open(os.path.join(self.directory, name)) as fh:
                        total += json.load(fh)["pages"]
                except (OSError, ValueError, KeyError):
                    pass
        return total

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            pages = self.pages()
            elapsed = time.monotonic() - self.started
            print(f"  {pages} pages read, {pages / elapsed:.1f} pages/s, {elapsed:.0f}s", file=sys.stderr, flush=True)


def summarise(output_dir: str, run_id: str, started_at, wall_s: float) -> dict:
    """Counts of what this run wrote, from the results database."""
    import duckdb

    from pipeline.write import DB_NAME

    path = os.path.join(output_dir, DB_NAME)
    if not os.path.exists(path):
        return {"run_id": run_id, "pages": 0, "fields": 0, "digits": 0, "needs_review": 0, "rejects": 0,
                "wall_s": round(wall_s, 1), "pages_per_s": 0.0}
    con = duckdb.connect(path, read_only=True)
    try:
        pages, fields, review = con.execute(
            "SELECT count(DISTINCT (source_uri, page)), count(*), count(*) FILTER (WHERE needs_review) "
            "FROM fields WHERE run_id = ?", [run_id]).fetchone()
        digits = con.execute(
            "SELECT count(*) FROM digits d JOIN fields f USING (source_uri, page, field) WHERE f.run_id = ?",
            [run_id]).fetchone()[0]
        rejects = con.execute("SELECT count(*) FROM rejects WHERE processed_at >= ?", [started_at]).fetchone()[0]
    finally:
        con.close()
    return {"run_id": run_id, "pages": pages, "fields": fields, "digits": digits, "needs_review": review,
            "rejects": rejects, "wall_s": round(wall_s, 1), "pages_per_s": round(pages / wall_s, 2) if wall_s else 0}


def run_job(cfg, beam_args: list[str], *, runner: str = "DirectRunner", dry_run: bool = False,
            models_dir: str = "models", job_file: str | None = None, quiet: bool = False) -> dict:
    """Runs (or, with dry_run, translates) the pipeline. Returns the summary."""
    import datetime

    import apache_beam as beam

    from pipeline.beam_pipeline import build_pipeline

    repo_setup = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
    # Local streaming runs bounded micro-batches (see _watch_micro_batches): small, in one process.
    local_streaming = runner == "DirectRunner" and cfg.streaming
    args = beam_args + ["--direct_running_mode=in_memory", "--direct_num_workers=1"] if local_streaming else beam_args
    options = pipeline_options(args, runner=runner,
                               streaming=(cfg.streaming or bool(cfg.input_subscription)) and not local_streaming,
                               dry_run=dry_run, setup_file=repo_setup if os.path.exists(repo_setup) else None)
    if runner == "DataflowRunner":
        if not cfg.serving:
            raise RunError("DataflowRunner needs --serving HOST:PORT (TF Serving reachable from the workers, "
                           "see infra/tfserving); the embedded server only serves local runs")
        p = beam.Pipeline(options=options)
        build_pipeline(p, cfg)
        result = p.run()
        description = _job_description(result)
        if job_file:
            with open(job_file, "w") as fh:
                json.dump(description, fh, indent=1)
        if dry_run:
            return {"dry_run": True, "state": str(result.state), "job_file": job_file,
                    "steps": len(description.get("job", {}).get("steps", [])),
                    "transforms": len(description.get("pipeline", {}).get("components", {}).get("transforms", {}))}
        return {"job_id": result.job_id(), "state": str(result.state)}

    started = time.monotonic()
    started_at = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    os.makedirs(cfg.output, exist_ok=True)
    cfg.progress_dir = os.path.join(cfg.output, ".progress", cfg.run_id)
    printer = None if quiet else _ProgressPrinter(cfg.progress_dir)
    server = None
    try:
        if not cfg.serving:
            server = EmbeddedServer(models_dir, cfg.model).__enter__()
            cfg.serving = server.target
        if printer:
            printer.start()
        if local_streaming:
            _watch_micro_batches(cfg, options)
        else:
            p = beam.Pipeline(options=options)
            build_pipeline(p, cfg)
            p.run().wait_until_finish()
    finally:
        if printer:
            printer.stop.set()
        if server:
            server.__exit__(None, None, None)
        shutil.rmtree(cfg.progress_dir, ignore_errors=True)  # the workers' page counters served their purpose
    return summarise(cfg.output, cfg.run_id, started_at, time.monotonic() - started)


def _watch_micro_batches(cfg, options) -> None:
    """Local streaming: new files under the pattern are processed in micro-batches until stopped.

    The streaming DirectRunner here never fires windows or processing-time
    triggers, so locally the driver watches the pattern itself and sends each
    set of new, fully written files through the same Beam graph as a bounded
    run. Rows therefore land (and are queryable) a few seconds after a file
    arrives. Ctrl-C or SIGTERM stops watching; a micro-batch already running is
    finished first, so nothing is left half-written. Dataflow uses the true
    streaming graph (Pub/Sub notifications, windows).
    """
    import dataclasses
    import signal

    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems

    from pipeline.beam_pipeline import build_pipeline

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    seen: dict[str, int] = {}
    deadline = time.monotonic() + cfg.stop_after if cfg.stop_after else None
    print(f"formdigits run: watching {cfg.input} every {cfg.poll_seconds:g}s (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                matches = FileSystems.match([cfg.input])[0].metadata_list
            except Exception:  # noqa: BLE001 - nothing there yet
                matches = []
            now_us = time.time() * 1e6
            new = [m.path for m in matches
                   if seen.get(m.path) != m.last_updated_in_seconds
                   and now_us - m.last_updated_in_seconds * 1e6 > 1e6]  # still being copied? next poll
            if new:
                batch_cfg = dataclasses.replace(cfg, input=sorted(new), streaming=False)
                p = beam.Pipeline(options=options)
                build_pipeline(p, batch_cfg)
                try:
                    p.run().wait_until_finish()
                except Exception as exc:  # noqa: BLE001 - keep watching; these files are tried again
                    print(f"formdigits run: a batch of {len(new)} file(s) failed, retrying next poll: "
                          f"{str(exc).splitlines()[-1][:300]}", file=sys.stderr, flush=True)
                else:
                    for m in matches:
                        if m.path in new:
                            seen[m.path] = m.last_updated_in_seconds
                    print(f"  {len(new)} new file(s) written", file=sys.stderr, flush=True)
            stop.wait(cfg.poll_seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _remove_partial_shards(cfg.output)


def _remove_partial_shards(output_dir: str) -> None:
    for table in ("fields", "digits", "rejects"):
        directory = os.path.join(output_dir, table)
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name.endswith(".part"):
                    os.remove(os.path.join(directory, name))


def _job_description(result) -> dict:
    """The translated Dataflow job and Beam pipeline, as JSON."""
    from google.protobuf.json_format import MessageToDict

    job = getattr(result, "job", None)
    out = {}
    if job is not None:
        proto = getattr(job, "proto", None)
        if proto is not None:
            out["job"] = _to_dict(proto)
        pipeline_proto = getattr(job, "proto_pipeline", None)
        if pipeline_proto is not None:
            out["pipeline"] = MessageToDict(pipeline_proto)
    return out


def _to_dict(message) -> dict:
    """JSON of the Dataflow Job, whichever message library the client uses."""
    kind = type(message)
    if hasattr(kind, "to_json"):  # proto-plus (google-cloud-dataflow-client)
        return json.loads(kind.to_json(message))
    try:
        from apitools.base.py import encoding  # older apitools-based client

        return json.loads(encoding.MessageToJson(message))
    except Exception:  # noqa: BLE001
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(message)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
