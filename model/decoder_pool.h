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

/* fn runs on the caller (worker 0) and on each other worker (1 .. n-1) that
 * wakes up before the caller has finished its own call: fn must share its
 * work dynamically (take chunks from a counter until none are left), never
 * assume that every worker runs. That way a worker descheduled on a busy
 * machine costs nothing: the others do its share and nobody waits for it. */
typedef void (*dec_pool_fn)(void *ctx, size_t worker, size_t n_workers);

rg_status dec_pool_create(size_t n_workers, dec_pool **out, rg_err *e);
void dec_pool_free(dec_pool *p); /* NULL is fine; joins the threads */
size_t dec_pool_size(const dec_pool *p);
/* Runs fn as above and returns when every call of it has returned. */
void dec_pool_run(dec_pool *p, dec_pool_fn fn, void *ctx);
/* How many times an idle worker polls for new work (busy, then yielding
 * the CPU) before it sleeps until woken. The defaults (about 1-3 ms in
 * all) suit a forward pass on the CPU, which dispatches every few tens of
 * microseconds. A decoder on a GPU uses its pool once per step, to pick
 * tokens, and sets short polls: its workers would otherwise spin through
 * every step, keeping all their cores busy for nothing. */
void dec_pool_set_idle(dec_pool *p, unsigned busy_polls, unsigned yield_polls);
/* A GPU decoder's busy polls: about 50-150 microseconds, long enough for
 * the picks of one step to reach every worker, then sleep. */
#define DEC_POOL_GPU_BUSY_POLLS 1000


#endif
