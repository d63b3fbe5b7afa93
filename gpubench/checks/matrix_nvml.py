"""NVML's per-process SM utilisation while a victim and an aggressor run together: the figures
the matrix holds against its measured throughput shares.

    with ProcessUtilisation(device=0) as nvml:    # a thread polls while the engines run
        ...
    nvml.mean_sm(pid)       # mean SM % NVML gave that process, None without a sample
    nvml.unavailable        # why there are no figures at all (no pynvml, no GPU, ...)

nvmlDeviceGetProcessUtilization hands back the samples newer than a timestamp, from a short
driver buffer, so it is polled through the run rather than read once at its end. Under MPS
the work of every client may be the MPS server's, and then no engine pid has a sample: the
cell says so instead of comparing nothing.
"""
from __future__ import annotations

import threading
from typing import Any

POLL_S = 0.5


class ProcessUtilisation:
    def __init__(self, device: int = 0, module: Any = None):
        self.device = device
        self.unavailable: str | None = None
        self._nvml = module
        self._handle = None
        self._samples: dict[int, list[float]] = {}
        self._last_ts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "ProcessUtilisation":
        try:
            if self._nvml is None:
                import pynvml  # lazy: only a GPU run of the matrix reads NVML
                self._nvml = pynvml
            self._nvml.nvmlInit()
            self._handle = self._nvml.nvmlDeviceGetHandleByIndex(self.device)
        except Exception as exc:
            self.unavailable = f"NVML: {type(exc).__name__}: {exc}"
            return self
        self._thread = threading.Thread(target=self._poll, name="matrix-nvml", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._read()
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            self._read()

    def _read(self) -> None:
        try:
            got = self._nvml.nvmlDeviceGetProcessUtilization(self._handle, self._last_ts)
        except Exception as exc:
            # NotFound: no sample since the last read; anything else is told once, at the end
            if "NotFound" not in type(exc).__name__ and self.unavailable is None:
                self.unavailable = f"nvmlDeviceGetProcessUtilization: {type(exc).__name__}"
            return
        for s in got or []:
            self._samples.setdefault(int(s.pid), []).append(float(s.smUtil))
            self._last_ts = max(self._last_ts, int(s.timeStamp))

    def mean_sm(self, pid: int | None) -> float | None:
        values = self._samples.get(pid) if pid is not None else None
        return sum(values) / len(values) if values else None

    def pids(self) -> list[int]:
        return sorted(self._samples)
