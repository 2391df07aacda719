#include "api/semantic.h"

#include "common/fs.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static rg_status embed_bulk(void *ctx, const char *const *texts, const size_t *lens, size_t n, float *out, rg_err *e)
{
    rg_semantic *sem = ctx;
    return embedder_embed(sem->embedder, texts, lens, n, RG_TRUNC_END, 0, out, NULL, e);
}

/* Index files are caches (rebuilt or caught up from the store at start),
 * so they are rewritten at most this often while ingesting. */
#define SEMANTIC_SAVE_INTERVAL_MS 10000

static rg_status vectors_stored(void *ctx, int64_t collection_id, rg_err *e)
{
    rg_semantic *sem = ctx;
    if (!sem->vindex)
        return RG_OK;
    rg_status st = vindex_sync(sem->vindex, collection_id, e);
    long long now = (long long)clock_now_ms(), last = sem->last_save_ms;
    if (!st && now - last >= SEMANTIC_SAVE_INTERVAL_MS && atomic_compare_exchange_strong(&sem->last_save_ms, &last, now))
        st = vindex_save_dirty(sem->vindex, e);
    return st;
}

void semantic_default_model(char *out, size_t size)
{
    const char *models = getenv("RAGD_MODELS");
    snprintf(out, size, "%s/all-MiniLM-L6-v2", models && *models ? models : "./models");
}

void semantic_attach(rg_semantic *sem, rg_ingest_opts *o)
{
    if (!sem->embedder)
        return;
    o->embed = embed_bulk;
    o->embed_ctx = sem;
    o->embed_model = embedder_model_id(sem->embedder);
    o->embed_dim = (int)embedder_dim(sem->embedder);
    o->vectors_stored = vectors_stored;
    /* Chunks are sized in the model's own tokens, so none is cut short by
     * the encoder: at most its limit less [CLS] and [SEP]. */
    o->chunk.count = tokenizer_count_fn;
    o->chunk.count_ctx = (void *)embedder_tokenizer(sem->embedder);
    size_t max = embedder_max_tokens(sem->embedder) - 2;
    if (o->chunk.target_tokens > max)
        o->chunk.target_tokens = max;
    if (o->chunk.overlap_tokens * 2 >= o->chunk.target_tokens)
        o->chunk.overlap_tokens = o->chunk.target_tokens / 4;
}
