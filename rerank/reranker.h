/* reranker.h - the reranker engine: one worker thread owns the model;
 * callers from any thread submit a query with its passages and wait for one
 * logit per passage. Two kinds of model serve behind the same calls:
 *
 *   cross-encoder  a BERT sequence classifier (model/cross_encoder.h): a
 *                  Hugging Face directory, or a GGUF file whose
 *                  general.architecture is "bert"; the logit is its output.
 *   causal-lm      a chat decoder asked "yes" or "no" (model/lm_reranker.h):
 *                  any other GGUF file, or a Hugging Face directory whose
 *                  config.json names a *ForCausalLM architecture; the logit
 *                  is logit("yes") - logit("no").
 *
 * Callers tokenize their own pairs (in parallel, on their own threads, and
 * so learn at once whether a pair is over-long); the worker takes the
 * oldest request and further queued ones while their tokens fit the
 * batch budget. Cross-encoder: it sorts all their pairs by length (longest
 * first, so a batch pads little) and runs padded forward passes of at most
 * max_batch pairs and batch_tokens padded tokens each. Causal-LM: each
 * request's query prefix is computed once and every passage continues it
 * (model/lm_reranker.h). A full queue answers RG_ERR_BUSY at once instead
 * of growing. */
#ifndef RAGD_RERANK_RERANKER_H
#define RAGD_RERANK_RERANKER_H

#include <stddef.h>

#include "common/err.h"
#include "model/backend.h"
#include "model/lm_reranker.h"

typedef struct rg_reranker rg_reranker;

typedef struct rg_reranker_opts {
    size_t queue_capacity; /* requests waiting */
    size_t batch_tokens;   /* padded tokens of one forward pass (at least one pair) */
    size_t max_batch;      /* pairs of one forward pass */
    rg_device device;      /* where the model runs (default cpu; see model/encoder.h, model/decoder.h) */
    size_t max_tokens;     /* causal-lm: tokens per prompt (0: LM_RERANKER_DEFAULT_MAX_TOKENS,
                            * never beyond the model's context) */
    size_t threads;        /* causal-lm: the decoder's CPU threads (0: its default) */
    rg_lm_precision precision; /* causal-lm: the CPU arithmetic (default f32, model/lm_reranker.h) */
} rg_reranker_opts;

typedef enum rg_reranker_kind {
    RG_RERANKER_CROSS_ENCODER = 0,
    RG_RERANKER_CAUSAL_LM = 1
} rg_reranker_kind;

void reranker_opts_default(rg_reranker_opts *o);

/* Loads the model at path (a cross-encoder directory, or a causal LM: GGUF
 * file or decoder directory, see above) and starts the worker. */
rg_status reranker_start(const char *path, const rg_reranker_opts *o, rg_reranker **out, rg_err *e);
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
/* The model's name: the last component of its directory; for a causal LM
 * the file's name without ".gguf" and with "-rerank" appended, so that it
 * differs from the same file's id as a generator in /v1/models. */
const char *reranker_model_id(const rg_reranker *rr);
/* Whether a request's "model" names this reranker: its id, or for a causal
 * LM also the model's own name (without "-rerank"). */
int reranker_model_matches(const rg_reranker *rr, const char *name);
rg_reranker_kind reranker_kind(const rg_reranker *rr);
/* "cross-encoder" or "causal-lm" (what /v1/models calls the method). */
const char *reranker_method(const rg_reranker *rr);
/* Where the model runs (cpu or cuda, never auto) and that device in one line. */
rg_device reranker_device(const rg_reranker *rr);
/* A causal-LM reranker's CPU arithmetic ("f32" or "q8"); NULL for a
 * cross-encoder (f32 on the CPU, bf16 products on CUDA). */
const char *reranker_precision(const rg_reranker *rr);
const char *reranker_device_desc(const rg_reranker *rr);

/* The relevance score reported beside a logit: sigmoid(logit), the
 * probability sentence-transformers' CrossEncoder returns for one-label
 * models by default; for a causal LM, P(yes) of a softmax over yes and no
 * (what Qwen3-Reranker reports). */
double reranker_relevance(double logit);

#endif
