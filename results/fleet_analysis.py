"""Fleet comparison: one plan's figures from many hosts, side by side, with outliers.

Pure Python (no Textual, no asyncssh, nothing from scenarios/ or gpubench/): the
input is what each host's engine said — its validated protocol lines as dicts —
plus how its session ended. Three steps:

    summaries = [summarize_host(name, outcome, lines, message) for ...]
    report = analyze_fleet(summaries)              # outliers + likely causes
    print(format_fleet_table(report))              # results/fleet_table.py
    rows = fleet_overhead(baseline_summaries, candidate_summaries, target_pct=5.0)

Outliers are found per metric with a robust z-score, z = (x - median) / (1.4826 * MAD),
over the hosts that share the fleet's most common GPU model (hosts with another model,
or another backend, are reported and left out of every statistic). A host is flagged when
|z| >= `z_threshold` (3.5, Iglewicz & Hoaglin) *and* it is at least `min_deviation_pct`
away from the median, so a homogeneous fleet whose MAD is tiny raises no false alarms.
The likely cause comes from the host's own facts: PCIe link below its maximum under
load, throttle reasons other than the benign ones (engine/throttle.py: idle, application
clocks, sync boost, display clock; the same set `show` and the dashboard use), SM clocks
below the maximum, other processes on the GPU. The statistics are results/stats.py's and
results/inference.py's.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from engine.throttle import BENIGN_MASK, BENIGN_THROTTLE, KNOWN_MASK, THROTTLE_BITS

from .rates import line_rate
from .schema import COMPLETED
from .stats import finite_number, median, overhead_pct, robust_z, verdict_for

Z_THRESHOLD = 3.5
MIN_DEVIATION_PCT = 5.0
MIN_HOSTS_FOR_OUTLIERS = 5
MAD_FLOOR_REL = 0.005           # scale never below 0.5 % of the median (identical hosts)
CLOCK_LOW_FRACTION = 0.90       # SM clock under load below 90 % of max is worth a note
UNDER_LOAD_UTIL_PCT = 10.0      # telemetry with less GPU utilisation counts as idle

NO_DATA = "NO DATA"


# ---- per-host summary ---------------------------------------------------------------------

@dataclass
class Finding:
    """One fact about a host that can slow it down, with the evidence in words."""
    kind: str        # pcie | throttle | clocks | processes
    text: str


@dataclass
class MetricValue:
    value: float
    trials: int      # result lines behind the median


@dataclass
class HostSummary:
    host: str
    outcome: str
    message: str = ""
    backend: str | None = None
    gpu_model: str | None = None
    driver: str | None = None
    pcie: dict[str, int | None] = field(default_factory=dict)   # gen/width current (under load) and max
    sm_clock_mhz: float | None = None        # median under load
    sm_clock_max_mhz: float | None = None
    throttle: dict[str, int] = field(default_factory=dict)      # reason -> telemetry readings with it
    telemetry_readings: int = 0
    other_processes: int | None = None
    samples: int = 0
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def model_key(self) -> str:
        return f"{self.gpu_model or 'unknown'} [{self.backend or '?'}]"


def metric_names(workload: str, variant: str, rate_unit: str = "ops/s") -> tuple[str, str]:
    """A variant's rate and latency metric names; the rate's unit is results.rates' (a decode
    host is compared in tokens/s)."""
    base = f"{workload}/{variant}"
    return f"{base} {rate_unit}", f"{base} p50 us"


def higher_is_better(metric: str) -> bool:
    return not metric.endswith(" us")


def _throttle_names(readings: Mapping[str, Any]) -> list[str]:
    names = readings.get("throttle_names")
    if isinstance(names, list) and names:
        return [str(n) for n in names if str(n).lower() not in BENIGN_THROTTLE]
    mask = readings.get("throttle_reasons")
    if isinstance(mask, int) and not isinstance(mask, bool):
        mask &= ~BENIGN_MASK
        return [name for bit, name in THROTTLE_BITS.items() if mask & bit] + (
            [f"0x{mask & ~KNOWN_MASK:x}"] if mask & ~KNOWN_MASK else [])
    return []


def _other_processes(readings: Mapping[str, Any]) -> int | None:
    count = readings.get("other_processes")
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    procs = readings.get("processes")
    if isinstance(procs, list):
        return sum(1 for p in procs if not (isinstance(p, dict) and p.get("self")))
    return None


def summarize_host(host: str, outcome: str, lines: Iterable[Mapping[str, Any]],
                   message: str = "") -> HostSummary:
    """Reduce one host's protocol lines (from one or more sessions) to its figures and facts."""
    s = HostSummary(host=host, outcome=outcome, message=message)
    hello_pcie: dict[str, Any] = {}
    loaded_gen: list[float] = []
    loaded_width: list[float] = []
    any_gen: list[float] = []
    any_width: list[float] = []
    clocks: list[float] = []
    per_metric: dict[str, list[float]] = {}
    for line in lines:
        kind = line.get("type")
        if kind == "hello":
            device = line.get("device") or {}
            s.backend = line.get("backend", s.backend)
            s.gpu_model = device.get("name") or s.gpu_model
            s.driver = device.get("driver") or s.driver
            hello_pcie = device.get("pcie") or hello_pcie
            s.sm_clock_max_mhz = finite_number((device.get("clocks_max") or {}).get("sm_mhz")) or s.sm_clock_max_mhz
            procs = _other_processes(device)
            if procs is not None:
                s.other_processes = max(procs, s.other_processes or 0)
        elif kind == "sample":
            s.samples += 1
        elif kind == "telemetry":
            r = line.get("readings") or {}
            s.telemetry_readings += 1
            util = finite_number(r.get("gpu_util_pct"))
            loaded = util is None or util >= UNDER_LOAD_UTIL_PCT
            gen, width = finite_number(r.get("pcie_gen")), finite_number(r.get("pcie_width"))
            for value, every, under in ((gen, any_gen, loaded_gen), (width, any_width, loaded_width)):
                if value is not None:
                    every.append(value)
                    if loaded:
                        under.append(value)
            for key, target in (("pcie_gen_max", "gen_max"), ("pcie_width_max", "width_max")):
                if finite_number(r.get(key)) is not None:
                    hello_pcie = {**hello_pcie, target: int(r[key])}
            if loaded and finite_number(r.get("sm_clock_mhz")) is not None:
                clocks.append(float(r["sm_clock_mhz"]))
            for name in _throttle_names(r):
                s.throttle[name] = s.throttle.get(name, 0) + 1
            procs = _other_processes(r)
            if procs is not None:
                s.other_processes = max(procs, s.other_processes or 0)
        elif kind == "result":
            rate = line_rate(line)
            ops, lat = metric_names(str(line.get("workload")), str(line.get("variant")),
                                    rate.unit)
            if rate.value is not None:
                per_metric.setdefault(ops, []).append(rate.value)
            if (v := finite_number((line.get("latency_us") or {}).get("p50"))) is not None:
                per_metric.setdefault(lat, []).append(v)
    # The link as trained under load: the best seen while busy (idle GPUs downshift).
    gen = max(loaded_gen or any_gen) if (loaded_gen or any_gen) else finite_number(hello_pcie.get("gen_current"))
    width = (max(loaded_width or any_width) if (loaded_width or any_width)
             else finite_number(hello_pcie.get("width_current")))
    s.pcie = {"gen": None if gen is None else int(gen),
              "width": None if width is None else int(width),
              "gen_max": hello_pcie.get("gen_max"), "width_max": hello_pcie.get("width_max"),
              "under_load": bool(loaded_gen or loaded_width)}
    s.sm_clock_mhz = median(clocks) if clocks else None
    s.metrics = {k: MetricValue(median(v), len(v)) for k, v in per_metric.items()}
    s.findings = host_findings(s)
    return s


