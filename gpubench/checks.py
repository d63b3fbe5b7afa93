"""`gpubench check`: is an isolation layer's limit really enforced, what does start-up cost,
how much do neighbours interfere? (issue 9)

Checks, each with a verdict ENFORCED / NOT ENFORCED / NOT APPLICABLE and its reasons
(figure-only checks say MEASURED):

  memory        allocate in steps (cuMemAlloc_v2) until refused; the observed ceiling
                against the configured limit. NOT ENFORCED when allocation passes it.
  compute       launch throughput through cuLaunchKernel AND cuLaunchKernelEx (and GEMM
                through CuPy on a GPU) with the limit against the same workload unlimited;
                the achieved fraction against the configured one, within a stated
                tolerance. A path that is not slowed (an unhooked entry point) is caught.
  interference  K engine instances on one GPU: each one's throughput and p99 alone and
                together, and a fairness ratio (min/max throughput together).
  init          the engine's `init` workload (N processes started at once, N = 1, 8, 32):
                init p50/p99 bare against under the proxy.

The memory and compute probes talk to the driver directly through ctypes
(`python -m gpubench.checks --probe ...`), the way an application would: libcuda is
dlopened and every entry point is looked up with dlsym, so a proxy that wraps dlsym
sees them, and one that does not is caught. The same probe runs in CI against a fake
libcuda (`--libcuda PATH`). Interference and init run the engine through the
scenarios layer (LocalLauncher + LaunchRequest).

The proxy under test is either a configured local scenario's proxy layer
(`--scenario NAME`: its preload and env; limits read from CUDA_DEVICE_MEMORY_LIMIT,
CUDA_DEVICE_SM_LIMIT, GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES, GPUBENCH_INTERPOSE_LAUNCH_RATE)
or gpubench's own interposer as a stand-in proxy (`--proxy interposer`), whose caps
can be switched off (`--caps off`) to prove that the checks say NOT ENFORCED.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from results.check_verdicts import (ENFORCED, MEASURED, NOT_APPLICABLE, NOT_ENFORCED,  # noqa: F401
                                    check_scenario_name)
from results.format import fmt_size
from results.stats import finite_median

CHECKS = ("memory", "compute", "interference", "init")
DEFAULT_TOLERANCE = 0.15          # compute: |achieved - configured fraction| allowed
MEMORY_SLACK_STEPS = 1            # memory: ceiling may pass the limit by under one step

# A kernel that does nothing, as PTX: the driver JIT-compiles it for any GPU.
EMPTY_PTX = b""".version 7.0
.target sm_52
.address_size 64
.visible .entry gpubench_empty()
{
    ret;
}
"""


class CheckError(Exception):
    """A check could not run at all; one line for the user."""


# =============================================================================================
# the probe: runs in its own process, under the proxy, prints one JSON line


class CUlaunchConfig(ctypes.Structure):
    _fields_ = [("gridDimX", ctypes.c_uint), ("gridDimY", ctypes.c_uint),
                ("gridDimZ", ctypes.c_uint), ("blockDimX", ctypes.c_uint),
                ("blockDimY", ctypes.c_uint), ("blockDimZ", ctypes.c_uint),
                ("sharedMemBytes", ctypes.c_uint), ("hStream", ctypes.c_void_p),
                ("attrs", ctypes.c_void_p), ("numAttrs", ctypes.c_uint)]


class Driver:
    """The few driver calls the probes need, looked up by name like an application does."""

    def __init__(self, path: str = "libcuda.so.1", device: int = 0):
        try:
            self.lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
        except OSError as exc:
            raise CheckError(f"cannot load the CUDA driver {path}: {exc}") from None
        self._check(self.lib.cuInit(0), "cuInit")
        dev = ctypes.c_int()
        self._check(self.lib.cuDeviceGet(ctypes.byref(dev), device), "cuDeviceGet")
        ctx = ctypes.c_void_p()
        self._check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev),
                    "cuDevicePrimaryCtxRetain")
        self._check(self.lib.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        self.alloc = self.lib.cuMemAlloc_v2
        self.alloc.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        self.free = self.lib.cuMemFree_v2
        self.free.argtypes = [ctypes.c_uint64]
        self.sync = self.lib.cuCtxSynchronize

    @staticmethod
    def _check(rc: int, what: str) -> None:
        if rc != 0:
            raise CheckError(f"{what} failed with CUDA error {rc}")

    def meminfo(self) -> tuple[int, int]:
        fr, tot = ctypes.c_size_t(), ctypes.c_size_t()
        fn = self.lib.cuMemGetInfo_v2
        fn.argtypes = [ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
        self._check(fn(ctypes.byref(fr), ctypes.byref(tot)), "cuMemGetInfo_v2")
        return fr.value, tot.value

    def empty_kernel(self) -> ctypes.c_void_p:
        mod, fn = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(self.lib.cuModuleLoadData(ctypes.byref(mod), ctypes.c_char_p(EMPTY_PTX)),
                    "cuModuleLoadData")
        self._check(self.lib.cuModuleGetFunction(ctypes.byref(fn), mod, b"gpubench_empty"),
                    "cuModuleGetFunction")
        return fn


def probe_memory(drv: Driver, step: int, stop_at: int) -> dict:
    """Allocate `step` bytes at a time until refused or `stop_at` bytes are held."""
    ptrs: list[int] = []
    total, rc = 0, 0
    free_before, total_reported = drv.meminfo()
    try:
        while total + step <= stop_at:
            p = ctypes.c_uint64()
            rc = drv.alloc(ctypes.byref(p), step)
            if rc != 0:
                break
            ptrs.append(p.value)
            total += step
    finally:
        for p in ptrs:
            drv.free(p)
    return {"probe": "memory", "allocated": total, "allocations": len(ptrs), "refused": rc != 0,
            "rc": rc, "step": step, "stop_at": stop_at, "meminfo_total": total_reported,
            "meminfo_free": free_before}


def probe_launch(drv: Driver, api: str, seconds: float, batch: int = 100) -> dict:
    """Empty-kernel launches per second through cuLaunchKernel or cuLaunchKernelEx."""
    f = drv.empty_kernel()
    if api == "ex":
        try:
            launch_ex = drv.lib.cuLaunchKernelEx
        except AttributeError:
            return {"probe": "launch", "api": api, "error": "driver has no cuLaunchKernelEx"}
        cfg = CUlaunchConfig(1, 1, 1, 1, 1, 1, 0, None, None, 0)
        cfg_ref = ctypes.byref(cfg)

        def launch():
            return launch_ex(cfg_ref, f, None, None)
    else:
        launch_k = drv.lib.cuLaunchKernel
        launch_k.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3

        def launch():
            return launch_k(f, 1, 1, 1, 1, 1, 1, 0, None, None, None)
    for _ in range(min(batch, 50)):         # warm-up (module load, first launch)
        launch()
    drv.sync()
    n, rc = 0, 0
    pc = time.perf_counter
    t0 = pc()
    end = t0 + seconds
    while True:
        for _ in range(batch):
            rc |= launch()
        n += batch
        drv.sync()
        t = pc()
        if t >= end:
            break
    elapsed = t - t0
    return {"probe": "launch", "api": api, "launches": n, "seconds": elapsed,
            "launches_per_s": n / elapsed if elapsed > 0 else None, "rc": rc}


def probe_gemm(seconds: float, n: int) -> dict:
    try:
        import cupy as cp
    except Exception as exc:
        return {"probe": "gemm", "error": f"CuPy not importable: {exc}"}
    a = cp.random.random((n, n), dtype=cp.float32).astype(cp.float16)
    b = cp.random.random((n, n), dtype=cp.float32).astype(cp.float16)
    c = cp.empty((n, n), dtype=cp.float16)
    for _ in range(3):
        cp.matmul(a, b, out=c)
    cp.cuda.Stream.null.synchronize()
    ops = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        cp.matmul(a, b, out=c)
        ops += 1
        if ops % 8 == 0:
            cp.cuda.Stream.null.synchronize()
    cp.cuda.Stream.null.synchronize()
    elapsed = time.perf_counter() - t0
    return {"probe": "gemm", "n": n, "ops": ops, "seconds": elapsed,
            "tflops": 2.0 * n ** 3 * ops / elapsed / 1e12, "ops_per_s": ops / elapsed}


def probe_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m gpubench.checks --probe")
    p.add_argument("--probe", required=True, choices=("memory", "launch", "gemm"))
    p.add_argument("--libcuda", default="libcuda.so.1")
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--step", type=int, default=256 << 20)
    p.add_argument("--stop-at", type=int, default=1 << 34)
    p.add_argument("--api", default="kernel", choices=("kernel", "ex"))
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--gemm-n", type=int, default=4096)
    a = p.parse_args(argv)
    try:
        if a.probe == "gemm":
            out = probe_gemm(a.seconds, a.gemm_n)
        else:
            drv = Driver(a.libcuda, a.device)
            out = (probe_memory(drv, a.step, a.stop_at) if a.probe == "memory"
                   else probe_launch(drv, a.api, a.seconds))
    except CheckError as exc:
        out = {"probe": a.probe, "error": str(exc)}
    print(json.dumps(out), flush=True)
    return 0 if "error" not in out else 1


# =============================================================================================
# the proxy under test


@dataclass
class Limits:
    mem_bytes: int | None = None          # memory limit the proxy should apply
    compute_fraction: float | None = None # fraction of unlimited throughput (SM limit %)
    launch_rate: float | None = None      # launches/s cap


@dataclass
class Proxy:
    name: str
    preload: str | None
    env: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)

    def process_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        from scenarios.base import LaunchRequest
        from scenarios.local import engine_environment
        env = dict(self.env)
        env.update(extra or {})
        return engine_environment(LaunchRequest(env=env, preload=self.preload))


def parse_bytes(text: str) -> int:
    from scenarios.config import parse_size
    s = str(text).strip().lower()
    if s.isdigit():
        return int(s)
    if s.endswith(("k", "m", "g", "t")) and s[:-1].replace(".", "", 1).isdigit():
        mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[s[-1]]
        return int(float(s[:-1]) * mult)
    return parse_size(text)


def limits_from_env(env: dict[str, str]) -> Limits:
    """The limits a proxy's environment asks for (HAMi's names and the interposer's)."""
    lim = Limits()
    for key in ("GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES", "CUDA_DEVICE_MEMORY_LIMIT",
                "CUDA_DEVICE_MEMORY_LIMIT_0"):
        if env.get(key):
            try:
                lim.mem_bytes = parse_bytes(env[key])
                break
            except ValueError:
                pass
    if env.get("CUDA_DEVICE_SM_LIMIT"):
        try:
            pct = float(env["CUDA_DEVICE_SM_LIMIT"])
            if 0 < pct < 100:
                lim.compute_fraction = pct / 100
        except ValueError:
            pass
    if env.get("GPUBENCH_INTERPOSE_LAUNCH_RATE"):
        try:
            lim.launch_rate = float(env["GPUBENCH_INTERPOSE_LAUNCH_RATE"])
        except ValueError:
            pass
    return lim


