"""The fleet as text: the per-host table with outliers and exclusions, and the fleet overhead.

    print(format_fleet_table(analyze_fleet(summaries)))
    print(format_overhead_table(fleet_overhead(base, cand, 5.0), "bare-metal", "proxy", 5.0))

Figures read as in every other table (results/format.py).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from .fleet_analysis import FleetOverhead, FleetReport, HostSummary, higher_is_better
from .format import EMPTY, fmt_value


def _pcie_text(s: HostSummary) -> str:
    p = s.pcie
    if p.get("gen") is None and p.get("width") is None:
        return EMPTY
    text = f"Gen{p.get('gen')} x{p.get('width')}"
    if (p.get("gen_max") and p.get("gen") is not None and p["gen"] < p["gen_max"]) or (
            p.get("width_max") and p.get("width") is not None and p["width"] < p["width_max"]):
        text += f" (max {p.get('gen_max')}x{p.get('width_max')})"
    return text


def format_fleet_table(report: FleetReport, max_metrics: int = 4, only_metrics: Sequence[str] = ()) -> str:
    """The per-host table: figures side by side, status, flags; then outliers and exclusions."""
    metrics = [m.metric for m in report.metrics if not only_metrics or m.metric in only_metrics]
    ops_first = [m for m in metrics if higher_is_better(m)] + [m for m in metrics if not higher_is_better(m)]
    shown = ops_first[:max_metrics]
    flagged = {o.host for o in report.outliers if o.direction == "slow"}
    header = ["host", "status", "GPU", "PCIe", *shown, "flag"]
    rows = []
    for s in sorted(report.hosts, key=lambda h: h.host):
        flag = ""
        if s.host in report.excluded and s.metrics:
            flag = "excluded"
        elif s.host in flagged:
            flag = "OUTLIER"
        elif any(o.host == s.host for o in report.outliers):
            flag = "fast"
        rows.append([s.host, s.outcome, (s.gpu_model or EMPTY)[:28], _pcie_text(s),
                     *(fmt_value(s.metrics[m].value) if m in s.metrics else EMPTY for m in shown), flag])
    med_row = ["fleet median", "", report.reference_model and report.reference_model[:28] or "", "",
               *(fmt_value(next(ms.median for ms in report.metrics if ms.metric == m)) for m in shown), ""]
    widths = [max(len(str(r[i])) for r in [header, med_row, *rows]) for i in range(len(header))]

    def line(cells: list) -> str:
        return "  ".join(str(c).rjust(w) if 4 <= i < 4 + len(shown) else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    out.append(line(med_row))
    counts = Counter(s.outcome for s in report.hosts)
    out.append("")
    out.append(f"{len(report.hosts)} hosts: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
               + (f"  (run group {report.group})" if report.group else ""))
    if report.outliers:
        out.append("")
        out.append("Outliers (robust z = (x - median) / (1.4826 MAD)):")
        for o in sorted(report.outliers, key=lambda o: (o.direction != "slow", o.host, o.metric)):
            what = f"{o.deviation_pct:+.1f}% vs median {fmt_value(o.median)}, z {o.z:+.1f}"
            cause = ("; likely cause: " + "; ".join(o.causes)) if o.causes else (
                "; no cause in its telemetry" if o.direction == "slow" else "")
            out.append(f"  {o.host}: {o.direction} on {o.metric} = {fmt_value(o.value)} ({what}){cause}")
    else:
        out.append("No outliers.")
    if report.excluded:
        out.append("")
        out.append("Left out of the statistics:")
        for host, why in sorted(report.excluded.items()):
            out.append(f"  {host}: {why}")
    noted = [(s.host, f.text) for s in report.hosts for f in s.findings
             if s.host not in flagged and s.host not in report.excluded]
    if noted:
        out.append("")
        out.append("Notes on hosts not flagged:")
        out += [f"  {h}: {t}" for h, t in noted[:50]]
        if len(noted) > 50:
            out.append(f"  ... and {len(noted) - 50} more")
    for note in report.notes:
        out.append(f"Note: {note}")
    return "\n".join(out)


def format_overhead_table(rows: Sequence[FleetOverhead], baseline: str, candidate: str,
                          target_pct: float | None = None) -> str:
    tgt = f", target {target_pct:g}%" if target_pct is not None else ""
    out = [f"Overhead of {candidate} vs {baseline} across the fleet (per host, paired{tgt}):"]
    for r in rows:
        if r.median_pct is None:
            out.append(f"  {r.metric}: no paired hosts")
            continue
        out.append(f"  {r.metric}: median {r.median_pct:+.2f}% [95% CI {r.ci_low_pct:+.2f}, "
                   f"{r.ci_high_pct:+.2f}] over {r.hosts} hosts, range {r.min_pct:+.2f}..{r.max_pct:+.2f}% "
                   f"(worst {r.worst_host}) -> {r.verdict}"
                   + (f"; {len(r.over_target)} host(s) over target" if r.over_target else ""))
    if rows and rows[0].excluded:
        out.append("  excluded: " + "; ".join(f"{h} ({why})" for h, why in sorted(rows[0].excluded.items())))
    return "\n".join(out)
