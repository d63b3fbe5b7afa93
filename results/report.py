"""Tables and reports from comparisons: plain/TSV, markdown, CSV, JSON, comparison.md.

One table builder (`comparison_table`) feeds every format, like hyperfine's
markup exporters; the CLI renders the same columns as a rich table on a TTY.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Callable, Sequence

from engine.plausibility import STEP_WORKLOADS

from .check_verdicts import CHECK_COLUMNS, check_rows, check_table
from .matrix_table import matrix_tables, matrix_tsv, row_matrices
from .comparison import Comparison, MetricComparison
from .format import EMPTY, fmt_ci, fmt_p, fmt_pct, fmt_value
from .labels import CPU_CELL, NOT_GPU, backend_cell, doc_backend, is_cpu, is_mixed
from .rates import variant_rate
from .stats import INCONCLUSIVE
from .schema import INVALID, ResultError
from .trial_counts import (FEW_RESULTS, doc_counts, headline_workload, status_short,
                           status_word)

COLUMNS = ("workload", "variant", "metric", "counted", "baseline", "candidate", "overhead",
           "95% CI", "p", "target", "verdict", "note")


def row_note(r: MetricComparison) -> str:
    parts = []
    if r.verdict == INCONCLUSIVE and r.more_trials is not None:
        parts.append(f"~{r.more_trials} more results/side to decide")
    elif r.verdict == INCONCLUSIVE:
        parts.append("on the target: more results will not decide")
    if r.change != "unknown":
        parts.append(r.change)
    cvs = [f"{s} CV {v:.1f}%" for s, v in (("base", r.base_cv_pct), ("cand", r.cand_cv_pct))
           if v is not None]
    if cvs:
        parts.append(", ".join(cvs))
    parts += r.warnings
    return "; ".join(parts)


def counted_cell(r: MetricComparison) -> str:
    """`1/30 · 28/30`: the baseline's and the candidate's results that count, of all theirs."""
    return f"{r.n_base}/{r.base_trials} · {r.n_cand}/{r.cand_trials}"


def has_gpus(comp: Comparison) -> bool:
    return any(r.gpu for r in comp.rows)


def columns_for(comp: Comparison) -> tuple[str, ...]:
    """COLUMNS, with a `gpu` column after `variant` for per-GPU comparisons."""
    return COLUMNS[:2] + ("gpu",) + COLUMNS[2:] if has_gpus(comp) else COLUMNS


def comparison_table(comp: Comparison) -> list[list[str]]:
    """Rows of strings under columns_for(comp) (COLUMNS unless the runs were per-GPU)."""
    rows = []
    gpu = has_gpus(comp)
    for r in comp.rows:
        rows.append([r.workload, r.variant, *([r.gpu] if gpu else []), f"{r.label} ({r.unit})",
                     counted_cell(r),
                     fmt_value(r.base_median), fmt_value(r.cand_median), fmt_pct(r.overhead_pct),
                     fmt_ci(r.ci_low, r.ci_high), fmt_p(r.p_value),
                     EMPTY if r.target_pct is None else f"<{r.target_pct:g}%", r.verdict,
                     row_note(r)])
    return rows


def step_tail_rows(comp: Comparison) -> list[MetricComparison]:
    """The p99 step-latency rows of decode (first) and prefill variants."""
    rows = [r for r in comp.rows if r.workload in STEP_WORKLOADS and r.metric == "lat_p99"]
    return sorted(rows, key=lambda r: STEP_WORKLOADS.index(r.workload))


def step_tail_line(r: MetricComparison) -> str:
    """`decode 8b-l4-b8-kv2048 p99 step latency: +3.10% [+1.20%, +5.00%], target <5%: PASS`"""
    target = "no target" if r.target_pct is None else f"target <{r.target_pct:g}%"
    gpu = f" (GPU {r.gpu})" if r.gpu else ""
    return (f"{r.workload} {r.variant}{gpu} p99 step latency: {fmt_pct(r.overhead_pct)} "
            f"{fmt_ci(r.ci_low, r.ci_high)}, {target}: {r.verdict}")


def header_lines(comp: Comparison) -> list[str]:
    target = "none" if comp.target_pct is None else f"{comp.target_pct:g}%"
    lines = [f"baseline {comp.base_id} ({comp.base_scenario}) vs candidate {comp.cand_id} "
             f"({comp.cand_scenario}); target {target}; verdict {comp.verdict}",
             f"figures by {comp.backends}"]
    lines += [step_tail_line(r) for r in step_tail_rows(comp)]
    if comp.forced:
        lines.append(f"FORCED: runs are not comparable ({'; '.join(comp.forced)}); "
                     f"compared anyway because of --force")
    return lines


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


CHECKS_TITLE = "Isolation checks"


def checks_markdown(comp: Comparison) -> list[str]:
    """The isolation-check section of one comparison (no lines when nothing was checked)."""
    if not comp.checks:
        return []
    return ["", f"**{CHECKS_TITLE}** (`gpubench check`; role: whose verdicts — the baseline "
            "run, the candidate run, or the newest check run of the candidate's scenario)", "",
            markdown_table(CHECK_COLUMNS, check_table(comp.checks))] + [
        line for role, m in row_matrices(comp.checks) for title, columns, rows in
        matrix_tables(m) for line in ("", f"**{title}** ({role})", "",
                                      markdown_table(columns, rows))]


def to_markdown(comps: Sequence[Comparison]) -> str:
    out = []
    for comp in comps:
        out += [f"### {comp.cand_scenario} ({comp.cand_id}) vs {comp.base_scenario} "
                f"({comp.base_id})", ""]
        out += [f"> {line}" for line in header_lines(comp)] + [""]
        out.append(markdown_table(columns_for(comp), comparison_table(comp)))
        out += checks_markdown(comp)
        if comp.warnings:
            out += [""] + [f"- warning: {w}" for w in comp.warnings]
        out.append("")
    return "\n".join(out)


def to_tsv(comps: Sequence[Comparison]) -> str:
    """Plain text for pipes: a tab-separated table per comparison, headers as # lines; the
    isolation checks (when any) follow as a second table under `# isolation checks`."""
    out = []
    for comp in comps:
        out += [f"# {line}" for line in header_lines(comp)]  # warnings go to stderr
        out.append("\t".join(columns_for(comp)))
        out += ["\t".join(row) for row in comparison_table(comp)]
        if comp.checks:
            out.append(f"# {CHECKS_TITLE.lower()}")
            out.append("\t".join(CHECK_COLUMNS))
            out += ["\t".join(c.replace("\t", " ") for c in row)
                    for row in check_table(comp.checks)]
            for role, m in row_matrices(comp.checks):
                out += matrix_tsv(m, role)
    return "\n".join(out) + "\n"


CSV_COLUMNS = ("base_id", "cand_id", "base_scenario", "cand_scenario", "workload", "variant",
               "metric", "unit", "n_base", "n_cand", "base_median", "cand_median",
               "overhead_pct", "ci_low", "ci_high", "p_value", "target_pct", "verdict", "change",
               "more_trials", "base_cv_pct", "cand_cv_pct", "forced", "gpu", "base_backend",
               "cand_backend")
# appended only when a comparison has isolation checks; their rows have workload
# `isolation-check`, variant = the check, metric `verdict` and verdict = the check's verdict
CSV_CHECK_COLUMNS = ("check_role", "check_run", "check_observed", "check_configured",
                     "check_reason")
CHECK_WORKLOAD = "isolation-check"


def to_csv(comps: Sequence[Comparison]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    checks = any(comp.checks for comp in comps)
    w.writerow(CSV_COLUMNS + (CSV_CHECK_COLUMNS if checks else ()))
    blank = [""] * len(CSV_CHECK_COLUMNS) if checks else []
    for comp in comps:
        for r in comp.rows:
            w.writerow([comp.base_id, comp.cand_id, comp.base_scenario, comp.cand_scenario,
                        r.workload, r.variant, r.metric, r.unit, r.n_base, r.n_cand,
                        r.base_median, r.cand_median, r.overhead_pct, r.ci_low, r.ci_high,
                        r.p_value, r.target_pct, r.verdict, r.change, r.more_trials,
                        r.base_cv_pct, r.cand_cv_pct, "; ".join(comp.forced), r.gpu,
                        comp.base_backend, comp.cand_backend, *blank])
        for c in comp.checks:
            row = [""] * len(CSV_COLUMNS)
            row[:8] = [comp.base_id, comp.cand_id, comp.base_scenario, comp.cand_scenario,
                       CHECK_WORKLOAD, c.get("check"), "verdict", ""]
            row[CSV_COLUMNS.index("verdict")] = c.get("verdict")
            w.writerow(row + [c.get("role"), c.get("run"), c.get("observed"),
                              c.get("configured"), c.get("reason")])
    return buf.getvalue()


def to_json(comps: Sequence[Comparison]) -> str:
    # no indent: the C encoder is ~5x faster on large comparisons (pipe through `jq .`)
    return json.dumps({"comparisons": [c.to_dict() for c in comps]}, ensure_ascii=False,
                      allow_nan=False, default=str) + "\n"


# ---- comparison.md over the reference scenarios --------------------------------------------

@dataclass(frozen=True)
class ReportScenario:
    name: str
    title: str
    target_pct: float | None = None
    baseline: str | None = None


def headline(comp: Comparison) -> MetricComparison | None:
    """The figure the seed compared: round-trip throughput; else, for a run that measured
    decode or prefill, the tail a service feels (the first step variant's p99 latency); else
    the first throughput row."""
    for wl in ("roundtrip", "launch"):
        for r in comp.rows:
            if r.workload == wl and r.metric == "ops_per_s":
                return r
    tails = step_tail_rows(comp)
    if tails:
        return tails[0]
    for r in comp.rows:
        if r.metric == "ops_per_s":
            return r
    return comp.rows[0] if comp.rows else None


def _doc_headline(doc: dict) -> str:
    """The run's headline rate with its unit (the summary's rows mix workloads)."""
    w = headline_workload(doc.get("workloads") or [])
    return EMPTY if w is None else variant_rate(w).text()


def checks_report_rows(scenarios: Sequence[ReportScenario],
                       checks: dict[str, dict | None]) -> list[list[str]]:
    """comparison.md's isolation-check table: per scenario the newest check run's verdicts,
    or one row saying plainly that no isolation check ran."""
    rows = []
    for i, sc in enumerate(scenarios, 1):
        found = check_rows(checks.get(sc.name))
        if not found:
            rows.append([str(i), sc.title, "no isolation check run", EMPTY, EMPTY, EMPTY, EMPTY,
                         f"`gpubench check --scenario {sc.name}`" if sc.baseline else ""])
            continue
        for r in found:
            rows.append([str(i), sc.title, r["run"] or "", r["check"] or "", r["verdict"] or "",
                         r["observed"], r["configured"], r["reason"]])
    return rows


def comparison_report(scenarios: Sequence[ReportScenario], latest: dict[str, dict | None],
                      compare: Callable[[dict, dict, ReportScenario], Comparison],
                      *, generated: str, tool_version: str | None = None,
                      checks: dict[str, dict | None] | None = None) -> str:
    """comparison.md: a summary table over the scenarios (in their order), then every
    metric of every comparison. `latest` maps scenario name to its newest run (or None);
    `compare(base_doc, cand_doc, scenario)` returns a Comparison or raises ResultError.
    `checks` maps scenario name to its newest check run (results.check_verdicts.latest_check_run,
    or None): given, an "Isolation checks" table follows the summary."""
    summary_rows = []
    details = []
    cpu_rows = False
    for i, sc in enumerate(scenarios, 1):
        doc = latest.get(sc.name)
        target = EMPTY if sc.target_pct is None else f"< {sc.target_pct:g}%"
        if doc is None:
            summary_rows.append([str(i), sc.title, "no run yet", EMPTY, EMPTY, EMPTY, target,
                                 f"run `gpubench run {sc.name}`"])
            continue
        run = doc["id"] + (" (imported)" if doc.get("imported") else "")
        status = (doc.get("validity") or {}).get("status", "")
        counts = doc_counts(doc)["headline"]
        validity = status_short(status, counts)     # VALID 28/30, FEW RESULTS 1/30, INVALID 0/30
        if doc_backend(doc):
            run += f" · {backend_cell(doc_backend(doc))}"
            cpu_rows = cpu_rows or is_cpu(doc_backend(doc))
        if sc.baseline is None:
            summary_rows.append([str(i), sc.title, run, _doc_headline(doc), "baseline", EMPTY,
                                 target, validity])
            continue
        base = latest.get(sc.baseline)
        if base is None:
            summary_rows.append([str(i), sc.title, run, _doc_headline(doc), EMPTY, EMPTY, target,
                                 f"no run of baseline {sc.baseline}"])
            continue
        try:
            comp = compare(base, doc, sc)
        except ResultError as exc:
            summary_rows.append([str(i), sc.title, run, _doc_headline(doc), EMPTY, EMPTY, target,
                                 str(exc)])
            continue
        h = headline(comp)
        verdict = comp.verdict + (" (forced)" if comp.forced else "") + (
            ", MIXED backends" if is_mixed(comp.base_backend, comp.cand_backend) else "")
        summary_rows.append([str(i), sc.title, run, _doc_headline(doc),
                             fmt_pct(h.overhead_pct) if h else EMPTY,
                             fmt_ci(h.ci_low, h.ci_high) if h else EMPTY, target,
                             f"{verdict}, run {validity}"
                             if status_word(status, counts) in (INVALID, FEW_RESULTS)
                             else verdict])
        details += [f"### {sc.title} vs {sc.baseline}"
                    + (f" — {comp.backends}" if CPU_CELL in comp.backends else ""), ""]
        details += [f"> {line}" for line in header_lines(comp)] + [""]
        details.append(markdown_table(columns_for(comp), comparison_table(comp)))
        if comp.warnings:
            details += [""] + [f"- warning: {w}" for w in comp.warnings]
        details.append("")
    # a CPU-made figure tests gpubench, never GPU isolation: said before anything is read
    note = [f"**Not all GPU figures:** runs marked {CPU_CELL} were measured by the NumPy CPU "
            f"backend: {NOT_GPU}; they test gpubench, not GPU isolation.", ""] if cpu_rows else []
    out = ["# GPU isolation overhead: comparison", "", *note,
           f"Generated {generated} by gpubench {tool_version or ''} from the newest stored run "
           f"of each scenario.".replace("  ", " "), "",
           "Overhead is (baseline − candidate) / baseline for throughput and (candidate − "
           "baseline) / baseline for latency, from the medians of all valid results; the 95 % "
           "CI is a seeded bootstrap. Verdict: PASS when the whole CI is under the target, "
           "FAIL when it is wholly over, INCONCLUSIVE when it straddles the target (more "
           "trials needed). NOT COMPARABLE when a side has no usable value for a metric (no "
           "valid result, an INVALID run), INVALID when a side's valid results carry figures "
           "that cannot be (negative, NaN): both fail `gpubench compare --fail-on`. The "
           "overall verdict of a scenario is its worst metric's.", "",
           markdown_table(("#", "Scenario", "Run", "Throughput", "Overhead", "95% CI",
                           "Target", "Verdict"), summary_rows), ""]
    if checks is not None:
        out += [f"## {CHECKS_TITLE}", "",
                "Newest `gpubench check` run of each scenario: is the isolation layer's limit "
                "really enforced (ENFORCED / NOT ENFORCED / NOT APPLICABLE, with the observed "
                "against the configured limit), and the start-up and interference figures "
                "(MEASURED).", "",
                markdown_table(("#", "Scenario", "Check run", "Check", "Verdict", "Observed",
                                "Configured", "Reason"), checks_report_rows(scenarios, checks)),
                ""]
    if details:
        out += ["## Details", ""] + details
    return "\n".join(out).rstrip() + "\n"

