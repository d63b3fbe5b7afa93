"""Small text panels of the dashboard: percentiles, telemetry, host header, progress."""
from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from results.format import EMPTY, fmt_num
from results.labels import CPU_MARK
from results.rates import Rate, line_rate

from ..live import HostState

LAT_KEYS = ("mean", "p50", "p90", "p99", "p999", "max")


def rate_column(rates: list[Rate]) -> tuple[str, list[str]]:
    """The results panel's rate column: its heading names the unit when every row shares it
    (a session's workloads are mostly of one kind, and the panel is narrow), else each cell
    carries its own (a decode's tokens/s beside a round trip's ops/s)."""
    units = {r.unit for r in rates}
    if len(units) == 1:
        return units.pop(), [fmt_num(r.value) for r in rates]
    return "rate", [fmt_num(r.value, 0, f" {r.unit}") for r in rates]


class _Panel(Static):
    """A Static that re-renders only when what it shows has changed."""

    _shown_key: object = object()

    def changed(self, key: object) -> bool:
        if key == self._shown_key:
            return False
        self._shown_key = key
        return True


class HostHeader(_Panel):
    """Which session, which device; the CPU backend is said plainly."""

    # what to do when nothing runs; the dashboard sets it from the screens' key bindings
    empty_hint = "No session."

    def show(self, h: HostState | None) -> None:
        key = None if h is None else (h.key, h.host, h.scenario, h.status, h.message, h.backend,
                                      h.device_name)
        if not self.changed(key):
            return
        if h is None:
            self.update(self.empty_hint)
            return
        text = Text()
        text.append(f"{h.host}", style="bold")
        text.append(f"  ·  {h.scenario}  ·  {h.status}")
        if h.message and h.message.strip().lower() != h.status:   # not "cancelled (cancelled)"
            text.append(f" ({h.message})", style="italic")
        text.append("\n")
        if h.is_cpu:
            text.append(f" {CPU_MARK} ", style="bold black on yellow")
        elif h.backend:
            text.append(f"GPU ({h.backend})", style="bold")
        text.append(f"  {h.device_name}")
        self.set_class(h.status == "failed", "-failed")
        self.update(text, layout=False)


class PercentileTable(_Panel):
    """Latest interval's latency percentiles, throughput and bandwidth per workload.
    The live row is refreshed at most once a second; a new result shows at once."""

    MIN_INTERVAL = 1.0
    _last = 0.0

    def show(self, h: HostState | None) -> None:
        now = time.monotonic()
        key = None if h is None else (h.key, len(h.results), h.status)
        if not self.changed(key) and now - self._last < self.MIN_INTERVAL:
            return
        self._last = now
        # Plain text with columns sized to their cells, not a rich Table: measuring a Table's
        # columns cost ~5 ms a render, the largest share of the dashboard's CPU under load.
        names: list[str] = []
        rows: list[tuple[str, ...]] = []
        rates: list[Rate] = []
        if h is not None:
            last: dict[tuple[str, str], dict] = {}
            for r in h.results:   # completed trials first, latest live sample on top
                last[(r["workload"], r["variant"])] = r
            if h.workload and h.status == "running":
                last[(h.workload, h.variant)] = {"workload": h.workload, "ops_per_s": h.ops_per_s,
                                                 "tokens_per_s": h.tokens_per_s,
                                                 "latency_us": h.latency_us, "gbps": h.gbps,
                                                 "live": True}
            for (w, v), r in last.items():
                lat = r.get("latency_us") or {}
                names.append(("• " if r.get("live") else "") + f"{w}/{v}")
                rates.append(line_rate(r))
                rows.append((fmt_num(r.get("gbps", lat.get("gbps")), 2),
                             *(fmt_num(lat.get(k), 1) for k in LAT_KEYS)))
        rate_head, rate_cells = rate_column(rates)
        heads = (rate_head, "GB/s", *LAT_KEYS)
        rows = [(cell, *row) for cell, row in zip(rate_cells, rows)]
        widths = [max([len(hd), *(len(row[i]) for row in rows)]) for i, hd in enumerate(heads)]
        name_w = max(8, (self.content_size.width or 100) - sum(widths) - len(widths))

        def line(name: str, cells) -> str:
            if len(name) > name_w:
                name = name[: name_w - 1] + "…"
            return name.ljust(name_w) + "".join(" " + c.rjust(w) for c, w in zip(cells, widths))

        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("latency µs per op · • = live interval\n", style="dim")
        text.append(line("workload", heads) + "\n", style="bold")
        for name, cells in zip(names, rows):
            text.append(line(name, cells) + "\n")
        self.update(text, layout=False)


def _pair(cur, mx, unit="") -> str:
    if cur is None and mx is None:
        return EMPTY
    return f"{fmt_num(cur, 0)}{unit} / {fmt_num(mx, 0)}{unit}"


class TelemetryPanel(_Panel):
    """NVML readings with warnings for throttling and a downtrained PCIe link."""

    def show(self, h: HostState | None) -> None:
        key = None if h is None else (h.key, id(h.telemetry), h.backend, bool(h.hello))
        if not self.changed(key):
            return
        if h is None:
            self.update("")
            return
        r = h.telemetry
        text = Text()
        if h.is_cpu:
            text.append("No GPU telemetry: CPU backend.\n", style="italic")
        rows = [
            ("GPU util", fmt_num(r.get("gpu_util_pct"), 0, " %")),
            ("Mem util", fmt_num(r.get("mem_util_pct"), 0, " %")),
            ("SM clock", fmt_num(r.get("sm_clock_mhz"), 0, " MHz")),
            ("Mem clock", fmt_num(r.get("mem_clock_mhz"), 0, " MHz")),
            ("Power", _pair(r.get("power_w"), r.get("power_limit_w"), " W")),
            ("Temp", fmt_num(r.get("temperature_c"), 0, " °C")),
            ("Memory", _pair(r.get("memory_used_mib"), r.get("memory_total_mib"), " MiB")),
            ("PCIe TX/RX", f"{fmt_num(_mb(r.get('pcie_tx_kbps')), 0)} / "
                           f"{fmt_num(_mb(r.get('pcie_rx_kbps')), 0)} MB/s"),
            ("PCIe gen", _pair(r.get("pcie_gen"), r.get("pcie_gen_max"))),
            ("PCIe width", _pair(r.get("pcie_width"), r.get("pcie_width_max"))),
        ]
        for name, value in rows:
            text.append(f"{name:<11}", style="bold")
            text.append(f"{value}\n")
        for alert in h.alerts():
            text.append(f"⚠ {alert}\n", style="bold red")
        self.update(text, layout=False)


def _mb(kbps):
    return None if kbps is None else kbps / 1000.0


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return EMPTY
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
