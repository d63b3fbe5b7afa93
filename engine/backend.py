"""The two backends behind one small interface: `cupy` (a CUDA GPU) and `numpy-cpu`.

A workload asks its backend for buffers and for *operations*: zero-argument
callables that do one unit of work (launch a kernel, copy a buffer, ...). The
runner times those callables; nothing here allocates per call. Every
`*_op` method returns a plain closure over preallocated objects so that the
timed call is as close as possible to what a bare loop would write.

The numpy-cpu backend models the same operations with NumPy on the CPU; its
figures are labelled `numpy-cpu` in every line and are never GPU figures.
GPUBENCH_CPU_DELAY_NS (numpy-cpu only) busy-waits that many nanoseconds inside
each roundtrip and launch operation, modelling an interposer's per-call cost, and
GPUBENCH_CPU_DELAY_REPORT writes what the waits really cost (engine/cpu_delay.py).
"""
from __future__ import annotations

import atexit
import os
import time
from typing import Any, Callable

import numpy as np

from .cpu_delay import CpuDelay
from .devices import fake_gpu, format_uuid

Op = Callable[[], Any]

KERNEL_SOURCE = r"""
extern "C" __global__ void gpubench_empty() {}
extern "C" __global__ void gpubench_touch(unsigned char* p, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = p[i] + 1;
}
"""
H2D, D2H, D2D = 1, 2, 3  # cudaMemcpyKind


class NoGPU(RuntimeError):
    """--backend cupy was asked for, but CuPy or a CUDA device is missing."""


class CpuTimer:
    """Device-time accumulator for the CPU: wall time of the wrapped call."""

    def __init__(self):
        self.total_s = 0.0

    def wrap(self, fn: Op, sync: Op) -> Op:
        pc = time.perf_counter_ns
        acc = self

        def op():
            t = pc()
            fn()
            sync()
            acc.total_s += (pc() - t) * 1e-9
        return op


