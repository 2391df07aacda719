/* llama_config.c - Llama-family hyperparameters from GGUF metadata or a
 * Hugging Face config.json, each checked before use. */
#include "model/llama_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"

#define MAX_CONFIG_BYTES (4u << 20)

rg_status llama_config_validate(const llama_config *c, const char *what, rg_err *e)
{
    struct {
        const char *name;
        size_t v, max;
    } f[] = {
        {"vocabulary size", c->n_vocab, LLAMA_MAX_VOCAB},     {"hidden size", c->n_embd, LLAMA_MAX_EMBD},
        {"layer count", c->n_layer, LLAMA_MAX_LAYERS},        {"head count", c->n_head, LLAMA_MAX_HEADS},
        {"key/value head count", c->n_head_kv, LLAMA_MAX_HEADS}, {"head size", c->head_dim, LLAMA_MAX_HEAD_DIM},
        {"feed-forward size", c->n_ff, LLAMA_MAX_FF},         {"context length", c->n_ctx_train, LLAMA_MAX_CTX},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v == 0 || f[i].v > f[i].max)
            return rg_error(e, RG_ERR_CORRUPT, "%s: %s %zu is outside 1..%zu", what, f[i].name, f[i].v, f[i].max);
    if (c->n_head % c->n_head_kv)
        return rg_error(e, RG_ERR_CORRUPT, "%s: %zu heads are not a multiple of %zu key/value heads", what,
                        c->n_head, c->n_head_kv);
    if (c->head_dim % 2 || c->rope_dim == 0 || c->rope_dim % 2 || c->rope_dim > c->head_dim)
        return rg_error(e, RG_ERR_CORRUPT, "%s: rotary dimensions %zu do not fit head size %zu", what, c->rope_dim,
                        c->head_dim);
    if (c->n_head * c->head_dim > LLAMA_MAX_EMBD * 4)
        return rg_error(e, RG_ERR_CORRUPT, "%s: query width %zu x %zu is too large", what, c->n_head, c->head_dim);
    if (!(c->rope_theta > 0.0f) || !isfinite(c->rope_theta))
        return rg_error(e, RG_ERR_CORRUPT, "%s: RoPE base %g is not a positive number", what, (double)c->rope_theta);
    if (!(c->rms_eps > 0.0f) || c->rms_eps > 1.0f)
        return rg_error(e, RG_ERR_CORRUPT, "%s: RMSNorm epsilon %g is outside (0, 1]", what, (double)c->rms_eps);
    if (c->rope_scaling != LLAMA_ROPE_SCALING_NONE && (!(c->rope_factor >= 1.0f) || !isfinite(c->rope_factor)))
        return rg_error(e, RG_ERR_CORRUPT, "%s: RoPE scaling factor %g is not >= 1", what, (double)c->rope_factor);
    if (c->rope_scaling == LLAMA_ROPE_SCALING_LLAMA3 &&
        (!(c->rope_low_freq_factor > 0.0f) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
         c->rope_orig_ctx == 0 || c->rope_orig_ctx > LLAMA_MAX_CTX))
        return rg_error(e, RG_ERR_CORRUPT, "%s: llama3 RoPE scaling needs 0 < low_freq_factor < high_freq_factor "
                        "and an original context length", what);
    return RG_OK;
}

/* ---- GGUF ------------------------------------------------------------------ */

/* Reads "<arch>.<key>" as a size; absent keys keep *out when optional. */
static rg_status gguf_size(const gguf_file *g, const char *arch, const char *key, int required, size_t *out,
                           const char *what, rg_err *e)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", arch, key);
    const gguf_kv *kv = gguf_find_kv(g, name);
    if (!kv)
        return required ? rg_error(e, RG_ERR_CORRUPT, "%s: metadata key %s is missing", what, name) : RG_OK;
    uint64_t v;
    if (gguf_kv_u64(kv, &v, e) != RG_OK)
        return rg_error_wrap(e, "%s", what);
    if (v > LLAMA_MAX_CTX)
        return rg_error(e, RG_ERR_CORRUPT, "%s: %s = %llu is too large", what, name, (unsigned long long)v);
    *out = (size_t)v;
    return RG_OK;
}

