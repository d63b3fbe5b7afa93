"""Engine command-line arguments for a plan or a quick test, from config defaults.

The runner's `engine_args` is the single source of truth; the quick test is a
plan with one short roundtrip workload.
"""
from __future__ import annotations

from scenarios.config import BenchDefaults
from gpubench.runner import PlanOptions, engine_args

QUICK_OPTIONS = PlanOptions(workloads=("roundtrip",), duration_s=1.0, warmup_s=0.2, repeats=1)


def quick_engine_args(d: BenchDefaults) -> list[str]:
    return engine_args(d, QUICK_OPTIONS)
