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
 * a barrier after each step. The products are OpenBLAS cblas_sgemm calls
 * made from the pool's threads, each on its own row tile or column panel,
 * so OpenBLAS itself must not thread: encoder_cpu_prepare sets it to one
 * thread (see there for why process-wide is acceptable). Q, K and V are
 * fused into one [3H, H] product.
 * If another caller's forward pass holds the pool, this call runs alone on
 * its own thread rather than wait, so concurrent calls are safe and
 * independent; every output element is computed the same way whichever
 * thread, tile or mode computes it, so the results are too. That holds for
 * OpenBLAS only under shape rules (see product()): OpenBLAS 0.3.21 picks
 * different kernels, with different summation orders, for a partial block
 * of rows or a small product, so a row's bits would otherwise depend on its
 * tile. tests/unit/test_encoder_cpu checks the outcome.
 *
 * encoder_forward_cpu computes padded positions like real ones (queries at
 * padded positions attend to the real keys, as in Hugging Face BERT), so
 * hidden [B, T, H] equals the reference everywhere. encoder_embed_cpu,
 * which only returns pooled vectors, lays out just each sequence's tokens
 * up to its last real one and computes nothing for padding. In both, keys
 * after a sequence's last real token are cut out of its attention. */
#include <cblas.h>
#undef I /* from <complex.h>, which OpenBLAS's cblas.h includes; I is the intermediate size here */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/thread_pool.h"
#include "model/encoder_internal.h"
#include "model/ops_cpu.h"

/* Every row-local product is one call whose row count is a multiple of
 * ROW_BLOCK (OpenBLAS's sgemm row unroll on its AVX-512 and AVX2 cores) and
 * whose column panels are at least PANEL_MIN wide (narrower products take
 * OpenBLAS's small-matrix kernel): then a row's result does not depend on
 * the tile or panel it was computed in (measured on 0.3.21, Cooperlake
 * kernels, K 384/1536). The row buffers therefore hold the batch's rows
 * rounded up to ROW_BLOCK (Rp); the extra rows start at zero, stay finite
 * and are never read by attention or pooling. */
#define ROW_BLOCK 16
#define PANEL_MIN 96
/* Rows per task. OpenBLAS packs the weight panel on every call, so it
 * wants tall calls: 256 rows ran 7-16% faster than 64 on one CPU. */
#define ROW_TILE_MAX 256

typedef struct enc_cpu_layer {
    float *qkv, *qkv_b; /* fused [3H, H] weight (Q, K, V rows) and its bias [3H] */
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
            free(ly->qkv), free(ly->qkv_b);
        }
    }
    free(c->layers);
    free(c);
    enc->cpu = NULL;
}

rg_status encoder_cpu_prepare(rg_encoder *enc, rg_err *e)
{
    const rg_bert_config *cfg = &enc->cfg;
    size_t H = cfg->hidden_size, L = cfg->num_hidden_layers;
    struct enc_cpu *c = calloc(1, sizeof *c);
    if (!c)
        return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory");
    enc->cpu = c;
    pthread_mutex_init(&c->ws_mu, NULL);
    c->n_layers = L;
    c->layers = calloc(L, sizeof *c->layers);
    if (!c->layers) {
        encoder_cpu_release(enc);
        return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory");
    }
    /* The other weights are used where they are ([N, K] nn.Linear layout,
     * OpenBLAS reads them transposed); only Q|K|V is concatenated. */
    for (size_t l = 0; l < L; l++) {
        const enc_layer *src = &enc->layers[l];
        enc_cpu_layer *ly = &c->layers[l];
        ly->qkv = alloc_floats(3 * H * H);
        ly->qkv_b = alloc_floats(3 * H);
        if (!ly->qkv || !ly->qkv_b) {
            encoder_cpu_release(enc);
            return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory for the fused Q|K|V weights");
        }
        memcpy(ly->qkv, src->q_w, H * H * sizeof *ly->qkv);
        memcpy(ly->qkv + H * H, src->k_w, H * H * sizeof *ly->qkv);
        memcpy(ly->qkv + 2 * H * H, src->v_w, H * H * sizeof *ly->qkv);
        memcpy(ly->qkv_b, src->q_b, H * sizeof *ly->qkv_b);
        memcpy(ly->qkv_b + H, src->k_b, H * sizeof *ly->qkv_b);
        memcpy(ly->qkv_b + 2 * H, src->v_b, H * sizeof *ly->qkv_b);
    }
    /* The pool's threads each call sgemm on their own tile; OpenBLAS must
     * not start threads of its own under them (oversubscription, and its
     * level-3 driver serializes concurrent threaded calls). OpenBLAS 0.3.21
     * (Debian 12) has no per-call or per-thread setting
     * (openblas_set_num_threads_local came in a later release), so this is
     * process-wide. Nothing else in ragd wants BLAS threads: FAISS uses
     * BLAS only for searches of 20 or more queries at once and ragd searches
     * one query at a time (index/dense.c); the decoder does not use BLAS;
     * ops_linear/ops_attention are test references. Same value every time,
     * set before this encoder's first product. */
    openblas_set_num_threads(1);
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
    size_t Rp;  /* R rounded up to ROW_BLOCK: the rows of x, qkv, ctx, wide */
    float *x;   /* [Rp, H] residual stream (workspace) */
    float *hidden; /* when set: x's first R rows are copied here at the end */
    float *qkv; /* [R, 3H] */
    float *ctx; /* [R, H] */
    int by_cols;  /* few rows: split the products by columns (see forward_cols) */
    float *wide;  /* by_cols: [R, H] projection outputs, then [R, I] intermediate */
    size_t *klen;         /* [B] keys up to the last real one */
    unsigned char *holes; /* [B] whether masked keys sit before klen */
    size_t *seq_off;      /* [B] the row of each sequence's first token */
    size_t *seq_rows;     /* [B] its rows (queries): T, or klen when compact */
    size_t *src;          /* [R] compact rows: index of row r in ids/types/mask; NULL: r itself */
    float *pool_out;      /* when set: x is pooled into [B, H] here */
    rg_pooling pooling;
    int normalize;
    float *scratch;
    size_t per_thread; /* floats of scratch per thread */
    size_t attn_off;   /* where the attention scratch starts in a thread's share */
} fwd_job;

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

