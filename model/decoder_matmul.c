/* decoder_matmul.c - the decoder's matrix products: activations prepared
 * once per weight type (model/quant: 8-bit blocks for quantized weights, as
 * llama.cpp does), then the rows of up to three matrices that share the
 * input split evenly over the pool, each row read once for every vector of
 * the batch. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "model/decoder_internal.h"
#include "model/quant.h"

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

rg_status dec_matmul(rg_decoder *d, const float *x, size_t n, const dec_mat *const *w, float *const *y, size_t n_mat,
                     rg_err *e)
{
    if (n_mat == 0 || n_mat > 3)
        return rg_error(e, RG_ERR_INTERNAL, "dec_matmul: %zu matrices", n_mat);
    mm_job j; /* not zero-initialised: the per-worker error records are 32 KB */
    j.w = w;
    j.y = y;
    j.n_mat = n_mat;
    j.n = n;
    j.total_rows = 0;
    /* one prepared copy of x per distinct weight type (matrices sharing an
     * input share its column count) */
    size_t need = 0, off[3];
    for (size_t m = 0; m < n_mat; m++) {
        if (w[m]->cols != w[0]->cols)
            return rg_error(e, RG_ERR_INTERNAL, "dec_matmul: input widths differ");
        off[m] = need;
        for (size_t p = 0; p < m; p++)
            if (w[p]->type == w[m]->type) {
                off[m] = off[p];
                break;
            }
        if (off[m] == need) {
            size_t b = quant_act_bytes(w[m]->type, w[m]->cols);
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
            rg_status st = quant_act_prepare(w[m]->type, x, w[m]->cols, n, (char *)d->act + off[m], e);
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