static rg_status gguf_float(const gguf_file *g, const char *arch, const char *key, int required, float *out,
                            const char *what, rg_err *e)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", arch, key);
    const gguf_kv *kv = gguf_find_kv(g, name);
    if (!kv)
        return required ? rg_error(e, RG_ERR_CORRUPT, "%s: metadata key %s is missing", what, name) : RG_OK;
    if (gguf_kv_f32(kv, out, e) != RG_OK)
        return rg_error_wrap(e, "%s", what);
    return RG_OK;
}

rg_status llama_config_from_gguf(const gguf_file *g, const char *what, llama_config *out, rg_err *e)
{
    llama_config c = {0};
    const gguf_kv *akv = gguf_find_kv(g, "general.architecture");
    const char *arch = akv ? gguf_kv_string(akv, NULL) : NULL;
    if (!arch)
        return rg_error(e, RG_ERR_CORRUPT, "%s: general.architecture is missing", what);
    if (!strcmp(arch, "llama") || !strcmp(arch, "mistral")) {
        c.arch = LLAMA_ARCH_LLAMA;
        c.rope_neox = 0; /* convert_hf_to_gguf permuted Q/K for the adjacent-pair rotation */
    } else if (!strcmp(arch, "qwen2")) {
        c.arch = LLAMA_ARCH_QWEN2;
        c.rope_neox = 1; /* Qwen2's Q/K are stored as in HF: rotate_half pairs */
        c.qkv_bias = 1;
    } else if (!strcmp(arch, "qwen3")) {
        c.arch = LLAMA_ARCH_QWEN3;
        c.rope_neox = 1; /* as Qwen2 */
        c.qk_norm = 1;
    } else {
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: architecture \"%.64s\" is not a Llama-family decoder", what, arch);
    }
    rg_status st;
    if ((st = gguf_size(g, arch, "embedding_length", 1, &c.n_embd, what, e)) ||
        (st = gguf_size(g, arch, "block_count", 1, &c.n_layer, what, e)) ||
        (st = gguf_size(g, arch, "feed_forward_length", 1, &c.n_ff, what, e)) ||
        (st = gguf_size(g, arch, "attention.head_count", 1, &c.n_head, what, e)) ||
        (st = gguf_size(g, arch, "context_length", 1, &c.n_ctx_train, what, e)))
        return st;
    c.n_head_kv = c.n_head;
    if ((st = gguf_size(g, arch, "attention.head_count_kv", 0, &c.n_head_kv, what, e)))
        return st;
    if (c.n_head == 0 || c.n_embd % c.n_head)
        return rg_error(e, RG_ERR_CORRUPT, "%s: hidden size %zu is not a multiple of %zu heads", what, c.n_embd,
                        c.n_head);
    c.head_dim = c.n_embd / c.n_head;
    if ((st = gguf_size(g, arch, "attention.key_length", 0, &c.head_dim, what, e)))
        return st;
    size_t vlen = c.head_dim;
    if ((st = gguf_size(g, arch, "attention.value_length", 0, &vlen, what, e)))
        return st;
    if (vlen != c.head_dim)
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: value head size %zu differs from key head size %zu", what, vlen,
                        c.head_dim);
    c.rope_dim = c.head_dim;
    if ((st = gguf_size(g, arch, "rope.dimension_count", 0, &c.rope_dim, what, e)))
        return st;
    c.rope_theta = 10000.0f;
    if ((st = gguf_float(g, arch, "rope.freq_base", 0, &c.rope_theta, what, e)) ||
        (st = gguf_float(g, arch, "attention.layer_norm_rms_epsilon", 1, &c.rms_eps, what, e)))
        return st;
    /* vocabulary: the explicit key, else the token list, else the embedding */
    const gguf_tensor *emb = gguf_tensor_find(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return rg_error(e, RG_ERR_CORRUPT, "%s: token_embd.weight is missing or not a matrix", what);
    c.n_vocab = (size_t)emb->dims[1];
    size_t nv = c.n_vocab;
    if ((st = gguf_size(g, arch, "vocab_size", 0, &nv, what, e)))
        return st;
    if (nv != c.n_vocab)
        return rg_error(e, RG_ERR_CORRUPT, "%s: vocab_size %zu but token_embd.weight has %zu rows", what, nv,
                        c.n_vocab);
    /* RoPE scaling: linear is a position divisor; Llama 3.1's smoothing is
     * stored by the converter as the rope_freqs.weight tensor, which the
     * decoder applies itself. YaRN and LongRoPE are not computed. */
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const gguf_kv *skv = gguf_find_kv(g, key);
    const char *stype = skv ? gguf_kv_string(skv, NULL) : NULL;
    float factor = 0.0f;
    if ((st = gguf_float(g, arch, "rope.scaling.factor", 0, &factor, what, e)))
        return st;
    if (!stype) {
        float lin = 0.0f; /* older files: rope.scale_linear */
        if ((st = gguf_float(g, arch, "rope.scale_linear", 0, &lin, what, e)))
            return st;
        if (lin > 1.0f) {
            c.rope_scaling = LLAMA_ROPE_SCALING_LINEAR;
            c.rope_factor = lin;
        }
    } else if (!strcmp(stype, "linear")) {
        if (factor > 1.0f) {
            c.rope_scaling = LLAMA_ROPE_SCALING_LINEAR;
            c.rope_factor = factor;
        }
    } else if (strcmp(stype, "none") != 0) {
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: RoPE scaling \"%.32s\" is not supported", what, stype);
    }
    c.tied_output = gguf_tensor_find(g, "output.weight") == NULL;
    if ((st = llama_config_validate(&c, what, e)))
        return st;
    *out = c;
    return RG_OK;
}

