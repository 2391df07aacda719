/* test_decoder_pool.c - model/decoder_pool: every item of every run is done
 * exactly once, shared dynamically, with workers polling or asleep; and
 * with short idle polls (dec_pool_set_idle, as a GPU decoder sets them) the
 * workers sleep between runs spaced like GPU decode steps instead of
 * spinning through them: their CPU time stays a small part of the wall
 * time. */
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "check.h"
#include "model/decoder_pool.h"

#define ITEMS 2000
#define RUNS 40

typedef struct job {
    atomic_int next;
    atomic_int hits[ITEMS];
} job;

static void job_fn(void *ctx, size_t worker, size_t n_workers)
{
    (void)worker, (void)n_workers;
    job *j = ctx;
    for (int i; (i = atomic_fetch_add(&j->next, 1)) < ITEMS;)
        atomic_fetch_add(&j->hits[i], 1);
}

static double clock_s(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* RUNS runs spaced gap_ms apart; returns the workers' CPU seconds (the
 * process's less this thread's) over the wall seconds. */
static double runs(dec_pool *p, int gap_ms)
{
    static job j;
    struct timespec gap = {0, gap_ms * 1000000L};
    double wall0 = clock_s(CLOCK_MONOTONIC), proc0 = clock_s(CLOCK_PROCESS_CPUTIME_ID),
           self0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    size_t bad = 0;
    for (int r = 0; r < RUNS; r++) {
        atomic_store(&j.next, 0);
        for (int i = 0; i < ITEMS; i++)
            atomic_store(&j.hits[i], 0);
        dec_pool_run(p, job_fn, &j);
        for (int i = 0; i < ITEMS; i++)
            bad += atomic_load(&j.hits[i]) != 1;
        nanosleep(&gap, NULL);
    }
    CHECK_MSG(bad == 0, "%zu items not done exactly once", bad);
    double workers = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - proc0) - (clock_s(CLOCK_THREAD_CPUTIME_ID) - self0);
    return workers / (clock_s(CLOCK_MONOTONIC) - wall0);
}

int main(void)
{
    rg_err e = {0};
    dec_pool *p = NULL;
    CHECK_OK(dec_pool_create(3, &p, &e), e);
    if (!p)
        return check_finish("test_decoder_pool");
    /* the defaults: workers poll ~1-3 ms after each run (2 ms apart here) */
    double spin = runs(p, 2);
    dec_pool_set_idle(p, DEC_POOL_GPU_BUSY_POLLS, 0);
    double gpu = runs(p, 2);
    dec_pool_set_idle(p, 0, 0); /* asleep at once: every run wakes them */
    double sleepy = runs(p, 2);
    printf("test_decoder_pool: workers' CPU time per wall second, runs 2 ms apart: default polls %.2f, "
           "GPU decoder's %.3f, none %.3f\n", spin, gpu, sleepy);
    /* two workers spinning through the gaps would be near 2.0; sleeping
     * ones use microseconds a run. 0.25 leaves room for a loaded machine,
     * whose delays lengthen the wall time, not the workers' CPU time. */
    CHECK_MSG(gpu < 0.25 && sleepy < 0.25, "idle workers still spin: %.3f / %.3f CPU seconds per second", gpu,
              sleepy);
    dec_pool_free(p);
    return check_finish("test_decoder_pool");
}
