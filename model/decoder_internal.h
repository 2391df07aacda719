/* decoder_internal.h - the loaded decoder, shared by the files of model/
 * that build and run it (decoder_load.c reads weights, decoder_matmul.c
 * multiplies by them, decoder_cpu.c runs the layers, decoder_attn.c attends
 * over a cache and stores into it, decoder_kv.c owns the caches). Nothing
 * outside model/ includes this. */
#ifndef RAGD_MODEL_DECODER_INTERNAL_H
#define RAGD_MODEL_DECODER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "model/decoder.h"
#include "model/decoder_pool.h"
#include "model/gguf.h"
#include "model/safetensors.h"

/* A weight matrix of rows x cols in a ggml type, row after row (cols is the
 * fastest dimension, the input width of the product). data points into a
 * mapped model file or, for the dequantize-at-load fallback, into owned. */
typedef struct dec_mat {
    uint32_t type;
    const void *data;
    size_t rows, cols;
    size_t row_bytes;
    float *owned;
} dec_mat;

/* A vector (norm weight or bias) converted to f32 at load (small). */
typedef struct dec_layer {
    float *attn_norm, *ffn_norm;
    float *bq, *bk, *bv; /* NULL without QKV biases */
    float *q_norm, *k_norm; /* [head_dim] each, NULL without per-head Q/K norms (Qwen3) */
    dec_mat wq, wk, wv, wo;
    dec_mat gate, up, down;
} dec_layer;

#define DEC_MAX_SHARDS 64
#define DEC_MAX_THREADS 64

struct rg_decoder {
    llama_config cfg;
    gguf_file *gguf;
    rg_safetensors *shards[DEC_MAX_SHARDS];
    size_t n_shards;
    dec_mat tok_embd; /* rows = n_vocab, cols = n_embd */
    dec_mat output;   /* the token embedding when tied */
    float *out_norm;
    dec_layer *layers;
    float *inv_freq; /* rope_dim / 2 rotation frequencies, scaling applied */
    dec_pool *pool;
    int f32_weights;     /* rg_decoder_opts.f32_weights */
    int f32_activations; /* rg_decoder_opts.f32_activations */

    /* scratch, grown to the largest batch seen (bounded by the caches) */
    size_t scratch_tokens;
    float *x, *xn, *q, *k, *v, *att, *ff_g, *ff_u, *tmp;
    float *rope_cos, *rope_sin;       /* [tokens][rope_dim / 2] */
    float *scores;                    /* [workers][scores_per_worker], dec_attend's scratch */
    size_t scores_per_worker;
    size_t *tiles;                    /* [tokens + 1] attention tiles' first tokens */
    void *act;                        /* prepared activations */
    size_t act_bytes;
    float *f32_scratch;               /* f32 products: per-worker tiles */
    size_t f32_bytes;

    /* the device (decoder_device.c); cuda is NULL on the CPU */
    rg_device device;
    char device_desc[256];
    struct rg_decoder_cuda *cuda;
};

struct rg_kv_cache {
    size_t n_layer, kv_dim, cap, len;
    rg_kv_type type;
    void *k, *v; /* [layer][cap][kv_dim] of f16 or f32 */
    int on_device; /* k, v are CUDA device memory (a CUDA decoder's cache) */
};

/* Y[n, w->rows] = X[n, w->cols] * W^T for up to 3 matrices sharing X, their
 * rows split over the pool (weights read once for all n vectors); with
 * f32_activations, on unquantized activations (decoder_matmul.c). */
rg_status dec_matmul(rg_decoder *d, const float *x, size_t n, const dec_mat *const *w, float *const *y, size_t n_mat,
                     rg_err *e);

/* Row r of the token embedding into out[cols]. */
rg_status dec_mat_row(const dec_mat *m, size_t r, float *out, rg_err *e);

/* Loading (decoder_load.c) for one source each. */
rg_status dec_load_gguf(rg_decoder *d, const char *path, rg_err *e);
rg_status dec_load_hf(rg_decoder *d, const char *dir, rg_err *e);
/* Device choice (decoder_device.c): puts the loaded decoder where want
 * says, filling device, device_desc and cuda; dec_device_free releases the
 * device side. */
