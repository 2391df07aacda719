/* decoder_pool.c - spin-then-sleep worker pool for the decoder. */
#include "model/decoder_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* A worker first busy-polls for new work (a decode step dispatches every few
 * tens of microseconds), then polls yielding the CPU (machines shared with
 * other work), then sleeps on the condition variable. The caller waiting for
 * the workers busy-polls before it yields: yielding at once hands a whole
 * scheduler slice to other processes for work that ends microseconds later. */
#define BUSY_POLLS 20000
#define YIELD_POLLS 2000

struct dec_pool {
    size_t n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint gen;      /* bumped for every run */
    atomic_int open;      /* 1 while workers may still join the current run */
    atomic_int joined;    /* workers (besides the caller) inside fn */
    atomic_int sleepers;
    atomic_int stop;
    atomic_uint busy_polls, yield_polls; /* an idle worker's polls before it sleeps */
    dec_pool_fn fn;
    void *ctx;
};

typedef struct worker_arg {
    dec_pool *p;
    size_t index;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    dec_pool *p = wa->p;
    size_t index = wa->index;
    free(wa);
    /* every run bumps gen from its initial 0; reading gen here instead could
     * skip a run dispatched before this thread got scheduled */
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int polls = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !atomic_load(&p->stop)) {
            ++polls;
            unsigned busy = atomic_load_explicit(&p->busy_polls, memory_order_relaxed);
            if ((unsigned)polls < busy) {
                cpu_relax();
                continue;
            }
            if ((unsigned)polls < busy + atomic_load_explicit(&p->yield_polls, memory_order_relaxed)) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            polls = 0;
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        /* join only while the run is open and still the one seen; the caller
         * closes it once the work is done and waits only for those inside
         * (seq_cst on both sides: either it sees us join or we see it close) */
        atomic_fetch_add(&p->joined, 1);
        if (atomic_load(&p->open) && atomic_load(&p->gen) == g)
            p->fn(p->ctx, index, p->n);
        atomic_fetch_sub(&p->joined, 1);
    }
}

rg_status dec_pool_create(size_t n_workers, dec_pool **out, rg_err *e)
{
    *out = NULL;
    if (n_workers == 0 || n_workers > 256)
        return rg_error(e, RG_ERR_INVALID, "thread count %zu is outside 1..256", n_workers);
    dec_pool *p = calloc(1, sizeof *p);
    if (!p)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for the thread pool");
    p->n = n_workers;
    atomic_init(&p->busy_polls, BUSY_POLLS);
    atomic_init(&p->yield_polls, YIELD_POLLS);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (n_workers > 1) {
        p->threads = calloc(n_workers - 1, sizeof *p->threads);
        if (!p->threads) {
            dec_pool_free(p);
            return rg_error(e, RG_ERR_NOMEM, "out of memory for the thread pool");
        }
    }
    for (size_t i = 1; i < n_workers; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) {
            wa->p = p;
            wa->index = i;
        }
        if (!wa || pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n = i; /* join the ones started */
            dec_pool_free(p);
            return rg_error(e, RG_ERR_NOMEM, "cannot start decoder thread %zu", i);
        }
    }
    *out = p;
    return RG_OK;
}

void dec_pool_free(dec_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 1; i < p->n; i++)
        pthread_join(p->threads[i - 1], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p);
}

void dec_pool_set_idle(dec_pool *p, unsigned busy_polls, unsigned yield_polls)
{
    atomic_store_explicit(&p->busy_polls, busy_polls, memory_order_relaxed);
    atomic_store_explicit(&p->yield_polls, yield_polls, memory_order_relaxed);
}

size_t dec_pool_size(const dec_pool *p)
{
    return p->n;
}

void dec_pool_run(dec_pool *p, dec_pool_fn fn, void *ctx)
{
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->open, 1);
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    atomic_store(&p->open, 0);
    for (unsigned polls = 0; atomic_load(&p->joined) != 0; polls++) {
        if (polls < BUSY_POLLS)
            cpu_relax();
        else
            sched_yield();
    }
}
