#include "api/json_out.h"

static void add_time(cJSON *o, const char *key, int64_t ms)
{
    cJSON_AddNumberToObject(o, key, (double)(ms / 1000));
}

static void add_string_or_null(cJSON *o, const char *key, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static void add_offsets(cJSON *o, int64_t start, int64_t end)
{
    cJSON *off = cJSON_AddObjectToObject(o, "offsets");
    cJSON_AddNumberToObject(off, "start", (double)start);
    cJSON_AddNumberToObject(off, "end", (double)end);
}

static void add_page(cJSON *o, int page)
{
    if (page > 0)
        cJSON_AddNumberToObject(o, "page", page);
    else
        cJSON_AddNullToObject(o, "page");
}

cJSON *json_metadata(const char *text)
{
    cJSON *m = text ? cJSON_Parse(text) : NULL;
    if (!m)
        m = cJSON_CreateObject();
    return m;
}

cJSON *json_list(cJSON **data)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    *data = cJSON_AddArrayToObject(o, "data");
    return o;
}

cJSON *json_collection(const rg_collection *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "collection");
    cJSON_AddNumberToObject(o, "id", (double)c->id);
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddItemToObject(o, "metadata", json_metadata(c->metadata_json));
    cJSON_AddNumberToObject(o, "documents", (double)c->n_documents);
    cJSON_AddNumberToObject(o, "chunks", (double)c->n_chunks);
    add_time(o, "created_at", c->created_ms);
    return o;
}

cJSON *json_document(const rg_document *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "document");
    cJSON_AddNumberToObject(o, "id", (double)d->id);
    add_string_or_null(o, "collection", d->collection);
    add_string_or_null(o, "name", d->name);
    add_string_or_null(o, "source", d->source);
    add_string_or_null(o, "mime", d->mime);
    cJSON_AddNumberToObject(o, "bytes", (double)d->byte_size);
    cJSON_AddStringToObject(o, "sha256", d->sha256);
    add_string_or_null(o, "status", d->status);
    add_string_or_null(o, "error", d->error);
    cJSON_AddItemToObject(o, "metadata", json_metadata(d->metadata_json));
    add_string_or_null(o, "title", d->title);
    cJSON_AddNumberToObject(o, "chunks", (double)d->n_chunks);
    cJSON_AddNumberToObject(o, "characters", (double)d->n_chars);
    add_time(o, "created_at", d->created_ms);
    add_time(o, "updated_at", d->updated_ms);
    return o;
}

cJSON *json_task(const rg_task *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "task");
    cJSON_AddNumberToObject(o, "id", (double)t->id);
    cJSON_AddStringToObject(o, "state", store_task_state_name(t->state));
    add_string_or_null(o, "collection", t->collection);
    add_string_or_null(o, "name", t->name);
    if (t->document_id > 0)
        cJSON_AddNumberToObject(o, "document_id", (double)t->document_id);
    else
        cJSON_AddNullToObject(o, "document_id");
    add_string_or_null(o, "outcome", t->outcome);
    cJSON *p = cJSON_AddObjectToObject(o, "progress");
    cJSON_AddNumberToObject(p, "done", (double)t->progress_done);
    cJSON_AddNumberToObject(p, "total", (double)t->progress_total);
    add_string_or_null(o, "error", t->error);
    add_time(o, "created_at", t->created_ms);
    add_time(o, "updated_at", t->updated_ms);
    return o;
}

cJSON *json_chunk(const rg_chunk *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)c->id);
    cJSON_AddNumberToObject(o, "ordinal", c->ordinal);
    cJSON_AddStringToObject(o, "text", c->text ? c->text : "");
    add_offsets(o, c->char_start, c->char_end);
    add_string_or_null(o, "heading_path", c->heading_path);
    add_page(o, c->page);
    cJSON_AddNumberToObject(o, "tokens", c->token_count);
    return o;
}

cJSON *json_hit(const rg_hit *h)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "chunk_id", (double)h->chunk_id);
    cJSON_AddNumberToObject(o, "document_id", (double)h->document_id);
    add_string_or_null(o, "document", h->document);
    add_string_or_null(o, "collection", h->collection);
    cJSON_AddStringToObject(o, "text", h->text ? h->text : "");
    cJSON_AddNumberToObject(o, "score", h->score);
    cJSON_AddItemToObject(o, "metadata", json_metadata(h->metadata_json));
    add_offsets(o, h->char_start, h->char_end);
    add_string_or_null(o, "heading_path", h->heading_path);
    add_page(o, h->page);
    return o;
}
