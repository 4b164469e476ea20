"""The `formdigits` command: one entry point, one subcommand per job.

This module only parses, calls and prints: each command's parser and the call
it makes live in `formdigits/commands/`, and the work in the packages they
call (`pipeline`, `serving`, `model_export`, `corpus`, `bench`).
"""

from __future__ import annotations

import argparse
import os
import sys

from formdigits.args import OneLineParser
from formdigits.commands import bench, data, jobs, models, review, template
from formdigits.flags import respell, unknown_flag_problem

__all__ = ["main", "build_parser"]

COMMAND_GROUPS = (models, data, jobs, review, bench, template)
# Commands whose unknown flags Beam knows are passed on (`run` hands them to Beam: --direct_num_workers,
# --machine_type...); any other unknown flag stops the command (formdigits/flags.py).
PASS_THROUGH = {"run"}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="formdigits", description="Read handwritten digits from scanned forms at scale.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter is noise for a command-line user.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args, extra = parser.parse_known_args(argv)
    command_parser = parser._subparsers._group_actions[0].choices[args.command]  # for one-line errors
    respelt = respell(argv, command_parser) if extra else argv
    if respelt != argv:  # --temp_location: Beam's spelling of our own option
        args, extra = parser.parse_known_args(respelt)
    problem = unknown_flag_problem(extra, command_parser, beam=args.command in PASS_THROUGH) if extra else None
    if problem:
        command_parser.error(problem)
    if args.command in PASS_THROUGH:
        return args.func(args, command_parser, extra)
    if extra:
        command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args, command_parser)


if __name__ == "__main__":
    sys.exit(main())
