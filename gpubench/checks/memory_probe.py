"""The memory probe: one allocation path, in steps, until refused or past the limit.

Every path a framework allocates device memory with, each through the driver entry points an
application would look up by name (so a proxy that wraps dlsym sees them):

  cuMemAlloc_v2            plain allocations, looked up with dlsym
  cuMemAlloc (cuGetProcAddress)  the same entry point found the way the CUDA runtime finds it
                           (cudaMalloc, and so PyTorch's and CuPy's allocators): a proxy that
                           wraps dlsym only is caught here
  cuMemAllocPitch_v2       pitched 2-D allocations
  cuMemAllocManaged        managed (unified) memory, touched with cuMemsetD8 where the driver has
                           it so the pages are really resident on the device
  cuMemAllocAsync          stream-ordered, from the device's default pool
  cuMemAllocFromPoolAsync  stream-ordered, from a pool made with cuMemPoolCreate
  cuMemCreate              virtual memory management: cuMemCreate + cuMemAddressReserve +
                           cuMemMap + cuMemSetAccess (what PyTorch's expandable segments use)
  cuBLAS workspace         (GPU only, CuPy) the memory cuBLAS takes for a GEMM's workspace: from
                           CUDA 12.2 with cudaMallocAsync, so a proxy holds it only if it holds
                           the stream-ordered path and counts it with the rest

Each answer says what was held when the probe stopped, whether it was refused and with which
CUDA code by which call, or that the driver has no such path (NOT SUPPORTED). Everything is
freed before the probe prints.
"""
from __future__ import annotations

import ctypes
from typing import Callable

CUDA_ERROR_NOT_SUPPORTED = 801
GPA_PATH = "cuMemAlloc (cuGetProcAddress)"
MEMORY_PATHS = ("cuMemAlloc_v2", GPA_PATH, "cuMemAllocPitch_v2", "cuMemAllocManaged",
                "cuMemAllocAsync", "cuMemAllocFromPoolAsync", "cuMemCreate")
CUBLAS_PATH = "cuBLAS workspace"
PITCH_WIDTH = 64 << 10            # pitched rows of 64 KiB: the pitch equals the width
CU_MEM_ATTACH_GLOBAL = 1
CU_MEM_ALLOCATION_TYPE_PINNED = 1
CU_MEM_LOCATION_TYPE_DEVICE = 1
CU_MEM_ACCESS_FLAGS_PROT_READWRITE = 3


class CUmemLocation(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_int)]


class CUmemAllocationProp(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("requestedHandleTypes", ctypes.c_int),
                ("location", CUmemLocation), ("win32HandleMetaData", ctypes.c_void_p),
                ("compressionType", ctypes.c_ubyte), ("gpuDirectRDMACapable", ctypes.c_ubyte),
                ("usage", ctypes.c_ushort), ("reserved", ctypes.c_ubyte * 4)]


class CUmemPoolProps(ctypes.Structure):
    _fields_ = [("allocType", ctypes.c_int), ("handleTypes", ctypes.c_int),
                ("location", CUmemLocation), ("win32SecurityAttributes", ctypes.c_void_p),
                ("maxSize", ctypes.c_size_t), ("usage", ctypes.c_ushort),
                ("reserved", ctypes.c_ubyte * 54)]


class CUmemAccessDesc(ctypes.Structure):
    _fields_ = [("location", CUmemLocation), ("flags", ctypes.c_int)]


class Absent(Exception):
    """The driver has no such entry point."""


def _fn(lib, name: str, argtypes: list) -> Callable[..., int]:
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise Absent(name) from None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn


U64, SZ, VP = ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p
P_U64, P_SZ = ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_size_t)


def _proc(lib, base: str, argtypes: list) -> Callable[..., int]:
    """The driver function `base` as cuGetProcAddress hands it out (CUDA 12 ABI)."""
    pfn = VP()
    try:
        gpa = _fn(lib, "cuGetProcAddress_v2", [ctypes.c_char_p, ctypes.POINTER(VP), ctypes.c_int,
                                               U64, ctypes.POINTER(ctypes.c_int)])
        rc = gpa(base.encode(), ctypes.byref(pfn), 12000, 0, ctypes.byref(ctypes.c_int()))
    except Absent:
        gpa = _fn(lib, "cuGetProcAddress", [ctypes.c_char_p, ctypes.POINTER(VP), ctypes.c_int, U64])
        rc = gpa(base.encode(), ctypes.byref(pfn), 12000, 0)
    if rc != 0 or not pfn.value:
        raise Absent(f"{base} (cuGetProcAddress)")
    return ctypes.CFUNCTYPE(ctypes.c_int, *argtypes)(pfn.value)


