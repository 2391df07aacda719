/* decoder_matmul.c - the decoder's matrix products, in one of two forms:
 *
 * - quantized activations (the default): activations prepared once per
 *   weight type (model/quant: 8-bit blocks for quantized weights, as
 *   llama.cpp does), then the rows of up to three matrices that share the
 *   input split over the pool, each row read once for every vector of the
 *   batch;
 * - f32 activations (rg_decoder_opts.f32_activations): tiles of DEC_F32_TILE
 *   weight rows dequantized to f32 and multiplied by gemm_cpu, so the
 *   product is the exact function of the stored weights that a reference
 *   implementation computes on the dequantized model (no 8-bit rounding of
 *   the activations), without keeping an f32 copy of the weights. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "model/decoder_internal.h"
#include "model/gemm_cpu.h"
#include "model/quant.h"

/* Weight rows per f32 tile (a multiple of GEMM_NR): small enough that 2-16
 * workers share a 192-row key matrix, large enough that dequantizing and
 * packing a tile is cheap beside multiplying it by a prompt's tokens. */
#define DEC_F32_TILE 64
/* Activation rows per gemm_packed call: ~0.6 MB of A at K = 1536 stays in a
 * core's L2 while the tile's four panels stream past it. */
#define DEC_F32_ROWS 96

typedef struct mm_job {
    atomic_size_t next; /* next chunk of rows to take */
    size_t chunk;
    const dec_mat *const *w;
    float *const *y;
    size_t n_mat, n, total_rows;
    const void *act[3];
    rg_status st[DEC_MAX_THREADS];
    rg_err err[DEC_MAX_THREADS];
} mm_job;

/* Workers take chunks of rows from a shared counter rather than a fixed
 * share: on a busy machine a worker that is scheduled late finds the work
 * already done by the others instead of holding everyone up. */
static void mm_worker(void *ctx, size_t worker, size_t n_workers)
{
    mm_job *j = ctx;
    (void)n_workers;
    for (;;) {
        size_t begin = atomic_fetch_add(&j->next, j->chunk) , end;
        if (begin >= j->total_rows)
            break;
        end = begin + j->chunk < j->total_rows ? begin + j->chunk : j->total_rows;
        size_t base = 0;
        for (size_t m = 0; m < j->n_mat && begin < end; m++) {
            const dec_mat *w = j->w[m];
            size_t lo = begin > base ? begin - base : 0, hi = end - base < w->rows ? end - base : w->rows;
            if (end > base && lo < hi) {
                rg_status st = quant_matmul_prepared(w->type, w->data, w->rows, w->cols, j->act[m], j->n, j->y[m],
                                                     w->rows, lo, hi, &j->err[worker]);
                if (st != RG_OK && j->st[worker] == RG_OK)
                    j->st[worker] = st;
            }
            base += w->rows;
        }
    }
}

/* The form of the activations for weights of type wtype. A GGUF model's
 * reference is llama.cpp, which rounds them to fp16 / bf16 for F16 / BF16
 * weights (quant_act_prepare does the same); a Hugging Face directory's is
 * transformers in float32, so there its float matrices take the
 * activations unrounded (the float kernels read f32 activations for any
 * float weight type: the prepared F32 form). */
static uint32_t act_type(const rg_decoder *d, uint32_t wtype)
{
    if (!d->gguf && (wtype == GGML_TYPE_F16 || wtype == GGML_TYPE_BF16))
        return GGML_TYPE_F32;
    return wtype;
}

/* ---- f32 activations ---------------------------------------------------------- */

typedef struct f32_job {
    atomic_size_t next; /* next tile */
    const dec_mat *const *w;
    float *const *y;
    size_t n_mat, n, cols, n_tiles;
    size_t first_tile[4]; /* matrix m's tiles are [first_tile[m], first_tile[m + 1]) */
    const float *x;
    float *scratch; /* per worker: tile rows, packed tile, A edge */
    size_t scratch_floats;
    rg_status st[DEC_MAX_THREADS];
    rg_err err[DEC_MAX_THREADS];
} f32_job;

static size_t f32_scratch_floats(size_t cols)
{
    return (size_t)DEC_F32_TILE * cols + gemm_bpack_floats(cols, DEC_F32_TILE) +
           gemm_apack_floats(DEC_F32_ROWS, cols);
}

static void f32_worker(void *ctx, size_t worker, size_t n_workers)
{
    f32_job *j = ctx;
    (void)n_workers;
    size_t K = j->cols;
    float *rows = j->scratch + worker * j->scratch_floats;
    float *bp = rows + (size_t)DEC_F32_TILE * K;
    float *apack = bp + gemm_bpack_floats(K, DEC_F32_TILE);
    for (;;) {
        size_t t = atomic_fetch_add(&j->next, 1);
        if (t >= j->n_tiles)
            break;
        size_t m = 0;
        while (t >= j->first_tile[m + 1])
            m++;
        const dec_mat *w = j->w[m];
        size_t r0 = (t - j->first_tile[m]) * DEC_F32_TILE;
        size_t nr = w->rows - r0 < DEC_F32_TILE ? w->rows - r0 : DEC_F32_TILE;
        rg_status st = RG_OK;
        for (size_t r = 0; r < nr && st == RG_OK; r++)
            st = dequantize_row(w->type, (const char *)w->data + (r0 + r) * w->row_bytes, rows + r * K, K,
                                &j->err[worker]);
        if (st != RG_OK) {
            if (j->st[worker] == RG_OK)
                j->st[worker] = st;
            continue;
        }
        gemm_pack_b_nk(rows, K, nr, K, bp);
        for (size_t v0 = 0; v0 < j->n; v0 += DEC_F32_ROWS) {
            size_t nv = j->n - v0 < DEC_F32_ROWS ? j->n - v0 : DEC_F32_ROWS;
            gemm_packed(j->x + v0 * K, K, nv, K, bp, nr, NULL, j->y[m] + v0 * w->rows + r0, w->rows, apack);
        }
    }
}

