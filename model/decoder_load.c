/* decoder_load.c - opens a Llama-family model (GGUF file or Hugging Face
 * safetensors directory), checks every tensor's type and shape against the
 * configuration, and keeps the weights where they are: in the mapped file,
 * in their stored type.
 *
 * Fallback: a matrix whose type model/quant cannot multiply directly but can
 * dequantize is converted to f32 once at load (more memory, same results);
 * a type neither can handle is refused with the tensor's name. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/decoder_internal.h"
#include "model/quant.h"

/* ---- matrices and vectors ------------------------------------------------- */

static rg_status mat_init(int force_f32, dec_mat *m, const char *name, uint32_t type, const void *data, size_t rows, size_t cols,
                          rg_err *e)
{
    memset(m, 0, sizeof *m);
    size_t rb;
    if (ggml_row_bytes(type, cols, &rb, e) != RG_OK)
        return rg_error_wrap(e, "tensor %s", name);
    m->type = type;
    m->data = data;
    m->rows = rows;
    m->cols = cols;
    m->row_bytes = rb;
    if (quant_matvec_supported(type) && !(force_f32 && type != GGML_TYPE_F32))
        return RG_OK;
    if (!dequantize_supported(type))
        return rg_error(e, RG_ERR_UNSUPPORTED, "tensor %s: type %s is not supported", name,
                        ggml_type_name(type) ? ggml_type_name(type) : "?");
    if (rows > SIZE_MAX / sizeof(float) / cols)
        return rg_error(e, RG_ERR_CORRUPT, "tensor %s: %zu x %zu is too large", name, rows, cols);
    m->owned = malloc(rows * cols * sizeof(float));
    if (!m->owned)
        return rg_error(e, RG_ERR_NOMEM, "tensor %s: out of memory to dequantize %zu x %zu", name, rows, cols);
    for (size_t r = 0; r < rows; r++)
        if (dequantize_row(type, (const char *)data + r * rb, m->owned + r * cols, cols, e) != RG_OK)
            return rg_error_wrap(e, "tensor %s", name);
    m->type = GGML_TYPE_F32;
    m->data = m->owned;
    m->row_bytes = cols * sizeof(float);
    return RG_OK;
}

static void mat_free(dec_mat *m)
{
    free(m->owned);
    m->owned = NULL;
}

/* ---- GGUF ------------------------------------------------------------------- */

static rg_status gguf_mat(rg_decoder *d, const char *name, size_t rows, size_t cols, dec_mat *m, rg_err *e)
{
    const gguf_tensor *t = gguf_tensor_find(d->gguf, name);
    if (!t)
        return rg_error(e, RG_ERR_CORRUPT, "tensor %s is missing", name);
    if (t->n_dims != 2 || (size_t)t->dims[0] != cols || (size_t)t->dims[1] != rows)
        return rg_error(e, RG_ERR_CORRUPT, "tensor %s: shape [%lld, %lld] is not [%zu, %zu]", name,
                        (long long)t->dims[0], (long long)t->dims[1], cols, rows);
    return mat_init(d->f32_weights, m, name, t->type, t->data, rows, cols, e);
}

/* A 1-D tensor of n elements as floats (owned); optional ones may be absent
 * (*out stays NULL). */
static rg_status gguf_vec(rg_decoder *d, const char *name, size_t n, int required, float **out, rg_err *e)
{
    *out = NULL;
    const gguf_tensor *t = gguf_tensor_find(d->gguf, name);
    if (!t)
        return required ? rg_error(e, RG_ERR_CORRUPT, "tensor %s is missing", name) : RG_OK;
    if ((size_t)t->n_elems != n || t->n_dims != 1)
        return rg_error(e, RG_ERR_CORRUPT, "tensor %s: %lld elements, expected %zu", name, (long long)t->n_elems, n);
    *out = malloc(n * sizeof(float));
    if (!*out)
        return rg_error(e, RG_ERR_NOMEM, "tensor %s: out of memory", name);
    return gguf_tensor_to_f32(t, *out, e);
}

