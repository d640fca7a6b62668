/* How much memory this process may use, so that a context too large for the
 * machine is refused with a message up front. (calloc of a huge KV cache
 * succeeds lazily on Linux; the kernel's OOM killer would end the whole host
 * process later, when the pages are touched.) */
#ifndef BN_MEMLIMIT_H
#define BN_MEMLIMIT_H

#include <stdint.h>

/* Physical memory, lowered to the cgroup limit when there is one (a
 * container's `docker run --memory`, a Kubernetes pod's
 * resources.limits.memory). 0 when unknown (WebAssembly: there malloc
 * itself fails cleanly at the heap's maximum). */
uint64_t bn_memory_limit_bytes(void);

/* The byte count in a cgroup limit file (memory.max of cgroup v2,
 * memory.limit_in_bytes of v1); 0 when the file is missing, says "max" or
 * holds no number. */
uint64_t bn_cgroup_limit_from_file(const char *path);

#endif
