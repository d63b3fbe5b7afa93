"""`replay`: a Session that plays back recorded engine lines with their timing.

Used to open a saved run in the dashboard (its archived `raw_lines` replay
through the same parser and events as a live session), by the TUI tests and by
the TUI load benchmark. Lines go through the ordinary `StreamParser`, so a
replayed stream is validated and judged exactly like a live one. A saved run's
archive holds its sessions one after another, each from its own `hello`: there a
hello right after a `done` starts the next session (`archive=True`, the default);
`archive=False` plays the lines as one live engine's stream would be read. A
recording keeps no exit code: the "engine" exits with `exit_code` (None: unknown,
so `done` is not checked against one).

    launcher = ReplayLauncher(lines, speed=10.0)     # 10x faster than recorded
    session = await launcher.start(LaunchRequest(label="saved run"))

`synthetic_stream()` builds a valid protocol v1 stream (hello, samples,
telemetry, results, done) for tests and benchmarks when no recording fits.
"""
from __future__ import annotations

import asyncio
import json
import math
import random
from pathlib import Path
from typing import Iterable, Sequence

from engine.protocol import PROTOCOL_VERSION, validate_line

from .base import LaunchError, LaunchRequest, Launcher, Session
from .stream import StreamParser


def _line_time(text: str) -> float | None:
    try:
        t = json.loads(text).get("t")
    except (ValueError, AttributeError):
        return None
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else None


class ReplaySession(Session):
    """Feeds recorded lines to the parser, sleeping as the recorded `t` says (÷ speed).

    speed <= 0 or math.inf replays as fast as the event loop allows (yielding
    between lines). `exit_code` is what the "engine" returns at the end.
    """

    def __init__(self, request: LaunchRequest, lines: Sequence[str], speed: float = 1.0,
                 exit_code: int | None = None, name: str = "replay", archive: bool = True):
        super().__init__(request, name)
        self.parser = StreamParser(archive=archive)
        self._lines = list(lines)
        self._speed = speed
        self._exit_code = exit_code
        self._stop = asyncio.Event()

    async def _run(self) -> int | None:
        fast = self._speed <= 0 or math.isinf(self._speed)
        loop = asyncio.get_running_loop()
        start = loop.time()
        t0: float | None = None
        for text in self._lines:
            if self._stop.is_set():
                return 130
            if not fast:
                t = _line_time(text)
                if t is not None:
                    if t0 is None:
                        t0 = t
                    due = start + (t - t0) / self._speed
                    delay = due - loop.time()
                    if delay > 0:
                        try:
                            await asyncio.wait_for(self._stop.wait(), timeout=delay)
                            return 130
                        except asyncio.TimeoutError:
                            pass
            else:
                await asyncio.sleep(0)
            self._line(text)
        return self._exit_code

    async def _terminate(self) -> None:
        self._stop.set()


class ReplayLauncher(Launcher):
    """Starts ReplaySessions of one recorded stream (a list of lines or a .jsonl file)."""

    name = "replay"

    def __init__(self, lines: Sequence[str] | str | Path, speed: float = 1.0,
                 exit_code: int | None = None, archive: bool = True):
        if isinstance(lines, (str, Path)):
            path = Path(lines)
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise LaunchError(f"replay: cannot read {path}: {exc.strerror}") from None
        self.lines = list(lines)
        self.speed = speed
        self.exit_code = exit_code
        self.archive = archive

    async def start(self, request: LaunchRequest) -> Session:
        session = ReplaySession(request, self.lines, self.speed, self.exit_code,
                                name=request.label or "replay", archive=self.archive)
        session._begin()
        return session


# ---- synthetic streams ---------------------------------------------------------------

def _emit(kind: str, t: float, backend: str, **fields) -> str:
    line = {"v": PROTOCOL_VERSION, "type": kind, "t": round(t, 6), "backend": backend}
    line.update(fields)
    validate_line(line)
    return json.dumps(line, separators=(",", ":"))


def _latency(base_us: float, rng: random.Random) -> dict[str, float]:
    p50 = base_us * (1 + rng.uniform(-0.03, 0.03))
    return {"mean": round(p50 * 1.05, 3), "p50": round(p50, 3), "p90": round(p50 * 1.2, 3),
            "p99": round(p50 * 1.6, 3), "p999": round(p50 * 2.4, 3),
            "min": round(p50 * 0.8, 3), "max": round(p50 * 4.0, 3)}


def hello_line(t: float = 0.0, backend: str = "cupy", hostname: str = "gpu-node-1",
               device_name: str = "NVIDIA H100 80GB HBM3", plan: dict | None = None,
               pcie_gen: int = 5) -> str:
    cpu = backend == "numpy-cpu"
    device = {
        "name": "Intel(R) Xeon(R) Platinum 8480+" if cpu else device_name,
        "uuid": None if cpu else "GPU-00000000-1111-2222-3333-444444444444",
        "index": 0, "driver": None if cpu else "580.65.06", "cuda_driver": None if cpu else 13000,
        "cuda_runtime": None if cpu else 13000, "compute_capability": None if cpu else "9.0",
        "memory_total_mib": None if cpu else 81559,
        "pcie": {"gen_current": None if cpu else pcie_gen, "gen_max": None if cpu else 5,
                 "width_current": None if cpu else 16, "width_max": None if cpu else 16},
        "mig_mode": None, "power_limit_w": None if cpu else 700.0,
        "clocks_max": {"sm_mhz": None if cpu else 1980, "mem_mhz": None if cpu else 2619},
        "virtualization_mode": None,
    }
    host = {"hostname": hostname, "os": "Linux", "kernel": "6.1.0", "python": "3.11.7",
            "numpy": "2.1.3", "cupy": None if cpu else "13.6.0", "nvml": None if cpu else "12.580",
            "cpu_model": "Intel(R) Xeon(R) Platinum 8480+", "pid": 4242,
            "hypervisor": {"detected": False, "evidence": [], "vendor": None},
            "preload": {"ld_preload": [], "mapped": []}, "env": {}}
    return _emit("hello", t, backend, engine_version="0.1.0", device=device, host=host,
                 plan=plan or {"workloads": ["roundtrip"], "duration_s": 1.0, "warmup_s": 0.3,
                               "repeats": 1})


