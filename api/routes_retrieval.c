/* Ranked chunks for a query: POST /v1/retrieval (ragd's own shape) and
 * POST /v1/search (the NVIDIA RAG Blueprint's, for LangChain's
 * NVIDIARAGRetriever), both over retrieve(). */
#include <math.h>
#include <stdio.h>
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
/* /v1/search's defaults, the Blueprint's (and its LangChain client's) */
#define SEARCH_DEFAULT_TOP_K 10
#define SEARCH_DEFAULT_VDB_TOP_K 100

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

/* What both routes ask of the search. */
typedef struct retrieval_ask {
    const char *query;
    const char *collection; /* NULL: every collection */
    long k, candidates;     /* candidates 0: the default */
    rg_search_mode mode;
    int rerank;
} retrieval_ask;

/* The query checked, the hits found and, with a.rerank, reordered (*reranked
 * one per kept hit). On failure answers the request and returns -1. */
static int retrieve(rg_request *r, const retrieval_ask *a, rg_search_result *res, rg_reranked **reranked)
{
    rg_server *srv = r->server;
    rg_err e;
    int64_t coll_id = 0;
    if (a->collection) {
        rg_collection c = {0};
        if (store_collection_get(srv->store, a->collection, &c, &e)) {
            http_fail(r, &e);
            return -1;
        }
        coll_id = c.id;
        store_collection_free(&c);
    }
    long candidates = a->candidates;
    if (!candidates)
        candidates = a->k > RETRIEVAL_DEFAULT_CANDIDATES ? a->k : RETRIEVAL_DEFAULT_CANDIDATES;
    rg_search s = {.store = srv->store, .embedder = srv->semantic.embedder, .vindex = srv->semantic.vindex};
    /* With rerank, retrieval fetches the candidates and the reranker keeps
     * the best k of them. */
    size_t fetch = a->rerank && candidates > a->k ? (size_t)candidates : (size_t)a->k;
    if (search_run(&s, coll_id, a->query, a->mode, fetch, (size_t)candidates, res, &e)) {
        http_fail(r, &e);
        return -1;
    }
    size_t rerank_tokens = 0;
    if (a->rerank &&
        rerank_stage_run(srv->semantic.reranker, a->query, res, (size_t)a->k, reranked, &rerank_tokens, &e)) {
        search_result_free(res);
        http_fail(r, &e);
        return -1;
    }
    return 0;
}

/* The query string q: non-empty and at most RETRIEVAL_MAX_QUERY_BYTES;
 * else answers 400 (what names the accepted forms) and returns -1. */
static int query_ok(rg_request *r, const cJSON *q, const char *what)
{
    if (!cJSON_IsString(q) || !q->valuestring[0]) {
        http_error(r, 400, "invalid_request", "'query' must be %s", what);
        return -1;
    }
    if (strlen(q->valuestring) > RETRIEVAL_MAX_QUERY_BYTES) {
        http_error(r, 400, "invalid_request", "'query' is longer than %d bytes", RETRIEVAL_MAX_QUERY_BYTES);
        return -1;
    }
    return 0;
}

