"""`make demo`'s look at one scan: `python -m formdigits.demo --results DIR --out FILE.png`.

Picks the first page the run read (by file name) with at most 20 fields, so its table fits a terminal, draws
it with its fields boxed beside the rows they became (`pipeline.review.overlay`), and prints those rows.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _first_small_page(db_dir: str) -> tuple[str, int]:
    from pipeline.output.store import locked_reader

    with locked_reader(db_dir) as con:
        row = con.execute("SELECT source_uri, page FROM fields GROUP BY source_uri, page "
                          "ORDER BY count(*) > 20, source_uri, page LIMIT 1").fetchone()
    if row is None:
        raise SystemExit(f"formdigits.demo: {db_dir} holds no fields; run formdigits run --output {db_dir} first")
    return row[0], int(row[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m formdigits.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, metavar="DIR", help="a formdigits run --output folder")
    parser.add_argument("--out", required=True, metavar="FILE.png", help="where to write the picture")
    args = parser.parse_args(argv)

    import cv2

    from pipeline.output.query import format_rows
    from pipeline.reading.read import open_scan, read_pages
    from pipeline.review.overlay import draw_readings, page_readings

    uri, page_no = _first_small_page(args.results)
    with open_scan(uri, None) as fh:
        page = next(p for p in read_pages(uri, fh) if not isinstance(p, tuple) and p.page == page_no)
    readings = page_readings(args.results, uri, page_no)
    cv2.imwrite(args.out, draw_readings(page.image, readings))
    flagged = sum(r.needs_review for r in readings)
    print(f"{uri}, page {page_no}: {len(readings)} fields read, {flagged} flagged for review -> {args.out}")
    rows = [(i, r.field, r.value, "" if r.confidence is None else f"{r.confidence:.3f}",
             "review" if r.needs_review else "") for i, r in enumerate(readings, 1)]
    print(format_rows(["#", "field", "value", "confidence", "flag"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
