/* test_thread_pool.c - common/thread_pool: every task of every phase runs
 * exactly once, a barrier makes one phase's writes visible to the next,
 * a busy pool refuses a second caller instead of blocking it, and jobs from
 * several threads at once all complete correctly. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "common/thread_pool.h"

#define NTASK 1000
#define NPHASE 50

typedef struct job {
    atomic_int hits[NPHASE][NTASK];
    long vals[NPHASE][NTASK];
    atomic_int bad_reads;
    atomic_int ran_threads;
} job;

/* Phase p writes vals[p][i] = vals[p-1][(i * 7 + 3) % NTASK] + 1 for its
 * claimed tasks: reading other threads' previous-phase values checks the
 * barrier, counting hits checks the claims. */
static void job_fn(rg_tpool_ctx *ctx, void *arg)
{
    job *j = arg;
    atomic_fetch_add(&j->ran_threads, 1);
    for (int p = 0; p < NPHASE; p++) {
        long t;
        while ((t = tpool_claim(ctx, NTASK)) >= 0) {
            atomic_fetch_add(&j->hits[p][t], 1);
            long prev = p ? j->vals[p - 1][(t * 7 + 3) % NTASK] : 0;
            if (prev != p)
                atomic_fetch_add(&j->bad_reads, 1);
            j->vals[p][t] = prev + 1;
        }
        tpool_sync(ctx);
    }
}

static int check_job(job *j)
{
    int ok = atomic_load(&j->bad_reads) == 0;
    for (int p = 0; p < NPHASE; p++)
        for (int t = 0; t < NTASK; t++)
            ok &= atomic_load(&j->hits[p][t]) == 1 && j->vals[p][t] == p + 1;
    return ok;
}

static void nested_fn(rg_tpool_ctx *ctx, void *arg)
{
    /* The pool is busy with this very job: a second run must be refused. */
    if (ctx->idx == 0)
        *(int *)arg = tpool_try_run(ctx->pool, job_fn, NULL);
}

typedef struct caller {
    rg_tpool *pool;
    int ok, pooled, runs;
} caller;

static void *caller_main(void *arg)
{
    caller *c = arg;
    c->ok = 1;
    for (int r = 0; r < c->runs; r++) {
        job *j = calloc(1, sizeof *j);
        if (tpool_try_run(c->pool, job_fn, j))
            c->pooled++;
        else
            tpool_run_single(job_fn, j);
        c->ok &= check_job(j);
        free(j);
    }
    return NULL;
}

int main(void)
{
    rg_err e = {0};
    CHECK(tpool_cpu_count() >= 1);
    rg_tpool *bad = NULL;
    CHECK(tpool_create(0, &bad, &e) == RG_ERR_INVALID && bad == NULL);

    int sizes[] = {1, 2, 3, 5};
    for (int s = 0; s < 4; s++) {
        rg_tpool *p = NULL;
        rg_status st = tpool_create(sizes[s], &p, &e);
        CHECK_OK(st, e);
        if (st != RG_OK)
            continue;
        CHECK(tpool_size(p) == sizes[s]);
        for (int rep = 0; rep < 3; rep++) {
            job *j = calloc(1, sizeof *j);
            CHECK(tpool_try_run(p, job_fn, j) == 1);
            CHECK_MSG(check_job(j), "pool of %d, run %d: a task ran twice, never, or read stale data", sizes[s], rep);
            CHECK(atomic_load(&j->ran_threads) == sizes[s]);
            free(j);
        }
        int nested = -1;
        CHECK(tpool_try_run(p, nested_fn, &nested) == 1);
        CHECK_MSG(nested == 0, "a run inside a running job returned %d, want 0 (busy)", nested);

        /* Three callers at once: each job completes correctly, whether it
         * got the pool or ran alone. */
        caller cs[3] = {{p, 0, 0, 20}, {p, 0, 0, 20}, {p, 0, 0, 20}};
        pthread_t th[3];
        for (int i = 0; i < 3; i++)
            pthread_create(&th[i], NULL, caller_main, &cs[i]);
        int pooled = 0;
        for (int i = 0; i < 3; i++) {
            pthread_join(th[i], NULL);
            CHECK_MSG(cs[i].ok, "pool of %d, concurrent caller %d: wrong results", sizes[s], i);
            pooled += cs[i].pooled;
        }
        CHECK(pooled >= 1);
        tpool_free(p);
    }
    /* A job run alone still sees phases and claims. */
    job *j = calloc(1, sizeof *j);
    tpool_run_single(job_fn, j);
    CHECK(check_job(j) && atomic_load(&j->ran_threads) == 1);
    free(j);
    tpool_free(NULL);
    CHECK(tpool_size(NULL) == 1);
    CHECK(tpool_try_run(NULL, job_fn, NULL) == 0);
    return check_finish("test_thread_pool");
}
