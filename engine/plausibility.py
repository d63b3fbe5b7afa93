"""Is a stream believable? The rules every reader applies to what an engine says.

The stream comes from another host (SSH, a pod) and is not trusted: a `result` may carry
figures that cannot be (negative, NaN, percentiles out of order, faster than the hardware
can go) and a session's lines may contradict each other (results without `hello`, lines
after `done`, a `done` that disagrees with how the process ended). `StreamJudge` says so,
line by line, for the live parser (scenarios/stream.py) and for the result document
(results/document.py), which judge the same way because they share this one class.

Standard library only: it ships beside the engine and readers import it without NumPy.
The physical bounds and where each comes from are in DESIGN.md ("Plausibility").
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

from .protocol import LATENCY_KEYS

# ---- physical bounds ---------------------------------------------------------------------
# GB/s per lane and direction after line encoding (8b/10b to gen 2, 128b/130b from gen 3,
# FLIT from gen 6): the PCI-SIG raw rates.
PCIE_GBPS_PER_LANE = {1: 0.25, 2: 0.5, 3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}
LINK_MARGIN = 1.25            # room over the wire rate for timing error; real copies reach ~88 %
# A host link we cannot name (no PCIe facts, a non-x86 host whose GPU may sit on NVLink-C2C:
# GH200/GB200 450 GB/s per direction, Vera Rubin 900; POWER9 NVLink 150): a ceiling above all.
HOST_LINK_CEILING_GBPS = 1000.0
# Bytes copied once, device memory to device memory: the fastest HBM announced (HBM4 on Rubin,
# ~22 TB/s read + write, so ~11 TB/s copied) with room for small copies served from L2.
MEMORY_COPY_CEILING_GBPS = 20_000.0
# GPU to GPU: NVLink 6 moves 1.8 TB/s per direction; a copy through the host is slower still.
PEER_CEILING_GBPS = 2_500.0
# Dense GEMM: B200/B300 reach ~1.1 PFLOP/s TF32 and ~2.3 PFLOP/s fp16; the ceilings are
# several times that so that no shipping or announced GPU is refused. Unknown dtype: fp4-class.
GEMM_TFLOPS_CEILING = {"fp32": 5_000.0, "fp16": 10_000.0}
GEMM_TFLOPS_CEILING_OTHER = 100_000.0
# The least time one operation can take (µs). An op that ends with a GPU synchronise needs a
# doorbell write and a completion seen across PCIe (~1 µs round trip; the fastest launch +
# synchronise measured is 7.25 µs on an H200). Async launches only enqueue (2.4 µs on an H200).
SYNC_OP_FLOOR_US = 0.5
ASYNC_LAUNCH_FLOOR_US = 0.05
ALLOC_FLOOR_US = 0.1          # cudaMalloc + cudaFree: two driver calls (~3 µs sub-allocated)
PROCESS_START_FLOOR_US = 1000.0   # init: a process start to its first kernel (Python alone ~10 ms)
CPU_OP_FLOOR_US = 0.01        # numpy-cpu: one Python call in the timed loop takes ~30 ns or more
SYNC_WORKLOADS = ("roundtrip", "h2d", "d2h", "d2d", "gemm", "p2p", "decode", "prefill")
# a transformer step: its products are GEMMs, so it cannot beat the GEMM ceiling of its dtype
STEP_WORKLOADS = ("decode", "prefill")
HOST_LINK_WORKLOADS = ("roundtrip", "h2d", "d2h")   # roundtrip's bytes cross the link both ways
COPY_WORKLOADS = ("roundtrip", "h2d", "d2h", "d2d", "p2p")
# Only an x86-64 CPU guarantees the GPU hangs off PCIe (NVLink-C2C and NVLink-to-CPU exist on
# Grace and POWER); a GPU named like a Grace superchip never gets the PCIe bound.
X86_CPU = re.compile(r"Intel|AMD|Xeon|EPYC|Opteron|Ryzen|Threadripper|Core\(TM\)|Hygon|Zhaoxin")
GRACE_GPU = re.compile(r"\bG[BH]\d{3}")

# A step's products are GEMMs of the model's shapes: on the device a session's gemm workload
# measured, a step cannot do its FLOPs much faster than that GEMM. Twice it, not once: the
# gemm may have run beside a neighbour (MPS at 25 % cut an fp16 GEMM to a third, GPU-FACTS)
# while the step ran alone, and a prefill's large products run as fast as the 8192 GEMM.
STEP_OVER_GEMM_LIMIT = 2.0

REL_TOLERANCE = 1e-3          # JSON rounding of ops/s and latencies; anything beyond is made up


@dataclass(frozen=True)
class DeviceBounds:
    """What one session's hello allows: the backend and the host link's GB/s ceiling."""
    backend: str
    host_link_gbps: float
    host_link: str            # how the ceiling was found, for the reason text


def host_link_bound(hello: dict) -> tuple[float, str]:
    """(GB/s ceiling per direction, its source) for copies between host and device."""
    device = hello.get("device") if isinstance(hello.get("device"), dict) else {}
    host = hello.get("host") if isinstance(hello.get("host"), dict) else {}
    pcie = device.get("pcie") if isinstance(device.get("pcie"), dict) else {}
    gens = [g for g in (pcie.get("gen_current"), pcie.get("gen_max")) if _is_int(g) and g > 0]
    widths = [w for w in (pcie.get("width_current"), pcie.get("width_max"))
              if _is_int(w) and w > 0]
    on_pcie = X86_CPU.search(str(host.get("cpu_model") or "")) is not None \
        and GRACE_GPU.search(str(device.get("name") or "")) is None
    if not on_pcie or not gens or not widths or max(gens) not in PCIE_GBPS_PER_LANE:
        return HOST_LINK_CEILING_GBPS, "host-link ceiling"
    gen, width = max(gens), max(widths)
    return PCIE_GBPS_PER_LANE[gen] * width * LINK_MARGIN, f"PCIe gen{gen} x{width} + 25 %"


def device_bounds(hello: dict) -> DeviceBounds:
    backend = str(hello.get("backend"))
    if backend != "cupy":   # host memory to host memory: only the memory ceiling applies
        return DeviceBounds(backend, MEMORY_COPY_CEILING_GBPS, "memory-copy ceiling")
    gbps, source = host_link_bound(hello)
    return DeviceBounds(backend, gbps, source)


# ---- one result ---------------------------------------------------------------------------

def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _number(x: Any) -> float | None:
    """A JSON number as float (NaN and infinities included); None for anything else."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    try:
        return float(x)
    except OverflowError:   # an integer beyond any float (Python's json reads any size)
        return math.inf


