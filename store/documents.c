/* documents.c - documents and their chunks: atomic put/replace, failed
 * records, reads, listing and deletion. */
#include "store/store_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

#define DOC_NAME_MAX 4096

/* ---- input checks (before any lock or write) ---------------------------- */

static int hex_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Copies a 64-digit hex sha256 into out in lower case. */
static rg_status normalize_sha256(const char *in, char out[65], rg_err *e)
{
    if (!in || strlen(in) != 64)
        return rg_error(e, RG_ERR_INVALID, "document sha256 must be 64 hex digits");
    for (int i = 0; i < 64; i++) {
        if (!hex_digit(in[i]))
            return rg_error(e, RG_ERR_INVALID, "document sha256 must be 64 hex digits");
        out[i] = (in[i] >= 'A' && in[i] <= 'F') ? (char)(in[i] - 'A' + 'a') : in[i];
    }
    out[64] = '\0';
    return RG_OK;
}

static rg_status check_doc_in(const rg_document_in *doc, int64_t *n_chars, rg_err *e)
{
    if (!doc)
        return rg_error(e, RG_ERR_INVALID, "no document");
    if (doc->collection_id <= 0)
        return rg_error(e, RG_ERR_INVALID, "document has no collection");
    if (!doc->name || !*doc->name)
        return rg_error(e, RG_ERR_INVALID, "document has no name");
    size_t name_len = strlen(doc->name);
    if (name_len > DOC_NAME_MAX)
        return rg_error(e, RG_ERR_INVALID, "document name is longer than %d bytes", DOC_NAME_MAX);
    if (!utf8_is_valid(doc->name, name_len))
        return rg_error(e, RG_ERR_INVALID, "document name is not valid UTF-8");
    if (doc->byte_size < 0)
        return rg_error(e, RG_ERR_INVALID, "document byte_size is negative");
    if (!doc->text && doc->text_len)
        return rg_error(e, RG_ERR_INVALID, "document text is NULL but text_len is %zu", doc->text_len);
    if (doc->text && !utf8_is_valid(doc->text, doc->text_len))
        return rg_error(e, RG_ERR_INVALID, "document text is not valid UTF-8 (or holds NUL bytes)");
    *n_chars = doc->text ? (int64_t)utf8_length(doc->text, doc->text_len) : 0;
    return RG_OK;
}

static rg_status check_chunks(const rg_chunk_in *chunks, size_t n_chunks, int has_text, int64_t n_chars,
                              rg_err *e)
{
    if (n_chunks && !chunks)
        return rg_error(e, RG_ERR_INVALID, "chunks is NULL but n_chunks is %zu", n_chunks);
    if (n_chunks > INT_MAX)
        return rg_error(e, RG_ERR_TOO_LARGE, "too many chunks (%zu)", n_chunks);
    for (size_t i = 0; i < n_chunks; i++) {
        const rg_chunk_in *c = &chunks[i];
        if (!c->text && c->text_len)
            return rg_error(e, RG_ERR_INVALID, "chunk %zu: text is NULL but text_len is %zu", i, c->text_len);
        if (c->text && !utf8_is_valid(c->text, c->text_len))
            return rg_error(e, RG_ERR_INVALID, "chunk %zu: text is not valid UTF-8 (or holds NUL bytes)", i);
        if (c->char_start < 0 || c->char_end < c->char_start)
            return rg_error(e, RG_ERR_INVALID, "chunk %zu: bad offsets [%lld, %lld)", i, (long long)c->char_start,
                            (long long)c->char_end);
        if (has_text && c->char_end > n_chars)
            return rg_error(e, RG_ERR_INVALID, "chunk %zu: end offset %lld is past the text's %lld code points", i,
                            (long long)c->char_end, (long long)n_chars);
        if (c->page < 0 || c->token_count < 0)
            return rg_error(e, RG_ERR_INVALID, "chunk %zu: negative page or token_count", i);
        if (c->heading_path && !utf8_is_valid(c->heading_path, strlen(c->heading_path)))
            return rg_error(e, RG_ERR_INVALID, "chunk %zu: heading_path is not valid UTF-8", i);
    }
    return RG_OK;
}

