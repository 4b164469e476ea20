"""Progress of a local run: each worker process leaves a small JSON file, the driver sums them.

Beam's own counters reach the driver only when the job ends; a person watching
a long local run wants a line every few seconds. A worker writes its file at
most once a second (written aside and renamed in), so reading is always safe.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

__all__ = ["WorkerProgress", "ProgressPrinter", "read_progress"]


class WorkerProgress:
    """Counts pages in this worker process and leaves `DIR/<pid>-<id>.json` for the driver."""

    def __init__(self, directory: str | None):
        self.directory = directory
        self.pages = 0
        self.last = 0.0

    def add(self, n: int = 1) -> None:
        self.pages += n
        now = time.monotonic()
        if self.directory and now - self.last > 1.0:
            self.last = now
            self.flush()

    def flush(self) -> None:
        if not self.directory:
            return
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"{os.getpid()}-{id(self):x}.json")
        with open(path + ".part", "w") as fh:
            json.dump({"pages": self.pages}, fh)
        os.replace(path + ".part", path)


def read_progress(directory: str) -> dict:
    """The workers' files summed: {"pages": pages read so far}."""
    total = {"pages": 0}
    try:
        names = os.listdir(directory)
    except OSError:
        return total
    for name in names:
        if name.endswith(".json"):
            try:
                with open(os.path.join(directory, name)) as fh:
                    total["pages"] += json.load(fh)["pages"]
            except (OSError, ValueError, KeyError):
                pass  # a file being replaced: the next round counts it
    return total


class ProgressPrinter(threading.Thread):
    """Prints pages read and pages/s every `interval` seconds until stopped."""

    def __init__(self, directory: str, interval: float = 5.0, out=sys.stderr):
        super().__init__(daemon=True)
        self.directory, self.interval, self.out = directory, interval, out
        self.stop = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            pages = read_progress(self.directory)["pages"]
            elapsed = time.monotonic() - self.started
            print(f"  {pages} pages read, {pages / elapsed:.1f} pages/s, {elapsed:.0f}s", file=self.out, flush=True)
