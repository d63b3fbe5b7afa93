/* The wrappers, the hot path: the common hook (count, launch-rate cap, delay) and one
 * wrapper per (kind, slot), generated, each calling the real function its slot holds.
 * Part of interpose.c's single translation unit: #included there, in an order that matters,
 * never compiled alone (see the note above the #includes in interpose.c). */

/* The hook every wrapped call passes first: count, launch-rate cap, delay. */
static inline void before_call(int kind, struct slot *s) {
    if (g_unhooked[kind]) return;                   /* a PLT call of an unhooked function */
    atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_kind_calls[kind], 1, memory_order_relaxed);
    int cat = KINDS[kind].category;
    if (cat == CAT_LAUNCH && g_rate > 0) rate_wait();
    if (cat != CAT_SYNC) apply_delay(kind, cat);
}

static void *plt_real(int kind);                                    /* resolve.inc.c */

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

static void *wrap_proc(const char *sym, void *real, int version);   /* resolve.inc.c */

DEFINE_WRAPPERS(0)
DEFINE_WRAPPERS(1)
DEFINE_WRAPPERS(2)
DEFINE_WRAPPERS(3)
DEFINE_WRAPPERS(4)
DEFINE_WRAPPERS(5)
DEFINE_WRAPPERS(6)   /* PLT_SLOT */