static rg_status check_vectors(const rg_document_in *doc, const rg_chunk_in *chunks, size_t n_chunks, rg_err *e)
{
    if (!doc->vector_model)
        return RG_OK;
    if (!*doc->vector_model || doc->vector_dim <= 0 || doc->vector_dim > 65536)
        return rg_error(e, RG_ERR_INVALID, "bad vector model or dimension (%d)", doc->vector_dim);
    for (size_t i = 0; i < n_chunks; i++)
        if (!chunks[i].vector)
            return rg_error(e, RG_ERR_INVALID, "chunk %zu has no vector", i);
    return RG_OK;
}

/* ---- writes (the lock is held and a transaction is open) ---------------- */

static rg_status check_collection_exists(rg_store *s, int64_t collection_id, rg_err *e)
{
    return store_db_get_by_id(s, "SELECT 1 FROM collections WHERE id = ?1", collection_id, "collection", NULL, NULL,
                              "looking up a collection", e);
}

/* Runs a query binding (?1 collection_id, ?2 text, ?3 text) that yields one
 * id or none (*id = 0). */
static rg_status find_id(rg_store *s, const char *sql, int64_t collection_id, const char *a, const char *b,
                         int64_t *id, rg_err *e)
{
    *id = 0;
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, sql, &st, e);
    if (r)
        return r;
    int rc = SQLITE_OK;
    store_db_bind_i64(st, 1, collection_id, &rc);
    store_db_bind_text(st, 2, a, &rc);
    if (b)
        store_db_bind_text(st, 3, b, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        r = store_db_fail(s, rc, e, "looking up a document");
    sqlite3_finalize(st);
    return r;
}

/* The id of the document named doc->name in its collection, or 0. */
static rg_status find_same_name(rg_store *s, const rg_document_in *doc, int64_t *id, rg_err *e)
{
    return find_id(s, "SELECT id FROM documents WHERE collection_id = ?1 AND name = ?2", doc->collection_id, doc->name,
                   NULL, id, e);
}

/* Opens a put's transaction once the metadata checks out and the
 * collection exists; on failure no transaction is left open. */
static rg_status begin_put(rg_store *s, const rg_document_in *doc, rg_err *e)
{
    rg_status r = store_db_check_metadata(s, doc->metadata_json, e);
    if (!r)
        r = store_db_begin(s, e);
    if (!r) {
        r = check_collection_exists(s, doc->collection_id, e);
        if (r)
            store_db_rollback(s);
    }
    return r;
}

/* Inserts (existing_id == 0) or rewrites the document row, and removes the
 * chunks of a rewritten one. */