rg_status dec_load_gguf(rg_decoder *d, const char *path, rg_err *e)
{
    rg_status st = gguf_open(path, &d->gguf, e);
    if (st != RG_OK)
        return st;
    if ((st = llama_config_from_gguf(d->gguf, path, &d->cfg, e)))
        return st;
    const llama_config *c = &d->cfg;
    size_t qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim;
    if ((st = gguf_mat(d, "token_embd.weight", c->n_vocab, c->n_embd, &d->tok_embd, e)))
        return st;
    if (!dequantize_supported(d->tok_embd.type))
        return rg_error(e, RG_ERR_UNSUPPORTED, "token_embd.weight: type cannot be read row by row");
    if (c->tied_output)
        d->output = (dec_mat){d->tok_embd.type, d->tok_embd.data, c->n_vocab, c->n_embd, d->tok_embd.row_bytes, NULL};
    else if ((st = gguf_mat(d, "output.weight", c->n_vocab, c->n_embd, &d->output, e)))
        return st;
    if ((st = gguf_vec(d, "output_norm.weight", c->n_embd, 1, &d->out_norm, e)))
        return st;
    for (size_t l = 0; l < c->n_layer; l++) {
        dec_layer *L = &d->layers[l];
        char n[GGUF_MAX_NAME_LEN + 32];
#define NAME(s) (snprintf(n, sizeof n, "blk.%zu." s, l), n)
        if ((st = gguf_vec(d, NAME("attn_norm.weight"), c->n_embd, 1, &L->attn_norm, e)) ||
            (st = gguf_vec(d, NAME("ffn_norm.weight"), c->n_embd, 1, &L->ffn_norm, e)) ||
            (st = gguf_mat(d, NAME("attn_q.weight"), qd, c->n_embd, &L->wq, e)) ||
            (st = gguf_mat(d, NAME("attn_k.weight"), kvd, c->n_embd, &L->wk, e)) ||
            (st = gguf_mat(d, NAME("attn_v.weight"), kvd, c->n_embd, &L->wv, e)) ||
            (st = gguf_mat(d, NAME("attn_output.weight"), c->n_embd, qd, &L->wo, e)) ||
            (st = gguf_mat(d, NAME("ffn_gate.weight"), c->n_ff, c->n_embd, &L->gate, e)) ||
            (st = gguf_mat(d, NAME("ffn_up.weight"), c->n_ff, c->n_embd, &L->up, e)) ||
            (st = gguf_mat(d, NAME("ffn_down.weight"), c->n_embd, c->n_ff, &L->down, e)) ||
            (st = gguf_vec(d, NAME("attn_q.bias"), qd, c->qkv_bias, &L->bq, e)) ||
            (st = gguf_vec(d, NAME("attn_k.bias"), kvd, c->qkv_bias, &L->bk, e)) ||
            (st = gguf_vec(d, NAME("attn_v.bias"), kvd, c->qkv_bias, &L->bv, e)) ||
            (st = gguf_vec(d, NAME("attn_q_norm.weight"), c->head_dim, c->qk_norm, &L->q_norm, e)) ||
            (st = gguf_vec(d, NAME("attn_k_norm.weight"), c->head_dim, c->qk_norm, &L->k_norm, e)))
            return st;
#undef NAME
    }
    /* Llama 3.1-style scaling is stored as per-frequency divisors */
    float *ff = NULL;
    if ((st = gguf_vec(d, "rope_freqs.weight", c->rope_dim / 2, 0, &ff, e)))
        return st;
    st = dec_rope_init(d, ff, ff ? c->rope_dim / 2 : 0, e);
    free(ff);
    return st;
}

/* ---- Hugging Face safetensors directory ------------------------------------ */

static const rg_st_tensor *hf_find(rg_decoder *d, const char *name)
{
    for (size_t i = 0; i < d->n_shards; i++) {
        const rg_st_tensor *t = safetensors_find(d->shards[i], name);
        if (t)
            return t;
    }
    return NULL;
}