/* row[0..n) = bias, or zeros without one: sgemm then adds the product. */
static void set_bias(float *row, const float *bias, size_t n)
{
    if (bias)
        memcpy(row, bias, n * sizeof *row);
    else
        memset(row, 0, n * sizeof *row);
}

/* C[m, N] (row stride ldc) = A[m, K] (row stride lda) W^T + bias, W an
 * nn.Linear weight whose rows are ldw apart (a column panel of a larger
 * one when N is less than its rows); m a multiple of ROW_BLOCK. */
static void product(const float *a, size_t lda, size_t m, size_t K, const float *w, size_t ldw, size_t N,
                    const float *bias, float *c, size_t ldc)
{
    for (size_t r = 0; r < m; r++)
        set_bias(c + r * ldc, bias, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)N, (blasint)K, 1.0f, a, (blasint)lda,
                w, (blasint)ldw, 1.0f, c, (blasint)ldc);
}

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
    size_t mp = (m + ROW_BLOCK - 1) / ROW_BLOCK * ROW_BLOCK; /* products: whole blocks (rows < Rp) */
    float eps = enc->cfg.layer_norm_eps;
    float *tmp = scr, *inter = tmp + round16(j->tile * H);
    float *x = j->x + r0 * H;
    if (l == SIZE_MAX) {
        embed_rows(j, r0, r1);
    } else {
        const enc_layer *w = &enc->layers[l];
        product(j->ctx + r0 * H, H, mp, H, w->ao_w, H, H, w->ao_b, tmp, H);
        ops_add_layernorm(x, tmp, m, H, w->aln_g, w->aln_b, eps);
        product(x, H, mp, H, w->i_w, H, I, w->i_b, inter, I);
        ops_gelu(inter, m * I);
        product(inter, I, mp, I, w->o_w, I, H, w->o_b, tmp, H);
        ops_add_layernorm(x, tmp, m, H, w->oln_g, w->oln_b, eps);
    }
    size_t next = l == SIZE_MAX ? 0 : l + 1;
    if (next < L)
        product(x, H, mp, H, c->layers[next].qkv, H, 3 * H, c->layers[next].qkv_b, j->qkv + r0 * 3 * H, 3 * H);
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
    /* A sequence's shapes (nq, tk) are the same in whichever batch, tile
     * or mode it runs, so these calls need no padding for reproducibility. */
    float *scores = scr, *inv = scores + round16(T * T);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)nq, (blasint)tk, (blasint)d, 1.0f, q,
                (blasint)(3 * H), k, (blasint)(3 * H), 0.0f, scores, (blasint)tk);
    float scale = 1.0f / sqrtf((float)d);
    for (size_t t = 0; t < nq; t++) {
        float *row = scores + t * tk;
        if (j->holes[b])
            for (size_t s = 0; s < tk; s++)
                if (m[s] == 0)
                    row[s] = -INFINITY;
        float sum = ops_softmax_unnormalized(row, tk, scale);
        inv[t] = sum > 0.0f ? 1.0f / sum : 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)nq, (blasint)d, (blasint)tk, 1.0f, scores,
                (blasint)tk, v, (blasint)(3 * H), 0.0f, out, (blasint)H);
    for (size_t t = 0; t < nq; t++)
        for (size_t i = 0; i < d; i++)
            out[t * H + i] *= inv[t];
}

/* Columns of C[R, N] = A[R, K] W^T + bias (optionally GELU), W [N, K],
 * split into tasks of column panels (the last one takes the rest, so none
 * is narrower than PANEL_MIN when N allows); then a barrier. */
