"""The self-test's default design, `slots`: the delay toggles within each engine session.

Separate processes differ: on an H100 the p50 of launch+sync moves 5-15 % from one engine
process to the next (and a roundtrip's p50 between ~17 and ~22 us even within one), far more
than a 1 % delay. So every arm is a set of engine sessions whose delay toggles on and off in
time slots (0.25 s on the GPU, 0.1 s on the CPU: options.py) that come in pairs, one on and
one off in seeded random order (the interposer's GPUBENCH_INTERPOSE_DELAY_SLOT_NS/SEED on the
GPU, the engine's GPUBENCH_CPU_DELAY_SLOT_NS/SEED on the CPU: the same schedule).

The engine's own `sample` lines (every 0.05 s, 0.02 s on the CPU) are sorted into slots by their
time stamps; each pair gives one ratio, the on-slot's median p50 over the off-slot's, so the
process's level and its drift cancel pair by pair. The arm's overhead is the median pair ratio;
its CI resamples pairs within sessions (stratified bootstrap): the pair, not the sample, is the
unit, because samples of one slot and slots of one stretch of time are correlated (treating 0.1
s samples as independent put an A/A at +0.82 % with a CI excluding 0 on an H100). The delay sits
AFTER the stream synchronise returns (GPUBENCH_INTERPOSE_SYNC_DELAY_NS), when nothing is in
flight, so it adds fully to each op; a delay before the H2D copy or the launch was partly
absorbed by the roundtrip's own waits on the H100.
"""
from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING
from results.stats import median

from .judging import judge_pairs, pair_ratios, slot_pairs
from .mechanism import Mechanism, report_category, sum_counts, sync_calls_per_op
from .options import WORKLOAD_VARIANTS, Arm, ArmPlan
from .samples import classify_samples

if TYPE_CHECKING:   # the experiment imports this module to run it
    from .experiment import Selftest


async def plan(st: "Selftest", mech: Mechanism, backend: str, tol: float) -> ArmPlan:
    """Calibrate each workload and size its A/A and level arms; their sessions toggle the
    delay in seeded slots, and each arm is judged by its slot pairs."""
    opts = st.opts
    slot_ns = int(opts.slot_s * 1e9)
    calibration: dict[str, dict] = {}
    primary: dict[str, str] = {}
    sync_per_op: dict[str, float] = {}
    # the roundtrip first: its syncs per launch tell how many sync calls an op makes
    workloads = sorted(opts.workloads, key=lambda w: w != "roundtrip")
    for w in workloads:
        runs = [await st.session(mech.arm(w, "calibration", None, 0), i, backend)
                for i in range(max(1, opts.calibration_trials))]
        primary[w] = WORKLOAD_VARIANTS[w] or next(iter(runs[0].p50))
        reports = [r.report for r in runs if r.report]
        if mech.gpu and mech.placement == "sync" and \
                not sum(report_category(r, "sync")["calls"] for r in reports):
            mech.placement = "launch"   # the runtime's synchronise was not seen: fall back
            st.progress("selftest: no cuStreamSynchronize/cuCtxSynchronize seen; "
                        "delaying the launch instead")
        base_p50 = median([r.p50[primary[w]] for r in runs])
        k = mech.calls_per_op(w, reports)
        if mech.gpu and mech.category(w) == "sync":
            k = sync_per_op.setdefault("k", sync_calls_per_op(w, reports))
        calibration[w] = {"variant": primary[w], "baseline_p50_us": base_p50,
                          "calls_per_op": k, "delay_on": mech.delay_on(w),
                          "interposer_counts": sum_counts(reports)}
        st.progress(f"selftest: calibrated {w}/{primary[w]}: p50 {base_p50:.3f} us; delay "
                    f"on {mech.delay_on(w)}")
    arms: list[Arm] = []
    for w in opts.workloads:
        cal = calibration[w]
        arms.append(mech.arm(w, "aa", 0.0, 0))
        for level in opts.levels:
            delay = level / 100 * cal["baseline_p50_us"] * 1000 / cal["calls_per_op"]
            arms.append(mech.arm(w, f"L{level:g}", level, int(round(delay))))
    seeds = random.Random(opts.seed + 1)

    def prepare(arm: Arm, trial: int) -> Arm:
        env = mech.env_for(arm.workload, arm.delay_ns, slot_ns, seeds.getrandbits(63))
        return dataclasses.replace(arm, env=env)

    def judge(by_arm: dict[str, list]) -> list[dict]:
        rows = (_judge(st, mech, arm, by_arm[arm.key], primary[arm.workload],
                       calibration[arm.workload]["calls_per_op"], slot_ns, tol) for arm in arms)
        return [row for row in rows if row is not None]
    return ArmPlan(arms, calibration, [], judge, prepare)


def _judge(st: "Selftest", mech: Mechanism, arm: Arm, runs: list, variant: str, k: float,
           slot_ns: int, tol: float) -> dict | None:
    """One arm's row from its sessions' slot pairs, or None with fewer than two pairs."""
    opts = st.opts
    w = arm.workload
    reports = [s.report for s in runs if s.report]
    spent = mech.spent_per_call_ns(w, reports, arm.delay_ns) if arm.delay_ns else 0.0
    lat_pairs, ops_pairs, truths, dropped = [], [], [], 0
    for sess in runs:
        smp = [x for x in sess.samples if x["variant"] == variant]
        if sess.t0_ns is None or sess.seed is None or not smp:
            continue
        cls = classify_samples(smp, sess.t0_ns, slot_ns)
        dropped += len(smp) - len(cls)
        pairs = slot_pairs(cls, sess.seed, "p50")
        if not pairs:
            continue
        lat_pairs.append([on / off for on, off in pairs])
        ops_pairs.append(pair_ratios(cls, sess.seed, "ops_per_s"))
        # the truth of each pair: what the delay cost per op (as this session's delay
        # reported it) over that pair's off-slot p50. The arm's error is judged pair by pair
        # (judging.judge_pairs), and its injected figure is the median over the same pairs as
        # the measurement's: a mean over sessions differs from it by several pp at 200 % when
        # sessions' levels differ by 10 %
        sess_spent = mech.spent_per_call_ns(w, [sess.report], arm.delay_ns) \
            if sess.report and arm.delay_ns else spent
        truths.append([k * sess_spent / (off * 1000) * 100 for _, off in pairs])
    if sum(len(x) for x in lat_pairs) < 2:
        return None
    key = f"selftest/{w}/{variant}/{arm.name}"
    common = dict(injected_pct=median([t for ts in truths for t in ts]),
                  targets=tuple(opts.levels), tol=tol,
                  seed=opts.seed, n_boot=opts.n_boot, confidence=st.ci_confidence,
                  # the CPU self-test runs where others load the machine in bursts of
                  # seconds, which move all the pairs of one session together
                  resample_sessions=not mech.gpu)
    row = judge_pairs(lat_pairs, key=key, truths_by_session=truths, **common)
    ops_row = judge_pairs(ops_pairs, key=key + "/ops", higher_is_better=True, **common)
    row.update({"workload": w, "variant": variant, "arm": arm.name,
                "level": arm.level, "delay_ns": arm.delay_ns,
                "delayed_calls_per_op": k, "spent_ns_per_call": spent,
                "injected_ns_per_op": k * spent, "primary": True,
                "samples_dropped": dropped, "sessions": len(runs),
                "ops_per_s": {"measured_pct": ops_row["measured_pct"],
                              "ci_low": ops_row["ci_low"],
                              "ci_high": ops_row["ci_high"]},
                "interposer_counts": sum_counts(reports)})
    return row
