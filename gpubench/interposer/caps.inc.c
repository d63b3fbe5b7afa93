/* The caps a GPU proxy enforces: device memory (an allocation past the cap fails with
 * CUDA_ERROR_OUT_OF_MEMORY, cuMemGetInfo shows the cap) and the kernel launch rate.
 * Part of interpose.c's single translation unit: #included there, in an order that matters,
 * never compiled alone (see the note above the #includes in interpose.c). */

/* The clock of the rate cap and the delays (delay.inc.c): CLOCK_MONOTONIC, in ns. */
static inline long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
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

/* cuMemGetInfo under a memory cap: the cap is the total, what it leaves is free. */
static void clamp_meminfo(size_t *fr, size_t *tot) {
    unsigned long long used = atomic_load(&g_mem_used);
    unsigned long long left = used < g_mem_limit ? g_mem_limit - used : 0;
    if (tot && *tot > g_mem_limit) *tot = (size_t)g_mem_limit;
    if (fr && *fr > left) *fr = (size_t)left;
}