def host_findings(s: HostSummary) -> list[Finding]:
    """What in this host's own facts could make it slow (independent of the fleet)."""
    out: list[Finding] = []
    p = s.pcie
    gen, gmax, width, wmax = p.get("gen"), p.get("gen_max"), p.get("width"), p.get("width_max")
    if (gen is not None and gmax and gen < gmax) or (width is not None and wmax and width < wmax):
        when = "under load" if p.get("under_load") else "at start (idle links may downshift)"
        out.append(Finding("pcie", f"PCIe Gen{gen} x{width} below max Gen{gmax} x{wmax} {when}"))
    if s.throttle:
        total = max(s.telemetry_readings, 1)
        worst = sorted(s.throttle.items(), key=lambda kv: -kv[1])
        out.append(Finding("throttle", "throttling: " + ", ".join(
            f"{name} in {n}/{total} readings" for name, n in worst)))
    if s.sm_clock_mhz and s.sm_clock_max_mhz and s.sm_clock_mhz < CLOCK_LOW_FRACTION * s.sm_clock_max_mhz:
        out.append(Finding("clocks", f"SM clock {s.sm_clock_mhz:.0f} MHz under load, "
                                     f"{100 * s.sm_clock_mhz / s.sm_clock_max_mhz:.0f}% of max "
                                     f"{s.sm_clock_max_mhz:.0f} MHz"))
    if s.other_processes:
        out.append(Finding("processes", f"{s.other_processes} other process"
                                        f"{'es' if s.other_processes != 1 else ''} on the GPU"))
    return out


