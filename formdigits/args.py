"""Argument types and the parser class every command shares.

Arguments are checked before anything heavy (TensorFlow, Beam) is imported,
so a wrong flag fails in well under a second with one line saying what to do.
"""

from __future__ import annotations

import argparse

__all__ = ["OneLineParser", "positive_int", "share"]


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as a single line."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value
