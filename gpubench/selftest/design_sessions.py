"""The self-test's `sessions` design: one fixed delay per engine process, so the arms are
separate sessions (baseline, A/A twin, levels) in seeded random order within blocks, one value
per session: the median over its repeats of the per-op latency p50.

Per workload, sessions without delay give the baseline p50 and sessions with a calibration
delay the slope (time added per op over the time the delay reported spending); each level's
delay is level % x baseline p50 (per delayed call on the timed path). A constant per-op delay
shifts every per-op latency by the same amount, and a session's p50 over tens of thousands of
ops barely moves between sessions, while ops/s (1/mean) carries the long tail and scheduler
hiccups; ops/s overheads are reported beside it for comparison. On a shared 2-core machine the
load moves a session's p50 by tens of % from one session to the next, so the CPU self-test
uses slots too by default.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from results.stats import median

from .judging import judge_arm
from .mechanism import Mechanism, sum_counts
from .options import WORKLOAD_VARIANTS, Arm, ArmPlan, SelftestError

if TYPE_CHECKING:   # the experiment imports this module to run it
    from .experiment import Selftest

CALIBRATION_PCT = 20.0


async def plan(st: "Selftest", mech: Mechanism, backend: str, tol: float) -> ArmPlan:
    """Calibrate each workload and size its baseline, A/A and level arms; each arm is judged
    against the baseline's sessions."""
    opts = st.opts
    primary: dict[str, str] = {}
    calibration: dict[str, dict] = {}
    for w in opts.workloads:
        calibration[w] = await _calibrate(st, mech, backend, w, primary)
    arms: list[Arm] = []
    skipped: list[dict] = []
    for w in opts.workloads:
        cal = calibration[w]
        arms.append(mech.arm(w, "baseline", None, 0))
        arms.append(mech.arm(w, "aa", 0.0, 0))
        for level in opts.levels:
            delay = level / 100 * cal["baseline_p50_us"] * 1000 / cal["calls_per_op"]
            if delay < 1:
                skipped.append({"workload": w, "level": level,
                                "reason": f"{level:g} % of {cal['baseline_p50_us'] * 1000:.0f}"
                                          " ns is less than 1 ns"})
                continue
            arms.append(mech.arm(w, f"L{level:g}", level, int(round(delay))))

    def judge(by_arm: dict[str, list]) -> list[dict]:
        rows = []
        for w in opts.workloads:
            variant = primary[w]
            base_runs = by_arm[f"{w}/baseline"]
            base_vals = [s.p50[variant] for s in base_runs if variant in s.p50]
            base_ops = [s.ops[variant] for s in base_runs if variant in s.ops]
            if not base_vals:
                continue
            for arm in arms:
                if arm.workload == w and arm.name != "baseline":
                    rows.append(_judge(st, mech, arm, by_arm[arm.key], variant, base_vals,
                                       base_ops, tol))
        return rows
    return ArmPlan(arms, calibration, skipped, judge)


async def _calibrate(st: "Selftest", mech: Mechanism, backend: str, w: str,
                     primary: dict[str, str]) -> dict:
    """The workload's baseline p50, delayed calls per op and the slope of a calibration
    delay; sets the workload's primary variant."""
    opts = st.opts
    base_arm = mech.arm(w, "calibration-base", None, 0)
    base_runs = [await st.session(base_arm, i, backend) for i in range(opts.calibration_trials)]
    primary[w] = WORKLOAD_VARIANTS[w] or next(iter(base_runs[0].p50))
    base_p50 = median([s.p50[primary[w]] for s in base_runs])
    k = mech.calls_per_op(w, [s.report for s in base_runs if s.report])
    if not (k > 0):
        raise SelftestError(f"{w}: the interposer saw no delayed calls "
                            f"(category {mech.category(w)}): is the path hooked?")
    cal_delay = CALIBRATION_PCT / 100 * base_p50 * 1000 / k
    cal_arm = mech.arm(w, "calibration-delay", None, int(cal_delay))
    cal_runs = [await st.session(cal_arm, i, backend) for i in range(opts.calibration_trials)]
    cal_p50 = median([s.p50[primary[w]] for s in cal_runs])
    added_ns = (cal_p50 - base_p50) * 1000
    spent = mech.spent_per_call_ns(w, [s.report for s in cal_runs if s.report], int(cal_delay))
    slope = added_ns / (k * spent) if spent else math.nan
    st.progress(f"selftest: calibrated {w}/{primary[w]}: p50 {base_p50:.3f} us, "
                f"{k:.2f} delayed call(s)/op, delay {cal_delay:.0f} ns (spent "
                f"{spent:.0f} ns) added {added_ns:.0f} ns/op (slope {slope:.3f})")
    return {"variant": primary[w], "baseline_p50_us": base_p50,
            "calls_per_op": k, "calibration_delay_ns": int(cal_delay),
            "calibration_p50_us": cal_p50, "added_ns_per_op": added_ns,
            "spent_ns_per_call": spent, "slope": slope}


def _judge(st: "Selftest", mech: Mechanism, arm: Arm, runs: list, variant: str,
           base_vals: list[float], base_ops: list[float], tol: float) -> dict:
    """One arm's row: its sessions' p50s (and ops/s) against the baseline's."""
    opts = st.opts
    w = arm.workload
    base_med_us = median(base_vals)
    reports = [s.report for s in runs if s.report]
    k = mech.calls_per_op(w, reports) if arm.delay_ns else 0.0
    spent = mech.spent_per_call_ns(w, reports, arm.delay_ns) if arm.delay_ns else 0.0
    injected_pct = k * spent / (base_med_us * 1000) * 100
    vals = [s.p50[variant] for s in runs if variant in s.p50]
    ops = [s.ops[variant] for s in runs if variant in s.ops]
    key = f"selftest/{w}/{variant}/{arm.name}"
    row = judge_arm(base_vals, vals, injected_pct=injected_pct, targets=tuple(opts.levels),
                    tol=tol, seed=opts.seed, key=key, n_boot=opts.n_boot,
                    confidence=st.ci_confidence)
    ops_row = judge_arm(base_ops, ops, injected_pct=injected_pct, targets=tuple(opts.levels),
                        tol=tol, seed=opts.seed,
                        key=key + "/ops", n_boot=opts.n_boot, higher_is_better=True)
    row.update({"workload": w, "variant": variant, "arm": arm.name,
                "level": arm.level, "delay_ns": arm.delay_ns,
                "delayed_calls_per_op": k, "spent_ns_per_call": spent,
                "injected_ns_per_op": k * spent,
                "primary": True, "sessions": len(runs),
                "ops_per_s": {"measured_pct": ops_row["measured_pct"],
                              "ci_low": ops_row["ci_low"],
                              "ci_high": ops_row["ci_high"],
                              "base_cv_pct": ops_row["base_cv_pct"]}})
    if mech.gpu and reports:
        row["interposer_counts"] = sum_counts(reports)
    return row
