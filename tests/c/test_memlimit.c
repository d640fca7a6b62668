/* Tests for core_c/memlimit.h, which lets bitnet_context_create refuse a KV
 * cache larger than the memory the process may use:
 *   - cgroup limit files: a number is read; "max", garbage, an empty or a
 *     missing file mean "no limit" (0);
 *   - the process's limit is known (positive) on Linux, macOS and Windows.
 * The temporary files live next to the test executable (argv[0]), so the
 * test also runs under wine and qemu-user. */
#include <stdio.h>
#include <string.h>

#include "memlimit.h"

static int passed, failed;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (ok)
        passed++;
    else
        failed++;
}

static uint64_t limit_of(const char *path, const char *contents) {
    FILE *f = fopen(path, "wb");
    if (!f) return UINT64_MAX;
    fputs(contents, f);
    fclose(f);
    uint64_t v = bn_cgroup_limit_from_file(path);
    remove(path);
    return v;
}

int main(int argc, char **argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s.memory.max", argc > 0 ? argv[0] : "test_memlimit");

    check(limit_of(path, "2147483648\n") == 2147483648ull, "a cgroup v2 memory.max number is read");
    check(limit_of(path, "9223372036854771712\n") == 9223372036854771712ull, "cgroup v1's 'unlimited' number");
    check(limit_of(path, "max\n") == 0, "'max' means no limit");
    check(limit_of(path, "") == 0, "an empty file means no limit");
    check(limit_of(path, "12abc\n") == 0, "a number followed by garbage is not a limit");
    check(limit_of(path, "-5\n") == 0, "a negative number is not a limit");
    check(bn_cgroup_limit_from_file(path) == 0, "a missing file means no limit");
#if defined(__linux__) || defined(__APPLE__) || defined(_WIN32)
    check(bn_memory_limit_bytes() > (uint64_t)16 << 20, "this process's memory limit is known (> 16 MiB)");
#endif
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
