"""A progress callback for long generation jobs: a line on stderr every few seconds, and at the end."""

from __future__ import annotations

import sys
import time

__all__ = ["progress_printer"]


def progress_printer(line: str, every_s: float = 2.0):
    """A `progress(done, total)` callback printing `line.format(done=..., total=...)` at most every `every_s`."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        if done == total or time.monotonic() - last[0] > every_s:
            last[0] = time.monotonic()
            print(line.format(done=done, total=total), file=sys.stderr, flush=True)
    return report
