/* rerank_stage.h - the rerank step of the query chain: retrieval fetches
 * candidates (index/search.h), the reranker (rerank/reranker.h) scores each
 * against the query, and the best k remain, best first. */
#ifndef RAGD_RAG_RERANK_STAGE_H
#define RAGD_RAG_RERANK_STAGE_H

#include <stddef.h>

#include "index/search.h"
#include "rerank/reranker.h"

/* What reranking adds to a kept hit. */
typedef struct rg_reranked {
    float logit;           /* the reranker's relevance logit */
    size_t retrieval_rank; /* 1-based place in the retrieval order */
} rg_reranked;

/* Reorders res (hits and their per-method ranks) by rerank logit, highest
 * first (ties keep the retrieval order), and keeps the first k. The hits
 * keep their retrieval scores; *out (freed by the caller, NULL when res is
 * empty) gets one rg_reranked per kept hit. Chunk texts are cut to the
 * reranker's limit (longest-first), never refused. */
rg_status rerank_stage_run(rg_reranker *rr, const char *query, rg_search_result *res, size_t k, rg_reranked **out,
                           size_t *tokens, rg_err *e);

#endif
