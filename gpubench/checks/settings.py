"""What a check run measures with (Settings), the checks there are, and the one error that
stops a check from running at all."""
from __future__ import annotations

from dataclasses import dataclass

CHECKS = ("memory", "compute", "interference", "init", "matrix")
DEFAULT_TOLERANCE = 0.15          # compute: |achieved - configured fraction| allowed
HAMI_POLICIES = ("force", "disable")   # HAMi-core's GPU_CORE_UTILIZATION_POLICY values


class CheckError(Exception):
    """A check could not run at all; one line for the user."""


@dataclass
class Settings:
    backend: str = "auto"                 # the backend for engine-based checks
    libcuda: str = "libcuda.so.1"
    device: int = 0
    seconds: float = 1.0                  # per launch/GEMM probe
    gemm_n: int = 4096
    mem_step: int = 256 << 20
    tolerance: float = DEFAULT_TOLERANCE
    instances: int = 2
    interference_workloads: str = "launch,gemm"
    init_procs: str = "1,8,32"
    duration: float = 1.0
    repeats: int = 2
    python: str | None = None
