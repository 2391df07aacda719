/* POST /v1/ranking (NVIDIA NIM reranking) and POST /v1/rerank (the
 * Cohere / Jina / TEI-style shape LlamaIndex and LangChain community
 * rerankers and llama.cpp clients send), both on the reranker engine. */
#include <stdlib.h>
#include <string.h>

#include "api/routes.h"
#include "api/server.h"
#include "rerank/reranker.h"

typedef struct ranked {
    float logit;
    size_t index;
} ranked;

static int by_logit(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static rg_reranker *need_reranker(rg_request *r)
{
    rg_reranker *rr = r->server->semantic.reranker;
    if (!rr)
        http_error(r, 503, "unavailable",
                   "no reranking model is loaded (it was started with --rerank-model none, or the default is not "
                   "installed: run `make models`, or name one with --rerank-model)");
    return rr;
}

/* The model a request names is ours when it is our id (or, for a causal
 * LM, the model's own name) or "<org>/<that>". */
static int model_ok(rg_request *r, rg_reranker *rr, const cJSON *model)
{
    if (!model || cJSON_IsNull(model))
        return 1;
    if (!cJSON_IsString(model)) {
        http_error(r, 400, "invalid_request", "'model' must be a string");
        return 0;
    }
    const char *asked = model->valuestring, *slash = strrchr(asked, '/');
    if (!reranker_model_matches(rr, slash ? slash + 1 : asked)) {
        http_error(r, 404, "not_found", "model '%s' is not served here (GET /v1/models lists %s)", asked,
                   reranker_model_id(rr));
        return 0;
    }
    return 1;
}

/* Optional positive integer; answers 400 and returns -1 when malformed. */
static int top_n_field(rg_request *r, const cJSON *v, size_t *out)
{
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 1e9) ||
        v->valuedouble != (double)(long)v->valuedouble) {
        http_error(r, 400, "invalid_request", "'top_n' must be a positive integer");
        return -1;
    }
    *out = (size_t)v->valuedouble;
    return 0;
}

/* Texts of a list of strings or {"text": string} objects (objects only
 * when objects_only). Answers 400 and returns -1 on bad input. */
static int collect_texts(rg_request *r, const cJSON *list, const char *field, int objects_only, const char ***texts,
                         size_t *n)
{
    size_t max = r->server->cfg.rerank_max_passages;
    *texts = NULL;
    *n = 0;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
        return http_error(r, 400, "invalid_request", "'%s' must be a non-empty array", field), -1;
    size_t count = (size_t)cJSON_GetArraySize(list);
    if (count > max)
        return http_error(r, 400, "invalid_request", "'%s' holds %zu items; at most %zu are allowed per request",
                          field, count, max),
               -1;
    *texts = malloc(count * sizeof **texts);
    if (!*texts)
        return http_error(r, 500, "out_of_memory", "out of memory"), -1;
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const cJSON *t = item;
        if (cJSON_IsObject(item))
            t = cJSON_GetObjectItemCaseSensitive(item, "text");
        else if (objects_only)
            t = NULL;
        if (!cJSON_IsString(t))
            return http_error(r, 400, "invalid_request", "'%s' item %zu must be %s", field, *n,
                              objects_only ? "{\"text\": string}" : "a string or {\"text\": string}"),
                   -1;
        (*texts)[(*n)++] = t->valuestring;
    }
    return 0;
}

/* Scores and sorts; answers the error itself and returns NULL on failure. */
static ranked *score(rg_request *r, rg_reranker *rr, const char *query, const char **texts, size_t n, int truncate,
                     size_t *tokens)
{
    float *logits = malloc(n * sizeof *logits);
    ranked *out = malloc(n * sizeof *out);
    rg_err e;
    if (!logits || !out) {
        http_error(r, 500, "out_of_memory", "out of memory");
    } else if (reranker_score(rr, query, texts, NULL, n, truncate, logits, tokens, &e)) {
        http_fail(r, &e);
    } else {
        for (size_t i = 0; i < n; i++)
            out[i] = (ranked){logits[i], i};
        qsort(out, n, sizeof *out, by_logit);
        free(logits);
        return out;
    }
    free(logits);
    free(out);
    return NULL;
}

static void add_usage(cJSON *o, size_t tokens)
{
    cJSON *usage = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens);
}

