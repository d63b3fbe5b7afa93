"""What threatens the figure of one measured window: the rules that make a trial INVALID.

A trial's figures are its ops/s (ops over the window) and its per-op latency percentiles. A
wide per-op spread does not threaten them: GPU launch tails are long (p99 2-5x p50, see
GPU-FACTS) and a CPU backend's are longer, while the median stays put. What does:

- too short a window: fewer than `min_window` seconds or fewer than MIN_CALLS timed calls;
- a stall: one call that took more than STALL_LIMIT_PCT of the window beyond the median call
  (the process was descheduled, the driver blocked): ops/s then counts the stall, not the op;
- drift: the median per-call latency of the window's quarters differing by more than
  DRIFT_LIMIT_PCT (the state changed inside the window: a clock, a neighbour, a migration);
- throttling and a changed memory clock, from the telemetry thread (engine/telemetry.py).

The per-op CV and p99/p50 stay in the result as information (`latency_us.cv`, `window`);
`--cv-limit` turns the old CV rule back on for whoever wants it; `--stall-limit` and
`--drift-limit` set (0: turn off) the two rules for callers that judge only medians and vary the
load inside a window on purpose (the self-test's delay slots). The bounds and why they
were chosen are in DESIGN.md ("Validity"). Everything here runs once per window on the
latency array the hot loop already filled, never inside it.
"""
from __future__ import annotations

import numpy as np

from .plan import DRIFT_LIMIT_PCT, STALL_LIMIT_PCT

MIN_CALLS = 5               # a median of fewer timed calls is not a steady-state figure
DRIFT_PARTS = 4             # the window is judged in quarters
DRIFT_MIN_CALLS = 10        # per quarter: below that a quarter's median is itself noise
MEM_CLOCK_CHANGE_PCT = 5.0  # the memory clock does not move under load: any change is real


def window_shape(ns: np.ndarray, window_s: float) -> dict:
    """Facts about a window's per-call latencies (ns): calls, the longest call, the share of
    the window that call took beyond the median, the quarters' median calls (µs) and the
    drift between them (both None when a quarter would have fewer than DRIFT_MIN_CALLS
    calls)."""
    calls = int(ns.size)
    shape: dict = {"calls": calls, "longest_call_us": None, "stall_pct": None, "drift_pct": None,
                   "quarter_medians_us": None}
    if calls == 0:
        return shape
    longest = float(ns.max())
    median = float(np.median(ns))
    shape["longest_call_us"] = round(longest / 1e3, 3)
    if window_s > 0:
        shape["stall_pct"] = round(max(longest - median, 0.0) / (window_s * 1e9) * 100, 3)
    if calls >= DRIFT_PARTS * DRIFT_MIN_CALLS:
        medians = [float(np.median(part)) for part in np.array_split(ns, DRIFT_PARTS)]
        shape["quarter_medians_us"] = [round(m / 1e3, 3) for m in medians]
        low = min(medians)
        if low > 0:
            shape["drift_pct"] = round((max(medians) / low - 1) * 100, 3)
    return shape


def window_reasons(shape: dict, window_s: float, min_window: float,
                   stall_limit: float = STALL_LIMIT_PCT,
                   drift_limit: float = DRIFT_LIMIT_PCT) -> list[str]:
    """The INVALID reasons of a loop's window from its shape (window_shape); a limit of 0
    turns its rule off."""
    reasons: list[str] = []
    if window_s < min_window:
        reasons.append(f"window {window_s:.3f} s < minimum {min_window:g} s")
    if 0 < shape["calls"] < MIN_CALLS:
        reasons.append(f"{shape['calls']} timed calls < minimum {MIN_CALLS}")
    stall = shape.get("stall_pct")
    if stall_limit and stall is not None and stall > stall_limit:
        reasons.append(f"stall: one call took {shape['longest_call_us'] / 1e3:.1f} ms, "
                       f"{stall:.0f}% of the window")
    drift = shape.get("drift_pct")
    if drift_limit and drift is not None and drift > drift_limit:
        reasons.append(_drift_reason(shape, drift_limit))
    return reasons


def _drift_reason(shape: dict, drift_limit: float) -> str:
    """The drift rule's reason in numbers, so that whoever reads it sees the machine's speed
    move under the tool rather than a verdict to take on trust:
    `drift: quarter medians 50, 50, 80, 80 µs per call (+60%, limit 25%): ...`."""
    medians = ", ".join(_us(m) for m in shape["quarter_medians_us"])
    return (f"drift: quarter medians {medians} µs per call (+{shape['drift_pct']:.0f}%, limit "
            f"{drift_limit:g}%): the machine's load or clocks changed within the window")


def _us(value: float) -> str:
    """A quarter's median: three significant digits tell quarters 25 % apart; no exponent."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def clock_reasons(clocks: dict | None) -> list[str]:
    """INVALID reasons from the clocks the telemetry read during a window
    ({"mem_mhz": [min, max], "sm_mhz": [min, max]}); the SM clock is information only:
    boost moves it freely, and a harmful slowdown comes with a throttle reason."""
    mem = (clocks or {}).get("mem_mhz")
    if mem and mem[0] and (mem[1] / mem[0] - 1) * 100 > MEM_CLOCK_CHANGE_PCT:
        return [f"memory clock changed: {mem[0]:g}-{mem[1]:g} MHz in the window"]
    return []
