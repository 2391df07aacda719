/* encoder.c - BERT-class sentence encoder: loading, device choice and the
 * embedding batches (see encoder.h); the transformer itself runs in
 * encoder_cpu.c or encoder_cuda.cu. */
#include "model/encoder.h"
#include "model/encoder_internal.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "model/encoder_cuda.h"
#include "model/ops_cpu.h"
#include "model/safetensors.h"
#include "model/weights.h"

#define ENC_JSON_MAX (1u << 20)
#define ENC_DEFAULT_BATCH 32

/* ---- small JSON helpers -------------------------------------------------- */

static rg_status read_json(const char *path, cJSON **out, rg_err *e)
{
    rg_buf b;
    rg_buf_init(&b, 0);
    *out = NULL;
    rg_status st = fs_read_file(path, ENC_JSON_MAX, &b, e);
    if (st != RG_OK) {
        rg_buf_free(&b);
        return st;
    }
    *out = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    rg_buf_free(&b);
    if (!*out)
        return rg_error(e, RG_ERR_CORRUPT, "%s: not valid JSON", path);
    return RG_OK;
}

static int json_true(const cJSON *o, const char *field, int *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v)) {
        *bad = 1;
        return 0;
    }
    return cJSON_IsTrue(v);
}

/* ---- sentence-transformers configuration --------------------------------- */

static rg_status load_max_tokens(rg_encoder *enc, const char *dir, rg_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/sentence_bert_config.json", dir);
    enc->max_tokens = enc->cfg.max_position_embeddings;
    if (!fs_is_file(path))
        return RG_OK;
    cJSON *j;
    rg_status st = read_json(path, &j, e);
    if (st != RG_OK)
        return st;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "max_seq_length");
    if (m && !cJSON_IsNull(m)) {
        if (!cJSON_IsNumber(m) || !(m->valuedouble >= 2.0) ||
            m->valuedouble > (double)enc->cfg.max_position_embeddings || m->valuedouble != (double)(size_t)m->valuedouble) {
            cJSON_Delete(j);
            return rg_error(e, RG_ERR_CORRUPT, "%s: max_seq_length must be an integer in [2, %zu]", path,
                            enc->cfg.max_position_embeddings);
        }
        enc->max_tokens = (size_t)m->valuedouble;
    }
    cJSON_Delete(j);
    return RG_OK;
}

static rg_status load_pooling_config(rg_encoder *enc, const char *path, rg_err *e)
{
    cJSON *j;
    rg_status st = read_json(path, &j, e);
    if (st != RG_OK)
        return st;
    int bad = 0;
    int mean = json_true(j, "pooling_mode_mean_tokens", &bad);
    int cls = json_true(j, "pooling_mode_cls_token", &bad);
    int other = json_true(j, "pooling_mode_max_tokens", &bad) | json_true(j, "pooling_mode_mean_sqrt_len_tokens", &bad) |
                json_true(j, "pooling_mode_weightedmean_tokens", &bad) | json_true(j, "pooling_mode_lasttoken", &bad);
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(j, "pooling_mode");
    if (mode && cJSON_IsString(mode) && !mean && !cls && !other) {
        /* Newer sentence-transformers may write only "pooling_mode". */
        if (strcmp(mode->valuestring, "mean") == 0)
            mean = 1;
        else if (strcmp(mode->valuestring, "cls") == 0)
            cls = 1;
        else
            other = 1;
    }
    const cJSON *dim = cJSON_GetObjectItemCaseSensitive(j, "word_embedding_dimension");
    if (dim && (!cJSON_IsNumber(dim) || dim->valuedouble != (double)enc->cfg.hidden_size)) {
        cJSON_Delete(j);
        return rg_error(e, RG_ERR_CORRUPT, "%s: word_embedding_dimension does not match hidden_size %zu", path,
                        enc->cfg.hidden_size);
    }
    cJSON_Delete(j);
    if (bad)
        return rg_error(e, RG_ERR_CORRUPT, "%s: pooling_mode_* fields must be booleans", path);
    if (other || mean + cls != 1)
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "%s: only one of pooling_mode_mean_tokens or pooling_mode_cls_token is supported", path);
    enc->pooling = cls ? RG_POOL_CLS : RG_POOL_MEAN;
    return RG_OK;
}

