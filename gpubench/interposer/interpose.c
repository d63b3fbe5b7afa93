/* gpubench interposer: an LD_PRELOAD library that sits between a program and
 * the CUDA driver (libcuda), as GPU-sharing proxies do, and
 *   - counts calls of the driver entry points the engine's workloads use,
 *   - adds a busy-wait delay per call (the self-test's injected overhead),
 *   - optionally caps device memory (an allocation beyond the cap, on any path:
 *     cuMemAlloc, pitched, managed, async from the default or a created pool,
 *     cuMemCreate, fails with CUDA_ERROR_OUT_OF_MEMORY) and the kernel launch rate (token bucket).
 *
 * How calls are caught. CuPy does not link libcuda: it dlopens it and asks
 * dlsym for each entry point; the CUDA runtime asks the driver's
 * cuGetProcAddress. So this library wraps three doors:
 *   1. dlsym()                 - a wrapped name resolves to our wrapper;
 *   2. cuGetProcAddress(_v2)   - likewise, for names the runtime asks for;
 *   3. the plain symbols       - PLT interposition for programs linked to libcuda.
 * Each distinct real function pointer gets its own wrapper "slot", so the
 * legacy-stream and per-thread-stream variants (…_ptsz/_ptds) of a function
 * never share a real pointer.
 *
 * Environment (read once, at load; everything is off unless set):
 *   GPUBENCH_INTERPOSE_DELAY_NS         delay for every wrapped call
 *   GPUBENCH_INTERPOSE_LAUNCH_DELAY_NS  kernel launches (overrides the above)
 *   GPUBENCH_INTERPOSE_COPY_DELAY_NS    memory copies
 *   GPUBENCH_INTERPOSE_H2D_DELAY_NS     host-to-device copies (overrides COPY)
 *   GPUBENCH_INTERPOSE_D2H_DELAY_NS     device-to-host copies (overrides COPY)
 *   GPUBENCH_INTERPOSE_ALLOC_DELAY_NS   cuMemAlloc/cuMemFree (and Async)
 *   GPUBENCH_INTERPOSE_SYNC_DELAY_NS    AFTER cuStreamSynchronize/cuCtxSynchronize/
 *                                       cuEventSynchronize return: nothing is in flight
 *                                       then, so the delay adds fully to an op that ends
 *                                       in a synchronise (not part of DELAY_NS)
 *   GPUBENCH_INTERPOSE_DELAY_SLOT_NS    toggle every delay on/off in time slots of this
 *                                       length (CLOCK_MONOTONIC, slot k = now / length),
 *                                       in pairs: slots 2p and 2p+1 hold one on and one
 *                                       off, the on one first when splitmix64(p ^ SEED)
 *                                       is odd: paired A/B within one process, drift
 *                                       cancels pair by pair (default 0: always on)
 *   GPUBENCH_INTERPOSE_DELAY_SEED       seed of that schedule (default 0)
 *   GPUBENCH_INTERPOSE_BASE_WAIT_NS     with a slot schedule: every call of a delayed
 *                                       category waits this long first, on and off alike
 *                                       (the report gives on- and off-slot waits apart)
 *   GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES  memory cap (K/M/G suffixes, powers of 1024)
 *   GPUBENCH_INTERPOSE_LAUNCH_RATE      launches per second (cuLaunchKernel, Ex, Cooperative)
 *   GPUBENCH_INTERPOSE_LAUNCH_BURST     launches allowed back to back (default 1)
 *   GPUBENCH_INTERPOSE_UNHOOK           comma list of functions to leave alone (e.g.
 *                                       cuLaunchKernelEx): mimics a proxy that misses an
 *                                       entry point, so the checks can be seen to catch it
 *   GPUBENCH_INTERPOSE_REPORT           path of the JSON report written at exit;
 *                                       "%p" in it becomes the process id
 *   GPUBENCH_INTERPOSE_VERBOSE          a line on stderr when the report is written
 *
 * No CUDA header is needed: the few types used are declared in driver_api.inc.c. Built
 * by gpubench/interposer/__init__.py: cc -shared -fPIC -O2 ... interpose.c -ldl -lpthread
 *
 * This file holds the entry points (the load-time setup, dlsym, the PLT exports, the
 * control functions); the parts it #includes do the work.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GPUBENCH_INTERPOSE_VERSION "1"
#define EXPORT __attribute__((visibility("default")))

/* The parts are #included, not compiled as objects of their own and linked, so that the
 * library is ONE translation unit: the compiler inlines the hook (count, rate cap, delay)
 * into the generated wrappers and keeps all state file-static. The wrappers' own
 * nanoseconds per driver call are part of what the self-test measures; separate objects
 * (no LTO) would add a call to every one. The ORDER of the parts matters too: GCC's inliner
 * spends one unit-wide growth budget in an order that follows the definitions, so another
 * order inlines the delay into a different set of wrappers (compare `objdump -d` before and
 * after moving anything). Each part uses only what the parts before it define. */
