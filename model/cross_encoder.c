/* cross_encoder.c - BERT sequence-classification rerankers (see
 * cross_encoder.h). The encoder does the heavy work; this file reads the
 * head, encodes pairs and turns [CLS] states into logits. */
#include "model/cross_encoder.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/cross_encoder_gguf.h"
#include "model/encoder.h"
#include "model/weights.h"

#define CE_JSON_MAX (1u << 20)

struct rg_cross_encoder {
    rg_encoder *enc;
    size_t H;
    size_t max_tokens;
    float *pool_w, *pool_b; /* [H, H], [H] */
    float *cls_w;           /* [H] (the single row of [1, H]) */
    float cls_b;
};

static rg_status read_json(const char *path, cJSON **out, rg_err *e)
{
    rg_buf b;
    rg_buf_init(&b, 0);
    *out = NULL;
    rg_status st = fs_read_file(path, CE_JSON_MAX, &b, e);
    if (st == RG_OK) {
        *out = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
        if (!*out)
            st = rg_error(e, RG_ERR_CORRUPT, "%s: not valid JSON", path);
    }
    rg_buf_free(&b);
    return st;
}

/* What config.json says about the head: the architecture and one label. */
static rg_status check_head_config(const char *dir, rg_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j;
    rg_status st = read_json(path, &j, e);
    if (st != RG_OK)
        return st;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    const cJSON *a0 = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : NULL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (arch && !(cJSON_IsArray(arch) && cJSON_GetArraySize(arch) == 1 && cJSON_IsString(a0))) {
        st = rg_error(e, RG_ERR_CORRUPT, "%s: \"architectures\" must be a list of one name", path);
    } else if (a0 && strcmp(a0->valuestring, "BertForSequenceClassification") != 0) {
        st = rg_error(e, RG_ERR_UNSUPPORTED,
                      "%s: architecture %s is not supported as a reranker (only BertForSequenceClassification)",
                      path, a0->valuestring);
    } else if (cJSON_IsString(type) && strcmp(type->valuestring, "bert") != 0) {
        st = rg_error(e, RG_ERR_UNSUPPORTED,
                      "%s: model_type \"%s\" is not supported as a reranker (only BERT cross-encoders)", path,
                      type->valuestring);
    } else {
        /* transformers: num_labels = len(id2label), 2 when neither is given. */
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(j, "id2label");
        const cJSON *num = cJSON_GetObjectItemCaseSensitive(j, "num_labels");
        double n = 2;
        if (cJSON_IsObject(labels))
            n = cJSON_GetArraySize(labels);
        else if (cJSON_IsNumber(num))
            n = num->valuedouble;
        if (n != 1)
            st = rg_error(e, RG_ERR_UNSUPPORTED,
                          "%s: the classifier has %g labels; a reranker needs exactly one (id2label with one entry)",
                          path, n);
    }
    cJSON_Delete(j);
    return st;
}

/* min(tokenizer_config model_max_length, positions), as sentence-transformers. */
static rg_status load_max_tokens(rg_cross_encoder *ce, const char *dir, rg_err *e)
{
    size_t positions = encoder_config(ce->enc)->max_position_embeddings;
    ce->max_tokens = positions;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (fs_is_file(path)) {
        cJSON *j;
        rg_status st = read_json(path, &j, e);
        if (st != RG_OK)
            return st;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model_max_length");
        /* Tokenizers without a limit store a huge sentinel: the cap wins. */
        if (cJSON_IsNumber(m) && m->valuedouble >= 1 && m->valuedouble < (double)positions)
            ce->max_tokens = (size_t)m->valuedouble;
        cJSON_Delete(j);
    }
    size_t specials = tokenizer_num_special(encoder_tokenizer(ce->enc), 1);
    if (ce->max_tokens <= specials)
        return rg_error(e, RG_ERR_CORRUPT, "%s: a limit of %zu tokens leaves no room for a pair", dir, ce->max_tokens);
    return RG_OK;
}

