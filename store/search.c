/* search.c - lexical search over chunk text with FTS5 and BM25. */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>

/* Hard cap on k: a caller's k comes from an HTTP request. */
#define SEARCH_MAX_K 10000

#define HIT_SELECT                                                                                  \
    "SELECT k.id, k.document_id, d.name, c.name, k.text, bm25(chunks_fts), d.metadata, k.char_start, " \
    "k.char_end, k.heading_path, k.page "                                                           \
    "FROM chunks_fts JOIN chunks k ON k.id = chunks_fts.rowid "                                     \
    "JOIN documents d ON d.id = k.document_id JOIN collections c ON c.id = d.collection_id "        \
    "WHERE chunks_fts MATCH ?1 "

/* bm25() is lower-is-better; ties go to the older chunk so results are
 * deterministic. */
static const char search_all_sql[] = HIT_SELECT "ORDER BY bm25(chunks_fts), k.id LIMIT ?2";
static const char search_one_sql[] = HIT_SELECT "AND d.collection_id = ?3 ORDER BY bm25(chunks_fts), k.id LIMIT ?2";

/* Leaves a failed hit's copies in place: store_hits_free releases them. */
static rg_status read_hit(sqlite3_stmt *st, void *elem, rg_err *e)
{
    rg_hit *h = elem;
    memset(h, 0, sizeof *h);
    h->chunk_id = sqlite3_column_int64(st, 0);
    h->document_id = sqlite3_column_int64(st, 1);
    h->score = -sqlite3_column_double(st, 5);
    h->char_start = sqlite3_column_int64(st, 7);
    h->char_end = sqlite3_column_int64(st, 8);
    h->page = sqlite3_column_int(st, 10);
    rg_status r = RG_OK;
    store_db_column_text(st, 2, 1, &h->document, &r, e);
    store_db_column_text(st, 3, 1, &h->collection, &r, e);
    store_db_column_text(st, 4, 1, &h->text, &r, e);
    store_db_column_json(st, 6, &h->metadata_json, &r, e);
    store_db_column_text(st, 9, 0, &h->heading_path, &r, e);
    return r;
}

rg_status store_chunk_search_fts(rg_store *s, int64_t collection_id, const char *match_expr, size_t k,
                                 rg_hit **out, size_t *n, rg_err *e)
{
    *out = NULL;
    *n = 0;
    if (!match_expr || !*match_expr)
        return rg_error(e, RG_ERR_INVALID, "empty search expression");
    if (k == 0)
        return RG_OK;
    if (k > SEARCH_MAX_K)
        k = SEARCH_MAX_K;
    store_db_lock(s);
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, collection_id > 0 ? search_one_sql : search_all_sql, &st, e);
    void *v = NULL;
    size_t len = 0;
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_text(st, 1, match_expr, &rc);
        store_db_bind_i64(st, 2, (int64_t)k, &rc);
        if (collection_id > 0)
            store_db_bind_i64(st, 3, collection_id, &rc);
        r = store_db_read_rows(s, st, &rc, read_hit, sizeof(rg_hit), &v, &len, "searching", e);
        /* The statement itself is fixed and valid, so a plain SQL error
         * here comes from FTS5 parsing the caller's expression. */
        if (r && rc == SQLITE_ERROR)
            r = rg_error(e, RG_ERR_INVALID, "invalid search expression: %s", sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    if (r) {
        store_hits_free(v, len);
        return r;
    }
    *out = v;
    *n = len;
    return RG_OK;
}

void store_hits_free(rg_hit *h, size_t n)
{
    if (!h)
        return;
    for (size_t i = 0; i < n; i++) {
        free(h[i].document);
        free(h[i].collection);
        free(h[i].text);
        free(h[i].metadata_json);
        free(h[i].heading_path);
    }
    free(h);
}

/* The same columns as a search hit, for chunks named by id; score is 0. */
static const char hits_by_id_sql[] =
    "SELECT k.id, k.document_id, d.name, c.name, k.text, 0.0, d.metadata, k.char_start, k.char_end, "
    "k.heading_path, k.page FROM chunks k JOIN documents d ON d.id = k.document_id "
    "JOIN collections c ON c.id = d.collection_id WHERE k.id = ?1 AND (?2 = 0 OR d.collection_id = ?2)";

rg_status store_chunk_hits(rg_store *s, int64_t collection_id, const int64_t *ids, size_t n_ids, rg_hit **out,
                           size_t *n, rg_err *e)
{
    *out = NULL;
    *n = 0;
    if (n_ids == 0)
        return RG_OK;
    if (n_ids > SEARCH_MAX_K)
        return rg_error(e, RG_ERR_INVALID, "at most %d chunks at once", SEARCH_MAX_K);
    rg_hit *hits = calloc(n_ids, sizeof *hits);
    if (!hits)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    store_db_lock(s);
    sqlite3_stmt *st = NULL;
    rg_status r = store_db_prepare(s, hits_by_id_sql, &st, e);
    size_t len = 0;
    for (size_t i = 0; i < n_ids && !r; i++) {
        int rc = SQLITE_OK;
        store_db_bind_i64(st, 1, ids[i], &rc);
        store_db_bind_i64(st, 2, collection_id, &rc);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            r = read_hit(st, &hits[len], e);
            len++; /* counted even on failure, so its copies are freed */
        } else if (rc != SQLITE_DONE) {
            r = store_db_fail(s, rc, e, "reading chunks");
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    store_db_unlock(s);
    if (r) {
        store_hits_free(hits, len);
        return r;
    }
    *out = hits;
    *n = len;
    return RG_OK;
}