def _positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _fmt(x: Any) -> str:
    text = f"{x:.6g}" if isinstance(x, float) else repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def _op_floor_us(line: dict, backend: str) -> float | None:
    workload = line.get("workload")
    if workload == "init":
        return PROCESS_START_FLOOR_US
    if backend != "cupy":
        return CPU_OP_FLOOR_US
    if workload == "launch":
        params = line.get("params") if isinstance(line.get("params"), dict) else {}
        batch = params.get("ops_per_call", params.get("launches_per_sync", 1))
        return SYNC_OP_FLOOR_US if batch == 1 else ASYNC_LAUNCH_FLOOR_US
    if workload == "alloc":
        return ALLOC_FLOOR_US
    return SYNC_OP_FLOOR_US if workload in SYNC_WORKLOADS else None


def _gbps_bound(line: dict, bounds: DeviceBounds) -> tuple[float, str] | None:
    workload = line.get("workload")
    if workload not in COPY_WORKLOADS:
        return None
    if bounds.backend == "cupy" and workload in HOST_LINK_WORKLOADS:
        return bounds.host_link_gbps, bounds.host_link
    if bounds.backend == "cupy" and workload == "p2p":
        return PEER_CEILING_GBPS, "GPU-to-GPU ceiling"
    return MEMORY_COPY_CEILING_GBPS, "memory-copy ceiling"


def _tflops_bound(line: dict) -> float:
    params = line.get("params") if isinstance(line.get("params"), dict) else {}
    dtype = params.get("dtype") or str(line.get("variant") or "").split("-")[0]
    return GEMM_TFLOPS_CEILING.get(dtype, GEMM_TFLOPS_CEILING_OTHER)