static rg_status write_document_row(rg_store *s, int64_t existing_id, const rg_document_in *doc, const char *sha256,
                                    const char *status, const char *error, int64_t n_chars, int64_t *id, rg_err *e)
{
    static const char insert_sql[] =
        "INSERT INTO documents(collection_id, name, source, mime, byte_size, sha256, status, error, metadata, "
        "title, text, n_chars, created_ms, updated_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)";
    static const char update_sql[] =
        "UPDATE documents SET source = ?3, mime = ?4, byte_size = ?5, sha256 = ?6, status = ?7, error = ?8, "
        "metadata = ?9, title = ?10, text = ?11, n_chars = ?12, updated_ms = ?13 "
        "WHERE id = ?14 AND collection_id = ?1 AND name = ?2";
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, existing_id ? update_sql : insert_sql, &st, e);
    if (r)
        return r;
    int rc = SQLITE_OK;
    store_db_bind_i64(st, 1, doc->collection_id, &rc);
    store_db_bind_text(st, 2, doc->name, &rc);
    store_db_bind_text(st, 3, doc->source ? doc->source : "", &rc);
    store_db_bind_text(st, 4, doc->mime ? doc->mime : "", &rc);
    store_db_bind_i64(st, 5, doc->byte_size, &rc);
    store_db_bind_text(st, 6, sha256, &rc);
    store_db_bind_text(st, 7, status, &rc);
    store_db_bind_text(st, 8, error, &rc);
    store_db_bind_text(st, 9, doc->metadata_json ? doc->metadata_json : "{}", &rc);
    store_db_bind_text(st, 10, doc->title, &rc);
    store_db_bind_textn(st, 11, doc->text, doc->text_len, &rc);
    store_db_bind_i64(st, 12, n_chars, &rc);
    store_db_bind_i64(st, 13, clock_now_ms(), &rc);
    if (existing_id)
        store_db_bind_i64(st, 14, existing_id, &rc);
    int64_t changes = 0;
    r = store_db_step_done(s, st, rc, &changes, existing_id ? "updating a document" : "inserting a document", e);
    if (!r && existing_id && changes != 1)
        r = rg_error(e, RG_ERR_INTERNAL, "store: document %lld changed under the write lock", (long long)existing_id);
    sqlite3_finalize(st);
    if (r)
        return r;
    if (!existing_id) {
        *id = sqlite3_last_insert_rowid(s->db);
        return RG_OK;
    }
    *id = existing_id;
    return store_db_run_id(s, "DELETE FROM chunks WHERE document_id = ?1", existing_id, NULL, "deleting old chunks",
                           e);
}

static rg_status insert_chunks(rg_store *s, int64_t doc_id, const rg_document_in *doc, const rg_chunk_in *chunks,
                               size_t n_chunks, rg_err *e)
{
    if (!n_chunks)
        return RG_OK;
    sqlite3_stmt *st, *vst = NULL;
    rg_status r = store_db_prepare(s,
                                   "INSERT INTO chunks(document_id, ordinal, text, char_start, char_end, "
                                   "heading_path, page, token_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                                   &st, e);
    if (r)
        return r;
    if (doc->vector_model &&
        (r = store_db_prepare(s, "INSERT INTO chunk_vectors(chunk_id, model, dim, vector) VALUES (?1, ?2, ?3, ?4)",
                              &vst, e))) {
        sqlite3_finalize(st);
        return r;
    }
    for (size_t i = 0; i < n_chunks && !r; i++) {
        const rg_chunk_in *c = &chunks[i];
        int rc = SQLITE_OK;
        store_db_bind_i64(st, 1, doc_id, &rc);
        store_db_bind_i64(st, 2, (int64_t)i, &rc);
        store_db_bind_textn(st, 3, c->text ? c->text : "", c->text_len, &rc);
        store_db_bind_i64(st, 4, c->char_start, &rc);
        store_db_bind_i64(st, 5, c->char_end, &rc);
        store_db_bind_text(st, 6, c->heading_path, &rc);
        store_db_bind_i64(st, 7, c->page, &rc);
        store_db_bind_i64(st, 8, c->token_count, &rc);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            r = store_db_fail(s, rc, e, "inserting a chunk");
            rg_error_wrap(e, "chunk %zu", i);
        }
        sqlite3_reset(st);
        if (!r && vst) {
            rc = SQLITE_OK;
            store_db_bind_i64(vst, 1, sqlite3_last_insert_rowid(s->db), &rc);
            store_db_bind_text(vst, 2, doc->vector_model, &rc);
            store_db_bind_i64(vst, 3, doc->vector_dim, &rc);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_blob(vst, 4, c->vector, (int)((size_t)doc->vector_dim * sizeof(float)),
                                       SQLITE_STATIC);
            r = store_db_step_done(s, vst, rc, NULL, "storing a chunk vector", e);
            sqlite3_reset(vst);
        }
    }
    sqlite3_finalize(st);
    sqlite3_finalize(vst);
    return r;
}

const char *store_put_outcome_name(rg_put_outcome o)
{
    switch (o) {
    case STORE_PUT_ADDED: return "added";
    case STORE_PUT_UNCHANGED: return "unchanged";
    case STORE_PUT_REPLACED: return "replaced";
    }
    return "unknown";
}

