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
 * A batch of only a few rows (one short text) cannot give every thread a
 * tile: then each product is split by columns instead (forward_cols), with
 * a barrier after each step. The products run on model/gemm_cpu with the
 * weights packed once at load (Q, K and V fused into one [3H, H] product).
 * If another caller's forward pass holds the pool, this call runs alone on
 * its own thread rather than wait, so concurrent calls are safe and
 * independent; every output element is computed the same way whichever
 * thread, tile or mode computes it, so the results are too.
 *
 * encoder_forward_cpu computes padded positions like real ones (queries at
 * padded positions attend to the real keys, as in Hugging Face BERT), so
 * hidden [B, T, H] equals the reference everywhere. encoder_embed_cpu,
 * which only returns pooled vectors, lays out just each sequence's tokens
 * up to its last real one and computes nothing for padding. In both, keys
 * after a sequence's last real token are cut out of its attention. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/thread_pool.h"
#include "model/encoder_internal.h"
#include "model/gemm_cpu.h"
#include "model/ops_cpu.h"

#define ROW_TILE_MAX 72 /* rows per task: intermediates stay in L2 */

typedef struct enc_cpu_layer {
    float *qkv, *qkv_b; /* packed [H -> 3H] and its bias [3H] */
    float *ao, *i, *o;  /* packed attention output, intermediate, output */
} enc_cpu_layer;

struct enc_cpu {
    rg_tpool *pool;
    size_t n_layers;
    enc_cpu_layer *layers;
    /* One activation workspace kept between calls: fresh large blocks from
     * malloc are fresh pages, and faulting them in cost ~3% of a batch. A
     * call that finds it taken (a concurrent call) allocates its own. */
    pthread_mutex_t ws_mu;
    float *ws;
    size_t ws_floats;
    int ws_busy;
};

static float *alloc_floats(size_t n)
{
    void *p = NULL;
    if (n == 0 || n > SIZE_MAX / sizeof(float) - 16 || posix_memalign(&p, 64, n * sizeof(float)) != 0)
        return NULL;
    return p;
}

/* A workspace of n floats: the encoder's cached one when free, else a new
 * block; *cached says which, for ws_put. */
static float *ws_get(struct enc_cpu *c, size_t n, int *cached)
{
    float *w = NULL;
    *cached = 0;
    pthread_mutex_lock(&c->ws_mu);
    if (!c->ws_busy) {
        if (c->ws_floats < n) {
            free(c->ws);
            c->ws = alloc_floats(n);
            c->ws_floats = c->ws ? n : 0;
        }
        if (c->ws) {
            w = c->ws;
            c->ws_busy = 1;
            *cached = 1;
        }
    }
    pthread_mutex_unlock(&c->ws_mu);
    return w ? w : alloc_floats(n);
}