def result_problems(line: dict, bounds: DeviceBounds | None) -> list[str]:
    """Why a `result` line cannot be true ([] when it can). `bounds` from the session's
    hello (None: no hello, only the checks that need no device facts)."""
    out: list[str] = []
    reasons = line.get("validity_reasons")
    if line.get("valid") is True and reasons:
        out.append("valid: true beside validity reasons")
    ops = line.get("ops")
    if not _is_int(ops) or ops < 0 or not math.isfinite(_number(ops)):
        out.append(f"ops {_fmt(ops)} is not a count")
        return out
    if ops == 0:   # nothing measured: only a result that says so is believable
        if line.get("valid") is True:
            out.append("valid with 0 operations")
        return out
    ops_per_s, duration = _number(line.get("ops_per_s")), _number(line.get("duration_s"))
    for name, value in (("ops_per_s", ops_per_s), ("duration_s", duration)):
        if not _positive(value):
            out.append(f"{name} {_fmt(line.get(name))} is not finite and positive")
    if _positive(ops_per_s) and _positive(duration):
        # duration_s is rounded to 1 µs and ops is a whole count; beyond that, made up
        implied = _number(ops) / duration
        slack = REL_TOLERANCE * ops_per_s + 1.0 / duration + implied * 1e-6 / duration
        if abs(implied - ops_per_s) > slack:
            out.append(f"ops {ops} in {_fmt(duration)} s is {implied:.6g}/s, "
                       f"not the {ops_per_s:.6g} ops/s reported")
    out += _latency_problems(line.get("latency_us"), duration)
    for name in ("device_time_s", "gbps", "gbps_wall", "tflops", "bytes", "tokens_per_s"):
        if name in line and line[name] is not None and not _positive(_number(line[name])):
            out.append(f"{name} {_fmt(line[name])} is not finite and positive")
    if line.get("workload") in STEP_WORKLOADS:
        out += _step_problems(line, ops_per_s)
    if bounds is not None:
        out += _bound_problems(line, bounds, ops_per_s)
    return out


def _step_problems(line: dict, ops_per_s: float | None) -> list[str]:
    """A decode/prefill result's own figures must agree: tokens/s is steps/s times the tokens
    of a step, jitter is p99 ÷ p50."""
    out: list[str] = []
    params = line.get("params") if isinstance(line.get("params"), dict) else {}
    tokens, per_step = _number(line.get("tokens_per_s")), _number(params.get("tokens_per_step"))
    if _positive(tokens) and _positive(per_step) and _positive(ops_per_s):
        implied = ops_per_s * per_step
        if abs(tokens - implied) > REL_TOLERANCE * implied:
            out.append(f"tokens_per_s {tokens:.6g} is not {_fmt(ops_per_s)} steps/s × "
                       f"{_fmt(params.get('tokens_per_step'))} tokens ({implied:.6g})")
    if "device_latency_us" in line:   # the same steps by their CUDA events: the same rules
        out += [f"device {p}" for p in _latency_problems(line["device_latency_us"],
                                                         _number(line.get("duration_s")))]
    lat = line.get("latency_us") if isinstance(line.get("latency_us"), dict) else {}
    jitter, p50, p99 = _number(line.get("jitter")), _number(lat.get("p50")), _number(lat.get("p99"))
    if jitter is not None and _positive(p50) and _positive(p99):
        if not math.isfinite(jitter) or abs(jitter - p99 / p50) > 1e-3 * (p99 / p50) + 1e-4:
            out.append(f"jitter {_fmt(line.get('jitter'))} is not p99 ÷ p50 "
                       f"({p99 / p50:.6g})")
    return out


