"""The same scans, model and templates give the same tables every run, and the summary says what the tables hold.

Corpus: the pipeline tests' six files (seed 36: png, jpeg, a three-page tiff, a two-page pdf), every core.
"""

import re

import pytest

from formdigits.cli import main
from support.beam import count, rows

pytestmark = pytest.mark.slow  # three end-to-end runs


def _run(scans, server, out, capsys) -> dict:
    assert main(["run", "--input", str(scans / "scan_*"), "--output", str(out), "--templates",
                 str(scans / "templates"), "--serving", server.target]) == 0
    said = capsys.readouterr().out
    found = re.search(r"(\d+) pages, (\d+) fields, (\d+) digits, (\d+) need review, (\d+) rejects", said)
    return dict(zip(("pages", "fields", "digits", "needs_review", "rejects"), map(int, found.groups())))


def _rejects(out):
    return count(out, "SELECT regexp_extract(source_uri, '[^/]+$'), page, stage, error_type, message FROM rejects "
                      "ORDER BY ALL")


def test_three_runs_give_the_same_tables_and_the_summary_equals_them(scans, server, tmp_path, capsys):
    outs = [tmp_path / f"out{i}" for i in range(3)]
    summaries = [_run(scans, server, out, capsys) for out in outs]
    assert rows(outs[1]) == rows(outs[0]) and rows(outs[2]) == rows(outs[0])
    assert _rejects(outs[1]) == _rejects(outs[0]) == _rejects(outs[2])
    (pages, fields, flagged), = count(outs[0], "SELECT count(DISTINCT (source_uri, page)), count(*), "
                                               "count(*) FILTER (WHERE needs_review) FROM fields")
    (digits,), = count(outs[0], "SELECT count(*) FROM digits")
    (rejects,), = count(outs[0], "SELECT count(*) FROM rejects")
    assert summaries[0] == {"pages": pages, "fields": fields, "digits": digits, "needs_review": flagged,
                            "rejects": rejects}
    assert summaries[1] == summaries[0] == summaries[2]
