"""What a check run measures with (Settings), the checks there are, and the one error that
stops a check from running at all."""
from __future__ import annotations

from dataclasses import dataclass

CHECKS = ("memory", "compute", "interference", "init", "matrix")
DEFAULT_TOLERANCE = 0.15          # compute: |achieved - configured fraction| allowed
HAMI_POLICIES = ("force", "disable")   # HAMi-core's GPU_CORE_UTILIZATION_POLICY values
HAMI_LIBRARY = "/usr/local/vgpu/libvgpu.so"     # where HAMi installs it
# HAMi-core's variables: its limits, its utilisation policy and its shared-region file
HAMI_MEM_LIMIT, HAMI_SM_LIMIT = "CUDA_DEVICE_MEMORY_LIMIT", "CUDA_DEVICE_SM_LIMIT"
HAMI_POLICY, HAMI_CACHE = "GPU_CORE_UTILIZATION_POLICY", "CUDA_DEVICE_MEMORY_SHARED_CACHE"


class CheckError(Exception):
    """A check could not run at all; one line for the user."""


@dataclass
class Settings:
    backend: str = "auto"                 # the backend for engine-based checks
    libcuda: str = "libcuda.so.1"
    device: int = 0
    seconds: float = 3.0                  # each compute load
    interval: float = 0.25                # compute: the share is recorded per interval
    streams: int = 4                      # compute on a GPU: streams of the saturating load
    kernel_ms: float = 2.0                # compute on a GPU: one spin kernel, unlimited
    kernel: str = "auto"                  # compute: auto, spin (a GPU) or empty
    tenant_limits: str | None = "auto"    # compute: two tenants' limits ("auto", "none", A,B)
    gemm_n: int = 4096                    # interference: GEMM size
    mem_step: int = 256 << 20
    tolerance: float = DEFAULT_TOLERANCE
    instances: int = 2
    interference_workloads: str = "launch,gemm"
    init_procs: str = "1,8,32"
    duration: float = 1.0
    repeats: int = 2
    python: str | None = None
