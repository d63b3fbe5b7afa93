"""Messages workers post to the app: small dataclasses, one job each.

Samples and telemetry are NOT messages: workers write them into the live board
(tui/live.py) and the dashboard's timer applies them at a bounded rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class HelloReceived(Message):
    key: str
    hello: dict[str, Any]


@dataclass
class EngineErrorReceived(Message):
    key: str
    code: str
    message: str
    fatal: bool


@dataclass
class SessionFinished(Message):
    key: str
    outcome: str
    message: str = ""


@dataclass
class LaunchFailed(Message):
    key: str
    host: str
    message: str


@dataclass
class RunSaved(Message):
    run_id: str
    scenario: str = ""


@dataclass
class PlanFinished(Message):
    trials: int                 # the plan's trials (one run per scenario holds them)
    failed: int = 0
    saved: list[str] = field(default_factory=list)
    complete: bool = True       # False: cancelled; the saved runs are marked incomplete


@dataclass
class HostProbed(Message):
    host: str
    reachable: bool | None
    detail: str = ""
