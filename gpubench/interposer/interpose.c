/* gpubench interposer: an LD_PRELOAD library that sits between a program and
 * the CUDA driver (libcuda), as GPU-sharing proxies do, and
 *   - counts calls of the driver entry points the engine's workloads use,
 *   - adds a busy-wait delay per call (the self-test's injected overhead),
 *   - optionally caps device memory (cuMemAlloc beyond the cap fails with
 *     CUDA_ERROR_OUT_OF_MEMORY) and the kernel launch rate (token bucket).
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
 * No CUDA header is needed: the few types used are declared here. Built by
 * gpubench/interposer/__init__.py with: cc -shared -fPIC -O2 ... -ldl -lpthread
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

/* ---- CUDA driver types, declared here (no cuda.h on the build machine) ---- */
typedef int CUresult;
typedef unsigned long long CUdeviceptr;          /* CUdeviceptr_v2 on 64-bit */
typedef void *CUfunction;
typedef void *CUstream;
typedef void *CUcontext;
typedef unsigned long long cuuint64_t;
typedef int CUdriverProcAddressQueryResult;
typedef struct CUlaunchConfig_st CUlaunchConfig;  /* opaque: only passed through */
#define CUDA_SUCCESS 0
#define CUDA_ERROR_OUT_OF_MEMORY 2
#define CUDA_ERROR_NOT_INITIALIZED 3

typedef CUresult (*pfn_launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                               unsigned, unsigned, CUstream, void **, void **);
typedef CUresult (*pfn_launch_coop)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                                    unsigned, unsigned, unsigned, CUstream, void **);
typedef CUresult (*pfn_launch_ex)(const CUlaunchConfig *, CUfunction, void **, void **);
typedef CUresult (*pfn_htod)(CUdeviceptr, const void *, size_t);
typedef CUresult (*pfn_dtoh)(void *, CUdeviceptr, size_t);
typedef CUresult (*pfn_dtod)(CUdeviceptr, CUdeviceptr, size_t);
typedef CUresult (*pfn_htod_async)(CUdeviceptr, const void *, size_t, CUstream);
typedef CUresult (*pfn_dtoh_async)(void *, CUdeviceptr, size_t, CUstream);
typedef CUresult (*pfn_dtod_async)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
typedef CUresult (*pfn_alloc)(CUdeviceptr *, size_t);
typedef CUresult (*pfn_free)(CUdeviceptr);
typedef CUresult (*pfn_alloc_async)(CUdeviceptr *, size_t, CUstream);
typedef CUresult (*pfn_free_async)(CUdeviceptr, CUstream);
typedef CUresult (*pfn_meminfo)(size_t *, size_t *);
typedef CUresult (*pfn_stream_sync)(CUstream);
typedef CUresult (*pfn_ctx_sync)(void);
typedef CUresult (*pfn_gpa1)(const char *, void **, int, cuuint64_t);
typedef CUresult (*pfn_gpa2)(const char *, void **, int, cuuint64_t,
                             CUdriverProcAddressQueryResult *);

/* ---- what is wrapped ------------------------------------------------------ */
enum category { CAT_LAUNCH, CAT_H2D, CAT_D2H, CAT_D2D, CAT_COPY, CAT_ALLOC, CAT_SYNC, CAT_OTHER,
                NCAT };
static const char *const CAT_NAMES[NCAT] = {"launch", "h2d", "d2h", "d2d", "copy", "alloc", "sync",
                                            "other"};

enum kind {
    K_LAUNCH, K_LAUNCH_EX, K_LAUNCH_COOP,
    K_HTOD, K_DTOH, K_DTOD, K_HTOD_ASYNC, K_DTOH_ASYNC, K_DTOD_ASYNC, K_MEMCPY, K_MEMCPY_ASYNC,
    K_ALLOC, K_FREE, K_ALLOC_ASYNC, K_FREE_ASYNC, K_MEMINFO,
    K_STREAM_SYNC, K_CTX_SYNC, K_EVENT_SYNC,
    K_GPA1, K_GPA2,
    NKINDS
};

struct kind_info {
    const char *name;      /* canonical name, used in the report and for PLT export */
    const char *base;      /* name given to cuGetProcAddress */
    int min_version;       /* cuGetProcAddress cudaVersion from which `base` means this ABI */
    int category;
};

