"""The histogram of a window's step latencies that decode/prefill results carry (the
dashboard draws it): log-spaced bins from the fastest to the slowest step, every step counted."""
from __future__ import annotations

import numpy as np

from engine.timing import STEP_HISTOGRAM_BINS, step_histogram
from tests.support.engine_run import run_engine


def test_bins_span_the_window_on_a_log_scale_and_count_every_step():
    ns = np.array([1000] * 90 + [2000] * 9 + [100_000], dtype=np.int64)   # 1 ms tail step
    h = step_histogram(ns)
    edges, counts = h["edges_us"], h["counts"]
    assert len(counts) == STEP_HISTOGRAM_BINS and len(edges) == STEP_HISTOGRAM_BINS + 1
    assert (edges[0], edges[-1]) == (1.0, 100.0)
    ratios = [b / a for a, b in zip(edges, edges[1:])]
    assert max(ratios) / min(ratios) < 1.001                       # even on a log scale
    assert sum(counts) == 100 and counts[0] == 90 and counts[-1] == 1


def test_an_empty_or_flat_window():
    assert step_histogram(np.empty(0, np.int64)) == {"edges_us": [], "counts": []}
    assert step_histogram(np.full(5, 2500, np.int64)) == {"edges_us": [2.5, 2.5], "counts": [5]}


def test_the_engine_puts_it_on_each_decode_result_and_not_on_other_workloads():
    proc, lines = run_engine("--backend", "numpy-cpu", "--workloads", "decode,launch",
                             "--launch-modes", "sync", "--layers", "1", "--kv-len", "16",
                             "--decode-batches", "1", "--duration", "0.05", "--warmup", "0",
                             "--repeats", "1", "--min-window", "0", "--telemetry-interval", "0")
    assert proc.returncode == 0, proc.stderr
    results = {r["workload"]: r for r in lines if r["type"] == "result"}
    h = results["decode"]["step_histogram"]
    assert sum(h["counts"]) == results["decode"]["ops"] > 0
    assert len(h["edges_us"]) == len(h["counts"]) + 1
    assert h["edges_us"][0] <= results["decode"]["latency_us"]["min"] + 0.001
    assert "step_histogram" not in results["launch"]
