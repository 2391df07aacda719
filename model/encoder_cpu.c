/* encoder_cpu.c - the BERT transformer on the CPU (see encoder_internal.h).
 *
 * Threads: the whole forward pass runs as one job on the encoder's thread
 * pool (common/thread_pool.h), every thread claiming tasks phase by phase:
 *
 *   rows      (tiles of rows)      embeddings + LayerNorm, Q|K|V projection
 *   per layer:
 *   attention ((sequence, head))   scores, masked softmax, context
 *   rows      (tiles of rows)      output projection + residual + LayerNorm,
 *                                  intermediate + GELU, output + residual +
 *                                  LayerNorm, next layer's Q|K|V projection
 *
 * Everything after attention is row-local, so a tile runs that whole chain
 * while its rows are in cache and only two barriers per layer are needed.
 * The products run on model/gemm_cpu with the weights packed once at load
 * (Q, K and V fused into one [3H, H] product). If another caller's forward
 * pass holds the pool, this call runs alone on its own thread rather than
 * wait, so concurrent calls are safe and independent.
 *
 * Padded positions are computed like real ones (queries at padded positions
 * attend to the real keys, as in Hugging Face BERT), so hidden [B, T, H]
 * equals the reference everywhere; keys after a sequence's last real token
 * are cut out of its attention products. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/thread_pool.h"
#include "model/encoder_internal.h"
#include "model/gemm_cpu.h"
#include "model/ops_cpu.h"

#define ROW_TILE_MAX 64 /* rows per task: intermediates stay in L2 */

typedef struct enc_cpu_layer {
    float *qkv, *qkv_b; /* packed [H -> 3H] and its bias [3H] */
    float *ao, *i, *o;  /* packed attention output, intermediate, output */
} enc_cpu_layer;

struct enc_cpu {
    rg_tpool *pool;
    size_t n_layers;
    enc_cpu_layer *layers;
};

static float *alloc_floats(size_t n)
{
    void *p = NULL;
    if (n == 0 || n > SIZE_MAX / sizeof(float) - 16 || posix_memalign(&p, 64, n * sizeof(float)) != 0)
        return NULL;
    return p;
}

static float *pack_nk(const float *w, size_t N, size_t K)
{
    float *bp = alloc_floats(gemm_bpack_floats(K, N));
    if (bp)
        gemm_pack_b_nk(w, K, N, K, bp);
    return bp;
}

void encoder_cpu_release(rg_encoder *enc)
{
    struct enc_cpu *c = enc->cpu;
    if (!c)
        return;
    tpool_free(c->pool);
    if (c->layers) {
        for (size_t l = 0; l < c->n_layers; l++) {
            enc_cpu_layer *ly = &c->layers[l];
            free(ly->qkv), free(ly->qkv_b), free(ly->ao), free(ly->i), free(ly->o);
        }
    }
    free(c->layers);
    free(c);
    enc->cpu = NULL;
}

rg_status encoder_cpu_prepare(rg_encoder *enc, rg_err *e)
{
    const rg_bert_config *cfg = &enc->cfg;
    size_t H = cfg->hidden_size, I = cfg->intermediate_size, L = cfg->num_hidden_layers;
    struct enc_cpu *c = calloc(1, sizeof *c);
    if (!c)
        return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory");
    enc->cpu = c;
    c->n_layers = L;
    c->layers = calloc(L, sizeof *c->layers);
    float *qkv = alloc_floats(3 * H * H);
    if (!c->layers || !qkv) {
        free(qkv);
        encoder_cpu_release(enc);
        return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory packing weights");
    }
    for (size_t l = 0; l < L; l++) {
        const enc_layer *src = &enc->layers[l];
        enc_cpu_layer *ly = &c->layers[l];
        memcpy(qkv, src->q_w, H * H * sizeof *qkv);
        memcpy(qkv + H * H, src->k_w, H * H * sizeof *qkv);
        memcpy(qkv + 2 * H * H, src->v_w, H * H * sizeof *qkv);
        ly->qkv = pack_nk(qkv, 3 * H, H);
        ly->qkv_b = alloc_floats(3 * H);
        ly->ao = pack_nk(src->ao_w, H, H);
        ly->i = pack_nk(src->i_w, I, H);
        ly->o = pack_nk(src->o_w, H, I);
        if (!ly->qkv || !ly->qkv_b || !ly->ao || !ly->i || !ly->o) {
            free(qkv);
            encoder_cpu_release(enc);
            return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory packing weights");
        }
        memcpy(ly->qkv_b, src->q_b, H * sizeof *qkv);
        memcpy(ly->qkv_b + H, src->k_b, H * sizeof *qkv);
        memcpy(ly->qkv_b + 2 * H, src->v_b, H * sizeof *qkv);
    }
    free(qkv);
    rg_status st = tpool_create(tpool_cpu_count(), &c->pool, e);
    if (st != RG_OK) {
        encoder_cpu_release(enc);
        return st;
    }
    return RG_OK;
}