static rg_status hf_type(const rg_st_tensor *t, uint32_t *type, rg_err *e)
{
    switch (t->dtype) {
    case RG_ST_F32: *type = GGML_TYPE_F32; return RG_OK;
    case RG_ST_F16: *type = GGML_TYPE_F16; return RG_OK;
    case RG_ST_BF16: *type = GGML_TYPE_BF16; return RG_OK;
    default:
        return rg_error(e, RG_ERR_UNSUPPORTED, "tensor %s: dtype %s is not supported (F32, F16, BF16)", t->name,
                        safetensors_dtype_name(t->dtype));
    }
}

static rg_status hf_mat(rg_decoder *d, const char *name, size_t rows, size_t cols, dec_mat *m, rg_err *e)
{
    const rg_st_tensor *t = hf_find(d, name);
    if (!t)
        return rg_error(e, RG_ERR_CORRUPT, "tensor %s is missing", name);
    if (t->rank != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return rg_error(e, RG_ERR_CORRUPT, "tensor %s: shape is not [%zu, %zu]", name, rows, cols);
    uint32_t type = GGML_TYPE_F32;
    rg_status st = hf_type(t, &type, e);
    return st ? st : mat_init(d->f32_weights, m, name, type, t->data, rows, cols, e);
}

static rg_status hf_vec(rg_decoder *d, const char *name, size_t n, int required, float **out, rg_err *e)
{
    *out = NULL;
    const rg_st_tensor *t = hf_find(d, name);
    if (!t)
        return required ? rg_error(e, RG_ERR_CORRUPT, "tensor %s is missing", name) : RG_OK;
    if (t->rank != 1 || t->nelem != n)
        return rg_error(e, RG_ERR_CORRUPT, "tensor %s: %zu elements, expected %zu", name, t->nelem, n);
    *out = malloc(n * sizeof(float));
    if (!*out)
        return rg_error(e, RG_ERR_NOMEM, "tensor %s: out of memory", name);
    return tensor_to_f32(t, *out, n, e);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static rg_status hf_open_shards(rg_decoder *d, const char *dir, rg_err *e)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return rg_error(e, RG_ERR_NOT_FOUND, "%s: cannot open the directory", dir);
    char *names[DEC_MAX_SHARDS];
    size_t n = 0;
    rg_status st = RG_OK;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 12 || strcmp(de->d_name + len - 12, ".safetensors") != 0 || de->d_name[0] == '.')
            continue;
        if (n == DEC_MAX_SHARDS) {
            st = rg_error(e, RG_ERR_UNSUPPORTED, "%s: more than %d safetensors files", dir, DEC_MAX_SHARDS);
            break;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            st = rg_error(e, RG_ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(dp);
    if (st == RG_OK && n == 0)
        st = rg_error(e, RG_ERR_NOT_FOUND, "%s: no .safetensors files", dir);
    if (st == RG_OK)
        qsort(names, n, sizeof names[0], cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (st == RG_OK) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dir, names[i]);
            st = safetensors_open(p, &d->shards[d->n_shards], e);
            if (st == RG_OK)
                d->n_shards++;
        }
        free(names[i]);
    }
    return st;
}

/* 1 when the decoder reads the tensor (or it is a buffer transformers
 * recomputes: old checkpoints saved each layer's rotary inv_freq) */
