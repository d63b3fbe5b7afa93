"""The ranges of the numbers a plan takes and the names it passes on, shared by config.toml
(scenarios.config) and the command line (`gpubench run --trials ...`), so both refuse the same
values with the same words.

An upper bound is where a value stops being a plan and becomes a typo (or an attack): the
point is one clear line at load instead of a plan that never ends, a list sized by the
number, or an engine that rejects every session.
"""
from __future__ import annotations

import argparse
import math
import re
from typing import NamedTuple

from engine.redact import ENV_NAME


class Range(NamedTuple):
    low: float
    high: float

    def problem(self, value: int | float) -> str | None:
        """Why `value` is refused, or None. NaN and infinities are never in a range."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number (got {shown(value)})"
        if value < self.low:
            return f"must be at least {self.low:g} (got {shown(value)})"
        if value > self.high:
            return f"must be at most {self.high:g} (got {shown(value)})"
        return None


# One trial is one engine process (about a second just to start): 100,000 trials of one
# scenario run for more than a day even at the shortest plan, weeks at the defaults.
TRIALS = Range(1, 100_000)
# Result lines per workload per session; each is a measured window of at least 0.01 s.
REPEATS = Range(1, 10_000)
# Seconds of one measured window / one warm-up: an hour is far past any useful window.
DURATION_S = Range(0.01, 3600.0)
WARMUP_S = Range(0.0, 3600.0)
TELEMETRY_INTERVAL_S = Range(0.05, 3600.0)
# The self-test's delay slots and the engine's samples sorted into them: a minute is far past a
# slot that gives pairs within one window
SELFTEST_SLOT_S = Range(0.01, 60.0)
SAMPLE_INTERVAL_S = Range(0.001, 60.0)
POD_TIMEOUT_S = Range(1.0, 86400.0)          # a pod that is not running after a day never will
# An overhead target is a percentage of the baseline: at 100 % a candidate with no throughput
# left would still pass, so a larger target can only be a typo.
TARGET_PCT = Range(0.0, 100.0)
PORT = Range(1, 65535)
GPUS_PER_POD = Range(1, 64)                  # nodes offer 8, at most 16 GPUs to one pod
TOLERATION_SECONDS = Range(0, 2**63 - 1)     # Kubernetes keeps it as an int64

# Names of hosts, clusters and scenarios end up in run ids, file names, pod names and command
# lines: plain words only, and never starting with '-' (an option) or '.'.
TABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def shown(value: object, limit: int = 60) -> str:
    """repr() of a value for an error line, cut short: a hostile value never floods the line
    (and ints past Python's digit limit, which repr() refuses, are summarised)."""
    try:
        text = repr(value)
    except ValueError:
        return f"an integer of more than {limit} digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def env_name_problem(name: str) -> str | None:
    if ENV_NAME.fullmatch(name):
        return None
    return (f"not an environment variable name: {shown(name)} (letters, digits and _, "
            f"not starting with a digit)")


def cli_number(kind: type, bounds: Range):
    """An argparse `type=` that parses `kind` and refuses what config.toml refuses; argparse
    turns the ArgumentTypeError into `argument --trials: must be at most 100000 (got ...)`."""
    def parse(text: str):
        value = kind(text)       # ValueError: argparse says `invalid int value: 'x'`
        problem = bounds.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value
    parse.__name__ = kind.__name__  # named in argparse's `invalid int value` message
    return parse