static void ws_put(struct enc_cpu *c, float *w, int cached)
{
    if (!cached) {
        free(w);
        return;
    }
    pthread_mutex_lock(&c->ws_mu);
    c->ws_busy = 0;
    pthread_mutex_unlock(&c->ws_mu);
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
    pthread_mutex_destroy(&c->ws_mu);
    free(c->ws);
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
    pthread_mutex_init(&c->ws_mu, NULL);
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
    int by_cols;  /* few rows: split the products by columns (see forward_cols) */
    float *wide;  /* by_cols: [R, H] projection outputs, then [R, I] intermediate */
    size_t *klen;         /* [B] keys up to the last real one */
    unsigned char *holes; /* [B] whether masked keys sit before klen */
    size_t *seq_off;      /* [B] the row of each sequence's first token */
    size_t *seq_rows;     /* [B] its rows (queries): T, or klen when compact */
    size_t *src;          /* [R] compact rows: index of row r in ids/types/mask; NULL: r itself */
    float *pool_out;      /* when set: x lives in the workspace and is pooled into [B, H] here */
    rg_pooling pooling;
    int normalize;
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
        size_t sr = j->src ? j->src[r] : r, t = sr % j->T;
        const float *we = enc->word_emb + (size_t)j->ids[sr] * H;
        const float *pe = enc->pos_emb + t * H;
        const float *te = enc->type_emb + (size_t)(j->types ? j->types[sr] : 0) * H;
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
    /* Scratch is laid out for the batch's T; this sequence uses nq <= T. */
    size_t T = j->T, H = j->H, d = j->d, tk = j->klen[b], nq = j->seq_rows[b];
    const int32_t *m = j->mask + b * T;
    const float *q = j->qkv + j->seq_off[b] * 3 * H + h * d, *k = q + H, *v = q + 2 * H;
    float *out = j->ctx + j->seq_off[b] * H + h * d;
    if (tk == 0) {
        for (size_t t = 0; t < nq; t++)
            memset(out + t * H, 0, d * sizeof *out);
        return;
    }
    float *scores = scr, *apack = scores + round16(T * T);
    float *kpack = apack + round16(gemm_apack_floats(T, T > d ? T : d));
    float *vpack = kpack + round16(gemm_bpack_floats(d, T));
    gemm_pack_b_nk(k, 3 * H, tk, d, kpack);
    gemm_packed(q, 3 * H, nq, d, kpack, tk, NULL, scores, tk, apack);
    float scale = 1.0f / sqrtf((float)d), *inv = vpack + round16(gemm_bpack_floats(T, d));
    for (size_t t = 0; t < nq; t++) {
        float *row = scores + t * tk;
        if (j->holes[b])
            for (size_t s = 0; s < tk; s++)
                if (m[s] == 0)
                    row[s] = -INFINITY;
        float sum = ops_softmax_unnormalized(row, tk, scale);
        inv[t] = sum > 0.0f ? 1.0f / sum : 0.0f;
    }
    gemm_pack_b_kn(v, 3 * H, tk, d, vpack);
    gemm_packed(scores, tk, nq, tk, vpack, d, NULL, out, H, apack);
    for (size_t t = 0; t < nq; t++)
        for (size_t i = 0; i < d; i++)
            out[t * H + i] *= inv[t];
}

/* Columns of C[R, N] = A[R, K] B + bias (optionally GELU), split into
 * tasks of whole column panels; then a barrier. */
static void cols_phase(rg_tpool_ctx *ctx, const fwd_job *j, const float *a, size_t K, const float *bp, size_t N,
                       const float *bias, float *c, int gelu, float *apack)
{
    size_t per = (N + 4 * (size_t)ctx->n - 1) / (4 * (size_t)ctx->n); /* ~4 tasks per thread */
    per = (per + GEMM_NR - 1) / GEMM_NR * GEMM_NR;
    long nt = (long)((N + per - 1) / per), t;
    while ((t = tpool_claim(ctx, nt)) >= 0) {
        size_t n0 = (size_t)t * per, nn = N - n0 < per ? N - n0 : per;
        gemm_packed(a, K, j->R, K, bp + n0 * K, nn, bias + n0, c + n0, N, apack);
        if (gelu)
            for (size_t r = 0; r < j->R; r++)
                ops_gelu(c + r * N + n0, nn);
    }
    tpool_sync(ctx);
}

/* x[r] <- LayerNorm(x[r] + y[r]) row by row across threads; then a barrier. */
static void ln_phase(rg_tpool_ctx *ctx, const fwd_job *j, const float *y, const float *g, const float *b)
{
    long t;
    while ((t = tpool_claim(ctx, (long)j->R)) >= 0)
        ops_add_layernorm(j->x + (size_t)t * j->H, y + (size_t)t * j->H, 1, j->H, g, b, j->enc->cfg.layer_norm_eps);
    tpool_sync(ctx);
}

/* Few rows (a short text at batch 1): row tiles of 6 cannot keep every
 * thread busy, so each product is split by columns instead, at the price
 * of a barrier between the steps of the row chain. */
