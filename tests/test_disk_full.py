"""A full disk: one line naming the place, and a re-run after freeing space completes. The disk is a real tmpfs
of a few MB, mounted for the test (root only).

A disk that fills in the middle of a run also ends in that line most times, but one run in three against an
external server hung in Beam's DirectRunner (the driver waits for a bundle a worker never answers): not tested
here until that is bounded."""

import os
import subprocess
import sys

import pytest

from beam_helpers import count

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


def _run(scans, server, out):
    res = subprocess.run([sys.executable, "-m", "formdigits", "run", "--input", str(scans / "scan_*"), "--templates",
                          str(scans / "templates"), "--output", str(out), "--serving", server.target],
                         capture_output=True, text=True, timeout=300)
    return res.returncode, [line for line in res.stderr.splitlines() if line.startswith("formdigits run")]


def test_a_disk_full_at_start_is_one_line(scans, server, small_disk):
    disk, resize = small_disk
    with open(disk / "filler", "wb") as fh:
        try:
            fh.write(b"\0" * (2 << 20))
        except OSError:
            pass
    rc, lines = _run(scans, server, disk / "out")
    assert rc == 2 and len(lines) == 1 and "no space left on the device holding" in lines[0], lines
    os.remove(disk / "filler")
    resize(40)
    rc, lines = _run(scans, server, disk / "out")
    assert rc == 0, lines
    assert count(disk / "out", "SELECT count(DISTINCT (source_uri, page)) FROM fields") == [(6,)]