static rg_status load_modules(rg_encoder *enc, const char *dir, rg_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/modules.json", dir);
    if (!fs_is_file(path)) {
        enc->pooling = RG_POOL_MEAN;
        enc->normalize = 1;
        LOG_INFO("%s: no modules.json; using mean pooling and L2 normalization", dir);
        return RG_OK;
    }
    cJSON *j;
    rg_status st = read_json(path, &j, e);
    if (st != RG_OK)
        return st;
    if (!cJSON_IsArray(j)) {
        cJSON_Delete(j);
        return rg_error(e, RG_ERR_CORRUPT, "%s: not a JSON array", path);
    }
    char pool_dir[1024] = "";
    int have_pool = 0;
    enc->normalize = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, j)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
        const cJSON *mp = cJSON_GetObjectItemCaseSensitive(m, "path");
        if (!cJSON_IsString(type)) {
            cJSON_Delete(j);
            return rg_error(e, RG_ERR_CORRUPT, "%s: a module has no \"type\" string", path);
        }
        const char *t = type->valuestring;
        if (strcmp(t, "sentence_transformers.models.Transformer") == 0) {
            continue;
        } else if (strcmp(t, "sentence_transformers.models.Pooling") == 0) {
            if (!cJSON_IsString(mp) || strlen(mp->valuestring) >= sizeof pool_dir || strstr(mp->valuestring, "..")) {
                cJSON_Delete(j);
                return rg_error(e, RG_ERR_CORRUPT, "%s: the Pooling module has no valid \"path\"", path);
            }
            snprintf(pool_dir, sizeof pool_dir, "%s", mp->valuestring);
            have_pool = 1;
        } else if (strcmp(t, "sentence_transformers.models.Normalize") == 0) {
            enc->normalize = 1;
        } else {
            rg_error(e, RG_ERR_UNSUPPORTED, "%s: module type \"%s\" is not supported", path, t);
            cJSON_Delete(j);
            return RG_ERR_UNSUPPORTED;
        }
    }
    cJSON_Delete(j);
    if (!have_pool) {
        enc->pooling = RG_POOL_MEAN;
        return RG_OK;
    }
    char pool_path[4096 + 1040];
    snprintf(pool_path, sizeof pool_path, "%s/%s/config.json", dir, pool_dir);
    return load_pooling_config(enc, pool_path, e);
}

/* ---- weights -------------------------------------------------------------- */

typedef struct {
    const rg_weights *st;
    const char *prefix; /* "" or "bert." */
} wctx;

static rg_status load_tensor(wctx *w, const char *name, int rank, size_t d0, size_t d1, float **out, rg_err *e)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", w->prefix, name);
    size_t shape[2] = {d0, d1};
    const rg_st_tensor *t;
    rg_status st = weights_expect(w->st, full, rank, shape, &t, e);
    if (st != RG_OK)
        return st;
    float *buf = malloc(t->nelem * sizeof *buf);
    if (!buf)
        return rg_error(e, RG_ERR_NOMEM, "out of memory converting %s", full);
    st = tensor_to_f32(t, buf, t->nelem, e);
    if (st != RG_OK) {
        free(buf);
        return rg_error_wrap(e, "%s", full);
    }
    *out = buf;
    return RG_OK;
}

#define LT(field, suffix, rank, d0, d1)                                                            \
    do {                                                                                           \
        snprintf(name, sizeof name, "encoder.layer.%zu.%s", l, suffix);                            \
        if ((st = load_tensor(w, name, rank, d0, d1, &ly->field, e)) != RG_OK)                     \
            return st;                                                                             \
    } while (0)

