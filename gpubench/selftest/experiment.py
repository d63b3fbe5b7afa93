"""The self-test's run: calibrate, run the arms in blocks, judge them, summarise.

Every arm runs in blocks of sessions, each block holding every arm once in a seeded random
order, so drift hits every arm alike; design_slots.py and design_sessions.py calibrate, size
the delays and judge each arm, and judging.py's one rule makes the arms and the whole
PASSED, FAILED or NOT RESOLVED. One trial is one engine session (a fresh
process), not one repeat: repeats of one process are not independent.
"""
from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from engine.protocol import finite
from engine.vocabulary import COMPLETED
from results.stats import median

from . import design_sessions, design_slots
from .engine_session import SessionData, detect_backend, engine_args, run_session
from .judging import family_confidence, overall, too_wide
from .mechanism import Mechanism
from .options import CPU_BASE_WAIT_NS, Arm, ArmPlan, Options, SelftestError, settle
from .store import save_arms


class Selftest:
    def __init__(self, opts: Options, progress: Callable[[str], None] | None = None):
        self.opts = opts
        self.progress = progress or (lambda m: print(m, file=sys.stderr, flush=True))
        self.sessions: list[SessionData] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="gpubench-selftest-"))
        self.ci_confidence = 0.95
        self.judged_arms = 1
        self._n = 0

    async def session(self, arm: Arm, trial: int, backend: str) -> SessionData:
        """One engine session of the arm; SelftestError unless it ran as the arm asked."""
        self._n += 1
        report = self.tmp / f"r{self._n}.json" if arm.report_env else None
        args = engine_args(self.opts, backend, arm.workload)
        data = await run_session(arm, trial, args, report, self.opts.python)
        if data.outcome != COMPLETED:
            raise SelftestError(f"engine session {arm.key} failed: {data.outcome}: {data.message}")
        if not data.p50:
            raise SelftestError(f"engine session {arm.key} produced no valid result")
        if backend == "cupy" and data.backend != "cupy":
            raise SelftestError(f"asked for the GPU but the engine ran on {data.backend}")
        if arm.preload and not any(os.path.realpath(m) == os.path.realpath(arm.preload)
                                   for m in data.mapped):
            raise SelftestError(f"the interposer {arm.preload} is not mapped in the engine "
                                f"(hello host.preload.mapped: {data.mapped})")
        if arm.preload and (data.report is None or not data.report.get("counts")):
            raise SelftestError("the interposer wrote no report: it caught no CUDA call")
        if not arm.preload and arm.report_env and not (data.report or {}).get("calls"):
            raise SelftestError(f"engine session {arm.key} wrote no delay report "
                                f"({arm.report_env}): is the engine older than this gpubench?")
        self.sessions.append(data)
        return data

    async def blocks(self, plan: ArmPlan, backend: str, t_start: float, tol: float):
        """Every arm once per block, blocks in seeded random order, judged after `trials` of
        them and after each further one; more are run while an arm's CI is wider than the
        tolerance, up to `max_trials`. The stop looks at the CIs' widths alone, never at where
        they lie (a fixed-width sequential interval, after Chow and Robbins), so it cannot
        steer an arm towards its truth or away from it: (sessions by arm, order, rows, why
        it stopped)."""
        opts = self.opts
        rng = random.Random(opts.seed)
        order: list[tuple[str, int]] = []
        by_arm: dict[str, list[SessionData]] = {a.key: [] for a in plan.arms}
        rows: list[dict] = []
        stop = ""
        for trial in range(opts.max_trials):
            block = list(plan.arms)
            rng.shuffle(block)
            for arm in block:
                run_arm = plan.prepare(arm, trial) if plan.prepare else arm
                by_arm[arm.key].append(await self.session(run_arm, trial, backend))
                order.append((arm.key, trial))
            n = trial + 1
            done = f"selftest: block {n}/{opts.trials if n <= opts.trials else opts.max_trials}" \
                   f" done ({time.monotonic() - t_start:.0f} s)"
            if n < opts.trials:
                self.progress(done)
                continue
            rows = plan.judge(by_arm)
            wide = too_wide(rows, tol)
            if not rows:
                stop = "no arm could be judged"
            elif not wide:
                stop = f"every CI within ±{tol:g} pp"
            elif n == opts.max_trials:
                stop = f"the {n} trials asked for" if opts.max_trials == opts.trials else \
                    f"at the most trials, {n} (--max-trials)"
            if stop:
                self.progress(done)
                break
            self.progress(f"{done}; {len(wide)} CI(s) wider than ±{tol:g} pp "
                          f"({', '.join(wide)}): one more block")
        return by_arm, order, rows, stop

    async def run(self) -> dict:
        opts = self.opts
        t_start = time.monotonic()
        backend = opts.backend
        if backend == "auto":
            backend = detect_backend(opts.python)
            self.progress(f"selftest: backend {backend}")
        mech = Mechanism(backend, opts)
        design, tol = settle(opts, mech.gpu)
        if design == "slots" and not mech.gpu:
            mech.cpu_base_ns = CPU_BASE_WAIT_NS
        # every judged arm (each level and the A/A twin, per workload) fails when its CI
        # misses its truth: their CIs hold together at 95 %
        self.judged_arms = len(opts.workloads) * (len(opts.levels) + 1)
        self.ci_confidence = family_confidence(self.judged_arms)
        plan = await (design_slots if design == "slots" else design_sessions).plan(
            self, mech, backend, tol)
        by_arm, order, rows, stop = await self.blocks(plan, backend, t_start, tol)
        trials = len(order) // max(1, len(plan.arms))
        elapsed = time.monotonic() - t_start
        primary_rows = [r for r in rows if r["primary"]]
        device = next((s.device for s in self.sessions if s.device is not None), None)
        metric = (f"median over slot pairs of on-slot p50 / off-slot p50 (engine samples every "
                  f"{opts.sample_interval:g} s, delay toggled in {opts.slot_s:g} s slots within "
                  "each process)" if design == "slots" else
                  "median over repeats of per-op latency p50, one value per engine session")
        summary = {
            **overall(primary_rows, trials, tol),
            "backend": backend, "device": _device_brief(device), "design": design,
            "metric": metric,
            "tolerance_pp": tol, "targets_pct": list(opts.levels), "levels_pct": list(opts.levels),
            "ci_confidence_pct": round(self.ci_confidence * 100, 3),
            "ci_family": {"confidence_pct": 95.0, "arms": self.judged_arms,
                          "adjustment": "Bonferroni"},
            "trials_per_arm": trials,
            "trials_rule": {"min": opts.trials, "max": opts.max_trials, "stopped": stop},
            "sessions": len(self.sessions),
            "elapsed_s": round(elapsed, 1),
            "plan": {"duration_s": opts.duration, "warmup_s": opts.warmup, "repeats": opts.repeats,
                     "calibration_trials": opts.calibration_trials, "seed": opts.seed,
                     "roundtrip_size": opts.roundtrip_size, "slot_s": opts.slot_s,
                     "sample_interval_s": opts.sample_interval,
                     "delay_on": {w: mech.delay_on(w) for w in opts.workloads},
                     "mechanism": "interposer (LD_PRELOAD)" if mech.gpu else "engine busy-wait",
                     "interposer": mech.preload,
                     "base_wait_ns": mech.gpu_base_ns if mech.gpu else mech.cpu_base_ns},
            "calibration": plan.calibration, "skipped": plan.skipped, "rows": rows,
            "resolution": _resolution(primary_rows, opts.workloads),
        }
        summary = finite(summary)
        if opts.save:
            summary["saved"] = save_arms(summary, plan.arms, by_arm, order, opts.seed,
                                         opts.data_dir)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return summary


def _resolution(primary_rows: list[dict], workloads: tuple[str, ...]) -> dict[str, dict]:
    """Per workload: the A/A CI's half-width and the smallest injected overhead resolved."""
    resolution = {}
    for w in workloads:
        aa = next((r for r in primary_rows if r["workload"] == w and r["arm"] == "aa"), None)
        resolved = [r["injected_pct"] for r in primary_rows
                    if r["workload"] == w and r["arm"] != "aa" and r["ci_low"] is not None
                    and r["ci_low"] > 0]
        resolution[w] = {
            "aa_ci_half_width_pp": aa["ci_half_width"] if aa else None,
            "smallest_injected_resolved_pct": min(resolved) if resolved else None,
            "median_ci_half_width_pp": median([r["ci_half_width"] for r in primary_rows
                                                if r["workload"] == w
                                                and r["ci_half_width"] is not None]),
        }
    return resolution


def _device_brief(device: dict | None) -> dict:
    if not device:
        return {}
    return {k: device.get(k) for k in ("name", "driver", "cuda_driver", "cuda_runtime", "backend")
            if device.get(k) is not None}