static rg_status load_f32(const rg_weights *w, const char *name, int rank, size_t d0, size_t d1, float **out,
                          rg_err *e)
{
    size_t shape[2] = {d0, d1};
    const rg_st_tensor *t;
    rg_status st = weights_expect(w, name, rank, shape, &t, e);
    if (st != RG_OK)
        return st;
    *out = malloc(t->nelem * sizeof **out);
    if (!*out)
        return rg_error(e, RG_ERR_NOMEM, "out of memory reading %s", name);
    if ((st = tensor_to_f32(t, *out, t->nelem, e)) != RG_OK)
        return rg_error_wrap(e, "%s", name);
    return RG_OK;
}

static rg_status load_head(rg_cross_encoder *ce, const char *dir, rg_err *e)
{
    rg_weights *w;
    rg_status st = weights_open(dir, &w, e);
    if (st != RG_OK)
        return st;
    size_t H = ce->H;
    const char *pool = weights_find(w, "bert.pooler.dense.weight") ? "bert.pooler.dense" : "pooler.dense";
    char name[64];
    float *cls_b = NULL;
    if (!weights_find(w, "bert.pooler.dense.weight") && !weights_find(w, "pooler.dense.weight")) {
        st = rg_error(e, RG_ERR_CORRUPT,
                      "%s: no pooler (bert.pooler.dense.weight), which BertForSequenceClassification has", dir);
        goto out;
    }
    snprintf(name, sizeof name, "%s.weight", pool);
    if ((st = load_f32(w, name, 2, H, H, &ce->pool_w, e)) != RG_OK)
        goto out;
    snprintf(name, sizeof name, "%s.bias", pool);
    if ((st = load_f32(w, name, 1, H, 0, &ce->pool_b, e)) != RG_OK)
        goto out;
    const rg_st_tensor *cw = weights_find(w, "classifier.weight");
    if (cw && cw->rank == 2 && cw->shape[0] != 1) {
        st = rg_error(e, RG_ERR_UNSUPPORTED, "%s: classifier.weight has %zu outputs; a reranker needs one", dir,
                      cw->shape[0]);
        goto out;
    }
    if ((st = load_f32(w, "classifier.weight", 2, 1, H, &ce->cls_w, e)) != RG_OK ||
        (st = load_f32(w, "classifier.bias", 1, 1, 0, &cls_b, e)) != RG_OK)
        goto out;
    ce->cls_b = cls_b[0];
out:
    free(cls_b);
    weights_close(w);
    if (st != RG_OK)
        rg_error_wrap(e, "%s", dir);
    return st;
}

/* A GGUF file (cross_encoder_gguf.h): the head first (cheap, and the
 * clearest refusal), then the encoder, whose limit is bert.context_length. */
static rg_status load_gguf(const char *path, rg_device device, rg_cross_encoder **out, rg_err *e)
{
    ce_gguf_head head;
    rg_status st = cross_encoder_gguf_head(path, &head, e);
    if (st != RG_OK)
        return st;
    rg_cross_encoder *ce = calloc(1, sizeof *ce);
    if (!ce) {
        cross_encoder_gguf_head_free(&head);
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    }
    ce->pool_w = head.pool_w, ce->pool_b = head.pool_b, ce->cls_w = head.cls_w, ce->cls_b = head.cls_b;
    rg_encoder_opts eo;
    encoder_opts_default(&eo);
    eo.device = device;
    eo.gguf_rank = 1;
    if ((st = encoder_load_opts(path, &eo, &ce->enc, e)) != RG_OK)
        goto fail;
    ce->H = encoder_dim(ce->enc);
    if (ce->H != head.H) { /* both read bert.embedding_length: an internal slip */
        st = rg_error(e, RG_ERR_CORRUPT, "%s: the head is for %zu dimensions, the encoder has %zu", path, head.H,
                      ce->H);
        goto fail;
    }
    ce->max_tokens = encoder_max_tokens(ce->enc);
    if (ce->max_tokens <= tokenizer_num_special(encoder_tokenizer(ce->enc), 1)) {
        st = rg_error(e, RG_ERR_CORRUPT, "%s: a limit of %zu tokens leaves no room for a pair", path, ce->max_tokens);
        goto fail;
    }
    LOG_INFO("cross-encoder: %s (GGUF): pairs of at most %zu tokens", path, ce->max_tokens);
    *out = ce;
    return RG_OK;
fail:
    cross_encoder_free(ce);
    return st;
}

