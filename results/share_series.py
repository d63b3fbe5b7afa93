"""The share of the GPU a limited load achieves over time, judged against its limit.

A compute probe counts completed kernels per interval (gpubench/checks/compute_load.py);
divided by the same load's unlimited rate, each interval gives a share. The figures:

  steady     mean of the second half of the intervals: what the load got there. A throttle
             that works by stalling (HAMi's token bucket: seconds at full speed, then a
             second at none) holds an average, and the median of mostly-free intervals
             would hide it; a smooth limit (MPS, a rate cap) has mean and median alike
  swing      the lowest and highest interval of that half: a limit held in bursts says so
  overshoot  how far the highest interval goes above the limit (0 when none does)
  settle     the start of the first interval from which every interval stays at or under the
             ceiling (limit + tolerance); None when the last interval is still over it

A limit is a ceiling, judged in its own unit: a launch-rate cap in launches/s, an SM fraction
as a share of unlimited. A busy machine only lowers a rate, so it cannot turn an enforcing
proxy into one that looks escaped; a load held well under its limit is enforced and says so.
"""
from __future__ import annotations

from statistics import mean
from typing import Any

from .format import EMPTY


def ceiling_slack(limit: float, tolerance: float, relative: bool) -> float:
    """How far over the limit still counts as held: relative for a rate cap or a small share
    (where an absolute tolerance would dwarf the limit), absolute otherwise."""
    if relative:
        return tolerance * limit
    return tolerance * max(limit, 0.05) if limit < 0.2 else tolerance


