/* /v1/documents (read and delete) and /v1/tasks. Uploads: routes_upload.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/json_out.h"
#include "api/routes.h"
#include "api/server.h"

/* Parses the {id} path parameter; an id that is not a positive integer
 * cannot name anything, so it answers 404. */
static int path_id(rg_request *r, const char *what, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(r->params[0], &end, 10);
    if (errno || *end || v <= 0 || r->params[0][0] < '0' || r->params[0][0] > '9') {
        http_error(r, 404, "not_found", "no %s '%s'", what, r->params[0]);
        return -1;
    }
    *id = v;
    return 0;
}

void route_documents_list(rg_request *r)
{
    rg_store *s = r->server->store;
    long limit, offset;
    if (http_query_int(r, "limit", 1, 10000, 100, &limit) || http_query_int(r, "offset", 0, 1L << 40, 0, &offset))
        return;
    rg_err e;
    int64_t coll_id = 0;
    const char *coll = http_query(r, "collection");
    if (coll && *coll) {
        rg_collection c = {0};
        if (store_collection_get(s, coll, &c, &e)) {
            http_fail(r, &e);
            return;
        }
        coll_id = c.id;
        store_collection_free(&c);
    }
    rg_document *docs = NULL;
    size_t n = 0;
    if (store_document_list(s, coll_id, (size_t)limit, (size_t)offset, &docs, &n, &e)) {
        http_fail(r, &e);
        return;
    }
    cJSON *data;
    cJSON *o = json_list(&data);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(data, json_document(&docs[i]));
    store_documents_free(docs, n);
    http_json(r, 200, o);
}

void route_documents_get(rg_request *r)
{
    int64_t id;
    if (path_id(r, "document", &id))
        return;
    rg_err e;
    rg_document d = {0};
    if (store_document_get(r->server->store, id, &d, &e)) {
        http_fail(r, &e);
        return;
    }
    cJSON *o = json_document(&d);
    store_document_free(&d);
    const char *include = http_query(r, "include");
    if (include && strcmp(include, "chunks") == 0) {
        rg_chunk *cs = NULL;
        size_t n = 0;
        if (store_chunk_list(r->server->store, id, &cs, &n, &e)) {
            cJSON_Delete(o);
            http_fail(r, &e);
            return;
        }
        cJSON *list = cJSON_AddArrayToObject(o, "chunk_list");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(list, json_chunk(&cs[i]));
        store_chunks_free(cs, n);
    }
    http_json(r, 200, o);
}

void route_documents_delete(rg_request *r)
{
    int64_t id;
    if (path_id(r, "document", &id))
        return;
    rg_err e;
    rg_server *srv = r->server;
    /* The chunk ids leave the vector index too (before they are gone). */
    rg_document d = {0};
    rg_chunk *cs = NULL;
    size_t n = 0;
    if (srv->semantic.vindex && store_document_get(srv->store, id, &d, &e) == RG_OK)
        store_chunk_list(srv->store, id, &cs, &n, &e);
    rg_status st = store_document_delete(srv->store, id, &e);
    if (!st && n) {
        int64_t *ids = malloc(n * sizeof *ids);
        for (size_t i = 0; ids && i < n; i++)
            ids[i] = cs[i].id;
        rg_err ve;
        if (ids)
            vindex_remove(srv->semantic.vindex, d.collection_id, n, ids, &ve);
        free(ids);
    }
    store_chunks_free(cs, n);
    store_document_free(&d);
    if (st) {
        http_fail(r, &e);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddBoolToObject(o, "deleted", 1);
    http_json(r, 200, o);
}

void route_tasks_get(rg_request *r)
{
    int64_t id;
    if (path_id(r, "task", &id))
        return;
    rg_err e;
    rg_task t = {0};
    if (store_task_get(r->server->store, id, &t, &e)) {
        http_fail(r, &e);
        return;
    }
    http_json(r, 200, json_task(&t));
    store_task_free(&t);
}

void route_tasks_list(rg_request *r)
{
    long limit, offset;
    if (http_query_int(r, "limit", 1, 10000, 100, &limit) || http_query_int(r, "offset", 0, 1L << 40, 0, &offset))
        return;
    rg_err e;
    rg_task *ts = NULL;
    size_t n = 0;
    if (store_task_list(r->server->store, (size_t)limit, (size_t)offset, &ts, &n, &e)) {
        http_fail(r, &e);
        return;
    }
    cJSON *data;
    cJSON *o = json_list(&data);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(data, json_task(&ts[i]));
    store_tasks_free(ts, n);
    http_json(r, 200, o);
}