/* ---- Hugging Face config.json ------------------------------------------------ */

static rg_status json_size(const cJSON *j, const char *key, int required, size_t *out, const char *what, rg_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v))
        return required ? rg_error(e, RG_ERR_CORRUPT, "%s: \"%s\" is missing", what, key) : RG_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)LLAMA_MAX_CTX ||
        v->valuedouble != floor(v->valuedouble))
        return rg_error(e, RG_ERR_CORRUPT, "%s: \"%s\" is not a count in range", what, key);
    *out = (size_t)v->valuedouble;
    return RG_OK;
}

static rg_status json_float(const cJSON *j, const char *key, int required, float *out, const char *what, rg_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v))
        return required ? rg_error(e, RG_ERR_CORRUPT, "%s: \"%s\" is missing", what, key) : RG_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return rg_error(e, RG_ERR_CORRUPT, "%s: \"%s\" is not a number", what, key);
    *out = (float)v->valuedouble;
    return RG_OK;
}

/* The scaling a RoPE parameter dict names ("rope_type", or its older alias
 * "type"; none is "default"): linear and llama3 computed, the rest refused. */
static rg_status parse_hf_rope_scaling(const cJSON *rs, llama_config *c, const char *what, rg_err *e)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!t)
        t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (t && !cJSON_IsString(t))
        return rg_error(e, RG_ERR_CORRUPT, "%s: the RoPE type is not a string", what);
    if (!t || !strcmp(t->valuestring, "default"))
        return RG_OK;
    rg_status st;
    if ((st = json_float(rs, "factor", 1, &c->rope_factor, what, e)))
        return st;
    if (!strcmp(t->valuestring, "linear")) {
        c->rope_scaling = LLAMA_ROPE_SCALING_LINEAR;
        return RG_OK;
    }
    if (!strcmp(t->valuestring, "llama3")) {
        c->rope_scaling = LLAMA_ROPE_SCALING_LLAMA3;
        if ((st = json_float(rs, "low_freq_factor", 1, &c->rope_low_freq_factor, what, e)) ||
            (st = json_float(rs, "high_freq_factor", 1, &c->rope_high_freq_factor, what, e)) ||
            (st = json_size(rs, "original_max_position_embeddings", 1, &c->rope_orig_ctx, what, e)))
            return st;
        return RG_OK;
    }
    return rg_error(e, RG_ERR_UNSUPPORTED, "%s: RoPE scaling \"%.32s\" is not supported", what, t->valuestring);
}