static void forward_cols(rg_tpool_ctx *ctx, const fwd_job *j, float *scr)
{
    const rg_encoder *enc = j->enc;
    const struct enc_cpu *c = enc->cpu;
    size_t H = j->H, I = j->I, L = c->n_layers;
    float *apack = scr, *wide = j->wide;
    long t;
    while ((t = tpool_claim(ctx, (long)j->R)) >= 0)
        embed_rows(j, (size_t)t, (size_t)t + 1);
    tpool_sync(ctx);
    cols_phase(ctx, j, j->x, H, c->layers[0].qkv, 3 * H, c->layers[0].qkv_b, j->qkv, 0, apack);
    for (size_t l = 0; l < L; l++) {
        const enc_layer *w = &enc->layers[l];
        const enc_cpu_layer *p = &c->layers[l];
        long npairs = (long)(j->B * j->heads);
        while ((t = tpool_claim(ctx, npairs)) >= 0)
            attention_task(j, (size_t)t / j->heads, (size_t)t % j->heads, scr + j->attn_off);
        tpool_sync(ctx);
        cols_phase(ctx, j, j->ctx, H, p->ao, H, w->ao_b, wide, 0, apack);
        ln_phase(ctx, j, wide, w->aln_g, w->aln_b);
        cols_phase(ctx, j, j->x, H, p->i, I, w->i_b, wide, 1, apack);
        cols_phase(ctx, j, wide, I, p->o, H, w->o_b, j->ctx, 0, apack); /* ctx is free again */
        ln_phase(ctx, j, j->ctx, w->oln_g, w->oln_b);
        if (l + 1 < L)
            cols_phase(ctx, j, j->x, H, c->layers[l + 1].qkv, 3 * H, c->layers[l + 1].qkv_b, j->qkv, 0, apack);
    }
}