void route_ranking(rg_request *r)
{
    rg_reranker *rr = need_reranker(r);
    if (!rr)
        return;
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    const char **texts = NULL;
    size_t n = 0, top_n = 0, tokens = 0;
    ranked *order = NULL;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(body, "query");
    const cJSON *trunc = cJSON_GetObjectItemCaseSensitive(body, "truncate");
    if (cJSON_IsObject(q))
        q = cJSON_GetObjectItemCaseSensitive(q, "text");
    if (!model_ok(r, rr, cJSON_GetObjectItemCaseSensitive(body, "model")))
        goto out;
    if (!cJSON_IsString(q) || !q->valuestring[0]) {
        http_error(r, 400, "invalid_request", "'query' must be {\"text\": non-empty string}");
        goto out;
    }
    /* NIM's default is NONE: an over-long pair is an error, not cut. */
    int truncate = 0;
    if (trunc && !cJSON_IsNull(trunc)) {
        const char *t = cJSON_IsString(trunc) ? trunc->valuestring : "";
        if (strcmp(t, "END") == 0)
            truncate = 1;
        else if (strcmp(t, "NONE") != 0) {
            http_error(r, 400, "invalid_request", "'truncate' must be \"NONE\" or \"END\"");
            goto out;
        }
    }
    if (top_n_field(r, cJSON_GetObjectItemCaseSensitive(body, "top_n"), &top_n) ||
        collect_texts(r, cJSON_GetObjectItemCaseSensitive(body, "passages"), "passages", 1, &texts, &n))
        goto out;
    if (!(order = score(r, rr, q->valuestring, texts, n, truncate, &tokens)))
        goto out;
    size_t keep = top_n && top_n < n ? top_n : n;
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "rankings");
    for (size_t i = 0; i < keep; i++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddNumberToObject(item, "index", (double)order[i].index);
        cJSON_AddNumberToObject(item, "logit", order[i].logit);
        cJSON_AddItemToArray(list, item);
    }
    cJSON_AddStringToObject(o, "model", reranker_model_id(rr));
    add_usage(o, tokens);
    http_json(r, 200, o);
out:
    free(order);
    free(texts);
    cJSON_Delete(body);
}

void route_rerank(rg_request *r)
{
    rg_reranker *rr = need_reranker(r);
    if (!rr)
        return;
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    const char **texts = NULL;
    size_t n = 0, top_n = 0, tokens = 0;
    ranked *order = NULL;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(body, "query");
    const cJSON *docs = cJSON_GetObjectItemCaseSensitive(body, "documents");
    const cJSON *ret = cJSON_GetObjectItemCaseSensitive(body, "return_documents");
    if (!docs)
        docs = cJSON_GetObjectItemCaseSensitive(body, "texts"); /* TEI's name for them */
    if (!model_ok(r, rr, cJSON_GetObjectItemCaseSensitive(body, "model")))
        goto out;
    if (!cJSON_IsString(q) || !q->valuestring[0]) {
        http_error(r, 400, "invalid_request", "'query' must be a non-empty string");
        goto out;
    }
    if (ret && !cJSON_IsNull(ret) && !cJSON_IsBool(ret)) {
        http_error(r, 400, "invalid_request", "'return_documents' must be a boolean");
        goto out;
    }
    if (top_n_field(r, cJSON_GetObjectItemCaseSensitive(body, "top_n"), &top_n) ||
        collect_texts(r, docs, "documents", 0, &texts, &n))
        goto out;
    /* These APIs cut over-long documents rather than refuse them. */
    if (!(order = score(r, rr, q->valuestring, texts, n, 1, &tokens)))
        goto out;
    size_t keep = top_n && top_n < n ? top_n : n;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", reranker_model_id(rr));
    cJSON *list = cJSON_AddArrayToObject(o, "results");
    for (size_t i = 0; i < keep; i++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddNumberToObject(item, "index", (double)order[i].index);
        cJSON_AddNumberToObject(item, "relevance_score", reranker_relevance(order[i].logit));
        if (cJSON_IsTrue(ret)) {
            cJSON *d = cJSON_AddObjectToObject(item, "document");
            cJSON_AddStringToObject(d, "text", texts[order[i].index]);
        }
        cJSON_AddItemToArray(list, item);
    }
    cJSON *usage = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens);
    cJSON *meta = cJSON_AddObjectToObject(o, "meta");
    cJSON *billed = cJSON_AddObjectToObject(meta, "billed_units");
    cJSON_AddNumberToObject(billed, "search_units", 1);
    http_json(r, 200, o);
out:
    free(order);
    free(texts);
    cJSON_Delete(body);
}
