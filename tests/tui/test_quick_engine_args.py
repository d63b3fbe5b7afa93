"""The quick test is the configured plan cut down to one short roundtrip workload."""
from __future__ import annotations

from engine.engine_args import EngineArgs
from scenarios.config import BenchDefaults
from tui.engine_args import quick_engine_args


def test_quick_test_keeps_the_configured_backend_sizes_and_pinning():
    d = BenchDefaults(backend="numpy-cpu", roundtrip_size="4KiB", cpus="0", duration_s=9,
                      workloads=("h2d",), repeats=9)
    assert EngineArgs.from_argv(quick_engine_args(d)) == EngineArgs(
        backend="numpy-cpu", workloads=("roundtrip",), duration=1.0, warmup=0.2, repeats=1,
        roundtrip_size="4KiB", cpus="0", telemetry_interval=d.telemetry_interval_s,
        sizes=d.copy_sizes)
