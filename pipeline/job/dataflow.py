"""Runner options, and the translated Dataflow job as JSON (what `--dry-run` writes).

`DataflowRunner` with `--dry_run=True --no_auth` translates the whole job
offline; its result carries the Dataflow Job message and the Beam pipeline
proto, which `job_description` serialises.
"""

from __future__ import annotations

import json
import os

from apache_beam.options.pipeline_options import PipelineOptions
from google.protobuf.json_format import MessageToDict

__all__ = ["pipeline_options", "job_description"]


def pipeline_options(beam_args: list[str], *, runner: str, streaming: bool, dry_run: bool,
                     setup_file: str | None) -> PipelineOptions:
    """Returns Beam PipelineOptions: DirectRunner on every core, or DataflowRunner (optionally a dry run)."""
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
    return PipelineOptions(args, runner=runner, streaming=streaming, save_main_session=False)


def job_description(result) -> dict:
    """Returns the translated Dataflow job and Beam pipeline, as JSON."""
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
        from apitools.base.py import encoding  # the older apitools-based client, where installed

        return json.loads(encoding.MessageToJson(message))
    except Exception:  # noqa: BLE001
        return MessageToDict(message)
