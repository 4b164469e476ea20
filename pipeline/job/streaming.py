"""Local streaming: new files under the input pattern go through the Beam graph in micro-batches.

The streaming DirectRunner here never fires windows or processing-time
triggers, so locally the driver watches the pattern itself and sends each set
of new, fully written files through the same Beam graph as a bounded run.
Rows therefore land (and are queryable) a few seconds after a file arrives.
Dataflow uses the true streaming graph (Pub/Sub notifications, windows).

- A file is read once its size and modification time have stood still for
  `settle_seconds` (a scanner or a copy may still be writing it).
- A file that fails is a rejects row of its own; a batch that fails as a
  whole is tried again a file at a time, so one poison file never holds back
  the others, and a file that fails alone is rejected once.
- Ctrl-C or SIGTERM drains: stop watching, finish and write the batch in
  flight. A second Ctrl-C stops at once; what was staged is still whole pages.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from typing import Callable

from apache_beam.io.filesystems import FileSystems

from pipeline.output.write import stage_rows
from pipeline.rows import reject

__all__ = ["watch_micro_batches", "Settler"]


class Settler:
    """Which matched files have stood still long enough to read, and have not been read in that version."""

    def __init__(self, settle_seconds: float):
        self.settle_seconds = settle_seconds
        self.seen: dict[str, tuple] = {}        # path -> (size, mtime) read
        self.still: dict[str, tuple] = {}       # path -> ((size, mtime), since when it has not changed)

    def ready(self, pattern: str, now: float | None = None) -> list:
        now = time.monotonic() if now is None else now
        try:
            matches = FileSystems.match([pattern])[0].metadata_list
        except Exception:  # noqa: BLE001 - nothing there yet
            return []
        out = []
        for m in matches:
            version = (m.size_in_bytes, m.last_updated_in_seconds)
            if self.seen.get(m.path) == version:
                continue
            previous = self.still.get(m.path)
            if previous is None or previous[0] != version:
                self.still[m.path] = (version, now)
            elif now - previous[1] >= self.settle_seconds:
                out.append(m)
        return sorted(out, key=lambda m: m.path)

    def done(self, metadata) -> None:
        self.seen[metadata.path] = (metadata.size_in_bytes, metadata.last_updated_in_seconds)
        self.still.pop(metadata.path, None)


class _Stopper:
    """First Ctrl-C (or SIGTERM): drain. Second Ctrl-C: stop now."""

    def __init__(self):
        self.draining = threading.Event()
        self.now = False

    def __call__(self, signum, _frame):
        if self.draining.is_set() and signum == signal.SIGINT:
            self.now = True  # Beam may catch the interrupt inside a step: the flag says what it was
            raise KeyboardInterrupt
        self.draining.set()
        print("formdigits run: stopping after the batch in flight is written (Ctrl-C again to stop now)",
              file=sys.stderr, flush=True)


def watch_micro_batches(cfg, run_batch: Callable[[object], dict], add_summary: Callable[[dict], None],
                        fatal: tuple[type, ...] = ()) -> None:
    """Runs `run_batch(cfg for the new files)` for each set of settled new files until stopped.

    Args:
        cfg: the job's RunConfig (its `input.pattern` is the glob watched).
        run_batch: runs the bounded graph over a RunConfig whose input is a list of files; returns its counts.
        add_summary: receives each batch's counts.
        fatal: exceptions that end the watch (the server gone for good) rather than a batch.
    """
    stopper = _Stopper()
    previous = {sig: signal.signal(sig, stopper) for sig in (signal.SIGTERM, signal.SIGINT)}
    settler = Settler(cfg.input.settle_seconds)
    alone: set[str] = set()   # files of a failed batch: tried one at a time
    deadline = time.monotonic() + cfg.input.stop_after if cfg.input.stop_after else None
    print(f"formdigits run: watching {cfg.input.pattern} every {cfg.input.poll_seconds:g}s (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    try:
        while not stopper.draining.is_set() and (deadline is None or time.monotonic() < deadline):
            new = settler.ready(cfg.input.pattern)
            batches = [[m] for m in new if m.path in alone] + [[m for m in new if m.path not in alone]]
            for batch in (b for b in batches if b):
                try:
                    _run_one(cfg, batch, run_batch, add_summary, settler, alone, fatal)
                finally:
                    if stopper.now:
                        raise KeyboardInterrupt
            stopper.draining.wait(cfg.input.poll_seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if stopper.draining.is_set():
            # Drained already: a second Ctrl-C arriving while the job winds down (or after the last
            # batch) still means "stop now", exit 130, not an interpreter killed by SIGINT.
            signal.signal(signal.SIGINT, _stop_now)


def _stop_now(_signum, _frame):
    raise SystemExit(130)


def _run_one(cfg, batch: list, run_batch, add_summary, settler: Settler, alone: set, fatal) -> None:
    batch_cfg = dataclasses.replace(cfg, input=dataclasses.replace(cfg.input, pattern=tuple(m.path for m in batch),
                                                                   streaming=False))
    try:
        counts = run_batch(batch_cfg)
        add_summary(counts)
        rejects = counts.get("rejects", 0)
        said = (f"  {len(batch)} new file(s): {counts.get('pages', 0)} pages, {counts.get('fields', 0)} fields "
                f"written, {counts.get('needs_review', 0)} need review")
        if rejects:
            said += f", {rejects} reject{'s' if rejects != 1 else ''} (the rejects table says why)"
        print(said, file=sys.stderr, flush=True)
    except fatal:
        raise
    except Exception as exc:  # noqa: BLE001 - the batch, not the watch, failed
        if len(batch) > 1:
            alone.update(m.path for m in batch)
            print(f"formdigits run: a batch of {len(batch)} files failed; trying them one at a time",
                  file=sys.stderr, flush=True)
            return
        _reject_file(cfg, batch[0].path, exc)
    for m in batch:
        settler.done(m)
        alone.discard(m.path)


def _reject_file(cfg, path: str, exc: Exception) -> None:
    """A file that failed a run of its own: one rejects row, staged like any other, and not tried again."""
    message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    stage_rows(cfg.output.location, {"rejects": [reject(path, None, "run", message, type(exc).__name__)]},
               cfg.run_id)
    print(f"formdigits run: {path} failed on its own and is rejected: {message[:200]}", file=sys.stderr, flush=True)
