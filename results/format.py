"""How figures read in every table gpubench prints or shows: one place, one empty mark.

A figure that is missing (None), not a number the table can show (NaN, infinite) or not
measured reads as EMPTY everywhere: the CLI's tables, comparison.md, the fleet table and
the dashboard.

    fmt_value(77412.3, "ops/s")   '77,412 ops/s'   significant figures by magnitude (tables)
    fmt_num(1980, 0, " MHz")      '1980 MHz'       fixed decimals, the dashboard's live figures
    fmt_pct(2.5)                  '+2.50%'
    fmt_ci(-0.4, 1.2)             '[-0.40%, +1.20%]'
    fmt_p(0.0004)                 '<0.001'
    fmt_spec(0.512, ".2f")        '0.51'           a format spec of the caller's choosing
    fmt_size(3 << 30)             '3.00 GiB'
"""
from __future__ import annotations

import math
from typing import Any

from .stats import finite_number

EMPTY = "—"


def fmt_value(x: float | None, unit: str = "") -> str:
    """Four significant figures or so, by magnitude; thousands separated."""
    v = finite_number(x)
    if v is None:
        return EMPTY
    if abs(v) >= 1000:
        s = f"{v:,.0f}"
    elif abs(v) >= 100:
        s = f"{v:.1f}"
    elif abs(v) >= 1:
        s = f"{v:.2f}"
    else:
        s = f"{v:.3g}"
    return f"{s} {unit}".strip()


def fmt_num(value: Any, digits: int = 0, unit: str = "") -> str:
    """`digits` decimals (none from 10,000 up), thousands separated; a value that is not a
    number at all is shown as its text."""
    if value is None:
        return EMPTY
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return str(value)
    if not math.isfinite(v):
        return EMPTY
    if abs(v) >= 10_000:
        text = f"{v:,.0f}"
    else:
        text = f"{v:,.{digits}f}"
    return f"{text}{unit}"


def fmt_pct(x: float | None, signed: bool = True) -> str:
    v = finite_number(x)
    if v is None:
        return EMPTY
    return f"{v:+.2f}%" if signed else f"{v:.2f}%"


def fmt_ci(lo: float | None, hi: float | None) -> str:
    a, b = finite_number(lo), finite_number(hi)
    if a is None or b is None:
        return EMPTY
    return f"[{a:+.2f}%, {b:+.2f}%]"


def fmt_p(p: float | None) -> str:
    v = finite_number(p)
    if v is None:
        return EMPTY
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def fmt_spec(x: Any, spec: str = ".2f") -> str:
    """`x` with the format spec `spec` (".2f", "g", ",.0f"), or EMPTY when not a finite number."""
    v = finite_number(x)
    return EMPTY if v is None else format(v, spec)


def fmt_size(n: Any) -> str:
    """A byte count in GiB from 1 GiB up, else in MiB."""
    v = finite_number(n)
    if v is None:
        return EMPTY
    if v >= 1 << 30:
        return f"{v / (1 << 30):.2f} GiB"
    return f"{v / (1 << 20):.0f} MiB"
