"""Local streaming: new files under the input pattern go through the Beam graph in micro-batches.

The streaming DirectRunner here never fires windows or processing-time
triggers, so locally the driver watches the pattern itself and sends each set
of new, fully written files through the same Beam graph as a bounded run.
Rows therefore land (and are queryable) a few seconds after a file arrives.
Dataflow uses the true streaming graph (Pub/Sub notifications, windows).
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from typing import Callable

from apache_beam.io.filesystems import FileSystems

__all__ = ["watch_micro_batches"]


def _new_files(pattern: str, seen: dict[str, int]) -> list:
    """Files matching `pattern` not yet processed in their current version, written at least a second ago."""
    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - nothing there yet
        return []
    now_us = time.time() * 1e6
    return [m for m in matches if seen.get(m.path) != m.last_updated_in_seconds
            and now_us - m.last_updated_in_seconds * 1e6 > 1e6]  # still being copied? next poll


def watch_micro_batches(cfg, run_batch: Callable[[object], dict], add_summary: Callable[[dict], None]) -> None:
    """Runs `run_batch(cfg for the new files)` for each set of new files until stopped.

    Ctrl-C or SIGTERM stops watching; a micro-batch already running is
    finished first, so nothing is left half-written.

    Args:
        cfg: the job's RunConfig (its `input` is the pattern watched).
        run_batch: runs the bounded graph over a RunConfig whose input is a list of files; returns its counts.
        add_summary: receives each batch's counts.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    seen: dict[str, int] = {}
    deadline = time.monotonic() + cfg.stop_after if cfg.stop_after else None
    print(f"formdigits run: watching {cfg.input} every {cfg.poll_seconds:g}s (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            new = _new_files(cfg.input, seen)
            if new:
                batch_cfg = dataclasses.replace(cfg, input=sorted(m.path for m in new), streaming=False)
                try:
                    add_summary(run_batch(batch_cfg))
                except Exception as exc:  # noqa: BLE001 - keep watching; these files are tried again
                    print(f"formdigits run: a batch of {len(new)} file(s) failed, retrying next poll: "
                          f"{str(exc).splitlines()[-1][:300]}", file=sys.stderr, flush=True)
                else:
                    seen.update((m.path, m.last_updated_in_seconds) for m in new)
                    print(f"  {len(new)} new file(s) written", file=sys.stderr, flush=True)
            stop.wait(cfg.poll_seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
