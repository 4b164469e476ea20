"""Flags a command does not know: Beam's pass through, our own in Beam's spelling are ours, typos stop the command.

`formdigits run` hands the flags it does not know to Beam, and Beam drops what it does not know either:
a typo (`--tempaltes`) used to run the job without templates and exit 0. Here a flag is passed on only
when Beam's `PipelineOptions` knows it; `--temp_location`, Beam's spelling of our `--temp-location`, is
our option; anything else fails with one line naming the nearest flag.
"""

from __future__ import annotations

import argparse
import difflib
import functools

__all__ = ["respell", "unknown_flag_problem"]


def _flag_name(token: str) -> str | None:
    return token.split("=", 1)[0] if token.startswith("--") and len(token) > 2 else None


def respell(tokens: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`tokens` with Beam's underscore spellings of this parser's options (`--temp_location`) as its own."""
    ours = set(parser._option_string_actions)
    out = []
    for token in tokens:
        name = _flag_name(token)
        hyphened = name.replace("_", "-") if name else None
        out.append(token.replace(name, hyphened, 1) if name and name not in ours and hyphened in ours else token)
    return out


@functools.cache
def beam_flags() -> frozenset[str]:
    """Every `--flag` Beam's PipelineOptions (all its option groups) knows."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return frozenset(f"--{name}" for name in PipelineOptions([]).get_all_options(retain_unknown_options=False))


def unknown_flag_problem(extra: list[str], parser: argparse.ArgumentParser, beam: bool) -> str | None:
    """One line for the first flag neither the command nor (when `beam`) Beam knows; None when all are known."""
    for token in extra:
        name = _flag_name(token)
        if name is None and token.startswith("-"):
            name = token
        if name is None or (beam and name in beam_flags()):
            continue
        ours = [flag for flag in parser._option_string_actions if flag.startswith("--")]
        nearest = difflib.get_close_matches(name, ours, n=1, cutoff=0.6) or (
            difflib.get_close_matches(name, sorted(beam_flags()), n=1, cutoff=0.75) if beam else [])
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        return f"unrecognized argument {name}{hint}" + (" (flags Beam's PipelineOptions knows pass through)"
                                                          if beam and not nearest else "")
    return None