# ---- fleet analysis --------------------------------------------------------------------------

@dataclass
class Outlier:
    host: str
    metric: str
    value: float
    median: float
    z: float
    deviation_pct: float     # signed: + means better than the fleet median
    direction: str           # slow | fast
    causes: list[str]


@dataclass
class MetricStats:
    metric: str
    hosts: int
    median: float
    mad: float
    minimum: float
    maximum: float


@dataclass
class FleetReport:
    group: str
    hosts: list[HostSummary]
    reference_model: str | None
    excluded: dict[str, str]             # host -> why it is left out of the statistics
    metrics: list[MetricStats]
    outliers: list[Outlier]
    notes: list[str] = field(default_factory=list)

    def outliers_of(self, host: str) -> list[Outlier]:
        return [o for o in self.outliers if o.host == host]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fleet_findings(s: HostSummary, typical_width_max: int | None, typical_clock: float | None) -> list[Finding]:
    extra: list[Finding] = []
    wmax = s.pcie.get("width_max")
    if typical_width_max and wmax and wmax < typical_width_max:
        extra.append(Finding("pcie", f"PCIe slot x{wmax} where the fleet has x{typical_width_max}"))
    if (typical_clock and s.sm_clock_mhz and s.sm_clock_mhz < CLOCK_LOW_FRACTION * typical_clock
            and not any(f.kind == "clocks" for f in s.findings)):
        extra.append(Finding("clocks", f"SM clock {s.sm_clock_mhz:.0f} MHz under load vs fleet "
                                       f"median {typical_clock:.0f} MHz"))
    return extra


def analyze_fleet(summaries: Sequence[HostSummary], group: str = "",
                  z_threshold: float = Z_THRESHOLD, min_deviation_pct: float = MIN_DEVIATION_PCT,
                  min_hosts: int = MIN_HOSTS_FOR_OUTLIERS) -> FleetReport:
    excluded: dict[str, str] = {}
    with_data = [s for s in summaries if s.metrics]
    for s in summaries:
        if not s.metrics:
            excluded[s.host] = f"no results ({s.outcome}{': ' + s.message if s.message else ''})"
    models = Counter(s.model_key for s in with_data)
    reference = models.most_common(1)[0][0] if models else None
    if len(models) > 1 and models.most_common(2)[0][1] == models.most_common(2)[1][1]:
        notes = [f"no majority GPU model ({', '.join(f'{m}: {n}' for m, n in models.items())}); "
                 f"using {reference} as the reference"]
    else:
        notes = []
    included = []
    for s in with_data:
        if s.model_key != reference:
            excluded[s.host] = f"different GPU model: {s.model_key} (fleet: {reference})"
        elif s.outcome != COMPLETED:
            trials = max((m.trials for m in s.metrics.values()), default=0)
            excluded[s.host] = (f"{s.outcome}{': ' + s.message if s.message else ''} "
                                f"(partial figures from {trials} trial(s), not in the statistics)")
        else:
            included.append(s)
    widths = [s.pcie.get("width_max") for s in included if s.pcie.get("width_max")]
    typical_width = Counter(widths).most_common(1)[0][0] if widths else None
    clocks_seen = [s.sm_clock_mhz for s in included if s.sm_clock_mhz]
    typical_clock = median(clocks_seen) if len(clocks_seen) >= min_hosts else None
    for s in included:
        s.findings = host_findings(s) + _fleet_findings(s, typical_width, typical_clock)

    metric_order: list[str] = []
    for s in included:
        for m in s.metrics:
            if m not in metric_order:
                metric_order.append(m)
    stats: list[MetricStats] = []
    outliers: list[Outlier] = []
    for metric in metric_order:
        hosts = [s for s in included if metric in s.metrics]
        values = [s.metrics[metric].value for s in hosts]
        if not values:
            continue
        med, mad, zs = robust_z(values, MAD_FLOOR_REL)
        stats.append(MetricStats(metric, len(values), med, mad, min(values), max(values)))
        if len(values) < min_hosts:
            continue
        for s, v, z in zip(hosts, values, zs):
            dev = 100.0 * (v - med) / med if med else 0.0
            if abs(z) < z_threshold or abs(dev) < min_deviation_pct:
                continue
            better = (dev > 0) == higher_is_better(metric)
            outliers.append(Outlier(
                host=s.host, metric=metric, value=v, median=med, z=z,
                deviation_pct=dev if higher_is_better(metric) else -dev,
                direction="fast" if better else "slow",
                causes=[] if better else [f.text for f in s.findings]))
    if len(included) < min_hosts:
        notes.append(f"{len(included)} comparable host(s): outlier detection needs at least {min_hosts}")
    return FleetReport(group=group, hosts=list(summaries), reference_model=reference,
                       excluded=excluded, metrics=stats, outliers=outliers, notes=notes)