static int hf_tensor_used(const llama_config *c, const char *name)
{
    static const char *const layer_parts[] = {
        "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
        "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight", "mlp.gate_proj.weight",
        "mlp.up_proj.weight", "mlp.down_proj.weight", "self_attn.rotary_emb.inv_freq"};
    static const char *const biases[] = {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"};
    static const char *const qk_norms[] = {"self_attn.q_norm.weight", "self_attn.k_norm.weight"};
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "model.norm.weight") ||
        !strcmp(name, "lm_head.weight"))
        return 1;
    static const char prefix[] = "model.layers.";
    if (strncmp(name, prefix, sizeof prefix - 1) != 0)
        return 0;
    /* the layer number as the loader writes it (no leading zero: "01" is a
     * name it never reads), at most 9 digits (the names are untrusted) */
    const char *p = name + sizeof prefix - 1, *first = p;
    size_t l = 0, digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 9; p++, digits++)
        l = 10 * l + (size_t)(*p - '0');
    if (digits == 0 || *p != '.' || l >= c->n_layer || (digits > 1 && *first == '0'))
        return 0;
    p++;
    for (size_t i = 0; i < sizeof layer_parts / sizeof *layer_parts; i++)
        if (!strcmp(p, layer_parts[i]))
            return 1;
    for (size_t i = 0; c->qkv_bias && i < sizeof biases / sizeof *biases; i++)
        if (!strcmp(p, biases[i]))
            return 1;
    for (size_t i = 0; c->qk_norm && i < sizeof qk_norms / sizeof *qk_norms; i++)
        if (!strcmp(p, qk_norms[i]))
            return 1;
    return 0;
}

/* A checkpoint with a tensor this decoder does not read (an output
 * projection's bias, Q/K norms, another layer count) is another
 * architecture: computing without it would be silently wrong. */
static rg_status hf_check_all_used(const rg_decoder *d, rg_err *e)
{
    for (size_t s = 0; s < d->n_shards; s++)
        for (size_t i = 0; i < safetensors_count(d->shards[s]); i++) {
            const rg_st_tensor *t = safetensors_at(d->shards[s], i);
            if (!hf_tensor_used(&d->cfg, t->name))
                return rg_error(e, RG_ERR_UNSUPPORTED,
                                "%s: tensor %.200s is not part of the Llama-family decoder ragd runs (this "
                                "checkpoint's architecture has more than its config.json says)",
                                safetensors_path(d->shards[s]), t->name);
        }
    return RG_OK;
}

rg_status dec_load_hf(rg_decoder *d, const char *dir, rg_err *e)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", dir);
    rg_status st = llama_config_load_hf(p, &d->cfg, e);
    if (st != RG_OK)
        return st;
    if ((st = hf_open_shards(d, dir, e)) || (st = hf_check_all_used(d, e)))
        return st;
    llama_config *c = &d->cfg;
    size_t qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim;
    if ((st = hf_mat(d, "model.embed_tokens.weight", c->n_vocab, c->n_embd, &d->tok_embd, e)))
        return st;
    /* tie_word_embeddings, or a checkpoint saved without lm_head */
    if (!c->tied_output && !hf_find(d, "lm_head.weight"))
        c->tied_output = 1;
    if (c->tied_output)
        d->output = (dec_mat){d->tok_embd.type, d->tok_embd.data, c->n_vocab, c->n_embd, d->tok_embd.row_bytes, NULL};
    else if ((st = hf_mat(d, "lm_head.weight", c->n_vocab, c->n_embd, &d->output, e)))
        return st;
    if ((st = hf_vec(d, "model.norm.weight", c->n_embd, 1, &d->out_norm, e)))
        return st;
    for (size_t l = 0; l < c->n_layer; l++) {
        dec_layer *L = &d->layers[l];
        char n[256];
#define NAME(s) (snprintf(n, sizeof n, "model.layers.%zu." s, l), n)
        if ((st = hf_vec(d, NAME("input_layernorm.weight"), c->n_embd, 1, &L->attn_norm, e)) ||
            (st = hf_vec(d, NAME("post_attention_layernorm.weight"), c->n_embd, 1, &L->ffn_norm, e)) ||
            (st = hf_mat(d, NAME("self_attn.q_proj.weight"), qd, c->n_embd, &L->wq, e)) ||
            (st = hf_mat(d, NAME("self_attn.k_proj.weight"), kvd, c->n_embd, &L->wk, e)) ||
            (st = hf_mat(d, NAME("self_attn.v_proj.weight"), kvd, c->n_embd, &L->wv, e)) ||
            (st = hf_mat(d, NAME("self_attn.o_proj.weight"), c->n_embd, qd, &L->wo, e)) ||
            (st = hf_mat(d, NAME("mlp.gate_proj.weight"), c->n_ff, c->n_embd, &L->gate, e)) ||
            (st = hf_mat(d, NAME("mlp.up_proj.weight"), c->n_ff, c->n_embd, &L->up, e)) ||
            (st = hf_mat(d, NAME("mlp.down_proj.weight"), c->n_embd, c->n_ff, &L->down, e)) ||
            (st = hf_vec(d, NAME("self_attn.q_proj.bias"), qd, c->qkv_bias, &L->bq, e)) ||
            (st = hf_vec(d, NAME("self_attn.k_proj.bias"), kvd, c->qkv_bias, &L->bk, e)) ||
            (st = hf_vec(d, NAME("self_attn.v_proj.bias"), kvd, c->qkv_bias, &L->bv, e)) ||
            (st = hf_vec(d, NAME("self_attn.q_norm.weight"), c->head_dim, c->qk_norm, &L->q_norm, e)) ||
            (st = hf_vec(d, NAME("self_attn.k_norm.weight"), c->head_dim, c->qk_norm, &L->k_norm, e)))
            return st;
#undef NAME
    }
    return dec_rope_init(d, NULL, 0, e);
}