rg_status dec_device_select(rg_decoder *d, rg_device want, rg_err *e);
void dec_device_free(rg_decoder *d);
/* dec_forward on the GPU (d->cuda set). */
rg_status dec_device_forward(rg_decoder *d, rg_kv_cache *const *kv, const int32_t *ids, const size_t *pos, size_t n,
                             const size_t *out_rows, size_t n_out, float *logits, rg_err *e);
/* A cache's memory on the decoder's device (bytes each for K and V). */
rg_status dec_device_kv_alloc(const rg_decoder *d, rg_kv_cache *kv, size_t bytes, rg_err *e);
void dec_device_kv_free(rg_kv_cache *kv);
/* The first bytes_per_layer bytes of every layer's keys and values from
 * src to dst, both device caches of d (kv_cache_copy_prefix). */
rg_status dec_device_kv_copy(const rg_decoder *d, rg_kv_cache *dst, const rg_kv_cache *src, size_t bytes_per_layer,
                             rg_err *e);

/* RG_ERR_INVALID naming the first of ids[0..n) outside the vocabulary. */
rg_status dec_check_ids(const rg_decoder *d, const int32_t *ids, size_t n, rg_err *e);
/* 1 when kv was made for d's shape (layers and key/value width). */
int dec_cache_matches(const rg_decoder *d, const rg_kv_cache *kv);

/* Rotation frequencies from the config (and GGUF's rope_freqs.weight). */
rg_status dec_rope_init(rg_decoder *d, const float *freq_factors, size_t n_factors, rg_err *e);

/* cos and sin of the rope_dim / 2 rotation angles of position pos, as the
 * CPU forward pass forms them (llama.cpp's rope cache): the CUDA decoder
 * takes these values when it computes in the CPU path's arithmetic. */
void dec_rope_angles(const rg_decoder *d, size_t pos, float *cs, float *sn);

/* The forward pass (decoder_cpu.c): token t is ids[t] at position pos[t] of
 * cache kv[t]; every cache has room. logits for the tokens listed in
 * out_rows (n_out of them) go to logits[i * n_vocab]. */
rg_status dec_forward(rg_decoder *d, rg_kv_cache *const *kv, const int32_t *ids, const size_t *pos, size_t n,
                      const size_t *out_rows, size_t n_out, float *logits, rg_err *e);

/* Attention (decoder_attn.c) of nq query rows q[i] (head_dim hd) over
 * key/value head kvh of layer `layer` in cache kv: query i attends positions
 * 0..np[i]-1 and its output goes to out[i]. scratch holds
 * dec_attn_scratch_floats(nq, max np[i], hd) floats. one_token: the queries
 * belong to a token that is the only one of its sequence in this forward
 * pass (a decode step, or a prefill of one). llama.cpp sums the products in
 * one order for a batch of several tokens and in another for one token
 * (decoder_attn.c says which), and the decoder mirrors whichever llama.cpp
 * would take, since another order flips 8-bit roundings downstream. */
void dec_attend(const rg_kv_cache *kv, size_t layer, size_t kvh, size_t hd, const float *const *q, const size_t *np,
                size_t nq, float *const *out, float *scratch, int one_token);
size_t dec_attn_scratch_floats(size_t nq, size_t max_np, size_t hd);
/* Writes a token's keys and values (kv_dim each) at pos of layer `layer`,
 * rounded to f16 for an f16 cache. */
void dec_kv_store(rg_kv_cache *kv, size_t layer, size_t pos, const float *k, const float *v);

/* Half-float conversion for cache reads (exact, branch-light). */
static inline float dec_h2f(uint16_t h)
{
    union {
        uint32_t u;
        float f;
    } o, magic = {.u = 113u << 23};
    uint32_t em = h & 0x7fffu;
    o.u = em << 13;
    uint32_t exp = em & 0x7c00u;
    if (exp == 0x7c00u) {
        o.u += (128u - 16u) << 23; /* inf / NaN */
        o.u += (127u - 15u) << 23;
    } else if (exp == 0) {
        o.u += 1u << 23; /* subnormal: renormalise through a float subtract */
        o.u += (127u - 15u) << 23;
        o.f -= magic.f * 1.0f;
    } else {
        o.u += (127u - 15u) << 23;
    }
    o.u |= (uint32_t)(h & 0x8000u) << 16;
    return o.f;
}

#endif
