"""What a running plan tells who watches it (gpubench/runner.py PlanRunner): the CLI's
progress lines and the TUI's dashboard read these; neither needs the runner's machinery.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from gpubench.trial_order import TrialOrder, TrialSlot


@dataclass(frozen=True)
class PlanStarted:
    group_id: str
    seed: int
    order: TrialOrder


@dataclass(frozen=True)
class TrialStarted:
    index: int            # 0-based position in the plan
    total: int
    slot: TrialSlot


@dataclass(frozen=True)
class TrialSession:
    """A session the plan started, as the runner hands it to a `read_session` hook (the TUI
    takes it into its pump like a quick test's). `gpu` is the GPU's tag ({index, uuid, name,
    ...}) when the trial runs one session per GPU."""
    index: int
    slot: TrialSlot
    gpu: dict | None = None


@dataclass(frozen=True)
class TrialEvent:
    """An event of the running session (scenarios.events: Hello, Sample, Result, Status...),
    when the runner reads its sessions itself (no `read_session` hook: the CLI).
    `gpu` as in TrialSession."""
    index: int
    slot: TrialSlot
    event: Any
    gpu: dict | None = None


@dataclass(frozen=True)
class TrialFinished:
    index: int
    total: int
    slot: TrialSlot
    outcome: str
    message: str
    results: int
    layer_reasons: tuple[str, ...] = ()
    gpus: tuple[int, ...] = ()             # the GPUs of a per-GPU trial (their indexes)


@dataclass(frozen=True)
class RunSaved:
    scenario: str
    run_id: str
    path: str
    validity: str
    complete: bool


@dataclass(frozen=True)
class SaveFailed:
    scenario: str
    message: str


@dataclass(frozen=True)
class RunNotSaved:
    """No session of the scenario started: there is nothing to save (no document)."""
    scenario: str
    message: str          # one line: how many sessions failed, and the first one's error


@dataclass(frozen=True)
class PlanFinished:
    group_id: str
    run_ids: tuple[str, ...]
    complete: bool
    failed_sessions: int


RunnerEvent = Union[PlanStarted, TrialStarted, TrialEvent, TrialFinished, RunSaved, SaveFailed,
                    PlanFinished]
