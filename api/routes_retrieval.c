/* POST /v1/retrieval: ranked chunks for a query. */
#include <stdlib.h>
#include <string.h>

#include "api/json_out.h"
#include "api/routes.h"
#include "api/server.h"
#include "index/search.h"
#include "rag/rerank_stage.h"
#include "ingest/chunker.h"

#define RETRIEVAL_MAX_QUERY_BYTES 16384
#define RETRIEVAL_MAX_TOP_K 100
#define RETRIEVAL_MAX_CANDIDATES 1000
#define RETRIEVAL_DEFAULT_CANDIDATES 50

/* An optional integer field in [min, max]; answers 400 and returns -1 when
 * present but not such an integer. *out keeps its value when absent. */
static int json_int_field(rg_request *r, const cJSON *v, const char *name, long min, long max, long *out)
{
    if (!v || cJSON_IsNull(v))
        return 0;
    /* Range first: converting 1e400 to long would be undefined. */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)min && v->valuedouble <= (double)max) ||
        v->valuedouble != (double)(long)v->valuedouble) {
        http_error(r, 400, "invalid_request", "'%s' must be an integer in %ld..%ld", name, min, max);
        return -1;
    }
    *out = (long)v->valuedouble;
    return 0;
}

static cJSON *rank_or_null(int rank)
{
    return rank > 0 ? cJSON_CreateNumber(rank) : cJSON_CreateNull();
}

void route_retrieval(rg_request *r)
{
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    rg_server *srv = r->server;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(body, "query");
    if (cJSON_IsObject(q))
        q = cJSON_GetObjectItemCaseSensitive(q, "text");
    const cJSON *coll = cJSON_GetObjectItemCaseSensitive(body, "collection");
    const cJSON *top_k = cJSON_GetObjectItemCaseSensitive(body, "top_k");
    const cJSON *cand = cJSON_GetObjectItemCaseSensitive(body, "candidates");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(body, "mode");
    const cJSON *rerank = cJSON_GetObjectItemCaseSensitive(body, "rerank");
    rg_reranked *reranked = NULL;
    long k = 5, candidates = 0;
    rg_search_mode m = srv->semantic.embedder ? SEARCH_HYBRID : SEARCH_LEXICAL;
    rg_err e;

    if (!cJSON_IsString(q) || !q->valuestring[0]) {
        http_error(r, 400, "invalid_request", "'query' must be a non-empty string or {\"text\": string}");
        goto out;
    }
    if (strlen(q->valuestring) > RETRIEVAL_MAX_QUERY_BYTES) {
        http_error(r, 400, "invalid_request", "'query' is longer than %d bytes", RETRIEVAL_MAX_QUERY_BYTES);
        goto out;
    }
    if (json_int_field(r, top_k, "top_k", 1, RETRIEVAL_MAX_TOP_K, &k) ||
        json_int_field(r, cand, "candidates", 1, RETRIEVAL_MAX_CANDIDATES, &candidates))
        goto out;
    if (mode && !cJSON_IsNull(mode)) {
        if (!cJSON_IsString(mode)) {
            http_error(r, 400, "invalid_request", "'mode' must be a string");
            goto out;
        }
        if (search_mode_parse(mode->valuestring, &m, &e)) {
            http_fail(r, &e);
            goto out;
        }
    }
    if (rerank && !cJSON_IsNull(rerank) && !cJSON_IsBool(rerank)) {
        http_error(r, 400, "invalid_request", "'rerank' must be a boolean");
        goto out;
    }
    int reranking = cJSON_IsTrue(rerank);
    if (reranking && !srv->semantic.reranker) {
        http_error(r, 503, "unavailable",
                   "'rerank' needs a reranking model (this server runs with --rerank-model none, or the default "
                   "is not installed)");
        goto out;
    }
    if (coll && !cJSON_IsNull(coll) && !cJSON_IsString(coll)) {
        http_error(r, 400, "invalid_request", "'collection' must be a string");
        goto out;
    }
    int64_t coll_id = 0;
    if (cJSON_IsString(coll)) {
        rg_collection c = {0};
        if (store_collection_get(srv->store, coll->valuestring, &c, &e)) {
            http_fail(r, &e);
            goto out;
        }
        coll_id = c.id;
        store_collection_free(&c);
    }
    if (!candidates)
        candidates = k > RETRIEVAL_DEFAULT_CANDIDATES ? k : RETRIEVAL_DEFAULT_CANDIDATES;
    rg_search s = {.store = srv->store, .embedder = srv->semantic.embedder, .vindex = srv->semantic.vindex};
    rg_search_result res;
    /* With rerank, retrieval fetches the candidates and the reranker keeps
     * the best top_k of them. */
    size_t fetch = reranking && (size_t)candidates > (size_t)k ? (size_t)candidates : (size_t)k;
    if (search_run(&s, coll_id, q->valuestring, m, fetch, (size_t)candidates, &res, &e)) {
        http_fail(r, &e);
        goto out;
    }
    size_t rerank_tokens = 0;
    if (reranking && rerank_stage_run(srv->semantic.reranker, q->valuestring, &res, (size_t)k, &reranked,
                                      &rerank_tokens, &e)) {
        search_result_free(&res);
        http_fail(r, &e);
        goto out;
    }
    cJSON *data;
    cJSON *o = json_list(&data);
    cJSON_AddStringToObject(o, "mode", search_mode_name(m));
    cJSON_AddBoolToObject(o, "reranked", reranking);
    for (size_t i = 0; i < res.n; i++) {
        cJSON *h = json_hit(&res.hits[i]);
        cJSON *ranks = cJSON_AddObjectToObject(h, "ranks");
        cJSON_AddItemToObject(ranks, "lexical", rank_or_null(res.rank_lexical[i]));
        cJSON_AddItemToObject(ranks, "dense", rank_or_null(res.rank_dense[i]));
        if (reranked) {
            cJSON_AddNumberToObject(h, "rerank_logit", reranked[i].logit);
            cJSON_AddNumberToObject(ranks, "retrieval", (double)reranked[i].retrieval_rank);
        }
        cJSON_AddItemToArray(data, h);
    }
    size_t tokens = res.query_tokens ? res.query_tokens
                                     : token_count_approx(q->valuestring, strlen(q->valuestring), NULL);
    search_result_free(&res);
    cJSON *usage = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens);
    http_json(r, 200, o);
out:
    free(reranked);
    cJSON_Delete(body);
}