static const struct kind_info KINDS[NKINDS] = {
    [K_LAUNCH] = {"cuLaunchKernel", "cuLaunchKernel", 4000, CAT_LAUNCH},
    [K_LAUNCH_EX] = {"cuLaunchKernelEx", "cuLaunchKernelEx", 11060, CAT_LAUNCH},
    [K_LAUNCH_COOP] = {"cuLaunchCooperativeKernel", "cuLaunchCooperativeKernel", 9000, CAT_LAUNCH},
    [K_HTOD] = {"cuMemcpyHtoD_v2", "cuMemcpyHtoD", 3020, CAT_H2D},
    [K_DTOH] = {"cuMemcpyDtoH_v2", "cuMemcpyDtoH", 3020, CAT_D2H},
    [K_DTOD] = {"cuMemcpyDtoD_v2", "cuMemcpyDtoD", 3020, CAT_D2D},
    [K_HTOD_ASYNC] = {"cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync", 3020, CAT_H2D},
    [K_DTOH_ASYNC] = {"cuMemcpyDtoHAsync_v2", "cuMemcpyDtoHAsync", 3020, CAT_D2H},
    [K_DTOD_ASYNC] = {"cuMemcpyDtoDAsync_v2", "cuMemcpyDtoDAsync", 3020, CAT_D2D},
    [K_MEMCPY] = {"cuMemcpy", "cuMemcpy", 4000, CAT_COPY},
    [K_MEMCPY_ASYNC] = {"cuMemcpyAsync", "cuMemcpyAsync", 4000, CAT_COPY},
    [K_ALLOC] = {"cuMemAlloc_v2", "cuMemAlloc", 3020, CAT_ALLOC},
    [K_FREE] = {"cuMemFree_v2", "cuMemFree", 3020, CAT_ALLOC},
    [K_ALLOC_ASYNC] = {"cuMemAllocAsync", "cuMemAllocAsync", 11020, CAT_ALLOC},
    [K_FREE_ASYNC] = {"cuMemFreeAsync", "cuMemFreeAsync", 11020, CAT_ALLOC},
    [K_MEMINFO] = {"cuMemGetInfo_v2", "cuMemGetInfo", 3020, CAT_OTHER},
    [K_STREAM_SYNC] = {"cuStreamSynchronize", "cuStreamSynchronize", 2000, CAT_SYNC},
    [K_CTX_SYNC] = {"cuCtxSynchronize", "cuCtxSynchronize", 2000, CAT_SYNC},
    [K_EVENT_SYNC] = {"cuEventSynchronize", "cuEventSynchronize", 2000, CAT_SYNC},
    [K_GPA1] = {"cuGetProcAddress", "cuGetProcAddress", 11030, CAT_OTHER},
    [K_GPA2] = {"cuGetProcAddress_v2", "cuGetProcAddress", 12000, CAT_OTHER},
};

/* Names a dlsym() caller may ask for, besides the canonical ones above: the
 * per-thread default stream variants have the same ABI. */
struct alias { const char *name; int kind; };
static const struct alias DLSYM_ALIASES[] = {
    {"cuLaunchKernel_ptsz", K_LAUNCH}, {"cuLaunchKernelEx_ptsz", K_LAUNCH_EX},
    {"cuLaunchCooperativeKernel_ptsz", K_LAUNCH_COOP},
    {"cuMemcpyHtoD_v2_ptds", K_HTOD}, {"cuMemcpyDtoH_v2_ptds", K_DTOH},
    {"cuMemcpyDtoD_v2_ptds", K_DTOD}, {"cuMemcpyHtoDAsync_v2_ptsz", K_HTOD_ASYNC},
    {"cuMemcpyDtoHAsync_v2_ptsz", K_DTOH_ASYNC}, {"cuMemcpyDtoDAsync_v2_ptsz", K_DTOD_ASYNC},
    {"cuMemcpy_ptds", K_MEMCPY}, {"cuMemcpyAsync_ptsz", K_MEMCPY_ASYNC},
    {"cuMemAllocAsync_ptsz", K_ALLOC_ASYNC}, {"cuMemFreeAsync_ptsz", K_FREE_ASYNC},
    {"cuStreamSynchronize_ptsz", K_STREAM_SYNC},
    {NULL, 0},
};

/* ---- state ----------------------------------------------------------------- */
#define NSLOTS 6           /* distinct real pointers per kind; slot NSLOTS is the PLT export */
#define PLT_SLOT NSLOTS

struct slot {
    _Atomic(void *) real;
    const char *name;      /* the name it was resolved under (static string) */
    const char *via;       /* "dlsym" | "cuGetProcAddress" | "plt" */
    atomic_ullong calls;
};

static struct slot g_slots[NKINDS][NSLOTS + 1];
static atomic_ullong g_kind_calls[NKINDS];
static atomic_ullong g_kind_delay_ns[NKINDS];
static atomic_ullong g_unwrapped;            /* resolutions handed back unwrapped (slots full) */

static long long g_delay_ns[NCAT];
static long long g_slot_ns;                  /* 0: delays always on */
static unsigned long long g_slot_seed;
static atomic_ullong g_cat_delayed[NCAT];    /* calls that really were delayed */
static unsigned long long g_mem_limit;       /* 0: no cap */
static atomic_ullong g_mem_used, g_mem_peak, g_mem_refused, g_mem_allocs;
static double g_rate;                        /* launches/s; 0: no cap */
static long long g_rate_interval_ns, g_rate_tolerance_ns;
static atomic_llong g_rate_tat;              /* GCRA theoretical arrival time, ns */
static atomic_ullong g_rate_throttled, g_rate_wait_ns;
static atomic_int g_cuda_seen;               /* a CUDA name was resolved or called here */

static int g_unhooked[NKINDS];               /* GPUBENCH_INTERPOSE_UNHOOK */
static void *(*real_dlsym)(void *, const char *);
static void *g_self_base;                    /* our load address, to recognise our own symbols */

/* ---- helpers --------------------------------------------------------------- */
static inline long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static unsigned long long parse_size(const char *s) {
    if (!s || !*s) return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0) return 0;
    while (*end == ' ') end++;
    double mult = 1;
    switch (*end) {
        case 'k': case 'K': mult = 1024.0; break;
        case 'm': case 'M': mult = 1024.0 * 1024; break;
        case 'g': case 'G': mult = 1024.0 * 1024 * 1024; break;
        case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; break;
        default: break;
    }
    return (unsigned long long)(v * mult);
}

static long long env_ll(const char *name, long long fallback) {
    const char *s = getenv(name);
    if (!s || !*s) return fallback;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    return (end == s || v < 0) ? fallback : v;
}

static void init_real_dlsym(void) {
    static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17",
                                           "GLIBC_2.0", "GLIBC_2.4", NULL};
    for (int i = 0; versions[i] && !real_dlsym; i++) {
        void *p = dlvsym(RTLD_NEXT, "dlsym", versions[i]);
        if (p && p != (void *)&dlsym) real_dlsym = (void *(*)(void *, const char *))p;
    }
}

