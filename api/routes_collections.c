/* /v1/collections */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json_out.h"
#include "api/routes.h"
#include "api/server.h"
#include "store/vectors.h"

/* One integer member of "index" in [lo, hi]; answers 400 and returns -1
 * when present but not such an integer. *out keeps its value when absent. */
static int index_int(rg_request *r, const cJSON *index, const char *name, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(index, name);
    if (!v)
        return 0;
    /* Range first: converting 1e400 to int would be undefined. */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != (double)(int)v->valuedouble) {
        http_error(r, 400, "invalid_request", "'index.%s' must be an integer in %d..%d", name, lo, hi);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

/* Reads the optional "index" object of a create request into *x (the
 * default flat index when absent). Answers 400 and returns -1 when it is
 * malformed: unknown members are refused, so a misspelt setting is not
 * silently ignored. */
static int parse_index(rg_request *r, const cJSON *index, rg_index_settings *x)
{
    store_index_settings_default(x);
    if (!index || cJSON_IsNull(index))
        return 0;
    if (!cJSON_IsObject(index)) {
        http_error(r, 400, "invalid_request", "'index' must be an object such as {\"type\": \"hnsw\", \"m\": 32}");
        return -1;
    }
    static const char *const known[] = {"type", "m", "ef_construction", "ef_search"};
    const cJSON *it;
    cJSON_ArrayForEach(it, index)
    {
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0] && !ok; i++)
            ok = it->string && strcmp(it->string, known[i]) == 0;
        if (!ok) {
            http_error(r, 400, "invalid_request",
                       "unknown index setting '%.64s' (use type, m, ef_construction, ef_search)",
                       it->string ? it->string : "");
            return -1;
        }
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(index, "type");
    if (type && (!cJSON_IsString(type) ||
                 (strcmp(type->valuestring, STORE_INDEX_FLAT) != 0 && strcmp(type->valuestring, STORE_INDEX_HNSW) != 0))) {
        http_error(r, 400, "invalid_request", "'index.type' must be \"flat\" or \"hnsw\"");
        return -1;
    }
    if (type)
        snprintf(x->type, sizeof x->type, "%s", type->valuestring);
    int hnsw = strcmp(x->type, STORE_INDEX_HNSW) == 0;
    if (!hnsw && cJSON_GetArraySize(index) > (type ? 1 : 0)) {
        http_error(r, 400, "invalid_request", "m, ef_construction and ef_search apply to \"hnsw\" indexes only");
        return -1;
    }
    if (index_int(r, index, "m", STORE_INDEX_HNSW_M_MIN, STORE_INDEX_HNSW_M_MAX, &x->hnsw_m) ||
        index_int(r, index, "ef_construction", STORE_INDEX_EF_CONSTRUCTION_MIN, STORE_INDEX_EF_CONSTRUCTION_MAX,
                  &x->ef_construction) ||
        index_int(r, index, "ef_search", STORE_INDEX_EF_SEARCH_MIN, STORE_INDEX_EF_SEARCH_MAX, &x->ef_search))
        return -1;
    return 0;
}

/* A collection as JSON with its index settings and, when a model is
 * loaded, how many of its chunks have vectors for it: the embedding
 * backlog's progress ("pending" falls to 0 once every chunk is
 * searchable densely). */
static cJSON *collection_json(rg_server *srv, const rg_collection *c)
{
    cJSON *o = json_collection(c);
    cJSON *ix = cJSON_AddObjectToObject(o, "index");
    cJSON_AddStringToObject(ix, "type", c->index.type);
    if (strcmp(c->index.type, STORE_INDEX_HNSW) == 0) {
        cJSON_AddNumberToObject(ix, "m", c->index.hnsw_m);
        cJSON_AddNumberToObject(ix, "ef_construction", c->index.ef_construction);
        cJSON_AddNumberToObject(ix, "ef_search", c->index.ef_search);
    }
    rg_embedder *em = srv->semantic.embedder;
    int64_t n = 0;
    rg_err e;
    if (em && store_vectors_count(srv->store, c->id, embedder_model_id(em), &n, &e) == RG_OK) {
        cJSON *v = cJSON_AddObjectToObject(o, "vectors");
        cJSON_AddStringToObject(v, "model", embedder_model_id(em));
        cJSON_AddNumberToObject(v, "count", (double)n);
        cJSON_AddNumberToObject(v, "pending", (double)(c->n_chunks > n ? c->n_chunks - n : 0));
    }
    return o;
}

void route_collections_create(rg_request *r)
{
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
    rg_index_settings index;
    if (!cJSON_IsString(name)) {
        cJSON_Delete(body);
        http_error(r, 400, "invalid_request", "'name' (a string) is required");
        return;
    }
    if (meta && !cJSON_IsObject(meta) && !cJSON_IsNull(meta)) {
        cJSON_Delete(body);
        http_error(r, 400, "invalid_request", "'metadata' must be a JSON object");
        return;
    }
    if (parse_index(r, cJSON_GetObjectItemCaseSensitive(body, "index"), &index)) {
        cJSON_Delete(body);
        return;
    }
    char *meta_text = cJSON_IsObject(meta) ? cJSON_PrintUnformatted(meta) : NULL;
    rg_err e;
    int64_t id;
    rg_collection c = {0};
    rg_status st = store_collection_create_indexed(r->server->store, name->valuestring, meta_text, &index, &id, &e);
    if (!st)
        st = store_collection_get(r->server->store, name->valuestring, &c, &e);
    free(meta_text);
    cJSON_Delete(body);
    if (st) {
        http_fail(r, &e);
        return;
    }
    http_json(r, 201, collection_json(r->server, &c));
    store_collection_free(&c);
}

void route_collections_list(rg_request *r)
{
    rg_collection *cs = NULL;
    size_t n = 0;
    rg_err e;
    if (store_collection_list(r->server->store, &cs, &n, &e)) {
        http_fail(r, &e);
        return;
    }
    cJSON *data;
    cJSON *o = json_list(&data);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(data, collection_json(r->server, &cs[i]));
    store_collections_free(cs, n);
    http_json(r, 200, o);
}

void route_collections_get(rg_request *r)
{
    rg_collection c = {0};
    rg_err e;
    if (store_collection_get(r->server->store, r->params[0], &c, &e)) {
        http_fail(r, &e);
        return;
    }
    http_json(r, 200, collection_json(r->server, &c));
    store_collection_free(&c);
}

void route_collections_delete(rg_request *r)
{
    rg_err e;
    rg_collection c = {0};
    if (store_collection_get(r->server->store, r->params[0], &c, &e) ||
        store_collection_delete(r->server->store, r->params[0], &e)) {
        store_collection_free(&c);
        http_fail(r, &e);
        return;
    }
    if (r->server->semantic.vindex)
        vindex_drop(r->server->semantic.vindex, c.id);
    store_collection_free(&c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", r->params[0]);
    cJSON_AddBoolToObject(o, "deleted", 1);
    http_json(r, 200, o);
}