static rg_status load_weights(rg_encoder *enc, wctx *w, rg_err *e)
{
    const rg_bert_config *c = &enc->cfg;
    size_t H = c->hidden_size, I = c->intermediate_size;
    rg_status st;
    if ((st = load_tensor(w, "embeddings.word_embeddings.weight", 2, c->vocab_size, H, &enc->word_emb, e)) != RG_OK ||
        (st = load_tensor(w, "embeddings.position_embeddings.weight", 2, c->max_position_embeddings, H, &enc->pos_emb,
                          e)) != RG_OK ||
        (st = load_tensor(w, "embeddings.token_type_embeddings.weight", 2, c->type_vocab_size, H, &enc->type_emb,
                          e)) != RG_OK ||
        (st = load_tensor(w, "embeddings.LayerNorm.weight", 1, H, 0, &enc->emb_ln_g, e)) != RG_OK ||
        (st = load_tensor(w, "embeddings.LayerNorm.bias", 1, H, 0, &enc->emb_ln_b, e)) != RG_OK)
        return st;
    char name[160];
    for (size_t l = 0; l < c->num_hidden_layers; l++) {
        enc_layer *ly = &enc->layers[l];
        LT(q_w, "attention.self.query.weight", 2, H, H);
        LT(q_b, "attention.self.query.bias", 1, H, 0);
        LT(k_w, "attention.self.key.weight", 2, H, H);
        LT(k_b, "attention.self.key.bias", 1, H, 0);
        LT(v_w, "attention.self.value.weight", 2, H, H);
        LT(v_b, "attention.self.value.bias", 1, H, 0);
        LT(ao_w, "attention.output.dense.weight", 2, H, H);
        LT(ao_b, "attention.output.dense.bias", 1, H, 0);
        LT(aln_g, "attention.output.LayerNorm.weight", 1, H, 0);
        LT(aln_b, "attention.output.LayerNorm.bias", 1, H, 0);
        LT(i_w, "intermediate.dense.weight", 2, I, H);
        LT(i_b, "intermediate.dense.bias", 1, I, 0);
        LT(o_w, "output.dense.weight", 2, H, I);
        LT(o_b, "output.dense.bias", 1, H, 0);
        LT(oln_g, "output.LayerNorm.weight", 1, H, 0);
        LT(oln_b, "output.LayerNorm.bias", 1, H, 0);
    }
    return RG_OK;
}
#undef LT

static void free_weights(rg_encoder *enc)
{
    free(enc->word_emb);
    free(enc->pos_emb);
    free(enc->type_emb);
    free(enc->emb_ln_g);
    free(enc->emb_ln_b);
    if (enc->layers) {
        for (size_t l = 0; l < enc->cfg.num_hidden_layers; l++) {
            float **p = (float **)&enc->layers[l];
            for (size_t i = 0; i < sizeof(enc_layer) / sizeof(float *); i++)
                free(p[i]);
        }
    }
    free(enc->layers);
}

/* ---- device ------------------------------------------------------------------ */

static void cpu_describe(void *ctx, char *desc, size_t desc_size)
{
    (void)ctx;
    backend_cpu_describe(desc, desc_size);
}

#ifdef RAGD_HAVE_CUDA
static rg_status cuda_create(void *ctx, char *desc, size_t desc_size, rg_err *e)
{
    rg_encoder *enc = ctx;
    return encoder_cuda_create(enc, &enc->cuda, desc, desc_size, e);
}
#endif

/* Puts the loaded encoder on the device asked for (see rg_encoder_opts). */
static rg_status select_device(rg_encoder *enc, rg_device want, rg_err *e)
{
    backend_device_hooks h = {.ctx = enc, .cpu_describe = cpu_describe};
#ifdef RAGD_HAVE_CUDA
    h.cuda_create = cuda_create;
#endif
    rg_status st = backend_device_choose("encoder", want, &h, &enc->device, enc->device_desc, sizeof enc->device_desc, e);
    if (st == RG_OK && enc->device == RG_DEVICE_CUDA) {
        /* The GPU holds its own copy; the host one would only cost RAM. */
        free_weights(enc);
        enc->word_emb = enc->pos_emb = enc->type_emb = enc->emb_ln_g = enc->emb_ln_b = NULL;
        enc->layers = NULL;
    }
    return st;
}

/* ---- load / free ----------------------------------------------------------- */

void encoder_opts_default(rg_encoder_opts *o)
{
    o->device = RG_DEVICE_CPU;
    o->gguf_rank = 0;
}

rg_status encoder_load(const char *model_dir, rg_encoder **out, rg_err *e)
{
    return encoder_load_opts(model_dir, NULL, out, e);
}

/* config.json, sentence-transformers files, tokenizer and safetensors
 * weights of a model directory. */
static rg_status load_dir(rg_encoder *enc, const char *model_dir, rg_err *e)
{
    char path[4096];
    rg_status st;
    rg_weights *sf = NULL;
    wctx w = {0};

    snprintf(path, sizeof path, "%s/config.json", model_dir);
    if ((st = bert_config_load(path, &enc->cfg, e)) != RG_OK)
        return st;
    if ((st = load_max_tokens(enc, model_dir, e)) != RG_OK)
        return st;
    if ((st = load_modules(enc, model_dir, e)) != RG_OK)
        return st;
    if ((st = tokenizer_load(model_dir, &enc->tok, e)) != RG_OK)
        return st;
    if (tokenizer_vocab_size(enc->tok) > enc->cfg.vocab_size)
        return rg_error(e, RG_ERR_CORRUPT, "%s: the tokenizer has %zu tokens but vocab_size is %zu", model_dir,
                        tokenizer_vocab_size(enc->tok), enc->cfg.vocab_size);

    /* model.safetensors, or the shards model.safetensors.index.json names */
    if ((st = weights_open(model_dir, &sf, e)) != RG_OK)
        return st;
    w.st = sf;
    w.prefix = weights_find(sf, "bert.embeddings.word_embeddings.weight") ? "bert." : "";
    enc->layers = calloc(enc->cfg.num_hidden_layers, sizeof *enc->layers);
    if (!enc->layers)
        st = rg_error(e, RG_ERR_NOMEM, "out of memory");
    else if ((st = load_weights(enc, &w, e)) != RG_OK)
        rg_error_wrap(e, "%s", model_dir);
    weights_close(sf);
    return st;
}

