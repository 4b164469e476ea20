"""`formdigits synth-forms` and `formdigits eval`: test corpora and their scores."""

from __future__ import annotations

import argparse
import os
import sys

from formdigits.args import positive_int
from formdigits.commands.common import mnist_file

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    _add_synth_forms(sub)
    _add_eval(sub)


def _chosen(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """A comma-separated list of `what`s, each one of `allowed`; else the one-line argparse error."""
    chosen = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    for f in chosen:
        if f not in allowed:
            raise argparse.ArgumentTypeError(f"unknown {what} {f!r}; choose from {','.join(allowed)}")
    if not chosen:
        raise argparse.ArgumentTypeError(f"give at least one {what}")
    return chosen


def _formats(text: str) -> tuple[str, ...]:
    from corpus.forms import FORMATS

    return _chosen(text, FORMATS, "format")


def _layouts(text: str) -> tuple[str, ...]:
    from corpus.forms import corpus_templates

    chosen = tuple(n.strip() for n in text.split(",") if n.strip())
    try:
        corpus_templates(chosen)
    except (ValueError, KeyError) as exc:
        raise argparse.ArgumentTypeError(str(exc).strip("'\"")) from None
    return chosen


def _scans(text: str) -> tuple[str, ...]:
    from corpus.scan_kinds import SCAN_KINDS

    return _chosen(text, SCAN_KINDS, "scan kind")


def _add_synth_forms(sub) -> None:
    p = sub.add_parser("synth-forms", help="generate scanned handwritten forms with ground truth",
                       description="Fill form templates with handwriting (synthetic writers, or real MNIST "
                                   "digits with --ink mnist), scan them (skew, noise, "
                                   "blur, stamps...) and write PNG/JPEG/TIFF/PDF files, DIR/templates/ and "
                                   "DIR/truth.jsonl.")
    p.add_argument("--count", type=positive_int, required=True, help="number of form pages")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--formats", type=_formats, default=("png", "jpeg", "tiff", "pdf"),
                   help="comma-separated, from png,jpeg,tiff,pdf (default: all)")
    p.add_argument("--ink", choices=("synthetic", "mnist"), default="synthetic",
                   help="whose handwriting fills the forms: synthetic writers (default), or real MNIST digits")
    p.add_argument("--mnist-split", choices=("validation", "test"), default="validation",
                   help="--ink mnist: which MNIST split's digits (default: validation, the development set; "
                        "test only for reported figures)")
    p.add_argument("--layouts", type=_layouts, default=None, metavar="NAMES",
                   help="comma-separated forms to fill: builtin (default: the four built-in layouts with corner "
                        "marks), clinic_intake, school_marks, bank_giro, census_return (forms without marks; "
                        "their blank PDFs go to DIR/blanks/), random:SEED (a generated form)")
    p.add_argument("--scans", type=_scans, default=("grey",), metavar="KINDS",
                   help="comma-separated scan kinds, documents taking them in turn: grey (default), bitonal (1-bit, "
                        "Group 4 in TIFF), colour (forms without marks printed in a dropout colour, filled in "
                        "black or blue ink, scanned in colour)")
    p.add_argument("--mnist-path", metavar="FILE.npz",
                   help="--ink mnist: a Keras mnist.npz (default: the cached one, fetched if missing)")
    p.set_defaults(func=_run_synth_forms)


def _run_synth_forms(args, parser) -> int:
    from corpus.forms import Ink, corpus_templates, synth_forms
    from corpus.handwriting import find_handwriting_fonts
    from corpus.mnist import MnistFetchError, MnistFileError
    from corpus.progress import progress_printer
    from corpus.scan_kinds import check_scan_kinds

    if args.mnist_path and not os.path.isfile(args.mnist_path):
        parser.error(f"--mnist-path {args.mnist_path!r} does not exist (formdigits fetch-mnist --out FILE writes one)")
    if args.ink != "mnist" and (args.mnist_path or args.mnist_split != "validation"):
        parser.error("--mnist-path and --mnist-split go with --ink mnist")
    try:
        ink = (Ink(kind="mnist", mnist_path=mnist_file(args.mnist_path, "synth-forms"), mnist_split=args.mnist_split)
               if args.ink == "mnist" else Ink(fonts=tuple(find_handwriting_fonts())))
    except (MnistFetchError, MnistFileError) as exc:
        print(f"formdigits synth-forms: {exc}", file=sys.stderr)
        return 2
    try:
        check_scan_kinds(args.scans, corpus_templates(args.layouts))
    except ValueError as exc:
        parser.error(str(exc))

    summary = synth_forms(args.count, args.out, seed=args.seed, formats=args.formats,
                          progress=progress_printer("  {done}/{total} pages"), ink=ink,
                          layouts=args.layouts, scans=args.scans)
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
