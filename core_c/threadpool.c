/* Fork-join pool (threadpool.h). Protocol:
 *   run():    pending = nth - 1; under the lock: generation++, broadcast;
 *             run ith = 0; spin until pending == 0.
 *   worker:   wait until generation changes (spin, then sleep under the
 *             lock), run its share, pending-- (release).
 * The generation counter is only written under the lock, and a sleeping
 * worker re-checks it under the lock before waiting, so no wake-up is lost.
 * The release on pending-- and the acquire in the caller's spin make the
 * tasks' writes visible to the caller. */
#include "threadpool.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
typedef HANDLE bn_thread;
typedef CRITICAL_SECTION bn_mutex;
typedef CONDITION_VARIABLE bn_cond;
#define bn_mutex_init(m) InitializeCriticalSection(m)
#define bn_mutex_destroy(m) DeleteCriticalSection(m)
#define bn_mutex_lock(m) EnterCriticalSection(m)
#define bn_mutex_unlock(m) LeaveCriticalSection(m)
#define bn_cond_init(c) InitializeConditionVariable(c)
#define bn_cond_destroy(c) ((void)(c))
#define bn_cond_wait(c, m) SleepConditionVariableCS(c, m, INFINITE)
#define bn_cond_broadcast(c) WakeAllConditionVariable(c)
#define bn_yield() SwitchToThread()
#else
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
typedef pthread_t bn_thread;
typedef pthread_mutex_t bn_mutex;
typedef pthread_cond_t bn_cond;
#define bn_mutex_init(m) pthread_mutex_init(m, NULL)
#define bn_mutex_destroy(m) pthread_mutex_destroy(m)
#define bn_mutex_lock(m) pthread_mutex_lock(m)
#define bn_mutex_unlock(m) pthread_mutex_unlock(m)
#define bn_cond_init(c) pthread_cond_init(c, NULL)
#define bn_cond_destroy(c) pthread_cond_destroy(c)
#define bn_cond_wait(c, m) pthread_cond_wait(c, m)
#define bn_cond_broadcast(c) pthread_cond_broadcast(c)
#define bn_yield() sched_yield()
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define bn_cpu_relax() _mm_pause()
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define bn_cpu_relax() __asm__ __volatile__("yield")
#else
#define bn_cpu_relax() ((void)0)
#endif

/* Spin iterations before a worker sleeps: roughly a millisecond, long enough
 * to bridge the gaps inside a forward pass, short enough that a paused
 * generation (the caller sampling, a user reading) leaves the CPU idle. */
#define BN_SPIN_ITERS 20000

typedef struct worker {
    struct bn_threadpool *pool;
    int ith;
    bn_thread thread;
} worker;

struct bn_threadpool {
    int n_threads; /* caller included */
    worker *workers; /* n_threads - 1 */
    bn_mutex lock;
    bn_cond wake;
    atomic_uint generation;
    atomic_int pending;
    atomic_bool stop;
    bn_task_fn fn;
    void *arg;
};

static void worker_loop(worker *w) {
    bn_threadpool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
        for (int i = 0; g == seen && i < BN_SPIN_ITERS; i++) {
            bn_cpu_relax();
            g = atomic_load_explicit(&p->generation, memory_order_acquire);
        }
        if (g == seen) {
            bn_mutex_lock(&p->lock);
            while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
                   !atomic_load(&p->stop))
                bn_cond_wait(&p->wake, &p->lock);
            bn_mutex_unlock(&p->lock);
        }
        if (atomic_load(&p->stop)) return;
        seen = g;
        p->fn(p->arg, w->ith, p->n_threads);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

#if defined(_WIN32)
static DWORD WINAPI worker_main(LPVOID arg) {
    worker_loop(arg);
    return 0;
}
static int thread_start(worker *w) {
    w->thread = CreateThread(NULL, 0, worker_main, w, 0, NULL);
    return w->thread != NULL;
}
static void thread_join(worker *w) {
    WaitForSingleObject(w->thread, INFINITE);
    CloseHandle(w->thread);
}
#else
static void *worker_main(void *arg) {
    worker_loop(arg);
    return NULL;
}
static int thread_start(worker *w) { return pthread_create(&w->thread, NULL, worker_main, w) == 0; }
static void thread_join(worker *w) { pthread_join(w->thread, NULL); }
#endif

static void stop_workers(bn_threadpool *p, int started) {
    bn_mutex_lock(&p->lock);
    atomic_store(&p->stop, true);
    bn_cond_broadcast(&p->wake);
    bn_mutex_unlock(&p->lock);
    for (int i = 0; i < started; i++) thread_join(&p->workers[i]);
}

bitnet_status bn_threadpool_create(int n_threads, bn_threadpool **out, bn_error *err) {
    *out = NULL;
    if (n_threads < 1) return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "a thread pool needs at least 1 thread");
    bn_threadpool *p = calloc(1, sizeof *p);
    if (!p) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            free(p);
            return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory for %d threads", n_threads);
        }
    }
    bn_mutex_init(&p->lock);
    bn_cond_init(&p->wake);
    atomic_init(&p->generation, 0u);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
    int started = 0;
    for (; started < n_threads - 1; started++) {
        worker *w = &p->workers[started];
        w->pool = p;
        w->ith = started + 1;
        if (!thread_start(w)) break; /* keep the threads we got */
    }
    p->n_threads = started + 1;
    *out = p;
    return BITNET_OK;
}

void bn_threadpool_destroy(bn_threadpool *p) {
    if (!p) return;
    stop_workers(p, p->n_threads - 1);
    bn_cond_destroy(&p->wake);
    bn_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}

int bn_threadpool_size(const bn_threadpool *p) { return p ? p->n_threads : 1; }

void bn_threadpool_run(bn_threadpool *p, bn_task_fn fn, void *arg) {
    if (!p || p->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    bn_mutex_lock(&p->lock);
    atomic_fetch_add_explicit(&p->generation, 1u, memory_order_release);
    bn_cond_broadcast(&p->wake);
    bn_mutex_unlock(&p->lock);
    fn(arg, 0, p->n_threads);
    for (unsigned spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < BN_SPIN_ITERS)
            bn_cpu_relax();
        else
            bn_yield();
    }
}

int bn_cpu_count(void) {
#if defined(_WIN32)
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwNumberOfProcessors > 0 ? (int)si.dwNumberOfProcessors : 1;
#elif defined(_SC_NPROCESSORS_ONLN)
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
#else
    return 1;
#endif
}
