"""The `formdigits` command: one entry point, one subcommand per job.

Arguments are checked before anything heavy (TensorFlow, Beam) is imported, so a
wrong flag fails in well under a second with one line saying what to do.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main", "build_parser"]


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as a single line."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model, evaluate it on held-out data, export the next version",
                       description="Train LeNet-5 or VGG16 on synthetic handwriting or a local MNIST file, "
                                   "evaluate on held-out data, and export the next SavedModel version.")
    p.add_argument("--arch", choices=("lenet5", "vgg16"), default="lenet5")
    p.add_argument("--data", choices=("synthetic", "mnist"), default="synthetic")
    p.add_argument("--mnist-path", metavar="FILE.npz", help="the Keras mnist.npz, for --data mnist")
    p.add_argument("--samples", type=_positive_int, help="training samples (default: 90000 lenet5, 20000 vgg16)")
    p.add_argument("--form-crops", type=int, help="synthetic only: extra digits cut from rendered scanned forms by "
                                                  "the pipeline's segmenter (default: 20%% of --samples; 0 = none)")
    p.add_argument("--heldout-samples", type=_positive_int, help="held-out samples (default: up to 10000)")
    p.add_argument("--epochs", type=_positive_int, help="epochs (default: 10 lenet5, 3 vgg16)")
    p.add_argument("--augment", type=_share, default=0.7, metavar="SHARE",
                   help="share of training crops given a fresh small rotation/scale/shear/shift each epoch "
                        "(default: 0.7; 0 = none)")
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export-dir", default="models", help="models directory (default: models)")
    p.add_argument("--vgg-weights", default="none",
                   help="vgg16 only: 'imagenet' (needs network), 'none', or a local no-top weights file")
    p.set_defaults(func=_run_train)


def _run_train(args, parser) -> int:
    if args.data == "mnist":
        if not args.mnist_path:
            parser.error("--data mnist needs --mnist-path FILE.npz (the Keras mnist.npz)")
        if not os.path.isfile(args.mnist_path):
            parser.error(f"--mnist-path {args.mnist_path!r} does not exist")
    elif args.mnist_path:
        parser.error("--mnist-path is only used with --data mnist")
    if args.arch == "vgg16" and args.vgg_weights not in ("imagenet", "none") and not os.path.isfile(args.vgg_weights):
        parser.error(f"--vgg-weights {args.vgg_weights!r} is neither 'imagenet', 'none' nor an existing file")

    from model_export.mnist import MnistFileError
    from model_export.train import TrainConfig, train

    cfg = TrainConfig(arch=args.arch, data=args.data, mnist_path=args.mnist_path, samples=args.samples,
                      heldout_samples=args.heldout_samples, epochs=args.epochs, batch_size=args.batch_size,
                      seed=args.seed, export_dir=args.export_dir, vgg_weights=args.vgg_weights,
                      form_crops=args.form_crops, augment=args.augment)
    try:
        result = train(cfg)
    except MnistFileError as exc:
        print(f"formdigits train: {exc}", file=sys.stderr)
        return 2
    card = result.card
    print(f"{card['name']} v{result.version}: held-out accuracy {result.heldout_accuracy:.2%} "
          f"({card['heldout_samples']} samples), {card['parameters']:,} parameters, "
          f"{card['training_seconds']}s -> {result.path}")
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve models over TF Serving's gRPC API (local server or tensorflow_model_server)",
                       description="Serve the models directory over TF Serving's PredictionService/ModelService "
                                   "gRPC API. The local engine needs nothing installed; --engine tfserving runs "
                                   "the real tensorflow_model_server with the same config files.")
    p.add_argument("--models-dir", help="models directory (default: models; with --model-config, overrides "
                                        "each model's base_path with DIR/<name>)")
    p.add_argument("--model-config", metavar="FILE", help="TF Serving ModelServerConfig, e.g. serving/models.config")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default: 8500; 0 picks a free port)")
    p.add_argument("--rest-port", type=int, default=8501, help="REST/monitoring port, tfserving engine (default: 8501)")
    p.add_argument("--batching-config", metavar="FILE",
                   help="TF Serving batching parameters (default: the packaged serving/batching.config; 'none' "
                        "turns server-side batching off)")
    p.add_argument("--monitoring-config", metavar="FILE", help="TF Serving monitoring config (tfserving engine; "
                                                                "default: the packaged serving/monitoring.config)")
    p.add_argument("--enable-serialization-as-tensor-content", action="store_true",
                   help="answer with tensor_content instead of float_val, like TF Serving's flag of that name")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for new versions (default: 1)")
    p.add_argument("--engine", choices=("local", "tfserving"), default="local")
    p.set_defaults(func=_run_serve)


def _run_serve(args, parser) -> int:
    import logging

    from serving.server import engine
    from serving.server.config import ConfigError

    for flag, path in (("--model-config", args.model_config), ("--monitoring-config", args.monitoring_config),
                       ("--batching-config", None if args.batching_config == "none" else args.batching_config)):
        if path and not os.path.isfile(path):
            parser.error(f"{flag} {path!r} does not exist")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    batching_config = args.batching_config or engine.DEFAULT_BATCHING_CONFIG
    try:
        entries = engine.resolve_entries(args.models_dir, args.model_config)
        if args.engine == "tfserving":
            return engine.run_tfserving(entries, port=args.port, rest_port=args.rest_port,
                                        batching_config=batching_config,
                                        monitoring_config=args.monitoring_config or engine.DEFAULT_MONITORING_CONFIG)
        return engine.run_local(entries, batching=engine.load_batching(batching_config), host=args.host,
                                port=args.port, tensor_content=args.enable_serialization_as_tensor_content,
                                poll_s=args.poll_seconds)
    except (ConfigError, OSError) as exc:
        print(f"formdigits serve: {exc}", file=sys.stderr)
        return 2


def _formats(text: str) -> tuple[str, ...]:
    from corpus.forms import FORMATS

    chosen = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    for f in chosen:
        if f not in FORMATS:
            raise argparse.ArgumentTypeError(f"unknown format {f!r}; choose from {','.join(FORMATS)}")
    if not chosen:
        raise argparse.ArgumentTypeError("give at least one format")
    return chosen


def _add_synth_forms(sub) -> None:
    p = sub.add_parser("synth-forms", help="generate scanned handwritten forms with ground truth",
                       description="Fill form templates with synthetic handwriting, scan them (skew, noise, "
                                   "blur, stamps...) and write PNG/JPEG/TIFF/PDF files, DIR/templates/ and "
                                   "DIR/truth.jsonl.")
    p.add_argument("--count", type=_positive_int, required=True, help="number of form pages")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--formats", type=_formats, default=("png", "jpeg", "tiff", "pdf"),
                   help="comma-separated, from png,jpeg,tiff,pdf (default: all)")
    p.set_defaults(func=_run_synth_forms)


def _run_synth_forms(args, parser) -> int:
    import time

    from corpus.forms import synth_forms

    last = [0.0]

    def progress(done, total):
        if time.monotonic() - last[0] > 2 or done == total:
            last[0] = time.monotonic()
            print(f"  {done}/{total} pages", file=sys.stderr, flush=True)

    summary = synth_forms(args.count, args.out, seed=args.seed, formats=args.formats, progress=progress)
    print(f"{summary['pages']} pages in {summary['files']} files, {summary['fields']} fields, "
          f"{summary['seconds']}s -> {args.out} (truth: {os.path.join(args.out, 'truth.jsonl')})")
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="score results against a corpus's truth",
                       description="Digit accuracy, field exact match, review flags, rejects, per-template "
                                   "scores and the confusion matrix of a results directory.")
    p.add_argument("--results", required=True, metavar="DIR", help="the --output DIR of formdigits run")
    p.add_argument("--truth", required=True, metavar="FILE", help="truth.jsonl from formdigits synth-forms")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run_eval)


def _run_eval(args, parser) -> int:
    import json

    from corpus.evaluate import EvalError, evaluate, format_report, load_results, load_truth

    try:
        report = evaluate(load_results(args.results), load_truth(args.truth))
    except EvalError as exc:
        print(f"formdigits eval: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


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
    version.add_argument("--model-version", type=_positive_int, help="pin a model version")
    version.add_argument("--model-label", help="a version label from models.config, e.g. stable")
    p.add_argument("--models-dir", default="models", help="models for the embedded server (default: models)")
    p.add_argument("--templates", metavar="DIR", help="form templates (e.g. CORPUS/templates); without them, "
                                                      "lines of digits are found on each page")
    p.add_argument("--review-threshold", type=_share, default=0.9,
                   help="flag fields whose weakest digit is below this probability (default: 0.9)")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="largest batch sent to the server")
    p.add_argument("--streaming", action="store_true", help="keep watching --input for new files")
    p.add_argument("--poll-seconds", type=float, default=2.0, help="streaming: how often to look for new files")
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


def _run_run(args, parser, beam_args) -> int:
    import glob
    import json

    runner = "DataflowRunner" if args.dry_run else args.runner
    if args.output.startswith("bq:") and len(args.output[3:].split(":")) != 2:
        parser.error(f"--output {args.output!r}: BigQuery output is bq:PROJECT:DATASET")
    if runner == "DataflowRunner":
        missing = [f for f in ("project", "region", "temp_location") if not getattr(args, f)]
        if missing:
            parser.error(f"DataflowRunner needs --{missing[0].replace('_', '-')}")
        if not args.temp_location.startswith("gs://"):
            parser.error("--temp-location must be a gs:// path")
        if not args.serving:
            parser.error("DataflowRunner needs --serving HOST:PORT (TF Serving reachable from the workers)")
        beam_args = beam_args + [f"--project={args.project}", f"--region={args.region}",
                                 f"--temp_location={args.temp_location}"]
    elif not args.input.startswith("gs://") and not args.streaming and not glob.glob(args.input):
        parser.error(f"--input {args.input!r} matches no files")
    if args.templates and not os.path.isdir(args.templates):
        parser.error(f"--templates {args.templates!r} is not a directory")

    from pipeline.beam_pipeline import RunConfig
    from pipeline.run import RunError, new_run_id, run_job

    cfg = RunConfig(input=args.input, output=args.output, serving=args.serving or "", run_id=new_run_id(),
                    model=args.model, model_version=args.model_version, model_label=args.model_label,
                    templates_dir=args.templates, review_threshold=args.review_threshold,
                    max_batch_size=args.batch_size,
                    streaming=args.streaming, poll_seconds=args.poll_seconds, stop_after=args.stop_after,
                    window_seconds=args.window_seconds, input_subscription=args.input_subscription)
    try:
        summary = run_job(cfg, beam_args, runner=runner, dry_run=args.dry_run, models_dir=args.models_dir,
                          job_file=args.job_file)
    except RunError as exc:
        print(f"formdigits run: {exc}", file=sys.stderr)
        return 2
    if summary.get("dry_run"):
        print(f"Dataflow dry run: {summary['state']}, {summary['transforms']} transforms, "
              f"{summary['steps']} job steps -> {summary['job_file']}")
    elif "pages" in summary:
        print(f"run {summary['run_id']}: {summary['pages']} pages, {summary['fields']} fields, "
              f"{summary['digits']} digits, {summary['needs_review']} need review, {summary['rejects']} rejects; "
              f"{summary['wall_s']}s ({summary['pages_per_s']} pages/s) -> {args.output}")
    else:
        print(json.dumps(summary))
    return 0


def _add_query(sub) -> None:
    p = sub.add_parser("query", help="read-only SQL over the results tables",
                       description="Run SQL on DIR/results.duckdb (tables fields, digits, rejects), read-only.")
    p.add_argument("--db", required=True, metavar="DIR", help="the --output DIR of formdigits run")
    p.add_argument("sql", help='e.g. "SELECT field, value, confidence FROM fields WHERE needs_review"')
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=_run_query)


def _run_query(args, parser) -> int:
    from pipeline.query import QueryError, format_rows, run_query

    try:
        names, rows = run_query(args.db, args.sql)
    except QueryError as exc:
        print(f"formdigits query: {exc}", file=sys.stderr)
        return 2
    if names:
        print(format_rows(names, rows, args.format))
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="benchmark suite (ratios measured side by side in one run)",
                       description="Measure throughput side by side in one run and report ratios; absolute "
                                   "figures are printed too. Writes JSON (--out) and a markdown table beside it.")
    p.add_argument("--quick", action="store_true", help="smaller corpus and shorter measurements (under 3 minutes)")
    p.add_argument("--out", metavar="FILE.json", help="write the results as JSON, and FILE.md with the table")
    p.add_argument("--models-dir", default="models", help="models directory (default: models)")
    p.add_argument("--model", default="lenet5")
    p.add_argument("--pages", type=int, help="corpus pages for the pipeline figures (default 100; --quick 20)")
    p.add_argument("--work-dir", default=os.path.join("bench", "work"),
                   help="where corpora (kept between runs) and outputs go (default: bench/work)")
    p.add_argument("--only", choices=["inference", "pipeline"], help="run one part of the suite")
    p.add_argument("--no-tesseract", action="store_true", help="skip the Tesseract baseline")
    p.set_defaults(func=_run_bench)


def _run_bench(args, parser) -> int:
    import json
    import platform
    import time

    if not os.path.isdir(os.path.join(args.models_dir, args.model)):
        parser.error(f"no {args.model} under {args.models_dir!r}; train one: formdigits train --export-dir "
                     f"{args.models_dir}")
    if args.pages is not None and args.pages < 2:
        parser.error("--pages must be at least 2")
    from pipeline.benchmark import bench_pipeline, markdown_table, tesseract_available

    if not args.no_tesseract and args.only != "inference":
        if not tesseract_available():
            parser.error("tesseract is not installed; run make bench (it installs Debian's tesseract-ocr) or "
                         "sudo apt-get install tesseract-ocr, or pass --no-tesseract")

    from serving.benchmark import bench_inference
    from serving.server.engine import ServerProcess

    started = time.monotonic()
    seconds = 1.0 if args.quick else 3.0
    pages = args.pages or (20 if args.quick else 100)
    workers = os.cpu_count() or 1
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {workers} cores, Python {platform.python_version()}",
        "quick": args.quick,
    }
    if args.only != "pipeline":
        print(f"== inference: {args.model} through gRPC vs in-process ({seconds:.0f}s per point)", flush=True)
        results["inference"] = bench_inference(args.models_dir, args.model, seconds=seconds)
    if args.only != "inference":
        print(f"== pipeline ({workers} cores)", flush=True)
        with ServerProcess(args.models_dir) as server:
            results["pipeline"] = bench_pipeline(args.work_dir, server.target, pages, workers,
                                                 tesseract=not args.no_tesseract)
    results["wall_s"] = round(time.monotonic() - started, 1)
    table = markdown_table(results)
    print(f"\n{table}\n\n{results['machine']}, {results['date']}, {results['wall_s']}s")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)
        md = os.path.splitext(args.out)[0] + ".md"
        with open(md, "w") as fh:
            fh.write(f"Measured {results['date']} on {results['machine']}"
                     f"{' (--quick)' if args.quick else ''}; {results['wall_s']}s.\n\n{table}\n")
        print(f"wrote {args.out} and {md}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="formdigits", description="Read handwritten digits from scanned forms at scale.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    sub.required = True
    _add_train(sub)
    _add_serve(sub)
    _add_synth_forms(sub)
    _add_eval(sub)
    _add_run(sub)
    _add_query(sub)
    _add_bench(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter is noise for a command-line user.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    # `run` passes flags it does not know to Beam (e.g. --direct_num_workers, --machine_type).
    args, extra = parser.parse_known_args(argv)
    sub_parser = parser._subparsers._group_actions[0].choices[args.command]  # for one-line errors
    if args.command == "run":
        return args.func(args, sub_parser, extra)
    if extra:
        sub_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args, sub_parser)


if __name__ == "__main__":
    sys.exit(main())