def _allocator(lib, path: str, device: int, step: int):
    """(step actually used, allocate() -> (call, rc, bytes, release)) for one path."""
    if path in ("cuMemAlloc_v2", GPA_PATH):
        if path == GPA_PATH:
            alloc, free = _proc(lib, "cuMemAlloc", [P_U64, SZ]), _proc(lib, "cuMemFree", [U64])
        else:
            alloc, free = _fn(lib, "cuMemAlloc_v2", [P_U64, SZ]), _fn(lib, "cuMemFree_v2", [U64])

        def one():
            p = U64()
            rc = alloc(ctypes.byref(p), step)
            return path, rc, step, lambda: free(p.value)
        return step, one
    if path == "cuMemAllocPitch_v2":
        alloc = _fn(lib, "cuMemAllocPitch_v2", [P_U64, P_SZ, SZ, SZ, ctypes.c_uint])
        free = _fn(lib, "cuMemFree_v2", [U64])
        rows = max(1, step // PITCH_WIDTH)

        def one():
            p, pitch = U64(), SZ()
            rc = alloc(ctypes.byref(p), ctypes.byref(pitch), PITCH_WIDTH, rows, 4)
            return ("cuMemAllocPitch_v2", rc, (pitch.value or PITCH_WIDTH) * rows,
                    lambda: free(p.value))
        return rows * PITCH_WIDTH, one
    if path == "cuMemAllocManaged":
        alloc = _fn(lib, "cuMemAllocManaged", [P_U64, SZ, ctypes.c_uint])
        free = _fn(lib, "cuMemFree_v2", [U64])
        try:
            memset = _fn(lib, "cuMemsetD8_v2", [U64, ctypes.c_ubyte, SZ])
        except Absent:
            memset = None

        def one():
            p = U64()
            rc = alloc(ctypes.byref(p), step, CU_MEM_ATTACH_GLOBAL)
            if rc == 0 and memset is not None:
                touched = memset(p.value, 0, step)
                if touched != 0:
                    free(p.value)
                    return "cuMemsetD8_v2", touched, step, None
            return "cuMemAllocManaged", rc, step, lambda: free(p.value)
        return step, one
    if path == "cuMemAllocAsync":
        alloc = _fn(lib, "cuMemAllocAsync", [P_U64, SZ, VP])
        free = _fn(lib, "cuMemFreeAsync", [U64, VP])

        def one():
            p = U64()
            rc = alloc(ctypes.byref(p), step, None)
            return "cuMemAllocAsync", rc, step, lambda: free(p.value, None)
        return step, one
    if path == "cuMemAllocFromPoolAsync":
        create = _fn(lib, "cuMemPoolCreate", [ctypes.POINTER(VP), ctypes.POINTER(CUmemPoolProps)])
        alloc = _fn(lib, "cuMemAllocFromPoolAsync", [P_U64, SZ, VP, VP])
        free = _fn(lib, "cuMemFreeAsync", [U64, VP])
        props = CUmemPoolProps(allocType=CU_MEM_ALLOCATION_TYPE_PINNED,
                               location=CUmemLocation(CU_MEM_LOCATION_TYPE_DEVICE, device))
        pool = VP()
        rc = create(ctypes.byref(pool), ctypes.byref(props))
        if rc != 0:
            return step, lambda: ("cuMemPoolCreate", rc, step, None)

        def one():
            p = U64()
            rc = alloc(ctypes.byref(p), step, pool, None)
            return "cuMemAllocFromPoolAsync", rc, step, lambda: free(p.value, None)
        return step, one
    if path == "cuMemCreate":
        return _vmm_allocator(lib, device, step)
    raise ValueError(f"unknown memory path {path!r}")


def _vmm_allocator(lib, device: int, step: int):
    gran = _fn(lib, "cuMemGetAllocationGranularity",
               [P_SZ, ctypes.POINTER(CUmemAllocationProp), ctypes.c_int])
    create = _fn(lib, "cuMemCreate", [P_U64, SZ, ctypes.POINTER(CUmemAllocationProp), U64])
    release = _fn(lib, "cuMemRelease", [U64])
    reserve = _fn(lib, "cuMemAddressReserve", [P_U64, SZ, SZ, U64, U64])
    addr_free = _fn(lib, "cuMemAddressFree", [U64, SZ])
    map_ = _fn(lib, "cuMemMap", [U64, SZ, SZ, U64, U64])
    unmap = _fn(lib, "cuMemUnmap", [U64, SZ])
    access = _fn(lib, "cuMemSetAccess", [U64, SZ, ctypes.POINTER(CUmemAccessDesc), SZ])
    loc = CUmemLocation(CU_MEM_LOCATION_TYPE_DEVICE, device)
    prop = CUmemAllocationProp(type=CU_MEM_ALLOCATION_TYPE_PINNED, location=loc)
    desc = CUmemAccessDesc(location=loc, flags=CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
    g = SZ()
    rc = gran(ctypes.byref(g), ctypes.byref(prop), 0)
    if rc != 0:
        return step, lambda: ("cuMemGetAllocationGranularity", rc, step, None)
    size = -(-step // g.value) * g.value if g.value else step

    def one():
        h, va = U64(), U64()
        rc = create(ctypes.byref(h), size, ctypes.byref(prop), 0)
        if rc != 0:
            return "cuMemCreate", rc, size, None
        undo = [lambda: release(h.value)]
        for call, fn, args in (("cuMemAddressReserve", reserve,
                                (ctypes.byref(va), size, 0, 0, 0)),
                               ("cuMemMap", map_, None), ("cuMemSetAccess", access, None)):
            if call == "cuMemMap":
                args = (va.value, size, 0, h.value, 0)
            elif call == "cuMemSetAccess":
                args = (va.value, size, ctypes.byref(desc), 1)
            rc = fn(*args)
            if rc != 0:
                for u in reversed(undo):
                    u()
                return call, rc, size, None
            if call == "cuMemAddressReserve":
                undo.append(lambda: addr_free(va.value, size))
            elif call == "cuMemMap":
                undo.append(lambda: unmap(va.value, size))

        def release_all():
            rcs = [u() for u in reversed(undo)]
            return next((r for r in rcs if r), 0)
        return "cuMemCreate", 0, size, release_all
    return size, one


def probe_memory_path(lib, path: str, device: int, step: int, stop_at: int,
                      sync: Callable[[], int]) -> dict:
    """Allocate through `path` in steps until refused or `stop_at` bytes are held, then free."""
    out: dict = {"probe": "memory", "path": path, "step": step, "stop_at": stop_at}
    try:
        size, one = _allocator(lib, path, device, step)
    except Absent as exc:
        return {**out, "supported": False, "absent": str(exc), "allocated": 0,
                "allocations": 0, "refused": False, "rc": None}
    held: list[Callable[[], int]] = []
    total, rc, call = 0, 0, path
    try:
        while total + size <= stop_at:
            call, rc, got, release = one()
            if rc != 0:
                break
            held.append(release)
            total += got
    finally:
        free_errors = [r for r in (release() for release in held) if r]
        sync()
    supported = not (rc == CUDA_ERROR_NOT_SUPPORTED and not held)
    return {**out, "step": size, "supported": supported, "allocated": total,
            "allocations": len(held), "refused": rc != 0, "rc": rc, "call": call,
            "free_errors": len(free_errors),
            "free_rc": free_errors[0] if free_errors else 0}


def probe_cublas(step: int, stop_at: int, fill: bool) -> dict:
    """The memory cuBLAS takes for a GEMM's workspace. Without `fill`: how much device memory
    the first GEMM of a fresh handle took (cudaMemGetInfo before and after; bare, that is the
    real figure). With `fill`: memory is first filled through cudaMalloc until refused, in
    halving steps so that less than 1 MiB stays free under the limit, and only then does the
    GEMM make its handle and workspace; the limit holds if that fails for want of memory."""
    out: dict = {"probe": "memory", "path": CUBLAS_PATH, "step": step, "stop_at": stop_at,
                 "fill": fill}
    try:
        import cupy as cp   # optional: the workspace path exists only where CuPy is
    except Exception as exc:
        return {**out, "supported": False, "absent": f"CuPy not importable: {exc}",
                "allocated": 0, "allocations": 0, "refused": False, "rc": None}
    n = 2048
    a = cp.ones((n, n), dtype=cp.float32)
    b = cp.ones((n, n), dtype=cp.float32)
    c = cp.empty((n, n), dtype=cp.float32)
    cp.cuda.Device().synchronize()
    held, total, fill_error = [], 0, None
    if fill:
        chunk = step
        while chunk >= 1 << 20 and total + chunk <= stop_at:
            try:
                held.append(cp.cuda.Memory(chunk))
                total += chunk
            except (cp.cuda.memory.OutOfMemoryError, cp.cuda.runtime.CUDARuntimeError) as exc:
                fill_error = fill_error or f"{type(exc).__name__}: {exc}"
                chunk //= 2
    free_before = cp.cuda.runtime.memGetInfo()[0]
    try:
        cp.matmul(a, b, out=c)
        cp.cuda.Device().synchronize()
        gemm_error = None
        ok = bool(c[0, 0] == n)
    except Exception as exc:   # cuBLAS or CUDA: the GEMM could not get its memory
        gemm_error, ok = f"{type(exc).__name__}: {exc}", False
    free_after = cp.cuda.runtime.memGetInfo()[0]
    del held
    return {**out, "supported": True, "allocated": total, "allocations": 0,
            "fill_refused": fill_error is not None, "fill_error": fill_error,
            "refused": gemm_error is not None, "rc": None, "call": "cuBLAS GEMM",
            "gemm_error": gemm_error, "gemm_correct": ok,
            "workspace_bytes": max(0, free_before - free_after)}
