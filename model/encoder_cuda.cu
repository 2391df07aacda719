// encoder_cuda.cu - the BERT encoder on a CUDA GPU (see encoder_cuda.h).
//
// One layer, B*T = R rows, all buffers on the device:
//   xb (fp16) --cuBLAS--> qkv (fp32, [R, 3H], one product for Q, K and V)
//   attention (ops_cuda: split heads + bias, Q K^T, masked softmax, P V,
//   merge heads) --> ctxb (fp16)
//   ctxb --cuBLAS--> y; x = LayerNorm(x + y + bias) (fp32 residual), xb
//   xb --cuBLAS--> inter (fp32); interb = GELU(inter + bias) (fp16)
//   interb --cuBLAS--> y; x = LayerNorm(x + y + bias), xb
// The residual stream x stays fp32 from the embeddings to the pooling.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pthread.h>

#include "model/cuda_ctx.cuh"
#include "model/ops_cuda.cuh"

extern "C" {
#include "model/encoder_cuda.h"
#include "model/encoder_internal.h"
}

namespace {

struct dev_layer {
    cu_f16 *qkv_w, *ao_w, *i_w, *o_w;        // [3H, H], [H, H], [I, H], [H, I]
    float *qkv_b, *ao_b, *i_b, *o_b;          // [3H], [H], [I], [H]
    float *aln_g, *aln_b, *oln_g, *oln_b;     // [H]
};

// Places tensors in one device allocation: a first pass (base == NULL)
// only measures, the second uploads.
struct placer {
    char *base = nullptr;
    size_t off = 0;
    cu_f16 *stage = nullptr; // host staging for the fp16 conversion
    rg_err *e = nullptr;
    rg_status st = RG_OK;

    void *take(size_t bytes)
    {
        size_t at = off;
        off += (bytes + 255) & ~(size_t)255;
        return base ? base + at : nullptr;
    }
    // Concatenation of n fp32 host arrays, kept fp32.
    float *f32(const float *const *src, const size_t *len, int n)
    {
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += len[i];
        float *d = static_cast<float *>(take(total * sizeof(float)));
        for (size_t i = 0, at = 0; d && !st && i < (size_t)n; at += len[i], i++)
            st = cu_check(cudaMemcpy(d + at, src[i], len[i] * sizeof(float), cudaMemcpyHostToDevice), "weight upload",
                          e);
        return d;
    }
    float *f32(const float *src, size_t len) { return f32(&src, &len, 1); }
    // Concatenation of n fp32 host arrays, converted to fp16.
    cu_f16 *fp16(const float *const *src, const size_t *len, int n)
    {
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += len[i];
        cu_f16 *d = static_cast<cu_f16 *>(take(total * sizeof(cu_f16)));
        if (!d || st)
            return d;
        for (size_t i = 0, at = 0; i < (size_t)n; at += len[i], i++)
            cu_host_to_f16(src[i], len[i], stage + at);
        st = cu_check(cudaMemcpy(d, stage, total * sizeof(cu_f16), cudaMemcpyHostToDevice), "weight upload", e);
        return d;
    }
    cu_f16 *fp16(const float *src, size_t len) { return fp16(&src, &len, 1); }
};

} // namespace

struct rg_encoder_cuda {
    rg_bert_config cfg;
    cu_ctx cx; // device, stream, cuBLAS handle, call mutex
    char *weights; // one allocation holding every tensor below
    float *word, *pos, *type, *emb_g, *emb_b;
    dev_layer *layers;

    // Activations, one allocation sized for cap_rows rows (R = B*T) and
    // cap_scores attention scores (B*heads*T*T); grown on demand.
    char *ws;
    size_t cap_rows, cap_scores;
    float *x, *y, *big, *pooled, *scores;
    cu_f16 *xb, *ctxb, *qh, *kh, *vh, *interb, *probs;
    int32_t *ids, *types, *mask;
};