/* RoPE as transformers 5 reads it (RotaryEmbeddingConfigMixin): the
 * parameters are the legacy "rope_scaling" when it is a non-empty object,
 * else "rope_parameters" (where transformers 5 writes them); their
 * "rope_theta" wins over the top-level one (10000 when neither is there).
 * A partial rotation ("partial_rotary_factor" below 1) and parameters per
 * layer type (a dict of dicts) are refused rather than run differently. */
static rg_status parse_hf_rope(const cJSON *j, llama_config *c, const char *what, rg_err *e)
{
    const cJSON *legacy = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    if ((legacy && !cJSON_IsNull(legacy) && !cJSON_IsObject(legacy)) ||
        (params && !cJSON_IsNull(params) && !cJSON_IsObject(params)))
        return rg_error(e, RG_ERR_CORRUPT, "%s: \"rope_scaling\" or \"rope_parameters\" is not an object", what);
    const cJSON *rp = cJSON_IsObject(legacy) && legacy->child ? legacy : cJSON_IsObject(params) ? params : NULL;
    float partial = 1.0f;
    c->rope_theta = 10000.0f;
    rg_status st;
    if ((st = json_float(j, "rope_theta", 0, &c->rope_theta, what, e)) ||
        (st = json_float(j, "partial_rotary_factor", 0, &partial, what, e)))
        return st;
    if (rp) {
        const cJSON *it;
        cJSON_ArrayForEach(it, rp)
        {
            if (cJSON_IsObject(it))
                return rg_error(e, RG_ERR_UNSUPPORTED, "%s: RoPE parameters per layer type are not supported", what);
        }
        if ((st = json_float(rp, "rope_theta", 0, &c->rope_theta, what, e)) ||
            (st = json_float(rp, "partial_rotary_factor", 0, &partial, what, e)) ||
            (st = parse_hf_rope_scaling(rp, c, what, e)))
            return st;
    }
    if (partial != 1.0f)
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: a partial rotation (partial_rotary_factor %g) is not supported",
                        what, (double)partial);
    return RG_OK;
}

/* Within its window, sliding-window attention is full attention, so where
 * transformers would slide, the usable context is limited to the window (no
 * sliding mask past it): a longer sequence is refused rather than attended
 * differently. (A GGUF records no window; llama.cpp attends fully there.) Mistral slides in every layer, with a window of
 * 4096 when config.json names none (MistralConfig's default; null turns it
 * off). Qwen2 and Qwen3 slide only with "use_sliding_window", in the layers their
 * "layer_types" marks "sliding_attention", by default those from
 * "max_window_layers" (28) on. Llama has no window. */
static rg_status cap_hf_sliding_window(const cJSON *j, const char *model_type, llama_config *c, const char *what,
                                       rg_err *e)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "sliding_window");
    if (w && !cJSON_IsNull(w) && (!cJSON_IsNumber(w) || !(w->valuedouble >= 1)))
        return rg_error(e, RG_ERR_CORRUPT, "%s: \"sliding_window\" is not a positive count", what);
    double window = w && cJSON_IsNumber(w) ? w->valuedouble : 0;
    int slides = 0;
    if (!strcmp(model_type, "mistral")) {
        if (!w)
            window = 4096;
        slides = window > 0;
    } else if ((!strcmp(model_type, "qwen2") || !strcmp(model_type, "qwen3")) && window > 0 &&
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "use_sliding_window"))) {
        const cJSON *types = cJSON_GetObjectItemCaseSensitive(j, "layer_types"), *t;
        if (cJSON_IsArray(types)) {
            cJSON_ArrayForEach(t, types)
                slides |= cJSON_IsString(t) && !strcmp(t->valuestring, "sliding_attention");
        } else {
            size_t first = 28;
            rg_status st = json_size(j, "max_window_layers", 0, &first, what, e);
            if (st)
                return st;
            slides = c->n_layer > first;
        }
    }
    if (slides && window < (double)c->n_ctx_train)
        c->n_ctx_train = (size_t)window;
    return RG_OK;
}

