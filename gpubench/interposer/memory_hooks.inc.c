/* The memory cap on the allocation paths besides cuMemAlloc/cuMemAllocAsync (wrappers.inc.c):
 * pitched, managed, from a pool made with cuMemPoolCreate, and virtual memory management
 * (cuMemCreate, given back by cuMemRelease; the mappings take no memory of their own). A
 * reference proxy holds its limit on every path a framework allocates with; the checks
 * probe each one. Then the table of every wrapper, which resolve.inc.c hands out.
 * Part of interpose.c's single translation unit: #included there, in an order that matters,
 * never compiled alone (see the note above the #includes in interpose.c). These wrappers move
 * GCC's unit-wide inlining budget: with them, the delay is inlined into fewer of the copy and
 * cuLaunchKernelEx wrappers' slots than before (`nm -S` of the library shows which); every
 * such wrapper still pays the same call whether the delay is on or off. */

/* VMM handles share the cap's table with device pointers: the top bit, never set in a user
 * address on x86-64 or aarch64, keeps the two apart. */
#define HANDLE_KEY(h) ((CUdeviceptr)(h) | (1ULL << 63))

/* Reserve `size` under the cap, make the real call, account what it really took (`taken`:
 * a pitched allocation's size is known only after it). */
static CUresult mem_done(CUresult rc, CUdeviceptr *key, size_t size, size_t taken) {
    if (rc == CUDA_SUCCESS && taken != size)
        atomic_fetch_add(&g_mem_used, (unsigned long long)taken - size);   /* mod 2^64 */
    mem_commit(rc, rc == CUDA_SUCCESS ? key : NULL, rc == CUDA_SUCCESS ? taken : size);
    return rc;
}
#define CAPPED(size, key, call, taken)                                                         \
    if (!g_mem_limit) return call;                                                             \
    if (!mem_reserve(size)) return CUDA_ERROR_OUT_OF_MEMORY;                                   \
    CUresult rc = call;                                                                        \
    return mem_done(rc, key, size, rc == CUDA_SUCCESS ? (taken) : (size))

#define DEFINE_MEM_WRAPPERS(S)                                                                 \
static CUresult w_alloc_pitch_##S(CUdeviceptr *p, size_t *pitch, size_t w, size_t h,           \
                                  unsigned elem) {                                             \
    REAL(pfn_alloc_pitch, K_ALLOC_PITCH, S);                                                   \
    before_call(K_ALLOC_PITCH, &g_slots[K_ALLOC_PITCH][S]);                                    \
    size_t guess = ((w + 511) & ~(size_t)511) * h;  /* the pitch is known only after */        \
    CAPPED(guess, p, real(p, pitch, w, h, elem), (pitch ? *pitch : 0) * h);                    \
}                                                                                              \
static CUresult w_alloc_managed_##S(CUdeviceptr *p, size_t n, unsigned flags) {                \
    REAL(pfn_alloc_managed, K_ALLOC_MANAGED, S);                                               \
    before_call(K_ALLOC_MANAGED, &g_slots[K_ALLOC_MANAGED][S]);                                \
    CAPPED(n, p, real(p, n, flags), n);                                                        \
}                                                                                              \
static CUresult w_alloc_pool_##S(CUdeviceptr *p, size_t n, CUmemoryPool pool, CUstream st) {   \
    REAL(pfn_alloc_pool, K_ALLOC_POOL, S);                                                     \
    before_call(K_ALLOC_POOL, &g_slots[K_ALLOC_POOL][S]);                                      \
    CAPPED(n, p, real(p, n, pool, st), n);                                                     \
}                                                                                              \
static CUresult w_mem_create_##S(CUmemGenericAllocationHandle *h, size_t n,                    \
                                 const CUmemAllocProp *prop, unsigned long long flags) {       \
    REAL(pfn_mem_create, K_MEM_CREATE, S);                                                     \
    before_call(K_MEM_CREATE, &g_slots[K_MEM_CREATE][S]);                                      \
    if (prop && prop->location_type != CU_MEM_LOCATION_TYPE_DEVICE)                            \
        return real(h, n, prop, flags);             /* host memory: not the device's */        \
    if (!g_mem_limit) return real(h, n, prop, flags);                                          \
    if (!mem_reserve(n)) return CUDA_ERROR_OUT_OF_MEMORY;                                      \
    CUresult rc = real(h, n, prop, flags);                                                     \
    CUdeviceptr key = rc == CUDA_SUCCESS ? HANDLE_KEY(*h) : 0;                                 \
    return mem_done(rc, &key, n, n);                                                           \
}                                                                                              \
static CUresult w_mem_release_##S(CUmemGenericAllocationHandle h) {                            \
    REAL(pfn_mem_release, K_MEM_RELEASE, S);                                                   \
    before_call(K_MEM_RELEASE, &g_slots[K_MEM_RELEASE][S]);                                    \
    CUresult rc = real(h);                                                                     \
    if (g_mem_limit && rc == CUDA_SUCCESS) mem_release(HANDLE_KEY(h));                         \
    return rc;                                                                                 \
}

DEFINE_MEM_WRAPPERS(0)
DEFINE_MEM_WRAPPERS(1)
DEFINE_MEM_WRAPPERS(2)
DEFINE_MEM_WRAPPERS(3)
DEFINE_MEM_WRAPPERS(4)
DEFINE_MEM_WRAPPERS(5)
DEFINE_MEM_WRAPPERS(6)   /* PLT_SLOT */

#define ROW(S) {(void *)w_launch_##S, (void *)w_launch_ex_##S, (void *)w_launch_coop_##S,      \
                (void *)w_htod_##S, (void *)w_dtoh_##S, (void *)w_dtod_##S,                    \
                (void *)w_htod_async_##S, (void *)w_dtoh_async_##S, (void *)w_dtod_async_##S,  \
                (void *)w_memcpy_##S, (void *)w_memcpy_async_##S,                              \
                (void *)w_alloc_##S, (void *)w_free_##S, (void *)w_alloc_async_##S,            \
                (void *)w_free_async_##S, (void *)w_meminfo_##S,                               \
                (void *)w_stream_sync_##S, (void *)w_ctx_sync_##S, (void *)w_event_sync_##S,   \
                (void *)w_gpa1_##S, (void *)w_gpa2_##S,                                        \
                (void *)w_alloc_pitch_##S, (void *)w_alloc_managed_##S,                        \
                (void *)w_alloc_pool_##S, (void *)w_mem_create_##S, (void *)w_mem_release_##S}
static void *const WRAPPERS[NSLOTS + 1][NKINDS] = {ROW(0), ROW(1), ROW(2), ROW(3), ROW(4),
                                                    ROW(5), ROW(6)};
