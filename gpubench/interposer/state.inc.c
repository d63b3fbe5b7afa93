/* The library's global state in one block: the wrapper slots, the record of calls, the
 * settings (read at load by settings.inc.c) and what the delay and the caps did; only the
 * two tables that live beside their code are elsewhere (the names asked for, symbols.inc.c;
 * the memory cap's allocations, caps.inc.c). One block, in this order, so that the data
 * layout (which variables share a cache line, hot counters included) stays the one the
 * self-test was measured with.
 * Part of interpose.c's single translation unit: #included there, in an order that matters,
 * never compiled alone (see the note above the #includes in interpose.c). */

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
/* after the block above, so that its layout stays the measured one */
static long long g_base_wait_ns;             /* with slots: every delayed call's wait first */
static atomic_ullong g_cat_off_waited[NCAT];  /* off-slot calls that waited the base */
static atomic_ullong g_cat_off_wait_ns[NCAT];
