/* vectors.c - chunk embedding vectors (schema v2, table chunk_vectors). */
#include "store/vectors.h"

#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define VECTORS_MAX_DIM 65536

static rg_status check_model(const char *model, int dim, rg_err *e)
{
    if (!model || !*model)
        return rg_error(e, RG_ERR_INVALID, "vectors need a model name");
    if (dim <= 0 || dim > VECTORS_MAX_DIM)
        return rg_error(e, RG_ERR_INVALID, "vector dimension %d out of range 1..%d", dim, VECTORS_MAX_DIM);
    return RG_OK;
}

rg_status store_vectors_put(rg_store *s, const char *model, int dim, size_t n, const int64_t *chunk_ids,
                            const float *vectors, rg_err *e)
{
    rg_status r = check_model(model, dim, e);
    if (r || n == 0)
        return r;
    store_db_lock(s);
    r = store_db_begin(s, e);
    sqlite3_stmt *exists = NULL, *put = NULL;
    if (!r)
        r = store_db_prepare(s, "SELECT 1 FROM chunks WHERE id = ?1", &exists, e);
    if (!r)
        r = store_db_prepare(s,
                             "INSERT OR REPLACE INTO chunk_vectors(chunk_id, model, dim, vector) "
                             "VALUES (?1, ?2, ?3, ?4)",
                             &put, e);
    for (size_t i = 0; i < n && !r; i++) {
        /* The foreign key alone would fail the statement with a constraint
         * error; checking first gives the caller a clear "not found". */
        int rc = sqlite3_bind_int64(exists, 1, chunk_ids[i]);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(exists);
        sqlite3_reset(exists);
        if (rc == SQLITE_DONE) {
            r = rg_error(e, RG_ERR_NOT_FOUND, "no chunk with id %lld (deleted meanwhile?)", (long long)chunk_ids[i]);
            break;
        }
        if (rc != SQLITE_ROW) {
            r = store_db_fail(s, rc, e, "checking a chunk");
            break;
        }
        rc = SQLITE_OK;
        store_db_bind_i64(put, 1, chunk_ids[i], &rc);
        store_db_bind_text(put, 2, model, &rc);
        store_db_bind_i64(put, 3, dim, &rc);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_blob(put, 4, vectors + i * (size_t)dim, (int)((size_t)dim * sizeof(float)),
                                   SQLITE_STATIC);
        r = store_db_step_done(s, put, rc, NULL, "storing a vector", e);
        sqlite3_reset(put);
    }
    sqlite3_finalize(exists);
    sqlite3_finalize(put);
    r = store_db_end(s, r, e);
    store_db_unlock(s);
    return r;
}

rg_status store_vectors_scan(rg_store *s, int64_t collection_id, const char *model, int dim, int64_t after_id,
                             size_t max, int64_t *ids, float *vectors, size_t *n, rg_err *e)
{
    *n = 0;
    rg_status r = check_model(model, dim, e);
    if (r || max == 0)
        return r;
    store_db_lock(s);
    sqlite3_stmt *st = NULL;
    r = store_db_prepare(s,
                         "SELECT v.chunk_id, v.dim, v.vector FROM chunk_vectors v "
                         "JOIN chunks c ON c.id = v.chunk_id JOIN documents d ON d.id = c.document_id "
                         "WHERE v.model = ?1 AND v.chunk_id > ?2 AND (?3 = 0 OR d.collection_id = ?3) "
                         "ORDER BY v.chunk_id LIMIT ?4",
                         &st, e);
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_text(st, 1, model, &rc);
        store_db_bind_i64(st, 2, after_id, &rc);
        store_db_bind_i64(st, 3, collection_id, &rc);
        store_db_bind_i64(st, 4, (int64_t)max, &rc);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            const void *blob = sqlite3_column_blob(st, 2);
            int bytes = sqlite3_column_bytes(st, 2);
            if (sqlite3_column_int(st, 1) != dim || bytes != dim * (int)sizeof(float) || !blob) {
                r = rg_error(e, RG_ERR_CORRUPT, "vector of chunk %lld for %s has dimension %d, expected %d",
                             (long long)sqlite3_column_int64(st, 0), model, sqlite3_column_int(st, 1), dim);
                break;
            }
            ids[*n] = sqlite3_column_int64(st, 0);
            memcpy(vectors + *n * (size_t)dim, blob, (size_t)bytes);
            (*n)++;
            rc = SQLITE_OK;
        }
        if (!r && rc != SQLITE_DONE)
            r = store_db_fail(s, rc, e, "reading vectors");
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    return r;
}

