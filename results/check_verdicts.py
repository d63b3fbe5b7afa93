"""Isolation-check verdicts as stored by `gpubench check` (gpubench/checks), read back for
`compare`, `report` (comparison.md) and the TUI's compare view.

A check run is a result document whose scenario is `check-<scenario>` and which carries
`checks` (one dict per check: `check`, `verdict`, `reasons` and the check's own figures),
`checks_summary` ({check: verdict}) and `checks_proxy` (the proxy under test: name,
preload, env, limits). Any document may carry `checks`; check runs are the ones that do.

    rows = check_rows(doc, role="check run")        # one flat row per check, then one per
                                                    # allocation path (`memory/<path>`)
    doc = latest_check_run(store, "bare-metal-proxy")   # newest `check-bare-metal-proxy` run
"""
from __future__ import annotations

from typing import Iterable, Sequence

from .format import EMPTY, fmt_size, fmt_spec
from .share_series import compute_observed

ENFORCED, NOT_ENFORCED, NOT_APPLICABLE, MEASURED = (
    "ENFORCED", "NOT ENFORCED", "NOT APPLICABLE", "MEASURED")
# memory, per allocation path: refused with another code than CUDA_ERROR_OUT_OF_MEMORY, or a
# path the driver does not have
WRONG_ERROR, NOT_SUPPORTED = "WRONG ERROR", "NOT SUPPORTED"
CHECK_SCENARIO_PREFIX = "check-"
CHECK_COLUMNS = ("role", "run", "check", "verdict", "observed", "configured", "reason")


def check_scenario_name(scenario: str) -> str:
    """The scenario name `gpubench check --scenario NAME` saves its run under."""
    return f"{CHECK_SCENARIO_PREFIX}{scenario}"


def has_checks(doc: dict | None) -> bool:
    return bool(doc) and isinstance(doc.get("checks"), list) and bool(doc["checks"])


def observed_configured(c: dict) -> tuple[str, str]:
    """(observed, configured) of one stored check, as short text."""
    name = c.get("check")
    if name == "memory":
        configured = fmt_size(c.get("configured_bytes"))
        probe = c.get("probe") or {}
        if isinstance(c.get("observed"), str):          # per path: how many got each verdict
            observed = c["observed"]
        elif c.get("observed_ceiling_bytes") is not None:   # one path (cuMemAlloc), older runs
            observed = f"refused at {fmt_size(c['observed_ceiling_bytes'])}"
        elif isinstance(probe.get("allocated"), (int, float)) and "error" not in probe:
            observed = (f"{fmt_size(probe['allocated'])} allocated"
                        + ("" if probe.get("refused") else ", never refused"))
        else:
            observed = EMPTY
        return observed, configured
    if name == "compute":
        parts = []
        fraction = c.get("configured_fraction")
        if fraction is not None:
            parts.append(f"{fmt_spec(fraction)} of unlimited"
                         + (f" (±{c['tolerance']:g})" if c.get("tolerance") is not None else ""))
        if c.get("configured_launch_rate") is not None:
            parts.append(f"{c['configured_launch_rate']:,.0f} launches/s")
        return compute_observed(c), "; ".join(parts) or EMPTY
    if name == "interference":
        rows = [r for r in c.get("rows") or [] if r.get("fairness") is not None]
        if rows:
            worst = min(rows, key=lambda r: r["fairness"])
            observed = f"fairness {worst['fairness']:.2f} ({worst.get('variant')})"
        else:
            observed = EMPTY
        return observed, f"{c.get('instances', '?')} instances"
    if name == "init":
        rows = c.get("rows") or []
        observed = EMPTY
        if rows:
            r = rows[-1]                       # the largest N
            bare = r.get("bare") or {}
            observed = (f"{str(r.get('variant', '')).split('/')[-1]} p50/p99 "
                        f"{fmt_spec(bare.get('p50_ms'), 'g')}/{fmt_spec(bare.get('p99_ms'), 'g')} ms")
            if r.get("proxy_over_bare_p50") is not None:
                observed += f", proxy x{r['proxy_over_bare_p50']:.2f}"
        return observed, f"N = {c.get('procs', '?')}"
    if name == "matrix":   # its own summary, made when it ran (results/matrix_table.py)
        return c.get("observed") or EMPTY, c.get("configured") or EMPTY
    return EMPTY, EMPTY


def check_rows(doc: dict | None, role: str = "") -> list[dict]:
    """One flat row per check the document carries ([] when it carries none)."""
    if not has_checks(doc):
        return []
    scen = (doc.get("scenario") or {}).get("name") or ""
    proxy = (doc.get("checks_proxy") or {}).get("name")
    out, paths = [], []
    for c in doc["checks"]:
        if not isinstance(c, dict):
            continue
        observed, configured = observed_configured(c)
        reasons = [str(r) for r in c.get("reasons") or []]
        row = {"role": role, "run": doc.get("id"), "created": doc.get("created"),
               "scenario": scen.removeprefix(CHECK_SCENARIO_PREFIX), "proxy": proxy,
               "check": c.get("check"), "verdict": c.get("verdict"),
               "observed": observed, "configured": configured,
               "reason": "; ".join(reasons), "reasons": reasons,
               # the whole matrix, for the grid that show/compare print beside the row
               **({"matrix": c} if c.get("check") == "matrix" else {})}
        out.append(row)
        if c.get("check") == "memory":
            paths += [{**row, "check": f"memory/{p.get('path')}", "verdict": p.get("verdict"),
                       "observed": str(p.get("observed") or EMPTY),
                       "reason": str(p.get("summary")), "reasons": [str(p.get("summary"))]}
                      for p in c.get("paths") or [] if isinstance(p, dict)]
    return out + paths   # the checks first, then the memory limit path by path


def comparison_checks(base: dict, cand: dict, check_run: dict | None = None) -> list[dict]:
    """The check rows beside one comparison: the baseline's and the candidate's own checks,
    then the newest check run of the candidate's scenario (when it is neither of them)."""
    rows = check_rows(base, "baseline") + check_rows(cand, "candidate")
    if check_run is not None and check_run.get("id") not in (base.get("id"), cand.get("id")):
        rows += check_rows(check_run, "check run")
    return rows


def latest_check_run(store, scenario: str, runs: Sequence[dict] | None = None) -> dict | None:
    """The newest readable stored run of `check-<scenario>` that carries checks, else None.
    `runs` is a store listing (oldest first) to reuse; `store` is a results.store.Store."""
    if runs is None:
        runs = store.list_runs().runs
    name = check_scenario_name(scenario)
    for summary in reversed([r for r in runs if r.get("scenario") == name]):
        try:
            doc = store.load(summary["id"])
        except Exception:
            continue
        if has_checks(doc):
            return doc
    return None


def check_table(rows: Iterable[dict]) -> list[list[str]]:
    """Rows of strings under CHECK_COLUMNS."""
    return [[r.get("role") or "", r.get("run") or "", r.get("check") or "",
             r.get("verdict") or "", r.get("observed") or EMPTY, r.get("configured") or EMPTY,
             r.get("reason") or ""] for r in rows]