/* ---- RoPE frequencies ---------------------------------------------------------- */

rg_status dec_rope_init(rg_decoder *d, const float *freq_factors, size_t n_factors, rg_err *e)
{
    const llama_config *c = &d->cfg;
    size_t half = c->rope_dim / 2;
    d->inv_freq = malloc(half * sizeof(float));
    if (!d->inv_freq)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    /* theta_i = base^(-2i/dim), built by repeated multiplication in float as
     * llama.cpp does, so angles round the same way */
    float scale = powf(c->rope_theta, -2.0f / (float)c->rope_dim);
    float f = 1.0f;
    for (size_t i = 0; i < half; i++) {
        float inv = f;
        if (c->rope_scaling == LLAMA_ROPE_SCALING_LINEAR) {
            inv /= c->rope_factor;
        } else if (c->rope_scaling == LLAMA_ROPE_SCALING_LLAMA3) {
            /* transformers' _compute_llama3_parameters */
            double wavelen = 2.0 * 3.14159265358979323846 / inv;
            double low_wl = (double)c->rope_orig_ctx / c->rope_low_freq_factor;
            double high_wl = (double)c->rope_orig_ctx / c->rope_high_freq_factor;
            if (wavelen > low_wl) {
                inv /= c->rope_factor;
            } else if (wavelen >= high_wl) {
                double smooth = ((double)c->rope_orig_ctx / wavelen - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                inv = (float)((1.0 - smooth) * inv / c->rope_factor + smooth * inv);
            }
        }
        if (i < n_factors) {
            if (!(freq_factors[i] > 0.0f) || !isfinite(freq_factors[i]))
                return rg_error(e, RG_ERR_CORRUPT, "rope_freqs.weight[%zu] = %g is not positive", i,
                                (double)freq_factors[i]);
            inv /= freq_factors[i];
        }
        d->inv_freq[i] = inv;
        f *= scale;
    }
    return RG_OK;
}

/* ---- the handle -------------------------------------------------------------- */

static size_t default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > 16 ? 16 : (size_t)n;
}

static rg_status count_layers_gguf(const char *path, size_t *n, rg_err *e)
{
    /* the layer array is sized from the config before the weights are read */
    gguf_file *g;
    rg_status st = gguf_open(path, &g, e);
    if (st != RG_OK)
        return st;
    llama_config c;
    st = llama_config_from_gguf(g, path, &c, e);
    gguf_close(g);
    if (st == RG_OK)
        *n = c.n_layer;
    return st;
}