# ---- overhead of one scenario against another, across the fleet -------------------------------

@dataclass
class FleetOverhead:
    metric: str
    hosts: int
    median_pct: float | None       # positive = the candidate is slower
    ci_low_pct: float | None       # bootstrap 95 % CI of the median
    ci_high_pct: float | None
    min_pct: float | None
    max_pct: float | None
    worst_host: str | None
    over_target: list[str]         # hosts whose own overhead exceeds the target
    verdict: str                   # PASS | FAIL | INCONCLUSIVE | NO TARGET | NO DATA
    excluded: dict[str, str]


def fleet_overhead(baseline: Sequence[HostSummary], candidate: Sequence[HostSummary],
                   target_pct: float | None = None, seed: int = 0) -> list[FleetOverhead]:
    """Per metric, each host's candidate against its own baseline, summarised over the fleet.

    Only hosts with the fleet's reference GPU model in *both* runs count; the others are
    listed in `excluded` with the reason."""
    base_report = analyze_fleet(baseline)
    cand_report = analyze_fleet(candidate)
    base = {s.host: s for s in baseline}
    cand = {s.host: s for s in candidate}
    excluded: dict[str, str] = {}
    for host in sorted(set(base) | set(cand)):
        if host not in base or host not in cand:
            excluded[host] = "not in both runs"
        elif host in base_report.excluded:
            excluded[host] = "baseline: " + base_report.excluded[host]
        elif host in cand_report.excluded:
            excluded[host] = "candidate: " + cand_report.excluded[host]
        elif base[host].model_key != cand[host].model_key:
            excluded[host] = f"GPU changed between runs: {base[host].model_key} vs {cand[host].model_key}"
    paired = [h for h in base if h in cand and h not in excluded]
    metrics: list[str] = []
    for h in paired:
        for m in base[h].metrics:
            if m in cand[h].metrics and m not in metrics:
                metrics.append(m)
    rows = []
    for metric in metrics:
        per_host = {h: overhead_pct(base[h].metrics[metric].value, cand[h].metrics[metric].value,
                                    higher_is_better(metric))
                    for h in paired if metric in base[h].metrics and metric in cand[h].metrics
                    and base[h].metrics[metric].value}
        if not per_host:
            rows.append(FleetOverhead(metric, 0, None, None, None, None, None, None, [], NO_DATA,
                                      excluded))
            continue
        values = list(per_host.values())
        from .inference import median_ci   # numpy: `gpubench --version` and `list` never pay it
        lo, hi = median_ci(values, seed=seed)
        worst = max(per_host, key=per_host.get)
        over = sorted(h for h, v in per_host.items() if target_pct is not None and v > target_pct)
        rows.append(FleetOverhead(metric, len(values), median(values), lo, hi,
                                  min(values), max(values), worst, over,
                                  verdict_for(lo, hi, target_pct), excluded))
    return rows