#include "driver_api.inc.c"   /* CUDA types, the wrapped entry points */
#include "state.inc.c"        /* all global state: slots, counters, settings */
#include "symbols.inc.c"      /* the real dlsym, our own symbols, the names asked for */
#include "settings.inc.c"     /* the environment, read once at load */
#include "caps.inc.c"         /* the memory cap and the launch-rate cap */
#include "delay.inc.c"        /* the injected busy-wait and its on/off slot schedule */
#include "wrappers.inc.c"     /* the common hook and the generated wrappers */
#include "memory_hooks.inc.c" /* the memory cap on the other allocation paths; the wrapper table */
#include "resolve.inc.c"      /* dlsym / cuGetProcAddress / PLT: which wrapper a program gets */

__attribute__((constructor)) static void gpubench_interpose_init(void) {
    if (!real_dlsym) init_real_dlsym();
    Dl_info info;
    if (dladdr((void *)&gpubench_interpose_init, &info)) g_self_base = info.dli_fbase;
    read_env();
}

EXPORT void *dlsym(void *handle, const char *name) {
    if (__builtin_expect(real_dlsym == NULL, 0)) init_real_dlsym();
    if (name[0] != 'c' || name[1] != 'u')
        return real_dlsym(handle, name);   /* a tail call: RTLD_NEXT keeps the caller's view */
    return dlsym_cuda(handle, name, __builtin_return_address(0));
}