static void read_env(void) {
    long long all = env_ll("GPUBENCH_INTERPOSE_DELAY_NS", 0);
    long long launch = env_ll("GPUBENCH_INTERPOSE_LAUNCH_DELAY_NS", all);
    long long copy = env_ll("GPUBENCH_INTERPOSE_COPY_DELAY_NS", all);
    g_delay_ns[CAT_LAUNCH] = launch;
    g_delay_ns[CAT_COPY] = copy;
    g_delay_ns[CAT_D2D] = copy;
    g_delay_ns[CAT_H2D] = env_ll("GPUBENCH_INTERPOSE_H2D_DELAY_NS", copy);
    g_delay_ns[CAT_D2H] = env_ll("GPUBENCH_INTERPOSE_D2H_DELAY_NS", copy);
    g_delay_ns[CAT_ALLOC] = env_ll("GPUBENCH_INTERPOSE_ALLOC_DELAY_NS", all);
    g_delay_ns[CAT_SYNC] = env_ll("GPUBENCH_INTERPOSE_SYNC_DELAY_NS", 0);
    g_delay_ns[CAT_OTHER] = 0;
    g_slot_ns = env_ll("GPUBENCH_INTERPOSE_DELAY_SLOT_NS", 0);
    const char *seed = getenv("GPUBENCH_INTERPOSE_DELAY_SEED");
    g_slot_seed = seed && *seed ? strtoull(seed, NULL, 10) : 0;
    const char *unhook = getenv("GPUBENCH_INTERPOSE_UNHOOK");
    for (int k = 0; k < NKINDS; k++) {
        size_t len = strlen(KINDS[k].name);
        const char *p = unhook;
        g_unhooked[k] = 0;
        while (p && *p) {
            const char *end = strchr(p, ',');
            size_t n = end ? (size_t)(end - p) : strlen(p);
            if (n == len && strncmp(p, KINDS[k].name, n) == 0) g_unhooked[k] = 1;
            p = end ? end + 1 : NULL;
        }
    }
    g_mem_limit = parse_size(getenv("GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES"));
    const char *rate = getenv("GPUBENCH_INTERPOSE_LAUNCH_RATE");
    g_rate = rate && *rate ? strtod(rate, NULL) : 0.0;
    if (g_rate > 0) {
        long long burst = env_ll("GPUBENCH_INTERPOSE_LAUNCH_BURST", 1);
        if (burst < 1) burst = 1;
        g_rate_interval_ns = (long long)(1e9 / g_rate);
        if (g_rate_interval_ns < 1) g_rate_interval_ns = 1;
        g_rate_tolerance_ns = (burst - 1) * g_rate_interval_ns;
        atomic_store(&g_rate_tat, 0);
    } else {
        g_rate = 0;
    }
}

static void write_report_at_exit(void);

__attribute__((constructor)) static void gpubench_interpose_init(void) {
    if (!real_dlsym) init_real_dlsym();
    Dl_info info;
    if (dladdr((void *)&gpubench_interpose_init, &info)) g_self_base = info.dli_fbase;
    read_env();
}

static int is_ours(void *p) {
    Dl_info info;
    return p && g_self_base && dladdr(p, &info) && info.dli_fbase == g_self_base;
}

/* ---- the record of every CUDA name asked for (diagnostics in the report) ---- */
#define MAX_SEEN 2048
struct seen { char *name; unsigned via; unsigned long long n; };  /* via: 1 dlsym, 2 gpa */
static struct seen g_seen[MAX_SEEN];
static int g_nseen;
static pthread_mutex_t g_seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_seen(const char *name, unsigned via) {
    if (!name || name[0] != 'c' || name[1] != 'u') return;
    atomic_store(&g_cuda_seen, 1);
    pthread_mutex_lock(&g_seen_lock);
    for (int i = 0; i < g_nseen; i++) {
        if (g_seen[i].via == via && strcmp(g_seen[i].name, name) == 0) {
            g_seen[i].n++;
            pthread_mutex_unlock(&g_seen_lock);
            return;
        }
    }
    if (g_nseen < MAX_SEEN) {
        char *copy = strdup(name);
        if (copy) g_seen[g_nseen++] = (struct seen){copy, via, 1};
    }
    pthread_mutex_unlock(&g_seen_lock);
}

/* ---- memory cap bookkeeping: device pointer -> size, only while a cap is set ---- */
struct alloc_entry { CUdeviceptr ptr; size_t size; };
static struct alloc_entry *g_allocs;
static size_t g_alloc_cap, g_alloc_n;
static pthread_mutex_t g_alloc_lock = PTHREAD_MUTEX_INITIALIZER;
#define TOMB ((CUdeviceptr)1)

static size_t hash_ptr(CUdeviceptr p, size_t cap) {
    unsigned long long x = p;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return (size_t)(x & (cap - 1));
}

static void alloc_put_locked(CUdeviceptr p, size_t size);

static int alloc_grow_locked(void) {
    size_t old_cap = g_alloc_cap, new_cap = old_cap ? old_cap * 2 : 1024;
    struct alloc_entry *old = g_allocs, *fresh = calloc(new_cap, sizeof *fresh);
    if (!fresh) return -1;
    g_allocs = fresh; g_alloc_cap = new_cap; g_alloc_n = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].ptr && old[i].ptr != TOMB) alloc_put_locked(old[i].ptr, old[i].size);
    free(old);
    return 0;
}

static void alloc_put_locked(CUdeviceptr p, size_t size) {
    if ((g_alloc_n + 1) * 2 > g_alloc_cap && alloc_grow_locked() != 0) return;
    size_t i = hash_ptr(p, g_alloc_cap);
    while (g_allocs[i].ptr && g_allocs[i].ptr != TOMB) i = (i + 1) & (g_alloc_cap - 1);
    g_allocs[i] = (struct alloc_entry){p, size};
    g_alloc_n++;
}

