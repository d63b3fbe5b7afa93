"""Which library answers the driver entry points an application asks for (hello.host.preload).

A GPU proxy (HAMi-core's libvgpu.so, gpubench's interposer) stands in an application's path
only if the application's *lookups* hand it the proxy's functions. CuPy dlopens libcuda.so.1
and resolves each entry point with dlsym; the CUDA runtime resolves them through
cuGetProcAddress (../shared/GPU-FACTS.md). A library that is mapped into the process can be
bypassed by both, so being mapped proves nothing. Here each entry point is resolved both ways,
as those callers do it, and the library that owns each address is named (dladdr):

    {"driver": "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "cuda_version": 13000,
     "resolves": {"cuLaunchKernel": {"dlsym": "/usr/local/vgpu/libvgpu.so",
                                     "getproc": "/usr/local/vgpu/libvgpu.so"}, ...},
     "resolves_error": None}

Only the soname libcuda.so.1 is opened, through the loader's own search as CuPy opens it
(LD_LIBRARY_PATH, then the cache): never a toolkit's stub, and nothing is loaded where no
driver is installed. Then "driver" is None, "resolves" is {} and "resolves_error" says why.
Nothing of the driver runs but cuDriverGetVersion and cuGetProcAddress, which need neither
cuInit nor a GPU, so the CPU backend reports the same facts where a libcuda is present.
Never raises: a failure becomes "resolves_error" or a None owner.
"""
from __future__ import annotations

import ctypes
import os

DRIVER_SONAME = "libcuda.so.1"

# (the name an application passes to dlsym, the name it passes to cuGetProcAddress or None).
# Kernel launches, the allocation and copy paths CuPy and the runtime use, and the lookups
# themselves: a proxy that does not own cuGetProcAddress misses every runtime call.
ENTRY_POINTS = (
    ("cuLaunchKernel", "cuLaunchKernel"),
    ("cuLaunchKernelEx", "cuLaunchKernelEx"),
    ("cuMemAlloc_v2", "cuMemAlloc"),
    ("cuMemAllocAsync", "cuMemAllocAsync"),
    ("cuMemFree_v2", "cuMemFree"),
    ("cuMemcpyHtoD_v2", "cuMemcpyHtoD"),
    ("cuMemcpyDtoH_v2", "cuMemcpyDtoH"),
    ("cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync"),
    ("cuMemGetInfo_v2", "cuMemGetInfo"),
    ("cuGetProcAddress", None),             # cuGetProcAddress by name answers the _v2 one
    ("cuGetProcAddress_v2", "cuGetProcAddress"),
)
# The version asked of cuGetProcAddress when the driver does not say its own: from 12.0 on
# every name above means the ABI listed (the _v2 functions, cuGetProcAddress_v2).
FALLBACK_CUDA_VERSION = 12000
RTLD_DI_LINKMAP = 2


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


class _LinkMap(ctypes.Structure):   # the head of glibc's struct link_map
    _fields_ = [("l_addr", ctypes.c_size_t), ("l_name", ctypes.c_char_p)]


def _libc(name: str):
    """A dl* function of the C library (glibc >= 2.34), else of libdl.so.2."""
    for lib in (None, "libdl.so.2"):
        try:
            return getattr(ctypes.CDLL(lib), name)
        except (OSError, AttributeError):
            continue
    return None


def owner(address: int | None, dladdr=None) -> str | None:
    """Path of the loaded object that holds `address` (None when nobody does)."""
    dladdr = dladdr or _libc("dladdr")
    if not address or dladdr is None:
        return None
    info = _DlInfo()
    if not dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.fsdecode(info.dli_fname)


def _loaded_path(handle: int) -> str | None:
    dlinfo = _libc("dlinfo")
    if dlinfo is None:
        return None
    lm = ctypes.POINTER(_LinkMap)()
    if dlinfo(ctypes.c_void_p(handle), RTLD_DI_LINKMAP, ctypes.byref(lm)) != 0 or not lm:
        return None
    return os.fsdecode(lm.contents.l_name) if lm.contents.l_name else None


def _dlsym(lib: ctypes.CDLL, name: str) -> int | None:
    """dlsym(handle, name), as CuPy calls it (ctypes' item lookup is a plain dlsym, uncached)."""
    try:
        return ctypes.cast(lib[name], ctypes.c_void_p).value
    except AttributeError:
        return None


def _driver_version(lib: ctypes.CDLL) -> int | None:
    if _dlsym(lib, "cuDriverGetVersion") is None:
        return None
    version = ctypes.c_int()
    if lib["cuDriverGetVersion"](ctypes.byref(version)) != 0 or version.value <= 0:
        return None
    return version.value


class _GetProc:
    """cuGetProcAddress as the runtime gets it: the _v2 lookup found through dlsym, else v1."""

    def __init__(self, lib: ctypes.CDLL):
        self.name = next((n for n in ("cuGetProcAddress_v2", "cuGetProcAddress")
                          if _dlsym(lib, n) is not None), None)
        self.fn = lib[self.name] if self.name else None
        if self.fn is not None:
            args = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_uint64]
            if self.name == "cuGetProcAddress_v2":
                args.append(ctypes.POINTER(ctypes.c_int))
            self.fn.argtypes, self.fn.restype = args, ctypes.c_int

    def __call__(self, symbol: str, version: int) -> int | None:
        pfn = ctypes.c_void_p()
        args = [symbol.encode(), ctypes.byref(pfn), version, 0]
        if self.name == "cuGetProcAddress_v2":
            args.append(ctypes.byref(ctypes.c_int()))
        return pfn.value if self.fn(*args) == 0 else None


def driver_resolution(soname: str = DRIVER_SONAME) -> dict:
    """{driver, cuda_version, getproc, resolves, resolves_error} for hello.host.preload."""
    out: dict = {"driver": None, "cuda_version": None, "getproc": None, "resolves": {},
                 "resolves_error": None}
    try:
        lib = ctypes.CDLL(soname)
    except OSError as exc:
        out["resolves_error"] = f"no driver library to resolve against: {exc}"
        return out
    try:
        out["driver"] = _loaded_path(lib._handle) or soname
        dladdr = _libc("dladdr")
        if dladdr is None:
            out["resolves_error"] = "dladdr is not available: the owners cannot be named"
            return out
        version = _driver_version(lib)
        out["cuda_version"] = version
        getproc = _GetProc(lib)
        out["getproc"] = getproc.name
        for sym, proc_name in ENTRY_POINTS:
            row = {"dlsym": owner(_dlsym(lib, sym), dladdr)}
            if proc_name is not None and getproc.fn is not None:
                row["getproc"] = owner(getproc(proc_name, version or FALLBACK_CUDA_VERSION), dladdr)
            out["resolves"][sym] = row
    except Exception as exc:  # a hello must never fail on a fact
        out["resolves_error"] = f"resolving the driver's entry points failed: " \
                                f"{type(exc).__name__}: {exc}"
    return out
