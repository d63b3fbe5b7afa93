"""What the dashboard shows, as plain data: one HostState per running session.

Workers write into these objects as events arrive (cheap: a few attribute
stores per sample); a 10 Hz timer on the dashboard reads the hosts marked
dirty and pushes their latest values into widgets. Nothing here touches a
widget, so a flood of samples costs only the stores.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

from results.document import harmful_throttle
from results.labels import backend_mark, is_cpu
from results.rates import Rate, rate_of
from results.stats import finite_number, median
from results.steps import is_step
from results.trial_counts import live_alert

HISTORY_POINTS = 240          # per workload, for the charts


@dataclass
class Series:
    """ops/s and latency over time for one workload variant."""
    t: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY_POINTS))
    ops: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY_POINTS))
    p50: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY_POINTS))
    p99: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY_POINTS))
    tokens: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY_POINTS))


@dataclass
class HostState:
    key: str                                  # unique per session: "scenario@host#n"
    host: str
    scenario: str = ""
    status: str = "starting"                  # starting | running | completed | failed | ...
    message: str = ""
    backend: str | None = None
    hello: dict | None = None
    workload: str = ""                        # of the latest sample
    variant: str = ""
    ops_per_s: float | None = None
    latency_us: dict = field(default_factory=dict)
    gbps: float | None = None
    tokens_per_s: float | None = None         # decode/prefill: the headline of a step workload
    t: float = 0.0                            # engine time of the latest line
    telemetry: dict = field(default_factory=dict)
    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    results: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    samples: int = 0
    expected_results: int = 0
    started: float = field(default_factory=time.monotonic)
    version: int = 0                          # bumped whenever a view should redraw this host
    gpu: str = ""                             # per-GPU sessions: "0", "1", ...; "all": aggregate
    # decode/prefill: the step variant the step panel shows (the latest one sampled) and its
    # latest interval's percentiles
    step_unit: tuple[str, str] | None = None
    step_live: dict = field(default_factory=dict)

    # -- writes from workers ------------------------------------------------------------
    def on_hello(self, data: dict) -> None:
        self.hello = data
        self.backend = data.get("backend")
        plan = data.get("plan") or {}
        repeats = plan.get("repeats") or 1
        units = plan.get("variants") or plan.get("workloads") or []   # variants when told
        if isinstance(units, list) and isinstance(repeats, int):
            self.expected_results = max(self.expected_results, len(units) * repeats)
        self.status = "running"

    def on_sample(self, workload: str, variant: str, ops_per_s: float, latency_us: dict,
                  gbps: float | None, t: float, tokens_per_s: float | None = None) -> None:
        self.workload, self.variant = workload, variant
        self.ops_per_s, self.latency_us, self.gbps, self.t = ops_per_s, latency_us, gbps, t
        self.tokens_per_s = tokens_per_s = finite_number(tokens_per_s)
        self.samples += 1
        s = self.series.get((workload, variant))
        if s is None:
            s = self.series[(workload, variant)] = Series()
        s.t.append(t)
        s.ops.append(ops_per_s)
        s.p50.append(latency_us.get("p50"))
        s.p99.append(latency_us.get("p99"))
        if is_step({"workload": workload}):
            s.tokens.append(tokens_per_s)
            self.step_unit = (workload, variant)
            self.step_live = {"latency_us": latency_us, "tokens_per_s": tokens_per_s}

    def on_telemetry(self, readings: dict, t: float) -> None:
        self.telemetry = readings
        self.t = max(self.t, t)

    def on_result(self, data: dict) -> None:
        self.results.append(data)
        if is_step(data):
            self.step_unit = (data.get("workload") or "", data.get("variant") or "")

    def show_headline(self) -> None:
        """An ended session's row shows its headline figure (roundtrip first, as a saved run's
        summary does; the median over its repeats), not whichever workload happened to run
        last."""
        by_unit: dict[tuple[str, str], list[dict]] = {}
        for r in self.results:
            if isinstance(r.get("ops_per_s"), (int, float)):
                by_unit.setdefault((r.get("workload") or "", r.get("variant") or ""), []).append(r)
        if not by_unit:
            return
        unit = next((u for u in by_unit if u[0] == "roundtrip"), next(iter(by_unit)))
        rows = by_unit[unit]
        self.workload, self.variant = unit
        self.ops_per_s = median([r["ops_per_s"] for r in rows])
        latency: dict = {}
        for q in ("p50", "p99"):
            vals = [v for v in ((r.get("latency_us") or {}).get(q) for r in rows) if v is not None]
            if vals:
                latency[q] = median(vals)
        self.latency_us = latency
        gbps = [r["gbps"] for r in rows if r.get("gbps") is not None]
        self.gbps = median(gbps) if gbps else None
        tokens = [v for v in (finite_number(r.get("tokens_per_s")) for r in rows) if v is not None]
        self.tokens_per_s = median(tokens) if tokens else None
        if self.is_step:          # the step panel shows the variant the row names
            self.step_unit = unit

    # -- reads for views ------------------------------------------------------------------
    @property
    def rate(self) -> Rate:
        """The row's headline rate and its unit (tokens/s for a decode/prefill step)."""
        return rate_of(self.workload, self.ops_per_s, self.tokens_per_s)

    @property
    def is_step(self) -> bool:
        """Whether the row's workload is decode or prefill (tokens/s is then its headline)."""
        return is_step({"workload": self.workload})

    def step_results(self) -> list[dict]:
        """The result lines of the step variant the step panel shows, in arrival order."""
        if self.step_unit is None:
            return []
        return [r for r in self.results
                if (r.get("workload"), r.get("variant")) == self.step_unit]

    @property
    def is_cpu(self) -> bool:
        return is_cpu(self.backend)

    @property
    def backend_label(self) -> str:
        if self.backend is None:
            return "?"
        return backend_mark(self.backend)

    @property
    def label(self) -> str:
        """The grid's Host cell: the host, and the GPU of a per-GPU session."""
        if not self.gpu:
            return self.host
        return f"{self.host} all GPUs" if self.gpu == "all" else f"{self.host} gpu{self.gpu}"

    @property
    def device_name(self) -> str:
        dev = (self.hello or {}).get("device") or {}
        return str(dev.get("name") or "?")

    @property
    def progress(self) -> float:
        if self.status in ("completed",):
            return 1.0
        if not self.expected_results:
            return 0.0
        return min(1.0, len(self.results) / self.expected_results)

    def alerts(self) -> list[str]:
        """Throttling and downtrained PCIe, from telemetry (or hello when no telemetry yet),
        and invalid trials of the headline metric so far (results.trial_counts.live_alert)."""
        out: list[str] = []
        r = self.telemetry
        names = harmful_throttle(r.get("throttle_names"))
        if names:
            out.append("THROTTLING: " + ", ".join(names))
        gen, gmax = r.get("pcie_gen"), r.get("pcie_gen_max")
        width, wmax = r.get("pcie_width"), r.get("pcie_width_max")
        if gen is None and self.hello:
            pcie = (self.hello.get("device") or {}).get("pcie") or {}
            gen, gmax = pcie.get("gen_current"), pcie.get("gen_max")
            width, wmax = pcie.get("width_current"), pcie.get("width_max")
        if isinstance(gen, int) and isinstance(gmax, int) and gen < gmax:
            out.append(f"PCIe DOWNTRAINED: gen {gen} of {gmax}")
        if isinstance(width, int) and isinstance(wmax, int) and width < wmax:
            out.append(f"PCIe DOWNTRAINED: x{width} of x{wmax}")
        if self.results and (validity := live_alert(self.results)):
            out.append(validity)
        return out


