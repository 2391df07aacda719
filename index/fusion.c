#include "index/fusion.h"

#include <stdlib.h>
#include <string.h>

static int best_rank(const rg_fused *f)
{
    int best = 0;
    for (int i = 0; i < FUSION_MAX_LISTS; i++)
        if (f->ranks[i] && (!best || f->ranks[i] < best))
            best = f->ranks[i];
    return best;
}

static int by_id(const void *a, const void *b)
{
    int64_t x = ((const rg_fused *)a)->chunk_id, y = ((const rg_fused *)b)->chunk_id;
    return (x > y) - (x < y);
}

static int by_score(const void *a, const void *b)
{
    const rg_fused *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    int rx = best_rank(x), ry = best_rank(y);
    if (rx != ry)
        return rx - ry;
    return (x->chunk_id > y->chunk_id) - (x->chunk_id < y->chunk_id);
}

rg_status fusion_rrf(const int64_t *const *lists, const size_t *lens, size_t n_lists, double k, rg_fused *out,
                     size_t max_out, size_t *n_out, rg_err *e)
{
    *n_out = 0;
    if (n_lists > FUSION_MAX_LISTS)
        return rg_error(e, RG_ERR_INVALID, "at most %d lists can be fused", FUSION_MAX_LISTS);
    if (!(k > 0))
        return rg_error(e, RG_ERR_INVALID, "the fusion constant k must be positive");
    size_t total = 0;
    for (size_t l = 0; l < n_lists; l++)
        total += lens[l];
    if (total == 0 || max_out == 0)
        return RG_OK;
    rg_fused *all = calloc(total, sizeof *all);
    if (!all)
        return rg_error(e, RG_ERR_NOMEM, "out of memory fusing %zu results", total);
    size_t n = 0;
    for (size_t l = 0; l < n_lists; l++)
        for (size_t r = 0; r < lens[l]; r++) {
            all[n].chunk_id = lists[l][r];
            all[n].ranks[l] = (int)r + 1;
            n++;
        }
    /* Merge entries of the same chunk: sort by id, then fold runs. */
    qsort(all, n, sizeof *all, by_id);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && all[m - 1].chunk_id == all[i].chunk_id) {
            for (size_t l = 0; l < n_lists; l++)
                if (all[i].ranks[l] && (!all[m - 1].ranks[l] || all[i].ranks[l] < all[m - 1].ranks[l]))
                    all[m - 1].ranks[l] = all[i].ranks[l];
        } else {
            all[m++] = all[i];
        }
    }
    for (size_t i = 0; i < m; i++) {
        all[i].score = 0;
        for (size_t l = 0; l < n_lists; l++)
            if (all[i].ranks[l])
                all[i].score += 1.0 / (k + all[i].ranks[l]);
    }
    qsort(all, m, sizeof *all, by_score);
    *n_out = m < max_out ? m : max_out;
    memcpy(out, all, *n_out * sizeof *out);
    free(all);
    return RG_OK;
}
