"""The detail tables of a stored check, for `gpubench check` and `show`: the compute check's
loads over time (steady share, overshoot, settle time) and the init check's time to first
kernel per process count, bare against under the proxy.

    for title, columns, rows in check_detail_tables(check): print_table(columns, rows, title)
"""
from __future__ import annotations

from .format import EMPTY
from .matrix_table import is_matrix, matrix_tables
from .share_series import overshoot_text, settle_text


def _num(v, spec: str = ".3f") -> str:
    return EMPTY if v is None else format(v, spec)


def compute_table(c: dict) -> tuple[str, tuple[str, ...], list[list[str]]] | None:
    rows = []
    for p in c.get("paths") or []:
        label = p.get("label") or p.get("path") or "?"
        if p.get("error"):
            rows.append([label, EMPTY, EMPTY, EMPTY, EMPTY, f"error: {p['error']}"])
            continue
        judged = ("not judged" if p.get("judged") is False else
                  EMPTY if p.get("within") is None else "held" if p["within"] else "OVER")
        limit = _num(p.get("limit_share"))
        if p.get("unit") == "launches/s" and p.get("limit") is not None:
            limit += f" ({p['limit']:,.0f}/s)"
        rows.append([label, _num(p.get("steady_share")), limit, overshoot_text(p),
                     settle_text(p), judged])
    if not rows:
        return None
    title = f"compute share over time ({_num(c.get('interval_s'), 'g')} s intervals)"
    t = c.get("tenants") or {}
    if t.get("ratio") is not None and t.get("configured_ratio") is not None:
        title += (f"; tenants B/A {t['ratio']:.2f}, configured {t['configured_ratio']:.2f}"
                  f"{'' if t.get('ratio_within') else ' (off by more than the tolerance)'}")
    return title, ("load", "steady share", "limit", "overshoot", "settle", "ceiling"), rows


def init_table(c: dict) -> tuple[str, tuple[str, ...], list[list[str]]] | None:
    rows = []
    for r in c.get("rows") or []:
        bare, proxy = r.get("bare") or {}, r.get("proxy") or {}
        n = str(r.get("variant", "")).split("/n")[-1]
        rows.append([n, _num(bare.get("p50_ms"), ".1f"), _num(bare.get("p99_ms"), ".1f"),
                     _num(proxy.get("p50_ms"), ".1f"), _num(proxy.get("p99_ms"), ".1f"),
                     _num(r.get("proxy_over_bare_p50"), ".2f"),
                     _num(r.get("proxy_over_bare_p99"), ".2f"),
                     str((bare.get("failed") or 0) + (proxy.get("failed") or 0))])
    if not rows:
        return None
    return (f"time to first kernel (ms), under {c.get('proxy') or 'no proxy'} against bare",
            ("processes", "bare p50", "bare p99", "proxy p50", "proxy p99", "p50 ratio",
             "p99 ratio", "failed"), rows)


def check_detail_tables(c: dict) -> list[tuple[str, tuple[str, ...], list[list[str]]]]:
    """(title, columns, rows) for each detail table of one stored check ([] when none)."""
    if is_matrix(c):
        return matrix_tables(c)
    make = {"compute": compute_table, "init": init_table}.get(c.get("check"))
    table = make(c) if make else None
    return [table] if table else []
