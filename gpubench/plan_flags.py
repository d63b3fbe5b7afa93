"""The plan flags, declared once: every command that plans engine sessions (`run`, `selftest`,
`fleet`, `check`) takes --trials, --workloads, --backend, --duration, --warmup and --repeats
with the same types, ranges (scenarios.limits, the ranges config.toml refuses) and choices.

    add_plan_flags(parser)                                  # all six, defaults None
    add_plan_flags(group, flags=("backend", "duration"), defaults={"backend": "auto"},
                   help_text={"duration": "seconds per window"})

A command passes its own defaults where it has them and its own help where the default help
does not fit it; in --help they come in PLAN_FLAGS's order. This module stands beside the
commands, not in gpubench/cli/: gpubench.cli imports selftest, checks and fleet to register
them, and they import this.
"""
from __future__ import annotations

import argparse
from typing import Any, Mapping, Sequence

from engine.vocabulary import BACKEND_CHOICES
from scenarios import limits
from scenarios.limits import cli_number

# flag -> keyword arguments of add_argument (the default help included)
_FLAGS: dict[str, dict[str, Any]] = {
    "trials": dict(type=cli_number(int, limits.TRIALS),
                   help="engine sessions per scenario ([defaults] trials)"),
    "backend": dict(choices=BACKEND_CHOICES,
                    help="engine backend: auto (CuPy if it finds a GPU), cupy or numpy-cpu "
                         "(a CPU figure, not a GPU one)"),
    "workloads": dict(metavar="W1,W2", help="comma-separated workloads"),
    "duration": dict(type=cli_number(float, limits.DURATION_S), metavar="S",
                     help="measured seconds per repeat"),
    "warmup": dict(type=cli_number(float, limits.WARMUP_S), metavar="S",
                   help="warm-up seconds"),
    "repeats": dict(type=cli_number(int, limits.REPEATS),
                    help="result lines per workload per session"),
}
PLAN_FLAGS = tuple(_FLAGS)


def add_plan_flags(parser: argparse.ArgumentParser, *, flags: Sequence[str] = PLAN_FLAGS,
                   defaults: Mapping[str, Any] | None = None,
                   help_text: Mapping[str, str | None] | None = None) -> None:
    """Add the plan flags named in `flags` to `parser` (or an argument group of one).
    `defaults` and `help_text` replace a flag's default (None) and help; a help of None
    leaves it out."""
    defaults, help_text = defaults or {}, help_text or {}
    unknown = (set(flags) - set(_FLAGS)) | (set(defaults) - set(flags)) \
        | (set(help_text) - set(flags))
    if unknown:
        raise ValueError(f"not a plan flag of this command: {', '.join(sorted(unknown))}")
    for name in PLAN_FLAGS:
        if name not in flags:
            continue
        kwargs = dict(_FLAGS[name])
        if name in help_text:
            kwargs["help"] = help_text[name]
        if name in defaults:
            kwargs["default"] = defaults[name]
        parser.add_argument(f"--{name}", **kwargs)
