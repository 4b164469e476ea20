"""The whole suite: run the parts, check the targets, write `FILE.json` and `FILE.md`."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time

from bench.accuracy import bench_forms, bench_mnist
from bench.corpora import corpus_files, make_corpus
from bench.faults import bench_faults
from bench.hostile import bench_hostile
from bench.inference import bench_inference
from bench.own_forms import bench_own_forms
from bench.pipeline import bench_pipeline
from bench.review import bench_review
from bench.tesseract import tesseract_available, tesseract_baseline
from corpus.evaluate import evaluate, load_results, load_truth
from pipeline.templates.model import load_templates
from serving.server.engine import ServerProcess

__all__ = ["SuiteOptions", "TARGETS", "run_suite", "markdown_table", "write_results", "DEFAULT_RESULTS"]

DEFAULT_RESULTS = os.path.join("bench", "results", "latest.json")
CORPUS_SEED = 4242

TARGETS = {
    "pipeline_vs_bare_ratio": (">=", 0.9),
    "grpc_vs_inprocess_ratio": (">=", 0.6),
    "batched_vs_unbatched_speedup": (">=", 20),
    "rss_growth_ratio": ("<=", 1.1),
    "speed_vs_tesseract": (">=", 10),
    "mnist_test_accuracy": (">=", 0.993),
    "mnist_test_min_digit_accuracy": (">=", 0.985),
    "real_ink_field_exact": (">=", 0.95),
    "real_ink_digit_accuracy": (">=", 0.99),
    "real_ink_unflagged_exact": (">=", 0.99),
    "synthetic_ink_field_exact": (">=", 0.98),
    "synthetic_ink_digit_accuracy": (">=", 0.995),
    "hostile_max_seconds": ("<=", 1.0),
    "hostile_max_mb": ("<=", 200),
    "faults_max_seconds": ("<=", 30),
    "proposal_right_share": (">=", 0.95),
    "proposal_max_false_fields_per_page": ("<=", 1),
    "proposal_tight_right_share": (">=", 0.98),
    "proposal_tight_max_false_fields_per_page": ("<=", 1),
    "registration_right_share": (">=", 0.995),
    "registration_mean_box_error_cells": ("<", 0.3),
    "registration_ms_per_page_200dpi": ("<=", 50),
    "proposed_vs_true_field_exact_points": (">=", -1.0),
    "own_forms_real_ink_field_exact": (">=", 0.95),
    "own_forms_real_ink_small_cells_field_exact": (">=", 0.93),
    "own_forms_real_ink_written_flagged": ("<=", 0.15),
    "own_forms_real_ink_errors_flagged": (">=", 0.90),
    "own_forms_real_ink_unflagged_exact": (">=", 0.99),
    "own_forms_bitonal_vs_grey_points": (">=", -1.5),
    "own_forms_colour_vs_grey_points": (">=", -1.5),
    "own_forms_tight_real_ink_field_exact": (">=", 0.95),
    "review_next_item_p95_ms": ("<", 100),
    "report_mb_1000_pages": ("<", 5),
}


@dataclasses.dataclass
class SuiteOptions:
    quick: bool = False
    models_dir: str = "models"
    model: str = "lenet5"
    pages: int | None = None            # corpus pages for the pipeline figures (default 100; quick 20)
    work_dir: str = os.path.join("bench", "work")
    only: str | None = None             # "inference" | "pipeline" | "accuracy" | "faults" | "own-forms" | "review"
    tesseract: bool = True
    mnist_path: str | None = None       # the accuracy part: MNIST's test split, and real ink for its forms
    accuracy_seeds: tuple[int, ...] = (900001, 900002)   # fresh corpora; never used while developing
    accuracy_pages: int | None = None   # per seed and ink (default 200; quick 20)

    @property
    def corpus_pages(self) -> int:
        return self.pages or (20 if self.quick else 100)


def run_suite(opts: SuiteOptions, log=print) -> dict:
    """Runs the chosen parts of the suite; returns every figure measured."""
    started = time.monotonic()
    workers = os.cpu_count() or 1
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {workers} cores, Python {platform.python_version()}",
        "quick": opts.quick,
    }
    if opts.only in (None, "inference"):
        seconds = 1.0 if opts.quick else 3.0
        log(f"== inference: {opts.model} through gRPC vs in-process ({seconds:.0f}s per point)")
        results["inference"] = bench_inference(opts.models_dir, opts.model, seconds=seconds, log=log)
    if opts.only in (None, "pipeline"):
        log(f"== pipeline ({workers} cores)")
        results["pipeline"] = _pipeline_part(opts, workers, log)
    if opts.only in (None, "accuracy") and opts.mnist_path:
        log(f"== accuracy, from the served {opts.model}")
        results["accuracy"] = _accuracy_part(opts, log)
    if opts.only in (None, "own-forms"):
        log("== own forms: templates proposed from blanks, registration by the form's print")
        with ServerProcess(opts.models_dir) as server:
            results["own_forms"] = bench_own_forms(opts.work_dir, server.target, opts.quick, log,
                                                   mnist_path=opts.mnist_path)
    if opts.only in (None, "review"):
        log("== review: the queue's next item on 100,000 fields, a 1,000-page run's report")
        with ServerProcess(opts.models_dir) as server:
            results["review"] = bench_review(opts.work_dir, server.target, opts.quick, log)
    if opts.only in (None, "faults"):
        log("== hostile files: each read alone in a fresh process")
        results["faults"] = bench_hostile(opts.work_dir, log)
        log("== faults: workers and driver killed, bounds met, a model nobody serves")
        corpus = make_corpus(os.path.join(opts.work_dir, f"corpus-20-{CORPUS_SEED}"), 20, CORPUS_SEED)
        results["faults"].update(bench_faults(corpus, opts.models_dir, os.path.join(opts.work_dir, "faults"), log))
    results["wall_s"] = round(time.monotonic() - started, 1)
    return results


def _pipeline_part(opts: SuiteOptions, workers: int, log) -> dict:
    pages = opts.corpus_pages
    log(f"corpus: {pages} pages (seed {CORPUS_SEED})")
    corpus = make_corpus(os.path.join(opts.work_dir, f"corpus-{pages}-{CORPUS_SEED}"), pages, CORPUS_SEED)
    templates = list(load_templates(os.path.join(corpus, "templates")).values())
    files = corpus_files(corpus)
    truth = load_truth(os.path.join(corpus, "truth.jsonl"))
    with ServerProcess(opts.models_dir) as server:
        results = bench_pipeline(corpus, files, templates, opts.work_dir, server.target, workers, log,
                                 server_pid=server.proc.pid)
    report = evaluate(load_results(os.path.join(opts.work_dir, f"out-{workers}")), truth)
    results["ours"] = {"field_accuracy": report["field_exact_match"], "digit_accuracy": report["digit_accuracy"],
                       "pages_per_s": results["pipeline_10x"]["pages_per_s"],
                       "pages_per_s_at_n": results["pipeline"][str(workers)]["pages_per_s"]}
    if opts.tesseract:
        if not tesseract_available():
            raise FileNotFoundError("tesseract is not installed: make bench installs Debian's tesseract-ocr "
                                    "(or: sudo apt-get install tesseract-ocr)")
        log(f"tesseract (digits only, one line per field), {workers} processes")
        tess = tesseract_baseline(files, templates, truth, workers)
        log(f"    {tess['pages_per_s']} pages/s, field accuracy {tess['field_accuracy']}")
        results["tesseract"] = tess
        results["speed_vs_tesseract"] = round(results["ours"]["pages_per_s"] / tess["pages_per_s"], 2)
        results["speed_vs_tesseract_at_n"] = round(results["ours"]["pages_per_s_at_n"] / tess["pages_per_s"], 2)
    return results


def _accuracy_part(opts: SuiteOptions, log) -> dict:
    pages = opts.accuracy_pages or (20 if opts.quick else 200)
    seeds = list(opts.accuracy_seeds[:1] if opts.quick else opts.accuracy_seeds)
    with ServerProcess(opts.models_dir) as server:
        mnist = bench_mnist(server.target, opts.model, opts.mnist_path, "test", log)
        forms = bench_forms(opts.work_dir, server.target, seeds, pages, opts.mnist_path, log)

    def worst(ink: str, key: str) -> float:
        return min(r[key] for name, r in forms.items() if name.startswith(ink))

    return {"mnist_test": mnist, "forms": forms, "pages_per_corpus": pages, "seeds": seeds,
            "mnist_test_accuracy": mnist["accuracy"], "mnist_test_min_digit_accuracy": mnist["min_digit_accuracy"],
            "mnist_test_ece": mnist["ece"],
            "real_ink_field_exact": worst("real", "field_exact_match"),
            "real_ink_digit_accuracy": worst("real", "digit_accuracy"),
            "real_ink_unflagged_exact": worst("real", "unflagged_field_accuracy"),
            "synthetic_ink_field_exact": worst("synthetic", "field_exact_match"),
            "synthetic_ink_digit_accuracy": worst("synthetic", "digit_accuracy")}


def _met(value, op, target) -> str:
    if value is None or target is None:
        return "-"
    ok = {">=": value >= target, "<=": value <= target, "<": value < target}.get(op, value > target)
    return "yes" if ok else "**no**"


def _rows(results: dict) -> list[tuple[str, object, str]]:
    inf, pipe = results.get("inference", {}), results.get("pipeline", {})
    tess, ours = pipe.get("tesseract", {}), pipe.get("ours", {})
    faults, acc = results.get("faults", {}), results.get("accuracy", {})
    seeds = f"worst of seeds {acc.get('seeds')}, {acc.get('pages_per_corpus')} pages each"
    grpc, local = inf.get("grpc_images_per_s", {}), inf.get("inprocess_images_per_s", {})
    cpu = pipe.get("cpu_ms_per_page", {})
    return [
        ("grpc_vs_inprocess_ratio", inf.get("grpc_vs_inprocess_ratio"),
         f"gRPC {grpc.get('256')} vs in-process {local.get('256')} images/s, batch 256"),
        ("batched_vs_unbatched_speedup", inf.get("batched_vs_unbatched_speedup"),
         f"gRPC batch 256 vs batch 1 ({grpc.get('1')} images/s)"),
        ("pipeline_vs_bare_ratio", pipe.get("pipeline_vs_bare_ratio"),
         f"formdigits run {ours.get('pages_per_s')} pages/s over {10 * (pipe.get('pages') or 0)} pages vs bare loop "
         f"{pipe.get('bare_loop', {}).get('pages_per_s')}; at {pipe.get('pages')} pages, start-up included: "
         f"{pipe.get('pipeline_vs_bare_ratio_at_n')}; CPU ms a page: bare {cpu.get('bare_loop')}, "
         f"run {cpu.get('run_10x')} + model server {cpu.get('model_server_10x')}"),
        ("worker_scaling", pipe.get("worker_scaling"),
         f"{pipe.get('workers')} workers vs 1 ({pipe.get('pipeline', {}).get('1', {}).get('pages_per_s')} pages/s)"),
        ("rss_growth_ratio", pipe.get("rss_growth_ratio"),
         "peak RSS MB at " + ", ".join(f"{k} pages: {v}" for k, v in pipe.get("rss_mb", {}).items())),
        ("speed_vs_tesseract", pipe.get("speed_vs_tesseract"),
         f"ours {ours.get('pages_per_s')} vs tesseract {tess.get('pages_per_s')} pages/s "
         f"(at {pipe.get('pages')} pages: {pipe.get('speed_vs_tesseract_at_n')})"),
        ("ours.field_accuracy", ours.get("field_accuracy"), f"tesseract.field_accuracy {tess.get('field_accuracy')}"),
        ("mnist_test_accuracy", acc.get("mnist_test_accuracy"),
         f"MNIST test split through the server; ECE of the served probabilities {acc.get('mnist_test_ece')}"),
        ("mnist_test_min_digit_accuracy", acc.get("mnist_test_min_digit_accuracy"), "its weakest digit"),
        ("real_ink_field_exact", acc.get("real_ink_field_exact"), f"forms written with MNIST test glyphs, {seeds}"),
        ("real_ink_digit_accuracy", acc.get("real_ink_digit_accuracy"), "the same corpora, digits by position"),
        ("real_ink_unflagged_exact", acc.get("real_ink_unflagged_exact"), "the same, fields not flagged for review"),
        ("synthetic_ink_field_exact", acc.get("synthetic_ink_field_exact"), f"synthetic writers' forms, {seeds}"),
        ("synthetic_ink_digit_accuracy", acc.get("synthetic_ink_digit_accuracy"), "the same corpora, digits"),
        ("hostile_max_seconds", faults.get("hostile_max_seconds"),
         f"slowest of {len(faults.get('files', {}))} hostile files to its reject (all refused: "
         f"{faults.get('hostile_all_refused')})"),
        ("hostile_max_mb", faults.get("hostile_max_mb"),
         f"largest peak RSS of a process that refused one, imports included "
         f"({faults.get('hostile_max_mb_for_the_file')} MB of it for the file)"),
        ("faults_max_seconds", faults.get("faults_max_seconds"),
         "slowest fault to its one line: " + "; ".join(f"{name} {case['seconds']} s, {case['peak_mb']:.0f} MB"
                                                       for name, case in faults.get("cases", {}).items())),
    ] + _own_forms_rows(results.get("own_forms", {})) + _review_rows(results.get("review", {}))


def _review_rows(review: dict) -> list[tuple[str, object, str]]:
    db, session, report = review.get("database", {}), review.get("session", {}), review.get("report", {})
    act, skip = session.get("save_and_next", {}), session.get("skip_next", {})
    return [
        ("review_next_item_p95_ms", review.get("review_next_item_p95_ms"),
         f"{db.get('fields')} fields ({db.get('flagged')} flagged): save + next median {act.get('median_ms')} ms, "
         f"p95 {act.get('p95_ms')}; skip p95 {skip.get('p95_ms')}; over HTTP to formdigits review"),
        ("report_mb_1000_pages", review.get("report_mb_1000_pages"),
         f"{report.get('pages')} pages, {report.get('flagged')} flagged, {report.get('crops_shown')} pictures, "
         f"{report.get('seconds')} s"),
    ]


def _own_forms_rows(own: dict) -> list[tuple[str, object, str]]:
    prop, reg, e2e = own.get("proposal", {}), own.get("registration", {}), own.get("end_to_end", {})
    bitonal, colour = own.get("bitonal", {}), own.get("colour", {})
    return [
        ("proposal_right_share", prop.get("right_share"),
         f"{prop.get('fields')} digit fields on {prop.get('forms')} blank forms (named, built-in without marks, "
         f"generated layouts never tuned on)"),
        ("proposal_max_false_fields_per_page", prop.get("max_false_fields_per_page"),
         f"{prop.get('false_fields')} false fields in all"),
        ("proposal_tight_right_share", prop.get("tight_right_share"),
         f"{prop.get('tight_fields')} digit fields on {prop.get('tight_forms')} tight generated blanks (separate-box "
         f"and ticked combs, tables of amounts with spacer columns, long and dotted underlines, grey lines), "
         f"seeds never looked at"),
        ("proposal_tight_max_false_fields_per_page", prop.get("tight_max_false_fields_per_page"),
         f"{prop.get('tight_false_fields')} false fields in all"),
        ("registration_right_share", reg.get("right_share"),
         f"{reg.get('pages')} filled scans of {reg.get('templates')} mark-less forms, right template and way up"),
        ("registration_mean_box_error_cells", reg.get("mean_box_error_cells"), f"max {reg.get('max_box_error_cells')}"),
        ("registration_ms_per_page_200dpi", reg.get("ms_per_page_200dpi_median"),
         f"median, p95 {reg.get('ms_per_page_200dpi_p95')}; all dpi {reg.get('ms_per_page_all_median')}"),
        ("proposed_vs_true_field_exact_points", own.get("proposed_vs_true_field_exact_points"),
         f"field exact {e2e.get('proposed_templates', {}).get('field_exact_match')} from proposed templates vs "
         f"{e2e.get('true_templates', {}).get('field_exact_match')} from the true ones, same scans"),
    ] + _own_forms_real_ink_rows(e2e.get("real_ink_proposed_templates", {}),
                              e2e.get("synthetic_ink_proposed_templates", e2e.get("proposed_templates", {}))) + [
        ("own_forms_bitonal_vs_grey_points", bitonal.get("bitonal_vs_grey_points"),
         f"real ink, the {bitonal.get('pages')} single-page scans made 1-bit Group 4: fields exact "
         f"{bitonal.get('bitonal_field_exact')} vs grey {bitonal.get('grey_field_exact')}"),
        ("own_forms_tight_real_ink_field_exact", own.get("tight", {}).get("field_exact_match"),
         f"{own.get('tight', {}).get('pages')} pages of {own.get('tight', {}).get('layouts')} tight forms of designs "
         f"never looked at (tight:9250-9257), MNIST test ink, proposed templates; digits "
         f"{own.get('tight', {}).get('digit_accuracy')}; written fields flagged "
         f"{own.get('tight', {}).get('written_fields_flagged')}"),
        ("own_forms_colour_vs_grey_points", colour.get("colour_vs_grey_points"),
         f"real ink, the same {colour.get('pages')} pages printed in dropout colours, scanned in colour, read from "
         f"templates proposed from colour blanks: fields exact {colour.get('colour_field_exact')} vs grey "
         f"{colour.get('grey_field_exact')}; {colour.get('rejects')} rejects"),
    ]


def _own_forms_real_ink_rows(real: dict, synthetic: dict) -> list[tuple[str, object, str]]:
    groups = real.get("per_group", {})
    bands = "; ".join(f"{name}: {g['field_exact_match']} ({g['fields']} fields)" for name, g in groups.items())
    return [
        ("own_forms_real_ink_field_exact", real.get("field_exact_match"),
         f"mark-less forms in MNIST test ink, proposed templates renamed only, worst of seeds {real.get('seeds')}; "
         f"digits {real.get('digit_accuracy')}; synthetic ink {synthetic.get('field_exact_match')} (worst of seeds "
         f"{synthetic.get('seeds')}); {bands}"),
        ("own_forms_real_ink_small_cells_field_exact", groups.get("cells <= 16 pt", {}).get("field_exact_match"),
         "the same, fields whose cells or rows are at most 16 points"),
        ("own_forms_real_ink_written_flagged", real.get("written_fields_flagged"),
         f"of the fields holding writing; synthetic ink {synthetic.get('written_fields_flagged')}"),
        ("own_forms_real_ink_errors_flagged", real.get("errors_flagged_share"), "wrong fields flagged for review"),
        ("own_forms_real_ink_unflagged_exact", real.get("unflagged_field_accuracy"), "fields not flagged, right"),
    ]


def markdown_table(results: dict) -> str:
    """The headline figures as a markdown table (what docs/benchmarks.md shows)."""
    tess = results.get("pipeline", {}).get("tesseract", {})
    lines = ["| key | value | target | met | detail |", "|---|---|---|---|---|"]
    for key, value, detail in _rows(results):
        if value is None:
            continue  # a part of the suite this run left out
        op, target = TARGETS.get(key, ("", None))
        if key == "ours.field_accuracy":
            op, target = ">", tess.get("field_accuracy")
        met = _met(value, op, target)
        lines.append(f"| `{key}` | {value} | {op} {target if target is not None else ''} | {met} | {detail} |")
    return "\n".join(lines)


def write_results(results: dict, path: str, only: str | None = None) -> tuple[str, str]:
    """Writes the results as JSON at `path` and the table as markdown beside it; returns both paths.

    With `only` (one part re-run), the other parts already in `path` are kept, each with its own date.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if only and os.path.exists(path):
        with open(path) as fh:
            earlier = json.load(fh)
        part = only.replace("-", "_")
        dates = {**earlier.get("part_dates", {}), part: results["date"]}
        results = {**earlier, **{k: v for k, v in results.items() if k not in ("wall_s", "quick", "date")},
                   "part_dates": dates}
    with open(path, "w") as fh:
        json.dump(results, fh, indent=2)
    md = os.path.splitext(path)[0] + ".md"
    with open(md, "w") as fh:
        fh.write(f"Measured {results['date']} on {results['machine']}"
                 f"{' (--quick)' if results['quick'] else ''}; {results['wall_s']}s."
                 + "".join(f" Part {part} re-run {date}." for part, date in results.get("part_dates", {}).items())
                 + f"\n\n{markdown_table(results)}\n")
    return path, md
