/* encoder_gguf.c - a BERT sentence encoder from one GGUF file in the layout
 * llama.cpp's converter (convert_hf_to_gguf.py, class BertModel) writes:
 * the architecture from the "bert.*" metadata, the weights by their GGUF
 * names (converted to f32 here, whatever type model/quant dequantizes), the
 * pooling from bert.pooling_type. The tokenizer is encoder_gguf_vocab.c's.
 * See encoder.h for what is read and why. */
#include "model/encoder_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "model/gguf.h"
#include "model/quant.h"

/* ---- metadata ---------------------------------------------------------------- */

static rg_status meta_size(const gguf_file *g, const char *key, uint64_t lo, uint64_t hi, size_t *out, rg_err *e)
{
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        return rg_error(e, RG_ERR_CORRUPT, "missing metadata key %s", key);
    uint64_t v;
    if (gguf_kv_u64(kv, &v, e) != RG_OK)
        return rg_error(e, RG_ERR_CORRUPT, "metadata key %s must be a non-negative integer", key);
    if (v < lo || v > hi)
        return rg_error(e, RG_ERR_CORRUPT, "metadata key %s = %llu must be in [%llu, %llu]", key,
                        (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
    *out = (size_t)v;
    return RG_OK;
}

static rg_status read_arch(const gguf_file *g, rg_err *e)
{
    const gguf_kv *kv = gguf_find_kv(g, "general.architecture");
    const char *arch = kv ? gguf_kv_string(kv, NULL) : NULL;
    if (!arch)
        return rg_error(e, RG_ERR_CORRUPT, "missing metadata string general.architecture");
    if (strcmp(arch, "bert") != 0)
        return rg_error(e, RG_ERR_UNSUPPORTED, "architecture \"%.64s\" is not supported (expected \"bert\")", arch);
    kv = gguf_find_kv(g, "bert.attention.causal");
    int causal = 0;
    if (kv && gguf_kv_bool(kv, &causal, e) != RG_OK)
        return rg_error(e, RG_ERR_CORRUPT, "metadata key bert.attention.causal must be a boolean");
    if (causal)
        return rg_error(e, RG_ERR_UNSUPPORTED, "bert.attention.causal is true; only bidirectional BERT is supported");
    return RG_OK;
}

/* GGUF dims of a tensor, or NULL (no error) when it is absent. */
static const gguf_tensor *find(const gguf_file *g, const char *name)
{
    return gguf_tensor_find(g, name);
}

static rg_status read_config(const gguf_file *g, rg_bert_config *c, rg_err *e)
{
    rg_status st;
    size_t ctx;
    if ((st = meta_size(g, "bert.embedding_length", 1, BERT_MAX_DIM, &c->hidden_size, e)) != RG_OK ||
        (st = meta_size(g, "bert.block_count", 1, BERT_MAX_LAYERS, &c->num_hidden_layers, e)) != RG_OK ||
        (st = meta_size(g, "bert.attention.head_count", 1, BERT_MAX_DIM, &c->num_attention_heads, e)) != RG_OK ||
        (st = meta_size(g, "bert.feed_forward_length", 1, BERT_MAX_DIM * 8, &c->intermediate_size, e)) != RG_OK ||
        (st = meta_size(g, "bert.context_length", 2, BERT_MAX_DIM, &ctx, e)) != RG_OK)
        return st;
    if (c->hidden_size % c->num_attention_heads != 0)
        return rg_error(e, RG_ERR_CORRUPT, "bert.embedding_length %zu is not divisible by bert.attention.head_count %zu",
                        c->hidden_size, c->num_attention_heads);
    const gguf_kv *kv = gguf_find_kv(g, "bert.attention.layer_norm_epsilon");
    float eps = 0.0f;
    if (!kv)
        return rg_error(e, RG_ERR_CORRUPT, "missing metadata key bert.attention.layer_norm_epsilon");
    if (gguf_kv_f32(kv, &eps, e) != RG_OK || !(eps > 0.0f && eps < 1.0f))
        return rg_error(e, RG_ERR_CORRUPT, "metadata key bert.attention.layer_norm_epsilon must be a number in (0, 1)");
    c->layer_norm_eps = eps;
    c->max_position_embeddings = ctx;

    /* The table sizes the metadata does not carry come from the tables. */
    const gguf_tensor *t = find(g, "token_embd.weight");
    if (!t)
        return rg_error(e, RG_ERR_CORRUPT, "tensor token_embd.weight is missing");
    if (t->n_dims != 2 || (size_t)t->dims[0] != c->hidden_size || t->dims[1] < 1 || (uint64_t)t->dims[1] > BERT_MAX_VOCAB)
        return rg_error(e, RG_ERR_CORRUPT, "tensor token_embd.weight must be [%zu, vocab] (GGUF order) with a vocab of "
                        "1 to %zu rows", c->hidden_size, BERT_MAX_VOCAB);
    c->vocab_size = (size_t)t->dims[1];
    t = find(g, "token_types.weight");
    if (!t)
        return rg_error(e, RG_ERR_CORRUPT, "tensor token_types.weight is missing");
    if (t->n_dims < 1 || t->n_dims > 2 || (size_t)t->dims[0] != c->hidden_size || t->dims[1] < 1 || t->dims[1] > 1024)
        return rg_error(e, RG_ERR_CORRUPT, "tensor token_types.weight must be [%zu, types] (GGUF order), 1 to 1024 types",
                        c->hidden_size);
    c->type_vocab_size = (size_t)t->dims[1];
    kv = gguf_find_kv(g, "tokenizer.ggml.token_type_count");
    if (kv) {
        uint64_t n;
        if (gguf_kv_u64(kv, &n, e) != RG_OK || n != c->type_vocab_size)
            return rg_error(e, RG_ERR_CORRUPT, "tokenizer.ggml.token_type_count does not match the %zu rows of "
                            "token_types.weight", c->type_vocab_size);
    }
    return RG_OK;
}

static const char *pooling_name(uint32_t p)
{
    switch (p) {
    case 0: return "none";
    case 1: return "mean";
    case 2: return "cls";
    case 3: return "last";
    case 4: return "rank";
    default: return "unknown";
    }
}

static rg_status read_pooling(rg_encoder *enc, const gguf_file *g, const char *path, rg_err *e)
{
    const gguf_kv *kv = gguf_find_kv(g, "bert.pooling_type");
    if (!kv) {
        /* The converter writes it only when the model has a
         * sentence-transformers Pooling module. */
        enc->pooling = RG_POOL_MEAN;
        LOG_INFO("%s: no bert.pooling_type; using mean pooling", path);
        return RG_OK;
    }
    uint32_t p;
    if (gguf_kv_u32(kv, &p, e) != RG_OK)
        return rg_error(e, RG_ERR_CORRUPT, "metadata key bert.pooling_type must be an integer");
    if (p == 1)
        enc->pooling = RG_POOL_MEAN;
    else if (p == 2 || (p == 4 && enc->gguf_rank))
        enc->pooling = RG_POOL_CLS; /* rank: the cross-encoder's head pools [CLS] itself */
    else
        return rg_error(e, RG_ERR_UNSUPPORTED, "bert.pooling_type %u (%s) is not supported (1 mean or 2 cls)", p,
                        pooling_name(p));
    return RG_OK;
}

/* ---- weights ------------------------------------------------------------------- */

#define LT(field, suffix, rows, cols)                                                                       \
    do {                                                                                                    \
        snprintf(name, sizeof name, "blk.%zu.%s", l, suffix);                                               \
        if ((st = gguf_tensor_load_f32(g, name, rows, cols, &ly->field, e)) != RG_OK)                       \
            return st;                                                                                      \
    } while (0)

static rg_status load_weights(rg_encoder *enc, const gguf_file *g, rg_err *e)
{
    const rg_bert_config *c = &enc->cfg;
    size_t H = c->hidden_size, I = c->intermediate_size;
    rg_status st;
    if ((st = gguf_tensor_load_f32(g, "token_embd.weight", c->vocab_size, H, &enc->word_emb, e)) != RG_OK ||
        (st = gguf_tensor_load_f32(g, "position_embd.weight", c->max_position_embeddings, H, &enc->pos_emb, e)) != RG_OK ||
        (st = gguf_tensor_load_f32(g, "token_types.weight", c->type_vocab_size, H, &enc->type_emb, e)) != RG_OK ||
        (st = gguf_tensor_load_f32(g, "token_embd_norm.weight", H, 0, &enc->emb_ln_g, e)) != RG_OK ||
        (st = gguf_tensor_load_f32(g, "token_embd_norm.bias", H, 0, &enc->emb_ln_b, e)) != RG_OK)
        return st;
    char name[96];
    for (size_t l = 0; l < c->num_hidden_layers; l++) {
        snprintf(name, sizeof name, "blk.%zu.attn_qkv.weight", l);
        if (find(g, name))
            return rg_error(e, RG_ERR_UNSUPPORTED, "tensor %s: a fused Q/K/V projection is not supported "
                            "(expected blk.N.attn_q/attn_k/attn_v)", name);
        enc_layer *ly = &enc->layers[l];
        LT(q_w, "attn_q.weight", H, H);
        LT(q_b, "attn_q.bias", H, 0);
        LT(k_w, "attn_k.weight", H, H);
        LT(k_b, "attn_k.bias", H, 0);
        LT(v_w, "attn_v.weight", H, H);
        LT(v_b, "attn_v.bias", H, 0);
        LT(ao_w, "attn_output.weight", H, H);
        LT(ao_b, "attn_output.bias", H, 0);
        LT(aln_g, "attn_output_norm.weight", H, 0);
        LT(aln_b, "attn_output_norm.bias", H, 0);
        LT(i_w, "ffn_up.weight", I, H);
        LT(i_b, "ffn_up.bias", I, 0);
        LT(o_w, "ffn_down.weight", H, I);
        LT(o_b, "ffn_down.bias", H, 0);
        LT(oln_g, "layer_output_norm.weight", H, 0);
        LT(oln_b, "layer_output_norm.bias", H, 0);
    }
    return RG_OK;
}
#undef LT

/* ---- entry ----------------------------------------------------------------------- */

rg_status encoder_gguf_load(rg_encoder *enc, const char *path, rg_err *e)
{
    gguf_file *g = NULL;
    rg_status st = gguf_open(path, &g, e);
    if (st != RG_OK)
        return st;
    if ((st = read_arch(g, e)) != RG_OK || (st = read_config(g, &enc->cfg, e)) != RG_OK ||
        (st = read_pooling(enc, g, path, e)) != RG_OK)
        goto fail;
    /* llama.cpp L2-normalizes embeddings by default (embd_normalize 2);
     * sentence-transformers' Normalize module is not recorded in GGUF. */
    enc->normalize = 1;
    enc->max_tokens = enc->cfg.max_position_embeddings;
    if ((st = encoder_gguf_tokenizer(g, &enc->tok, e)) != RG_OK)
        goto fail;
    if (tokenizer_vocab_size(enc->tok) > enc->cfg.vocab_size) {
        st = rg_error(e, RG_ERR_CORRUPT, "the tokenizer has %zu tokens but token_embd.weight only %zu rows",
                      tokenizer_vocab_size(enc->tok), enc->cfg.vocab_size);
        goto fail;
    }
    enc->layers = calloc(enc->cfg.num_hidden_layers, sizeof *enc->layers);
    if (!enc->layers) {
        st = rg_error(e, RG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = load_weights(enc, g, e)) != RG_OK)
        goto fail;
    gguf_close(g);
    return RG_OK;
fail:
    gguf_close(g);
    return rg_error_wrap(e, "%s", path);
}
