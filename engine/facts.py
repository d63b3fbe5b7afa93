"""Host facts for `hello`: hypervisor and preload detection, environment, versions.

Every reader takes an injectable root (`/` by default) so tests can build a fake
/proc and /sys; a missing or unreadable source is simply no evidence, never an
error. The GPU machine this was built on is a Firecracker guest whose only
signs are the cpuinfo `hypervisor` flag and NVML virtualization mode 1
(passthrough) (see ../shared/GPU-FACTS.md).
"""
from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping

from .interception import driver_resolution
from .mps_facts import mps_facts
from .redact import redact_env

# NVML nvmlGpuVirtualizationMode_t
VIRT_MODES = {0: "none", 1: "passthrough", 2: "vgpu", 3: "host_vgpu", 4: "host_vsga"}

# Substrings of DMI vendor/product strings that name a hypervisor (lower case).
DMI_VENDORS = (
    ("qemu", "qemu"), ("kvm", "kvm"), ("vmware", "vmware"), ("virtualbox", "virtualbox"),
    ("innotek", "virtualbox"), ("xen", "xen"), ("microsoft corporation", "hyperv"),
    ("hyper-v", "hyperv"), ("virtual machine", "hyperv"), ("amazon ec2", "amazon"),
    ("google compute engine", "google"), ("bochs", "bochs"), ("parallels", "parallels"),
    ("openstack", "openstack"), ("firecracker", "firecracker"), ("cloud hypervisor", "cloud-hypervisor"),
    ("bhyve", "bhyve"), ("nutanix", "nutanix"),
)
DMI_FILES = ("sys_vendor", "product_name", "board_vendor", "bios_vendor", "chassis_vendor")
ENV_PREFIXES = ("CUDA_", "GPUBENCH_", "NVIDIA_")
ENV_NAMES = ("LD_PRELOAD", "LD_LIBRARY_PATH")


def _read(path: Path, limit: int = 1 << 20) -> str | None:
    try:
        with open(path, "r", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return None


def cpu_model(root: str | os.PathLike = "/") -> str | None:
    text = _read(Path(root) / "proc/cpuinfo")
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model"):
            return value.strip()
    return platform.processor() or None


def _run_detect_virt() -> str | None:
    exe = shutil.which("systemd-detect-virt")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def detect_hypervisor(root: str | os.PathLike = "/", nvml_virt_mode: int | None = None,
                      detect_virt: Callable[[], str | None] | None = _run_detect_virt) -> dict:
    """Combine every available sign; `detected` if any says we are a guest."""
    base = Path(root)
    evidence: list[str] = []
    vendor: str | None = None

    hv_type = (_read(base / "sys/hypervisor/type") or "").strip()
    if hv_type:
        evidence.append(f"/sys/hypervisor/type={hv_type}")
        vendor = hv_type

    cpuinfo = _read(base / "proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            if "hypervisor" in value.split():
                evidence.append("cpuinfo flag hypervisor")
            break

    for name in DMI_FILES:
        value = (_read(base / "sys/class/dmi/id" / name) or "").strip()
        if not value:
            continue
        low = value.lower()
        for needle, who in DMI_VENDORS:
            if needle in low:
                evidence.append(f"dmi {name}={value}")
                vendor = vendor or who
                break

    if detect_virt is not None:
        virt = detect_virt()
        if virt and virt != "none":
            evidence.append(f"systemd-detect-virt={virt}")
            vendor = vendor or virt

    if nvml_virt_mode is not None:
        mode = VIRT_MODES.get(nvml_virt_mode, str(nvml_virt_mode))
        if nvml_virt_mode in (1, 2):  # the GPU is passed through / a vGPU: we are a guest
            evidence.append(f"nvml virtualization_mode={mode}")

    version = _read(base / "proc/version") or ""
    if "gvisor" in version.lower():
        evidence.append("gVisor kernel")
        vendor = vendor or "gvisor"

    return {"detected": bool(evidence), "evidence": evidence, "vendor": vendor}


def preload_facts(env: Mapping[str, str] | None = None,
                  maps_path: str | os.PathLike = "/proc/self/maps") -> dict:
    """LD_PRELOAD entries and which of them are really mapped into this process.

    An entry matches a mapping by full path, by resolved path, or, for a bare
    name such as `libvgpu.so`, by file name.
    """
    env = os.environ if env is None else env
    raw = env.get("LD_PRELOAD", "") or ""
    entries = [e for e in raw.replace(":", " ").split() if e]
    mapped_paths: list[str] = []
    seen: set[str] = set()
    text = _read(Path(maps_path), limit=16 << 20) or ""
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and parts[5] not in seen:
            seen.add(parts[5])
            mapped_paths.append(parts[5].strip())
    mapped: list[str] = []
    for entry in entries:
        candidates = {entry}
        if "/" in entry:
            try:
                candidates.add(os.path.realpath(entry))
            except OSError:
                pass
        for path in mapped_paths:
            hit = path in candidates or ("/" not in entry and os.path.basename(path) == entry)
            if hit and path not in mapped:
                mapped.append(path)
    return {"ld_preload": entries, "mapped": mapped}


def env_facts(env: Mapping[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    return redact_env({k: v for k, v in sorted(env.items())
                       if k.startswith(ENV_PREFIXES) or k in ENV_NAMES})


def _version(module_name: str) -> str | None:
    module = sys.modules.get(module_name)
    return getattr(module, "__version__", None) if module is not None else None


def format_cpu_list(cpus) -> str:
    """{0, 1, 2, 3, 9} -> "0-3,9" (taskset's list syntax)."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def host_facts(nvml_virt_mode: int | None = None, nvml_version: str | None = None,
               root: str | os.PathLike = "/") -> dict:
    uname = platform.uname()
    return {
        "hostname": socket.gethostname(),
        "os": f"{uname.system} {platform.freedesktop_os_release().get('PRETTY_NAME', '')}".strip()
        if hasattr(platform, "freedesktop_os_release") and _has_os_release() else uname.system,
        "kernel": uname.release,
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "cupy": _version("cupy"),
        "nvml": nvml_version,
        "cpu_model": cpu_model(root),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": format_cpu_list(os.sched_getaffinity(0)),
        "pid": os.getpid(),
        "hypervisor": detect_hypervisor(root, nvml_virt_mode),
        "preload": {**preload_facts(), **driver_resolution()},
        "mps": mps_facts(),
        "env": env_facts(),
    }


def _has_os_release() -> bool:
    try:
        platform.freedesktop_os_release()
        return True
    except OSError:
        return False