def _latency_problems(lat: Any, duration: float | None) -> list[str]:
    if not isinstance(lat, dict):
        return ["latency_us is missing"]
    values = {k: _number(lat.get(k)) for k in LATENCY_KEYS}
    bad = [k for k, v in values.items() if not _positive(v) and not (k == "min" and v == 0.0)]
    if bad:   # a clock too coarse for one op may read 0 µs as the minimum; nothing else
        return [f"latency_us.{k} {_fmt(lat.get(k))} is not finite and positive" for k in bad]
    order = ("min", "p50", "p90", "p99", "p999", "max")
    for a, b in zip(order, order[1:]):
        if values[a] > values[b] * (1 + REL_TOLERANCE):
            return [f"latency percentiles out of order: {a} {_fmt(values[a])} > "
                    f"{b} {_fmt(values[b])} µs"]
    mean, lo, hi = values["mean"], values["min"], values["max"]
    if not lo * (1 - REL_TOLERANCE) <= mean <= hi * (1 + REL_TOLERANCE):
        return [f"mean latency {_fmt(mean)} µs outside [min {_fmt(lo)}, max {_fmt(hi)}]"]
    if _positive(duration) and hi * 1e-6 > duration * (1 + REL_TOLERANCE) + 1e-6:
        return [f"an operation of {_fmt(hi)} µs is longer than the {_fmt(duration)} s window"]
    return []


def _bound_problems(line: dict, bounds: DeviceBounds, ops_per_s: float | None) -> list[str]:
    out: list[str] = []
    floor = _op_floor_us(line, bounds.backend)
    if floor is not None:
        lat = line.get("latency_us") if isinstance(line.get("latency_us"), dict) else {}
        p50 = _number(lat.get("p50"))
        if _positive(p50) and p50 < floor:
            out.append(f"median latency {_fmt(p50)} µs is below the {floor:g} µs one "
                       f"{line.get('workload')} operation takes at least")
        if line.get("workload") != "init" and _positive(ops_per_s) and ops_per_s > 1e6 / floor:
            # init starts its processes side by side: its ops/s is no sequential rate
            out.append(f"{ops_per_s:.6g} ops/s is above the {1e6 / floor:.6g}/s that a "
                       f"{floor:g} µs operation allows")
    gbps_bound = _gbps_bound(line, bounds)
    if gbps_bound is not None:
        limit, source = gbps_bound
        for name in ("gbps", "gbps_wall"):
            value = _number(line.get(name))
            if _positive(value) and value > limit:
                out.append(f"{name} {value:.6g} GB/s is above the {limit:.6g} GB/s {source}")
    if line.get("workload") == "gemm" or line.get("workload") in STEP_WORKLOADS:
        limit = _tflops_bound(line)
        value = _number(line.get("tflops"))
        if _positive(value) and value > limit:
            out.append(f"{value:.6g} TFLOP/s is above the {limit:g} TFLOP/s GEMM ceiling")
    return out


# ---- one session's stream ------------------------------------------------------------------

