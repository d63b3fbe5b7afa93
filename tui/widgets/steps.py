"""The dashboard's view of a decode/prefill session: the step panel (latency percentiles,
jitter, tokens/s and the device-side p99, live and over the results so far) and what the
step chart draws (the latest window's step-latency histogram, which the engine puts on each
decode/prefill result as `step_histogram`).

Samples carry only an interval's percentiles, so until a variant's first window has ended
the chart draws those percentiles and says so: never a histogram made up from them.
"""
from __future__ import annotations

from rich.text import Text

from results.format import EMPTY, fmt_value
from results.stats import finite_number
from results.steps import PERCENTILES, step_summary

from ..live import HostState
from .panels import _Panel

HEADS = ("tokens/s", *(name for _, name in PERCENTILES), "jitter", "device p99")
WIDTHS = (10, 8, 8, 8, 8, 8, 12)      # each wider than its heading: a space between
NAME_W = 12


def _ms(us) -> str:
    v = finite_number(us)
    return EMPTY if v is None else fmt_value(v / 1000.0)


def live_jitter(latency_us: dict) -> float | None:
    """p99 ÷ p50 of one interval: the engine's definition of a window's jitter."""
    p50, p99 = finite_number(latency_us.get("p50")), finite_number(latency_us.get("p99"))
    return p99 / p50 if p50 and p99 is not None else None


def step_rows(h: HostState) -> list[tuple[str, tuple[str, ...]]]:
    """(row name, cells under HEADS): the live interval while the variant runs, and the
    medians over its results so far (results/steps.py, as `show` prints them)."""
    rows = []
    w, v = h.step_unit or ("", "")
    if h.status == "running" and (h.workload, h.variant) == h.step_unit and h.step_live:
        lat = h.step_live.get("latency_us") or {}
        rows.append(("• interval", (fmt_value(h.step_live.get("tokens_per_s")),
                                    *(_ms(lat.get(k)) for k, _ in PERCENTILES),
                                    fmt_value(live_jitter(lat)), EMPTY)))
    results = h.step_results()
    if results:
        s = step_summary({"workload": w, "variant": v, "trials": [_readable(r) for r in results]})
        name = f"{len(results)} result" + ("s" if len(results) > 1 else "")
        rows.append((name, (fmt_value(s["tokens_per_s"]), *(_ms(s[k]) for k, _ in PERCENTILES),
                            fmt_value(s["jitter"]), _ms(s["device_p99"]))))
    return rows


def _readable(result: dict) -> dict:
    """The result as step_summary reads it: `device_latency_us` is optional and unchecked by
    the protocol, so one that is not a table (a broken stream) is left out, not a crash."""
    if isinstance(result.get("device_latency_us"), dict):
        return result
    return {k: v for k, v in result.items() if k != "device_latency_us"}


class StepPanel(_Panel):
    """Step latency of the session's decode/prefill variant, in ms."""

    def show(self, h: HostState | None) -> None:
        key = None if h is None else (h.key, h.step_unit, id(h.step_live), len(h.results),
                                      h.status)
        if not self.changed(key):
            return
        text = Text(no_wrap=True, overflow="ellipsis")
        if h is None or h.step_unit is None:
            self.update(text, layout=False)
            return
        w, v = h.step_unit
        text.append(f"{w}/{v}", style="bold")
        text.append(" · step latency in ms\n", style="dim")
        text.append(" " * NAME_W + "".join(hd.rjust(wd) for hd, wd in zip(HEADS, WIDTHS)) + "\n",
                    style="bold")
        for name, cells in step_rows(h):
            text.append(name.ljust(NAME_W) + "".join(c.rjust(wd) for c, wd in zip(cells, WIDTHS))
                        + "\n")
        if h.is_cpu:
            text.append("CPU figures: no CUDA events, so no device p99", style="italic")
        else:
            text.append("device p99: the steps' CUDA-event time, per window", style="dim")
        self.update(text, layout=False)


def _readable_histogram(edges, counts) -> bool:
    """A histogram as the engine writes it: whole, non-negative step counts and one more
    edge than counts (a broken stream's is passed over for an older window's)."""
    return (isinstance(edges, list) and isinstance(counts, list) and bool(counts)
            and len(edges) == len(counts) + 1
            and all(type(c) is int and 0 <= c < 2 ** 53 for c in counts))


def step_chart(h: HostState) -> tuple[list[str], list[float], str, str, str]:
    """(labels, values, title, x label, y label) for the step chart: the latest result's
    histogram of the variant, else the live interval's percentiles, labelled as such."""
    w, v = h.step_unit or ("", "")
    cpu = " · CPU" if h.is_cpu else ""
    for r in reversed(h.step_results()):
        hist = r.get("step_histogram")
        edges, counts = (hist.get("edges_us"), hist.get("counts")) if isinstance(hist, dict) \
            else (None, None)
        if _readable_histogram(edges, counts):
            return ([_ms(e) for e in edges[:-1]], [float(c) for c in counts],
                    f"step latency histogram · {w}/{v} · window {r.get('repeat', '?')}, "
                    f"{sum(counts)} steps{cpu}", "step ms (log bins, lower edge)", "steps")
    lat = (h.step_live or {}).get("latency_us") or {}
    values = [finite_number(lat.get(k)) for k, _ in PERCENTILES]
    if any(x is None for x in values):
        return [], [], f"step latency · {w}/{v}: waiting for the first interval{cpu}", "", ""
    return ([name for _, name in PERCENTILES], [x / 1000.0 for x in values],
            f"step latency percentiles of the live interval · {w}/{v} (not a histogram: "
            f"that comes with the window's result){cpu}", "percentile", "ms")
