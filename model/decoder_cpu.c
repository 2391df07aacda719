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

#include "model/cpu_x86.h"
#include "model/decoder_internal.h"
#include "model/decoder_math.h"
#include "model/quant.h"

/* Query tokens per attention task: a tile of consecutive tokens of one
 * sequence (a prefill) times the query heads of one key/value head share
 * each cache row read. At most 24 query rows per task keeps the scores
 * scratch small at any context. */
#define ATT_TILE_ROWS 24

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
        size_t *tiles = realloc(d->tiles, (n + 1) * sizeof *tiles);
        if (!tiles)
            return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu attention tiles", n + 1);
        d->tiles = tiles;
        d->scratch_tokens = n;
    }
    size_t per_worker = dec_attn_scratch_floats(ATT_TILE_ROWS, max_ctx, c->head_dim);
    if (per_worker > d->scores_per_worker) {
        rg_status st = grow(&d->scores, per_worker * dec_pool_size(d->pool), e);
        if (st != RG_OK)
            return st;
        d->scores_per_worker = per_worker;
    }
    return RG_OK;
}

/* ---- element-wise pieces ------------------------------------------------------------ */

/* Rotates one head's first rope_dim values: adjacent pairs (2i, 2i+1), or
 * NEOX pairs (i, i + rope_dim/2). Each output is one fused multiply-add on
 * a rounded product, x0 c - x1 s = fma(x0, c, -(x1 s)), as GCC compiles
 * ggml's rotation (C++ contracts by default): llama.cpp's rotated Q and K
 * come out bit for bit, and the products downstream round the same way. */
