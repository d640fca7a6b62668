/* Tests for the fork-join pool (core_c/threadpool.h):
 *   - every thread index runs exactly once per run, with the right nth;
 *   - what the tasks wrote is visible to the caller after the run (no
 *     missing increments over many back-to-back runs);
 *   - runs after the workers fell asleep (a pause longer than their spin)
 *     still wake them;
 *   - a pool of 1 runs inline; bad sizes are refused with a message;
 *   - destroying a pool with sleeping or spinning workers joins them (ASan's
 *     leak check and TSan-free logic: every run is checked by value). */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "threadpool.h"

static int passed, failed;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (ok)
        passed++;
    else
        failed++;
}

typedef struct job {
    atomic_int calls[64];
    atomic_int bad_nth;
    int expect_nth;
    long plain[64]; /* written without atomics: visibility is the pool's job */
} job;

static void task(void *arg, int ith, int nth) {
    job *j = arg;
    if (nth != j->expect_nth) atomic_fetch_add(&j->bad_nth, 1);
    atomic_fetch_add(&j->calls[ith], 1);
    j->plain[ith] += ith + 1;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void run_pool(int n, int runs, int pause_every) {
    bn_threadpool *p = NULL;
    bn_error err = {0};
    char what[160];
    snprintf(what, sizeof what, "create a pool of %d", n);
    check(bn_threadpool_create(n, &p, &err) == BITNET_OK && p && bn_threadpool_size(p) == n, what);
    if (!p) return;
    static job j;
    memset(&j, 0, sizeof j);
    j.expect_nth = n;
    for (int r = 0; r < runs; r++) {
        bn_threadpool_run(p, task, &j);
        if (pause_every && r % pause_every == pause_every - 1) sleep_ms(15); /* workers go to sleep */
    }
    int ok = atomic_load(&j.bad_nth) == 0;
    for (int i = 0; i < 64; i++) {
        const int want = i < n ? runs : 0;
        if (atomic_load(&j.calls[i]) != want || j.plain[i] != (long)want * (i + 1)) ok = 0;
    }
    snprintf(what, sizeof what, "pool of %d: %d runs (pause every %d): each index once per run, writes visible", n,
             runs, pause_every);
    check(ok, what);
    bn_threadpool_destroy(p);
}

int main(void) {
    run_pool(1, 1000, 0);
    run_pool(2, 2000, 0);
    run_pool(3, 500, 0);
    run_pool(4, 60, 20);
    run_pool(8, 20, 5);

    bn_threadpool *p = NULL;
    bn_error err = {0};
    check(bn_threadpool_create(0, &p, &err) == BITNET_ERR_INVALID_ARGUMENT && !p && strstr(err.msg, "at least 1"),
          "a pool of 0 threads is refused with a message");
    check(bn_threadpool_size(NULL) == 1, "a NULL pool counts as the caller alone");
    check(bn_cpu_count() >= 1, "bn_cpu_count() >= 1");

    /* Destroy right after creation (workers may not have started waiting). */
    for (int i = 0; i < 20; i++) {
        p = NULL;
        if (bn_threadpool_create(3, &p, &err) == BITNET_OK) bn_threadpool_destroy(p);
    }
    check(1, "create + immediate destroy, 20 times");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