rg_status cross_encoder_load(const char *model_dir, rg_device device, rg_cross_encoder **out, rg_err *e)
{
    *out = NULL;
    if (!model_dir || strlen(model_dir) > 3000)
        return rg_error(e, RG_ERR_INVALID, "cross-encoder: invalid model directory");
    if (fs_is_file(model_dir))
        return load_gguf(model_dir, device, out, e);
    if (!fs_is_dir(model_dir))
        return rg_error(e, RG_ERR_NOT_FOUND, "cross-encoder: %s is neither a directory nor a GGUF file", model_dir);
    rg_status st = check_head_config(model_dir, e);
    if (st != RG_OK)
        return st;
    rg_cross_encoder *ce = calloc(1, sizeof *ce);
    if (!ce)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    rg_encoder_opts eo;
    encoder_opts_default(&eo);
    eo.device = device;
    if ((st = encoder_load_opts(model_dir, &eo, &ce->enc, e)) != RG_OK)
        goto fail;
    ce->H = encoder_dim(ce->enc);
    if ((st = load_max_tokens(ce, model_dir, e)) != RG_OK || (st = load_head(ce, model_dir, e)) != RG_OK)
        goto fail;
    LOG_INFO("cross-encoder: %s: pairs of at most %zu tokens", model_dir, ce->max_tokens);
    *out = ce;
    return RG_OK;
fail:
    cross_encoder_free(ce);
    return st;
}

void cross_encoder_free(rg_cross_encoder *ce)
{
    if (!ce)
        return;
    encoder_free(ce->enc);
    free(ce->pool_w);
    free(ce->pool_b);
    free(ce->cls_w);
    free(ce);
}

size_t cross_encoder_max_tokens(const rg_cross_encoder *ce) { return ce->max_tokens; }
const rg_tokenizer *cross_encoder_tokenizer(const rg_cross_encoder *ce) { return encoder_tokenizer(ce->enc); }
rg_device cross_encoder_device(const rg_cross_encoder *ce) { return encoder_device(ce->enc); }
const char *cross_encoder_device_desc(const rg_cross_encoder *ce) { return encoder_device_desc(ce->enc); }

rg_status cross_encoder_encode(const rg_cross_encoder *ce, const char *query, size_t query_len, const char *passage,
                               size_t passage_len, int truncate, rg_encoding *out, rg_err *e)
{
    rg_status st = tokenizer_encode_pair(encoder_tokenizer(ce->enc), query, query_len, passage, passage_len,
                                         truncate ? ce->max_tokens : 0, RG_TRUNC_END, out, e);
    if (st == RG_OK && out->n > ce->max_tokens)
        return rg_error(e, RG_ERR_INVALID, "the query and passage make %zu tokens; the reranker takes at most %zu",
                        out->n, ce->max_tokens);
    return st;
}

/* logit = classifier(tanh(pooler([CLS] state))) */
static float head_logit(const rg_cross_encoder *ce, const float *cls)
{
    size_t H = ce->H;
    float logit = ce->cls_b;
    for (size_t o = 0; o < H; o++) {
        const float *row = ce->pool_w + o * H;
        float s = ce->pool_b[o];
        for (size_t i = 0; i < H; i++)
            s += row[i] * cls[i];
        logit += ce->cls_w[o] * tanhf(s);
    }
    return logit;
}

