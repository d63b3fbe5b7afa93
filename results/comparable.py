"""Which values of a metric the statistics may use, and when a metric cannot be compared.

The statistics take a metric's finite positive values from the trials they may use
(the valid ones; all of them with --include-invalid). Nothing is dropped silently:

    INVALID          a side's trials say `valid` beside a value that cannot be (negative,
                     zero, NaN, infinite, not a number): the document contradicts itself,
                     so none of that side's figures for the metric are believed
    NOT COMPARABLE   a side has no usable value for a metric the other side measured: no
                     valid trial, an INVALID run, or a variant it planned and never measured

Either is one row with the reason ("candidate: 0 valid of 10 results") and fails the
`compare --fail-on` gate whatever the level asked (results.stats.VERDICT_RANK), because a
gate that passes on what it could not judge is a gate that lies. Invalid trials used
because of --include-invalid whose value is unusable are left out with a visible count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

NOT_COMPARABLE, INVALID = "NOT COMPARABLE", "INVALID"


def usable(value: Any) -> bool:
    """A figure the statistics can use: a finite positive number (never a bool)."""
    if type(value) not in (float, int):
        return False
    try:
        return 0 < float(value) < math.inf
    except OverflowError:   # an integer beyond any float (Python's json reads any size)
        return False


@dataclass(frozen=True)
class SideValues:
    """One side's view of one metric of one workload variant."""
    values: list[float]       # usable values of the trials the statistics may use
    trials: int               # every trial of the variant on this side
    impossible: int           # trials saying valid whose value is there but cannot be
    left_out: int             # --include-invalid: invalid trials without a usable value
    reported: bool            # some trial of this side carries the metric at all

    def problem(self, side: str, label: str) -> tuple[str, str] | None:
        """(verdict, reason) when this side gives the metric nothing to compare, else None."""
        if self.impossible:
            return INVALID, (f"{side}: {self.impossible} of {self.trials} results say valid "
                             f"beside a {label} that is not finite and positive")
        if not self.trials:
            return NOT_COMPARABLE, f"{side}: planned, but no result was measured"
        if not self.reported:   # e.g. a seed figure imported as a round trip: no GB/s in it
            return NOT_COMPARABLE, f"{side}: none of its {self.trials} results reports a {label}"
        if not self.values:
            return NOT_COMPARABLE, f"{side}: 0 valid of {self.trials} results"
        return None

    def note(self, side: str) -> str | None:
        if self.left_out:
            return f"{side}: {self.left_out} invalid results without a usable value left out"
        return None


def side_values(every: Sequence[dict], used: Sequence[dict], get: Callable[[dict], Any]
                ) -> SideValues:
    """`every`: all trials of the variant on this side; `used`: those the statistics may use
    (valid ones, or all with --include-invalid, none of an INVALID run)."""
    values: list[float] = []
    impossible = left_out = 0
    for t in used:
        v = get(t)
        if usable(v):
            values.append(float(v))
        elif t.get("valid", True) is not False and v is not None:
            impossible += 1
        elif v is not None:
            left_out += 1
    return SideValues(values, len(every), impossible, left_out,
                      any(get(t) is not None for t in every))


def planned_variants(doc: dict) -> set[tuple[str, str]]:
    """(workload, variant) pairs the run's engine planned (its hello's plan), when it said."""
    plan = (doc.get("hello") or {}).get("plan") or {}
    out = set()
    for v in plan.get("variants") or []:
        if isinstance(v, dict) and isinstance(v.get("workload"), str):
            out.add((v["workload"], str(v.get("variant") or "")))
    return out
