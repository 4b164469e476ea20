"""`formdigits bench`: the benchmark suite (`bench/`)."""

from __future__ import annotations

import os

from formdigits.args import positive_int
from formdigits.commands.common import mnist_file

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    _add_bench(sub)


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="benchmark suite (ratios measured side by side in one run)",
                       description="Measure throughput side by side in one run and report ratios; absolute "
                                   "figures are printed too. Writes JSON (--out) and a markdown table beside it.")
    p.add_argument("--quick", action="store_true", help="smaller corpus and shorter measurements (under 3 minutes)")
    p.add_argument("--out", metavar="FILE.json", help="where to write the results as JSON, and FILE.md with the table beside it "
                        "(default: bench/results/latest.json)")
    p.add_argument("--models-dir", default="models", help="models directory (default: models)")
    p.add_argument("--model", default="lenet5")
    p.add_argument("--pages", type=int, help="corpus pages for the pipeline figures (default 100; --quick 20)")
    p.add_argument("--work-dir", default=os.path.join("bench", "work"),
                   help="where corpora (kept between runs) and outputs go (default: bench/work)")
    p.add_argument("--only", choices=["inference", "pipeline", "accuracy", "faults", "own-forms", "review"], help="run one part of the suite")
    p.add_argument("--mnist-path", metavar="FILE.npz",
                   help="accuracy part: a Keras mnist.npz (default: the cached one, fetched if missing)")
    p.add_argument("--accuracy-seeds", type=int, nargs="+", metavar="SEED",
                   help="accuracy part: seeds of the fresh form corpora (default: 900001 900002)")
    p.add_argument("--accuracy-pages", type=positive_int, help="accuracy part: pages per corpus (default 200)")
    p.add_argument("--no-tesseract", action="store_true", help="skip the Tesseract baseline")
    p.set_defaults(func=_run_bench)


def _run_bench(args, parser) -> int:
    if not os.path.isdir(os.path.join(args.models_dir, args.model)):
        parser.error(f"no {args.model} under {args.models_dir!r}; train one: formdigits train --export-dir "
                     f"{args.models_dir}")
    if args.pages is not None and args.pages < 2:
        parser.error("--pages must be at least 2")
    from bench.suite import DEFAULT_RESULTS, SuiteOptions, markdown_table, run_suite, write_results
    from bench.tesseract import tesseract_available

    if not args.no_tesseract and args.only in (None, "pipeline") and not tesseract_available():
        parser.error("tesseract is not installed; run make bench (it installs Debian's tesseract-ocr) or "
                     "sudo apt-get install tesseract-ocr, or pass --no-tesseract")
    mnist = mnist_file(args.mnist_path, "bench") if args.only in (None, "accuracy", "own-forms") else None
    options = SuiteOptions(quick=args.quick, models_dir=args.models_dir, model=args.model, pages=args.pages,
                           work_dir=args.work_dir, only=args.only, tesseract=not args.no_tesseract, mnist_path=mnist,
                           accuracy_pages=args.accuracy_pages,
                           **({"accuracy_seeds": tuple(args.accuracy_seeds)} if args.accuracy_seeds else {}))
    results = run_suite(options, log=lambda line: print(line, flush=True))
    print(f"\n{markdown_table(results)}\n\n{results['machine']}, {results['date']}, {results['wall_s']}s")
    json_path, md_path = write_results(results, args.out or DEFAULT_RESULTS, only=args.only)
    print(f"wrote {json_path} and {md_path}")
    return 0
