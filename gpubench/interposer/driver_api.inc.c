/* The driver API as the interposer sees it: the few CUDA types it needs and the table of
 * wrapped entry points (kinds), with their categories and the names they go by.
 * Part of interpose.c's single translation unit: #included there, in an order that matters,
 * never compiled alone (see the note above the #includes in interpose.c). */

/* ---- CUDA driver types, declared here (no cuda.h on the build machine) ---- */
typedef int CUresult;
typedef unsigned long long CUdeviceptr;          /* CUdeviceptr_v2 on 64-bit */
typedef void *CUfunction;
typedef void *CUstream;
typedef void *CUcontext;
typedef unsigned long long cuuint64_t;
typedef int CUdriverProcAddressQueryResult;
typedef struct CUlaunchConfig_st CUlaunchConfig;  /* opaque: only passed through */
typedef void *CUmemoryPool;
typedef unsigned long long CUmemGenericAllocationHandle;
/* The head of CUmemAllocationProp: only where the memory lives is read. */
typedef struct { int type, requested_handle_types, location_type, location_id; } CUmemAllocProp;
#define CU_MEM_LOCATION_TYPE_DEVICE 1
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
typedef CUresult (*pfn_alloc_pitch)(CUdeviceptr *, size_t *, size_t, size_t, unsigned);
typedef CUresult (*pfn_alloc_managed)(CUdeviceptr *, size_t, unsigned);
typedef CUresult (*pfn_alloc_pool)(CUdeviceptr *, size_t, CUmemoryPool, CUstream);
typedef CUresult (*pfn_mem_create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocProp *,
                                   unsigned long long);
typedef CUresult (*pfn_mem_release)(CUmemGenericAllocationHandle);
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
    /* the other allocation paths under the memory cap (memory_hooks.inc.c) */
    K_ALLOC_PITCH, K_ALLOC_MANAGED, K_ALLOC_POOL, K_MEM_CREATE, K_MEM_RELEASE,
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
    [K_ALLOC_PITCH] = {"cuMemAllocPitch_v2", "cuMemAllocPitch", 3020, CAT_ALLOC},
    [K_ALLOC_MANAGED] = {"cuMemAllocManaged", "cuMemAllocManaged", 6000, CAT_ALLOC},
    [K_ALLOC_POOL] = {"cuMemAllocFromPoolAsync", "cuMemAllocFromPoolAsync", 11020, CAT_ALLOC},
    [K_MEM_CREATE] = {"cuMemCreate", "cuMemCreate", 10020, CAT_ALLOC},
    [K_MEM_RELEASE] = {"cuMemRelease", "cuMemRelease", 10020, CAT_ALLOC},
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
    {"cuMemAllocFromPoolAsync_ptsz", K_ALLOC_POOL},
    {"cuStreamSynchronize_ptsz", K_STREAM_SYNC},
    {NULL, 0},
};
