/* decoder_cpu.c - the Llama-family forward pass on the CPU and the two calls
 * built on it: prefill (many tokens of one sequence) and decode (one token of
 * each of many sequences).
 *
 * Per layer: RMSNorm -> Q, K, V (one product call, Qwen2 biases added) ->
 * RoPE on Q and K -> K, V written into each token's cache at its position ->
 * attention of every token over its own cache up to its position (causal by
 * construction: a prefill writes all its positions first, and position p
 * reads 0..p) -> output projection + residual -> RMSNorm -> gate and up (one
 * call) -> SiLU(gate) * up -> down + residual. Grouped-query attention maps
 * query head h to key/value head h / (n_head / n_head_kv). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "model/decoder_internal.h"
#include "model/quant.h"

/* ---- scratch ------------------------------------------------------------------ */

static rg_status grow(float **p, size_t n, rg_err *e)
{
    float *q = realloc(*p, n * sizeof(float));
    if (!q)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu floats of decoder scratch", n);
    *p = q;
    return RG_OK;
}

static rg_status ensure_scratch(rg_decoder *d, size_t n, size_t max_ctx, rg_err *e)
{
    const llama_config *c = &d->cfg;
    if (n > d->scratch_tokens) {
        size_t qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim;
        size_t wide = c->n_ff > qd ? c->n_ff : qd;
        rg_status st;
        if ((st = grow(&d->x, n * c->n_embd, e)) || (st = grow(&d->xn, n * c->n_embd, e)) ||
            (st = grow(&d->q, n * qd, e)) || (st = grow(&d->k, n * kvd, e)) || (st = grow(&d->v, n * kvd, e)) ||
            (st = grow(&d->att, n * qd, e)) || (st = grow(&d->ff_g, n * c->n_ff, e)) ||
            (st = grow(&d->ff_u, n * c->n_ff, e)) || (st = grow(&d->tmp, n * (wide > c->n_embd ? wide : c->n_embd), e)) ||
            (st = grow(&d->rope_cos, n * (c->rope_dim / 2), e)) || (st = grow(&d->rope_sin, n * (c->rope_dim / 2), e)))
            return st;
        d->scratch_tokens = n;
    }
    if (max_ctx > d->scores_ctx) {
        rg_status st = grow(&d->scores, max_ctx * dec_pool_size(d->pool), e);
        if (st != RG_OK)
            return st;
        d->scores_ctx = max_ctx;
    }
    return RG_OK;
}

/* ---- element-wise pieces ------------------------------------------------------------ */

