"""`formdigits run` and `formdigits query`: the Beam job and the tables it writes."""

from __future__ import annotations

import json
import os
import re
import sys

from formdigits.args import positive_int, share
from formdigits.commands.common import models_dir, report_template_problems
from pipeline.defaults import (DEFAULT_KEEP_CROPS, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_PAGE_PIXELS,
                               DEFAULT_REVIEW_THRESHOLD, DEFAULT_SERVING_TIMEOUT_S, KEEP_CROPS_CHOICES)

__all__ = ["add_parsers"]

GCS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")


def add_parsers(sub) -> None:
    _add_run(sub)
    _add_query(sub)


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="the Beam job: scans -> digits -> results tables",
                       description="Read scans, segment digit fields, classify the digits through TF Serving "
                                   "and write fields/digits/rejects tables. Unknown flags go to Beam.")
    p.add_argument("--input", required=True, metavar="GLOB", help="files to read: local glob or gs://bucket/path/*")
    p.add_argument("--output", required=True, metavar="DIR_OR_BQ",
                   help="a directory (DuckDB + Parquet) or bq:PROJECT:DATASET")
    p.add_argument("--serving", metavar="HOST:PORT", help="TF Serving endpoint (default: start the local server)")
    p.add_argument("--model", default="lenet5")
    version = p.add_mutually_exclusive_group()
    version.add_argument("--model-version", type=positive_int, help="pin a model version")
    version.add_argument("--model-label", help="a version label from models.config, e.g. stable")
    p.add_argument("--models-dir", help="models for the embedded server (default: ./models, else the shipped one)")
    p.add_argument("--templates", metavar="DIR", help="form templates (e.g. CORPUS/templates); without them, "
                                                      "lines of digits are found on each page")
    p.add_argument("--review-threshold", type=share, default=DEFAULT_REVIEW_THRESHOLD,
                   help="flag fields whose weakest digit is below this probability "
                        f"(default: {DEFAULT_REVIEW_THRESHOLD})")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_MAX_BATCH_SIZE,
                   help=f"crops per request to the server: its max_batch_size (default: {DEFAULT_MAX_BATCH_SIZE}, "
                        "serving/batching.config)")
    p.add_argument("--serving-ca", metavar="PEM", help="CA certificate(s) to trust when --serving serves TLS")
    p.add_argument("--serving-timeout", type=float, default=DEFAULT_SERVING_TIMEOUT_S, metavar="SECONDS",
                   help="how long to wait, retrying, while TF Serving cannot be reached; then the run stops "
                        f"(default: {DEFAULT_SERVING_TIMEOUT_S:g})")
    p.add_argument("--max-page-pixels", type=positive_int, default=DEFAULT_MAX_PAGE_PIXELS, metavar="N",
                   help="pages larger than this are refused from their header, before decoding "
                        f"(default: {DEFAULT_MAX_PAGE_PIXELS}; A3 at 600 dpi is 70000000)")
    p.add_argument("--keep-crops", choices=KEEP_CROPS_CHOICES, default=DEFAULT_KEEP_CROPS,
                   help="keep a picture of these fields (a field picture) for review, in the crops table "
                        "(default: flagged)")
    p.add_argument("--crops-location", metavar="GS_PATH",
                   help="BigQuery output: where field pictures go as PNG objects (default: the --temp-location "
                        "bucket's formdigits-crops/)")
    p.add_argument("--streaming", action="store_true", help="keep watching --input for new files")
    p.add_argument("--poll-seconds", type=float, default=2.0, help="streaming: how often to look for new files")
    p.add_argument("--settle-seconds", type=float, default=2.0,
                   help="streaming: read a file once its size and time have not changed for this long (default: 2)")
    p.add_argument("--window-seconds", type=float, default=5.0, help="streaming: how often results are written")
    p.add_argument("--stop-after", type=float, metavar="SECONDS", help="streaming: stop watching after this long")
    p.add_argument("--input-subscription", metavar="SUB",
                   help="Dataflow streaming: Pub/Sub subscription of GCS notifications for new scans")
    p.add_argument("--runner", choices=("DirectRunner", "DataflowRunner"), default="DirectRunner")
    p.add_argument("--dry-run", action="store_true",
                   help="translate the Dataflow job offline and write its description (implies DataflowRunner)")
    p.add_argument("--job-file", default="dataflow-job.json", help="where --dry-run writes the job description")
    p.add_argument("--project", help="Google Cloud project (DataflowRunner)")
    p.add_argument("--region", help="Dataflow region, e.g. europe-west1")
    p.add_argument("--temp-location", help="gs:// path for Dataflow's temporary files")
    p.set_defaults(func=_run_run)


