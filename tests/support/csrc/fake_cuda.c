/* A fake libcuda.so.1 for the interposer tests and the isolation checks: the entry points
 * the interposer wraps, each counting how often it was really reached, and every allocation
 * path a framework uses over one simulated device memory. No GPU involved.
 *   FAKE_CUDA_MEMORY_BYTES   the simulated memory (default 1 TiB); past it an allocation
 *                            fails with FAKE_CUDA_OOM_RC (default 2, CUDA_ERROR_OUT_OF_MEMORY)
 *   FAKE_CUDA_NOT_SUPPORTED  comma list of entry points that answer CUDA_ERROR_NOT_SUPPORTED,
 *                            as a real driver does for managed memory or VMM on some setups */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef unsigned long long cuuint64_t;

static unsigned long long n_launch, n_launch_ex, n_htod, n_dtoh, n_alloc, n_free, n_gpa1, n_gpa2,
    n_memcpy_async;
static CUdeviceptr next_ptr = 0x100000000ULL;
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_NOT_SUPPORTED 801

/* ---- the simulated device memory: what is held, by pointer (or VMM handle) ---- */
#define MAX_HELD 65536
static struct { unsigned long long key, size; } held[MAX_HELD];
static int n_held;
static unsigned long long in_use;

static unsigned long long capacity(void) {
    const char *s = getenv("FAKE_CUDA_MEMORY_BYTES");
    return s && *s ? strtoull(s, NULL, 10) : 1ULL << 40;
}

static int not_supported(const char *name) {
    const char *p = getenv("FAKE_CUDA_NOT_SUPPORTED");
    size_t len = strlen(name);
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0) return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Take `size` bytes of the simulated memory; the new pointer (or handle) goes to *key. */
static CUresult take(unsigned long long *key, size_t size) {
    if (in_use + size > capacity() || n_held == MAX_HELD) {
        const char *rc = getenv("FAKE_CUDA_OOM_RC");
        return rc && *rc ? atoi(rc) : 2;
    }
    *key = next_ptr;
    next_ptr += (size + 0xfff) & ~0xfffULL;
    held[n_held].key = *key;
    held[n_held].size = size;
    n_held++;
    in_use += size;
    return 0;
}

static CUresult give_back(unsigned long long key) {
    for (int i = 0; i < n_held; i++)
        if (held[i].key == key) {
            in_use -= held[i].size;
            held[i] = held[--n_held];
            return 0;
        }
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuInit(unsigned flags) { (void)flags; return 0; }
CUresult cuDeviceGet(int *dev, int ordinal) { *dev = ordinal; return 0; }
CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) { (void)dev; *ctx = (void *)0x1234; return 0; }
CUresult cuCtxSetCurrent(void *ctx) { (void)ctx; return 0; }
CUresult cuCtxSynchronize(void) { return 0; }
CUresult cuStreamSynchronize(void *stream) { (void)stream; return 0; }
CUresult cuEventSynchronize(void *event) { (void)event; return 0; }
CUresult cuModuleLoadData(void **mod, const void *image) { (void)image; *mod = (void *)0x5678; return 0; }
CUresult cuModuleGetFunction(void **f, void *mod, const char *name) { (void)mod; (void)name; *f = (void *)0x9abc; return 0; }
CUresult cuLaunchKernel(void *f, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e,
                        unsigned g, unsigned shm, void *st, void **pa, void **ex) {
    (void)f; (void)a; (void)b; (void)c; (void)d; (void)e; (void)g; (void)shm; (void)st;
    (void)pa; (void)ex;
    n_launch++;
    return 0;
}
CUresult cuLaunchKernel_ptsz(void *f, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e,
                             unsigned g, unsigned shm, void *st, void **pa, void **ex) {
    return cuLaunchKernel(f, a, b, c, d, e, g, shm, st, pa, ex);
}
CUresult cuLaunchKernelEx(const void *cfg, void *f, void **pa, void **ex) {
    (void)cfg; (void)f; (void)pa; (void)ex;
    n_launch_ex++;
    return 0;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *h, size_t n) { (void)d; (void)h; (void)n; n_htod++; return 0; }