def interposer_proxy(limits: Limits, caps_on: bool = True, unhook: str | None = None) -> Proxy:
    """gpubench's interposer as a stand-in GPU proxy; with caps off it applies nothing;
    `unhook` leaves entry points alone (a proxy that misses cuLaunchKernelEx, say)."""
    from gpubench import interposer
    try:
        lib = str(interposer.library_path())
    except interposer.InterposerBuildError as exc:
        raise CheckError(str(exc)) from None
    env: dict[str, str] = {}
    if caps_on:
        env = interposer.interposer_env(mem_limit_bytes=limits.mem_bytes,
                                        launch_rate=limits.launch_rate)
    if unhook:
        env[interposer.ENV_UNHOOK] = unhook
    name = f"interposer (caps {'on' if caps_on else 'off'}" + (f", {unhook} unhooked)"
                                                               if unhook else ")")
    return Proxy(name, lib, env, limits)


def scenario_proxy(scenario, overrides: Limits) -> Proxy:
    if scenario.launcher != "local":
        raise CheckError(f"scenario {scenario.name}: the enforcement probes run on local "
                         f"scenarios only (launcher is {scenario.launcher})")
    env = dict(scenario.env)
    preload = None
    if scenario.proxy is not None:
        env.update(scenario.proxy.env)
        preload = scenario.proxy.preload
    lim = limits_from_env(env)
    for name in ("mem_bytes", "compute_fraction", "launch_rate"):
        if getattr(overrides, name) is not None:
            setattr(lim, name, getattr(overrides, name))
    return Proxy(scenario.name, preload, env, lim)


