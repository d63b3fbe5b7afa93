/* The JSON report: settings, counts, delays spent, caps and resolutions; written at exit
 * by a process that touched CUDA, or on demand (gpubench_interpose_write_report).
 * Part of interpose.c's single translation unit: #included there, in an order that matters,
 * never compiled alone (see the note above the #includes in interpose.c). */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void expand_path(const char *pattern, char *out, size_t cap) {
    size_t o = 0;
    for (const char *p = pattern; *p && o + 1 < cap; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            int n = snprintf(out + o, cap - o, "%d", (int)getpid());
            if (n < 0) break;
            o += (size_t)n < cap - o ? (size_t)n : cap - o - 1;
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o < cap ? o : cap - 1] = 0;
}

EXPORT int gpubench_interpose_write_report(const char *path) {
    if (!path || !*path) return -1;
    char final_path[4096], tmp[4200];
    expand_path(path, final_path, sizeof final_path);
    snprintf(tmp, sizeof tmp, "%s.tmp%d", final_path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    Dl_info info;
    const char *lib = dladdr((void *)&gpubench_interpose_write_report, &info) ? info.dli_fname : "";
    fprintf(f, "{\"version\": \"%s\", \"pid\": %d, \"library\": ", GPUBENCH_INTERPOSE_VERSION,
            (int)getpid());
    json_str(f, lib);
    fprintf(f, ",\n \"delay_ns\": {");
    for (int c = 0; c < NCAT; c++) fprintf(f, "%s\"%s\": %lld", c ? ", " : "", CAT_NAMES[c], g_delay_ns[c]);
    fprintf(f, "},\n \"delay_slot_ns\": %lld, \"delay_seed\": %llu, \"base_wait_ns\": %lld",
            g_slot_ns, g_slot_seed, g_base_wait_ns);
    fprintf(f, ",\n \"mem_limit_bytes\": %llu, \"launch_rate\": %.6g, \"launch_burst\": %lld,\n",
            g_mem_limit, g_rate,
            g_rate > 0 ? g_rate_tolerance_ns / g_rate_interval_ns + 1 : 0);
    fprintf(f, " \"counts\": {");
    for (int k = 0; k < NKINDS; k++)
        fprintf(f, "%s\"%s\": %llu", k ? ", " : "", KINDS[k].name, atomic_load(&g_kind_calls[k]));
    fprintf(f, "},\n \"categories\": {");
    unsigned long long cat_calls[NCAT] = {0}, cat_delay[NCAT] = {0};
    for (int k = 0; k < NKINDS; k++) {
        cat_calls[KINDS[k].category] += atomic_load(&g_kind_calls[k]);
        cat_delay[KINDS[k].category] += atomic_load(&g_kind_delay_ns[k]);
    }
    for (int c = 0; c < NCAT; c++)
        fprintf(f, "%s\"%s\": {\"calls\": %llu, \"delayed_calls\": %llu, \"delay_ns_total\": %llu, "
                   "\"off_waited_calls\": %llu, \"off_wait_ns_total\": %llu}",
                c ? ", " : "", CAT_NAMES[c], cat_calls[c], atomic_load(&g_cat_delayed[c]),
                cat_delay[c], atomic_load(&g_cat_off_waited[c]),
                atomic_load(&g_cat_off_wait_ns[c]));
    fprintf(f, "},\n \"delay_ns_total\": {");
    for (int k = 0; k < NKINDS; k++)
        fprintf(f, "%s\"%s\": %llu", k ? ", " : "", KINDS[k].name, atomic_load(&g_kind_delay_ns[k]));
    fprintf(f, "},\n \"slots\": [");
    int first = 1;
    for (int k = 0; k < NKINDS; k++)
        for (int i = 0; i <= NSLOTS; i++) {
            struct slot *s = &g_slots[k][i];
            if (!atomic_load(&s->real)) continue;
            fprintf(f, "%s\n  {\"kind\": \"%s\", \"name\": ", first ? "" : ",", KINDS[k].name);
            json_str(f, s->name);
            fprintf(f, ", \"via\": \"%s\", \"calls\": %llu}", s->via ? s->via : "",
                    atomic_load(&s->calls));
            first = 0;
        }
    fprintf(f, "],\n \"unwrapped\": %llu,\n", atomic_load(&g_unwrapped));
    fprintf(f, " \"mem\": {\"limit\": %llu, \"used\": %llu, \"peak\": %llu, \"allocs\": %llu, "
               "\"refused\": %llu},\n", g_mem_limit, atomic_load(&g_mem_used),
            atomic_load(&g_mem_peak), atomic_load(&g_mem_allocs), atomic_load(&g_mem_refused));
    fprintf(f, " \"rate\": {\"limit\": %.6g, \"throttled\": %llu, \"wait_ns_total\": %llu},\n",
            g_rate, atomic_load(&g_rate_throttled), atomic_load(&g_rate_wait_ns));
    fprintf(f, " \"resolved\": {\"dlsym\": {");
    pthread_mutex_lock(&g_seen_lock);
    for (unsigned via = 1, n = 0; via <= 2; via++) {
        if (via == 2) { fprintf(f, "}, \"cuGetProcAddress\": {"); n = 0; }
        for (int i = 0; i < g_nseen; i++) {
            if (g_seen[i].via != via) continue;
            fprintf(f, "%s", n++ ? ", " : "");
            json_str(f, g_seen[i].name);
            fprintf(f, ": %llu", g_seen[i].n);
        }
    }
    pthread_mutex_unlock(&g_seen_lock);
    fprintf(f, "}}}\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, final_path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

__attribute__((destructor)) static void write_report_at_exit(void) {
    const char *path = getenv("GPUBENCH_INTERPOSE_REPORT");
    /* Children of the engine (shells, nvidia-smi) inherit LD_PRELOAD: only a
     * process that touched CUDA writes, so none overwrites the engine's report. */
    if (!path || !*path || !atomic_load(&g_cuda_seen)) return;
    int rc = gpubench_interpose_write_report(path);
    const char *verbose = getenv("GPUBENCH_INTERPOSE_VERBOSE");
    if (rc != 0 || (verbose && *verbose))
        fprintf(stderr, "gpubench-interpose: %s report %s (pid %d)\n",
                rc == 0 ? "wrote" : "could not write", path, (int)getpid());
}
