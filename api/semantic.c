#include "api/semantic.h"

#include "common/fs.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

rg_status semantic_backlog_start(rg_semantic *sem, rg_store *s, rg_err *e)
{
    if (!sem->embedder || !sem->vindex)
        return RG_OK;
    return backlog_start(s, sem->embedder, sem->vindex, &sem->backlog, e);
}

void semantic_backlog_stop(rg_semantic *sem)
{
    backlog_stop(sem->backlog);
    sem->backlog = NULL;
}

rg_status semantic_index_parse(const char *spec, rg_index_settings *out, rg_err *e)
{
    store_index_settings_default(out);
    size_t len = strlen(spec);
    if (len > 200)
        return rg_error(e, RG_ERR_INVALID, "index spec longer than 200 characters");
    char buf[201];
    memcpy(buf, spec, len + 1);
    char *save = NULL;
    char *tok = strtok_r(buf, ",", &save);
    if (!tok || (strcmp(tok, STORE_INDEX_FLAT) != 0 && strcmp(tok, STORE_INDEX_HNSW) != 0))
        return rg_error(e, RG_ERR_INVALID, "'%s': the index type must be flat or hnsw", spec);
    snprintf(out->type, sizeof out->type, "%s", tok);
    while ((tok = strtok_r(NULL, ",", &save))) {
        if (strcmp(out->type, STORE_INDEX_HNSW) != 0)
            return rg_error(e, RG_ERR_INVALID, "'%s': a flat index takes no parameters", spec);
        char *eq = strchr(tok, '=');
        char *end = NULL;
        long v = eq ? strtol(eq + 1, &end, 10) : 0;
        if (!eq || end == eq + 1 || *end || v < 0 || v > 1000000)
            return rg_error(e, RG_ERR_INVALID, "'%s': expected NAME=INTEGER, not '%s'", spec, tok);
        *eq = '\0';
        if (strcmp(tok, "m") == 0)
            out->hnsw_m = (int)v;
        else if (strcmp(tok, "ef_construction") == 0)
            out->ef_construction = (int)v;
        else if (strcmp(tok, "ef_search") == 0)
            out->ef_search = (int)v;
        else
            return rg_error(e, RG_ERR_INVALID, "'%s': unknown index setting '%s' (m, ef_construction, ef_search)",
                            spec, tok);
    }
    return store_index_settings_check(out, e);
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