/* out = x / sqrt(mean(x^2) + eps) * w, the sum of squares in double as ggml. */
static void rms_norm(const float *x, const float *w, size_t n, float eps, float *out)
{
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

/* Rotates one head's first rope_dim values: adjacent pairs (2i, 2i+1), or
 * NEOX pairs (i, i + rope_dim/2). */
static void rope_head(float *h, const float *cs, const float *sn, size_t rope_dim, int neox)
{
    size_t half = rope_dim / 2;
    for (size_t i = 0; i < half; i++) {
        size_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        float x0 = h[a], x1 = h[b];
        h[a] = x0 * cs[i] - x1 * sn[i];
        h[b] = x0 * sn[i] + x1 * cs[i];
    }
}

static float dot_f32(const float *a, const float *b, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static float dot_f16(const float *a, const uint16_t *b, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t j = 0; j < 8; j++)
            acc[j] += a[i + j] * dec_h2f(b[i + j]);
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += a[i] * dec_h2f(b[i]);
    return s;
}

/* ---- attention ------------------------------------------------------------------ */

typedef struct att_job {
    atomic_size_t next; /* next (token, head) task */
    rg_decoder *d;
    rg_kv_cache *const *kv;
    const size_t *pos;
    size_t n, layer;
} att_job;

/* With the f16 cache the arithmetic follows llama.cpp's CPU attention: the
 * query is rounded to f16 for the K products (ggml converts the f32 operand
 * of an F16 matrix product to f16), and so are the softmax weights for the V
 * product. This model family is sensitive enough that skipping those
 * roundings alone moves logits by ~1e-2 relative. */
static void att_worker(void *ctx, size_t worker, size_t n_workers)
{
    att_job *j = ctx;
    const llama_config *c = &j->d->cfg;
    size_t hd = c->head_dim, qd = c->n_head * hd, group = c->n_head / c->n_head_kv;
    float scale = 1.0f / sqrtf((float)hd);
    float *s = j->d->scores + worker * j->d->scores_ctx;
    float qr[LLAMA_MAX_HEAD_DIM];
    (void)n_workers;
    for (size_t task; (task = atomic_fetch_add(&j->next, 1)) < j->n * c->n_head;) {
        size_t t = task / c->n_head, h = task % c->n_head, kvh = h / group;
        const rg_kv_cache *kv = j->kv[t];
        size_t kvd = kv->kv_dim, np = j->pos[t] + 1;
        size_t base = j->layer * kv->cap * kvd + kvh * hd;
        const float *q = j->d->q + t * qd + h * hd;
        float *out = j->d->att + t * qd + h * hd;
        int half = kv->type == RG_KV_F16;
        if (half) {
            for (size_t i = 0; i < hd; i++)
                qr[i] = dec_h2f(f32_to_fp16(q[i]));
            q = qr;
        }
        float mx = -INFINITY;
        for (size_t p = 0; p < np; p++) {
            s[p] = (half ? dot_f16(q, (const uint16_t *)kv->k + base + p * kvd, hd)
                         : dot_f32(q, (const float *)kv->k + base + p * kvd, hd)) *
                   scale;
            if (s[p] > mx)
                mx = s[p];
        }
        double sum = 0.0;
        for (size_t p = 0; p < np; p++) {
            s[p] = expf(s[p] - mx);
            sum += s[p];
        }
        float inv = (float)(1.0 / sum);
        memset(out, 0, hd * sizeof(float));
        for (size_t p = 0; p < np; p++) {
            float w = s[p] * inv;
            if (half) {
                w = dec_h2f(f32_to_fp16(w));
                const uint16_t *vr = (const uint16_t *)kv->v + base + p * kvd;
                for (size_t i = 0; i < hd; i++)
                    out[i] += w * dec_h2f(vr[i]);
            } else {
                const float *vr = (const float *)kv->v + base + p * kvd;
                for (size_t i = 0; i < hd; i++)
                    out[i] += w * vr[i];
            }
        }
    }
}

static void kv_store(rg_kv_cache *kv, size_t layer, size_t pos, const float *k, const float *v)
{
    size_t off = (layer * kv->cap + pos) * kv->kv_dim;
    if (kv->type == RG_KV_F16) {
        uint16_t *kd = (uint16_t *)kv->k + off, *vd = (uint16_t *)kv->v + off;
        for (size_t i = 0; i < kv->kv_dim; i++) {
            kd[i] = f32_to_fp16(k[i]);
            vd[i] = f32_to_fp16(v[i]);
        }
    } else {
        memcpy((float *)kv->k + off, k, kv->kv_dim * sizeof(float));
        memcpy((float *)kv->v + off, v, kv->kv_dim * sizeof(float));
    }
}

/* ---- the forward pass ---------------------------------------------------------------- */

rg_status dec_forward(rg_decoder *d, rg_kv_cache *const *kv, const int32_t *ids, const size_t *pos, size_t n,
                      const size_t *out_rows, size_t n_out, float *logits, rg_err *e)
{
    if (d->cuda)
        return dec_device_forward(d, kv, ids, pos, n, out_rows, n_out, logits, e);
    for (size_t t = 0; t < n; t++)
        if (kv[t]->on_device)
            return rg_error(e, RG_ERR_INVALID, "KV cache %zu is in GPU memory but the decoder runs on the CPU", t);
    const llama_config *c = &d->cfg;
    size_t E = c->n_embd, hd = c->head_dim, qd = c->n_head * hd, kvd = c->n_head_kv * hd, F = c->n_ff;
    size_t half = c->rope_dim / 2, max_ctx = 0;
    for (size_t t = 0; t < n; t++)
        if (pos[t] + 1 > max_ctx)
            max_ctx = pos[t] + 1;
    rg_status st = ensure_scratch(d, n, max_ctx, e);
    if (st != RG_OK)
        return st;
    for (size_t t = 0; t < n; t++) {
        if ((st = dec_mat_row(&d->tok_embd, (size_t)ids[t], d->x + t * E, e)))
            return rg_error_wrap(e, "token embedding");
        for (size_t i = 0; i < half; i++) {
            float a = (float)pos[t] * d->inv_freq[i];
            d->rope_cos[t * half + i] = cosf(a);
            d->rope_sin[t * half + i] = sinf(a);
        }
    }
    for (size_t l = 0; l < c->n_layer; l++) {
        const dec_layer *L = &d->layers[l];
        for (size_t t = 0; t < n; t++)
            rms_norm(d->x + t * E, L->attn_norm, E, c->rms_eps, d->xn + t * E);
        const dec_mat *qkv[3] = {&L->wq, &L->wk, &L->wv};
        float *qkv_out[3] = {d->q, d->k, d->v};
        if ((st = dec_matmul(d, d->xn, n, qkv, qkv_out, 3, e)))
            return st;
        for (size_t t = 0; t < n; t++) {
            float *q = d->q + t * qd, *k = d->k + t * kvd, *v = d->v + t * kvd;
            if (L->bq) {
                for (size_t i = 0; i < qd; i++)
                    q[i] += L->bq[i];
                for (size_t i = 0; i < kvd; i++) {
                    k[i] += L->bk[i];
                    v[i] += L->bv[i];
                }
            }
            const float *cs = d->rope_cos + t * half, *sn = d->rope_sin + t * half;
            for (size_t h = 0; h < c->n_head; h++)
                rope_head(q + h * hd, cs, sn, c->rope_dim, c->rope_neox);
            for (size_t h = 0; h < c->n_head_kv; h++)
                rope_head(k + h * hd, cs, sn, c->rope_dim, c->rope_neox);
            kv_store(kv[t], l, pos[t], k, v);
        }
        att_job aj;
        atomic_init(&aj.next, 0);
        aj.d = d;
        aj.kv = kv;
        aj.pos = pos;
        aj.n = n;
        aj.layer = l;
        dec_pool_run(d->pool, att_worker, &aj);
        const dec_mat *wo[1] = {&L->wo};
        float *wo_out[1] = {d->tmp};
        if ((st = dec_matmul(d, d->att, n, wo, wo_out, 1, e)))
            return st;
        for (size_t i = 0; i < n * E; i++)
            d->x[i] += d->tmp[i];
        for (size_t t = 0; t < n; t++)
            rms_norm(d->x + t * E, L->ffn_norm, E, c->rms_eps, d->xn + t * E);
        const dec_mat *gu[2] = {&L->gate, &L->up};
        float *gu_out[2] = {d->ff_g, d->ff_u};
        if ((st = dec_matmul(d, d->xn, n, gu, gu_out, 2, e)))
            return st;
        for (size_t i = 0; i < n * F; i++) {
            float g = d->ff_g[i];
            d->ff_g[i] = g / (1.0f + expf(-g)) * d->ff_u[i];
        }
        const dec_mat *dn[1] = {&L->down};
        float *dn_out[1] = {d->tmp};
        if ((st = dec_matmul(d, d->ff_g, n, dn, dn_out, 1, e)))
            return st;
        for (size_t i = 0; i < n * E; i++)
            d->x[i] += d->tmp[i];
    }
    if (n_out == 0)
        return RG_OK;
    /* only the rows whose logits are wanted go through the output head */
    for (size_t i = 0; i < n_out; i++)
        rms_norm(d->x + out_rows[i] * E, d->out_norm, E, c->rms_eps, d->xn + i * E);
    const dec_mat *ow[1] = {&d->output};
    float *oy[1] = {logits};
    return dec_matmul(d, d->xn, n_out, ow, oy, 1, e);
}

/* ---- the public calls ---------------------------------------------------------------- */

static rg_status check_ids(const rg_decoder *d, const int32_t *ids, size_t n, rg_err *e)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= d->cfg.n_vocab)
            return rg_error(e, RG_ERR_INVALID, "token id %d is outside the vocabulary (0..%zu)", ids[i],
                            d->cfg.n_vocab - 1);
    return RG_OK;
}