class NumpyBackend:
    name = "numpy-cpu"
    ordinal = None

    def __init__(self, seed: int = 0, delay_ns: int | None = None, fake_devices: int = 0,
                 fake_index: int | None = None):
        self.rng = np.random.default_rng(seed)
        # the wait inside each roundtrip/launch op, or None: the ops stay bare
        self.cpu_delay = CpuDelay.from_env() if delay_ns is None else \
            (CpuDelay(delay_ns) if delay_ns > 0 else None)
        self.delay_ns = self.cpu_delay.ns if self.cpu_delay else 0
        if self.cpu_delay and self.cpu_delay.report_path:
            atexit.register(self.cpu_delay.write_report)
        self.device_count = fake_devices          # GPUBENCH_FAKE_DEVICES (tests), else 0
        self.fake_index = fake_index if fake_devices else None
        self.uuid = None if self.fake_index is None else f"CPU-FAKE-{self.fake_index}"

    # ---- facts -----------------------------------------------------------------
    def gpus(self) -> list[dict]:
        """host.gpus: the fake devices (empty without GPUBENCH_FAKE_DEVICES)."""
        mem = _meminfo_total_mib()
        return [fake_gpu(i, mem) for i in range(self.device_count)]

    def device_facts(self, cpu_model: str | None) -> dict:
        if self.fake_index is not None:
            fake = fake_gpu(self.fake_index)
            return {**self._cpu_facts(cpu_model), "name": fake["name"], "uuid": fake["uuid"],
                    "index": self.fake_index, "visible_devices": self.device_count,
                    "fake_device": True, "mig_instance": False}
        return self._cpu_facts(cpu_model)

    def _cpu_facts(self, cpu_model: str | None) -> dict:
        return {"backend": self.name, "name": cpu_model, "uuid": None, "index": None,
                "driver": None, "cuda_driver": None, "cuda_runtime": None,
                "compute_capability": None,
                "memory_total_mib": _meminfo_total_mib(),
                "pcie": {"gen_current": None, "gen_max": None, "width_current": None,
                         "width_max": None},
                "mig_mode": None, "power_limit_w": None,
                "clocks_max": {"sm_mhz": None, "mem_mhz": None},
                "virtualization_mode": None, "cpu_count": os.cpu_count(),
                "cpu_model": cpu_model, "cpu_delay_ns": self.delay_ns}

    # ---- memory ------------------------------------------------------------------
    def host_buffer(self, nbytes: int, pinned: bool) -> np.ndarray:
        buf = np.empty(nbytes, dtype=np.uint8)
        buf.fill(0x5A)  # touch every page
        return buf

    def device_buffer(self, nbytes: int) -> np.ndarray:
        buf = np.empty(nbytes, dtype=np.uint8)
        buf.fill(0)
        return buf

    def held_allocation(self, nbytes: int) -> np.ndarray:
        return self.device_buffer(nbytes)

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, MemoryError)

    def release(self) -> None:
        pass

    # ---- operations ------------------------------------------------------------------
    def sync_op(self) -> Op:
        return _noop

    def timer(self, per_op: bool = False) -> CpuTimer:
        """The wall clock around each call (per_op: the engine's own clock already times each)."""
        return CpuTimer()

    def _delay(self) -> Op | None:
        return self.cpu_delay.wait() if self.cpu_delay else None

    def empty_kernel_op(self) -> Op:
        """A trivial NumPy call (the CPU's 'kernel launch')."""
        cell = np.zeros(1, dtype=np.int64)
        add = np.add
        delay = self._delay()
        if delay is None:
            return lambda: add(cell, 1, out=cell)

        def op():
            add(cell, 1, out=cell)
            delay()
        return op

    def empty_kernel_call(self) -> tuple[Callable, tuple]:
        if self.cpu_delay is None:
            cell = np.zeros(1, dtype=np.int64)
            return np.add, (cell, 1, cell)
        return self.empty_kernel_op(), ()

    def sync_calls(self) -> list:
        return []

    def copy_call(self, kind: int, dst: np.ndarray, src: np.ndarray, nbytes: int) -> tuple:
        return np.copyto, (dst, src)

    def touch_kernel_call(self, dev: np.ndarray, nbytes: int) -> tuple:
        if self.cpu_delay is None:
            head = dev[: min(nbytes, 256)]
            return np.add, (head, 1, head)
        return self.touch_kernel_op(dev, nbytes), ()

    def touch_kernel_op(self, dev: np.ndarray, nbytes: int) -> Op:
        """A small NumPy operation on the 'device' buffer."""
        head = dev[: min(nbytes, 256)]
        add = np.add
        delay = self._delay()
        if delay is None:
            return lambda: add(head, 1, out=head)

        def op():
            add(head, 1, out=head)
            delay()
        return op

    def copy_op(self, kind: int, dst: np.ndarray, src: np.ndarray, nbytes: int) -> Op:
        copyto = np.copyto
        return lambda: copyto(dst, src)

    def gemm_setup(self, n: int, dtype: str) -> tuple[Op, tuple]:
        npdt = np.float16 if dtype == "fp16" else np.float32
        a = self.rng.random((n, n), dtype=np.float32).astype(npdt)
        b = self.rng.random((n, n), dtype=np.float32).astype(npdt)
        c = np.empty((n, n), dtype=npdt)
        matmul = np.matmul
        return (lambda: matmul(a, b, out=c)), (a, b, c)

    def malloc_free_op(self, nbytes: int) -> Op:
        empty, u8 = np.empty, np.uint8

        def op():
            buf = empty(nbytes, dtype=u8)
            buf[::4096] = 1  # touch every page so the memory is really obtained
            del buf
        return op


def _noop() -> None:
    return None


def _meminfo_total_mib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class CudaTimer:
    """Device time of wrapped calls, measured with a pair of CUDA events; with `per_op` each
    call's own time is kept too (`op_s`, seconds: the device-side distribution of a step)."""

    def __init__(self, cupy: Any, stream: Any, per_op: bool = False):
        self.total_s = 0.0
        self._cupy, self._stream = cupy, stream
        self.start = cupy.cuda.Event()
        self.end = cupy.cuda.Event()
        self.op_s: list[float] | None = [] if per_op else None

    def wrap(self, fn: Op, sync: Op) -> Op:
        start, end, stream = self.start, self.end, self._stream
        elapsed = self._cupy.cuda.get_elapsed_time
        acc = self
        keep = self.op_s.append if self.op_s is not None else None

        def op():
            start.record(stream)
            fn()
            end.record(stream)
            end.synchronize()
            acc.total_s += elapsed(start, end) * 1e-3

        def op_kept():
            start.record(stream)
            fn()
            end.record(stream)
            end.synchronize()
            s = elapsed(start, end) * 1e-3
            acc.total_s += s
            keep(s)
        return op if keep is None else op_kept


