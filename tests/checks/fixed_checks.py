"""A deterministic check run for views that need fixed figures (snapshots, report layouts):
gpubench.checks' own run_checks and checks_document, with only the probe processes and the
engine sessions replaced by fixed answers, so every verdict, reason and stored field is the
real code's. (Tests that can afford it run the real probes: tests/checks/.)"""
from __future__ import annotations

from unittest import mock

from gpubench.checks.proxy import Limits, Proxy
from gpubench.checks.settings import Settings
from gpubench.checks.suite import checks_document, run_checks
from gpubench.checks import contention, enforcement

MIB = 1 << 20
BARE_LAUNCHES = {"kernel": 250_000.0, "ex": 251_000.0}
# cuLaunchKernel is capped at 2,000/s; cuLaunchKernelEx is not hooked (the reported failure)
LIMITED_LAUNCHES = {"kernel": 1_990.0, "ex": 247_500.0}


def _fake_probe(proxy, args, settings, timeout=300):
    if args[0] == "memory":
        step = int(args[args.index("--step") + 1])
        path = args[args.index("--path") + 1]
        limit = proxy.limits.mem_bytes
        out = {"probe": "memory", "path": path, "supported": True, "allocated": limit,
               "allocations": limit // step, "refused": True, "rc": 2, "step": step,
               "stop_at": int(args[args.index("--stop-at") + 1]), "call": path,
               "meminfo_total": 80 << 30, "meminfo_free": 79 << 30}
        if path == "cuMemAllocManaged":       # a driver without managed memory
            out.update(supported=False, allocated=0, allocations=0, rc=801)
        return out
    api = args[args.index("--api") + 1]
    rate = (BARE_LAUNCHES if proxy is None else LIMITED_LAUNCHES)[api]
    return {"probe": "launch", "api": api, "launches": int(rate), "seconds": 1.0,
            "launches_per_s": rate, "rc": 0}


async def _failed_engines(requests, python):
    return [{"results": {}, "hello": None, "outcome": "failed",
             "message": "engine exited with code 2 (no_gpu)", "lines": [], "stderr": []}
            for _ in requests]


def fixed_check_summary(proxy_name: str = "bare-metal-proxy") -> dict:
    """memory ENFORCED (every path but managed memory, NOT SUPPORTED), compute NOT ENFORCED
    (cuLaunchKernelEx unhooked), interference NOT APPLICABLE (its engines could not start), as
    run_checks returns them."""
    proxy = Proxy(proxy_name, "/usr/local/vgpu/libvgpu.so",
                         {"GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES": str(64 * MIB),
                          "GPUBENCH_INTERPOSE_LAUNCH_RATE": "2000"},
                         Limits(mem_bytes=64 * MIB, launch_rate=2000.0))
    settings = Settings(backend="numpy-cpu", mem_step=8 * MIB)
    with mock.patch.object(enforcement, "run_probe", _fake_probe), \
            mock.patch.object(contention, "_run_engines", _failed_engines):
        summary = run_checks(["memory", "compute", "interference"], proxy, settings,
                                    progress=lambda message: None)
    summary["elapsed_s"] = 3.0
    return summary


def fixed_check_document(scenario: str = "bare-metal-proxy", *, run_id: str | None = None,
                         created: str | None = None) -> dict:
    doc, _ = checks_document(fixed_check_summary(scenario), scenario, run_id=run_id,
                                    created=created)
    return doc