static void cols_phase(rg_tpool_ctx *ctx, const fwd_job *j, const float *a, size_t K, const float *w, size_t N,
                       const float *bias, float *c, int gelu)
{
    size_t per = (N + 4 * (size_t)ctx->n - 1) / (4 * (size_t)ctx->n); /* ~4 tasks per thread */
    per = (per + ROW_BLOCK - 1) / ROW_BLOCK * ROW_BLOCK;
    if (per < PANEL_MIN)
        per = PANEL_MIN;
    long nt = N / per ? (long)(N / per) : 1, t;
    while ((t = tpool_claim(ctx, nt)) >= 0) {
        size_t n0 = (size_t)t * per, nn = t == nt - 1 ? N - n0 : per;
        product(a, K, j->Rp, K, w + n0 * K, K, nn, bias ? bias + n0 : NULL, c + n0, N);
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
    float *wide = j->wide;
    long t;
    while ((t = tpool_claim(ctx, (long)j->R)) >= 0)
        embed_rows(j, (size_t)t, (size_t)t + 1);
    tpool_sync(ctx);
    cols_phase(ctx, j, j->x, H, c->layers[0].qkv, 3 * H, c->layers[0].qkv_b, j->qkv, 0);
    for (size_t l = 0; l < L; l++) {
        const enc_layer *w = &enc->layers[l];
        long npairs = (long)(j->B * j->heads);
        while ((t = tpool_claim(ctx, npairs)) >= 0)
            attention_task(j, (size_t)t / j->heads, (size_t)t % j->heads, scr + j->attn_off);
        tpool_sync(ctx);
        cols_phase(ctx, j, j->ctx, H, w->ao_w, H, w->ao_b, wide, 0);
        ln_phase(ctx, j, wide, w->aln_g, w->aln_b);
        cols_phase(ctx, j, j->x, H, w->i_w, I, w->i_b, wide, 1);
        cols_phase(ctx, j, wide, I, w->o_w, H, w->o_b, j->ctx, 0); /* ctx is free again */
        ln_phase(ctx, j, j->ctx, w->oln_g, w->oln_b);
        if (l + 1 < L)
            cols_phase(ctx, j, j->x, H, c->layers[l + 1].qkv, 3 * H, c->layers[l + 1].qkv_b, j->qkv, 0);
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
     * whole row blocks (only the batch's last tile is ragged). Fewer than
     * 24 rows per thread: split by columns instead. */
    size_t tile = (j->R + 2 * (size_t)n - 1) / (2 * (size_t)n);
    tile = (tile + ROW_BLOCK - 1) / ROW_BLOCK * ROW_BLOCK;
    j->tile = tile > ROW_TILE_MAX ? ROW_TILE_MAX : tile;
    j->by_cols = n > 1 && j->R < 24 * (size_t)n;
    size_t H = j->H, I = j->I, K = I > H ? I : H;
    size_t rows_scr = round16(j->tile * H) + round16(j->tile * I);
    size_t attn_scr = round16(T * T) + round16(T);
    j->attn_off = rows_scr;
    j->per_thread = rows_scr + attn_scr;
    /* encoder_forward bounds B * T * max(H, I) by INT_MAX, so these sizes
     * cannot overflow. One workspace: qkv [Rp, 3H], ctx [Rp, H], the wide
     * buffer [Rp, I] in column mode, x [Rp, H], then each thread's scratch
     * (sized for either mode, so a call that runs alone can use the same
     * layout). */
    size_t Rp = (j->R + ROW_BLOCK - 1) / ROW_BLOCK * ROW_BLOCK;
    j->Rp = Rp;
    size_t n_qkv = round16(Rp * 3 * H), n_ctx = round16(Rp * H), n_wide = j->by_cols ? round16(Rp * K) : 0;
    size_t n_x = round16(Rp * H);
    int cached;
    float *ws = ws_get(enc->cpu, n_qkv + n_ctx + n_wide + n_x + j->per_thread * (size_t)n, &cached);
    if (!ws)
        return rg_error(e, RG_ERR_NOMEM, "encoder: out of memory for a %zu x %zu batch", j->B, T);
    j->qkv = ws, j->ctx = ws + n_qkv, j->wide = ws + n_qkv + n_ctx;
    j->x = ws + n_qkv + n_ctx + n_wide;
    j->scratch = ws + n_qkv + n_ctx + n_wide + n_x;
    /* The padding rows are read by the products before anything writes
     * them: start them at zero (see the top of the file). */
    memset(j->x + j->R * H, 0, (Rp - j->R) * H * sizeof *j->x);
    memset(j->ctx + j->R * H, 0, (Rp - j->R) * H * sizeof *j->ctx);
    if (!tpool_try_run(enc->cpu->pool, forward_job, j)) {
        /* Alone: the same tiles, so the same results (each output element
         * is computed the same way whichever thread or mode computes it). */
        j->by_cols = 0;
        tpool_run_single(forward_job, j);
    }
    if (j->hidden)
        memcpy(j->hidden, j->x, j->R * H * sizeof *j->x);
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
    fwd_job j = {.ids = ids, .types = type_ids, .mask = mask, .B = B, .T = T, .hidden = hidden};
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