static void forward_job(rg_tpool_ctx *ctx, void *arg)
{
    const fwd_job *j = arg;
    float *scr = j->scratch + (size_t)ctx->idx * j->per_thread;
    if (j->by_cols) {
        forward_cols(ctx, j, scr);
        return;
    }
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

/* Runs the job j (inputs, layout and per-sequence arrays filled in) on the
 * pool, or alone when the pool is busy; sizes the workspace. */
static rg_status run_forward(const rg_encoder *enc, fwd_job *j, rg_err *e)
{
    const rg_bert_config *c = &enc->cfg;
    size_t T = j->T;
    j->enc = enc;
    j->H = c->hidden_size, j->I = c->intermediate_size, j->heads = c->num_attention_heads;
    j->d = j->H / j->heads;
    if (j->R == 0)
        return RG_OK;
    int n = tpool_size(enc->cpu->pool);
    /* Tiles: at least two per thread for balance, at most ROW_TILE_MAX rows,
     * a multiple of the kernel's row block. Fewer than 4 row blocks per
     * thread: split by columns instead. */
    size_t tile = (j->R + 2 * (size_t)n - 1) / (2 * (size_t)n);
    tile = (tile + 2 * GEMM_MR - 1) / (2 * GEMM_MR) * (2 * GEMM_MR); /* whole 12-row AVX-512 blocks */
    j->tile = tile > ROW_TILE_MAX ? ROW_TILE_MAX : tile;
    j->by_cols = n > 1 && j->R < 4 * GEMM_MR * (size_t)n;
    size_t H = j->H, I = j->I, K = I > H ? I : H;
    size_t rows_scr = round16(j->tile * H) + round16(j->tile * I) + round16(gemm_apack_floats(j->tile, K));
    if (j->by_cols && round16(gemm_apack_floats(j->R, K)) > rows_scr)
        rows_scr = round16(gemm_apack_floats(j->R, K));
    size_t attn_scr = round16(T * T) + round16(gemm_apack_floats(T, T > j->d ? T : j->d)) +
                      round16(gemm_bpack_floats(j->d, T)) + round16(gemm_bpack_floats(T, j->d)) + round16(T);
    j->attn_off = rows_scr;
    j->per_thread = rows_scr + attn_scr;
    /* encoder_forward bounds B * T * max(H, I) by INT_MAX, so these sizes
     * cannot overflow. One workspace: qkv [R, 3H], ctx [R, H], the wide
     * buffer [R, I] in column mode, then each thread's scratch (sized for
     * either mode, so a call that runs alone can use the same layout). */
    size_t n_qkv = round16(j->R * 3 * H), n_ctx = round16(j->R * H), n_wide = j->by_cols ? round16(j->R * K) : 0;
    size_t n_x = j->pool_out ? round16(j->R * H) : 0;
    int cached;
    float *ws = ws_get(enc->cpu, n_qkv + n_ctx + n_wide + n_x + j->per_thread * (size_t)n, &cached);
    if (!ws)
        return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory for a %zu x %zu batch", j->B, T);
    j->qkv = ws, j->ctx = ws + n_qkv, j->wide = ws + n_qkv + n_ctx;
    if (j->pool_out)
        j->x = ws + n_qkv + n_ctx + n_wide;
    j->scratch = ws + n_qkv + n_ctx + n_wide + n_x;
    if (!tpool_try_run(enc->cpu->pool, forward_job, j)) {
        /* Alone: the same tiles, so the same results (each output element
         * is computed the same way whichever thread or mode computes it). */
        j->by_cols = 0;
        tpool_run_single(forward_job, j);
    }
    for (size_t b = 0; j->pool_out && b < j->B; b++) {
        float *o = j->pool_out + b * H;
        const float *rows = j->x + j->seq_off[b] * H;
        if (j->seq_rows[b] == 0)
            memset(o, 0, H * sizeof *o);
        else if (j->pooling == RG_POOL_CLS)
            memcpy(o, rows, H * sizeof *o);
        else
            ops_mean_pool(rows, j->mask + b * T, j->seq_rows[b], H, o);
        if (j->normalize)
            ops_l2_normalize(o, H);
    }
    ws_put(enc->cpu, ws, cached);
    return RG_OK;
}

/* Per-sequence arrays: keys up to the last real token, interior holes, and
 * the row layout (full: b * T, T rows; compact: real tokens only). */
static rg_status layout(fwd_job *j, int compact, rg_err *e)
{
    size_t B = j->B, T = j->T;
    j->klen = malloc(B * sizeof *j->klen);
    j->seq_off = malloc(B * sizeof *j->seq_off);
    j->seq_rows = malloc(B * sizeof *j->seq_rows);
    j->holes = malloc(B);
    if (!j->klen || !j->seq_off || !j->seq_rows || !j->holes)
        return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory");
    size_t R = 0;
    for (size_t b = 0; b < B; b++) {
        size_t tk = T;
        while (tk > 0 && j->mask[b * T + tk - 1] == 0)
            tk--;
        j->klen[b] = tk;
        j->holes[b] = 0;
        for (size_t t = 0; t < tk; t++)
            j->holes[b] |= j->mask[b * T + t] == 0;
        j->seq_off[b] = R;
        j->seq_rows[b] = compact ? tk : T;
        R += j->seq_rows[b];
    }
    j->R = R;
    if (compact) {
        j->src = malloc((R ? R : 1) * sizeof *j->src);
        if (!j->src)
            return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory");
        for (size_t b = 0; b < B; b++)
            for (size_t t = 0; t < j->seq_rows[b]; t++)
                j->src[j->seq_off[b] + t] = b * T + t;
    }
    return RG_OK;
}

static void layout_free(fwd_job *j)
{
    free(j->klen), free(j->seq_off), free(j->seq_rows), free(j->holes), free(j->src);
}

rg_status encoder_forward_cpu(const rg_encoder *enc, const int32_t *ids, const int32_t *type_ids,
                              const int32_t *mask, size_t B, size_t T, float *hidden, rg_err *e)
{
    if (!enc->cpu)
        return rg_error(e, RG_ERR_INTERNAL, "encoder: CPU weights not prepared");
    fwd_job j = {.ids = ids, .types = type_ids, .mask = mask, .B = B, .T = T, .x = hidden};
    rg_status st = layout(&j, 0, e);
    if (st == RG_OK)
        st = run_forward(enc, &j, e);
    layout_free(&j);
    return st;
}

rg_status encoder_embed_cpu(const rg_encoder *enc, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                            size_t B, size_t T, rg_pooling pooling, int normalize, float *out, rg_err *e)
{
    if (!enc->cpu)
        return rg_error(e, RG_ERR_INTERNAL, "encoder: CPU weights not prepared");
    fwd_job j = {.ids = ids, .types = type_ids, .mask = mask, .B = B, .T = T};
    j.pool_out = out, j.pooling = pooling, j.normalize = normalize;
    rg_status st = layout(&j, 1, e);
    if (st == RG_OK && j.R == 0) /* nothing but padding: zero vectors */
        memset(out, 0, B * enc->cfg.hidden_size * sizeof *out);
    else if (st == RG_OK)
        st = run_forward(enc, &j, e);
    layout_free(&j);
    return st;
}
