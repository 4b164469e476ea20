"""`formdigits template propose`, `check` and `lint`: bring a form of your own."""

from __future__ import annotations

import os
import sys

from formdigits.args import positive_int
from formdigits.commands.common import report_template_problems

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    p = sub.add_parser("template", help="make a template from a blank form, and check one on a scan",
                       description="Templates for forms of your own design: propose one from the blank form, "
                                   "look at the preview, rename fields in the JSON, check it on a real scan.")
    group = p.add_subparsers(dest="template_command", metavar="{propose,check,lint}", required=True)
    propose = group.add_parser("propose", help="a template (and a preview PNG) from a blank form, PDF or scan")
    propose.add_argument("blank", metavar="BLANK", help="the empty form: a PDF or a PNG/JPEG/TIFF scan; each page of "
                                                        "a multi-page form is a template NAME_p1, NAME_p2, ...")
    propose.add_argument("--page", type=positive_int, metavar="N", help="only page N (from 1), as NAME_pN")
    propose.add_argument("--name", required=True, help="the template's name (letters, digits, _ and -)")
    propose.add_argument("--out", required=True, metavar="DIR", help="writes DIR/NAME.json, NAME.png, "
                                                                     "NAME.preview.png")
    propose.add_argument("--no-labels", action="store_true", help="do not read labels with Tesseract: "
                                                                  "fields are named field_01, field_02 ...")
    propose.set_defaults(func=_run_propose)
    check = group.add_parser("check", help="a PNG showing where the template's fields land on one scan")
    check.add_argument("template", metavar="DIR/NAME.json")
    check.add_argument("scan", metavar="SCAN", help="a scanned page (PNG, JPEG, TIFF or PDF: its first page)")
    check.add_argument("--out", metavar="FILE.png", help="default: SCAN's name with .check.png, here")
    check.set_defaults(func=_run_check)
    lint = group.add_parser("lint", help="check template files: one line per problem, naming file and field")
    lint.add_argument("path", metavar="DIR|FILE", help="a templates folder or one NAME.json")
    lint.set_defaults(func=_run_lint)


def _run_lint(args, parser) -> int:
    from pipeline.templates.lint import lint_path

    if not os.path.exists(args.path):
        parser.error(f"{args.path!r} does not exist")
    problems = lint_path(args.path)
    for problem in problems:
        print(problem)
    if problems:
        print(f"formdigits template lint: {len(problems)} problem{'s' if len(problems) != 1 else ''}",
              file=sys.stderr)
        return 1
    print(f"{args.path}: no problems")
    return 0


def _run_propose(args, parser) -> int:
    import re

    from pipeline.templates.propose import read_blanks

    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.name):
        parser.error(f"--name {args.name!r}: use letters, digits, _ and - (it names the files)")
    if not os.path.isfile(args.blank):
        parser.error(f"BLANK {args.blank!r} does not exist")
    try:
        blanks = read_blanks(args.blank, page=args.page)
    except (ValueError, OSError) as exc:
        print(f"formdigits template propose: {exc}", file=sys.stderr)
        return 2
    several = len(blanks) > 1 or args.page is not None
    first = args.page or 1
    for number, blank in enumerate(blanks, start=first):
        _propose_page(blank, f"{args.name}_p{number}" if several else args.name, args)
    return 0


def _propose_page(blank, name: str, args) -> None:
    import collections

    import cv2
    import numpy as np

    from pipeline.templates.model import save_templates
    from pipeline.templates.propose import draw_fields, propose_template

    template = propose_template(blank, name, labels=not args.no_labels)
    save_templates([template], args.out)
    preview = os.path.join(args.out, f"{name}.preview.png")
    s = blank.scale
    cv2.imwrite(preview, draw_fields(blank.image, template, np.diag([s, s, 1.0])))
    kinds = collections.Counter(f.kind for f in template.fields)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
    print(f"{len(template.fields)} fields ({summary}) -> {os.path.join(args.out, name + '.json')}")
    if template.print_colour:
        print(f"printed in {template.print_colour}: colour scans of this form are read with the print taken out "
              "(scan in colour; a grey or bitonal scan is read with the print in place)")
    print(f"look at {preview}, rename or delete fields in the JSON, then: "
          f"formdigits template check {os.path.join(args.out, name + '.json')} SCAN")


def _run_check(args, parser) -> int:
    import cv2

    from pipeline.reading.read import ReadError, read_pages
    from pipeline.registration.register import register_scan
    from pipeline.templates.model import load_template_file
    from pipeline.templates.propose import draw_fields
    from pipeline.types import SegmentError

    for path in (args.template, args.scan):
        if not os.path.isfile(path):
            parser.error(f"{path!r} does not exist")
    if report_template_problems(args.template, "template check"):
        return 2
    try:
        template = load_template_file(args.template)
        with open(args.scan, "rb") as fh:
            page = next(iter(read_pages(os.path.basename(args.scan), fh.read())))
        if isinstance(page, tuple):
            raise page[0]
        upright, registration = register_scan(page.image, [template])
    except (ReadError, SegmentError, ValueError, OSError) as exc:
        print(f"formdigits template check: {exc}", file=sys.stderr)
        return 2
    out = args.out or os.path.splitext(os.path.basename(args.scan))[0] + ".check.png"
    cv2.imwrite(out, draw_fields(upright, template, registration.homography))
    turned = f", scanned turned {registration.rotation} degrees" if registration.rotation else ""
    print(f"{template.name}: registered by {registration.method} (score {registration.score:.2f}{turned}); "
          f"{len(template.fields)} fields drawn -> {out}")
    return 0
