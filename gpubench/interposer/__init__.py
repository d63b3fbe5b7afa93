"""The gpubench interposer: an LD_PRELOAD library between a program and libcuda.

It wraps `dlsym`, `cuGetProcAddress(_v2)` and the plain driver symbols, so it
catches CuPy's and the CUDA runtime's calls alike; it counts calls, adds a
busy-wait delay per call, and can cap device memory and the launch rate. The
self-test uses it to inject a known overhead; the isolation checks use it as a
stand-in GPU proxy with limits that can be switched on and off.

    path = library_path()                      # built on first use, cached by source hash
    env = interposer_env(launch_delay_ns=500, report="/tmp/r-%p.json")
    # run something with LD_PRELOAD=path and env, then:
    report = read_report("/tmp/r-1234.json")

Build: ``cc -shared -fPIC -O2 -fno-stack-protector interpose.c -ldl -lpthread``
into ``$GPUBENCH_CACHE_DIR`` (default ``$XDG_CACHE_HOME/gpubench`` or
``~/.cache/gpubench``), file ``libgpubench-interpose-<hash>.so``; interpose.c
#includes its parts (``*.inc.c``), so the hash covers them too. No CUDA headers
are needed. ``$CC`` picks the compiler.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "interpose.c"
# The parts interpose.c #includes into its one translation unit (see the note there).
PARTS_GLOB = "*.inc.c"
CFLAGS = ("-shared", "-fPIC", "-O2", "-fno-stack-protector", "-Wall")
LIBS = ("-ldl", "-lpthread")

# Environment variables the library reads (see interpose.c's header).
ENV_DELAY = "GPUBENCH_INTERPOSE_DELAY_NS"
ENV_LAUNCH_DELAY = "GPUBENCH_INTERPOSE_LAUNCH_DELAY_NS"
ENV_COPY_DELAY = "GPUBENCH_INTERPOSE_COPY_DELAY_NS"
ENV_H2D_DELAY = "GPUBENCH_INTERPOSE_H2D_DELAY_NS"
ENV_D2H_DELAY = "GPUBENCH_INTERPOSE_D2H_DELAY_NS"
ENV_ALLOC_DELAY = "GPUBENCH_INTERPOSE_ALLOC_DELAY_NS"
ENV_MEM_LIMIT = "GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES"
ENV_LAUNCH_RATE = "GPUBENCH_INTERPOSE_LAUNCH_RATE"
ENV_LAUNCH_BURST = "GPUBENCH_INTERPOSE_LAUNCH_BURST"
ENV_SYNC_DELAY = "GPUBENCH_INTERPOSE_SYNC_DELAY_NS"
ENV_SLOT = "GPUBENCH_INTERPOSE_DELAY_SLOT_NS"
ENV_SEED = "GPUBENCH_INTERPOSE_DELAY_SEED"
ENV_BASE_WAIT = "GPUBENCH_INTERPOSE_BASE_WAIT_NS"
ENV_UNHOOK = "GPUBENCH_INTERPOSE_UNHOOK"
ENV_REPORT = "GPUBENCH_INTERPOSE_REPORT"
CUDA_ERROR_OUT_OF_MEMORY = 2


class InterposerBuildError(RuntimeError):
    """The library could not be built; the message is one line for the user."""


def cache_dir() -> Path:
    if os.environ.get("GPUBENCH_CACHE_DIR"):
        return Path(os.environ["GPUBENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpubench"


def source_hash(compiler: str | None = None) -> str:
    h = hashlib.sha256(SOURCE.read_bytes())
    for part in sorted(SOURCE.parent.glob(PARTS_GLOB)):
        h.update(part.name.encode() + b"\0" + part.read_bytes())
    h.update(" ".join((compiler or "", *CFLAGS, *LIBS)).encode())
    return h.hexdigest()[:16]


def _compiler() -> str:
    cc = os.environ.get("CC") or "cc"
    found = shutil.which(cc) or (shutil.which("gcc") if cc == "cc" else None)
    if not found:
        raise InterposerBuildError(
            f"gpubench: cannot build the interposer: no C compiler ({cc!r}) on PATH; "
            "install gcc (e.g. `apt-get install gcc`) or set CC")
    return found


def library_path(rebuild: bool = False) -> Path:
    """The built library, compiling it into the cache on first use."""
    cc = _compiler()
    out = cache_dir() / f"libgpubench-interpose-{source_hash(os.path.basename(cc))}.so"
    if out.is_file() and not rebuild:
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InterposerBuildError(
            f"gpubench: cannot build the interposer: cache folder {out.parent}: {exc.strerror}"
        ) from None
    fd, tmp = tempfile.mkstemp(prefix=".interpose-", suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *CFLAGS, "-o", tmp, str(SOURCE), *LIBS],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln),
                         proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "")
            raise InterposerBuildError(
                f"gpubench: cannot build the interposer with {cc}: {first.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)   # atomic: concurrent builders each install a whole file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def interposer_env(*, delay_ns: int | None = None, launch_delay_ns: int | None = None,
                   copy_delay_ns: int | None = None, h2d_delay_ns: int | None = None,
                   d2h_delay_ns: int | None = None, alloc_delay_ns: int | None = None,
                   mem_limit_bytes: int | None = None, launch_rate: float | None = None,
                   launch_burst: int | None = None, report: str | os.PathLike | None = None,
                   sync_delay_ns: int | None = None, slot_ns: int | None = None,
                   seed: int | None = None, unhook: str | None = None,
                   base_wait_ns: int | None = None) -> dict[str, str]:
    """Environment for a process run under the interposer; None leaves a knob off."""
    pairs = ((ENV_DELAY, delay_ns), (ENV_LAUNCH_DELAY, launch_delay_ns),
             (ENV_COPY_DELAY, copy_delay_ns), (ENV_H2D_DELAY, h2d_delay_ns),
             (ENV_D2H_DELAY, d2h_delay_ns), (ENV_ALLOC_DELAY, alloc_delay_ns),
             (ENV_MEM_LIMIT, mem_limit_bytes), (ENV_LAUNCH_RATE, launch_rate),
             (ENV_LAUNCH_BURST, launch_burst), (ENV_REPORT, report),
             (ENV_SYNC_DELAY, sync_delay_ns), (ENV_SLOT, slot_ns), (ENV_SEED, seed),
             (ENV_UNHOOK, unhook), (ENV_BASE_WAIT, base_wait_ns))
    env = {}
    for key, value in pairs:
        if value is None:
            continue
        if isinstance(value, float) and key != ENV_LAUNCH_RATE:
            value = int(round(value))
        env[key] = str(value)
    return env


def read_report(path: str | os.PathLike) -> dict[str, Any]:
    """Load a report the library wrote (at exit, or via gpubench_interpose_write_report)."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def is_mapped(mapped: list[str] | tuple[str, ...] | None) -> bool:
    """Did the engine's hello (host.preload.mapped) list a gpubench interposer?"""
    return any("libgpubench-interpose" in os.path.basename(str(m)) for m in (mapped or ()))
