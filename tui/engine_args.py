"""Engine command-line arguments for the dashboard's quick test, from the config's defaults.

The quick test is the configured plan cut down to one short roundtrip workload, so it measures
with the same backend, sizes and CPU pinning as a plan run does.
"""
from __future__ import annotations

from dataclasses import replace

from scenarios.config import BenchDefaults


def quick_engine_args(d: BenchDefaults) -> list[str]:
    return replace(d.engine_args(), workloads=("roundtrip",), duration=1.0, warmup=0.2,
                   repeats=1).to_argv()