class StreamJudge:
    """Follows one session's validated lines in order: `line()` gives the reasons a result
    is not believable (its own figures, or where it stands in the stream); `session_problems`
    collects what makes the whole stream contradict itself; `end(exit_code)` adds how the
    session ended against what `done` said.

    `archive=True` reads a store archive (scenarios/replay.py, results/document.py gets one
    judge per session): there a `hello` right after a `done` starts the next session."""

    __slots__ = ("archive", "bounds", "hello_device", "hellos", "done", "results", "_problems",
                 "gemm_tflops")

    def __init__(self, archive: bool = False):
        self.archive = archive
        self._reset()

    def _reset(self) -> None:
        self.bounds: DeviceBounds | None = None
        self.hello_device: str | None = None
        self.hellos = 0
        self.done: dict | None = None
        self.results = 0
        self._problems: dict[str, str] | None = None   # made at the first (a fleet holds many)
        self.gemm_tflops: dict[str, tuple[float, str]] = {}   # dtype -> (best, its variant)

    @property
    def session_problems(self) -> list[str]:
        """What makes this session's stream contradict itself so far, in order."""
        return list(self._problems.values()) if self._problems else []

    def _problem(self, key: str, text: str) -> str:
        """Record a stream problem once per kind (a flood of lines after `done` is one)."""
        if self._problems is None:
            self._problems = {}
        self._problems.setdefault(key, text)
        return text

    def line(self, line: dict, line_no: int | None = None) -> list[str]:
        kind = line.get("type")
        if (kind == "sample" or kind == "telemetry") and self.done is None \
                and self.bounds is not None and line.get("backend") == self.bounds.backend:
            return []     # the common case, thousands a second on a fleet: nothing to say
        where = f" (line {line_no})" if line_no is not None else ""
        if kind == "hello" and self.archive and self.done is not None:
            self._reset()
        stream: list[str] = []
        if self.done is not None:
            stream.append(self._problem(f"after-done-{kind}", f"{kind} after done{where}"))
        if kind == "hello":
            device = _device_word(line)
            if self.hellos:
                other = "" if device == self.hello_device else \
                    f" for another device ({device}; the first was {self.hello_device})"
                stream.append(self._problem("hello-again", f"second hello{other}{where}"))
            else:
                self.hello_device = device
                self.bounds = device_bounds(line)
            self.hellos += 1
        elif kind in ("sample", "telemetry", "result") and not self.hellos:
            stream.append(self._problem(f"before-hello-{kind}", f"{kind} before hello{where}"))
        elif kind == "done":
            if self.done is not None:
                stream.append(self._problem("done-again", f"second done{where}"))
            else:
                self.done = line
        if self.bounds is not None and line.get("backend") != self.bounds.backend:
            stream.append(self._problem("backend", f"{kind} from backend {line.get('backend')} "
                                                   f"after a hello from {self.bounds.backend}{where}"))
        if kind != "result":
            return stream
        if self.done is None:
            self.results += 1
        own = result_problems(line, self.bounds)
        return stream + own + self._against_gemm(line, own)

    def _against_gemm(self, line: dict, own: list[str]) -> list[str]:
        """Remember the session's believable GEMM rates; judge a step's TFLOP/s by them."""
        tflops = _number(line.get("tflops"))
        if not _positive(tflops) or own:
            return []
        params = line.get("params") if isinstance(line.get("params"), dict) else {}
        dtype = str(params.get("dtype"))
        if line.get("workload") == "gemm" and line.get("valid") is True:
            if tflops > self.gemm_tflops.get(dtype, (0.0, ""))[0]:
                self.gemm_tflops[dtype] = (tflops, str(line.get("variant")))
        elif line.get("workload") in STEP_WORKLOADS and dtype in self.gemm_tflops:
            best, variant = self.gemm_tflops[dtype]
            if tflops > STEP_OVER_GEMM_LIMIT * best:
                return [f"{tflops:.6g} TFLOP/s is above {STEP_OVER_GEMM_LIMIT:g}× the "
                        f"{best:.6g} TFLOP/s this session's gemm {variant} measured"]
        return []

    def end(self, exit_code: int | None) -> list[str]:
        """Every problem of the session once it is over: the stream's own, and a `done` that
        disagrees with the results received or with the exit code (None: not known)."""
        out = self.session_problems
        done = self.done
        if done is None:
            return out
        status, said = done.get("status"), done.get("exit_code")
        if (status == "ok") != (said == 0):
            out.append(f"done says status {status} with exit code {said}")
        if exit_code is not None and said != exit_code:
            out.append(f"done says exit code {said} but the engine exited with {exit_code}")
        counts = done.get("counts") if isinstance(done.get("counts"), dict) else {}
        for kind, received in (("hello", self.hellos), ("result", self.results)):
            if kind in counts and counts[kind] != received:
                out.append(f"done counts {kind} lines: {_fmt(counts[kind])} written, "
                           f"{received} received")
        return out


def _device_word(hello: dict) -> str:
    device = hello.get("device") if isinstance(hello.get("device"), dict) else {}
    return str(device.get("uuid") or device.get("name") or "unknown")


def judge_session(lines: Iterable[dict], exit_code: int | None = None
                  ) -> tuple[list[list[str]], list[str]]:
    """A whole session at once: (the problems of each result line in order, the session's
    problems). For readers that hold the session's lines (results/document.py)."""
    judge = StreamJudge()
    per_result = []
    for line in lines:
        problems = judge.line(line)
        if line.get("type") == "result":
            per_result.append(problems)
    return per_result, judge.end(exit_code)