def judge_series(counts: list[int], interval: float, unlimited: float, *,
                 fraction: float | None = None, rate_cap: float | None = None,
                 tolerance: float) -> dict[str, Any]:
    """One limited load's series against its unlimited rate and its limit (an SM fraction or
    a rate cap; with both, the fraction)."""
    rates = [c / interval for c in counts]
    share = [r / unlimited for r in rates]
    t = [round((i + 1) * interval, 6) for i in range(len(rates))]
    out: dict[str, Any] = {"interval_s": interval, "t": t, "rate": rates, "share": share,
                           "unlimited_rate": unlimited}
    if fraction is None and rate_cap is not None:
        unit, limit, values = "launches/s", rate_cap, rates
        slack = ceiling_slack(limit, tolerance, relative=True)
        limit_share = rate_cap / unlimited
    else:
        unit, limit, values, limit_share = "share", fraction, share, fraction
        slack = ceiling_slack(limit, tolerance, relative=False)
    ceiling = limit + slack
    later = values[len(values) // 2:]
    steady = mean(later) if later else 0.0
    last_over = max((i for i, v in enumerate(values) if v > ceiling), default=-1)
    out.update({"unit": unit, "limit": limit, "ceiling": ceiling, "limit_share": limit_share,
                "steady": steady, "steady_share": steady / unlimited if unit != "share"
                else steady,
                "overshoot": max(0.0, max(share, default=0.0) - limit_share),
                "overshoot_value": max(0.0, max(values, default=0.0) - limit),
                "settle_s": None if last_over == len(values) - 1 and values
                else round((last_over + 1) * interval, 6),
                "within": steady <= ceiling, "held_below": steady < limit - slack,
                "swing": [min(later), max(later)] if later else None,
                "bursty": bool(later) and max(later) - min(later) > max(2 * slack, limit)})
    if rate_cap is not None and fraction is None and rate_cap + slack >= unlimited:
        out.update({"within": True, "judged": False,
                    "note": f"the cap {rate_cap:,.0f}/s is not under the unlimited rate "
                            f"{unlimited:,.0f}/s: nothing to enforce"})
    return out


def series_text(row: dict) -> str:
    """`steady 0.498 of unlimited (limit 0.500), overshoot +0.120, settled at 0.75 s`."""
    if row.get("error"):
        return f"error: {row['error']}"
    if row.get("judged") is False and row.get("note"):
        return row["note"]
    txt = f"steady {row['steady_share']:.3f} of unlimited (limit {row['limit_share']:.3f}"
    if row.get("unit") == "launches/s":
        txt += f"; {row['steady']:,.0f}/s against the cap {row['limit']:,.0f}/s"
    txt += f"), overshoot {overshoot_text(row)}, "
    txt += ("never settled under the ceiling" if row.get("settle_s") is None
            else f"settled at {row['settle_s']:g} s")
    if row.get("bursty"):
        low, high = row["swing"]
        txt += (f", in bursts ({_in_unit(row, low)} to {_in_unit(row, high)} per "
                f"{row['interval_s']:g} s interval)")
    if not row.get("within"):
        txt += " — OVER the limit"
    elif row.get("held_below"):
        txt += " — held below the limit"
    return txt


def _in_unit(row: dict, value: float) -> str:
    return f"{value:,.0f}/s" if row.get("unit") == "launches/s" else f"{value:.2f}"


def overshoot_text(row: dict) -> str:
    """The overshoot in the limit's unit: `+0.120` of a share, `+598/s` over a rate cap."""
    if row.get("unit") == "launches/s":
        value = row.get("overshoot_value")
        return EMPTY if value is None else f"+{value:,.0f}/s"
    value = row.get("overshoot")
    return EMPTY if value is None else f"+{value:.3f}"


def _steady_text(row: dict) -> str:
    if row.get("unit") == "launches/s" and row.get("steady") is not None:
        return f"{row['steady']:,.0f}/s"
    return EMPTY if row.get("steady_share") is None else f"{row['steady_share']:.2f}"


def settle_text(row: dict) -> str:
    settle = row.get("settle_s")
    return "never" if settle is None else f"{settle:g} s"


def tenants_ratio(rows: list[dict], limits: list[float], tolerance: float) -> dict[str, Any]:
    """Two tenants at once: the ratio of their steady shares against that of their limits.
    A figure beside the verdict (each tenant is judged against its own ceiling)."""
    a, b = rows
    configured = limits[1] / limits[0]
    if a.get("error") or b.get("error") or not a.get("steady"):
        return {"ratio": None, "configured_ratio": configured, "ratio_within": None}
    ratio = b["steady"] / a["steady"]
    return {"ratio": ratio, "configured_ratio": configured,
            "ratio_within": abs(ratio / configured - 1) <= tolerance}


def compute_observed(c: dict) -> str:
    """The compute check's rows in short: `label steady S, overshoot +O, settle T`."""
    shown = []
    for p in c.get("paths") or []:
        label = p.get("label") or p.get("path") or "?"
        if p.get("error"):
            shown.append(f"{label} error")
        elif p.get("steady_share") is not None or p.get("steady") is not None:
            shown.append(f"{label} steady {_steady_text(p)}, overshoot {overshoot_text(p)}, "
                         f"settle {settle_text(p)}")
    t = c.get("tenants") or {}
    if t.get("ratio") is not None and t.get("configured_ratio") is not None:
        shown.append(f"tenants ratio {t['ratio']:.2f} (configured {t['configured_ratio']:.2f})")
    return "; ".join(shown) or EMPTY


def chart_series(c: dict) -> tuple[list[float], dict[str, list[float | None]]]:
    """The compute check's share series for a chart: x (seconds), {label: shares}, with the
    limit of the first row as its own flat line."""
    rows = [p for p in c.get("paths") or []
            if p.get("share") and p.get("t") and len(p["share"]) == len(p["t"])]
    if not rows:
        return [], {}
    xs = sorted({x for p in rows for x in p["t"] if x is not None})
    series: dict[str, list[float | None]] = {}
    for p in rows:
        at = dict(zip(p["t"], p["share"]))
        series[p.get("label") or p.get("path") or "?"] = [at.get(x) for x in xs]
    limit = rows[0].get("limit_share")
    if limit is not None:
        series[f"limit {limit:.3g}"] = [limit] * len(xs)
    return xs, series