class AggregateState(HostState):
    """The all-GPU row of a per-GPU trial: ops/s and GB/s summed over its GPU sessions (they
    run concurrently), p50/p99 the median across them; recomputed only when a member changed."""

    def recompute(self, members: list[HostState]) -> None:
        live = [m for m in members if m.ops_per_s is not None]
        self.ops_per_s = sum(m.ops_per_s for m in live) if live else None
        gb = [m.gbps for m in live if m.gbps is not None]
        self.gbps = sum(gb) if gb else None
        tok = [m.tokens_per_s for m in live if m.tokens_per_s is not None]
        self.tokens_per_s = sum(tok) if tok else None
        lat: dict = {}
        for key in ("p50", "p99"):
            vals = [v for v in (m.latency_us.get(key) for m in live) if v is not None]
            if vals:
                lat[key] = median(vals)
        self.latency_us = lat
        first = members[0] if members else None
        if first is not None:
            self.backend, self.hello = first.backend, first.hello
            self.workload, self.variant = first.workload, first.variant
            self.telemetry = first.telemetry
        states = {m.status for m in members}
        if states & {"starting", "running"}:
            self.status = "running" if "running" in states else "starting"
        elif len(states) == 1:
            self.status = states.pop()
        else:
            self.status = "failed" if "failed" in states else "incomplete"
        self.samples = sum(m.samples for m in members)
        self.expected_results = sum(m.expected_results for m in members)
        self.results_count = sum(len(m.results) for m in members)

    results_count: int = 0

    @property
    def progress(self) -> float:
        if self.status == "completed":
            return 1.0
        if not self.expected_results:
            return 0.0
        return min(1.0, self.results_count / self.expected_results)


