"""Engine command-line arguments for a plan or a quick test, from config defaults."""
from __future__ import annotations

from gpubench.config import BenchDefaults

QUICK_WORKLOADS = ("roundtrip",)
QUICK_DURATION_S = 1.0


def plan_engine_args(d: BenchDefaults) -> list[str]:
    try:  # the runner's own builder, when it provides one, is the single source of truth
        from gpubench.runner import engine_args  # type: ignore[attr-defined]
        return list(engine_args(d))
    except (ImportError, AttributeError, TypeError):
        pass
    args = ["--workloads", *d.workloads, "--duration", f"{d.duration_s:g}",
            "--warmup", f"{d.warmup_s:g}", "--repeats", str(d.repeats)]
    if d.backend != "auto":
        args += ["--backend", d.backend]
    return args


def quick_engine_args(d: BenchDefaults) -> list[str]:
    args = ["--workloads", *QUICK_WORKLOADS, "--duration", f"{QUICK_DURATION_S:g}",
            "--repeats", "1"]
    if d.backend != "auto":
        args += ["--backend", d.backend]
    return args