/* Prefill runs in chunks so scratch stays bounded whatever the prompt. */
#define PREFILL_CHUNK 512

rg_status decoder_prefill(rg_decoder *d, rg_kv_cache *kv, const int32_t *ids, size_t n, float *logits, rg_err *e)
{
    if (n == 0)
        return rg_error(e, RG_ERR_INVALID, "prefill of no tokens");
    rg_status st = check_ids(d, ids, n, e);
    if (st != RG_OK)
        return st;
    if (kv->n_layer != d->cfg.n_layer || kv->kv_dim != d->cfg.n_head_kv * d->cfg.head_dim)
        return rg_error(e, RG_ERR_INVALID, "KV cache belongs to another model");
    if (n > kv->cap - kv->len)
        return rg_error(e, RG_ERR_TOO_LARGE, "%zu tokens do not fit the KV cache (%zu of %zu used)", n, kv->len,
                        kv->cap);
    size_t chunk = n < PREFILL_CHUNK ? n : PREFILL_CHUNK;
    rg_kv_cache **kvs = malloc(chunk * sizeof *kvs);
    size_t *pos = malloc(chunk * sizeof *pos);
    if (!kvs || !pos) {
        free(kvs);
        free(pos);
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    }
    size_t start = kv->len;
    for (size_t done = 0; done < n && st == RG_OK; done += chunk) {
        size_t m = n - done < chunk ? n - done : chunk;
        for (size_t t = 0; t < m; t++) {
            kvs[t] = kv;
            pos[t] = start + done + t;
        }
        size_t last = m - 1;
        int final = done + m == n;
        st = dec_forward(d, kvs, ids + done, pos, m, &last, final && logits ? 1 : 0, logits, e);
    }
    free(kvs);
    free(pos);
    if (st == RG_OK)
        kv->len = start + n;
    return st;
}