/* The optional "mode" field (lexical, dense, hybrid) into *m. */
static int mode_field(rg_request *r, const cJSON *mode, rg_search_mode *m)
{
    rg_err e;
    if (!mode || cJSON_IsNull(mode))
        return 0;
    if (!cJSON_IsString(mode)) {
        http_error(r, 400, "invalid_request", "'mode' must be a string");
        return -1;
    }
    if (search_mode_parse(mode->valuestring, m, &e)) {
        http_fail(r, &e);
        return -1;
    }
    return 0;
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
    rg_reranked *reranked = NULL;
    retrieval_ask a = {.k = 5, .mode = srv->semantic.embedder ? SEARCH_HYBRID : SEARCH_LEXICAL};
    rg_search_result res;

    if (query_ok(r, q, "a non-empty string or {\"text\": string}"))
        goto out;
    a.query = q->valuestring;
    if (json_int_field(r, cJSON_GetObjectItemCaseSensitive(body, "top_k"), "top_k", 1, RETRIEVAL_MAX_TOP_K, &a.k) ||
        json_int_field(r, cJSON_GetObjectItemCaseSensitive(body, "candidates"), "candidates", 1,
                       RETRIEVAL_MAX_CANDIDATES, &a.candidates) ||
        mode_field(r, cJSON_GetObjectItemCaseSensitive(body, "mode"), &a.mode) ||
        http_json_bool(r, body, "rerank", &a.rerank) < 0)
        goto out;
    if (a.rerank && !srv->semantic.reranker) {
        http_error(r, 503, "unavailable",
                   "'rerank' needs a reranking model (this server runs with --rerank-model none, or the default "
                   "is not installed)");
        goto out;
    }
    if (coll && !cJSON_IsNull(coll) && !cJSON_IsString(coll)) {
        http_error(r, 400, "invalid_request", "'collection' must be a string");
        goto out;
    }
    a.collection = cJSON_IsString(coll) ? coll->valuestring : NULL;
    if (retrieve(r, &a, &res, &reranked))
        goto out;
    cJSON *data;
    cJSON *o = json_list(&data);
    cJSON_AddStringToObject(o, "mode", search_mode_name(a.mode));
    cJSON_AddBoolToObject(o, "reranked", a.rerank);
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
    size_t tokens = res.query_tokens ? res.query_tokens : token_count_approx(a.query, strlen(a.query), NULL);
    search_result_free(&res);
    cJSON *usage = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens);
    http_json(r, 200, o);
out:
    free(reranked);
    cJSON_Delete(body);
}

/* ---- POST /v1/search ------------------------------------------------------------ */

/* A Blueprint flag ragd cannot honour: refused when true, rather than
 * answered as if it had been applied. */
static int unsupported_flag(rg_request *r, const cJSON *body, const char *name, const char *why)
{
    int on = 0;
    if (http_json_bool(r, body, name, &on) < 0)
        return -1;
    if (on) {
        http_error(r, 400, "invalid_request", "'%s' is not supported by ragd (%s)", name, why);
        return -1;
    }
    return 0;
}

/* One hit as the Blueprint's SourceResult: the chunk's own fields that the
 * Blueprint has no place for go into its metadata, beside the document's. */
static cJSON *search_result(const rg_hit *h, double score)
{
    cJSON *hit = json_hit(h), *o = cJSON_CreateObject();
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)h->document_id);
    cJSON_AddStringToObject(o, "document_id", id);
    cJSON_AddStringToObject(o, "content", h->text ? h->text : "");
    cJSON_AddStringToObject(o, "document_name", h->document ? h->document : "");
    cJSON_AddStringToObject(o, "document_type", "text");
    cJSON_AddNumberToObject(o, "score", score);
    cJSON *meta = cJSON_DetachItemFromObjectCaseSensitive(hit, "metadata");
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        meta = cJSON_CreateObject();
    }
    static const char *const moved[] = {"chunk_id", "collection", "offsets", "heading_path", "page"};
    for (size_t i = 0; i < sizeof moved / sizeof *moved; i++) {
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(hit, moved[i]);
        if (v && !cJSON_IsNull(v)) {
            cJSON_DeleteItemFromObjectCaseSensitive(meta, moved[i]); /* the chunk's own field wins */
            cJSON_AddItemToObject(meta, moved[i], v);
        } else {
            cJSON_Delete(v);
        }
    }
    cJSON_AddItemToObject(o, "metadata", meta);
    cJSON_Delete(hit);
    return o;
}

/* The Blueprint's DocumentSearch: query, reranker_top_k (results, default
 * 10), vdb_top_k (candidates before reranking, default 100),
 * collection_names (at most one here), enable_reranker (default true:
 * applied when the server has a reranker, else the retrieval order is
 * kept), confidence_threshold (with reranking only: the reranker's
 * probability, the logistic of its logit, at least this). Query rewriting, filter
 * generation and filter_expr are refused when asked for; the model and
 * endpoint overrides, messages and enable_citations are accepted and
 * ignored (ragd serves its own models; text has no image citations). The
 * extra "mode" is /v1/retrieval's. */
