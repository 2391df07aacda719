/* reranker.h - the reranker engine: one worker thread owns the
 * cross-encoder (model/cross_encoder.h); callers from any thread submit a
 * query with its passages and wait for one logit per passage.
 *
 * Callers tokenize their own pairs (in parallel, on their own threads, and
 * so learn at once whether a pair is over-long); the worker takes the
 * oldest request and further queued ones while their tokens fit the
 * batch budget, sorts all their pairs by length (longest first, so a batch
 * pads little) and runs padded forward passes of at most max_batch pairs
 * and batch_tokens padded tokens each. A full queue answers RG_ERR_BUSY at
 * once instead of growing. */
#ifndef RAGD_RERANK_RERANKER_H
#define RAGD_RERANK_RERANKER_H

#include <stddef.h>

#include "common/err.h"
#include "model/backend.h"

typedef struct rg_reranker rg_reranker;

typedef struct rg_reranker_opts {
    size_t queue_capacity; /* requests waiting */
    size_t batch_tokens;   /* padded tokens of one forward pass (at least one pair) */
    size_t max_batch;      /* pairs of one forward pass */
    rg_device device;      /* where the encoder runs (default cpu; see model/encoder.h) */
} rg_reranker_opts;

void reranker_opts_default(rg_reranker_opts *o);

/* Loads the cross-encoder in model_dir and starts the worker. */
rg_status reranker_start(const char *model_dir, const rg_reranker_opts *o, rg_reranker **out, rg_err *e);
/* Answers what is queued, then stops the worker and frees the model. */
void reranker_stop(rg_reranker *rr); /* NULL is fine */

/* Scores query against n passages (lens may be NULL: NUL-terminated) into
 * logits[n], blocking until done. truncate: cut over-long pairs
 * (longest-first, see model/cross_encoder.h); otherwise an over-long pair
 * fails the call with RG_ERR_INVALID naming its index, its tokens and the
 * limit. *tokens (may be NULL) gets the tokens processed. */
rg_status reranker_score(rg_reranker *rr, const char *query, const char *const *passages, const size_t *lens,
                         size_t n, int truncate, float *logits, size_t *tokens, rg_err *e);

/* Most tokens per pair, specials included. */
size_t reranker_max_tokens(const rg_reranker *rr);
/* The model's name: the last component of its directory. */
const char *reranker_model_id(const rg_reranker *rr);
/* Where the model runs (cpu or cuda, never auto) and that device in one line. */
rg_device reranker_device(const rg_reranker *rr);
const char *reranker_device_desc(const rg_reranker *rr);

/* The relevance score reported beside a logit: sigmoid(logit), the
 * probability sentence-transformers' CrossEncoder returns for one-label
 * models by default. */
double reranker_relevance(double logit);

#endif