rg_status encoder_load_opts(const char *model_path, const rg_encoder_opts *o, rg_encoder **out, rg_err *e)
{
    *out = NULL;
    if (!model_path || strlen(model_path) > 3000)
        return rg_error(e, RG_ERR_INVALID, "encoder: invalid model path");
    /* A directory is a Hugging Face model; a file is read as GGUF. */
    int is_file = fs_is_file(model_path);
    if (!is_file && !fs_is_dir(model_path))
        return rg_error(e, RG_ERR_NOT_FOUND, "encoder: %s is neither a model directory nor a GGUF file", model_path);
    rg_encoder *enc = calloc(1, sizeof *enc);
    if (!enc)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    enc->max_batch = ENC_DEFAULT_BATCH;
    enc->gguf_rank = o ? o->gguf_rank : 0;
    rg_status st = is_file ? encoder_gguf_load(enc, model_path, e) : load_dir(enc, model_path, e);
    if (st != RG_OK)
        goto fail;
    if ((st = select_device(enc, o ? o->device : RG_DEVICE_CPU, e)) != RG_OK)
        goto fail;
    if (enc->device == RG_DEVICE_CPU && (st = encoder_cpu_prepare(enc, e)) != RG_OK)
        goto fail;
    LOG_INFO("encoder: %s: %zu layers, hidden %zu, %zu heads, max %zu tokens, %s pooling%s", model_path,
             enc->cfg.num_hidden_layers, enc->cfg.hidden_size, enc->cfg.num_attention_heads, enc->max_tokens,
             enc->pooling == RG_POOL_CLS ? "CLS" : "mean", enc->normalize ? ", normalized" : "");
    *out = enc;
    return RG_OK;

fail:
    encoder_free(enc);
    return st;
}

void encoder_free(rg_encoder *enc)
{
    if (!enc)
        return;
    encoder_cpu_release(enc);
#ifdef RAGD_HAVE_CUDA
    encoder_cuda_free(enc->cuda);
#endif
    free_weights(enc);
    tokenizer_free(enc->tok);
    free(enc);
}

size_t encoder_dim(const rg_encoder *enc) { return enc->cfg.hidden_size; }
size_t encoder_max_tokens(const rg_encoder *enc) { return enc->max_tokens; }
const rg_tokenizer *encoder_tokenizer(const rg_encoder *enc) { return enc->tok; }
const rg_bert_config *encoder_config(const rg_encoder *enc) { return &enc->cfg; }
rg_pooling encoder_pooling(const rg_encoder *enc) { return enc->pooling; }
int encoder_normalizes(const rg_encoder *enc) { return enc->normalize; }
rg_device encoder_device(const rg_encoder *enc) { return enc->device; }
const char *encoder_device_desc(const rg_encoder *enc) { return enc->device_desc; }

void encoder_set_max_batch(rg_encoder *enc, size_t max_batch)
{
    enc->max_batch = max_batch ? max_batch : 1;
}

/* ---- forward --------------------------------------------------------------- */

/* The checks every backend relies on: shape limits and id ranges. */
static rg_status check_batch(const rg_encoder *enc, const int32_t *ids, const int32_t *type_ids, size_t B, size_t T,
                             rg_err *e)
{
    const rg_bert_config *c = &enc->cfg;
    size_t H = c->hidden_size, I = c->intermediate_size, R = B * T;
    if (T > c->max_position_embeddings)
        return rg_error(e, RG_ERR_INVALID, "encoder: %zu tokens exceed the model's %zu positions", T,
                        c->max_position_embeddings);
    if (B > INT_MAX / T || R > INT_MAX / (I > H ? I : H))
        return rg_error(e, RG_ERR_TOO_LARGE, "encoder: batch of %zu x %zu tokens is too large", B, T);
    for (size_t r = 0; r < R; r++) {
        if (ids[r] < 0 || (size_t)ids[r] >= c->vocab_size)
            return rg_error(e, RG_ERR_INVALID, "encoder: token id %d out of range", (int)ids[r]);
        if (type_ids && (type_ids[r] < 0 || (size_t)type_ids[r] >= c->type_vocab_size))
            return rg_error(e, RG_ERR_INVALID, "encoder: token type id %d out of range", (int)type_ids[r]);
    }
    return RG_OK;
}