rg_status store_chunks_missing_vectors(rg_store *s, const char *model, size_t max, int64_t *ids, size_t *n,
                                       rg_err *e)
{
    *n = 0;
    if (!model || !*model)
        return rg_error(e, RG_ERR_INVALID, "vectors need a model name");
    store_db_lock(s);
    sqlite3_stmt *st = NULL;
    rg_status r = store_db_prepare(s,
                                   "SELECT c.id FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM chunk_vectors v "
                                   "WHERE v.model = ?1 AND v.chunk_id = c.id) ORDER BY c.id LIMIT ?2",
                                   &st, e);
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_text(st, 1, model, &rc);
        store_db_bind_i64(st, 2, (int64_t)max, &rc);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            ids[(*n)++] = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
        if (rc != SQLITE_DONE)
            r = store_db_fail(s, rc, e, "finding chunks without vectors");
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    return r;
}

#define BACKLOG_MAX_BATCH 4096

static rg_status read_backlog_chunk(sqlite3_stmt *st, void *elem, rg_err *e)
{
    rg_backlog_chunk *c = elem;
    memset(c, 0, sizeof *c);
    c->id = sqlite3_column_int64(st, 0);
    c->collection_id = sqlite3_column_int64(st, 1);
    rg_status r = RG_OK;
    store_db_column_text(st, 2, 1, &c->text, &r, e);
    return r;
}

rg_status store_vector_backlog(rg_store *s, const char *model, int64_t after_id, size_t max, rg_backlog_chunk **out,
                               size_t *n, int64_t *scanned_to, rg_err *e)
{
    *out = NULL;
    *n = 0;
    *scanned_to = after_id;
    if (!model || !*model)
        return rg_error(e, RG_ERR_INVALID, "vectors need a model name");
    if (max == 0 || max > BACKLOG_MAX_BATCH)
        return rg_error(e, RG_ERR_INVALID, "backlog batch of %zu chunks out of range 1..%d", max, BACKLOG_MAX_BATCH);
    store_db_lock(s);
    /* The highest chunk id first: a chunk committed after this read gets a
     * higher id (ids only grow, one writer at a time), so when fewer than
     * max rows come back everything up to it has been seen. */
    int64_t top = 0;
    rg_status r = store_db_query_i64(s, "SELECT coalesce(max(id), 0) FROM chunks", &top, e);
    sqlite3_stmt *st = NULL;
    if (!r)
        r = store_db_prepare(s,
                             "SELECT c.id, d.collection_id, c.text FROM chunks c "
                             "JOIN documents d ON d.id = c.document_id "
                             "WHERE c.id > ?2 AND c.id <= ?3 AND NOT EXISTS (SELECT 1 FROM chunk_vectors v "
                             "WHERE v.model = ?1 AND v.chunk_id = c.id) ORDER BY c.id LIMIT ?4",
                             &st, e);
    void *v = NULL;
    size_t len = 0;
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_text(st, 1, model, &rc);
        store_db_bind_i64(st, 2, after_id, &rc);
        store_db_bind_i64(st, 3, top, &rc);
        store_db_bind_i64(st, 4, (int64_t)max, &rc);
        r = store_db_read_rows(s, st, &rc, read_backlog_chunk, sizeof(rg_backlog_chunk), &v, &len,
                               "finding chunks without vectors", e);
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    if (r) {
        store_backlog_free(v, len);
        return r;
    }
    *out = v;
    *n = len;
    *scanned_to = len == max ? ((rg_backlog_chunk *)v)[len - 1].id : (top > after_id ? top : after_id);
    return RG_OK;
}

void store_backlog_free(rg_backlog_chunk *c, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++)
        free(c[i].text);
    free(c);
}

rg_status store_vectors_max_id(rg_store *s, const char *model, int64_t *max_id, rg_err *e)
{
    *max_id = 0;
    store_db_lock(s);
    sqlite3_stmt *st = NULL;
    rg_status r = store_db_prepare(s, "SELECT coalesce(max(chunk_id), 0) FROM chunk_vectors WHERE model = ?1", &st, e);
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_text(st, 1, model, &rc);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *max_id = sqlite3_column_int64(st, 0);
        else
            r = store_db_fail(s, rc, e, "reading the newest vector's id");
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    return r;
}

rg_status store_vectors_count(rg_store *s, int64_t collection_id, const char *model, int64_t *n, rg_err *e)
{
    *n = 0;
    store_db_lock(s);
    sqlite3_stmt *st = NULL;
    rg_status r = store_db_prepare(s,
                                   "SELECT count(*) FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id "
                                   "JOIN documents d ON d.id = c.document_id "
                                   "WHERE v.model = ?1 AND (?2 = 0 OR d.collection_id = ?2)",
                                   &st, e);
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_text(st, 1, model, &rc);
        store_db_bind_i64(st, 2, collection_id, &rc);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *n = sqlite3_column_int64(st, 0);
        else
            r = store_db_fail(s, rc, e, "counting vectors");
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    return r;
}