static rg_status parse_hf(const cJSON *j, const char *what, llama_config *out, rg_err *e)
{
    llama_config c = {0};
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (!cJSON_IsString(mt))
        return rg_error(e, RG_ERR_CORRUPT, "%s: \"model_type\" is missing", what);
    if (!strcmp(mt->valuestring, "llama") || !strcmp(mt->valuestring, "mistral")) {
        c.arch = LLAMA_ARCH_LLAMA;
    } else if (!strcmp(mt->valuestring, "qwen2")) {
        c.arch = LLAMA_ARCH_QWEN2;
        c.qkv_bias = 1;
    } else if (!strcmp(mt->valuestring, "qwen3")) {
        c.arch = LLAMA_ARCH_QWEN3;
        c.qk_norm = 1; /* Q/K/V biases only with attention_bias, below */
    } else {
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: model_type \"%.64s\" is not a Llama-family decoder", what,
                        mt->valuestring);
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: hidden_act must be \"silu\"", what);
    /* Safetensors keep HF's Q/K layout: rotate_half pairs for every arch. */
    c.rope_neox = 1;
    rg_status st;
    if ((st = json_size(j, "vocab_size", 1, &c.n_vocab, what, e)) ||
        (st = json_size(j, "hidden_size", 1, &c.n_embd, what, e)) ||
        (st = json_size(j, "num_hidden_layers", 1, &c.n_layer, what, e)) ||
        (st = json_size(j, "num_attention_heads", 1, &c.n_head, what, e)) ||
        (st = json_size(j, "intermediate_size", 1, &c.n_ff, what, e)) ||
        (st = json_size(j, "max_position_embeddings", 1, &c.n_ctx_train, what, e)) ||
        (st = json_float(j, "rms_norm_eps", 1, &c.rms_eps, what, e)))
        return st;
    c.n_head_kv = c.n_head;
    if ((st = json_size(j, "num_key_value_heads", 0, &c.n_head_kv, what, e)))
        return st;
    if (c.n_head == 0 || c.n_embd % c.n_head)
        return rg_error(e, RG_ERR_CORRUPT, "%s: hidden_size %zu is not a multiple of %zu heads", what, c.n_embd,
                        c.n_head);
    /* Qwen3Config's head_dim defaults to 128, the others' to hidden / heads */
    c.head_dim = c.arch == LLAMA_ARCH_QWEN3 ? 128 : c.n_embd / c.n_head;
    if ((st = json_size(j, "head_dim", 0, &c.head_dim, what, e)))
        return st;
    c.rope_dim = c.head_dim;
    if ((st = parse_hf_rope(j, &c, what, e)) || (st = cap_hf_sliding_window(j, mt->valuestring, &c, what, e)))
        return st;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    c.tied_output = cJSON_IsTrue(tie); /* LlamaConfig and Qwen2Config default to untied */
    /* attention_bias puts biases on Q, K and V (and, in LlamaAttention, on
     * the output projection: the loader refuses a checkpoint holding that
     * tensor, as it refuses every tensor it would not use) */
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(j, "attention_bias");
    if (cJSON_IsTrue(ab))
        c.qkv_bias = 1;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "mlp_bias")))
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: \"mlp_bias\" (biases in the feed-forward) is not supported", what);
    if ((st = llama_config_validate(&c, what, e)))
        return st;
    *out = c;
    return RG_OK;
}

rg_status llama_config_parse_hf(const char *json, size_t len, const char *what, llama_config *out, rg_err *e)
{
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return rg_error(e, RG_ERR_CORRUPT, "%s: not a JSON object", what);
    }
    rg_status st = parse_hf(j, what, out, e);
    cJSON_Delete(j);
    return st;
}

rg_status llama_config_load_hf(const char *path, llama_config *out, rg_err *e)
{
    rg_buf b;
    rg_buf_init(&b, 0);
    rg_status st = fs_read_file(path, MAX_CONFIG_BYTES, &b, e);
    if (st == RG_OK)
        st = llama_config_parse_hf(b.data, b.len, path, out, e);
    rg_buf_free(&b);
    return st;
}