rg_status encoder_forward(const rg_encoder *enc, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                          size_t B, size_t T, float *hidden, rg_err *e)
{
    if (B == 0 || T == 0)
        return RG_OK;
    rg_status st = check_batch(enc, ids, type_ids, B, T, e);
    if (st != RG_OK)
        return st;
#ifdef RAGD_HAVE_CUDA
    if (enc->cuda)
        return encoder_cuda_forward(enc->cuda, ids, type_ids, mask, B, T, hidden, e);
#endif
    return encoder_forward_cpu(enc, ids, type_ids, mask, B, T, hidden, e);
}

/* ---- embed ------------------------------------------------------------------ */

static rg_status embed_batch(const rg_encoder *enc, const char *const *texts, const size_t *lens, size_t n,
                             float *out, size_t *tokens, rg_trunc_side side, rg_err *e)
{
    rg_encoding *encs = calloc(n, sizeof *encs);
    if (!encs)
        return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory");
    rg_status st = RG_OK;
    size_t T = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = texts[i] ? texts[i] : "";
        size_t len = lens ? lens[i] : strlen(s);
        st = tokenizer_encode_single(enc->tok, s, len, enc->max_tokens, side, &encs[i], e);
        if (st != RG_OK)
            goto done;
        if (encs[i].n > T)
            T = encs[i].n;
        *tokens += encs[i].n;
    }
    int32_t *ids = calloc(n * T, sizeof *ids), *types = calloc(n * T, sizeof *types);
    int32_t *mask = calloc(n * T, sizeof *mask);
    /* Pooling happens inside the backend (on the GPU; on the CPU without
     * computing padded positions): no hidden states come back. */
    if (!ids || !types || !mask) {
        st = rg_error(e, RG_ERR_NOMEM, "encoder: out of memory");
        goto done2;
    }
    int32_t pad = tokenizer_pad_id(enc->tok);
    for (size_t i = 0; i < n; i++) {
        for (size_t t = 0; t < T; t++) {
            size_t r = i * T + t;
            if (t < encs[i].n) {
                ids[r] = encs[i].ids[t];
                types[r] = encs[i].type_ids[t];
                mask[r] = 1;
            } else {
                ids[r] = pad;
            }
        }
    }
#ifdef RAGD_HAVE_CUDA
    if (enc->cuda) {
        if ((st = check_batch(enc, ids, types, n, T, e)) == RG_OK)
            st = encoder_cuda_embed(enc->cuda, ids, types, mask, n, T, enc->pooling, enc->normalize, out, e);
        goto done2;
    }
#endif
    if ((st = check_batch(enc, ids, types, n, T, e)) == RG_OK)
        st = encoder_embed_cpu(enc, ids, types, mask, n, T, enc->pooling, enc->normalize, out, e);
done2:
    free(ids), free(types), free(mask);
done:
    for (size_t i = 0; i < n; i++)
        encoding_free(&encs[i]);
    free(encs);
    return st;
}

rg_status encoder_embed(const rg_encoder *enc, const char *const *texts, const size_t *lens, size_t n, float *out,
                        size_t *tokens_used, rg_err *e)
{
    return encoder_embed_side(enc, texts, lens, n, RG_TRUNC_END, out, tokens_used, e);
}

rg_status encoder_embed_side(const rg_encoder *enc, const char *const *texts, const size_t *lens, size_t n,
                             rg_trunc_side side, float *out, size_t *tokens_used, rg_err *e)
{
    size_t tokens = 0;
    rg_status st = RG_OK;
    for (size_t i = 0; i < n && st == RG_OK; i += enc->max_batch) {
        size_t m = n - i < enc->max_batch ? n - i : enc->max_batch;
        st = embed_batch(enc, texts + i, lens ? lens + i : NULL, m, out + i * enc->cfg.hidden_size, &tokens, side, e);
    }
    if (tokens_used)
        *tokens_used = st == RG_OK ? tokens : 0;
    return st;
}
