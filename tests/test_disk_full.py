"""A full disk: one line naming the place, and a re-run after freeing space completes. The disk is a real tmpfs
of a few MB, mounted for the test (root only).

A disk that filled mid-run used to hang one run in two: a worker's print of its failed bundle to a log on
that disk raised, so the worker never answered and Beam's driver waited for ever."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from pipeline.output.write import staged_batches
from support.beam import count, rows

pytestmark = pytest.mark.slow  # end to end, in subprocesses


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs; yields its path and a function that resizes it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")

    def resize(mb: int):
        subprocess.run(["mount", "-o", f"remount,size={mb}m", str(disk)], check=True)

    try:
        yield disk, resize
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def _command(scans, server, out):
    return [sys.executable, "-m", "formdigits", "run", "--input", str(scans / "scan_*"), "--templates",
            str(scans / "templates"), "--output", str(out), "--serving", server.target, "--direct_num_workers=2"]


def _run(scans, server, out):
    res = subprocess.run(_command(scans, server, out), capture_output=True, text=True, timeout=300)
    return res.returncode, [line for line in res.stderr.splitlines() if line.startswith("formdigits run")]


def _fill(disk):
    with open(disk / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 20))
        except OSError:
            pass


def test_a_disk_full_at_start_is_one_line(scans, server, small_disk):
    disk, resize = small_disk
    _fill(disk)
    rc, lines = _run(scans, server, disk / "out")
    assert rc == 2 and len(lines) == 1 and "no space left on the device holding" in lines[0], lines
    os.remove(disk / "filler")
    resize(40)
    rc, lines = _run(scans, server, disk / "out")
    assert rc == 0, lines
    assert count(disk / "out", "SELECT count(DISTINCT (source_uri, page)) FROM fields") == [(6,)]


def test_a_disk_that_fills_mid_run_is_one_line_and_a_rerun_reads_each_page_once(scans, server, small_disk,
                                                                                 tmp_path):
    disk, resize = small_disk
    resize(64)
    many = tmp_path / "many"  # eight copies of the corpus: a run long enough to fill the disk under it
    shutil.copytree(scans / "templates", many / "templates")
    for copy in range(8):
        for scan in scans.glob("scan_*"):
            shutil.copy(scan, many / f"{scan.stem}_{copy}{scan.suffix}")
    log = tmp_path / "run.log"
    with open(log, "w") as fh:
        job = subprocess.Popen(_command(many, server, disk / "out"), stdout=fh, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not staged_batches(str(disk / "out")) and time.monotonic() < deadline:  # a first bundle written
        time.sleep(0.02)
    _fill(disk)
    assert job.wait(timeout=120) == 2, log.read_text()[-3000:]
    lines = [line for line in log.read_text().splitlines() if line.startswith("formdigits run")]
    assert len(lines) == 1 and "no space left on the device holding" in lines[0], lines
    os.remove(disk / "filler")
    rerun = subprocess.run(_command(many, server, disk / "out"), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    undisturbed = subprocess.run(_command(many, server, tmp_path / "undisturbed"), capture_output=True, timeout=300)
    assert undisturbed.returncode == 0
    assert rows(disk / "out") == rows(tmp_path / "undisturbed")
    assert count(disk / "out", "SELECT count(*) FROM rejects") == [(0,)]
