"""`formdigits review`, `formdigits report` and `formdigits export`: what people do with a run's results."""

from __future__ import annotations

import os
import secrets
import signal
import sys

from formdigits.args import positive_int

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    p = sub.add_parser("review", help="the review queue web app over a results directory",
                       description="Serve the queue of flagged fields as a web page: the field's picture, "
                                   "reading and rule; type the right digits and Enter. Corrections go to the "
                                   "corrections table; fields_reviewed gives every field's final value.")
    p.add_argument("--db", required=True, metavar="DIR", help="the --output DIR of formdigits run")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    p.add_argument("--token", help="required on any address other than loopback: every request must carry it "
                                   "('generate' makes one)")
    p.add_argument("--reviewer", help="who corrections are recorded as (default: your user name)")
    p.set_defaults(func=_run_review)

    p = sub.add_parser("report", help="one self-contained HTML page for a run",
                       description="Write one HTML page (no external assets) summarising a results directory: "
                                   "pages, fields, review share, rejects, confidences, templates, flagged fields "
                                   "with their pictures.")
    p.add_argument("--db", required=True, metavar="DIR", help="the --output DIR of formdigits run")
    p.add_argument("--out", required=True, metavar="FILE.html")
    p.add_argument("--max-crops", type=positive_int, default=600,
                   help="flagged fields shown with their pictures, lowest confidence first (default: 600)")
    p.set_defaults(func=_run_report)

    p = sub.add_parser("export", help="final field values, corrections applied, as CSV or Parquet",
                       description="Write every field's final value (fields_reviewed) to FILE.csv or FILE.parquet.")
    p.add_argument("--db", required=True, metavar="DIR", help="the --output DIR of formdigits run")
    p.add_argument("--out", required=True, metavar="FILE.csv|FILE.parquet")
    p.add_argument("--wide", action="store_true", help="a row per page with a column per field (default: a row "
                                                        "per field, with how it was read and reviewed)")
    p.add_argument("--require-reviewed", action="store_true",
                   help="refuse (exit 2, nothing written) while any field is still pending review")
    p.set_defaults(func=_run_export)


def _run_review(args, parser) -> int:
    from serving.server.engine import is_loopback

    token = secrets.token_urlsafe(18) if args.token == "generate" else args.token
    if not is_loopback(args.host) and not token:
        parser.error(f"--host {args.host} is reachable from other machines: add --token SECRET "
                     "(or --token generate), which every request must then carry")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a port (0-65535)")
    from pipeline.review.app import create_app, make_server
    from pipeline.review.queue import ReviewError

    try:
        app = create_app(args.db, token=token, reviewer=args.reviewer)
        server = make_server(app, args.host, args.port)
    except ReviewError as exc:
        print(f"formdigits review: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"formdigits review: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
              "pick another --port", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    address = f"http://{host}:{server.effective_port}/" + (f"?token={token}" if token else "")
    print(f"formdigits review: {args.db} at {address} (Ctrl-C to stop)", flush=True)
    # SIGTERM (a service manager, `kill`) stops it like Ctrl-C: the socket closed, an answer in flight sent.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run()  # waitress ends its loop on KeyboardInterrupt itself
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    print("formdigits review: stopped", file=sys.stderr)
    return 0


def _interrupt(*_):
    raise KeyboardInterrupt


def _run_report(args, parser) -> int:
    if not args.out.endswith((".html", ".htm")):
        parser.error(f"--out {args.out!r}: the report is an HTML file (FILE.html)")
    from pipeline.review.queue import ReviewError
    from pipeline.review.report import write_report

    try:
        summary = write_report(args.db, args.out, max_crops=args.max_crops)
    except ReviewError as exc:
        print(f"formdigits report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {summary['pages']} pages, {summary['fields']} fields, {summary['flagged']} flagged, "
          f"{summary['crops_shown']} pictures -> {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")
    return 0


def _run_export(args, parser) -> int:
    if not args.out.endswith((".csv", ".parquet")):
        parser.error(f"--out {args.out!r}: write FILE.csv or FILE.parquet")
    from pipeline.review.export import export_final_values
    from pipeline.review.queue import ReviewError

    try:
        done = export_final_values(args.db, args.out, wide=args.wide, require_reviewed=args.require_reviewed)
    except ReviewError as exc:
        print(f"formdigits export: {exc}", file=sys.stderr)
        return 2
    shape = f"{done['rows']} pages, " if args.wide else ""
    pending = (f"; {done['pending']} still pending review (formdigits review --db {args.db})" if done["pending"]
               else "; none pending review")
    print(f"export: {shape}{done['fields']} fields -> {args.out}{pending}")
    return 0
