/* A small fork-join thread pool for the forward pass.
 *
 * bn_threadpool_run(pool, fn, arg) calls fn(arg, ith, nth) once for every
 * ith in [0, nth): the calling thread runs ith = 0 and the pool's workers the
 * rest, and it returns when all have finished. Between runs the workers spin
 * briefly (a forward pass issues hundreds of runs per token, microseconds
 * apart), then sleep on a condition variable, so an idle pool costs nothing.
 *
 * One pool belongs to one context; a pool must not be run from two threads
 * at once (the context is not shared across threads either). pthreads on
 * POSIX, Win32 threads on Windows; where threads cannot be created (a
 * WebAssembly build without pthreads) the pool has fewer threads than asked
 * for, down to the caller alone, and still works. */
#ifndef BN_THREADPOOL_H
#define BN_THREADPOOL_H

#include "bn_error.h"

typedef struct bn_threadpool bn_threadpool;

typedef void (*bn_task_fn)(void *arg, int ith, int nth);

/* A pool of n_threads threads in all, the caller included (n_threads >= 1).
 * If the system refuses to create some of the threads, the pool keeps the
 * ones it got (bn_threadpool_size says how many). */
bitnet_status bn_threadpool_create(int n_threads, bn_threadpool **out, bn_error *err);
void bn_threadpool_destroy(bn_threadpool *pool);

int bn_threadpool_size(const bn_threadpool *pool);

/* Run fn on every thread of the pool and wait for all of them. Everything
 * the tasks wrote is visible to the caller when this returns. */
void bn_threadpool_run(bn_threadpool *pool, bn_task_fn fn, void *arg);

/* Processors available to this process (at least 1). */
int bn_cpu_count(void);

#endif