static inline __attribute__((always_inline)) void rope_pairs(float *h, const float *cs, const float *sn, size_t half,
                                                              int neox)
{
    for (size_t i = 0; i < half; i++) {
        size_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        float x0 = h[a], x1 = h[b];
        h[a] = fmaf(x0, cs[i], -(x1 * sn[i]));
        h[b] = fmaf(x0, sn[i], x1 * cs[i]);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* the same, inlined where fmaf is one instruction instead of a libm call */
__attribute__((target("fma"))) static void rope_pairs_fma(float *h, const float *cs, const float *sn, size_t half,
                                                          int neox)
{
    rope_pairs(h, cs, sn, half, neox);
}
#endif

static void rope_head(float *h, const float *cs, const float *sn, size_t rope_dim, int neox)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (cpu_has_fma()) {
        rope_pairs_fma(h, cs, sn, rope_dim / 2, neox);
        return;
    }
#endif
    rope_pairs(h, cs, sn, rope_dim / 2, neox);
}

/* 1 when the rotation frequencies are the plain ladder base^(-2i/dim) that
 * dec_rope_init builds (no scaling, no per-frequency factors): then the
 * angles can be formed as llama.cpp forms them (rope_angles). */
static int rope_plain(const rg_decoder *d)
{
    const llama_config *c = &d->cfg;
    float scale = powf(c->rope_theta, -2.0f / (float)c->rope_dim), f = 1.0f;
    for (size_t i = 0; i < c->rope_dim / 2; i++, f *= scale)
        if (d->inv_freq[i] != f)
            return 0;
    return 1;
}

/* cos and sin of the half angles of position pos. With plain frequencies,
 * as ggml's rope cache: theta starts at pos and is multiplied by the ladder
 * step in float for each pair (pos * step^i rounded at every step, not pos
 * times a rounded step^i), then libm's cosf/sinf. Otherwise pos times the
 * scaled frequency. */
static void rope_angles(const rg_decoder *d, int plain, size_t pos, float *cs, float *sn)
{
    const llama_config *c = &d->cfg;
    size_t half = c->rope_dim / 2;
    if (plain) {
        float step = powf(c->rope_theta, -2.0f / (float)c->rope_dim), theta = (float)pos;
        for (size_t i = 0; i < half; i++, theta *= step) {
            cs[i] = cosf(theta);
            sn[i] = sinf(theta);
        }
        return;
    }
    for (size_t i = 0; i < half; i++) {
        float a = (float)pos * d->inv_freq[i];
        cs[i] = cosf(a);
        sn[i] = sinf(a);
    }
}

void dec_rope_angles(const rg_decoder *d, size_t pos, float *cs, float *sn)
{
    rope_angles(d, rope_plain(d), pos, cs, sn);
}

/* ---- attention ------------------------------------------------------------------ */

static size_t att_tile_tokens(const llama_config *c)
{
    size_t group = c->n_head / c->n_head_kv;
    return group >= ATT_TILE_ROWS ? 1 : ATT_TILE_ROWS / group;
}

/* Query heads per task: the whole group, or slices of ATT_TILE_ROWS of a
 * larger one (multi-query models); one head per task when whole groups
 * would leave threads idle (a decode step of few sequences: 3 key/value
 * heads on 2 threads would idle one a third of the time). A query's
 * arithmetic does not depend on its task, so neither do the results. */
static size_t att_heads_per_task(const llama_config *c, size_t n_tiles, size_t n_workers)
{
    size_t group = c->n_head / c->n_head_kv;
    if (n_workers > 1 && n_tiles * c->n_head_kv < 4 * n_workers)
        return 1;
    return group > ATT_TILE_ROWS ? ATT_TILE_ROWS : group;
}

typedef struct att_job {
    atomic_size_t next; /* next (tile, key/value head) task */
    rg_decoder *d;
    rg_kv_cache *const *kv;
    const size_t *pos;
    size_t n_tiles, layer;
    size_t per; /* query heads per task */
} att_job;

static void att_worker(void *ctx, size_t worker, size_t n_workers)
{
    att_job *j = ctx;
    rg_decoder *d = j->d;
    const llama_config *c = &d->cfg;
    size_t hd = c->head_dim, qd = c->n_head * hd, group = c->n_head / c->n_head_kv;
    size_t per = j->per, slices = (group + per - 1) / per, n_tasks = j->n_tiles * c->n_head_kv * slices;
    float *scratch = d->scores + worker * d->scores_per_worker;
    const float *q[ATT_TILE_ROWS];
    float *out[ATT_TILE_ROWS];
    size_t np[ATT_TILE_ROWS];
    (void)n_workers;
    for (size_t task; (task = atomic_fetch_add(&j->next, 1)) < n_tasks;) {
        size_t tile = task / (c->n_head_kv * slices), rest = task % (c->n_head_kv * slices);
        size_t kvh = rest / slices, g0 = rest % slices * per, g1 = g0 + per < group ? g0 + per : group, nq = 0;
        for (size_t t = d->tiles[tile]; t < d->tiles[tile + 1]; t++)
            for (size_t g = g0; g < g1; g++, nq++) {
                size_t h = kvh * group + g;
                q[nq] = d->q + t * qd + h * hd;
                out[nq] = d->att + t * qd + h * hd;
                np[nq] = j->pos[t] + 1;
            }
        /* a tile of one token whose sequence has no other token here is a
         * decode step (or a one-token prefill) for llama.cpp's ordering */
        size_t t0 = d->tiles[tile], n = d->tiles[j->n_tiles];
        int one = d->tiles[tile + 1] - t0 == 1 && (t0 == 0 || j->kv[t0 - 1] != j->kv[t0]) &&
                  (t0 + 1 == n || j->kv[t0 + 1] != j->kv[t0]);
        dec_attend(j->kv[t0], j->layer, kvh, hd, q, np, nq, out, scratch, one);
    }
}

/* Splits the n tokens into attention tiles: runs of tokens of the same
 * cache, at most att_tile_tokens long. Returns the tile count. */
static size_t att_tiles(rg_decoder *d, rg_kv_cache *const *kv, size_t n)
{
    size_t per = att_tile_tokens(&d->cfg), count = 0;
    for (size_t t = 0; t < n; t++)
        if (t == 0 || kv[t] != kv[t - 1] || t - d->tiles[count - 1] == per)
            d->tiles[count++] = t;
    d->tiles[count] = n;
    return count;
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
    size_t n_tiles = att_tiles(d, kv, n);
    int plain = rope_plain(d);
    for (size_t t = 0; t < n; t++) {
        if ((st = dec_mat_row(&d->tok_embd, (size_t)ids[t], d->x + t * E, e)))
            return rg_error_wrap(e, "token embedding");
        rope_angles(d, plain, pos[t], d->rope_cos + t * half, d->rope_sin + t * half);
    }
    for (size_t l = 0; l < c->n_layer; l++) {
        const dec_layer *L = &d->layers[l];
        for (size_t t = 0; t < n; t++)
            dec_math_rmsnorm(d->x + t * E, L->attn_norm, E, c->rms_eps, d->xn + t * E);
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
            if (L->q_norm) { /* Qwen3: each head normalized before its rotation */
                for (size_t h = 0; h < c->n_head; h++)
                    dec_math_rmsnorm(q + h * hd, L->q_norm, hd, c->rms_eps, q + h * hd);
                for (size_t h = 0; h < c->n_head_kv; h++)
                    dec_math_rmsnorm(k + h * hd, L->k_norm, hd, c->rms_eps, k + h * hd);
            }
            const float *cs = d->rope_cos + t * half, *sn = d->rope_sin + t * half;
            for (size_t h = 0; h < c->n_head; h++)
                rope_head(q + h * hd, cs, sn, c->rope_dim, c->rope_neox);
            for (size_t h = 0; h < c->n_head_kv; h++)
                rope_head(k + h * hd, cs, sn, c->rope_dim, c->rope_neox);
            dec_kv_store(kv[t], l, pos[t], k, v);
        }
        att_job aj;
        atomic_init(&aj.next, 0);
        aj.d = d;
        aj.kv = kv;
        aj.pos = pos;
        aj.n_tiles = n_tiles;
        aj.layer = l;
        aj.per = att_heads_per_task(c, n_tiles, dec_pool_size(d->pool));
        dec_pool_run(d->pool, att_worker, &aj);
        const dec_mat *wo[1] = {&L->wo};
        float *wo_out[1] = {d->tmp};
        if ((st = dec_matmul(d, d->att, n, wo, wo_out, 1, e)))
            return st;
        for (size_t i = 0; i < n * E; i++)
            d->x[i] += d->tmp[i];
        for (size_t t = 0; t < n; t++)
            dec_math_rmsnorm(d->x + t * E, L->ffn_norm, E, c->rms_eps, d->xn + t * E);
        const dec_mat *gu[2] = {&L->gate, &L->up};
        float *gu_out[2] = {d->ff_g, d->ff_u};
        if ((st = dec_matmul(d, d->xn, n, gu, gu_out, 2, e)))
            return st;
        dec_math_swiglu(d->ff_g, d->ff_u, n, F);
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
        dec_math_rmsnorm(d->x + out_rows[i] * E, d->out_norm, E, c->rms_eps, d->xn + i * E);
    const dec_mat *ow[1] = {&d->output};
    float *oy[1] = {logits};
    return dec_matmul(d, d->xn, n_out, ow, oy, 1, e);
}

/* ---- the public calls ---------------------------------------------------------------- */

rg_status dec_check_ids(const rg_decoder *d, const int32_t *ids, size_t n, rg_err *e)
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
    rg_status st = dec_check_ids(d, ids, n, e);
    if (st != RG_OK)
        return st;
    if (!dec_cache_matches(d, kv))
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
    rg_status st = dec_check_ids(d, ids, n_seq, e);
    if (st != RG_OK)
        return st;
    size_t *pos = malloc(n_seq * 2 * sizeof *pos);
    if (!pos)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    size_t *rows = pos + n_seq;
    for (size_t i = 0; i < n_seq && st == RG_OK; i++) {
        if (!dec_cache_matches(d, kv[i]))
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
