/* POST /v1/retrieval: ranked chunks for a query. */
#include <string.h>

#include "api/json_out.h"
#include "api/routes.h"
#include "api/server.h"
#include "index/lexical.h"
#include "ingest/chunker.h"

#define RETRIEVAL_MAX_QUERY_BYTES 16384
#define RETRIEVAL_MAX_TOP_K 100

void route_retrieval(rg_request *r)
{
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(body, "query");
    if (cJSON_IsObject(q))
        q = cJSON_GetObjectItemCaseSensitive(q, "text");
    const cJSON *coll = cJSON_GetObjectItemCaseSensitive(body, "collection");
    const cJSON *top_k = cJSON_GetObjectItemCaseSensitive(body, "top_k");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(body, "mode");
    long k = 5;

    if (!cJSON_IsString(q) || !q->valuestring[0]) {
        http_error(r, 400, "invalid_request", "'query' must be a non-empty string or {\"text\": string}");
        goto out;
    }
    if (strlen(q->valuestring) > RETRIEVAL_MAX_QUERY_BYTES) {
        http_error(r, 400, "invalid_request", "'query' is longer than %d bytes", RETRIEVAL_MAX_QUERY_BYTES);
        goto out;
    }
    if (top_k && !cJSON_IsNull(top_k)) {
        /* Range first: converting an out-of-range double to long is undefined. */
        if (!cJSON_IsNumber(top_k) || !(top_k->valuedouble >= 1 && top_k->valuedouble <= RETRIEVAL_MAX_TOP_K) ||
            top_k->valuedouble != (double)(long)top_k->valuedouble) {
            http_error(r, 400, "invalid_request", "'top_k' must be an integer in 1..%d", RETRIEVAL_MAX_TOP_K);
            goto out;
        }
        k = (long)top_k->valuedouble;
    }
    if (mode && !cJSON_IsNull(mode)) {
        if (!cJSON_IsString(mode)) {
            http_error(r, 400, "invalid_request", "'mode' must be a string");
            goto out;
        }
        if (strcmp(mode->valuestring, "dense") == 0 || strcmp(mode->valuestring, "hybrid") == 0) {
            http_error(r, 400, "invalid_request", "mode '%s' needs an embedding model, and none is loaded",
                       mode->valuestring);
            goto out;
        }
        if (strcmp(mode->valuestring, "lexical") != 0) {
            http_error(r, 400, "invalid_request", "unknown mode '%s' (use lexical, dense or hybrid)",
                       mode->valuestring);
            goto out;
        }
    }
    if (coll && !cJSON_IsNull(coll) && !cJSON_IsString(coll)) {
        http_error(r, 400, "invalid_request", "'collection' must be a string");
        goto out;
    }

    rg_err e;
    int64_t coll_id = 0;
    if (cJSON_IsString(coll)) {
        rg_collection c = {0};
        if (store_collection_get(r->server->store, coll->valuestring, &c, &e)) {
            http_fail(r, &e);
            goto out;
        }
        coll_id = c.id;
        store_collection_free(&c);
    }
    rg_hit *hits = NULL;
    size_t n = 0;
    if (lexical_search(r->server->store, coll_id, q->valuestring, (size_t)k, &hits, &n, &e)) {
        http_fail(r, &e);
        goto out;
    }
    cJSON *data;
    cJSON *o = json_list(&data);
    cJSON_AddStringToObject(o, "mode", "lexical");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(data, json_hit(&hits[i]));
    store_hits_free(hits, n);
    size_t tokens = token_count_approx(q->valuestring, strlen(q->valuestring), NULL);
    cJSON *usage = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens);
    http_json(r, 200, o);
out:
    cJSON_Delete(body);
}
