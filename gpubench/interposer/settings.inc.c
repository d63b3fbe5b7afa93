/* The settings, read from the environment once at load (the variables are listed in
 * interpose.c's header) into state.inc.c: delay per category and the slot schedule, the
 * memory and launch-rate caps, the kinds left unhooked.
 * Part of interpose.c's single translation unit: #included there, in an order that matters,
 * never compiled alone (see the note above the #includes in interpose.c). */

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
    g_base_wait_ns = env_ll("GPUBENCH_INTERPOSE_BASE_WAIT_NS", 0);
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