/* ---- PLT exports: programs linked to libcuda call these directly ---- */
EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                               unsigned by, unsigned bz, unsigned shm, CUstream st, void **pa,
                               void **ex) {
    return w_launch_6(f, gx, gy, gz, bx, by, bz, shm, st, pa, ex);
}
EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f, void **pa, void **ex) {
    return w_launch_ex_6(c, f, pa, ex);
}
EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                          unsigned bx, unsigned by, unsigned bz, unsigned shm,
                                          CUstream st, void **pa) {
    return w_launch_coop_6(f, gx, gy, gz, bx, by, bz, shm, st, pa);
}
EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *h, size_t n) { return w_htod_6(d, h, n); }
EXPORT CUresult cuMemcpyDtoH_v2(void *h, CUdeviceptr d, size_t n) { return w_dtoh_6(h, d, n); }
EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr a, CUdeviceptr b, size_t n) { return w_dtod_6(a, b, n); }
EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *h, size_t n, CUstream st) {
    return w_htod_async_6(d, h, n, st);
}
EXPORT CUresult cuMemcpyDtoHAsync_v2(void *h, CUdeviceptr d, size_t n, CUstream st) {
    return w_dtoh_async_6(h, d, n, st);
}
EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr a, CUdeviceptr b, size_t n, CUstream st) {
    return w_dtod_async_6(a, b, n, st);
}
EXPORT CUresult cuMemcpy(CUdeviceptr a, CUdeviceptr b, size_t n) { return w_memcpy_6(a, b, n); }
EXPORT CUresult cuMemcpyAsync(CUdeviceptr a, CUdeviceptr b, size_t n, CUstream st) {
    return w_memcpy_async_6(a, b, n, st);
}
EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) { return w_alloc_6(p, n); }
EXPORT CUresult cuMemFree_v2(CUdeviceptr p) { return w_free_6(p); }
EXPORT CUresult cuMemAllocAsync(CUdeviceptr *p, size_t n, CUstream st) { return w_alloc_async_6(p, n, st); }
EXPORT CUresult cuMemFreeAsync(CUdeviceptr p, CUstream st) { return w_free_async_6(p, st); }
EXPORT CUresult cuMemGetInfo_v2(size_t *fr, size_t *tot) { return w_meminfo_6(fr, tot); }
EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *p, size_t *pitch, size_t w, size_t h, unsigned e) {
    return w_alloc_pitch_6(p, pitch, w, h, e);
}
EXPORT CUresult cuMemAllocManaged(CUdeviceptr *p, size_t n, unsigned flags) {
    return w_alloc_managed_6(p, n, flags);
}
EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *p, size_t n, CUmemoryPool pool, CUstream st) {
    return w_alloc_pool_6(p, n, pool, st);
}
EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t n, const CUmemAllocProp *prop,
                            unsigned long long flags) {
    return w_mem_create_6(h, n, prop, flags);
}
EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle h) { return w_mem_release_6(h); }
EXPORT CUresult cuStreamSynchronize(CUstream st) { return w_stream_sync_6(st); }
EXPORT CUresult cuCtxSynchronize(void) { return w_ctx_sync_6(); }
EXPORT CUresult cuEventSynchronize(CUstream ev) { return w_event_sync_6(ev); }
EXPORT CUresult cuGetProcAddress(const char *sym, void **pfn, int ver, cuuint64_t flags) {
    return w_gpa1_6(sym, pfn, ver, flags);
}
EXPORT CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int ver, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *status) {
    return w_gpa2_6(sym, pfn, ver, flags, status);
}

/* ---- control: for a program that loads the library on purpose ---- */
EXPORT unsigned long long gpubench_interpose_calls(const char *kind_name) {
    for (int k = 0; k < NKINDS; k++)
        if (kind_name && strcmp(kind_name, KINDS[k].name) == 0) return atomic_load(&g_kind_calls[k]);
    return 0;
}

EXPORT void gpubench_interpose_reset(void) {
    for (int k = 0; k < NKINDS; k++) {
        atomic_store(&g_kind_calls[k], 0);
        atomic_store(&g_kind_delay_ns[k], 0);
        for (int i = 0; i <= NSLOTS; i++) atomic_store(&g_slots[k][i].calls, 0);
    }
    atomic_store(&g_rate_throttled, 0);
    atomic_store(&g_rate_wait_ns, 0);
    atomic_store(&g_mem_refused, 0);
    for (int c = 0; c < NCAT; c++) {
        atomic_store(&g_cat_delayed[c], 0);
        atomic_store(&g_cat_off_waited[c], 0);
        atomic_store(&g_cat_off_wait_ns[c], 0);
    }
}

/* Set a category's delay at run time ("launch", "h2d", "d2h", "d2d", "copy" = all copies,
 * "alloc", "all"); returns 0, or -1 for an unknown category. For in-process sweeps. */
EXPORT int gpubench_interpose_set_delay_ns(const char *category, long long ns) {
    if (!category || ns < 0) return -1;
    int all = strcmp(category, "all") == 0, copy = strcmp(category, "copy") == 0, hit = 0;
    for (int c = 0; c < NCAT; c++) {
        if (c == CAT_OTHER) continue;
        int is_copy = c == CAT_H2D || c == CAT_D2H || c == CAT_D2D || c == CAT_COPY;
        if (all || (copy && is_copy) || strcmp(category, CAT_NAMES[c]) == 0) {
            g_delay_ns[c] = ns;
            hit = 1;
        }
    }
    return hit ? 0 : -1;
}

EXPORT const char *gpubench_interpose_version(void) { return GPUBENCH_INTERPOSE_VERSION; }

/* The report comes last: it reads everything above, and placed before the entry points it
 * changes what GCC inlines (see the note above the other #includes). */
#include "report.inc.c"      /* the JSON report, written at exit */
