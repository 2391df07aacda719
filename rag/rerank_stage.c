/* rerank_stage.c - retrieval candidates reordered by the reranker (see
 * rerank_stage.h). */
#include "rag/rerank_stage.h"

#include <stdlib.h>
#include <string.h>

typedef struct scored {
    float logit;
    size_t pos; /* retrieval order */
} scored;

static int by_logit(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

rg_status rerank_stage_run(rg_reranker *rr, const char *query, rg_search_result *res, size_t k, rg_reranked **out,
                           size_t *tokens, rg_err *e)
{
    *out = NULL;
    if (tokens)
        *tokens = 0;
    size_t n = res->n;
    if (n == 0)
        return RG_OK;
    const char **texts = malloc(n * sizeof *texts);
    float *raw = malloc(n * sizeof *raw);
    scored *order = malloc(n * sizeof *order);
    rg_hit *hits = malloc(n * sizeof *hits);
    int *rl = malloc(n * sizeof *rl), *rd = malloc(n * sizeof *rd);
    rg_reranked *info = malloc(n * sizeof *info);
    rg_status st = RG_OK;
    if (!texts || !raw || !order || !hits || !rl || !rd || !info)
        st = rg_error(e, RG_ERR_NOMEM, "out of memory for %zu candidates", n);
    for (size_t i = 0; i < n && !st; i++)
        texts[i] = res->hits[i].text ? res->hits[i].text : "";
    if (!st)
        st = reranker_score(rr, query, texts, NULL, n, 1, raw, tokens, e);
    if (!st) {
        for (size_t i = 0; i < n; i++)
            order[i] = (scored){raw[i], i};
        qsort(order, n, sizeof *order, by_logit);
        size_t keep = k < n ? k : n;
        for (size_t i = 0; i < n; i++) {
            size_t from = order[i].pos;
            hits[i] = res->hits[from];
            rl[i] = res->rank_lexical ? res->rank_lexical[from] : 0;
            rd[i] = res->rank_dense ? res->rank_dense[from] : 0;
            info[i] = (rg_reranked){order[i].logit, from + 1};
        }
        /* Drop the hits past k: free their strings, keep the array. */
        rg_hit *dropped = malloc((n - keep + 1) * sizeof *dropped);
        if (dropped) {
            memcpy(dropped, hits + keep, (n - keep) * sizeof *dropped);
            store_hits_free(dropped, n - keep);
        }
        memcpy(res->hits, hits, n * sizeof *hits);
        if (res->rank_lexical)
            memcpy(res->rank_lexical, rl, n * sizeof *rl);
        if (res->rank_dense)
            memcpy(res->rank_dense, rd, n * sizeof *rd);
        res->n = keep;
        *out = info;
        info = NULL;
    }
    free(info), free(texts), free(raw), free(order), free(hits), free(rl), free(rd);
    return st;
}