def _gpu_order(gpu: str) -> tuple[int, str]:
    return (int(gpu), "") if gpu.isdigit() else (1 << 30, gpu)


class LiveBoard:
    """All sessions of the current plan, in start order, plus the dirty set.

    Per-GPU trials add one row per GPU session and an AggregateState row after them;
    `groups` maps the aggregate's key to its members' keys."""

    def __init__(self) -> None:
        self.hosts: dict[str, HostState] = {}
        self.groups: dict[str, list[str]] = {}
        self.group_of: dict[str, str] = {}
        self.dirty: set[str] = set()
        self.plan_total_runs = 0
        self.plan_done_runs = 0
        self.plan_started: float | None = None
        self.plan_title = ""
        self.replay = False

    def add(self, state: HostState) -> HostState:
        self.hosts[state.key] = state
        self.dirty.add(state.key)
        return state

    def add_new(self, key: str, host: str, scenario: str) -> HostState:
        return self.add(HostState(key=key, host=host, scenario=scenario))

    def add_gpu(self, group: str, key: str, host: str, scenario: str, gpu: str) -> HostState:
        """A GPU session's row, and the group's aggregate row (created with the first GPU,
        kept after the group's GPU rows)."""
        state = HostState(key=key, host=host, scenario=scenario, gpu=gpu)
        members = self.groups.get(group)
        if members is None:
            members = self.groups[group] = []
            self.hosts[key] = state
            self.hosts[group] = AggregateState(key=group, host=host, scenario=scenario, gpu="all")
        else:   # in GPU order, before the aggregate row (dicts keep insertion order)
            items = list(self.hosts.items())
            at = next(i for i, (k, h) in enumerate(items)
                      if k == group or (k in members and _gpu_order(h.gpu) > _gpu_order(gpu)))
            items.insert(at, (key, state))
            self.hosts.clear()       # in place: views hold a reference to this dict
            self.hosts.update(items)
        members.append(key)
        self.group_of[key] = group
        self.dirty.add(key)
        self.dirty.add(group)
        return state

    def take_dirty(self) -> list[HostState]:
        if not self.dirty:
            return []
        keys = list(self.dirty)     # in place: workers hold a reference to this set
        self.dirty.clear()
        if self.group_of:
            groups = {self.group_of[k] for k in keys if k in self.group_of}
            keys += [g for g in groups if g not in keys]
            for g in groups:
                agg = self.hosts.get(g)
                if isinstance(agg, AggregateState):
                    agg.recompute([self.hosts[k] for k in self.groups[g] if k in self.hosts])
        out = []
        for k in keys:
            st = self.hosts.get(k)
            if st is not None:
                st.version += 1
                out.append(st)
        return out

    def clear(self) -> None:
        self.hosts.clear()
        self.groups.clear()
        self.group_of.clear()
        self.dirty.clear()
        self.plan_total_runs = self.plan_done_runs = 0
        self.plan_started = None
        self.plan_title = ""
        self.replay = False

    def progress(self) -> tuple[float, float | None]:
        """(fraction done, seconds left or None) for the whole plan."""
        # a per-GPU trial counts once, through its aggregate row
        hosts = [h for h in self.hosts.values() if h.key not in self.group_of] \
            if self.group_of else list(self.hosts.values())
        total = self.plan_total_runs or len(hosts)
        if not total:
            return 0.0, None
        if self.plan_total_runs:
            running = [h.progress for h in hosts if h.status == "running"]
            done = self.plan_done_runs + sum(running)
        else:   # sessions started one by one (replays, tests): each counts for itself
            done = sum(1.0 if h.status not in ("starting", "running") else h.progress
                       for h in hosts)
        frac = min(1.0, done / total)
        if self.plan_started is None or frac <= 0:
            return frac, None
        elapsed = time.monotonic() - self.plan_started
        return frac, max(0.0, elapsed / frac - elapsed)
