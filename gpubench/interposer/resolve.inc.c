/* Symbol resolution: which wrapper a program gets for a driver function. dlsym() and
 * cuGetProcAddress(_v2) answers are swapped for wrappers (a slot per distinct real
 * pointer), RTLD_NEXT is resolved as seen from the caller, and a PLT export finds the
 * driver function behind it.
 * Part of interpose.c's single translation unit: #included there, in an order that matters,
 * never compiled alone (see the note above the #includes in interpose.c). */

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

/* The real function behind a PLT export (programs linked to libcuda call those),
 * looked up on the first call. */
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