static rg_status matmul_f32(rg_decoder *d, const float *x, size_t n, const dec_mat *const *w, float *const *y,
                            size_t n_mat, rg_err *e)
{
    f32_job j; /* not zero-initialised: the per-worker error records are 32 KB */
    j.w = w;
    j.y = y;
    j.n_mat = n_mat;
    j.n = n;
    j.cols = w[0]->cols;
    j.x = x;
    j.n_tiles = 0;
    for (size_t m = 0; m < n_mat; m++) {
        if (w[m]->cols != j.cols)
            return rg_error(e, RG_ERR_INTERNAL, "dec_matmul: input widths differ");
        j.first_tile[m] = j.n_tiles;
        j.n_tiles += (w[m]->rows + DEC_F32_TILE - 1) / DEC_F32_TILE;
    }
    j.first_tile[n_mat] = j.n_tiles;
    size_t nw = dec_pool_size(d->pool);
    j.scratch_floats = f32_scratch_floats(j.cols);
    /* 64 floats of slack per worker keep each worker's block on its own
     * cache lines */
    j.scratch_floats = (j.scratch_floats + 63) / 64 * 64;
    if (j.scratch_floats > SIZE_MAX / sizeof(float) / nw)
        return rg_error(e, RG_ERR_NOMEM, "f32 products of width %zu are too large", j.cols);
    size_t need = j.scratch_floats * nw * sizeof(float);
    if (need > d->f32_bytes) {
        void *p = realloc(d->f32_scratch, need);
        if (!p)
            return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu bytes of f32 product scratch", need);
        d->f32_scratch = p;
        d->f32_bytes = need;
    }
    j.scratch = d->f32_scratch;
    atomic_init(&j.next, 0);
    for (size_t i = 0; i < nw; i++)
        j.st[i] = RG_OK;
    dec_pool_run(d->pool, f32_worker, &j);
    for (size_t i = 0; i < nw; i++)
        if (j.st[i] != RG_OK)
            return rg_error(e, j.st[i], "matrix product: %s", j.err[i].msg);
    return RG_OK;
}

/* ---- quantized activations --------------------------------------------------------- */

rg_status dec_matmul(rg_decoder *d, const float *x, size_t n, const dec_mat *const *w, float *const *y, size_t n_mat,
                     rg_err *e)
{
    if (n_mat == 0 || n_mat > 3)
        return rg_error(e, RG_ERR_INTERNAL, "dec_matmul: %zu matrices", n_mat);
    if (d->f32_activations)
        return matmul_f32(d, x, n, w, y, n_mat, e);
    mm_job j; /* not zero-initialised: the per-worker error records are 32 KB */
    j.w = w;
    j.y = y;
    j.n_mat = n_mat;
    j.n = n;
    j.total_rows = 0;
    /* one prepared copy of x per distinct weight type (matrices sharing an
     * input share its column count) */
    size_t need = 0, off[3];
    uint32_t at[3];
    for (size_t m = 0; m < n_mat; m++) {
        at[m] = act_type(d, w[m]->type);
        if (w[m]->cols != w[0]->cols)
            return rg_error(e, RG_ERR_INTERNAL, "dec_matmul: input widths differ");
        off[m] = need;
        for (size_t p = 0; p < m; p++)
            if (w[p]->type == w[m]->type) {
                off[m] = off[p];
                break;
            }
        if (off[m] == need) {
            size_t b = quant_act_bytes(at[m], w[m]->cols);
            if (b == 0)
                return rg_error(e, RG_ERR_UNSUPPORTED, "no matrix product for %s weights of width %zu",
                                ggml_type_name(w[m]->type) ? ggml_type_name(w[m]->type) : "?", w[m]->cols);
            need += b * n;
        }
        j.total_rows += w[m]->rows;
    }
    if (need > d->act_bytes) {
        void *p = realloc(d->act, need);
        if (!p)
            return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu bytes of activations", need);
        d->act = p;
        d->act_bytes = need;
    }
    for (size_t m = 0; m < n_mat; m++) {
        j.act[m] = (const char *)d->act + off[m];
        int first = 1;
        for (size_t p = 0; p < m; p++)
            if (off[p] == off[m])
                first = 0;
        if (first) {
            rg_status st = quant_act_prepare(at[m], x, w[m]->cols, n, (char *)d->act + off[m], e);
            if (st != RG_OK)
                return st;
        }
    }
    size_t nw = dec_pool_size(d->pool);
    /* about 8 chunks per worker, at least 16 rows each */
    j.chunk = j.total_rows / (nw * 8);
    if (j.chunk < 16)
        j.chunk = 16;
    atomic_init(&j.next, 0);
    for (size_t i = 0; i < nw; i++)
        j.st[i] = RG_OK; /* workers that do not join leave theirs */
    dec_pool_run(d->pool, mm_worker, &j);
    for (size_t i = 0; i < nw; i++)
        if (j.st[i] != RG_OK)
            return rg_error(e, j.st[i], "matrix product: %s", j.err[i].msg);
    return RG_OK;
}

rg_status dec_mat_row(const dec_mat *m, size_t r, float *out, rg_err *e)
{
    if (r >= m->rows)
        return rg_error(e, RG_ERR_INVALID, "row %zu of a %zu-row matrix", r, m->rows);
    return dequantize_row(m->type, (const char *)m->data + r * m->row_bytes, out, m->cols, e);
}
