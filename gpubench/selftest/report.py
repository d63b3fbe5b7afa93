"""The self-test's summary as text: one row per arm with its state, why each arm that did not
pass did not, the resolution, and the overall state."""
from __future__ import annotations

from results.format import EMPTY

from .judging import FAILED, NOT_RESOLVED, PASSED

STATE_TEXT = {PASSED: "passed", NOT_RESOLVED: "NOT RESOLVED", FAILED: "FAILED"}


def format_summary(s: dict) -> str:
    out = []
    dev = s.get("device") or {}
    out.append(f"gpubench selftest on {s['backend']} ({dev.get('name', '?')}, driver "
               f"{dev.get('driver', '-')}): {s['trials_per_arm']} trials per arm, "
               f"{s['sessions']} engine sessions, {s['elapsed_s']:.0f} s")
    rule = s["trials_rule"]
    if rule["max"] > rule["min"]:
        out.append(f"trials: {rule['min']} at least, then one more while a CI was wider than "
                   f"±{s['tolerance_pp']:g} pp, up to {rule['max']}; stopped: {rule['stopped']}")
    out.append(f"metric: {s['metric']}; delay via {s['plan']['mechanism']}; "
               f"tolerance ±{s['tolerance_pp']:g} pp")
    out.append(f"design: {s.get('design')}")
    conf, family = s["ci_confidence_pct"], s["ci_family"]
    out.append(f"CIs: {conf:g} % each, {family['confidence_pct']:g} % for all "
               f"{family['arms']} judged arms at once ({family['adjustment']})")
    hdr = (f"{'workload/variant':<24}{'arm':<6}{'n off/on':>10}{'injected':>9}{'measured':>10}"
           f"{f'{conf:g}% CI':>19}{'error':>8}{'error CI (pp)':>19}  "
           f"{'verdicts vs ' + '/'.join(f'{t:g}%' for t in s['targets_pct']):<28}state")
    out.append(hdr)
    for r in s["rows"]:
        ci = _interval(r["ci_low"], r["ci_high"])
        eci = _interval(r.get("error_ci_low"), r.get("error_ci_high"))
        v = " ".join(f"{x['verdict'][:4]}{'' if x['ok'] else '!'}" for x in r["verdicts"].values())
        tag = "" if r["primary"] else " (info)"
        n = f"{r['n_base']}/{r['n_cand']}"
        out.append(f"{r['workload'] + '/' + r['variant']:<24}{r['arm']:<6}{n:>10}"
                   f"{r['injected_pct']:>8.2f}%{r['measured_pct']:>+9.2f}%{ci:>19}"
                   f"{r['error_pp']:>+8.2f}{eci:>19}  {v:<28}{STATE_TEXT[r['state']]}{tag}")
    for r in s["rows"]:
        if r["state"] != PASSED:
            out.append(f"{r['workload']}/{r['arm']} {STATE_TEXT[r['state']]}: {r['why']}")
    for w, res in s["resolution"].items():
        hw = res["aa_ci_half_width_pp"]
        out.append(f"{w}: A/A CI half-width {hw:.2f} pp" if hw is not None else f"{w}: {EMPTY}")
        if res["smallest_injected_resolved_pct"] is not None:
            out[-1] += f"; smallest injected overhead resolved (CI excludes 0): " \
                       f"{res['smallest_injected_resolved_pct']:.2f} %"
    for sk in s.get("skipped") or []:
        out.append(f"skipped {sk['workload']} {sk['level']:g} %: {sk['reason']}")
    if not any(r["primary"] for r in s["rows"]):
        out.append("no injected arm could run: see 'skipped'")
    out.append(state_line(s) + (f" — saved {len(s['saved'])} runs" if s.get("saved") else ""))
    return "\n".join(out)


def _interval(lo: float | None, hi: float | None) -> str:
    return f"[{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None else EMPTY


def state_line(s: dict) -> str:
    """The last line: the self-test's state, and for NOT RESOLVED what would resolve it."""
    tol = f"±{s['tolerance_pp']:g} pp"
    arms = s["arms"]
    judged = sum(arms.values())
    if s["state"] == PASSED:
        return f"SELFTEST PASSED at {tol}: all {judged} arms"
    if s["state"] == FAILED:
        return f"SELFTEST FAILED: {arms[FAILED]} of {judged} arms" if judged else \
            "SELFTEST FAILED: no arm was judged"
    line = f"SELFTEST NOT RESOLVED at {tol}"
    if s["max_unresolved_ci_half_width_pp"] is not None:
        line += f": error CI half-widths up to {s['max_unresolved_ci_half_width_pp']:.2g} pp"
    if s["trials_to_resolve"] is not None:
        n = s["trials_to_resolve"]
        line += f"; about {n} trials would resolve it (--trials {n})"
    return line