static size_t alloc_take(CUdeviceptr p) {   /* returns the size, 0 if unknown */
    size_t size = 0;
    pthread_mutex_lock(&g_alloc_lock);
    if (g_alloc_cap) {
        size_t i = hash_ptr(p, g_alloc_cap);
        for (size_t probes = 0; probes < g_alloc_cap && g_allocs[i].ptr; probes++) {
            if (g_allocs[i].ptr == p) {
                size = g_allocs[i].size;
                g_allocs[i].ptr = TOMB;
                break;
            }
            i = (i + 1) & (g_alloc_cap - 1);
        }
    }
    pthread_mutex_unlock(&g_alloc_lock);
    return size;
}

/* Reserve `size` bytes under the cap; 0 when that would pass the cap. */
static int mem_reserve(size_t size) {
    unsigned long long used = atomic_load(&g_mem_used);
    do {
        if (used + size > g_mem_limit || used + size < used) {
            atomic_fetch_add(&g_mem_refused, 1);
            return 0;
        }
    } while (!atomic_compare_exchange_weak(&g_mem_used, &used, used + size));
    unsigned long long now = used + size, peak = atomic_load(&g_mem_peak);
    while (now > peak && !atomic_compare_exchange_weak(&g_mem_peak, &peak, now)) {}
    return 1;
}

static void mem_commit(CUresult rc, CUdeviceptr *dptr, size_t size) {
    if (rc == CUDA_SUCCESS && dptr) {
        atomic_fetch_add(&g_mem_allocs, 1);
        pthread_mutex_lock(&g_alloc_lock);
        alloc_put_locked(*dptr, size);
        pthread_mutex_unlock(&g_alloc_lock);
    } else {
        atomic_fetch_sub(&g_mem_used, size);
    }
}

static void mem_release(CUdeviceptr p) {
    size_t size = alloc_take(p);
    if (size) atomic_fetch_sub(&g_mem_used, size);
}

/* ---- launch rate cap: GCRA (a token bucket in one atomic) ---- */
static void rate_wait(void) {
    long long now = now_ns(), tat = atomic_load(&g_rate_tat), start;
    for (;;) {
        start = tat > now ? tat : now;      /* this launch's slot */
        if (atomic_compare_exchange_weak(&g_rate_tat, &tat, start + g_rate_interval_ns)) break;
    }
    long long allowed_at = start - g_rate_tolerance_ns;
    if (allowed_at <= now) return;
    atomic_fetch_add(&g_rate_throttled, 1);
    long long wait = allowed_at - now;
    atomic_fetch_add(&g_rate_wait_ns, (unsigned long long)wait);
    if (wait > 200000) {                     /* sleep most of a long wait, spin the rest */
        long long sleep_until = allowed_at - 100000;
        struct timespec ts = {sleep_until / 1000000000LL, sleep_until % 1000000000LL};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
    }
    while (now_ns() < allowed_at) {}
}

/* ---- the delay schedule and the common hook of every wrapper ---- */
static inline unsigned long long splitmix64(unsigned long long x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Is the delay on at time t? Always, unless a slot schedule is set. Slots come in
 * pairs (2p, 2p+1), one on and one off, in the order splitmix64(p ^ seed) picks:
 * gpubench/selftest.py slot_on() is the same function. */
static inline int delay_on(long long t) {
    if (g_slot_ns <= 0) return 1;
    unsigned long long k = (unsigned long long)(t / g_slot_ns);
    return (int)((k & 1) == (splitmix64((k >> 1) ^ g_slot_seed) & 1));
}

/* The clock read that decides on/off is also the start of the spin, and the time is
 * read again after the counters: what is reported as spent is everything an on-call
 * costs beyond an off-call (both pay the first read), so the self-test's injected
 * figure holds the clock reads too (tens of ns in a VM: 0.5 % of a 10 us launch). */
static inline void apply_delay(int kind, int cat) {
    if (g_unhooked[kind]) return;
    long long d = g_delay_ns[cat];
    if (d <= 0) return;
    long long t0 = now_ns();
    if (!delay_on(t0)) return;
    long long end = t0 + d, t = t0;
    while (t < end) t = now_ns();
    atomic_fetch_add_explicit(&g_cat_delayed[cat], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_kind_delay_ns[kind], (unsigned long long)(now_ns() - t0),
                              memory_order_relaxed);
}

static inline void before_call(int kind, struct slot *s) {
    if (g_unhooked[kind]) return;                   /* a PLT call of an unhooked function */
    atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_kind_calls[kind], 1, memory_order_relaxed);
    int cat = KINDS[kind].category;
    if (cat == CAT_LAUNCH && g_rate > 0) rate_wait();
    if (cat != CAT_SYNC) apply_delay(kind, cat);
}

static void *plt_real(int kind);

static inline void *slot_real(int kind, int idx) {
    void *p = atomic_load_explicit(&g_slots[kind][idx].real, memory_order_acquire);
    if (!p && idx == PLT_SLOT) p = plt_real(kind);
    return p;
}

#define REAL(T, kind, idx) T real = (T)slot_real(kind, idx); \
    if (!real) return CUDA_ERROR_NOT_INITIALIZED

