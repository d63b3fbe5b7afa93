"""The order of a plan's trials: rounds of every scenario once, each round in a seeded random
order, generated as the plan goes (a plan of 100,000 trials holds one round in memory, not a
list of 100,000 slots).

Round r runs trial r of every scenario, shuffled by `random.Random(f"{seed}:{r}")`: drift over
time hits all scenarios alike (each has one trial per round) instead of biasing whichever ran
last, and any slot is found from (seed, scenarios, trials) alone, so a document stores the seed
and the slots it ran, never the whole plan.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Iterator, overload


@dataclass(frozen=True)
class TrialSlot:
    scenario: str
    trial: int


class TrialOrder(Sequence):
    """Every (scenario, trial) once, round by round; a read-only sequence of TrialSlot."""

    def __init__(self, names: Sequence[str], trials: int, seed: int):
        self.names, self.trials, self.seed = tuple(names), int(trials), seed

    def round(self, r: int) -> list[str]:
        """The scenarios of round `r` in the order they run."""
        names = list(self.names)
        random.Random(f"{self.seed}:{r}").shuffle(names)
        return names

    def __len__(self) -> int:
        return self.trials * len(self.names)

    @overload
    def __getitem__(self, index: int) -> TrialSlot: ...
    @overload
    def __getitem__(self, index: slice) -> list[TrialSlot]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        position = range(len(self))[index]          # IndexError past the end, negatives count back
        r, k = divmod(position, len(self.names))
        return TrialSlot(self.round(r)[k], r)

    def __iter__(self) -> Iterator[TrialSlot]:
        for r in range(self.trials):
            for name in self.round(r):
                yield TrialSlot(name, r)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TrialOrder):
            return (self.names, self.trials, self.seed) == (other.names, other.trials, other.seed)
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.names, self.trials, self.seed))

    def __repr__(self) -> str:
        return f"TrialOrder({list(self.names)!r}, trials={self.trials}, seed={self.seed!r})"


def interleave_order(names: Sequence[str], trials: int, seed: int) -> TrialOrder:
    return TrialOrder(names, trials, seed)
