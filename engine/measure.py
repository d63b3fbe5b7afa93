"""The measurement loop and the `sample`/`result` lines (validity rules: window_checks.py).

The hot loop (compiled per variant by inline.py, with the operation's calls
as its body) does per operation: the calls, one perf_counter_ns read stored
into a preallocated int64 array, an increment and one compare.
Everything else (interval statistics, JSON, the stop-flag check) happens only
when the compare says an interval boundary (about every 0.25 s) or the end of
the window was reached; a full latency chunk is noticed by the IndexError of
the store, so it costs nothing until it happens (every 2^20 ops).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .plan import Plan, Variant
from .inline import make_hot, make_op
from .timing import CHUNK_OPS, LatencyRecorder, latency_stats, step_histogram
from .window_checks import clock_reasons, window_reasons, window_shape

Op = Callable[[], Any]


class NotApplicable(Exception):
    """A variant that cannot be measured honestly here (the message says why): the run
    reports a non-fatal `not_applicable` error for it instead of a figure and goes on."""


@dataclass
class Prepared:
    """A variant ready to run: the timed call and what one call stands for.

    Give either `calls` (plain calls compiled into the loop body, see inline.py)
    or `op` (a zero-argument function called from the loop).
    """
    op: Op | None = None
    calls: list | None = None         # [(fn, args), ...]: one operation, inlined
    ops_per_call: int = 1             # launch/async: launches per timed call
    bytes_per_op: int = 0             # bytes moved per operation (for GB/s)
    flops_per_op: float = 0.0         # floating-point operations per operation (TFLOP/s)
    tokens_per_op: int = 0            # decode/prefill: tokens one step processes (tokens/s)
    timer: Any = None                 # CudaTimer/CpuTimer accumulating device time, if any
    timing: str = "perf_counter_ns"   # how per-op latency is taken
    keep: tuple = ()                  # buffers kept alive while the variant runs
    params: dict = field(default_factory=dict)
    hot: Any = None                   # the compiled hot loop (built on first use)

    def __post_init__(self):
        if self.op is None:
            if self.calls is None:
                raise ValueError("Prepared needs op or calls")
            self.op = make_op(self.calls)
        self.hot = make_hot(self.calls if self.calls is not None else [(self.op, ())])


class StopFlag:
    """Set by the signal handlers; read by the loops at interval boundaries."""

    def __init__(self):
        self.signum = 0

    def __bool__(self) -> bool:
        return self.signum != 0


class Runner:
    def __init__(self, plan: Plan, emitter: Any, stop: StopFlag, telemetry: Any = None):
        self.plan = plan
        self.emitter = emitter
        self.stop = stop
        self.telemetry = telemetry
        self._emit = emitter.emit if emitter is not None else (lambda *a, **k: None)
        self.chunk_ops = CHUNK_OPS
        self._recorder: LatencyRecorder | None = None
        self._recorder_ops = 0

    # ---- warm-up -----------------------------------------------------------------
    def warmup(self, prep: Prepared, seconds: float | None = None) -> None:
        """Run the operation for the warm-up time (at least once); nothing is recorded."""
        seconds = self.plan.warmup if seconds is None else seconds
        op, pc = prep.op, time.perf_counter
        end = pc() + seconds
        op()
        while pc() < end and not self.stop:
            op()
        if prep.timer is not None:
            prep.timer.total_s = 0.0

    def run_prepared(self, variant: Variant, prep: Prepared) -> None:
        """Warm-up, then one measured window (one `result`) per repeat.

        Interrupted before the first window: one empty result marked interrupted,
        so the reader sees which variant was cut short.
        """
        self.warmup(prep)
        for repeat in range(self.plan.repeats):
            if self.stop:
                if repeat == 0:
                    now = time.perf_counter_ns()
                    self.emit_result(variant, 0, np.empty(0, np.int64), prep, now, now, True)
                return
            self.measure(variant, prep, repeat)

    # ---- one measured window ---------------------------------------------------------
    def measure(self, variant: Variant, prep: Prepared, repeat: int,
                duration: float | None = None) -> dict:
        duration = self.plan.duration if duration is None else duration
        dev0 = prep.timer.total_s if prep.timer is not None else 0.0
        op_s = getattr(prep.timer, "op_s", None)    # each op's CUDA-event time, when kept
        if op_s is not None:
            op_s.clear()
        calls, t_start, t_end, interrupted, rec = self._loop(variant, prep, repeat, duration)
        device_s = (prep.timer.total_s - dev0) if prep.timer is not None else None
        extra = {"device_latency_us": latency_stats(np.asarray(op_s) * 1e9)} if op_s else None
        return self.emit_result(variant, repeat, rec.all()[:calls] if calls else np.empty(0, np.int64),
                                prep, t_start, t_end, interrupted, device_s, extra)

    def _loop(self, variant: Variant, prep: Prepared, repeat: int, duration: float):
        """Run `prep.op` back to back for `duration` s; one clock read per op.

        The hot loop stores each op's end timestamp; at every boundary the
        interval's timestamps are turned into per-op latencies in place (the
        time between consecutive op ends: the op plus a few bytecodes of this
        loop). The clock is re-read after the boundary work, so samples and JSON
        never land in an op's latency. The window (for ops/s) runs from the
        first op's start to the last op's end.
        """
        if self._recorder is None or self._recorder_ops != self.chunk_ops:
            self._recorder, self._recorder_ops = LatencyRecorder(self.chunk_ops), self.chunk_ops
        rec = self._recorder.reset()  # one preallocated, pre-touched array per runner
        mv, cap = rec.view()
        hot, pc, stop = prep.hot, time.perf_counter_ns, self.stop
        si = max(1, int(self.plan.sample_interval * 1e9))
        start = pc()
        end_at = start + max(1, int(duration * 1e9))
        next_sample = start + si
        boundary = min(next_sample, end_at)
        i = last_i = base = 0
        last_t = seg_t0 = t1 = start  # seg_t0: when the current interval's first op began
        interrupted = False
        while True:
            i, t1, full = hot(mv, i, boundary)  # ---- the hot loop (inline.py) ----
            if full:  # the latency chunk is full (rare): start the next one
                prev_end = rec.to_latencies(last_i, i, seg_t0)
                self._sample(variant, prep, repeat, rec.current_slice(last_i, i), t1 - last_t)
                last_t = t1
                base += i
                mv, cap = rec.next_chunk(i)
                mv[0] = t1
                i, last_i, seg_t0 = 1, 0, prev_end
                if t1 < boundary:
                    continue
            # ---- rare path: latencies, sample, stop check, end of window ----
            rec.to_latencies(last_i, i, seg_t0)
            self._sample(variant, prep, repeat, rec.current_slice(last_i, i), t1 - last_t)
            last_i, last_t = i, t1
            if stop:
                interrupted = True
                break
            if t1 >= end_at:
                break
            while next_sample <= t1:
                next_sample += si
            boundary = min(next_sample, end_at)
            seg_t0 = pc()
        rec.close(i)
        return base + i, start, t1, interrupted, rec

    def _sample(self, variant: Variant, prep: Prepared, repeat: int, ns: np.ndarray,
                interval_ns: int) -> None:
        if ns.size == 0:
            return
        ops = int(ns.size) * prep.ops_per_call
        secs = max(interval_ns, 1) * 1e-9
        fields: dict = {"workload": variant.workload, "variant": variant.name, "repeat": repeat,
                        "interval_ops": ops, "ops_per_s": ops / secs,
                        "latency_us": latency_stats(ns, prep.ops_per_call)}
        if prep.bytes_per_op:
            fields["gbps"] = prep.bytes_per_op * ops / secs / 1e9
        if prep.flops_per_op:
            fields["tflops"] = prep.flops_per_op * ops / secs / 1e12
        if prep.tokens_per_op:
            fields["tokens_per_s"] = prep.tokens_per_op * ops / secs
        self._emit("sample", **fields)

    # ---- result and validity -------------------------------------------------------------
    def validity(self, window_s: float, t_start_s: float, t_end_s: float, interrupted: bool,
                 ops: int, shape: dict | None = None, cv: float | None = None,
                 check_window: bool = True) -> tuple[list[str], dict | None]:
        """(the INVALID reasons of one window, the clocks read during it): what threatens the
        figure (engine/window_checks.py); `check_window` False for a batch that is no loop."""
        reasons: list[str] = []
        if ops == 0:
            reasons.append("no operations completed")
        if check_window:
            reasons += window_reasons(shape or {"calls": 0}, window_s, self.plan.min_window,
                                      self.plan.stall_limit, self.plan.drift_limit)
            limit = self.plan.cv_limit
            if limit is not None and cv is not None and cv * 100 > limit:
                reasons.append(f"cv {cv * 100:.1f}% > limit {limit:g}%")
        clocks = None
        if self.telemetry is not None:
            for name in self.telemetry.throttling_between(t_start_s, t_end_s):
                reasons.append(f"throttled: {name}")
            between = getattr(self.telemetry, "clocks_between", None)
            clocks = between(t_start_s, t_end_s) if between is not None else None
            reasons += clock_reasons(clocks)
        if interrupted:
            reasons.append("interrupted")
        return reasons, clocks

    def emit_result(self, variant: Variant, repeat: int, ns: np.ndarray, prep: Prepared,
                    t_start_ns: int, t_end_ns: int, interrupted: bool,
                    device_s: float | None = None, extra: dict | None = None,
                    check_window: bool = True,
                    extra_reasons: list[str] | None = None) -> dict:
        ops = int(ns.size) * prep.ops_per_call
        window_s = max(t_end_ns - t_start_ns, 0) * 1e-9
        lat = latency_stats(ns, prep.ops_per_call, full=True)
        shape = window_shape(ns, window_s)
        reasons, clocks = self.validity(window_s, t_start_ns * 1e-9, t_end_ns * 1e-9,
                                        interrupted, ops, shape, lat.get("cv"), check_window)
        if clocks is not None:
            shape["clocks_mhz"] = clocks
        reasons[:0] = extra_reasons or []
        params = dict(variant.params)
        params.update(prep.params)
        params["ops_per_call"] = prep.ops_per_call
        params["timing"] = prep.timing
        params["telemetry"] = self.telemetry is not None
        fields: dict = {
            "workload": variant.workload, "variant": variant.name, "repeat": repeat,
            "ops": ops, "duration_s": round(window_s, 6),
            "ops_per_s": (ops / window_s) if window_s > 0 else 0.0,
            "latency_us": lat, "valid": not reasons, "validity_reasons": reasons,
            "interrupted": interrupted, "params": params, "window": shape,
        }
        if device_s is not None:
            fields["device_time_s"] = round(device_s, 6)
        if prep.bytes_per_op:
            fields["bytes"] = prep.bytes_per_op * ops
            basis = device_s if device_s else window_s
            fields["gbps"] = (prep.bytes_per_op * ops / basis / 1e9) if basis > 0 else None
            fields["gbps_wall"] = (prep.bytes_per_op * ops / window_s / 1e9) if window_s > 0 else None
        if prep.flops_per_op:
            basis = device_s if device_s else window_s
            fields["tflops"] = (prep.flops_per_op * ops / basis / 1e12) if basis > 0 else None
        if prep.tokens_per_op:
            fields.update(step_fields(prep, ops, window_s, lat, ns))
        if extra:
            fields.update(extra)
        self._emit("result", **fields)
        return fields


def step_fields(prep: Prepared, steps: int, window_s: float, lat: dict, ns: np.ndarray) -> dict:
    """What a decode/prefill result adds: tokens/s over the window, the step's jitter
    (p99 ÷ p50 of the step latency), the FLOPs one step does and the histogram of the
    window's step latencies (the live view draws it)."""
    p50, p99 = lat.get("p50"), lat.get("p99")
    return {"tokens_per_s": prep.tokens_per_op * steps / window_s if window_s > 0 else 0.0,
            "jitter": round(p99 / p50, 4) if p50 and p99 is not None else None,
            "flops_per_step": int(prep.flops_per_op), "step_histogram": step_histogram(ns)}
