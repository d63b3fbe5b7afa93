"""A deterministic check run for views that need fixed figures (snapshots, report layouts):
gpubench.checks' own run_checks and checks_document, with only the probe processes and the
engine sessions replaced by fixed answers, so every verdict, reason and stored field is the
real code's. (Tests that can afford it run the real probes: tests/checks/.)"""
from __future__ import annotations

from unittest import mock

from gpubench.checks.proxy import Limits, Proxy
from gpubench.checks.settings import Settings
from gpubench.checks.suite import checks_document, run_checks
from gpubench.checks import compute, contention, enforcement

MIB = 1 << 20
BARE_LAUNCHES = {"kernel": 250_000.0, "ex": 251_000.0}
# cuLaunchKernel is capped (2,000/s, or a tenant's own cap), first interval 30 % over it while
# the cap's bucket fills; cuLaunchKernelEx is not hooked (the reported failure)
UNHOOKED_EX = 247_500.0
FIRST_INTERVAL_OVER = 1.3


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
    interval = float(args[args.index("--interval") + 1])
    n = max(1, round(float(args[args.index("--seconds") + 1]) / interval))
    if proxy is None:
        rates = [BARE_LAUNCHES[api]] * n
    elif api == "ex":
        rates = [UNHOOKED_EX] * n
    else:
        cap = 0.995 * float(proxy.env["GPUBENCH_INTERPOSE_LAUNCH_RATE"])
        rates = [cap * FIRST_INTERVAL_OVER] + [cap] * (n - 1)
    counts = [round(r * interval) for r in rates]
    return {"probe": "launch", "api": api, "load": args[args.index("--load") + 1],
            "kernel": "empty", "interval_s": interval, "counts": counts,
            "launches": sum(counts), "seconds": n * interval,
            "launches_per_s": sum(counts) / (n * interval), "rc": 0}


async def _failed_engines(requests, python):
    return [{"results": {}, "hello": None, "outcome": "failed",
             "message": "engine exited with code 2 (no_gpu)", "lines": [], "stderr": []}
            for _ in requests]


def fixed_check_summary(proxy_name: str = "bare-metal-proxy") -> dict:
    """memory ENFORCED (every path but managed memory, NOT SUPPORTED), compute NOT ENFORCED
    (cuLaunchKernelEx unhooked; cuLaunchKernel and two tenants held by their caps after one
    interval over), interference NOT APPLICABLE (its engines could not start), as run_checks
    returns them."""
    proxy = Proxy(proxy_name, "/usr/local/vgpu/libvgpu.so",
                         {"GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES": str(64 * MIB),
                          "GPUBENCH_INTERPOSE_LAUNCH_RATE": "2000"},
                         Limits(mem_bytes=64 * MIB, launch_rate=2000.0))
    settings = Settings(backend="numpy-cpu", mem_step=8 * MIB, seconds=2.0)
    with mock.patch.object(enforcement, "run_probe", _fake_probe), \
            mock.patch.object(compute, "run_probe", _fake_probe), \
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


async def _init_engines(requests, python):
    """Each init session: N processes' time to first kernel, 300 ms bare and +10 % under the
    proxy, as the engine's result events carry them."""
    out = []
    for req in requests:
        slower = 1.1 if req.preload else 1.0
        results = {}
        for n in (1, 8, 32):
            latency = {"p50": 300_000 * slower * (1 + n / 32),
                       "p99": 330_000 * slower * (1 + n / 16)}
            results[f"init/n{n}"] = [{"ops": n, "latency_us": latency, "params": {
                "processes": n, "failed": 0, "spawn_to_main_ms_p50": 55.0}}]
        out.append({"results": results, "hello": None, "outcome": "completed", "message": "",
                    "lines": [], "stderr": []})
    return out


def fixed_init_check_document(scenario: str = "bare-metal-proxy") -> dict:
    """An init check run (1, 8, 32 processes, bare and under the proxy), as check_init and
    checks_document make it from its engine sessions' results."""
    proxy = Proxy(scenario, "/usr/local/vgpu/libvgpu.so", {}, Limits())
    with mock.patch.object(contention, "_run_engines", _init_engines):
        summary = run_checks(["init"], proxy, Settings(backend="numpy-cpu"),
                             progress=lambda message: None)
    summary["_sessions"] = []
    doc, _ = checks_document(summary, scenario)
    return doc
