/* embedder.h - the embedder engine: one worker thread owns the encoder;
 * callers from any thread submit texts and wait for their vectors.
 *
 * Requests wait in two bounded queues, interactive (queries, the
 * /v1/embeddings endpoint) and bulk (ingestion); the worker always serves
 * interactive work first, so queries are not starved by a large ingest.
 * Dynamic batching: the worker takes the oldest request and adds further
 * queued requests of the same class and truncation side while the batch
 * stays within its token budget (estimated from text length, capped at the
 * model's limit per text), then runs one encoder call for all of them. A
 * full queue answers RG_ERR_BUSY at once instead of growing. */
#ifndef RAGD_INDEX_EMBEDDER_H
#define RAGD_INDEX_EMBEDDER_H

#include <stddef.h>

#include "common/err.h"
#include "model/backend.h"
#include "model/tokenizer.h"

typedef struct rg_embedder rg_embedder;

typedef struct rg_embedder_opts {
    size_t queue_capacity; /* requests waiting per class */
    size_t batch_tokens;   /* token budget of one encoder call */
    rg_device device;      /* where the encoder runs (default cpu; see encoder.h) */
} rg_embedder_opts;

void embedder_opts_default(rg_embedder_opts *o);

/* Loads the model in model_dir and starts the worker. */
rg_status embedder_start(const char *model_dir, const rg_embedder_opts *o, rg_embedder **out, rg_err *e);
/* Answers what is queued, then stops the worker and frees the model. */
void embedder_stop(rg_embedder *em);

/* Embeds n texts into out (n * embedder_dim floats), blocking until done.
 * *tokens (may be NULL) gets the tokens processed. */
rg_status embedder_embed(rg_embedder *em, const char *const *texts, const size_t *lens, size_t n, rg_trunc_side side,
                         int interactive, float *out, size_t *tokens, rg_err *e);

size_t embedder_dim(const rg_embedder *em);
/* Most tokens per input, special tokens included. */
size_t embedder_max_tokens(const rg_embedder *em);
const rg_tokenizer *embedder_tokenizer(const rg_embedder *em);
/* The model's name: the last component of its directory. */
const char *embedder_model_id(const rg_embedder *em);
/* Where the encoder runs (cpu or cuda, never auto) and that device in one line. */
rg_device embedder_device(const rg_embedder *em);
const char *embedder_device_desc(const rg_embedder *em);

#endif
