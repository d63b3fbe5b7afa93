"""NVML readings: a wrapper that never raises, and the telemetry thread.

`NVML.query("nvmlDeviceGetPowerUsage", handle)` returns the value or None when
the library is missing, the function does not exist in this driver, or NVML
answers with any NVMLError (NotSupported, NoPermission, GPU lost, ...). Each
failing function is reported once to stderr, never again (nvitop's
`nvmlQuery(..., default=NA)` is the model).

The thread reads every `interval` seconds, emits a `telemetry` line and keeps a
timestamped record of throttle (clock-event) reasons so that the runner can mark
a window INVALID when the GPU throttled during it. The slow PCIe throughput
query (~20 ms) only ever runs here, never on the timing thread; between
readings the thread sleeps on an Event (no busy loop, no GIL held).
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

from .throttle import INVALIDATING_MASK, throttle_names


class NVML:
    """NA-returning NVML access. `module` may be injected (tests use a fake)."""

    def __init__(self, module: Any = None, log: Callable[[str], None] | None = None):
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._reported: set[str] = set()
        self._lock = threading.Lock()
        self.available = False
        self.error: str | None = None
        self.nvml = module
        if self.nvml is None:
            try:
                import pynvml  # nvidia-ml-py
                self.nvml = pynvml
            except Exception as exc:  # not installed, or broken
                self.error = f"pynvml not importable: {exc}"
                return
        try:
            self.nvml.nvmlInit()
            self.available = True
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.error = f"nvmlInit failed: {exc}"

    def _report_once(self, name: str, exc: BaseException) -> None:
        with self._lock:
            if name in self._reported:
                return
            self._reported.add(name)
        self._log(f"gpubench engine: NVML {name} unavailable: {type(exc).__name__}: {exc}")

    def query(self, name: str, *args: Any) -> Any:
        """Call pynvml.<name>(*args); None for anything that goes wrong."""
        if not self.available:
            return None
        func = getattr(self.nvml, name, None)
        if func is None:
            self._report_once(name, AttributeError("not in this pynvml"))
            return None
        try:
            value = func(*args)
        except Exception as exc:  # every NVMLError subclass, and ctypes trouble
            self._report_once(name, exc)
            return None
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        return value

    def version(self) -> str | None:
        return self.query("nvmlSystemGetDriverVersion")

    def handle_for_uuid(self, uuid: str | None, pci_bus_id: str | None = None,
                        index: int | None = None) -> Any:
        """NVML handle by UUID or PCI bus id (both CUDA_VISIBLE_DEVICES-safe), else by index."""
        handle = None
        if uuid:
            handle = self.query("nvmlDeviceGetHandleByUUID", uuid)
        if handle is None and pci_bus_id:
            handle = self.query("nvmlDeviceGetHandleByPciBusId", pci_bus_id)
        if handle is None and index is not None:
            handle = self.query("nvmlDeviceGetHandleByIndex", index)
        return handle

    def shutdown(self) -> None:
        if self.available:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
            self.available = False


def _field(obj: Any, name: str) -> Any:
    return getattr(obj, name, None) if obj is not None else None


NVLINK_MAX_LINKS = 18            # NVML_NVLINK_MAX_LINKS on Hopper (pynvml says 36 for later)
FI_NVLINK_TX_KIB, FI_NVLINK_RX_KIB = 138, 139   # NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX/RX


class NvLinkReader:
    """`nvlink` readings: [{link, active, tx_kbps, rx_kbps}] per NVLink, or None.

    The links are probed once (nvmlDeviceGetNvLinkState for 0..NVLINK_MAX_LINKS-1);
    a GPU with none (PCIe cards, NotSupported everywhere) costs nothing afterwards.
    Throughput comes from the NVML field values NVLINK_THROUGHPUT_DATA_TX/RX (cumulative
    KiB per link, scopeId = link), differenced between readings: KB/s like pcie_*_kbps,
    null on the first reading and where the driver does not provide the fields.
    """

    def __init__(self, max_links: int = NVLINK_MAX_LINKS,
                 clock: Callable[[], float] = time.monotonic):
        self.max_links = max_links
        self._clock = clock
        self.links: list[int] | None = None      # None: not probed yet
        self._prev: dict[int, tuple[float, int | None, int | None]] = {}
        self._first_states: dict[int, Any] | None = None

    def _counters(self, nv: NVML, handle: Any) -> dict[int, tuple[int | None, int | None]]:
        ids = [(f, link) for link in self.links or () for f in (FI_NVLINK_TX_KIB, FI_NVLINK_RX_KIB)]
        values = nv.query("nvmlDeviceGetFieldValues", handle, ids) if ids else None
        out: dict[int, tuple[int | None, int | None]] = {}
        if values is None:
            return out
        try:
            got: dict[tuple[int, int], int] = {}
            for v in values:
                if getattr(v, "nvmlReturn", 1) == 0:
                    got[(int(v.fieldId), int(v.scopeId))] = int(v.value.ullVal)
        except Exception:
            return out
        for link in self.links or ():
            out[link] = (got.get((FI_NVLINK_TX_KIB, link)), got.get((FI_NVLINK_RX_KIB, link)))
        return out

    def read(self, nv: NVML, handle: Any) -> list[dict] | None:
        if self.links is None:
            states = {link: nv.query("nvmlDeviceGetNvLinkState", handle, link)
                      for link in range(self.max_links)}
            self.links = [link for link, st in states.items() if st is not None]
            self._first_states = states
        if not self.links:
            return None
        states, self._first_states = self._first_states, None
        now = self._clock()
        counters = self._counters(nv, handle)
        out = []
        for link in self.links:
            state = states[link] if states else nv.query("nvmlDeviceGetNvLinkState", handle, link)
            tx, rx = counters.get(link, (None, None))
            rate_tx = rate_rx = None
            prev = self._prev.get(link)
            if prev is not None and now > prev[0]:
                dt = now - prev[0]
                if tx is not None and prev[1] is not None and tx >= prev[1]:
                    rate_tx = round((tx - prev[1]) * 1.024 / dt, 1)
                if rx is not None and prev[2] is not None and rx >= prev[2]:
                    rate_rx = round((rx - prev[2]) * 1.024 / dt, 1)
            self._prev[link] = (now, tx, rx)
            out.append({"link": link, "active": None if state is None else bool(state),
                        "tx_kbps": rate_tx, "rx_kbps": rate_rx})
        return out


def read_telemetry(nv: NVML, handle: Any, nvlink: NvLinkReader | None = None) -> dict:
    """One set of readings, exactly the keys DESIGN.md lists; None where unsupported.

    `nvlink` keeps the NVLink probe and counters between readings (the thread passes
    one); without it the links are probed on every call."""
    q = nv.query
    util = q("nvmlDeviceGetUtilizationRates", handle)
    mem = q("nvmlDeviceGetMemoryInfo", handle)
    power_mw = q("nvmlDeviceGetPowerUsage", handle)
    limit_mw = q("nvmlDeviceGetEnforcedPowerLimit", handle)
    throttle = q("nvmlDeviceGetCurrentClocksEventReasons", handle)
    if throttle is None:
        throttle = q("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
    mig = q("nvmlDeviceGetMigMode", handle)
    tx = q("nvmlDeviceGetPcieThroughput", handle, 0)  # NVML_PCIE_UTIL_TX_BYTES, blocks ~20 ms
    rx = q("nvmlDeviceGetPcieThroughput", handle, 1)  # NVML_PCIE_UTIL_RX_BYTES
    ecc = q("nvmlDeviceGetTotalEccErrors", handle, 1, 0)  # uncorrected, volatile counter
    mem_used = _field(mem, "used")
    mem_total = _field(mem, "total")
    return {
        "gpu_util_pct": _field(util, "gpu"),
        "mem_util_pct": _field(util, "memory"),
        "sm_clock_mhz": q("nvmlDeviceGetClockInfo", handle, 1),   # NVML_CLOCK_SM
        "mem_clock_mhz": q("nvmlDeviceGetClockInfo", handle, 2),  # NVML_CLOCK_MEM
        "power_w": None if power_mw is None else power_mw / 1000.0,
        "power_limit_w": None if limit_mw is None else limit_mw / 1000.0,
        "temperature_c": q("nvmlDeviceGetTemperature", handle, 0),  # NVML_TEMPERATURE_GPU
        "memory_used_mib": None if mem_used is None else round(mem_used / 2**20, 1),
        "memory_total_mib": None if mem_total is None else round(mem_total / 2**20, 1),
        "pcie_tx_kbps": tx,
        "pcie_rx_kbps": rx,
        "pcie_gen": q("nvmlDeviceGetCurrPcieLinkGeneration", handle),
        "pcie_width": q("nvmlDeviceGetCurrPcieLinkWidth", handle),
        "pcie_gen_max": q("nvmlDeviceGetMaxPcieLinkGeneration", handle),
        "pcie_width_max": q("nvmlDeviceGetMaxPcieLinkWidth", handle),
        "throttle_reasons": throttle,
        "throttle_names": throttle_names(throttle),
        "mig_mode": mig[0] if isinstance(mig, (list, tuple)) and mig else mig,
        "ecc_volatile": ecc,
        "nvlink": (nvlink or NvLinkReader()).read(nv, handle),
    }


class TelemetryThread(threading.Thread):
    """Reads NVML every `interval` s on its own thread; records throttle events."""

    def __init__(self, nv: NVML, handle: Any, emit: Callable[..., Any], interval: float,
                 clock: Callable[[], float] = time.perf_counter):
        super().__init__(name="gpubench-telemetry", daemon=True)
        self._nv, self._handle, self._emit = nv, handle, emit
        self._interval = max(0.05, float(interval))
        self._clock = clock
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        # (timestamp before the reading, timestamp after it, mask) for every reading.
        self.throttle_log: list[tuple[float, float, int]] = []
        # (before, after, SM MHz, memory MHz) for every reading with both clocks.
        self.clock_log: list[tuple[float, float, float, float]] = []
        self.readings = 0
        self._nvlink = NvLinkReader()

    def run(self) -> None:
        while not self._stop_event.is_set():
            t_before = self._clock()
            try:
                readings = read_telemetry(self._nv, self._handle, self._nvlink)
            except Exception as exc:  # never let the thread die noisily
                print(f"gpubench engine: telemetry reading failed: {exc}", file=sys.stderr)
                readings = None
            t_after = self._clock()
            if readings is not None:
                mask = readings.get("throttle_reasons")
                if isinstance(mask, int):
                    with self._lock:
                        self.throttle_log.append((t_before, t_after, mask))
                sm, mem = readings.get("sm_clock_mhz"), readings.get("mem_clock_mhz")
                if isinstance(sm, (int, float)) and isinstance(mem, (int, float)):
                    with self._lock:
                        self.clock_log.append((t_before, t_after, float(sm), float(mem)))
                self.readings += 1
                self._emit("telemetry", readings=readings)
            self._stop_event.wait(self._interval)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def throttling_between(self, start: float, end: float) -> list[str]:
        """Invalidating throttle reasons seen in readings that overlap [start, end]."""
        mask = 0
        with self._lock:
            for t_before, t_after, m in self.throttle_log:
                if t_after >= start and t_before <= end:
                    mask |= m
        return throttle_names(mask & INVALIDATING_MASK) or []

    def clocks_between(self, start: float, end: float) -> dict | None:
        """{"sm_mhz": [min, max], "mem_mhz": [min, max]} of readings that overlap [start,
        end]; None without any."""
        with self._lock:
            seen = [(sm, mem) for t_before, t_after, sm, mem in self.clock_log
                    if t_after >= start and t_before <= end]
        if not seen:
            return None
        sms, mems = [s for s, _ in seen], [m for _, m in seen]
        return {"sm_mhz": [min(sms), max(sms)], "mem_mhz": [min(mems), max(mems)]}
