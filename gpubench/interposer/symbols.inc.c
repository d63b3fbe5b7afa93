/* What symbol resolution stands on: the real dlsym (ours replaces it), whether a pointer
 * is one of our own functions, and the record of every CUDA name a program asked for
 * (diagnostics in the report).
 * Part of interpose.c's single translation unit: #included there, in an order that matters,
 * never compiled alone (see the note above the #includes in interpose.c). */

static void init_real_dlsym(void) {
    static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17",
                                           "GLIBC_2.0", "GLIBC_2.4", NULL};
    for (int i = 0; versions[i] && !real_dlsym; i++) {
        void *p = dlvsym(RTLD_NEXT, "dlsym", versions[i]);
        if (p && p != (void *)&dlsym) real_dlsym = (void *(*)(void *, const char *))p;
    }
}

static int is_ours(void *p) {
    Dl_info info;
    return p && g_self_base && dladdr(p, &info) && info.dli_fbase == g_self_base;
}

/* ---- the record of every CUDA name asked for (diagnostics in the report) ---- */
#define MAX_SEEN 2048
struct seen { char *name; unsigned via; unsigned long long n; };  /* via: 1 dlsym, 2 gpa */
static struct seen g_seen[MAX_SEEN];
static int g_nseen;
static pthread_mutex_t g_seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_seen(const char *name, unsigned via) {
    if (!name || name[0] != 'c' || name[1] != 'u') return;
    atomic_store(&g_cuda_seen, 1);
    pthread_mutex_lock(&g_seen_lock);
    for (int i = 0; i < g_nseen; i++) {
        if (g_seen[i].via == via && strcmp(g_seen[i].name, name) == 0) {
            g_seen[i].n++;
            pthread_mutex_unlock(&g_seen_lock);
            return;
        }
    }
    if (g_nseen < MAX_SEEN) {
        char *copy = strdup(name);
        if (copy) g_seen[g_nseen++] = (struct seen){copy, via, 1};
    }
    pthread_mutex_unlock(&g_seen_lock);
}