rg_status decoder_decode(rg_decoder *d, rg_kv_cache *const *kv, const int32_t *ids, size_t n_seq, float *logits,
                         rg_err *e)
{
    if (n_seq == 0)
        return rg_error(e, RG_ERR_INVALID, "decode step of no sequences");
    rg_status st = check_ids(d, ids, n_seq, e);
    if (st != RG_OK)
        return st;
    size_t *pos = malloc(n_seq * 2 * sizeof *pos);
    if (!pos)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    size_t *rows = pos + n_seq;
    for (size_t i = 0; i < n_seq && st == RG_OK; i++) {
        if (kv[i]->n_layer != d->cfg.n_layer || kv[i]->kv_dim != d->cfg.n_head_kv * d->cfg.head_dim)
            st = rg_error(e, RG_ERR_INVALID, "KV cache %zu belongs to another model", i);
        else if (kv[i]->len >= kv[i]->cap)
            st = rg_error(e, RG_ERR_TOO_LARGE, "sequence %zu has filled its KV cache (%zu tokens)", i, kv[i]->cap);
        for (size_t j = 0; j < i && st == RG_OK; j++)
            if (kv[j] == kv[i])
                st = rg_error(e, RG_ERR_INVALID, "sequence %zu appears twice in one decode step", i);
        pos[i] = kv[i]->len;
        rows[i] = i;
    }
    if (st == RG_OK)
        st = dec_forward(d, kv, ids, pos, n_seq, rows, logits ? n_seq : 0, logits, e);
    if (st == RG_OK)
        for (size_t i = 0; i < n_seq; i++)
            kv[i]->len++;
    free(pos);
    return st;
}
