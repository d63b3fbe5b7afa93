"""One fleet's hosts: each host's target (name, launcher, per-host request, sshd address for
the per-address connect limit, labels), its state as it goes pending → queued → connecting →
running → its outcome, and the fleet's result, tied together by one run group id.
"""
from __future__ import annotations

import collections
import datetime as _dt
import secrets
from dataclasses import dataclass, field

from scenarios.base import LaunchRequest, Launcher
from scenarios.config import HostConfig
from scenarios.events import CANCELLED, COMPLETED, FAILED, INCOMPLETE, SessionEnded

# Host states before an outcome.
PENDING, QUEUED, CONNECTING, RUNNING = "pending", "queued", "connecting", "running"
OUTCOMES = (COMPLETED, FAILED, INCOMPLETE, CANCELLED)


@dataclass
class FleetTarget:
    name: str
    launcher: Launcher
    request: LaunchRequest | None = None      # per-host override of the fleet's request
    address: str | None = None                # "host:port" of the sshd, for the per-address connect limit
    labels: tuple[str, ...] = ()

    @classmethod
    def for_host(cls, host: HostConfig, launcher: Launcher,
                 request: LaunchRequest | None = None) -> "FleetTarget":
        """A target for a config.toml [hosts.X]."""
        address = f"{host.address}:{host.port or 22}" if host.address else None
        return cls(host.name, launcher, request, address, tuple(host.labels or ()))


@dataclass(slots=True)
class HostStatus:
    """One host's state in a fleet. `hello` holds the hello's facts a fleet needs
    (scenarios.stream.hello_facts: backend, engine version, device name/uuid/PCIe link,
    hostname), not the whole line: that is in `raw_lines` with the rest of the stream."""
    name: str
    state: str = PENDING
    message: str = ""
    attempts: int = 0
    queued_at: float | None = None
    connect_started: float | None = None
    running_since: float | None = None
    ended_at: float | None = None
    last_event_at: float | None = None
    samples: int = 0
    telemetry: int = 0
    results: int = 0
    hello: dict | None = None
    last_ops_per_s: float | None = None
    ended: SessionEnded | None = None
    raw_lines: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str | None:
        return self.state if self.state in OUTCOMES else None

    @property
    def gpu_model(self) -> str | None:
        return (self.hello or {}).get("device", {}).get("name") if self.hello else None


@dataclass
class FleetResult:
    group: str
    started_at: float
    ended_at: float
    statuses: dict[str, HostStatus]
    descriptor_exhausted: bool = False

    def counts(self) -> dict[str, int]:
        return state_counts(self.statuses)

    @property
    def ok(self) -> bool:
        return all(s.state == COMPLETED for s in self.statuses.values())


def state_counts(statuses: dict[str, HostStatus]) -> dict[str, int]:
    """How many hosts are in each state."""
    return dict(collections.Counter(s.state for s in statuses.values()))


def new_group_id(prefix: str = "fleet") -> str:
    """A run group id: time-sortable and unique, e.g. fleet-20261125T203112Z-3f9a2c."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{secrets.token_hex(3)}"
