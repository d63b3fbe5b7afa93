/* A fake libcuda.so.1 for the interposer tests: the entry points the interposer
 * wraps, each counting how often it was really reached. No GPU involved. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef unsigned long long cuuint64_t;

static unsigned long long n_launch, n_launch_ex, n_htod, n_dtoh, n_alloc, n_free, n_gpa1, n_gpa2,
    n_memcpy_async;
static CUdeviceptr next_ptr = 0x100000000ULL;
static unsigned long long in_use;

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
    *p = next_ptr;
    next_ptr += (n + 0xfff) & ~0xfffULL;
    in_use += n;
    return 0;
}
CUresult cuMemFree_v2(CUdeviceptr p) { (void)p; n_free++; return 0; }
CUresult cuMemGetInfo_v2(size_t *fr, size_t *tot) { *fr = (size_t)1 << 40; *tot = (size_t)1 << 40; return 0; }

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
