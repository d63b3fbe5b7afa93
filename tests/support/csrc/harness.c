/* Drives the (fake) driver the way CuPy and the CUDA runtime do, and prints one
 * JSON object: what the interposer handed back, what reached the driver, timings.
 *   harness dlsym-launch N      dlsym(handle, "cuLaunchKernel"), N calls timed
 *   harness dlsym-launchex N    dlsym(handle, "cuLaunchKernelEx"), N calls timed
 *   harness gpa2 N              cuGetProcAddress_v2 via dlsym, then cuLaunchKernel/HtoD/alloc
 *   harness gpa1 N              the same through the v1 lookup
 *   harness plt N               direct (linked) calls of cuLaunchKernel
 *   harness alloc STEP MAX      cuMemAlloc_v2 STEP bytes until refused or MAX
 *   harness rtld-next           RTLD_NEXT resolution from a library
 *   harness sync N [GAP_NS]     cuStreamSynchronize N times: start time and latency of each
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef CUresult (*launch_t)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, void *, void **, void **);
typedef CUresult (*launch_ex_t)(const void *, void *, void **, void **);
typedef CUresult (*htod_t)(CUdeviceptr, const void *, size_t);
typedef CUresult (*alloc_t)(CUdeviceptr *, size_t);
typedef CUresult (*free_t)(CUdeviceptr);
typedef CUresult (*meminfo_t)(size_t *, size_t *);
typedef CUresult (*gpa1_t)(const char *, void **, int, unsigned long long);
typedef CUresult (*gpa2_t)(const char *, void **, int, unsigned long long, int *);

extern CUresult cuLaunchKernel(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                               unsigned, void *, void **, void **);
extern unsigned long long fake_count(const char *);
extern void *fake_address(const char *);
extern const char *who(void);
extern void *next_who(void);
extern void *next_launch(void);

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void time_launches(launch_t fn, launch_ex_t fex, long n, const char *extra) {
    long long *lat = malloc(sizeof(long long) * (size_t)(n > 0 ? n : 1));
    long long t0 = now_ns();
    int rc = 0;
    for (long i = 0; i < n; i++) {
        long long a = now_ns();
        rc |= fn ? fn(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL) : fex(NULL, NULL, NULL, NULL);
        lat[i] = now_ns() - a;
    }
    long long total = now_ns() - t0;
    qsort(lat, (size_t)n, sizeof(long long), cmp_ll);
    printf("{\"n\": %ld, \"rc\": %d, \"total_ns\": %lld, \"median_ns\": %lld, \"min_ns\": %lld, "
           "\"fake_launch\": %llu, \"fake_launch_ex\": %llu%s}\n", n, rc, total,
           n ? lat[n / 2] : 0, n ? lat[0] : 0,
           fake_count("launch"), fake_count("launch_ex"), extra);
    free(lat);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    long n = argc > 2 ? atol(argv[2]) : 1000;
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
    char extra[512];
    if (!strcmp(mode, "dlsym-launch") || !strcmp(mode, "dlsym-launchex")) {
        int ex = !strcmp(mode, "dlsym-launchex");
        const char *name = ex ? "cuLaunchKernelEx" : "cuLaunchKernel";
        void *p = dlsym(h, name);
        snprintf(extra, sizeof extra, ", \"wrapped\": %s", p != fake_address(name) ? "true" : "false");
        time_launches(ex ? NULL : (launch_t)p, ex ? (launch_ex_t)p : NULL, n, extra);
    } else if (!strcmp(mode, "gpa2") || !strcmp(mode, "gpa1")) {
        int v2 = !strcmp(mode, "gpa2");
        void *gpa = dlsym(h, v2 ? "cuGetProcAddress_v2" : "cuGetProcAddress");
        void *launch = NULL, *htod = NULL, *alloc = NULL, *gpa_again = NULL, *launch2 = NULL;
        int status = -1;
        if (v2) {
            ((gpa2_t)gpa)("cuLaunchKernel", &launch, 12000, 0, &status);
            ((gpa2_t)gpa)("cuMemcpyHtoD", &htod, 12000, 0, &status);
            ((gpa2_t)gpa)("cuMemAlloc", &alloc, 12000, 0, &status);
            ((gpa2_t)gpa)("cuGetProcAddress", &gpa_again, 12000, 0, &status);
            /* the lookup handed back for itself must work with the v2 arity */
            status = -1;
            ((gpa2_t)gpa_again)("cuLaunchKernel", &launch2, 12000, 0, &status);
        } else {
            ((gpa1_t)gpa)("cuLaunchKernel", &launch, 11030, 0);
            ((gpa1_t)gpa)("cuMemcpyHtoD", &htod, 11030, 0);
            ((gpa1_t)gpa)("cuMemAlloc", &alloc, 11030, 0);
            ((gpa1_t)gpa)("cuGetProcAddress", &gpa_again, 11030, 0);
            ((gpa1_t)gpa_again)("cuLaunchKernel", &launch2, 11030, 0);
            status = 0;
        }
        char buf[16] = {0};
        for (long i = 0; i < n; i++) ((htod_t)htod)(0, buf, sizeof buf);
        CUdeviceptr d = 0;
        CUresult arc = ((alloc_t)alloc)(&d, 4096);
        snprintf(extra, sizeof extra,
                 ", \"wrapped\": %s, \"wrapped_again\": %s, \"same\": %s, \"status\": %d, "
                 "\"fake_htod\": %llu, \"alloc_rc\": %d, \"fake_alloc\": %llu, \"fake_gpa1\": %llu, "
                 "\"fake_gpa2\": %llu",
                 launch != fake_address("cuLaunchKernel") ? "true" : "false",
                 launch2 != fake_address("cuLaunchKernel") ? "true" : "false",
                 launch == launch2 ? "true" : "false", status, fake_count("htod"), arc,
                 fake_count("alloc"), fake_count("gpa1"), fake_count("gpa2"));
        time_launches((launch_t)launch, NULL, n, extra);
    } else if (!strcmp(mode, "plt")) {
        time_launches(cuLaunchKernel, NULL, n, "");
    } else if (!strcmp(mode, "alloc")) {
        alloc_t alloc = (alloc_t)dlsym(h, "cuMemAlloc_v2");
        free_t fr = (free_t)dlsym(h, "cuMemFree_v2");
        meminfo_t info = (meminfo_t)dlsym(h, "cuMemGetInfo_v2");
        unsigned long long step = strtoull(argv[2], NULL, 10), max = strtoull(argv[3], NULL, 10);
        CUdeviceptr ptrs[4096];
        int k = 0, rc = 0;
        unsigned long long total = 0;
        while (total + step <= max && k < 4096) {
            rc = alloc(&ptrs[k], step);
            if (rc != 0) break;
            total += step;
            k++;
        }
        size_t fr_b = 0, tot_b = 0;
        info(&fr_b, &tot_b);
        for (int i = 0; i < k; i++) fr(ptrs[i]);
        CUdeviceptr again = 0;
        int rc_again = alloc(&again, step);   /* freed: must fit again */
        printf("{\"allocated\": %llu, \"allocations\": %d, \"refused_rc\": %d, \"rc_after_free\": %d, "
               "\"meminfo_free\": %zu, \"meminfo_total\": %zu, \"fake_alloc\": %llu}\n",
               total, k, rc, rc_again, fr_b, tot_b, fake_count("alloc"));
    } else if (!strcmp(mode, "sync")) {
        CUresult (*ssync)(void *) = (CUresult (*)(void *))dlsym(h, "cuStreamSynchronize");
        long long gap = argc > 3 ? atoll(argv[3]) : 0;   /* pacing between calls, ns */
        printf("{\"calls\": [");
        for (long i = 0; i < n; i++) {
            for (long long g0 = now_ns(); now_ns() - g0 < gap;) {}
            long long a = now_ns();
            ssync(NULL);
            long long b = now_ns();
            printf("%s[%lld, %lld]", i ? ", " : "", a, b - a);
        }
        printf("]}\n");
    } else if (!strcmp(mode, "rtld-next")) {
        void *w = next_who();
        const char *name = w ? ((const char *(*)(void))w)() : "null";
        void *l = next_launch();
        int rc = l ? ((launch_t)l)(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL) : -1;
        printf("{\"next_who\": \"%s\", \"self_who\": \"%s\", \"next_launch_wrapped\": %s, "
               "\"next_launch_rc\": %d, \"fake_launch\": %llu}\n", name, who(),
               l && l != fake_address("cuLaunchKernel") ? "true" : "false", rc, fake_count("launch"));
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