rg_status cross_encoder_logits(const rg_cross_encoder *ce, const rg_encoding *const *pairs, size_t n, float *logits,
                               rg_err *e)
{
    if (n == 0)
        return RG_OK;
    size_t T = 0, H = ce->H;
    for (size_t i = 0; i < n; i++) {
        if (pairs[i]->n == 0 || pairs[i]->n > ce->max_tokens)
            return rg_error(e, RG_ERR_INVALID, "cross-encoder: a pair of %zu tokens (limit %zu)", pairs[i]->n,
                            ce->max_tokens);
        if (pairs[i]->n > T)
            T = pairs[i]->n;
    }
    if (n > ((size_t)1 << 40) / (T * H))
        return rg_error(e, RG_ERR_TOO_LARGE, "cross-encoder: batch of %zu pairs is too large", n);
    int32_t *ids = calloc(n * T, sizeof *ids), *types = calloc(n * T, sizeof *types);
    int32_t *mask = calloc(n * T, sizeof *mask);
    float *hidden = malloc(n * T * H * sizeof *hidden);
    rg_status st = RG_OK;
    if (!ids || !types || !mask || !hidden) {
        st = rg_error(e, RG_ERR_NOMEM, "cross-encoder: out of memory for %zu x %zu tokens", n, T);
        goto out;
    }
    int32_t pad = tokenizer_pad_id(encoder_tokenizer(ce->enc));
    for (size_t i = 0; i < n; i++)
        for (size_t t = 0; t < T; t++) {
            size_t r = i * T + t;
            if (t < pairs[i]->n) {
                ids[r] = pairs[i]->ids[t];
                types[r] = pairs[i]->type_ids[t];
                mask[r] = 1;
            } else {
                ids[r] = pad; /* type 0, mask 0: what transformers pads with */
            }
        }
    if ((st = encoder_forward(ce->enc, ids, types, mask, n, T, hidden, e)) != RG_OK)
        goto out;
    for (size_t i = 0; i < n; i++)
        logits[i] = head_logit(ce, hidden + i * T * H);
out:
    free(ids), free(types), free(mask), free(hidden);
    return st;
}

typedef struct {
    size_t len, idx;
} len_idx;

static int by_len_desc(const void *a, const void *b)
{
    const len_idx *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? 1 : -1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

rg_status cross_encoder_score(const rg_cross_encoder *ce, const char *query, size_t query_len,
                              const char *const *passages, const size_t *lens, size_t n, size_t max_batch,
                              float *logits, size_t *tokens, rg_err *e)
{
    if (tokens)
        *tokens = 0;
    if (n == 0)
        return RG_OK;
    if (!max_batch)
        max_batch = 1;
    rg_encoding *encs = calloc(n, sizeof *encs);
    len_idx *order = calloc(n, sizeof *order);
    const rg_encoding **batch = calloc(max_batch < n ? max_batch : n, sizeof *batch);
    float *out = calloc(max_batch < n ? max_batch : n, sizeof *out);
    rg_status st = encs && order && batch && out ? RG_OK : rg_error(e, RG_ERR_NOMEM, "out of memory");
    size_t total = 0;
    for (size_t i = 0; i < n && st == RG_OK; i++) {
        const char *p = passages[i] ? passages[i] : "";
        st = cross_encoder_encode(ce, query, query_len, p, lens ? lens[i] : strlen(p), 1, &encs[i], e);
        if (st == RG_OK) {
            order[i].len = encs[i].n;
            order[i].idx = i;
            total += encs[i].n;
        }
    }
    if (st == RG_OK)
        qsort(order, n, sizeof *order, by_len_desc);
    for (size_t i = 0; i < n && st == RG_OK; i += max_batch) {
        size_t m = n - i < max_batch ? n - i : max_batch;
        for (size_t k = 0; k < m; k++)
            batch[k] = &encs[order[i + k].idx];
        st = cross_encoder_logits(ce, batch, m, out, e);
        for (size_t k = 0; k < m && st == RG_OK; k++)
            logits[order[i + k].idx] = out[k];
    }
    if (st == RG_OK && tokens)
        *tokens = total;
    for (size_t i = 0; encs && i < n; i++)
        encoding_free(&encs[i]);
    free(encs), free(order), free(batch), free(out);
    return st;
}