/* ---- the forward pass -------------------------------------------------------- */

typedef struct fwd_job {
    const rg_encoder *enc;
    const int32_t *ids, *types, *mask;
    size_t B, T, H, I, heads, d, R, tile;
    float *x;   /* [R, H] residual stream: the caller's hidden buffer */
    float *qkv; /* [R, 3H] */
    float *ctx; /* [R, H] */
    size_t *klen;     /* [B] keys up to the last real one */
    unsigned char *holes; /* [B] whether masked keys sit before klen */
    float *scratch;
    size_t per_thread; /* floats of scratch per thread */
    size_t attn_off;   /* where the attention scratch starts in a thread's share */
} fwd_job;

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

static void embed_rows(const fwd_job *j, size_t r0, size_t r1)
{
    const rg_encoder *enc = j->enc;
    size_t H = j->H;
    for (size_t r = r0; r < r1; r++) {
        size_t t = r % j->T;
        const float *we = enc->word_emb + (size_t)j->ids[r] * H;
        const float *pe = enc->pos_emb + t * H;
        const float *te = enc->type_emb + (size_t)(j->types ? j->types[r] : 0) * H;
        float *row = j->x + r * H;
        for (size_t i = 0; i < H; i++)
            row[i] = we[i] + pe[i] + te[i];
    }
    ops_add_layernorm(j->x + r0 * H, NULL, r1 - r0, H, enc->emb_ln_g, enc->emb_ln_b, enc->cfg.layer_norm_eps);
}

/* The row-local chain of layer l for rows [r0, r1) (see the top comment);
 * l == SIZE_MAX is the prologue (embeddings, then layer 0's Q|K|V). */
static void rows_task(const fwd_job *j, size_t l, size_t r0, size_t r1, float *scr)
{
    const rg_encoder *enc = j->enc;
    const struct enc_cpu *c = enc->cpu;
    size_t H = j->H, I = j->I, m = r1 - r0, L = c->n_layers;
    float eps = enc->cfg.layer_norm_eps;
    float *tmp = scr, *inter = tmp + round16(j->tile * H), *apack = inter + round16(j->tile * I);
    float *x = j->x + r0 * H;
    if (l == SIZE_MAX) {
        embed_rows(j, r0, r1);
    } else {
        const enc_layer *w = &enc->layers[l];
        const enc_cpu_layer *p = &c->layers[l];
        gemm_packed(j->ctx + r0 * H, H, m, H, p->ao, H, w->ao_b, tmp, H, apack);
        ops_add_layernorm(x, tmp, m, H, w->aln_g, w->aln_b, eps);
        gemm_packed(x, H, m, H, p->i, I, w->i_b, inter, I, apack);
        ops_gelu(inter, m * I);
        gemm_packed(inter, I, m, I, p->o, H, w->o_b, tmp, H, apack);
        ops_add_layernorm(x, tmp, m, H, w->oln_g, w->oln_b, eps);
    }
    size_t next = l == SIZE_MAX ? 0 : l + 1;
    if (next < L)
        gemm_packed(x, H, m, H, c->layers[next].qkv, 3 * H, c->layers[next].qkv_b, j->qkv + r0 * 3 * H, 3 * H,
                    apack);
}

/* Attention of sequence b, head h: ctx_h = softmax(Q_h K_h^T / sqrt d) V_h. */
static void attention_task(const fwd_job *j, size_t b, size_t h, float *scr)
{
    size_t T = j->T, H = j->H, d = j->d, tk = j->klen[b];
    const int32_t *m = j->mask + b * T;
    const float *q = j->qkv + b * T * 3 * H + h * d, *k = q + H, *v = q + 2 * H;
    float *out = j->ctx + b * T * H + h * d;
    if (tk == 0) {
        for (size_t t = 0; t < T; t++)
            memset(out + t * H, 0, d * sizeof *out);
        return;
    }
    float *scores = scr, *apack = scores + round16(T * T);
    float *kpack = apack + round16(gemm_apack_floats(T, T > d ? T : d));
    float *vpack = kpack + round16(gemm_bpack_floats(d, T));
    gemm_pack_b_nk(k, 3 * H, tk, d, kpack);
    gemm_packed(q, 3 * H, T, d, kpack, tk, NULL, scores, tk, apack);
    float scale = 1.0f / sqrtf((float)d), *inv = vpack + round16(gemm_bpack_floats(T, d));
    for (size_t t = 0; t < T; t++) {
        float *row = scores + t * tk;
        if (j->holes[b])
            for (size_t s = 0; s < tk; s++)
                if (m[s] == 0)
                    row[s] = -INFINITY;
        float sum = ops_softmax_unnormalized(row, tk, scale);
        inv[t] = sum > 0.0f ? 1.0f / sum : 0.0f;
    }
    gemm_pack_b_kn(v, 3 * H, tk, d, vpack);
    gemm_packed(scores, tk, T, tk, vpack, d, NULL, out, H, apack);
    for (size_t t = 0; t < T; t++)
        for (size_t i = 0; i < d; i++)
            out[t * H + i] *= inv[t];
}

