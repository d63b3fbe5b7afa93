"""The rate a result is read by, with its unit: tokens/s for a decode or prefill step (one step
is a batch of tokens, and a service is sized in tokens), ops/s for every other workload.

Every view that prints a result's, a variant's or a run's throughput asks `rate_of` (or one of
the readers below, which only gather the figures it decides on), so that no view labels a
decode step rate "ops/s". A step result without tokens_per_s (a document of an engine that did
not report it) reads in steps/s: its own unit, never ops/s. Pure Python: `list` and History
read this without NumPy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.plausibility import STEP_WORKLOADS

from .format import fmt_value
from .stats import finite_median, finite_number
from .trial_counts import valid_trials

OPS, TOKENS, STEPS = "ops", "tokens", "steps"


@dataclass(frozen=True)
class Rate:
    value: float | None     # None when nothing was measured
    noun: str               # what is counted per second: OPS, TOKENS or STEPS

    @property
    def unit(self) -> str:
        return f"{self.noun}/s"

    def text(self) -> str:
        """`12,345 tokens/s`, `6,977 ops/s`; the empty mark alone without a value."""
        return fmt_value(self.value, self.unit)


def rate_noun(workload: Any) -> str:
    """What a workload's throughput counts: TOKENS for a decode/prefill step, else OPS."""
    return TOKENS if workload in STEP_WORKLOADS else OPS


def rate_of(workload: Any, ops_per_s: Any, tokens_per_s: Any = None) -> Rate:
    """The one place that decides a rate's value and unit (tokens/s for a decode/prefill)."""
    if rate_noun(workload) == TOKENS:
        tokens = finite_number(tokens_per_s)
        if tokens is not None:
            return Rate(tokens, TOKENS)
        return Rate(finite_number(ops_per_s), STEPS)
    return Rate(finite_number(ops_per_s), OPS)


def line_rate(line: dict) -> Rate:
    """A result or sample line's rate, or a run summary's headline (same keys)."""
    return rate_of(line.get("workload"), line.get("ops_per_s"), line.get("tokens_per_s"))


def trial_rate(workload: Any, trial: dict) -> Rate:
    """One result of a variant (a document's trial carries no workload name of its own)."""
    return rate_of(workload, trial.get("ops_per_s"), trial.get("tokens_per_s"))


def variant_rate(wl: dict) -> Rate:
    """A document's workload variant: the medians of its valid results (of all when none is)."""
    trials = valid_trials(wl)
    return rate_of(wl.get("workload"), finite_median([t.get("ops_per_s") for t in trials]),
                   finite_median([t.get("tokens_per_s") for t in trials]))
