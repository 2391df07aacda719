/* /v1/collections */
#include <stdlib.h>

#include "api/json_out.h"
#include "api/routes.h"
#include "api/server.h"

void route_collections_create(rg_request *r)
{
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
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
    char *meta_text = cJSON_IsObject(meta) ? cJSON_PrintUnformatted(meta) : NULL;
    rg_err e;
    int64_t id;
    rg_collection c = {0};
    rg_status st = store_collection_create(r->server->store, name->valuestring, meta_text, &id, &e);
    if (!st)
        st = store_collection_get(r->server->store, name->valuestring, &c, &e);
    free(meta_text);
    cJSON_Delete(body);
    if (st) {
        http_fail(r, &e);
        return;
    }
    http_json(r, 201, json_collection(&c));
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
        cJSON_AddItemToArray(data, json_collection(&cs[i]));
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
    http_json(r, 200, json_collection(&c));
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