/* One wrapper per (kind, slot), generated for slots 0..NSLOTS-1 and the PLT slot. */
#define DEFINE_WRAPPERS(S)                                                                     \
static CUresult w_launch_##S(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, \
                             unsigned by, unsigned bz, unsigned shm, CUstream st, void **pa,   \
                             void **ex) {                                                      \
    REAL(pfn_launch, K_LAUNCH, S);                                                             \
    before_call(K_LAUNCH, &g_slots[K_LAUNCH][S]);                                              \
    return real(f, gx, gy, gz, bx, by, bz, shm, st, pa, ex);                                   \
}                                                                                              \
static CUresult w_launch_coop_##S(CUfunction f, unsigned gx, unsigned gy, unsigned gz,         \
                                  unsigned bx, unsigned by, unsigned bz, unsigned shm,         \
                                  CUstream st, void **pa) {                                    \
    REAL(pfn_launch_coop, K_LAUNCH_COOP, S);                                                   \
    before_call(K_LAUNCH_COOP, &g_slots[K_LAUNCH_COOP][S]);                                    \
    return real(f, gx, gy, gz, bx, by, bz, shm, st, pa);                                       \
}                                                                                              \
static CUresult w_launch_ex_##S(const CUlaunchConfig *c, CUfunction f, void **pa, void **ex) { \
    REAL(pfn_launch_ex, K_LAUNCH_EX, S);                                                       \
    before_call(K_LAUNCH_EX, &g_slots[K_LAUNCH_EX][S]);                                        \
    return real(c, f, pa, ex);                                                                 \
}                                                                                              \
static CUresult w_htod_##S(CUdeviceptr d, const void *h, size_t n) {                           \
    REAL(pfn_htod, K_HTOD, S);                                                                 \
    before_call(K_HTOD, &g_slots[K_HTOD][S]);                                                  \
    return real(d, h, n);                                                                      \
}                                                                                              \
static CUresult w_dtoh_##S(void *h, CUdeviceptr d, size_t n) {                                 \
    REAL(pfn_dtoh, K_DTOH, S);                                                                 \
    before_call(K_DTOH, &g_slots[K_DTOH][S]);                                                  \
    return real(h, d, n);                                                                      \
}                                                                                              \
static CUresult w_dtod_##S(CUdeviceptr a, CUdeviceptr b, size_t n) {                           \
    REAL(pfn_dtod, K_DTOD, S);                                                                 \
    before_call(K_DTOD, &g_slots[K_DTOD][S]);                                                  \
    return real(a, b, n);                                                                      \
}                                                                                              \
static CUresult w_htod_async_##S(CUdeviceptr d, const void *h, size_t n, CUstream st) {        \
    REAL(pfn_htod_async, K_HTOD_ASYNC, S);                                                     \
    before_call(K_HTOD_ASYNC, &g_slots[K_HTOD_ASYNC][S]);                                      \
    return real(d, h, n, st);                                                                  \
}                                                                                              \
static CUresult w_dtoh_async_##S(void *h, CUdeviceptr d, size_t n, CUstream st) {              \
    REAL(pfn_dtoh_async, K_DTOH_ASYNC, S);                                                     \
    before_call(K_DTOH_ASYNC, &g_slots[K_DTOH_ASYNC][S]);                                      \
    return real(h, d, n, st);                                                                  \
}                                                                                              \
static CUresult w_dtod_async_##S(CUdeviceptr a, CUdeviceptr b, size_t n, CUstream st) {        \
    REAL(pfn_dtod_async, K_DTOD_ASYNC, S);                                                     \
    before_call(K_DTOD_ASYNC, &g_slots[K_DTOD_ASYNC][S]);                                      \
    return real(a, b, n, st);                                                                  \
}                                                                                              \
static CUresult w_memcpy_##S(CUdeviceptr a, CUdeviceptr b, size_t n) {                         \
    REAL(pfn_dtod, K_MEMCPY, S);                                                               \
    before_call(K_MEMCPY, &g_slots[K_MEMCPY][S]);                                              \
    return real(a, b, n);                                                                      \
}                                                                                              \
static CUresult w_memcpy_async_##S(CUdeviceptr a, CUdeviceptr b, size_t n, CUstream st) {      \
    REAL(pfn_dtod_async, K_MEMCPY_ASYNC, S);                                                   \
    before_call(K_MEMCPY_ASYNC, &g_slots[K_MEMCPY_ASYNC][S]);                                  \
    return real(a, b, n, st);                                                                  \
}                                                                                              \
static CUresult w_alloc_##S(CUdeviceptr *p, size_t n) {                                        \
    REAL(pfn_alloc, K_ALLOC, S);                                                               \
    before_call(K_ALLOC, &g_slots[K_ALLOC][S]);                                                \
    if (!g_mem_limit) return real(p, n);                                                       \
    if (!mem_reserve(n)) return CUDA_ERROR_OUT_OF_MEMORY;                                      \
    CUresult rc = real(p, n);                                                                  \
    mem_commit(rc, p, n);                                                                      \
    return rc;                                                                                 \
}                                                                                              \
static CUresult w_free_##S(CUdeviceptr p) {                                                    \
    REAL(pfn_free, K_FREE, S);                                                                 \
    before_call(K_FREE, &g_slots[K_FREE][S]);                                                  \
    CUresult rc = real(p);                                                                     \
    if (g_mem_limit && rc == CUDA_SUCCESS) mem_release(p);                                     \
    return rc;                                                                                 \
}                                                                                              \
static CUresult w_alloc_async_##S(CUdeviceptr *p, size_t n, CUstream st) {                     \
    REAL(pfn_alloc_async, K_ALLOC_ASYNC, S);                                                   \
    before_call(K_ALLOC_ASYNC, &g_slots[K_ALLOC_ASYNC][S]);                                    \
    if (!g_mem_limit) return real(p, n, st);                                                   \
    if (!mem_reserve(n)) return CUDA_ERROR_OUT_OF_MEMORY;                                      \
    CUresult rc = real(p, n, st);                                                              \
    mem_commit(rc, p, n);                                                                      \
    return rc;                                                                                 \
}                                                                                              \
static CUresult w_free_async_##S(CUdeviceptr p, CUstream st) {                                 \
    REAL(pfn_free_async, K_FREE_ASYNC, S);                                                     \
    before_call(K_FREE_ASYNC, &g_slots[K_FREE_ASYNC][S]);                                      \
    CUresult rc = real(p, st);                                                                 \
    if (g_mem_limit && rc == CUDA_SUCCESS) mem_release(p);                                     \
    return rc;                                                                                 \
}                                                                                              \
static CUresult w_meminfo_##S(size_t *fr, size_t *tot) {                                       \
    REAL(pfn_meminfo, K_MEMINFO, S);                                                           \
    atomic_fetch_add_explicit(&g_slots[K_MEMINFO][S].calls, 1, memory_order_relaxed);          \
    atomic_fetch_add_explicit(&g_kind_calls[K_MEMINFO], 1, memory_order_relaxed);              \
    CUresult rc = real(fr, tot);                                                               \
    if (rc == CUDA_SUCCESS && g_mem_limit) clamp_meminfo(fr, tot);                             \
    return rc;                                                                                 \
}                                                                                              \
static CUresult w_stream_sync_##S(CUstream st) {                                               \
    REAL(pfn_stream_sync, K_STREAM_SYNC, S);                                                   \
    before_call(K_STREAM_SYNC, &g_slots[K_STREAM_SYNC][S]);                                    \
    CUresult rc = real(st);                                                                    \
    apply_delay(K_STREAM_SYNC, CAT_SYNC);                                                      \
    return rc;                                                                                 \
}                                                                                              \
static CUresult w_ctx_sync_##S(void) {                                                         \
    REAL(pfn_ctx_sync, K_CTX_SYNC, S);                                                         \
    before_call(K_CTX_SYNC, &g_slots[K_CTX_SYNC][S]);                                          \
    CUresult rc = real();                                                                      \
    apply_delay(K_CTX_SYNC, CAT_SYNC);                                                         \
    return rc;                                                                                 \
}                                                                                              \
static CUresult w_event_sync_##S(CUstream ev) {                                                \
    REAL(pfn_stream_sync, K_EVENT_SYNC, S);                                                    \
    before_call(K_EVENT_SYNC, &g_slots[K_EVENT_SYNC][S]);                                      \
    CUresult rc = real(ev);                                                                    \
    apply_delay(K_EVENT_SYNC, CAT_SYNC);                                                       \
    return rc;                                                                                 \
}                                                                                              \
static CUresult w_gpa1_##S(const char *sym, void **pfn, int ver, cuuint64_t flags) {           \
    REAL(pfn_gpa1, K_GPA1, S);                                                                 \
    atomic_fetch_add_explicit(&g_slots[K_GPA1][S].calls, 1, memory_order_relaxed);             \
    atomic_fetch_add_explicit(&g_kind_calls[K_GPA1], 1, memory_order_relaxed);                 \
    CUresult rc = real(sym, pfn, ver, flags);                                                  \
    if (rc == CUDA_SUCCESS && pfn) *pfn = wrap_proc(sym, *pfn, ver);                           \
    return rc;                                                                                 \
}                                                                                              \
static CUresult w_gpa2_##S(const char *sym, void **pfn, int ver, cuuint64_t flags,             \
                           CUdriverProcAddressQueryResult *status) {                           \
    REAL(pfn_gpa2, K_GPA2, S);                                                                 \
    atomic_fetch_add_explicit(&g_slots[K_GPA2][S].calls, 1, memory_order_relaxed);             \
    atomic_fetch_add_explicit(&g_kind_calls[K_GPA2], 1, memory_order_relaxed);                 \
    CUresult rc = real(sym, pfn, ver, flags, status);                                          \
    if (rc == CUDA_SUCCESS && pfn) *pfn = wrap_proc(sym, *pfn, ver);                           \
    return rc;                                                                                 \
}

