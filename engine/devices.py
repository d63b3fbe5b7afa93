"""Which GPUs this engine can see: `host.gpus`, `host.p2p` and the fake CPU devices.

`host.gpus` lists every device CUDA can see (CUDA ordinals, i.e. what `--device`
takes), each as {index, uuid, name, pci_bus_id, memory_total_mib, mig_mode,
mig_instance}. `--list-devices` prints a `hello` with it and stops.

GPUBENCH_FAKE_DEVICES=N (numpy-cpu only, for tests of multi-GPU orchestration on a
machine without GPUs) makes the CPU backend report N devices `CPU-FAKE-<i>` and
accept `--device i` / `--device CPU-FAKE-i`. Every figure is still a CPU figure.
"""
from __future__ import annotations

import os
import sys
from typing import Any

FAKE_ENV = "GPUBENCH_FAKE_DEVICES"
FAKE_PREFIX = "CPU-FAKE-"
MAX_FAKE = 64


class DeviceNotFound(Exception):
    """--device names no visible device; the message is one line."""


def fake_device_count(env: dict | None = None) -> int:
    env = os.environ if env is None else env
    raw = env.get(FAKE_ENV, "").strip()
    if not raw:
        return 0
    try:
        n = int(raw)
    except ValueError:
        print(f"gpubench engine: ignoring {FAKE_ENV}={raw!r} (not a whole number)", file=sys.stderr)
        return 0
    return max(0, min(n, MAX_FAKE))


def fake_gpu(i: int, memory_total_mib: float | None = None) -> dict:
    return {"index": i, "uuid": f"{FAKE_PREFIX}{i}", "name": f"CPU (numpy-cpu) fake device {i}",
            "pci_bus_id": None, "memory_total_mib": memory_total_mib, "mig_mode": None,
            "mig_instance": False}


def resolve_fake_device(device: str | None, count: int) -> int:
    """Fake device index for --device (index or CPU-FAKE-i); 0 when none is given."""
    if device is None or device == "":
        return 0
    text = device.strip()
    if text.upper().startswith(FAKE_PREFIX):
        text = text[len(FAKE_PREFIX):]
    if text.isdigit() and int(text) < count:
        return int(text)
    names = ", ".join(f"{i} ({FAKE_PREFIX}{i})" for i in range(count))
    raise DeviceNotFound(f"no fake device {device!r} ({count} visible: {names})")


def _uuid_variants(uuid: str | None) -> list[str]:
    if not uuid:
        return []
    hexpart = uuid.split("-", 1)[1] if uuid.startswith(("GPU-", "MIG-")) else uuid
    return [uuid, f"MIG-{hexpart}"] if uuid.startswith("GPU-") else [uuid]


def nvml_handle(nv: Any, uuid: str | None, pci_bus_id: str | None) -> tuple[Any, bool]:
    """(NVML handle, is a MIG instance) for a CUDA device; (None, False) without NVML.

    CUDA reports a MIG instance's UUID as raw bytes: formatted as GPU-... NVML does not
    know it, as MIG-... it does, so both spellings are tried.
    """
    if nv is None or not getattr(nv, "available", False):
        return None, False
    for candidate in _uuid_variants(uuid):
        handle = nv.query("nvmlDeviceGetHandleByUUID", candidate)
        if handle is not None:
            mig = candidate.startswith("MIG-") or bool(nv.query("nvmlDeviceIsMigDeviceHandle", handle))
            return handle, mig
    if pci_bus_id:
        handle = nv.query("nvmlDeviceGetHandleByPciBusId", pci_bus_id)
        if handle is not None:
            return handle, False
    return None, False


def format_uuid(raw: Any) -> str | None:
    """CUDA's 16-byte uuid as NVML spells it: GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw if raw.startswith(("GPU-", "MIG-")) else f"GPU-{raw}"
    b = bytes(raw)[:16]
    if len(b) != 16:
        return None
    h = b.hex()
    return f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def cupy_gpus(cupy: Any, nv: Any = None) -> list[dict]:
    """One entry per CUDA-visible device (no context is created)."""
    rt = cupy.cuda.runtime
    out = []
    for i in range(rt.getDeviceCount()):
        props = rt.getDeviceProperties(i)
        name = props.get("name")
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        uuid = format_uuid(props.get("uuid"))
        try:
            bus = rt.deviceGetPCIBusId(i)
        except Exception:
            bus = None
        handle, mig_instance = nvml_handle(nv, uuid, bus)
        if mig_instance and uuid and uuid.startswith("GPU-"):
            uuid = "MIG-" + uuid[4:]
        mig = nv.query("nvmlDeviceGetMigMode", handle) if handle is not None else None
        out.append({"index": i, "uuid": uuid, "name": name, "pci_bus_id": bus,
                    "memory_total_mib": round(props.get("totalGlobalMem", 0) / 2**20, 1),
                    "mig_mode": mig[0] if isinstance(mig, (list, tuple)) and mig else mig,
                    "mig_instance": mig_instance})
    return out


def cupy_p2p_matrix(cupy: Any, count: int) -> list[list[bool | None]] | None:
    """matrix[i][j]: can device i access device j's memory (cudaDeviceCanAccessPeer);
    null on the diagonal and where the query fails."""
    rt = cupy.cuda.runtime
    matrix: list[list[bool | None]] = []
    for i in range(count):
        row: list[bool | None] = []
        for j in range(count):
            if i == j:
                row.append(None)
                continue
            try:
                row.append(bool(rt.deviceCanAccessPeer(i, j)))
            except Exception:
                row.append(None)
        matrix.append(row)
    return matrix