void route_search(rg_request *r)
{
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    rg_server *srv = r->server;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(body, "query");
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(body, "collection_names");
    const cJSON *thr = cJSON_GetObjectItemCaseSensitive(body, "confidence_threshold");
    const cJSON *filter = cJSON_GetObjectItemCaseSensitive(body, "filter_expr");
    rg_reranked *reranked = NULL;
    retrieval_ask a = {.k = SEARCH_DEFAULT_TOP_K,
                       .candidates = SEARCH_DEFAULT_VDB_TOP_K,
                       .mode = srv->semantic.embedder ? SEARCH_HYBRID : SEARCH_LEXICAL,
                       .rerank = 1};
    double threshold = 0;
    rg_search_result res;

    if (query_ok(r, q, "a non-empty string"))
        goto out;
    a.query = q->valuestring;
    if (json_int_field(r, cJSON_GetObjectItemCaseSensitive(body, "reranker_top_k"), "reranker_top_k", 0,
                       RETRIEVAL_MAX_TOP_K, &a.k) ||
        json_int_field(r, cJSON_GetObjectItemCaseSensitive(body, "vdb_top_k"), "vdb_top_k", 0,
                       RETRIEVAL_MAX_CANDIDATES, &a.candidates) ||
        mode_field(r, cJSON_GetObjectItemCaseSensitive(body, "mode"), &a.mode) ||
        http_json_bool(r, body, "enable_reranker", &a.rerank) < 0 ||
        unsupported_flag(r, body, "enable_query_rewriting", "no query rewriting model") ||
        unsupported_flag(r, body, "enable_filter_generator", "no filter generation"))
        goto out;
    if (thr && !cJSON_IsNull(thr)) {
        if (!cJSON_IsNumber(thr) || !(thr->valuedouble >= 0 && thr->valuedouble <= 1)) {
            http_error(r, 400, "invalid_request", "'confidence_threshold' must be a number in 0..1");
            goto out;
        }
        threshold = thr->valuedouble;
    }
    if (filter && !cJSON_IsNull(filter) && !(cJSON_IsString(filter) && !filter->valuestring[0]) &&
        !(cJSON_IsArray(filter) && cJSON_GetArraySize(filter) == 0)) {
        http_error(r, 400, "invalid_request", "'filter_expr' is not supported by ragd (no Milvus filter syntax)");
        goto out;
    }
    if (names && !cJSON_IsNull(names)) {
        if (!cJSON_IsArray(names) || cJSON_GetArraySize(names) > 1 ||
            (cJSON_GetArraySize(names) == 1 && !cJSON_IsString(cJSON_GetArrayItem(names, 0)))) {
            http_error(r, 400, "invalid_request",
                       "'collection_names' must be a list of at most one collection name (ragd searches one "
                       "collection, or all when the list is empty)");
            goto out;
        }
        if (cJSON_GetArraySize(names) == 1)
            a.collection = cJSON_GetArrayItem(names, 0)->valuestring;
    }
    a.rerank = a.rerank && srv->semantic.reranker;
    if (threshold > 0 && !a.rerank) {
        http_error(r, 400, "invalid_request",
                   "'confidence_threshold' applies to the reranker's scores, and this search is not reranked (%s)",
                   srv->semantic.reranker ? "enable_reranker is false" : "the server has no reranker");
        goto out;
    }
    /* reranker_top_k 0 asks for nothing, but the request is still searched
     * once so that it is checked as any other (its collection, mode) */
    long want = a.k;
    if (a.k == 0)
        a.k = 1, a.rerank = 0;
    if (a.candidates < a.k)
        a.candidates = a.k;
    if (retrieve(r, &a, &res, &reranked))
        goto out;
    cJSON *o = cJSON_CreateObject(), *results = cJSON_AddArrayToObject(o, "results");
    for (size_t i = 0; i < res.n && (long)i < want; i++) {
        double score = res.hits[i].score;
        if (reranked) {
            score = 1.0 / (1.0 + exp(-(double)reranked[i].logit));
            if (score < threshold)
                continue;
        }
        cJSON_AddItemToArray(results, search_result(&res.hits[i], score));
    }
    search_result_free(&res);
    cJSON_AddNumberToObject(o, "total_results", (double)cJSON_GetArraySize(results));
    http_json(r, 200, o);
out:
    free(reranked);
    cJSON_Delete(body);
}
