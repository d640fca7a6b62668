/* Memory available to this process (memlimit.h). */
#include "memlimit.h"

#include <stdio.h>
#include <stdlib.h>

#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#elif !defined(__EMSCRIPTEN__)
#include <unistd.h>
#endif

uint64_t bn_cgroup_limit_from_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[64] = {0};
    const char *got = fgets(line, sizeof line, f);
    fclose(f);
    if (!got || line[0] < '0' || line[0] > '9') return 0; /* "max": no limit */
    char *end = NULL;
    unsigned long long v = strtoull(line, &end, 10);
    return (end && (*end == '\n' || *end == '\0')) ? (uint64_t)v : 0;
}

static uint64_t physical_memory(void) {
#if defined(_WIN32)
    MEMORYSTATUSEX ms;
    ms.dwLength = sizeof ms;
    return GlobalMemoryStatusEx(&ms) ? (uint64_t)ms.ullTotalPhys : 0;
#elif defined(__EMSCRIPTEN__)
    return 0;
#elif defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
#else
    return 0;
#endif
}

uint64_t bn_memory_limit_bytes(void) {
    uint64_t limit = physical_memory();
#if defined(__linux__)
    /* Inside a container the cgroup namespace makes its own limit appear at
     * the root of /sys/fs/cgroup (v2), or under memory/ (v1). */
    const char *files[] = {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        uint64_t cg = bn_cgroup_limit_from_file(files[i]);
        if (cg && (!limit || cg < limit)) limit = cg;
    }
#endif
    return limit;
}