class CupyBackend:
    name = "cupy"

    def __init__(self, cupy: Any, ordinal: int, seed: int = 0):
        self.cp = cupy
        self.ordinal = ordinal
        self.rt = cupy.cuda.runtime
        self.device = cupy.cuda.Device(ordinal)
        self.device.use()
        self.stream = cupy.cuda.Stream.null
        self.device_count = self.rt.getDeviceCount()
        self.props = self.rt.getDeviceProperties(ordinal)
        self.uuid = format_uuid(self.props.get("uuid"))
        try:
            self.pci_bus_id = self.rt.deviceGetPCIBusId(ordinal)
        except Exception:
            self.pci_bus_id = None
        self.rng = cupy.random.default_rng(seed)
        self._module = cupy.RawModule(code=KERNEL_SOURCE)
        self.k_empty = self._module.get_function("gpubench_empty")
        self.k_touch = self._module.get_function("gpubench_touch")

    # ---- facts -----------------------------------------------------------------
    def device_facts(self, nv: Any, handle: Any) -> dict:
        q = nv.query
        name = self.props.get("name")
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        limit_mw = q("nvmlDeviceGetEnforcedPowerLimit", handle)
        mig = q("nvmlDeviceGetMigMode", handle)
        virt = q("nvmlDeviceGetVirtualizationMode", handle)
        return {
            "backend": self.name,
            "name": name,
            "uuid": self.uuid or nv.query("nvmlDeviceGetUUID", handle),
            "index": self.ordinal,
            "pci_bus_id": self.pci_bus_id,
            "nvml_index": q("nvmlDeviceGetIndex", handle),
            "visible_devices": self.device_count,
            "driver": nv.version(),
            "cuda_driver": _cuda_version(self.rt.driverGetVersion()),
            "cuda_runtime": _cuda_version(self.rt.runtimeGetVersion()),
            "compute_capability": f"{self.props.get('major')}.{self.props.get('minor')}",
            "multiprocessors": self.props.get("multiProcessorCount"),
            "memory_total_mib": round(self.props.get("totalGlobalMem", 0) / 2**20, 1),
            "pcie": {
                "gen_current": q("nvmlDeviceGetCurrPcieLinkGeneration", handle),
                "gen_max": q("nvmlDeviceGetMaxPcieLinkGeneration", handle),
                "width_current": q("nvmlDeviceGetCurrPcieLinkWidth", handle),
                "width_max": q("nvmlDeviceGetMaxPcieLinkWidth", handle),
            },
            "mig_mode": mig[0] if isinstance(mig, (list, tuple)) and mig else mig,
            "power_limit_w": None if limit_mw is None else limit_mw / 1000.0,
            "clocks_max": {"sm_mhz": q("nvmlDeviceGetMaxClockInfo", handle, 1),
                           "mem_mhz": q("nvmlDeviceGetMaxClockInfo", handle, 2)},
            "virtualization_mode": virt,
            "virtualization_mode_name": _virt_name(virt),
        }

    # ---- memory ------------------------------------------------------------------
    def host_buffer(self, nbytes: int, pinned: bool) -> np.ndarray:
        if pinned:
            import cupyx  # only with CuPy, which the CPU backend never loads
            buf = cupyx.empty_pinned((nbytes,), dtype=np.uint8)
        else:
            buf = np.empty(nbytes, dtype=np.uint8)
        buf.fill(0x5A)  # touch every page
        return buf

    def device_buffer(self, nbytes: int) -> Any:
        buf = self.cp.empty(nbytes, dtype=self.cp.uint8)
        buf.fill(0)
        return buf

    def held_allocation(self, nbytes: int) -> Any:
        """A cudaMalloc outside CuPy's pool, freed when the object goes (alloc's -held)."""
        return self.cp.cuda.Memory(nbytes)

    def is_oom(self, exc: BaseException) -> bool:
        cp = self.cp
        if isinstance(exc, (MemoryError, cp.cuda.memory.OutOfMemoryError)):
            return True
        if isinstance(exc, cp.cuda.runtime.CUDARuntimeError):
            return getattr(exc, "status", None) == 2 or "memory" in str(exc).lower()
        return False

    def release(self) -> None:
        self.stream.synchronize()
        self.cp.get_default_memory_pool().free_all_blocks()
        self.cp.get_default_pinned_memory_pool().free_all_blocks()

    # ---- operations ------------------------------------------------------------------
    def sync_op(self) -> Op:
        return self.stream.synchronize

    def timer(self, per_op: bool = False) -> CudaTimer:
        return CudaTimer(self.cp, self.stream, per_op)

    def empty_kernel_op(self) -> Op:
        k, grid, block, args = self.k_empty, (1,), (1,), ()
        return lambda: k(grid, block, args)

    def empty_kernel_call(self) -> tuple[Callable, tuple]:
        """(fn, args): fn(*args) launches the empty kernel; lets the loop call it directly."""
        return self.k_empty, ((1,), (1,), ())

    def touch_kernel_op(self, dev: Any, nbytes: int) -> Op:
        k, block = self.k_touch, (256,)
        grid = ((nbytes + 255) // 256,)
        args = (dev, np.int32(nbytes))
        return lambda: k(grid, block, args)

    def sync_calls(self) -> list:
        return [(self.stream.synchronize, ())]

    def copy_call(self, kind: int, dst: Any, src: Any, nbytes: int) -> tuple:
        """cudaMemcpyAsync on our stream, as a (fn, args) call."""
        return self.rt.memcpyAsync, (_ptr(dst), _ptr(src), nbytes, kind, self.stream.ptr)

    def touch_kernel_call(self, dev: Any, nbytes: int) -> tuple:
        return self.k_touch, (((nbytes + 255) // 256,), (256,), (dev, np.int32(nbytes)))

    def copy_op(self, kind: int, dst: Any, src: Any, nbytes: int) -> Op:
        memcpy = self.rt.memcpyAsync
        dptr, sptr, sp = _ptr(dst), _ptr(src), self.stream.ptr
        return lambda: memcpy(dptr, sptr, nbytes, kind, sp)

    def gemm_setup(self, n: int, dtype: str) -> tuple[Op, tuple]:
        cp = self.cp
        a = self.rng.random((n, n), dtype=cp.float32)
        b = self.rng.random((n, n), dtype=cp.float32)
        if dtype == "fp16":
            a, b = a.astype(cp.float16), b.astype(cp.float16)
        c = cp.empty((n, n), dtype=a.dtype)
        matmul = cp.matmul
        return (lambda: matmul(a, b, out=c)), (a, b, c)

    def malloc_free_op(self, nbytes: int) -> Op:
        """cudaMalloc + cudaFree straight through the runtime: CuPy's pool is bypassed."""
        malloc, free = self.rt.malloc, self.rt.free

        def op():
            free(malloc(nbytes))
        return op


def _ptr(buf: Any) -> int:
    if isinstance(buf, np.ndarray):
        return buf.ctypes.data
    return buf.data.ptr


def _cuda_version(v: int | None) -> str | None:
    if not v:
        return None
    return f"{v // 1000}.{(v % 1000) // 10}"


def _virt_name(mode: int | None) -> str | None:
    # lazy: the init child imports this module inside its timed phase (for KERNEL_SOURCE),
    # and facts brings subprocess and socket with it
    from .facts import VIRT_MODES
    return None if mode is None else VIRT_MODES.get(mode, str(mode))


def import_cupy() -> tuple[Any, str | None]:
    """(cupy, None) if CuPy imports and sees a device, else (None, why)."""
    try:
        import cupy
    except Exception as exc:
        return None, f"CuPy not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"no CUDA device ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "no CUDA device visible"
    return cupy, None


def resolve_device(cupy: Any, device: str | None) -> int:
    """CUDA ordinal for --device: an index among the visible devices, or a UUID (prefix)."""
    count = cupy.cuda.runtime.getDeviceCount()
    if device is None or device == "":
        return 0
    if device.isdigit():
        idx = int(device)
        if idx >= count:
            raise NoGPU(f"device {idx} does not exist ({count} visible; CUDA_VISIBLE_DEVICES="
                        f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
        return idx
    want = device.lower()
    if want.startswith(("gpu-", "mig-")):  # CUDA spells a MIG instance's UUID like a GPU's
        want = want[4:]
    for idx in range(count):
        uuid = format_uuid(cupy.cuda.runtime.getDeviceProperties(idx).get("uuid")) or ""
        if want and uuid.lower()[4:].startswith(want):
            return idx
    raise NoGPU(f"no visible device has UUID {device}")