static void place_weights(rg_encoder_cuda *c, const rg_encoder *enc, placer *p)
{
    const rg_bert_config *cfg = &enc->cfg;
    size_t H = cfg->hidden_size, I = cfg->intermediate_size;
    c->word = p->f32(enc->word_emb, cfg->vocab_size * H);
    c->pos = p->f32(enc->pos_emb, cfg->max_position_embeddings * H);
    c->type = p->f32(enc->type_emb, cfg->type_vocab_size * H);
    c->emb_g = p->f32(enc->emb_ln_g, H);
    c->emb_b = p->f32(enc->emb_ln_b, H);
    for (size_t l = 0; l < cfg->num_hidden_layers; l++) {
        const enc_layer *s = &enc->layers[l];
        dev_layer *d = &c->layers[l];
        const float *qkv_w[3] = {s->q_w, s->k_w, s->v_w}, *qkv_b[3] = {s->q_b, s->k_b, s->v_b};
        const size_t hh[3] = {H * H, H * H, H * H}, h3[3] = {H, H, H};
        d->qkv_w = p->fp16(qkv_w, hh, 3);
        d->qkv_b = p->f32(qkv_b, h3, 3);
        d->ao_w = p->fp16(s->ao_w, H * H);
        d->ao_b = p->f32(s->ao_b, H);
        d->aln_g = p->f32(s->aln_g, H);
        d->aln_b = p->f32(s->aln_b, H);
        d->i_w = p->fp16(s->i_w, I * H);
        d->i_b = p->f32(s->i_b, I);
        d->o_w = p->fp16(s->o_w, H * I);
        d->o_b = p->f32(s->o_b, H);
        d->oln_g = p->f32(s->oln_g, H);
        d->oln_b = p->f32(s->oln_b, H);
    }
}

extern "C" void encoder_cuda_free(rg_encoder_cuda *c)
{
    if (!c)
        return;
    cu_ctx_sync(&c->cx);
    cudaFree(c->ws);
    cudaFree(c->weights);
    cu_ctx_close(&c->cx);
    free(c->layers);
    free(c);
}