CUresult cuMemcpyDtoH_v2(void *h, CUdeviceptr d, size_t n) { (void)d; (void)h; (void)n; n_dtoh++; return 0; }
CUresult cuMemcpyAsync(CUdeviceptr a, CUdeviceptr b, size_t n, void *s) { (void)a; (void)b; (void)n; (void)s; n_memcpy_async++; return 0; }
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
    n_alloc++;
    return take(p, n);
}
CUresult cuMemFree_v2(CUdeviceptr p) { n_free++; give_back(p); return 0; }
CUresult cuMemGetInfo_v2(size_t *fr, size_t *tot) {
    *tot = (size_t)capacity();
    *fr = (size_t)(capacity() - in_use);
    return 0;
}

/* ---- the other allocation paths, each over the same simulated memory ---- */
#define GUARD(name) if (not_supported(name)) return CUDA_ERROR_NOT_SUPPORTED
CUresult cuMemAllocPitch_v2(CUdeviceptr *p, size_t *pitch, size_t width, size_t height,
                            unsigned elem) {
    GUARD("cuMemAllocPitch_v2");
    if (elem != 4 && elem != 8 && elem != 16) return CUDA_ERROR_INVALID_VALUE;
    *pitch = (width + 511) & ~(size_t)511;
    return take(p, *pitch * height);
}
CUresult cuMemAllocManaged(CUdeviceptr *p, size_t n, unsigned flags) {
    (void)flags;
    GUARD("cuMemAllocManaged");
    return take(p, n);
}
CUresult cuMemsetD8_v2(CUdeviceptr p, unsigned char v, size_t n) { (void)p; (void)v; (void)n; return 0; }
CUresult cuMemAllocAsync(CUdeviceptr *p, size_t n, void *stream) {
    (void)stream;
    GUARD("cuMemAllocAsync");
    return take(p, n);
}
CUresult cuMemFreeAsync(CUdeviceptr p, void *stream) { (void)stream; return give_back(p); }
static unsigned long long n_pools;
CUresult cuMemPoolCreate(void **pool, const void *props) {
    (void)props;
    GUARD("cuMemPoolCreate");
    *pool = (void *)(uintptr_t)(0x700000 + ++n_pools);
    return 0;
}
CUresult cuMemPoolDestroy(void *pool) { (void)pool; return 0; }
CUresult cuMemAllocFromPoolAsync(CUdeviceptr *p, size_t n, void *pool, void *stream) {
    (void)stream;
    GUARD("cuMemAllocFromPoolAsync");
    if (!pool) return CUDA_ERROR_INVALID_VALUE;
    return take(p, n);
}
#define GRANULARITY (2u << 20)
CUresult cuMemGetAllocationGranularity(size_t *g, const void *prop, int option) {
    (void)prop; (void)option;
    GUARD("cuMemCreate");
    *g = GRANULARITY;
    return 0;
}
CUresult cuMemCreate(unsigned long long *handle, size_t n, const void *prop,
                     unsigned long long flags) {
    (void)prop; (void)flags;
    GUARD("cuMemCreate");
    if (n % GRANULARITY) return CUDA_ERROR_INVALID_VALUE;
    return take(handle, n);
}
CUresult cuMemRelease(unsigned long long handle) { return give_back(handle); }
static CUdeviceptr next_va = 0x7f0000000000ULL;
CUresult cuMemAddressReserve(CUdeviceptr *p, size_t n, size_t align, CUdeviceptr addr,
                             unsigned long long flags) {
    (void)align; (void)addr; (void)flags;
    *p = next_va;                       /* address space only: no memory is taken */
    next_va += (n + GRANULARITY - 1) / GRANULARITY * GRANULARITY;
    return 0;
}
CUresult cuMemAddressFree(CUdeviceptr p, size_t n) { (void)p; (void)n; return 0; }
CUresult cuMemMap(CUdeviceptr p, size_t n, size_t off, unsigned long long h,
                  unsigned long long flags) {
    (void)p; (void)n; (void)off; (void)flags;
    for (int i = 0; i < n_held; i++)
        if (held[i].key == h) return 0;
    return CUDA_ERROR_INVALID_VALUE;
}
CUresult cuMemUnmap(CUdeviceptr p, size_t n) { (void)p; (void)n; return 0; }
CUresult cuMemSetAccess(CUdeviceptr p, size_t n, const void *desc, size_t count) {
    (void)p; (void)n; (void)desc; (void)count;
    return 0;
}

