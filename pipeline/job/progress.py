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

__all__ = ["WorkerProgress", "ProgressPrinter", "read_progress", "note_outage", "note_stop", "read_stop",
           "progress_line"]


class WorkerProgress:
    """Counts pages in this worker process and leaves `DIR/<pid>-<id>.json` for the driver."""

    def __init__(self, directory: str | None):
        self.directory = directory
        self.pages = 0
        self.files = 0
        self.last = 0.0

    def add_file(self) -> None:
        """Counts a file read to its end (or refused): what the driver's total and ETA count in."""
        self.files += 1
        self.add(0)

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
        _write(os.path.join(self.directory, f"{os.getpid()}-{id(self):x}.json"),
               {"pages": self.pages, "files": self.files})


def _write(path: str, record: dict) -> None:
    with open(path + ".part", "w") as fh:
        json.dump(record, fh)
    os.replace(path + ".part", path)


def _note(directory: str | None, what: str, record: dict) -> None:
    """Leaves this worker's `what` record for the driver (a run without a progress folder leaves none)."""
    if directory:
        os.makedirs(directory, exist_ok=True)
        _write(os.path.join(directory, f"{what}-{os.getpid()}.json"), record)


def note_outage(directory: str | None, target: str, down_s: float | None) -> None:
    """Tells the driver this worker's calls to `target` found no server for `down_s` seconds (None: over)."""
    _note(directory, "outage", {"target": target, "down_s": down_s, "at": time.time()})


def note_stop(directory: str | None, kind: str, message: str) -> None:
    """Tells the driver why the job stops: `kind` is the exception's class (ServingUnreachable,
    UnfitModel), `message` its one line. The driver reads it (`read_stop`) instead of Beam's error text."""
    _note(directory, "stop", {"kind": kind, "message": message})


def read_stop(directory: str | None) -> tuple[str, str] | None:
    """Returns (kind, message) of the first stop a worker noted, or None."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.startswith("stop-")) if directory else []
    except OSError:
        return None
    for name in names:
        try:
            with open(os.path.join(directory, name)) as fh:
                record = json.load(fh)
            return record["kind"], record["message"]
        except (OSError, ValueError, KeyError):
            continue
    return None


def read_progress(directory: str) -> dict:
    """Returns the workers' files summed: {"pages": pages read so far, "files": input files done,
    "outage": (target, seconds) or None}."""
    total = {"pages": 0, "files": 0, "outage": None}
    try:
        names = os.listdir(directory)
    except OSError:
        return total
    for name in names:
        if not name.endswith(".json") or name.startswith("stop-"):  # a stop is the driver's to read once
            continue
        try:
            with open(os.path.join(directory, name)) as fh:
                record = json.load(fh)
        except (OSError, ValueError):
            continue  # a file being replaced: the next round counts it
        if name.startswith("outage-"):
            if record["down_s"] is not None and time.time() - record["at"] < 15:
                down = record["down_s"] + time.time() - record["at"]
                if total["outage"] is None or down > total["outage"][1]:
                    total["outage"] = (record["target"], down)
        else:
            total["pages"] += record.get("pages", 0)
            total["files"] += record.get("files", 0)
    return total


class ProgressPrinter(threading.Thread):
    """Prints files done of `files_total`, pages read, pages/s and the time left every `interval` seconds."""

    def __init__(self, directory: str, interval: float = 5.0, files_total: int | None = None,
                 heartbeat: float | None = None):
        """`heartbeat` (streaming): print only when pages were read since the last line, or every `heartbeat`
        seconds to say the watch is alive, not a line every `interval` while nothing arrives."""
        super().__init__(daemon=True)
        self.directory, self.interval, self.files_total = directory, interval, files_total
        self.heartbeat = heartbeat
        self.stop = threading.Event()
        self.started = time.monotonic()

    def __enter__(self) -> "ProgressPrinter":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()

    def run(self) -> None:
        shown_pages, shown_at = 0, time.monotonic()
        while not self.stop.wait(self.interval):
            progress = read_progress(self.directory)
            now = time.monotonic()
            if self.heartbeat and progress["pages"] == shown_pages and not progress["outage"]:
                if now - shown_at < self.heartbeat:
                    continue
                line = f"  watching: nothing new for {now - shown_at:.0f}s ({shown_pages} pages read so far)"
            else:
                line = progress_line(progress, now - self.started, self.files_total)
            shown_pages, shown_at = progress["pages"], now
            if progress["outage"]:
                target, down = progress["outage"]
                line += f"; TF Serving at {target} unreachable for {down:.0f} s, retrying"
            print(line, file=sys.stderr, flush=True)  # sys.stderr of the moment: the terminal


def progress_line(progress: dict, elapsed: float, files_total: int | None) -> str:
    """Formats the progress line: `  12 of 40 files, 18 pages read, 3.6 pages/s, 5s, about 12s left` (the total
    and time left when known)."""
    pages, files = progress["pages"], progress["files"]
    line = f"  {pages} pages read, {pages / elapsed:.1f} pages/s, {elapsed:.0f}s"
    if files_total:
        line = f"  {files} of {files_total} files," + line[1:]
        if 0 < files < files_total:
            line += f", about {elapsed / files * (files_total - files):.0f}s left"
    return line