extern "C" rg_status encoder_cuda_create(const rg_encoder *enc, rg_encoder_cuda **out, char *desc, size_t desc_size,
                                         rg_err *e)
{
    *out = nullptr;
    const rg_bert_config *cfg = &enc->cfg;
    size_t H = cfg->hidden_size, I = cfg->intermediate_size;
    if (H > CU_MAX_ROW || I > INT_MAX / 4 || cfg->vocab_size > INT_MAX / H)
        return rg_error(e, RG_ERR_UNSUPPORTED, "CUDA encoder: hidden size %zu exceeds the kernels' limit %d", H,
                        CU_MAX_ROW);
    // the build carries code for Ampere (8.0) and newer only
    cudaDeviceProp prop;
    rg_status st = cu_ctx_device("CUDA encoder", "the fp16 path needs 8.0 or newer", &prop, e);
    if (st)
        return st;

    rg_encoder_cuda *c = static_cast<rg_encoder_cuda *>(calloc(1, sizeof *c));
    if (!c)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    if ((st = cu_ctx_open(&c->cx, e))) {
        encoder_cuda_free(c);
        return st;
    }
    c->cfg = *cfg;
    c->layers = static_cast<dev_layer *>(calloc(cfg->num_hidden_layers, sizeof *c->layers));
    size_t stage_n = 3 * H * H > I * H ? 3 * H * H : I * H;
    placer p;
    p.e = e;
    if (!c->layers || !(p.stage = static_cast<cu_f16 *>(malloc(stage_n * sizeof(cu_f16))))) {
        st = rg_error(e, RG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    place_weights(c, enc, &p); // measure
    if ((st = cu_check(cudaMalloc((void **)&c->weights, p.off), "allocating the weights", e))) {
        // Not sticky, but it stays this thread's last error: clear it (as
        // decoder_cuda_create does), or the next launch check on this thread
        // (cudaGetLastError after a kernel) reports this allocation as its own
        // failure, e.g. another model used on this thread after --device auto
        // fell back to the CPU here.
        cudaGetLastError();
        goto fail;
    }
    {
        size_t bytes = p.off;
        p.base = c->weights;
        p.off = 0;
        place_weights(c, enc, &p); // upload
        if ((st = p.st))
            goto fail;
        if (desc)
            snprintf(desc, desc_size, "%s, compute %d.%d, %.0f MiB of fp16/fp32 weights", prop.name, prop.major,
                     prop.minor, (double)bytes / (1024.0 * 1024.0));
    }
    free(p.stage);
    *out = c;
    return RG_OK;
fail:
    free(p.stage);
    encoder_cuda_free(c);
    return st;
}

// Grows the activation buffers to R rows and S attention scores.
static rg_status ensure_workspace(rg_encoder_cuda *c, size_t B, size_t T, rg_err *e)
{
    size_t H = c->cfg.hidden_size, I = c->cfg.intermediate_size, heads = c->cfg.num_attention_heads;
    size_t R = B * T, S = B * heads * T * T;
    if (R <= c->cap_rows && S <= c->cap_scores)
        return RG_OK;
    if (R > c->cap_rows)
        c->cap_rows = R;
    if (S > c->cap_scores)
        c->cap_scores = S;
    R = c->cap_rows;
    S = c->cap_scores;
    size_t wide = 3 * H > I ? 3 * H : I;
    placer p; // measuring pass only: offsets into ws
    auto at = [&p](size_t bytes) {
        size_t o = p.off;
        p.take(bytes);
        return o;
    };
    size_t o_x = at(R * H * 4), o_y = at(R * H * 4), o_big = at(R * wide * 4), o_pool = at(R * H * 4);
    size_t o_scores = at(S * 4), o_xb = at(R * H * 2), o_ctxb = at(R * H * 2), o_q = at(R * H * 2);
    size_t o_k = at(R * H * 2), o_v = at(R * H * 2), o_inter = at(R * I * 2), o_probs = at(S * 2);
    size_t o_ids = at(R * 4), o_types = at(R * 4), o_mask = at(R * 4);

    cudaStreamSynchronize(c->cx.stream);
    cudaError_t err = cu_regrow((void **)&c->ws, p.off);
    if (err != cudaSuccess) {
        c->cap_rows = c->cap_scores = 0;
        return rg_error(e, RG_ERR_NOMEM, "CUDA encoder: cannot allocate %.1f MiB of activations for %zu x %zu tokens: %s",
                        (double)p.off / (1024.0 * 1024.0), B, T, cudaGetErrorString(err));
    }
    char *w = c->ws;
    c->x = (float *)(w + o_x);
    c->y = (float *)(w + o_y);
    c->big = (float *)(w + o_big);
    c->pooled = (float *)(w + o_pool);
    c->scores = (float *)(w + o_scores);
    c->xb = (cu_f16 *)(w + o_xb);
    c->ctxb = (cu_f16 *)(w + o_ctxb);
    c->qh = (cu_f16 *)(w + o_q);
    c->kh = (cu_f16 *)(w + o_k);
    c->vh = (cu_f16 *)(w + o_v);
    c->interb = (cu_f16 *)(w + o_inter);
    c->probs = (cu_f16 *)(w + o_probs);
    c->ids = (int32_t *)(w + o_ids);
    c->types = (int32_t *)(w + o_types);
    c->mask = (int32_t *)(w + o_mask);
    return RG_OK;
}

// Embeddings and every layer; the last hidden states are left in c->x.
static rg_status run_layers(rg_encoder_cuda *c, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                            size_t B, size_t T, rg_err *e)
{
    const rg_bert_config *cfg = &c->cfg;
    int H = (int)cfg->hidden_size, I = (int)cfg->intermediate_size, heads = (int)cfg->num_attention_heads;
    int R = (int)(B * T);
    float eps = cfg->layer_norm_eps;
    cudaStream_t s = c->cx.stream;
    size_t rb = (size_t)R * sizeof(int32_t);
    rg_status st;
    if ((st = ensure_workspace(c, B, T, e)) ||
        (st = cu_check(cudaMemcpyAsync(c->ids, ids, rb, cudaMemcpyHostToDevice, s), "upload ids", e)) ||
        (type_ids && (st = cu_check(cudaMemcpyAsync(c->types, type_ids, rb, cudaMemcpyHostToDevice, s), "upload types",
                                    e))) ||
        (st = cu_check(cudaMemcpyAsync(c->mask, mask, rb, cudaMemcpyHostToDevice, s), "upload mask", e)))
        return st;
    if ((st = cu_embed_layernorm(s, c->ids, type_ids ? c->types : nullptr, (int)B, (int)T, H, c->word, c->pos,
                                 c->type, c->emb_g, c->emb_b, eps, c->x, c->xb, e)))
        return st;
    cu_attn_bufs ab = {c->qh, c->kh, c->vh, c->scores, c->probs, c->y};
    for (size_t l = 0; l < cfg->num_hidden_layers; l++) {
        const dev_layer *ly = &c->layers[l];
        if ((st = cu_linear(c->cx.blas, c->xb, R, H, ly->qkv_w, 3 * H, c->big, e)) ||
            (st = cu_attention(c->cx.blas, s, c->big, ly->qkv_b, c->mask, (int)B, (int)T, H, heads, &ab, c->ctxb, e)) ||
            (st = cu_linear(c->cx.blas, c->ctxb, R, H, ly->ao_w, H, c->y, e)) ||
            (st = cu_add_layernorm(s, c->x, c->y, ly->ao_b, R, H, ly->aln_g, ly->aln_b, eps, c->xb, e)) ||
            (st = cu_linear(c->cx.blas, c->xb, R, H, ly->i_w, I, c->big, e)) ||
            (st = cu_bias_gelu(s, c->big, ly->i_b, R, I, c->interb, e)) ||
            (st = cu_linear(c->cx.blas, c->interb, R, I, ly->o_w, H, c->y, e)) ||
            (st = cu_add_layernorm(s, c->x, c->y, ly->o_b, R, H, ly->oln_g, ly->oln_b, eps, c->xb, e)))
            return rg_error_wrap(e, "layer %zu", l);
    }
    return RG_OK;
}

static rg_status check_shape(const rg_encoder_cuda *c, size_t B, size_t T, rg_err *e)
{
    size_t heads = c->cfg.num_attention_heads;
    // encoder_forward bounds B*T*max(H, I) by INT_MAX; the scores need B*heads
    // batches for cuBLAS and B*heads*T*T elements.
    if (B > INT_MAX / heads || B * heads > SIZE_MAX / T / T / 4)
        return rg_error(e, RG_ERR_TOO_LARGE, "CUDA encoder: batch of %zu x %zu tokens is too large", B, T);
    return RG_OK;
}

extern "C" rg_status encoder_cuda_forward(rg_encoder_cuda *c, const int32_t *ids, const int32_t *type_ids,
                                          const int32_t *mask, size_t B, size_t T, float *hidden, rg_err *e)
{
    if (B == 0 || T == 0)
        return RG_OK;
    rg_status st = check_shape(c, B, T, e);
    if (st)
        return st;
    pthread_mutex_lock(&c->cx.mu);
    if (!(st = cu_check(cudaSetDevice(c->cx.device), "cudaSetDevice", e)) &&
        !(st = run_layers(c, ids, type_ids, mask, B, T, e)))
        st = cu_check(cudaMemcpyAsync(hidden, c->x, B * T * c->cfg.hidden_size * sizeof(float), cudaMemcpyDeviceToHost,
                                      c->cx.stream),
                      "download hidden states", e);
    // Always drain the stream: a failed call must not leave work running
    // on buffers the next call reuses.
    rg_err later;
    rg_status sync = cu_check(cudaStreamSynchronize(c->cx.stream), "encoder forward", st ? &later : e);
    pthread_mutex_unlock(&c->cx.mu);
    return st ? st : sync;
}

extern "C" rg_status encoder_cuda_embed(rg_encoder_cuda *c, const int32_t *ids, const int32_t *type_ids,
                                        const int32_t *mask, size_t B, size_t T, rg_pooling pooling, int normalize,
                                        float *out, rg_err *e)
{
    size_t H = c->cfg.hidden_size;
    if (B > 0 && T == 0) // no tokens at all: zero vectors, as encoder_embed_cpu gives (out was left unwritten)
        memset(out, 0, B * H * sizeof(float));
    if (B == 0 || T == 0)
        return RG_OK;
    rg_status st = check_shape(c, B, T, e);
    if (st)
        return st;
    pthread_mutex_lock(&c->cx.mu);
    if (!(st = cu_check(cudaSetDevice(c->cx.device), "cudaSetDevice", e)) &&
        !(st = run_layers(c, ids, type_ids, mask, B, T, e)) &&
        !(st = cu_pool(c->cx.stream, c->x, c->mask, (int)B, (int)T, (int)H, pooling == RG_POOL_CLS, normalize, c->pooled,
                       e)))
        st = cu_check(cudaMemcpyAsync(out, c->pooled, B * H * sizeof(float), cudaMemcpyDeviceToHost, c->cx.stream),
                      "download embeddings", e);
    rg_err later;
    rg_status sync = cu_check(cudaStreamSynchronize(c->cx.stream), "encoder embed", st ? &later : e);
    pthread_mutex_unlock(&c->cx.mu);
    return st ? st : sync;
}
