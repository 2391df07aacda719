/* decoder_kv.c - per-sequence key/value caches: every layer's keys and values
 * for positions 0..cap-1, in f16 (llama.cpp's default) or f32. The size is
 * fixed at allocation and checked against the model's trained context. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/decoder_internal.h"

static size_t elem_size(rg_kv_type t)
{
    return t == RG_KV_F32 ? sizeof(float) : sizeof(uint16_t);
}

size_t kv_cache_bytes(const rg_decoder *d, size_t max_tokens, rg_kv_type type)
{
    const llama_config *c = &d->cfg;
    size_t kvd = c->n_head_kv * c->head_dim, es = elem_size(type);
    /* 2 (K and V) * layers * tokens * kv_dim * element size, overflow-checked */
    size_t per_tok = kvd * es * 2;
    if (per_tok / 2 / es != kvd || c->n_layer == 0 || max_tokens > SIZE_MAX / per_tok / c->n_layer)
        return 0;
    return per_tok * c->n_layer * max_tokens;
}

rg_status kv_cache_alloc(const rg_decoder *d, size_t max_tokens, rg_kv_type type, rg_kv_cache **out, rg_err *e)
{
    *out = NULL;
    const llama_config *c = &d->cfg;
    if (type != RG_KV_F16 && type != RG_KV_F32)
        return rg_error(e, RG_ERR_INVALID, "unknown KV cache type %d", (int)type);
    if (max_tokens == 0 || max_tokens > c->n_ctx_train)
        return rg_error(e, RG_ERR_INVALID, "KV cache of %zu tokens: must be 1..%zu (the model's context)",
                        max_tokens, c->n_ctx_train);
    size_t bytes = kv_cache_bytes(d, max_tokens, type);
    if (bytes == 0)
        return rg_error(e, RG_ERR_TOO_LARGE, "KV cache of %zu tokens overflows", max_tokens);
    rg_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    kv->n_layer = c->n_layer;
    kv->kv_dim = c->n_head_kv * c->head_dim;
    kv->cap = max_tokens;
    kv->type = type;
    rg_status st = dec_device_kv_alloc(d, kv, bytes / 2, e);
    if (st != RG_OK) {
        kv_cache_free(kv);
        return st;
    }
    *out = kv;
    return RG_OK;
}

void kv_cache_free(rg_kv_cache *kv)
{
    if (!kv)
        return;
    dec_device_kv_free(kv);
    free(kv);
}

void kv_cache_reset(rg_kv_cache *kv)
{
    kv->len = 0;
}

size_t kv_cache_len(const rg_kv_cache *kv)
{
    return kv->len;
}

size_t kv_cache_capacity(const rg_kv_cache *kv)
{
    return kv->cap;
}

void kv_cache_truncate(rg_kv_cache *kv, size_t n)
{
    /* Positions are written before they are read, so dropping the tail is
     * only a matter of the length. */
    if (n < kv->len)
        kv->len = n;
}

int dec_cache_matches(const rg_decoder *d, const rg_kv_cache *kv)
{
    return kv->n_layer == d->cfg.n_layer && kv->kv_dim == d->cfg.n_head_kv * d->cfg.head_dim;
}

rg_status kv_cache_copy_prefix(const rg_decoder *d, rg_kv_cache *dst, const rg_kv_cache *src, size_t n, rg_err *e)
{
    size_t kvd = d->cfg.n_head_kv * d->cfg.head_dim;
    if (!dec_cache_matches(d, src) || !dec_cache_matches(d, dst))
        return rg_error(e, RG_ERR_INVALID, "KV cache belongs to another model");
    if (src->type != dst->type || src->on_device != dst->on_device)
        return rg_error(e, RG_ERR_INVALID, "KV caches of different types or devices");
    if (n > src->len)
        return rg_error(e, RG_ERR_INVALID, "copying %zu positions of a cache holding %zu", n, src->len);
    if (n > dst->cap)
        return rg_error(e, RG_ERR_TOO_LARGE, "%zu positions do not fit a %zu-position cache", n, dst->cap);
    if (dst == src) {
        dst->len = n;
        return RG_OK;
    }
    size_t es = elem_size(src->type), row = n * kvd * es;
    rg_status st = RG_OK;
    if (n > 0) {
        if (src->on_device) {
            st = dec_device_kv_copy(d, dst, src, row, e);
        } else {
            /* [layer][cap][kv_dim]: each layer's first n rows are contiguous */
            for (size_t l = 0; l < d->cfg.n_layer; l++) {
                memcpy((char *)dst->k + l * dst->cap * kvd * es, (const char *)src->k + l * src->cap * kvd * es, row);
                memcpy((char *)dst->v + l * dst->cap * kvd * es, (const char *)src->v + l * src->cap * kvd * es, row);
            }
        }
    }
    if (st == RG_OK)
        dst->len = n;
    return st;
}
