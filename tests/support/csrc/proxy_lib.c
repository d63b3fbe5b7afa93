/* A library that, like another proxy, resolves symbols with dlsym(RTLD_NEXT, ...):
 * the interposer's own dlsym must keep RTLD_NEXT relative to this library. */
#define _GNU_SOURCE
#include <dlfcn.h>
const char *who(void) { return "proxy_lib"; }
void *next_who(void) { return dlsym(RTLD_NEXT, "who"); }
void *next_launch(void) { return dlsym(RTLD_NEXT, "cuLaunchKernel"); }