def sample_line(t: float, backend: str, workload: str, variant: str, ops_per_s: float,
                lat_us: float, rng: random.Random, gbps: float | None = None) -> str:
    extra = {"gbps": round(gbps, 3)} if gbps is not None else {}
    return _emit("sample", t, backend, workload=workload, variant=variant,
                 interval_ops=max(1, int(ops_per_s * 0.25)), ops_per_s=round(ops_per_s, 2),
                 latency_us=_latency(lat_us, rng), **extra)


def telemetry_line(t: float, backend: str, throttle: list[str] | None = None,
                   pcie_gen: int = 5, power_w: float = 310.0) -> str:
    cpu = backend == "numpy-cpu"
    names = throttle or []
    readings = {"gpu_util_pct": None if cpu else 97, "mem_util_pct": None if cpu else 41,
                "sm_clock_mhz": None if cpu else 1980, "mem_clock_mhz": None if cpu else 2619,
                "power_w": None if cpu else power_w, "power_limit_w": None if cpu else 700.0,
                "temperature_c": None if cpu else 54, "memory_used_mib": None if cpu else 2210,
                "memory_total_mib": None if cpu else 81559,
                "pcie_tx_kbps": None if cpu else 1_250_000, "pcie_rx_kbps": None if cpu else 980_000,
                "pcie_gen": None if cpu else pcie_gen, "pcie_width": None if cpu else 16,
                "pcie_gen_max": None if cpu else 5, "pcie_width_max": None if cpu else 16,
                "throttle_reasons": None if cpu else (0x20 if names else 0),
                "throttle_names": None if cpu else names, "mig_mode": None,
                "ecc_volatile": None}
    return _emit("telemetry", t, backend, readings=readings)


def result_line(t: float, backend: str, workload: str, variant: str, repeat: int,
                ops_per_s: float, lat_us: float, duration_s: float, rng: random.Random,
                gbps: float | None = None, reasons: Iterable[str] = ()) -> str:
    lat = _latency(lat_us, rng)
    lat.update(stdev=round(lat_us * 0.04, 3), cv=0.04)
    if gbps is not None:
        lat_extra = {"gbps": round(gbps, 3)}
    else:
        lat_extra = {}
    reasons = list(reasons)
    return _emit("result", t, backend, workload=workload, variant=variant, repeat=repeat,
                 ops=int(ops_per_s * duration_s), duration_s=duration_s,
                 ops_per_s=round(ops_per_s, 2), latency_us=lat, valid=not reasons,
                 validity_reasons=reasons, interrupted=False,
                 params={"size_bytes": 65536, "memory": "pinned"}, **lat_extra)


WORKLOAD_SHAPES = {  # workload -> (variant, ops/s, latency µs, GB/s or None)
    "roundtrip": ("pinned-64KiB", 7000.0, 140.0, 9.2),
    "launch": ("sync", 120000.0, 8.0, None),
    "h2d": ("pinned-1MiB", 24000.0, 41.0, 25.1),
    "d2h": ("pinned-1MiB", 23000.0, 43.0, 24.3),
}


def synthetic_stream(*, backend: str = "cupy", workloads: Sequence[str] = ("roundtrip",),
                     duration_s: float = 1.0, repeats: int = 1, sample_interval_s: float = 0.25,
                     telemetry_interval_s: float = 0.5, hostname: str = "gpu-node-1",
                     seed: int = 7, scale: float = 1.0, throttle: Sequence[str] = (),
                     pcie_gen: int = 5, done_status: str = "ok") -> list[str]:
    """A complete, valid stream: hello, then per workload × repeat samples,
    telemetry and a result, then done. `scale` multiplies throughput (0.95 = 5 % overhead)."""
    rng = random.Random(seed)
    plan = {"workloads": list(workloads), "duration_s": duration_s, "warmup_s": 0.0,
            "repeats": repeats}
    lines = [hello_line(0.0, backend, hostname, plan=plan, pcie_gen=pcie_gen)]
    t = 0.05
    next_tel = t
    n_results = 0
    for workload in workloads:
        variant, ops, lat, gbps = WORKLOAD_SHAPES.get(workload, ("default", 1000.0, 1000.0, None))
        ops *= scale
        lat /= scale
        if gbps is not None:
            gbps *= scale
        for repeat in range(repeats):
            start = t
            while t < start + duration_s - 1e-9:
                t += sample_interval_s
                wobble = 1 + rng.uniform(-0.02, 0.02)
                lines.append(sample_line(t, backend, workload, variant, ops * wobble,
                                         lat / wobble, rng, gbps * wobble if gbps else None))
                if t >= next_tel:
                    lines.append(telemetry_line(t, backend, list(throttle), pcie_gen))
                    next_tel = t + telemetry_interval_s
            lines.append(result_line(t, backend, workload, variant, repeat,
                                     ops * (1 + rng.uniform(-0.01, 0.01)), lat, duration_s, rng,
                                     gbps, reasons=[f"throttled: {n}" for n in throttle]))
            n_results += 1
    counts = {"hello": 1, "result": n_results}
    exit_code = 0 if done_status == "ok" else (130 if done_status == "interrupted" else 1)
    lines.append(_emit("done", t + 0.01, backend, status=done_status, exit_code=exit_code,
                       counts=counts))
    return lines