static void clamp_meminfo(size_t *fr, size_t *tot) {
    unsigned long long used = atomic_load(&g_mem_used);
    unsigned long long left = used < g_mem_limit ? g_mem_limit - used : 0;
    if (tot && *tot > g_mem_limit) *tot = (size_t)g_mem_limit;
    if (fr && *fr > left) *fr = (size_t)left;
}

static void *wrap_proc(const char *sym, void *real, int version);

DEFINE_WRAPPERS(0)
DEFINE_WRAPPERS(1)
DEFINE_WRAPPERS(2)
DEFINE_WRAPPERS(3)
DEFINE_WRAPPERS(4)
DEFINE_WRAPPERS(5)
DEFINE_WRAPPERS(6)   /* PLT_SLOT */

#define ROW(S) {(void *)w_launch_##S, (void *)w_launch_ex_##S, (void *)w_launch_coop_##S,        \
                (void *)w_htod_##S, (void *)w_dtoh_##S, (void *)w_dtod_##S,                      \
                (void *)w_htod_async_##S, (void *)w_dtoh_async_##S, (void *)w_dtod_async_##S,    \
                (void *)w_memcpy_##S, (void *)w_memcpy_async_##S,                                \
                (void *)w_alloc_##S, (void *)w_free_##S, (void *)w_alloc_async_##S,              \
                (void *)w_free_async_##S, (void *)w_meminfo_##S,                                 \
                (void *)w_stream_sync_##S, (void *)w_ctx_sync_##S, (void *)w_event_sync_##S,     \
                (void *)w_gpa1_##S, (void *)w_gpa2_##S}
static void *const WRAPPERS[NSLOTS + 1][NKINDS] = {ROW(0), ROW(1), ROW(2), ROW(3), ROW(4),
                                                    ROW(5), ROW(6)};