rg_status store_document_put(rg_store *s, const rg_document_in *doc, const rg_chunk_in *chunks, size_t n_chunks,
                             int64_t *doc_id, rg_put_outcome *outcome, rg_err *e)
{
    int64_t n_chars = 0;
    char sha[65];
    rg_status r = check_doc_in(doc, &n_chars, e);
    if (!r)
        r = normalize_sha256(doc->sha256, sha, e);
    if (!r)
        r = check_chunks(chunks, n_chunks, doc->text != NULL, n_chars, e);
    if (!r)
        r = check_vectors(doc, chunks, n_chunks, e);
    if (r)
        return r;

    store_db_lock(s);
    r = begin_put(s, doc, e);
    if (r) {
        store_db_unlock(s);
        return r;
    }
    int64_t id = 0;
    rg_put_outcome oc = STORE_PUT_ADDED;
    r = find_id(s,
                "SELECT id FROM documents WHERE collection_id = ?1 AND sha256 = ?2 AND status = 'ready' "
                "ORDER BY name = ?3 DESC, id LIMIT 1",
                doc->collection_id, sha, doc->name, &id, e);
    if (!r && id) {
        oc = STORE_PUT_UNCHANGED;
    } else if (!r) {
        int64_t existing = 0;
        r = find_same_name(s, doc, &existing, e);
        if (!r)
            r = write_document_row(s, existing, doc, sha, DOC_STATUS_READY, NULL, n_chars, &id, e);
        if (!r)
            r = insert_chunks(s, id, doc, chunks, n_chunks, e);
        oc = existing ? STORE_PUT_REPLACED : STORE_PUT_ADDED;
    }
    if (!r && doc->task_id > 0)
        r = store_task_write(s, doc->task_id, TASK_DONE, 1, 1, id, store_put_outcome_name(oc), NULL, e);
    r = store_db_end(s, r, e);
    store_db_unlock(s);
    if (r)
        return r;
    if (doc_id)
        *doc_id = id;
    if (outcome)
        *outcome = oc;
    return RG_OK;
}

rg_status store_document_put_failed(rg_store *s, const rg_document_in *doc, const char *error, int64_t *doc_id,
                                    rg_err *e)
{
    int64_t n_chars = 0;
    char sha[65] = "";
    rg_status r = check_doc_in(doc, &n_chars, e);
    if (!r && doc->sha256 && *doc->sha256)
        r = normalize_sha256(doc->sha256, sha, e);
    if (r)
        return r;
    store_db_lock(s);
    r = begin_put(s, doc, e);
    if (r) {
        store_db_unlock(s);
        return r;
    }
    int64_t existing = 0, id = 0;
    r = find_same_name(s, doc, &existing, e);
    if (!r)
        r = write_document_row(s, existing, doc, sha, DOC_STATUS_FAILED, error && *error ? error : "unknown error",
                               n_chars, &id, e);
    if (!r && doc->task_id > 0)
        r = store_task_write(s, doc->task_id, TASK_FAILED, 1, 1, id, NULL, error && *error ? error : "unknown error",
                             e);
    r = store_db_end(s, r, e);
    store_db_unlock(s);
    if (!r && doc_id)
        *doc_id = id;
    return r;
}

/* ---- reads -------------------------------------------------------------- */

#define DOCUMENT_COLUMNS                                                                                      \
    "d.id, d.collection_id, c.name, d.name, d.source, d.mime, d.byte_size, d.sha256, d.status, d.error, "     \
    "d.metadata, d.title, d.created_ms, d.updated_ms, "                                                       \
    "(SELECT count(*) FROM chunks k WHERE k.document_id = d.id), d.n_chars "                                  \
    "FROM documents d JOIN collections c ON c.id = d.collection_id "

