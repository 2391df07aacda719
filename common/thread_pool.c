/* thread_pool.c - SPMD worker pool with spin-then-sleep barriers (see
 * thread_pool.h). */
#define _GNU_SOURCE /* sched_getaffinity */
#include "common/thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* How many times a waiting thread polls before it sleeps: long enough to
 * cover the gap between two phases of a job (microseconds), short enough
 * that a thread waiting for the next job stops burning a core quickly. */
#define TPOOL_SPIN 4000
#define TPOOL_MAX_THREADS 256

struct rg_tpool {
    int n;
    int started; /* worker threads running */
    pthread_t *threads;
    pthread_mutex_t busy; /* held by the caller whose job runs */
    pthread_mutex_t mu;   /* only for sleeping and waking */
    pthread_cond_t cv;
    atomic_uint sleepers;
    atomic_uint job_epoch; /* bumped to start a job (or to stop) */
    atomic_uint bar_count, bar_epoch;
    atomic_long claim[2]; /* task counters of alternate phases */
    int stop;
    rg_tpool_fn fn;
    void *arg;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Waits until *var differs from old. The sleeper count is raised before
 * the last check so that a waker, which bumps *var before reading the
 * count (both sequentially consistent), cannot miss a sleeper. */
static void wait_change(rg_tpool *p, atomic_uint *var, unsigned old)
{
    for (int i = 0; i < TPOOL_SPIN; i++) {
        if (atomic_load_explicit(var, memory_order_acquire) != old)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while (atomic_load(var) == old)
        pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
}

static void bump_and_wake(rg_tpool *p, atomic_uint *var)
{
    atomic_fetch_add(var, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

static void barrier(rg_tpool *p)
{
    /* Read the epoch before arriving: it cannot move until we have. */
    unsigned epoch = atomic_load(&p->bar_epoch);
    if (atomic_fetch_add(&p->bar_count, 1) == (unsigned)p->n - 1) {
        atomic_store(&p->bar_count, 0);
        bump_and_wake(p, &p->bar_epoch);
    } else {
        wait_change(p, &p->bar_epoch, epoch);
    }
}

static void *worker_main(void *argp)
{
    rg_tpool *p = argp;
    /* The index is handed over through the start-up count (see create). */
    int idx = (int)atomic_fetch_add(&p->bar_count, 1) + 1;
    unsigned seen = 0;
    for (;;) {
        wait_change(p, &p->job_epoch, seen);
        seen = atomic_load(&p->job_epoch);
        if (p->stop)
            return NULL;
        rg_tpool_ctx ctx = {p, idx, p->n, 0, 0};
        p->fn(&ctx, p->arg);
        barrier(p); /* the job's end: the caller returns after it */
    }
}

int tpool_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < TPOOL_MAX_THREADS ? n : TPOOL_MAX_THREADS) : 1;
}

rg_status tpool_create(int n, rg_tpool **out, rg_err *e)
{
    *out = NULL;
    if (n < 1 || n > TPOOL_MAX_THREADS)
        return rg_error(e, RG_ERR_INVALID, "thread pool: %d threads is outside [1, %d]", n, TPOOL_MAX_THREADS);
    rg_tpool *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc((size_t)n, sizeof *p->threads))) {
        free(p);
        return rg_error(e, RG_ERR_NOMEM, "thread pool: out of memory");
    }
    p->n = n;
    pthread_mutex_init(&p->busy, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 1; i < n; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            tpool_free(p);
            return rg_error(e, RG_ERR_INTERNAL, "thread pool: cannot start thread %d of %d", i, n);
        }
        p->started++;
    }
    /* Wait until every worker took its index from bar_count, then reset it
     * for the barriers. */
    while (atomic_load(&p->bar_count) != (unsigned)(n - 1))
        sched_yield();
    atomic_store(&p->bar_count, 0);
    *out = p;
    return RG_OK;
}

void tpool_free(rg_tpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->busy);
    p->stop = 1;
    bump_and_wake(p, &p->job_epoch);
    for (int i = 1; i <= p->started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_unlock(&p->busy);
    pthread_mutex_destroy(&p->busy);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int tpool_size(const rg_tpool *p) { return p ? p->n : 1; }

int tpool_try_run(rg_tpool *p, rg_tpool_fn fn, void *arg)
{
    if (!p || pthread_mutex_trylock(&p->busy) != 0)
        return 0;
    atomic_store(&p->claim[0], 0);
    atomic_store(&p->claim[1], 0);
    if (p->n == 1) {
        tpool_run_single(fn, arg);
    } else {
        p->fn = fn;
        p->arg = arg;
        bump_and_wake(p, &p->job_epoch);
        rg_tpool_ctx ctx = {p, 0, p->n, 0, 0};
        fn(&ctx, arg);
        barrier(p);
    }
    pthread_mutex_unlock(&p->busy);
    return 1;
}

void tpool_run_single(rg_tpool_fn fn, void *arg)
{
    rg_tpool_ctx ctx = {NULL, 0, 1, 0, 0};
    fn(&ctx, arg);
}

long tpool_claim(rg_tpool_ctx *ctx, long ntasks)
{
    long i = ctx->pool ? atomic_fetch_add_explicit(&ctx->pool->claim[ctx->phase & 1], 1, memory_order_relaxed)
                       : ctx->solo_next++;
    return i < ntasks ? i : -1;
}

void tpool_sync(rg_tpool_ctx *ctx)
{
    ctx->phase++;
    ctx->solo_next = 0;
    if (!ctx->pool)
        return;
    barrier(ctx->pool);
    /* The counter of the phase before the one that just ended is free:
     * reset it for the phase after this one (the next barrier orders the
     * reset before anyone claims from it). */
    if (ctx->idx == 0)
        atomic_store(&ctx->pool->claim[(ctx->phase + 1) & 1], 0);
}
