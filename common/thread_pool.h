/* thread_pool.h - a fixed set of worker threads that run one parallel job at
 * a time, SPMD style: every thread (the caller included) runs the same
 * function with its own index, and the function splits its phases with
 * tpool_claim (dynamic task claiming) and tpool_sync (a barrier).
 *
 * Why not one task queue: the encoder's forward pass is a fixed chain of
 * phases (projections, attention, ...) over the same data; keeping every
 * thread inside one function with cheap barriers between phases costs a few
 * microseconds per phase, where a queue round trip per task or a BLAS
 * library's own threads (which spin in sched_yield while the caller runs the
 * element-wise parts alone) cost far more.
 *
 * Waiting threads spin briefly and then sleep on a condition variable, so
 * an idle pool uses no CPU and an oversubscribed machine (other processes
 * on the same cores) degrades instead of livelocking.
 *
 * One job at a time: tpool_try_run returns 0 without running anything when
 * another thread's job holds the pool, so the caller can run its job alone
 * (tpool_run_single); concurrent callers are therefore safe and never wait
 * for each other. */
#ifndef RAGD_COMMON_THREAD_POOL_H
#define RAGD_COMMON_THREAD_POOL_H

#include <stddef.h>

#include "common/err.h"

typedef struct rg_tpool rg_tpool;

/* What a job's function sees: its index in [0, n) and the pool state. */
typedef struct rg_tpool_ctx {
    rg_tpool *pool; /* NULL when the job runs on one thread */
    int idx, n;
    unsigned phase; /* advanced by tpool_sync, the same on every thread */
    long solo_next; /* the task counter when running alone */
} rg_tpool_ctx;

typedef void (*rg_tpool_fn)(rg_tpool_ctx *ctx, void *arg);

/* Starts n - 1 worker threads (n >= 1; the caller is thread 0 of each job). */
rg_status tpool_create(int n, rg_tpool **out, rg_err *e);
void tpool_free(rg_tpool *p); /* NULL is fine; waits for the workers to exit */

int tpool_size(const rg_tpool *p); /* threads per job, the caller included; 1 for NULL */

/* The number of CPUs this process may run on (sched affinity), at least 1. */
int tpool_cpu_count(void);

/* Runs fn(ctx, arg) on all threads and returns 1 when they all returned;
 * returns 0 at once, having run nothing, when the pool is busy with
 * another caller's job (or p is NULL). */
int tpool_try_run(rg_tpool *p, rg_tpool_fn fn, void *arg);

/* Runs fn on the calling thread alone (ctx.n == 1). */
void tpool_run_single(rg_tpool_fn fn, void *arg);

/* The next task index of the current phase, or -1 when none is left;
 * tasks [0, ntasks) are each handed to exactly one thread. */
long tpool_claim(rg_tpool_ctx *ctx, long ntasks);

/* Barrier: returns when every thread of the job has reached it; the next
 * phase's tpool_claim starts from task 0. Every thread must call it the
 * same number of times. */
void tpool_sync(rg_tpool_ctx *ctx);

#endif