static rg_status read_document(sqlite3_stmt *st, void *elem, rg_err *e)
{
    rg_document *d = elem;
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(st, 0);
    d->collection_id = sqlite3_column_int64(st, 1);
    d->byte_size = sqlite3_column_int64(st, 6);
    const char *sha = (const char *)sqlite3_column_text(st, 7);
    if (sha) {
        strncpy(d->sha256, sha, sizeof d->sha256 - 1);
        d->sha256[sizeof d->sha256 - 1] = '\0';
    }
    d->created_ms = sqlite3_column_int64(st, 12);
    d->updated_ms = sqlite3_column_int64(st, 13);
    d->n_chunks = sqlite3_column_int64(st, 14);
    d->n_chars = sqlite3_column_int64(st, 15);
    rg_status r = RG_OK;
    store_db_column_text(st, 2, 1, &d->collection, &r, e);
    store_db_column_text(st, 3, 1, &d->name, &r, e);
    store_db_column_text(st, 4, 1, &d->source, &r, e);
    store_db_column_text(st, 5, 1, &d->mime, &r, e);
    store_db_column_text(st, 8, 1, &d->status, &r, e);
    store_db_column_text(st, 9, 0, &d->error, &r, e);
    store_db_column_json(st, 10, &d->metadata_json, &r, e);
    store_db_column_text(st, 11, 0, &d->title, &r, e);
    if (r)
        store_document_free(d);
    return r;
}

rg_status store_document_get(rg_store *s, int64_t id, rg_document *out, rg_err *e)
{
    memset(out, 0, sizeof *out);
    store_db_lock(s);
    rg_status r = store_db_get_by_id(s, "SELECT " DOCUMENT_COLUMNS "WHERE d.id = ?1", id, "document", read_document,
                                     out, "reading a document", e);
    store_db_unlock(s);
    return r;
}

static int64_t clamp_size(size_t v)
{
    return v > (size_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

rg_status store_document_list(rg_store *s, int64_t collection_id, size_t limit, size_t offset, rg_document **out,
                              size_t *n, rg_err *e)
{
    *out = NULL;
    *n = 0;
    store_db_lock(s);
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s,
                                   collection_id > 0
                                       ? "SELECT " DOCUMENT_COLUMNS "WHERE d.collection_id = ?3 "
                                         "ORDER BY d.created_ms DESC, d.id DESC LIMIT ?1 OFFSET ?2"
                                       : "SELECT " DOCUMENT_COLUMNS
                                         "ORDER BY d.created_ms DESC, d.id DESC LIMIT ?1 OFFSET ?2",
                                   &st, e);
    void *v = NULL;
    size_t len = 0;
    if (!r) {
        int rc = SQLITE_OK;
        /* limit 0 means no limit (a negative LIMIT in SQLite). */
        store_db_bind_i64(st, 1, limit ? clamp_size(limit) : -1, &rc);
        store_db_bind_i64(st, 2, clamp_size(offset), &rc);
        if (collection_id > 0)
            store_db_bind_i64(st, 3, collection_id, &rc);
        r = store_db_read_rows(s, st, &rc, read_document, sizeof(rg_document), &v, &len, "listing documents", e);
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    if (r) {
        store_documents_free(v, len);
        return r;
    }
    *out = v;
    *n = len;
    return RG_OK;
}

rg_status store_document_delete(rg_store *s, int64_t id, rg_err *e)
{
    store_db_lock(s);
    rg_status r = store_db_begin(s, e);
    if (!r) {
        int64_t changes = 0;
        /* Chunks go by ON DELETE CASCADE, FTS rows by the chunk trigger. */
        r = store_db_run_id(s, "DELETE FROM documents WHERE id = ?1", id, &changes, "deleting a document", e);
        if (!r && changes == 0)
            r = rg_error(e, RG_ERR_NOT_FOUND, "no document with id %lld", (long long)id);
        r = store_db_end(s, r, e);
    }
    store_db_unlock(s);
    return r;
}

rg_status store_document_text(rg_store *s, int64_t id, char **text, size_t *len, rg_err *e)
{
    *text = NULL;
    if (len)
        *len = 0;
    store_db_lock(s);
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, "SELECT text FROM documents WHERE id = ?1", &st, e);
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_i64(st, 1, id, &rc);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            store_db_column_text(st, 0, 1, text, &r, e);
            if (!r && len)
                *len = (size_t)sqlite3_column_bytes(st, 0);
        } else if (rc == SQLITE_DONE) {
            r = rg_error(e, RG_ERR_NOT_FOUND, "no document with id %lld", (long long)id);
        } else {
            r = store_db_fail(s, rc, e, "reading document text");
        }
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    return r;
}