struct entry { const char *base; void *v1; void *v2; int v2_from; };
CUresult cuGetProcAddress(const char *sym, void **pfn, int ver, cuuint64_t flags);
CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int ver, cuuint64_t flags, int *status);
static const struct entry TABLE[] = {
    {"cuLaunchKernel", (void *)cuLaunchKernel, (void *)cuLaunchKernel, 0},
    {"cuLaunchKernelEx", (void *)cuLaunchKernelEx, (void *)cuLaunchKernelEx, 0},
    {"cuMemcpyHtoD", NULL, (void *)cuMemcpyHtoD_v2, 3020},
    {"cuMemcpyDtoH", NULL, (void *)cuMemcpyDtoH_v2, 3020},
    {"cuMemcpyAsync", (void *)cuMemcpyAsync, (void *)cuMemcpyAsync, 0},
    {"cuMemAlloc", NULL, (void *)cuMemAlloc_v2, 3020},
    {"cuMemFree", NULL, (void *)cuMemFree_v2, 3020},
    {"cuMemGetInfo", NULL, (void *)cuMemGetInfo_v2, 3020},
    {"cuMemAllocAsync", (void *)cuMemAllocAsync, (void *)cuMemAllocAsync, 0},
    {"cuMemFreeAsync", (void *)cuMemFreeAsync, (void *)cuMemFreeAsync, 0},
    {"cuMemAllocPitch", NULL, (void *)cuMemAllocPitch_v2, 3020},
    {"cuMemAllocManaged", (void *)cuMemAllocManaged, (void *)cuMemAllocManaged, 0},
    {"cuMemAllocFromPoolAsync", (void *)cuMemAllocFromPoolAsync, (void *)cuMemAllocFromPoolAsync, 0},
    {"cuMemCreate", (void *)cuMemCreate, (void *)cuMemCreate, 0},
    {"cuMemRelease", (void *)cuMemRelease, (void *)cuMemRelease, 0},
    {"cuGetProcAddress", (void *)cuGetProcAddress, (void *)cuGetProcAddress_v2, 12000},
    {"cuInit", (void *)cuInit, (void *)cuInit, 0},
    {NULL, NULL, NULL, 0},
};
static CUresult lookup(const char *sym, void **pfn, int ver) {
    for (const struct entry *e = TABLE; e->base; e++)
        if (strcmp(e->base, sym) == 0) {
            *pfn = ver >= e->v2_from ? e->v2 : e->v1;
            return *pfn ? 0 : 500;
        }
    *pfn = NULL;
    return 500; /* CUDA_ERROR_NOT_FOUND */
}
CUresult cuGetProcAddress(const char *sym, void **pfn, int ver, cuuint64_t flags) {
    (void)flags; n_gpa1++;
    return lookup(sym, pfn, ver);
}
CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int ver, cuuint64_t flags, int *status) {
    (void)flags; n_gpa2++;
    CUresult rc = lookup(sym, pfn, ver);
    if (status) *status = rc == 0 ? 0 : 1;
    return rc;
}

/* Not CUDA: lets the harness see what really reached "the driver". */
unsigned long long fake_count(const char *what) {
    if (!strcmp(what, "launch")) return n_launch;
    if (!strcmp(what, "launch_ex")) return n_launch_ex;
    if (!strcmp(what, "htod")) return n_htod;
    if (!strcmp(what, "dtoh")) return n_dtoh;
    if (!strcmp(what, "alloc")) return n_alloc;
    if (!strcmp(what, "free")) return n_free;
    if (!strcmp(what, "gpa1")) return n_gpa1;
    if (!strcmp(what, "gpa2")) return n_gpa2;
    if (!strcmp(what, "memcpy_async")) return n_memcpy_async;
    return 0;
}
void *fake_address(const char *what) {
    if (!strcmp(what, "cuLaunchKernel")) return (void *)cuLaunchKernel;
    if (!strcmp(what, "cuLaunchKernelEx")) return (void *)cuLaunchKernelEx;
    if (!strcmp(what, "cuMemAlloc_v2")) return (void *)cuMemAlloc_v2;
    return NULL;
}
