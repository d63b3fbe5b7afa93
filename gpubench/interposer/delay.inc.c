/* The injected delay: a busy-wait per wrapped call, as long as its category's setting,
 * switched on and off in seeded time slots.
 * Part of interpose.c's single translation unit: #included there, in an order that matters,
 * never compiled alone (see the note above the #includes in interpose.c). */

/* ---- the on/off slot schedule ---- */
static inline unsigned long long splitmix64(unsigned long long x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Is the delay on at time t? Always, unless a slot schedule is set. Slots come in
 * pairs (2p, 2p+1), one on and one off, in the order splitmix64(p ^ seed) picks:
 * engine/cpu_delay.py slot_on() is the same function. */
static inline int delay_on(long long t) {
    if (g_slot_ns <= 0) return 1;
    unsigned long long k = (unsigned long long)(t / g_slot_ns);
    return (int)((k & 1) == (splitmix64((k >> 1) ^ g_slot_seed) & 1));
}

/* The clock read that decides on/off is also the start of the spin, and the time is
 * read again after the counters: what is reported as spent is everything an on-call
 * costs beyond an off-call (both pay the first read), so the self-test's injected
 * figure holds the clock reads too (tens of ns in a VM: 0.5 % of a 10 us launch).
 * With a slot schedule and a base wait, every call of a delayed category first waits the
 * base, on and off alike: a wait changes what follows it (work still draining after a
 * synchronise finishes meanwhile), so off-slot calls must wait long too, and the cost of
 * the delay is then what on-calls spent beyond off-calls (both are reported). */
static inline void apply_delay(int kind, int cat) {
    if (g_unhooked[kind]) return;
    long long d = g_delay_ns[cat];
    if (d <= 0) return;
    long long t0 = now_ns();
    int on = delay_on(t0);
    long long base = g_slot_ns > 0 ? g_base_wait_ns : 0;
    if (!on && base <= 0) return;
    long long end = t0 + base + (on ? d : 0), t = t0;
    while (t < end) t = now_ns();
    if (on) {
        atomic_fetch_add_explicit(&g_cat_delayed[cat], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_kind_delay_ns[kind], (unsigned long long)(now_ns() - t0),
                                  memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&g_cat_off_waited[cat], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_cat_off_wait_ns[cat], (unsigned long long)(now_ns() - t0),
                                  memory_order_relaxed);
    }
}