/* The wrapper for `real` (a function of `kind`), taking a free slot if it is new. */
static void *slot_wrap(int kind, void *real, const char *name, const char *via) {
    if (!real || is_ours(real) || g_unhooked[kind]) return real;
    atomic_store(&g_cuda_seen, 1);
    for (int i = 0; i < NSLOTS; i++) {
        void *cur = atomic_load(&g_slots[kind][i].real);
        if (cur == real) return WRAPPERS[i][kind];
        if (cur == NULL) {
            void *expected = NULL;
            g_slots[kind][i].name = name;
            g_slots[kind][i].via = via;
            if (atomic_compare_exchange_strong(&g_slots[kind][i].real, &expected, real))
                return WRAPPERS[i][kind];
            if (expected == real) return WRAPPERS[i][kind];
        }
    }
    atomic_fetch_add(&g_unwrapped, 1);
    return real;
}

static int dlsym_kind(const char *name, const char **canon) {
    if (!name || name[0] != 'c' || name[1] != 'u') return -1;
    for (int k = 0; k < NKINDS; k++)
        if (strcmp(name, KINDS[k].name) == 0) { *canon = KINDS[k].name; return k; }
    for (const struct alias *a = DLSYM_ALIASES; a->name; a++)
        if (strcmp(name, a->name) == 0) { *canon = a->name; return a->kind; }
    return -1;
}

/* Is `p` the function `name` of the library that holds it? */
static int is_symbol_of_its_library(void *p, const char *name) {
    Dl_info info;
    if (!p || !dladdr(p, &info) || !info.dli_fname) return 0;
    void *h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return 0;
    void *q = real_dlsym(h, name);
    dlclose(h);
    return q == p;
}

/* cuGetProcAddress answered `real` for `sym`: hand back our wrapper where we wrap it. */
static void *wrap_proc(const char *sym, void *real, int version) {
    note_seen(sym, 2);
    if (!sym || !real) return real;
    if (strcmp(sym, "cuGetProcAddress") == 0) {
        /* The v1 and v2 lookups differ in arity: tell them apart by the pointer itself. */
        int v2;
        if (is_symbol_of_its_library(real, "cuGetProcAddress_v2")) v2 = 1;
        else if (is_symbol_of_its_library(real, "cuGetProcAddress")) v2 = 0;
        else v2 = version >= 12000;
        return slot_wrap(v2 ? K_GPA2 : K_GPA1, real, v2 ? "cuGetProcAddress_v2" : "cuGetProcAddress",
                         "cuGetProcAddress");
    }
    for (int k = 0; k < NKINDS; k++) {
        if (k == K_GPA1 || k == K_GPA2) continue;
        if (strcmp(sym, KINDS[k].base) == 0) {
            if (version < KINDS[k].min_version) return real;   /* an older ABI: leave it alone */
            return slot_wrap(k, real, KINDS[k].name, "cuGetProcAddress");
        }
    }
    return real;
}

/* dlsym(RTLD_NEXT, name) as seen from `caller`: the first definition in an object
 * loaded after the caller's. Only used for CUDA names (others are tail-called). */
