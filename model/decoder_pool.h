/* decoder_pool.h - the decoder's small thread pool. Every matrix product of a
 * forward pass is split by rows over the pool; a decode step runs a few
 * hundred of them, so dispatch must cost microseconds, not a condition
 * variable round trip: idle workers poll briefly (yielding the CPU) before
 * they sleep. */
#ifndef RAGD_MODEL_DECODER_POOL_H
#define RAGD_MODEL_DECODER_POOL_H

#include <stddef.h>

#include "common/err.h"

typedef struct dec_pool dec_pool;

/* fn runs once on every worker (0 .. n_workers-1; worker 0 is the caller). */
typedef void (*dec_pool_fn)(void *ctx, size_t worker, size_t n_workers);

rg_status dec_pool_create(size_t n_workers, dec_pool **out, rg_err *e);
void dec_pool_free(dec_pool *p); /* NULL is fine; joins the threads */
size_t dec_pool_size(const dec_pool *p);
/* Runs fn on all workers and returns when every one has finished. */
void dec_pool_run(dec_pool *p, dec_pool_fn fn, void *ctx);

/* The share [begin, end) of n items that worker w of nw takes. */
void dec_pool_split(size_t n, size_t w, size_t nw, size_t *begin, size_t *end);

#endif
