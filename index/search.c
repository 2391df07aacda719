#include "index/search.h"

#include <stdlib.h>
#include <string.h>

#include "index/fusion.h"
#include "index/lexical.h"

rg_status search_mode_parse(const char *name, rg_search_mode *mode, rg_err *e)
{
    if (strcmp(name, "lexical") == 0)
        *mode = SEARCH_LEXICAL;
    else if (strcmp(name, "dense") == 0)
        *mode = SEARCH_DENSE;
    else if (strcmp(name, "hybrid") == 0)
        *mode = SEARCH_HYBRID;
    else
        return rg_error(e, RG_ERR_INVALID, "unknown mode '%s' (use lexical, dense or hybrid)", name);
    return RG_OK;
}

const char *search_mode_name(rg_search_mode mode)
{
    return mode == SEARCH_DENSE ? "dense" : mode == SEARCH_HYBRID ? "hybrid" : "lexical";
}

/* Dense candidates: chunk ids and cosines, best first. */
static rg_status dense_ids(const rg_search *s, int64_t cid, const char *query, size_t k, int64_t *ids, float *scores,
                           size_t *n, size_t *tokens, rg_err *e)
{
    size_t dim = embedder_dim(s->embedder);
    float *q = malloc(dim * sizeof *q);
    if (!q)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    const char *texts[1] = {query};
    rg_status st = embedder_embed(s->embedder, texts, NULL, 1, RG_TRUNC_END, 1, q, tokens, e);
    if (!st)
        st = vindex_search(s->vindex, cid, q, k, ids, scores, n, e);
    free(q);
    return st;
}

/* Chunk ids the index still had but the store no longer has (deleted by
 * another process): drop them from the index so they stop costing slots. */
static void forget_stale(const rg_search *s, int64_t cid, const int64_t *ids, size_t n, const rg_hit *hits,
                         size_t nh)
{
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t j = 0; j < nh && !found; j++)
            found = hits[j].chunk_id == ids[i];
        if (!found && cid > 0) {
            rg_err e;
            vindex_remove(s->vindex, cid, 1, &ids[i], &e);
        }
    }
}

rg_status search_run(const rg_search *s, int64_t collection_id, const char *query, rg_search_mode mode, size_t k,
                     size_t candidates, rg_search_result *out, rg_err *e)
{
    memset(out, 0, sizeof *out);
    if (mode != SEARCH_LEXICAL && (!s->embedder || !s->vindex))
        return rg_error(e, RG_ERR_INVALID, "mode '%s' needs an embedding model, and none is loaded",
                        search_mode_name(mode));
    if (candidates < k)
        candidates = k;
    out->rank_lexical = calloc(k ? k : 1, sizeof *out->rank_lexical);
    out->rank_dense = calloc(k ? k : 1, sizeof *out->rank_dense);
    if (!out->rank_lexical || !out->rank_dense) {
        search_result_free(out);
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    }
    if (mode == SEARCH_LEXICAL) {
        rg_status st = lexical_search(s->store, collection_id, query, k, &out->hits, &out->n, e);
        for (size_t i = 0; !st && i < out->n; i++)
            out->rank_lexical[i] = (int)i + 1;
        if (st)
            search_result_free(out);
        return st;
    }

    int64_t *dids = malloc(candidates * sizeof *dids);
    float *dsc = malloc(candidates * sizeof *dsc);
    rg_hit *lex = NULL, *dh = NULL;
    size_t nd = 0, nl = 0, ndh = 0;
    rg_status st = dids && dsc ? RG_OK : rg_error(e, RG_ERR_NOMEM, "out of memory");
    if (!st)
        st = dense_ids(s, collection_id, query, candidates, dids, dsc, &nd, &out->query_tokens, e);
    /* The dense candidates as stored chunks (stale ids drop out here). */
    if (!st)
        st = store_chunk_hits(s->store, collection_id, dids, nd, &dh, &ndh, e);
    if (!st && ndh < nd)
        forget_stale(s, collection_id, dids, nd, dh, ndh);

    if (!st && mode == SEARCH_DENSE) {
        /* store_chunk_hits keeps the order; attach each cosine. */
        size_t j = 0;
        for (size_t i = 0; i < ndh; i++) {
            while (j < nd && dids[j] != dh[i].chunk_id)
                j++;
            dh[i].score = j < nd ? dsc[j] : 0;
        }
        out->n = ndh < k ? ndh : k;
        for (size_t i = 0; i < out->n; i++)
            out->rank_dense[i] = (int)i + 1;
        /* Release the hits past k (store_hits_free also frees the array
         * it is given, so hand it a copy of the tail). */
        if (ndh > out->n) {
            rg_hit *tail = malloc((ndh - out->n) * sizeof *tail);
            if (tail) {
                memcpy(tail, dh + out->n, (ndh - out->n) * sizeof *tail);
                store_hits_free(tail, ndh - out->n);
            }
        }
        out->hits = dh;
        dh = NULL;
        ndh = 0;
    } else if (!st) {
        rg_err le;
        /* A query with no searchable word still has a dense side. */
        if (lexical_search(s->store, collection_id, query, candidates, &lex, &nl, &le) == RG_ERR_INVALID)
            nl = 0;
        int64_t *lids = malloc((nl ? nl : 1) * sizeof *lids);
        int64_t *vids = malloc((ndh ? ndh : 1) * sizeof *vids);
        rg_fused *fused = malloc(k * sizeof *fused + 1);
        size_t nf = 0;
        if (!lids || !vids || !fused)
            st = rg_error(e, RG_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !st && i < nl; i++)
            lids[i] = lex[i].chunk_id;
        for (size_t i = 0; !st && i < ndh; i++)
            vids[i] = dh[i].chunk_id;
        const int64_t *lists[2] = {lids, vids};
        size_t lens[2] = {nl, ndh};
        if (!st)
            st = fusion_rrf(lists, lens, 2, FUSION_K_DEFAULT, fused, k, &nf, e);
        int64_t *ids = st ? NULL : malloc((nf ? nf : 1) * sizeof *ids);
        if (!st && !ids)
            st = rg_error(e, RG_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !st && i < nf; i++)
            ids[i] = fused[i].chunk_id;
        if (!st)
            st = store_chunk_hits(s->store, collection_id, ids, nf, &out->hits, &out->n, e);
        for (size_t i = 0; !st && i < out->n; i++) {
            size_t j = 0;
            while (j < nf && fused[j].chunk_id != out->hits[i].chunk_id)
                j++;
            if (j < nf) {
                out->hits[i].score = fused[j].score;
                out->rank_lexical[i] = fused[j].ranks[0];
                out->rank_dense[i] = fused[j].ranks[1];
            }
        }
        free(ids);
        free(lids);
        free(vids);
        free(fused);
    }
    store_hits_free(lex, nl);
    store_hits_free(dh, ndh);
    free(dids);
    free(dsc);
    if (st)
        search_result_free(out);
    return st;
}

void search_result_free(rg_search_result *r)
{
    store_hits_free(r->hits, r->n);
    free(r->rank_lexical);
    free(r->rank_dense);
    memset(r, 0, sizeof *r);
}