# =============================================================================================
# running probes


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


def run_probe(proxy: Proxy | None, args: list[str], settings: Settings,
              timeout: float = 300) -> dict:
    """One probe process, under the proxy (or bare when proxy is None)."""
    env = proxy.process_env() if proxy is not None else dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = [settings.python or sys.executable, "-m", "gpubench.checks", "--probe", *args,
           "--libcuda", settings.libcuda, "--device", str(settings.device)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=root)
    except subprocess.TimeoutExpired:
        return {"error": f"probe {args[0]} timed out after {timeout:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"error": f"probe {args[0]} gave no result: {tail}"}
    return json.loads(lines[-1])


def check_memory(proxy: Proxy, settings: Settings) -> dict:
    limit = proxy.limits.mem_bytes
    out: dict[str, Any] = {"check": "memory", "proxy": proxy.name, "configured_bytes": limit}
    if limit is None:
        return {**out, "verdict": NOT_APPLICABLE,
                "reasons": ["no memory limit is configured for this proxy"]}
    step = max(1 << 20, min(settings.mem_step, limit // 8 or 1 << 20))
    stop_at = limit + (MEMORY_SLACK_STEPS + 2) * step   # enough to see it pass the limit
    res = run_probe(proxy, ["memory", "--step", str(step), "--stop-at", str(stop_at)], settings)
    out["probe"] = res
    if "error" in res:
        return {**out, "verdict": NOT_APPLICABLE, "reasons": [res["error"]]}
    got = res["allocated"]
    out["observed_ceiling_bytes"] = got if res["refused"] else None
    out["ceiling_ratio"] = got / limit
    if got > limit:
        verdict, why = NOT_ENFORCED, (f"allocated {fmt_size(got)} in {fmt_size(step)} steps, past the "
                                      f"configured {fmt_size(limit)}" +
                                      ("" if res["refused"] else " without one refusal"))
    elif res["refused"]:
        verdict, why = ENFORCED, (f"refused (CUDA error {res['rc']}) at {fmt_size(got)} of the "
                                  f"configured {fmt_size(limit)} (step {fmt_size(step)})")
    else:
        verdict, why = NOT_APPLICABLE, "the probe stopped before reaching the limit"
    reasons = [why]
    if res.get("meminfo_total") and res["meminfo_total"] <= limit:
        reasons.append(f"cuMemGetInfo reports a total of {fmt_size(res['meminfo_total'])}")
    return {**out, "verdict": verdict, "reasons": reasons}


def check_compute(proxy: Proxy, settings: Settings, gpu: bool) -> dict:
    lim = proxy.limits
    out: dict[str, Any] = {"check": "compute", "proxy": proxy.name,
                           "configured_fraction": lim.compute_fraction,
                           "configured_launch_rate": lim.launch_rate,
                           "tolerance": settings.tolerance}
    if lim.compute_fraction is None and lim.launch_rate is None:
        return {**out, "verdict": NOT_APPLICABLE,
                "reasons": ["no compute limit (SM fraction or launch rate) is configured"]}
    paths = []
    secs = str(settings.seconds)
    for api, name in (("kernel", "cuLaunchKernel"), ("ex", "cuLaunchKernelEx")):
        bare = run_probe(None, ["launch", "--api", api, "--seconds", secs], settings)
        limited = run_probe(proxy, ["launch", "--api", api, "--seconds", secs], settings)
        paths.append(_path_result(name, bare, limited, "launches_per_s", lim, settings))
    if gpu:
        gargs = ["gemm", "--seconds", secs, "--gemm-n", str(settings.gemm_n)]
        bare, limited = run_probe(None, gargs, settings), run_probe(proxy, gargs, settings)
        row = _path_result("GEMM (CuPy)", bare, limited, "tflops", lim, settings)
        if lim.compute_fraction is None:   # a launch-rate cap sets no GEMM fraction
            row["judged"] = False
            row["note"] = "a launch-rate cap defines no GEMM throughput fraction: figures only"
        paths.append(row)
    out["paths"] = paths
    judged = [p for p in paths if p.get("judged", True)]
    errors = [p for p in judged if p.get("error")]
    if errors and len(errors) == len(judged):
        return {**out, "verdict": NOT_APPLICABLE, "reasons": [e["error"] for e in errors]}
    bad = [p for p in judged if not p.get("error") and not p["within"]]
    reasons = [p["summary"] for p in judged if not p.get("error")]
    reasons += [f"{p['path']}: {p['error']}" for p in errors]
    if bad:
        return {**out, "verdict": NOT_ENFORCED, "reasons": [p["summary"] for p in bad] +
                [r for r in reasons if r not in [p["summary"] for p in bad]]}
    return {**out, "verdict": ENFORCED, "reasons": reasons}


def _path_result(name: str, bare: dict, limited: dict, key: str, lim: Limits,
                 settings: Settings) -> dict:
    row: dict[str, Any] = {"path": name, "bare": bare, "limited": limited}
    if "error" in bare or "error" in limited:
        row["error"] = bare.get("error") or limited.get("error")
        return row
    b, c = bare.get(key), limited.get(key)
    if not b or c is None:
        row["error"] = f"no {key} measured"
        return row
    achieved = c / b
    if lim.compute_fraction is not None:
        expected = lim.compute_fraction
    else:   # a launch-rate cap: the expected fraction of the unlimited launch rate
        expected = min(1.0, lim.launch_rate / b) if key == "launches_per_s" else None
    row.update({"unlimited": b, "limited_value": c, "achieved_fraction": achieved,
                "expected_fraction": expected})
    if lim.compute_fraction is None and key == "launches_per_s" and lim.launch_rate >= b:
        row.update({"within": True, "judged": False,
                    "summary": f"{name}: the cap {lim.launch_rate:,.0f}/s is above the unlimited "
                               f"rate {b:,.0f}/s: nothing to enforce"})
        return row
    if expected is None:
        row["within"] = True
        row["summary"] = f"{name}: {achieved:.3f} of unlimited"
        return row
    row["within"] = abs(achieved - expected) <= settings.tolerance * max(expected, 0.05) \
        if expected < 0.2 else abs(achieved - expected) <= settings.tolerance
    unit = "launches/s" if key == "launches_per_s" else "TFLOP/s"
    row["summary"] = (f"{name}: {c:,.0f} vs {b:,.0f} {unit} unlimited = {achieved:.3f}, "
                      f"configured {expected:.3f} (±{settings.tolerance:g}"
                      f"{' relative' if expected < 0.2 else ''})"
                      f"{'' if row['within'] else ' — NOT within tolerance'}")
    return row


# =============================================================================================
# engine-based checks: interference and init contention


def _engine_args(settings: Settings, workloads: str, extra: list[str] | None = None) -> list[str]:
    return ["--backend", settings.backend, "--workloads", workloads,
            "--duration", f"{settings.duration:g}", "--warmup", "0.2",
            "--repeats", str(settings.repeats), "--telemetry-interval", "0",
            "--min-window", f"{min(0.5, settings.duration * 0.8):g}", "--cv-limit", "1000000",
            *(extra or [])]


async def _run_engines(requests: list, python: str | None) -> list[dict]:
    """Start the sessions together; per session its results by variant and raw lines."""
    from scenarios.events import Hello, Result, SessionEnded
    from scenarios.local import LocalLauncher
    launcher = LocalLauncher(python)
    sessions = [await launcher.start(r) for r in requests]

    async def drain(s) -> dict:
        res: dict[str, list[dict]] = {}
        hello, ended = None, None
        async for ev in s.events():
            if isinstance(ev, Hello):
                hello = ev.data
            elif isinstance(ev, Result):
                res.setdefault(f"{ev.workload}/{ev.variant}", []).append(ev.data)
            elif isinstance(ev, SessionEnded):
                ended = ev
        return {"results": res, "hello": hello, "outcome": ended.outcome if ended else "failed",
                "message": ended.message if ended else "", "lines": list(s.raw_lines),
                "stderr": list(s.stderr_tail)}
    return list(await asyncio.gather(*(drain(s) for s in sessions)))


def _summ(results: list[dict]) -> dict:
    key = "tflops" if any(r.get("tflops") for r in results) else "ops_per_s"
    return {"metric": key, "value": finite_median([r.get(key) for r in results]),
            "ops_per_s": finite_median([r.get("ops_per_s") for r in results]),
            "p50_us": finite_median([(r.get("latency_us") or {}).get("p50") for r in results]),
            "p99_us": finite_median([(r.get("latency_us") or {}).get("p99") for r in results])}


def check_interference(proxy: Proxy | None, settings: Settings) -> tuple[dict, list[dict]]:
    from scenarios.base import LaunchRequest
    k = max(2, settings.instances)
    args = _engine_args(settings, settings.interference_workloads,
                        ["--gemm-size", str(settings.gemm_n)] if settings.backend != "numpy-cpu"
                        else ["--gemm-size", "256"])
    env = dict(proxy.env) if proxy else {}
    req = LaunchRequest(engine_args=tuple(args), env=env,
                        preload=proxy.preload if proxy else None, label="interference")
    alone = []
    for _ in range(k):   # each instance alone, one after another
        alone += asyncio.run(_run_engines([req], settings.python))
    together = asyncio.run(_run_engines([req] * k, settings.python))
    sessions = alone + together
    failed = [s for s in sessions if s["outcome"] != "completed"]
    out: dict[str, Any] = {"check": "interference", "proxy": proxy.name if proxy else "bare",
                           "instances": k, "workloads": settings.interference_workloads}
    if failed:
        return ({**out, "verdict": NOT_APPLICABLE,
                 "reasons": [f"an engine session {failed[0]['outcome']}: {failed[0]['message']}"]},
                sessions)
    rows = []
    for variant in sorted(alone[0]["results"]):
        a = [_summ(s["results"].get(variant, [])) for s in alone]
        t = [_summ(s["results"].get(variant, [])) for s in together]
        if any(x["value"] is None for x in a + t):
            continue
        thr_ratio = [ti["value"] / ai["value"] for ai, ti in zip(a, t)]
        p99_ratio = [ti["p99_us"] / ai["p99_us"] if ai["p99_us"] else None for ai, ti in zip(a, t)]
        vals = [x["value"] for x in t]
        rows.append({"variant": variant, "metric": a[0]["metric"],
                     "alone": [x["value"] for x in a], "together": vals,
                     "throughput_ratio": thr_ratio, "p99_alone_us": [x["p99_us"] for x in a],
                     "p99_together_us": [x["p99_us"] for x in t], "p99_ratio": p99_ratio,
                     "fairness": min(vals) / max(vals) if max(vals) > 0 else None,
                     "jain": (sum(vals) ** 2) / (len(vals) * sum(v * v for v in vals))
                     if any(vals) else None})
    reasons = [f"{r['variant']}: together/alone throughput "
               f"{'/'.join(f'{x:.2f}' for x in r['throughput_ratio'])}, p99 x"
               f"{'/'.join(f'{x:.2f}' if x else '-' for x in r['p99_ratio'])}, "
               f"fairness {r['fairness']:.2f}" for r in rows]
    return {**out, "verdict": MEASURED, "rows": rows, "reasons": reasons}, sessions


def check_init(proxy: Proxy | None, settings: Settings) -> tuple[dict, list[dict]]:
    from scenarios.base import LaunchRequest
    args = _engine_args(settings, "init", ["--init-procs", settings.init_procs])
    out: dict[str, Any] = {"check": "init", "proxy": proxy.name if proxy else None,
                           "procs": settings.init_procs}
    bare_req = LaunchRequest(engine_args=tuple(args), label="init bare")
    runs = {"bare": asyncio.run(_run_engines([bare_req], settings.python))[0]}
    if proxy is not None and proxy.preload:
        preq = LaunchRequest(engine_args=tuple(args), env=dict(proxy.env), preload=proxy.preload,
                             label="init proxy")
        runs["proxy"] = asyncio.run(_run_engines([preq], settings.python))[0]
    sessions = list(runs.values())
    failed = [(k, s) for k, s in runs.items() if s["outcome"] != "completed"]
    if failed:
        k, s = failed[0]
        return ({**out, "verdict": NOT_APPLICABLE,
                 "reasons": [f"init {k}: {s['outcome']}: {s['message']}"]}, sessions)
    rows = []
    for variant in sorted({v for s in sessions for v in s["results"]},
                          key=lambda v: int(v.split("/n")[-1]) if v.split("/n")[-1].isdigit() else 0):
        row: dict[str, Any] = {"variant": variant}
        for k, s in runs.items():
            res = s["results"].get(variant, [])
            row[k] = {"p50_ms": _ms(finite_median([(r.get("latency_us") or {}).get("p50") for r in res])),
                      "p99_ms": _ms(finite_median([(r.get("latency_us") or {}).get("p99") for r in res])),
                      "processes": sum(int(r.get("ops") or 0) for r in res),
                      "failed": sum(int((r.get("params") or {}).get("failed") or 0) for r in res),
                      "phases": (res[-1].get("params") or {}) if res else {}}
        if "proxy" in row and row["bare"]["p50_ms"] and row["proxy"]["p50_ms"]:
            row["proxy_over_bare_p50"] = row["proxy"]["p50_ms"] / row["bare"]["p50_ms"]
            row["proxy_over_bare_p99"] = (row["proxy"]["p99_ms"] / row["bare"]["p99_ms"]
                                          if row["bare"]["p99_ms"] else None)
        rows.append(row)
    reasons = []
    for r in rows:
        txt = f"{r['variant']}: bare p50/p99 {r['bare']['p50_ms']}/{r['bare']['p99_ms']} ms"
        if "proxy" in r:
            txt += f", under {proxy.name} {r['proxy']['p50_ms']}/{r['proxy']['p99_ms']} ms"
        reasons.append(txt)
    return {**out, "verdict": MEASURED, "rows": rows, "reasons": reasons}, sessions


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000.0, 3)


# =============================================================================================
# orchestration, store, CLI


def gpu_available(settings: Settings) -> bool:
    if settings.backend == "numpy-cpu":
        return False
    from gpubench.selftest import detect_backend
    return detect_backend(settings.python) == "cupy"


def run_checks(checks: list[str], proxy: Proxy, settings: Settings,
               progress: Callable[[str], None] | None = None) -> dict:
    progress = progress or (lambda m: print(m, file=sys.stderr, flush=True))
    gpu = settings.backend == "cupy" or (settings.backend == "auto" and gpu_available(settings))
    if settings.backend == "auto":
        settings.backend = "cupy" if gpu else "numpy-cpu"
    t0 = time.monotonic()
    results, sessions = [], []
    for name in checks:
        progress(f"check: {name} ({proxy.name})")
        if name == "memory":
            results.append(check_memory(proxy, settings))
        elif name == "compute":
            results.append(check_compute(proxy, settings, gpu))
        elif name == "interference":
            r, s = check_interference(proxy, settings)
            results.append(r)
            sessions += s
        elif name == "init":
            r, s = check_init(proxy, settings)
            results.append(r)
            sessions += s
        else:
            raise CheckError(f"unknown check {name!r}; choose from {', '.join(CHECKS)}")
        progress(f"check: {name}: {results[-1]['verdict']} ({time.monotonic() - t0:.0f} s)")
    from engine.redact import redact_env
    return {"proxy": {"name": proxy.name, "preload": proxy.preload, "env": redact_env(proxy.env),
                      "limits": vars(proxy.limits)},
            "backend": settings.backend, "libcuda": settings.libcuda,
            "checks": results, "elapsed_s": round(time.monotonic() - t0, 1),
            "_sessions": sessions}


def checks_document(summary: dict, scenario_name: str, *, run_id: str | None = None,
                    created: str | None = None) -> tuple[dict, list]:
    """The result document of a check run (scenario `check-<scenario_name>`) and its session
    records: verdicts under `checks`, `checks_summary` and `checks_proxy`."""
    from results.document import SessionRecord, build_document
    from results.schema import VALID, INVALID
    recs = [SessionRecord(lines=s["lines"], outcome=s["outcome"], message=s["message"], trial=i)
            for i, s in enumerate(summary.get("_sessions") or [])]
    scenario = {"name": check_scenario_name(scenario_name),
                "title": f"isolation checks: {scenario_name}",
                "launcher": "local", "host": "local", "target": "none",
                "details": {"proxy": summary["proxy"]}}
    doc = build_document(recs, scenario, label="check", run_id=run_id, created=created,
                         notes="gpubench check: isolation verdicts under 'checks'")
    public = {k: v for k, v in summary.items() if not k.startswith("_")}
    doc["checks"] = public["checks"]
    doc["checks_summary"] = {c["check"]: c["verdict"] for c in public["checks"]}
    doc["checks_proxy"] = public["proxy"]
    if not recs:   # probes only: validity is the checks' own
        unusable = [c for c in public["checks"] if c["verdict"] == NOT_APPLICABLE
                    and any("error" in r or "timed out" in r for r in c.get("reasons", []))]
        doc["validity"] = {"status": INVALID if unusable else VALID,
                           "reasons": [f"{c['check']}: {c['reasons'][0]}" for c in unusable],
                           "notes": ["enforcement probes only (no engine sessions)"],
                           "invalid_trials": 0, "trials": 0}
    return doc, recs


def save_checks(summary: dict, data_dir: Path, scenario_name: str) -> str:
    from results.document import archive_lines
    from results.store import Store
    doc, recs = checks_document(summary, scenario_name)
    Store(data_dir).save(doc, raw_lines=archive_lines(recs) or None)
    return doc["id"]


def format_checks(summary: dict) -> str:
    out = [f"gpubench check: {summary['proxy']['name']} on {summary['backend']} "
           f"({summary['elapsed_s']:.0f} s)"]
    for c in summary["checks"]:
        out.append(f"  {c['check']:<13}{c['verdict']}")
        for r in c.get("reasons", []):
            out.append(f"      {r}")
    return "\n".join(out)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check", help="isolation checks: memory/compute limit enforced? init cost? interference?",
        description="Verdicts ENFORCED / NOT ENFORCED / NOT APPLICABLE for a GPU proxy's memory "
                    "and compute limits, plus init contention and interference figures.")
    p.add_argument("--checks", default="memory,compute,interference,init",
                   help=f"comma list of {', '.join(CHECKS)}")
    p.add_argument("--scenario", default=None,
                   help="a local scenario with a proxy layer (its preload, env and limits)")
    p.add_argument("--proxy", default="interposer", choices=("interposer",),
                   help="without --scenario: gpubench's interposer as the stand-in proxy")
    p.add_argument("--caps", default="on", choices=("on", "off"),
                   help="interposer: apply the limits (on) or only claim them (off)")
    p.add_argument("--unhook", default=None,
                   help="interposer: leave these entry points unhooked (e.g. cuLaunchKernelEx) "
                        "to see the checks catch a proxy that misses one")
    p.add_argument("--mem-limit", default=None, help="memory limit to check, e.g. 4G")
    p.add_argument("--launch-rate", type=float, default=None, help="launch cap to check (/s)")
    p.add_argument("--compute-fraction", type=float, default=None,
                   help="expected fraction of unlimited throughput (e.g. 0.5 for SM limit 50)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    p.add_argument("--backend", default="auto", choices=("auto", "cupy", "numpy-cpu"))
    p.add_argument("--libcuda", default="libcuda.so.1", help="driver library the probes load")
    p.add_argument("--seconds", type=float, default=1.0, help="per launch/GEMM probe")
    p.add_argument("--gemm-n", type=int, default=4096)
    p.add_argument("--mem-step", default="256M")
    p.add_argument("--instances", type=int, default=2, help="interference: engines at once")
    p.add_argument("--interference-workloads", default="launch,gemm")
    p.add_argument("--init-procs", default="1,8,32")
    p.add_argument("--duration", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", dest="json_out", default=None)
    p.add_argument("--no-save", action="store_true")
    p.set_defaults(func=main)


def main(args, config=None) -> int:
    try:
        overrides = Limits(mem_bytes=parse_bytes(args.mem_limit) if args.mem_limit else None,
                           compute_fraction=args.compute_fraction, launch_rate=args.launch_rate)
        if args.scenario:
            if config is None or args.scenario not in config.scenarios:
                raise CheckError(f"no scenario named {args.scenario!r} in the configuration")
            proxy = scenario_proxy(config.scenarios[args.scenario], overrides)
        else:
            proxy = interposer_proxy(overrides, caps_on=args.caps == "on", unhook=args.unhook)
        settings = Settings(backend=args.backend, libcuda=args.libcuda, seconds=args.seconds,
                            gemm_n=args.gemm_n, mem_step=parse_bytes(args.mem_step),
                            tolerance=args.tolerance, instances=args.instances,
                            interference_workloads=args.interference_workloads,
                            init_procs=args.init_procs, duration=args.duration,
                            repeats=args.repeats)
        checks = [c.strip() for c in args.checks.split(",") if c.strip()]
        summary = run_checks(checks, proxy, settings)
    except (CheckError, ValueError) as exc:
        print(f"gpubench check: {exc}", file=sys.stderr)
        return 2
    print(format_checks(summary))
    if not args.no_save:
        data_dir = config.data_dir if config is not None else None
        if data_dir is None:
            from scenarios.config import load_config
            data_dir = load_config().data_dir
        run_id = save_checks(summary, Path(data_dir), args.scenario or "interposer")
        print(f"saved run {run_id}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {k: v for k, v in summary.items() if not k.startswith("_")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    if "--probe" in sys.argv[1:]:
        sys.exit(probe_main(sys.argv[1:]))
    _p = argparse.ArgumentParser(prog="python -m gpubench.checks")
    register(_p.add_subparsers(dest="cmd"))
    _a = _p.parse_args(["check", *sys.argv[1:]])
    sys.exit(_a.func(_a, None))