void store_document_free(rg_document *d)
{
    if (!d)
        return;
    free(d->collection);
    free(d->name);
    free(d->source);
    free(d->mime);
    free(d->status);
    free(d->error);
    free(d->metadata_json);
    free(d->title);
    d->collection = d->name = d->source = d->mime = d->status = d->error = d->metadata_json = d->title = NULL;
}

void store_documents_free(rg_document *d, size_t n)
{
    if (!d)
        return;
    for (size_t i = 0; i < n; i++)
        store_document_free(&d[i]);
    free(d);
}

/* ---- chunks ------------------------------------------------------------- */

static rg_status read_chunk(sqlite3_stmt *st, void *elem, rg_err *e)
{
    rg_chunk *c = elem;
    memset(c, 0, sizeof *c);
    c->id = sqlite3_column_int64(st, 0);
    c->document_id = sqlite3_column_int64(st, 1);
    c->ordinal = sqlite3_column_int(st, 2);
    c->char_start = sqlite3_column_int64(st, 4);
    c->char_end = sqlite3_column_int64(st, 5);
    c->page = sqlite3_column_int(st, 7);
    c->token_count = sqlite3_column_int(st, 8);
    rg_status r = RG_OK;
    store_db_column_text(st, 3, 1, &c->text, &r, e);
    store_db_column_text(st, 6, 0, &c->heading_path, &r, e);
    return r;
}

rg_status store_chunk_list(rg_store *s, int64_t document_id, rg_chunk **out, size_t *n, rg_err *e)
{
    *out = NULL;
    *n = 0;
    store_db_lock(s);
    /* One read transaction so the existence check and the rows agree. */
    rg_status r = store_db_exec(s, "BEGIN", e);
    if (r) {
        store_db_unlock(s);
        return r;
    }
    r = store_db_get_by_id(s, "SELECT 1 FROM documents WHERE id = ?1", document_id, "document", NULL, NULL,
                           "looking up a document", e);
    sqlite3_stmt *st = NULL;
    if (!r)
        r = store_db_prepare(s,
                             "SELECT id, document_id, ordinal, text, char_start, char_end, heading_path, page, "
                             "token_count FROM chunks WHERE document_id = ?1 ORDER BY ordinal",
                             &st, e);
    void *v = NULL;
    size_t len = 0;
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_i64(st, 1, document_id, &rc);
        r = store_db_read_rows(s, st, &rc, read_chunk, sizeof(rg_chunk), &v, &len, "listing chunks", e);
    }
    sqlite3_finalize(st);
    store_db_rollback(s); /* ends the read transaction */
    store_db_unlock(s);
    if (r) {
        store_chunks_free(v, len);
        return r;
    }
    *out = v;
    *n = len;
    return RG_OK;
}

void store_chunks_free(rg_chunk *c, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++) {
        free(c[i].text);
        free(c[i].heading_path);
    }
    free(c);
}

int store_document_has_sha(rg_store *s, int64_t collection_id, const char *sha256)
{
    char sha[65];
    int64_t id = 0;
    if (normalize_sha256(sha256, sha, NULL) != RG_OK)
        return 0;
    store_db_lock(s);
    rg_status r = find_id(s, "SELECT id FROM documents WHERE collection_id = ?1 AND sha256 = ?2 AND status = 'ready' LIMIT 1",
                          collection_id, sha, NULL, &id, NULL);
    store_db_unlock(s);
    return r == RG_OK && id > 0;
}