static void forward_job(rg_tpool_ctx *ctx, void *arg)
{
    const fwd_job *j = arg;
    float *scr = j->scratch + (size_t)ctx->idx * j->per_thread;
    long ntiles = (long)((j->R + j->tile - 1) / j->tile), t;
    size_t L = j->enc->cpu->n_layers;
    while ((t = tpool_claim(ctx, ntiles)) >= 0) {
        size_t r0 = (size_t)t * j->tile, r1 = r0 + j->tile < j->R ? r0 + j->tile : j->R;
        rows_task(j, SIZE_MAX, r0, r1, scr);
    }
    tpool_sync(ctx);
    for (size_t l = 0; l < L; l++) {
        long npairs = (long)(j->B * j->heads);
        while ((t = tpool_claim(ctx, npairs)) >= 0)
            attention_task(j, (size_t)t / j->heads, (size_t)t % j->heads, scr + j->attn_off);
        tpool_sync(ctx);
        while ((t = tpool_claim(ctx, ntiles)) >= 0) {
            size_t r0 = (size_t)t * j->tile, r1 = r0 + j->tile < j->R ? r0 + j->tile : j->R;
            rows_task(j, l, r0, r1, scr);
        }
        tpool_sync(ctx);
    }
}

rg_status encoder_forward_cpu(const rg_encoder *enc, const int32_t *ids, const int32_t *type_ids,
                              const int32_t *mask, size_t B, size_t T, float *hidden, rg_err *e)
{
    const rg_bert_config *c = &enc->cfg;
    if (!enc->cpu)
        return rg_error(e, RG_ERR_INTERNAL, "encoder: CPU weights not prepared");
    fwd_job j = {.enc = enc, .ids = ids, .types = type_ids, .mask = mask, .B = B, .T = T};
    j.H = c->hidden_size, j.I = c->intermediate_size, j.heads = c->num_attention_heads;
    j.d = j.H / j.heads, j.R = B * T, j.x = hidden;
    int n = tpool_size(enc->cpu->pool);
    /* Tiles: at least two per thread for balance, at most ROW_TILE_MAX rows,
     * a multiple of the kernel's row block. */
    size_t tile = (j.R + 2 * (size_t)n - 1) / (2 * (size_t)n);
    tile = (tile + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
    j.tile = tile > ROW_TILE_MAX ? ROW_TILE_MAX : tile;
    size_t H = j.H, I = j.I, K = I > H ? I : H;
    size_t rows_scr = round16(j.tile * H) + round16(j.tile * I) + round16(gemm_apack_floats(j.tile, K));
    size_t attn_scr = round16(T * T) + round16(gemm_apack_floats(T, T > j.d ? T : j.d)) +
                      round16(gemm_bpack_floats(j.d, T)) + round16(gemm_bpack_floats(T, j.d)) + round16(T);
    j.attn_off = rows_scr;
    j.per_thread = rows_scr + attn_scr;
    /* encoder_forward bounds B * T * max(H, I) by INT_MAX, so these sizes
     * cannot overflow. */
    float *qkv = alloc_floats(j.R * 3 * H), *ctxb = alloc_floats(j.R * H);
    float *scratch = alloc_floats(j.per_thread * (size_t)n);
    size_t *klen = malloc(B * sizeof *klen);
    unsigned char *holes = malloc(B);
    if (!qkv || !ctxb || !scratch || !klen || !holes) {
        free(qkv), free(ctxb), free(scratch), free(klen), free(holes);
        return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory for a %zu x %zu batch", B, T);
    }
    for (size_t b = 0; b < B; b++) {
        size_t tk = T;
        while (tk > 0 && mask[b * T + tk - 1] == 0)
            tk--;
        klen[b] = tk;
        holes[b] = 0;
        for (size_t t = 0; t < tk; t++)
            holes[b] |= mask[b * T + t] == 0;
    }
    j.qkv = qkv, j.ctx = ctxb, j.scratch = scratch, j.klen = klen, j.holes = holes;
    if (!tpool_try_run(enc->cpu->pool, forward_job, &j))
        tpool_run_single(forward_job, &j);
    free(qkv), free(ctxb), free(scratch), free(klen), free(holes);
    return RG_OK;
}