rg_status decoder_load(const char *path, const rg_decoder_opts *opts, rg_decoder **out, rg_err *e)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return rg_error(e, RG_ERR_NOT_FOUND, "%s: no such file or directory", path);
    int is_dir = S_ISDIR(sb.st_mode);
    size_t n_layer = 0;
    rg_status st;
    if (is_dir) {
        char p[4096];
        snprintf(p, sizeof p, "%s/config.json", path);
        llama_config c;
        if ((st = llama_config_load_hf(p, &c, e)))
            return st;
        n_layer = c.n_layer;
    } else if ((st = count_layers_gguf(path, &n_layer, e))) {
        return st;
    }
    rg_decoder *d = calloc(1, sizeof *d);
    if (!d || !(d->layers = calloc(n_layer, sizeof *d->layers))) {
        free(d);
        return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu layers", n_layer);
    }
    d->f32_weights = opts && opts->f32_weights;
    d->f32_activations = opts && opts->f32_activations;
    st = is_dir ? dec_load_hf(d, path, e) : dec_load_gguf(d, path, e);
    if (st == RG_OK && d->cfg.n_layer != n_layer)
        st = rg_error(e, RG_ERR_CORRUPT, "%s: layer count changed while loading", path);
    size_t threads = opts && opts->threads ? opts->threads : default_threads();
    if (threads > DEC_MAX_THREADS)
        threads = DEC_MAX_THREADS;
    if (st == RG_OK)
        st = dec_pool_create(threads, &d->pool, e);
    if (st == RG_OK)
        st = dec_device_select(d, opts && opts->device_set ? opts->device : RG_DEVICE_CPU, e);
    if (st == RG_OK && d->device == RG_DEVICE_CUDA) /* the pool only picks tokens between GPU steps */
        dec_pool_set_idle(d->pool, DEC_POOL_GPU_BUSY_POLLS, 0);
    if (st != RG_OK) {
        d->cfg.n_layer = n_layer; /* free every layer slot */
        decoder_free(d);
        return st;
    }
    *out = d;
    return RG_OK;
}

void decoder_free(rg_decoder *d)
{
    if (!d)
        return;
    dec_device_free(d);
    dec_pool_free(d->pool);
    if (d->layers)
        for (size_t l = 0; l < d->cfg.n_layer; l++) {
            dec_layer *L = &d->layers[l];
            free(L->attn_norm);
            free(L->ffn_norm);
            free(L->bq);
            free(L->bk);
            free(L->bv);
            free(L->q_norm);
            free(L->k_norm);
            mat_free(&L->wq);
            mat_free(&L->wk);
            mat_free(&L->wv);
            mat_free(&L->wo);
            mat_free(&L->gate);
            mat_free(&L->up);
            mat_free(&L->down);
        }
    free(d->layers);
    mat_free(&d->tok_embd);
    if (!d->cfg.tied_output)
        mat_free(&d->output);
    free(d->out_norm);
    free(d->inv_freq);
    free(d->x);
    free(d->xn);
    free(d->q);
    free(d->k);
    free(d->v);
    free(d->att);
    free(d->ff_g);
    free(d->ff_u);
    free(d->tmp);
    free(d->rope_cos);
    free(d->rope_sin);
    free(d->scores);
    free(d->tiles);
    free(d->act);
    free(d->f32_scratch);
    for (size_t i = 0; i < d->n_shards; i++)
        safetensors_close(d->shards[i]);
    gguf_close(d->gguf);
    free(d);
}

const llama_config *decoder_config(const rg_decoder *d)
{
    return &d->cfg;
}

size_t decoder_vocab(const rg_decoder *d)
{
    return d->cfg.n_vocab;
}

size_t decoder_threads(const rg_decoder *d)
{
    return dec_pool_size(d->pool);
}

void decoder_host_parallel(rg_decoder *d, void (*fn)(void *ctx, size_t worker, size_t n_workers), void *ctx)
{
    dec_pool_run(d->pool, fn, ctx);
}