static void *next_after(const void *caller, const char *name) {
    Dl_info info;
    struct link_map *lm = NULL;
    if (!dladdr1(caller, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return real_dlsym(RTLD_NEXT, name);
    for (struct link_map *l = lm->l_next; l; l = l->l_next) {
        void *h = dlopen(l->l_name && l->l_name[0] ? l->l_name : NULL, RTLD_LAZY | RTLD_NOLOAD);
        if (!h) continue;
        void *p = real_dlsym(h, name);
        dlclose(h);
        struct link_map *owner = NULL;
        Dl_info pi;
        if (p && dladdr1(p, &pi, (void **)&owner, RTLD_DL_LINKMAP) && owner == l) return p;
    }
    return NULL;
}

static __attribute__((noinline)) void *dlsym_cuda(void *handle, const char *name,
                                                   const void *caller) {
    const char *canon = NULL;
    int kind = dlsym_kind(name, &canon);
    void *p = handle == RTLD_NEXT ? next_after(caller, name) : real_dlsym(handle, name);
    note_seen(name, 1);
    if (kind < 0 || !p) return p;
    if (is_ours(p)) {
        /* Our own PLT export, found through the global scope: only valid if the
         * driver is really there behind it. */
        return plt_real(kind) ? p : NULL;
    }
    return slot_wrap(kind, p, canon, "dlsym");
}

EXPORT void *dlsym(void *handle, const char *name) {
    if (__builtin_expect(real_dlsym == NULL, 0)) init_real_dlsym();
    if (name[0] != 'c' || name[1] != 'u')
        return real_dlsym(handle, name);   /* a tail call: RTLD_NEXT keeps the caller's view */
    return dlsym_cuda(handle, name, __builtin_return_address(0));
}

/* ---- PLT exports: programs linked to libcuda call these directly ---- */
static void *plt_real(int kind) {
    struct slot *s = &g_slots[kind][PLT_SLOT];
    void *p = atomic_load_explicit(&s->real, memory_order_acquire);
    if (p) return p;
    if (!real_dlsym) init_real_dlsym();
    p = real_dlsym(RTLD_NEXT, KINDS[kind].name);
    if (p && !is_ours(p)) {
        s->name = KINDS[kind].name;
        s->via = "plt";
        atomic_store_explicit(&s->real, p, memory_order_release);
        atomic_store(&g_cuda_seen, 1);
        return p;
    }
    return NULL;
}

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

/* ---- report ---- */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void expand_path(const char *pattern, char *out, size_t cap) {
    size_t o = 0;
    for (const char *p = pattern; *p && o + 1 < cap; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            int n = snprintf(out + o, cap - o, "%d", (int)getpid());
            if (n < 0) break;
            o += (size_t)n < cap - o ? (size_t)n : cap - o - 1;
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o < cap ? o : cap - 1] = 0;
}

EXPORT int gpubench_interpose_write_report(const char *path) {
    if (!path || !*path) return -1;
    char final_path[4096], tmp[4200];
    expand_path(path, final_path, sizeof final_path);
    snprintf(tmp, sizeof tmp, "%s.tmp%d", final_path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    Dl_info info;
    const char *lib = dladdr((void *)&gpubench_interpose_write_report, &info) ? info.dli_fname : "";
    fprintf(f, "{\"version\": \"%s\", \"pid\": %d, \"library\": ", GPUBENCH_INTERPOSE_VERSION,
            (int)getpid());
    json_str(f, lib);
    fprintf(f, ",\n \"delay_ns\": {");
    for (int c = 0; c < NCAT; c++) fprintf(f, "%s\"%s\": %lld", c ? ", " : "", CAT_NAMES[c], g_delay_ns[c]);
    fprintf(f, "},\n \"delay_slot_ns\": %lld, \"delay_seed\": %llu", g_slot_ns, g_slot_seed);
    fprintf(f, ",\n \"mem_limit_bytes\": %llu, \"launch_rate\": %.6g, \"launch_burst\": %lld,\n",
            g_mem_limit, g_rate,
            g_rate > 0 ? g_rate_tolerance_ns / g_rate_interval_ns + 1 : 0);
    fprintf(f, " \"counts\": {");
    for (int k = 0; k < NKINDS; k++)
        fprintf(f, "%s\"%s\": %llu", k ? ", " : "", KINDS[k].name, atomic_load(&g_kind_calls[k]));
    fprintf(f, "},\n \"categories\": {");
    unsigned long long cat_calls[NCAT] = {0}, cat_delay[NCAT] = {0};
    for (int k = 0; k < NKINDS; k++) {
        cat_calls[KINDS[k].category] += atomic_load(&g_kind_calls[k]);
        cat_delay[KINDS[k].category] += atomic_load(&g_kind_delay_ns[k]);
    }
    for (int c = 0; c < NCAT; c++)
        fprintf(f, "%s\"%s\": {\"calls\": %llu, \"delayed_calls\": %llu, \"delay_ns_total\": %llu}",
                c ? ", " : "", CAT_NAMES[c], cat_calls[c], atomic_load(&g_cat_delayed[c]),
                cat_delay[c]);
    fprintf(f, "},\n \"delay_ns_total\": {");
    for (int k = 0; k < NKINDS; k++)
        fprintf(f, "%s\"%s\": %llu", k ? ", " : "", KINDS[k].name, atomic_load(&g_kind_delay_ns[k]));
    fprintf(f, "},\n \"slots\": [");
    int first = 1;
    for (int k = 0; k < NKINDS; k++)
        for (int i = 0; i <= NSLOTS; i++) {
            struct slot *s = &g_slots[k][i];
            if (!atomic_load(&s->real)) continue;
            fprintf(f, "%s\n  {\"kind\": \"%s\", \"name\": ", first ? "" : ",", KINDS[k].name);
            json_str(f, s->name);
            fprintf(f, ", \"via\": \"%s\", \"calls\": %llu}", s->via ? s->via : "",
                    atomic_load(&s->calls));
            first = 0;
        }
    fprintf(f, "],\n \"unwrapped\": %llu,\n", atomic_load(&g_unwrapped));
    fprintf(f, " \"mem\": {\"limit\": %llu, \"used\": %llu, \"peak\": %llu, \"allocs\": %llu, "
               "\"refused\": %llu},\n", g_mem_limit, atomic_load(&g_mem_used),
            atomic_load(&g_mem_peak), atomic_load(&g_mem_allocs), atomic_load(&g_mem_refused));
    fprintf(f, " \"rate\": {\"limit\": %.6g, \"throttled\": %llu, \"wait_ns_total\": %llu},\n",
            g_rate, atomic_load(&g_rate_throttled), atomic_load(&g_rate_wait_ns));
    fprintf(f, " \"resolved\": {\"dlsym\": {");
    pthread_mutex_lock(&g_seen_lock);
    for (unsigned via = 1, n = 0; via <= 2; via++) {
        if (via == 2) { fprintf(f, "}, \"cuGetProcAddress\": {"); n = 0; }
        for (int i = 0; i < g_nseen; i++) {
            if (g_seen[i].via != via) continue;
            fprintf(f, "%s", n++ ? ", " : "");
            json_str(f, g_seen[i].name);
            fprintf(f, ": %llu", g_seen[i].n);
        }
    }
    pthread_mutex_unlock(&g_seen_lock);
    fprintf(f, "}}}\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, final_path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

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
    for (int c = 0; c < NCAT; c++) atomic_store(&g_cat_delayed[c], 0);
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

__attribute__((destructor)) static void write_report_at_exit(void) {
    const char *path = getenv("GPUBENCH_INTERPOSE_REPORT");
    /* Children of the engine (shells, nvidia-smi) inherit LD_PRELOAD: only a
     * process that touched CUDA writes, so none overwrites the engine's report. */
    if (!path || !*path || !atomic_load(&g_cuda_seen)) return;
    int rc = gpubench_interpose_write_report(path);
    const char *verbose = getenv("GPUBENCH_INTERPOSE_VERBOSE");
    if (rc != 0 || (verbose && *verbose))
        fprintf(stderr, "gpubench-interpose: %s report %s (pid %d)\n",
                rc == 0 ? "wrote" : "could not write", path, (int)getpid());
}
