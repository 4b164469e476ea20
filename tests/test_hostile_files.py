"""Files that attack a reader (issue 16): each is one rejects row, quickly and in little memory; good pages go on."""

import os
import shutil
import subprocess
import sys

import pytest

from corpus.hostile import HOSTILE_FILES, make_hostile_files
from support.beam import count, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = """
import resource, sys
from pipeline.reading.read import Page, input_root, open_scan, read_pages
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome = []
try:
    with open_scan(sys.argv[1], input_root(sys.argv[2])) as fh:
        outcome = ["page" if isinstance(item, Page) else "page refused" for item in read_pages(sys.argv[1], fh)]
except Exception as exc:
    outcome = ["file refused: " + type(exc).__name__]
print(outcome, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
"""


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    make_hostile_files(str(folder))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_each_hostile_file_is_refused_in_little_memory(hostile, name):
    done = subprocess.run([sys.executable, "-c", PROBE, str(hostile / name), str(hostile / "*")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    outcome, megabytes = done.stdout.rsplit(" ", 1)
    assert "refused" in outcome, outcome
    assert int(megabytes) < 200, f"{name} cost {megabytes} MB to refuse"


@pytest.mark.slow
def test_a_run_over_hostile_files_writes_the_good_pages_and_one_reject_each(hostile, scans, server, tmp_path):
    folder = hostile  # (a FIFO cannot be copied: the run reads the fixture's folder, plus one good scan)
    shutil.copy(scans / "scan_00001.png", folder / "good.png")
    out = tmp_path / "out"
    run("--input", str(folder / "*"), "--output", str(out), "--templates", str(scans / "templates"),
        "--serving", server.target, "--direct_running_mode=in_memory")
    rejects = count(out, "SELECT regexp_extract(source_uri, '[^/]+$'), page, stage, message FROM rejects ORDER BY ALL")
    by_file = {}
    for name, page, stage, message in rejects:
        by_file.setdefault(name, []).append((page, stage, message))
    os.remove(folder / "good.png")
    assert set(by_file) == set(HOSTILE_FILES)
    # The cut TIFF's first page is whole (a grey page of no template: a segment reject); the rest, read rejects.
    assert [(page, stage) for page, stage, _ in by_file.pop("cut-in-half.tif")] == [
        (1, "segment"), (2, "read"), (3, "read")]
    assert all(stage == "read" and len(rows) == 1 for rows in by_file.values() for _, stage, _ in rows)
    assert "not a regular file (a FIFO)" in by_file["fifo.png"][0][2]
    assert "leads out of the input folder" in by_file["passwd.png"][0][2]
    assert "root:" not in str(rejects)  # nothing of what a link points to is quoted
    assert "over the 200 M pixel limit" in by_file["huge-page.pdf"][0][2]
    assert count(out, "SELECT DISTINCT regexp_extract(source_uri, '[^/]+$') FROM fields") == [("good.png",)]