def _check_run_flags(args, parser, beam_args: list[str]) -> tuple[str, list[str]]:
    """Fails fast on flags that cannot work; returns (runner, Beam's flags)."""
    import glob

    runner = "DataflowRunner" if args.dry_run else args.runner
    if args.output.startswith("bq:") and len(args.output[3:].split(":")) != 2:
        parser.error(f"--output {args.output!r}: BigQuery output is bq:PROJECT:DATASET")
    if "://" not in args.output and os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(f"--output {args.output!r} is a file; give a folder (it is made if missing)")
    if runner == "DataflowRunner":
        missing = [f for f in ("project", "region", "temp_location") if not getattr(args, f)]
        if missing:
            parser.error(f"DataflowRunner needs --{missing[0].replace('_', '-')}")
        if not args.temp_location.startswith("gs://"):
            parser.error("--temp-location must be a gs:// path")
        bucket = args.temp_location[5:].split("/")[0]
        if not GCS_BUCKET.fullmatch(bucket):
            # Beam would set it aside and look up a default bucket over the network, for minutes when offline.
            parser.error(f"--temp-location {args.temp_location!r}: {bucket!r} is not a Cloud Storage bucket name "
                         "(3-63 lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or "
                         "digit)")
        if not args.serving:
            parser.error("DataflowRunner needs --serving HOST:PORT (TF Serving reachable from the workers)")
        beam_args = beam_args + [f"--project={args.project}", f"--region={args.region}",
                                 f"--temp_location={args.temp_location}"]
    elif not args.input.startswith("gs://") and not args.streaming and not glob.glob(args.input):
        parser.error(f"--input {args.input!r} matches no files")
    _crops_location(args, parser)  # fails fast here, in the flags' order
    if args.templates:
        if "://" not in args.templates and not os.path.isdir(args.templates):
            parser.error(f"--templates {args.templates!r} is not a directory")
        problems = report_template_problems(args.templates, "run")
        if problems:
            parser.exit(2, f"formdigits run: {problems} template problem{'s' if problems > 1 else ''}; "
                           f"fix them and check with: formdigits template lint {args.templates}\n")
    if args.serving_ca and not os.path.isfile(args.serving_ca):
        parser.error(f"--serving-ca {args.serving_ca!r} does not exist")
    return runner, beam_args


def _crops_location(args, parser) -> str | None:
    """Returns where BigQuery output keeps the field pictures: --crops-location, else a folder in
    --temp-location's bucket; with neither, the one-line error that says what to give."""
    if args.crops_location or not args.output.startswith("bq:") or args.keep_crops == "none":
        return args.crops_location
    if not (args.temp_location or "").startswith("gs://"):
        parser.error("BigQuery output keeps crops as objects: give --crops-location gs://BUCKET/PATH "
                     "(or --temp-location gs://..., or --keep-crops none)")
    return "gs://" + args.temp_location[5:].split("/")[0] + "/formdigits-crops"


def _run_run(args, parser, beam_args) -> int:
    runner, beam_args = _check_run_flags(args, parser, beam_args)
    from pipeline.job.config import InputConfig, OutputConfig, ReadingConfig, RunConfig, ServingConfig
    from pipeline.job.run import RunError, ServingStopped, WorkerLost, new_run_id, run_job
    from pipeline.reading.read import input_root

    cfg = RunConfig(
        input=InputConfig(args.input, root=input_root(args.input), max_page_pixels=args.max_page_pixels,
                          streaming=args.streaming, subscription=args.input_subscription,
                          poll_seconds=args.poll_seconds, settle_seconds=args.settle_seconds,
                          stop_after=args.stop_after, window_seconds=args.window_seconds),
        output=OutputConfig(args.output, keep_crops=args.keep_crops, crops_location=_crops_location(args, parser)),
        run_id=new_run_id(),
        serving=ServingConfig(args.serving or "", args.model, model_version=args.model_version,
                              model_label=args.model_label, max_batch_size=args.batch_size,
                              timeout_s=args.serving_timeout, ca_file=args.serving_ca),
        reading=ReadingConfig(args.templates, review_threshold=args.review_threshold))
    try:
        summary = run_job(cfg, beam_args, runner=runner, dry_run=args.dry_run,
                          models_dir=models_dir(args.models_dir),
                          job_file=args.job_file)
    except ServingStopped as exc:
        print(f"formdigits run: {exc}", file=sys.stderr)
        return 3
    except WorkerLost as exc:
        print(f"formdigits run: {exc}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(2)  # Beam's runner threads still wait on the dead worker: nothing left to join
    except KeyboardInterrupt:
        print("formdigits run: stopped at once (second Ctrl-C); whole pages staged so far were written",
              file=sys.stderr)
        return 130
    except RunError as exc:
        print(f"formdigits run: {exc}", file=sys.stderr)
        return 2
    _print_summary(summary, args.output)
    return 0


def _print_summary(summary: dict, output: str) -> None:
    if summary.get("dry_run"):
        print(f"Dataflow dry run: {summary['state']}, {summary['transforms']} transforms, "
              f"{summary['steps']} job steps -> {summary['job_file']}")
    elif "pages" in summary:
        print(f"run {summary['run_id']}: {summary['pages']} pages, {summary['fields']} fields, "
              f"{summary['digits']} digits, {summary['needs_review']} need review, {summary['rejects']} rejects; "
              f"{summary['wall_s']}s ({summary['pages_per_s']} pages/s) -> {output}")
    else:
        print(json.dumps(summary))


def _add_query(sub) -> None:
    p = sub.add_parser("query", help="read-only SQL over the results tables",
                       description="Run SQL on DIR/results.duckdb (tables fields, digits, rejects), read-only.")
    p.add_argument("--db", required=True, metavar="DIR", help="the --output DIR of formdigits run")
    p.add_argument("sql", help='e.g. "SELECT field, value, confidence FROM fields WHERE needs_review"')
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--memory-limit", metavar="SIZE", help="memory the query may use, e.g. 2GB (default: a quarter "
                                                          "of this machine's memory)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="interrupt the query after this long (default: 60)")
    p.set_defaults(func=_run_query)


def _run_query(args, parser) -> int:
    from pipeline.output.query import QueryError, format_rows, run_query

    if args.timeout <= 0:
        parser.error("--timeout must be more than 0 seconds")
    try:
        names, rows = run_query(args.db, args.sql, memory_limit=args.memory_limit, timeout_s=args.timeout)
    except QueryError as exc:
        print(f"formdigits query: {exc}", file=sys.stderr)
        return 2
    if names:
        print(format_rows(names, rows, args.format))
    return 0
