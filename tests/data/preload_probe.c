/* A tiny LD_PRELOAD library for the proxy-layer tests: it only has to be loaded.
 * Built at test time with `cc -shared -fPIC`. The constructor leaves a trace in the
 * environment so a test can also see that it ran inside the engine process. */
#include <stdlib.h>

int gpubench_preload_probe(void) { return 42; }

__attribute__((constructor)) static void gpubench_probe_init(void) {
    setenv("GPUBENCH_PRELOAD_PROBE", "loaded", 1);
}
