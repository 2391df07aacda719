/* collections.c - named groups of documents. */
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_collection_name_valid(const char *name)
{
    if (!name)
        return 0;
    size_t n = strlen(name);
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (i == 0 ? !alnum : !(alnum || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static rg_status check_name(const char *name, rg_err *e)
{
    if (!store_collection_name_valid(name))
        return rg_error(e, RG_ERR_INVALID,
                        "invalid collection name \"%.80s\": use 1 to 64 of A-Z a-z 0-9 _ . -, "
                        "starting with a letter or digit",
                        name ? name : "");
    return RG_OK;
}

void store_index_settings_default(rg_index_settings *x)
{
    memset(x, 0, sizeof *x);
    snprintf(x->type, sizeof x->type, "%s", STORE_INDEX_FLAT);
    x->hnsw_m = STORE_INDEX_HNSW_M_DEFAULT;
    x->ef_construction = STORE_INDEX_EF_CONSTRUCTION_DEFAULT;
    x->ef_search = STORE_INDEX_EF_SEARCH_DEFAULT;
}

static rg_status check_range(const char *field, int v, int lo, int hi, rg_err *e)
{
    if (v < lo || v > hi)
        return rg_error(e, RG_ERR_INVALID, "index setting '%s' is %d; it must be between %d and %d", field, v, lo,
                        hi);
    return RG_OK;
}

rg_status store_index_settings_check(const rg_index_settings *x, rg_err *e)
{
    if (strcmp(x->type, STORE_INDEX_FLAT) != 0 && strcmp(x->type, STORE_INDEX_HNSW) != 0)
        return rg_error(e, RG_ERR_INVALID, "unknown index type '%.8s' (use flat or hnsw)", x->type);
    rg_status r = check_range("m", x->hnsw_m, STORE_INDEX_HNSW_M_MIN, STORE_INDEX_HNSW_M_MAX, e);
    if (!r)
        r = check_range("ef_construction", x->ef_construction, STORE_INDEX_EF_CONSTRUCTION_MIN,
                        STORE_INDEX_EF_CONSTRUCTION_MAX, e);
    if (!r)
        r = check_range("ef_search", x->ef_search, STORE_INDEX_EF_SEARCH_MIN, STORE_INDEX_EF_SEARCH_MAX, e);
    return r;
}

int store_index_settings_equal(const rg_index_settings *a, const rg_index_settings *b)
{
    if (strcmp(a->type, b->type) != 0)
        return 0;
    /* A flat index has no parameters, so they cannot differ meaningfully. */
    if (strcmp(a->type, STORE_INDEX_FLAT) == 0)
        return 1;
    return a->hnsw_m == b->hnsw_m && a->ef_construction == b->ef_construction && a->ef_search == b->ef_search;
}

/* Inserts a collection (with if_missing, an existing one is no error).
 * The lock is held. */
/* The id of collection name: RG_OK with *id, or RG_ERR_NOT_FOUND. */
static rg_status collection_id_of(rg_store *s, const char *name, int64_t *id, rg_err *e)
{
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, "SELECT id FROM collections WHERE name = ?1", &st, e);
    if (r)
        return r;
    int rc = SQLITE_OK;
    store_db_bind_text(st, 1, name, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (id)
            *id = sqlite3_column_int64(st, 0);
    } else if (rc == SQLITE_DONE) {
        r = RG_ERR_NOT_FOUND;
    } else {
        r = store_db_fail(s, rc, e, "reading a collection id");
    }
    sqlite3_finalize(st);
    return r;
}

static rg_status insert_collection(rg_store *s, const char *name, const char *metadata_json,
                                   const rg_index_settings *index, int if_missing, int64_t *id, rg_err *e)
{
    /* An existing collection is looked up first: the INSERT below, even when
     * its ON CONFLICT makes it a no-op, takes an AUTOINCREMENT value, and
     * ingestion ensures its collection once per document (ids jumped by one
     * per document ingested). */
    if (if_missing) {
        rg_status found = collection_id_of(s, name, id, e);
        if (found != RG_ERR_NOT_FOUND)
            return found;
    }
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s,
                                   if_missing ? "INSERT INTO collections(name, metadata, created_ms, index_type, "
                                                "index_hnsw_m, index_ef_construction, index_ef_search) "
                                                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO NOTHING"
                                              : "INSERT INTO collections(name, metadata, created_ms, index_type, "
                                                "index_hnsw_m, index_ef_construction, index_ef_search) "
                                                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                   &st, e);
    if (r)
        return r;
    int rc = SQLITE_OK;
    store_db_bind_text(st, 1, name, &rc);
    store_db_bind_text(st, 2, metadata_json ? metadata_json : "{}", &rc);
    store_db_bind_i64(st, 3, clock_now_ms(), &rc);
    store_db_bind_text(st, 4, index->type, &rc);
    store_db_bind_i64(st, 5, index->hnsw_m, &rc);
    store_db_bind_i64(st, 6, index->ef_construction, &rc);
    store_db_bind_i64(st, 7, index->ef_search, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return rg_error(e, RG_ERR_EXISTS, "collection \"%s\" already exists", name);
    if (rc != SQLITE_DONE)
        return store_db_fail(s, rc, e, "creating a collection");

    r = collection_id_of(s, name, id, e);
    if (r == RG_ERR_NOT_FOUND)
        r = rg_error(e, RG_ERR_INTERNAL, "store: collection \"%s\" vanished after insert", name);
    return r;
}

/* Reads the index settings from columns col..col+3 of the current row. */
static void read_index_settings(sqlite3_stmt *st, int col, rg_index_settings *x)
{
    store_index_settings_default(x);
    const unsigned char *type = sqlite3_column_text(st, col);
    snprintf(x->type, sizeof x->type, "%s", type ? (const char *)type : STORE_INDEX_FLAT);
    x->hnsw_m = sqlite3_column_int(st, col + 1);
    x->ef_construction = sqlite3_column_int(st, col + 2);
    x->ef_search = sqlite3_column_int(st, col + 3);
}

/* The index settings of the named collection; RG_ERR_NOT_FOUND when there
 * is none. The lock is held. */
static rg_status settings_by_name(rg_store *s, const char *name, rg_index_settings *out, rg_err *e)
{
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s,
                                   "SELECT index_type, index_hnsw_m, index_ef_construction, index_ef_search "
                                   "FROM collections WHERE name = ?1",
                                   &st, e);
    if (r)
        return r;
    int rc = SQLITE_OK;
    store_db_bind_text(st, 1, name, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_index_settings(st, 0, out);
    else if (rc == SQLITE_DONE)
        r = rg_error(e, RG_ERR_NOT_FOUND, "no collection named \"%.200s\"", name);
    else
        r = store_db_fail(s, rc, e, "reading index settings");
    sqlite3_finalize(st);
    return r;
}

/* Creates (or with if_missing, finds) a collection in its own transaction.
 * NULL metadata_json stores "{}"; NULL index the default flat index. With
 * if_missing and explicit settings, an existing collection must already
 * have them. */
static rg_status create_collection(rg_store *s, const char *name, const char *metadata_json,
                                   const rg_index_settings *index, int if_missing, int64_t *id, rg_err *e)
{
    rg_status r = check_name(name, e);
    if (r)
        return r;
    rg_index_settings def;
    store_index_settings_default(&def);
    if (index && (r = store_index_settings_check(index, e)))
        return r;
    store_db_lock(s);
    r = store_db_check_metadata(s, metadata_json, e);
    if (!r)
        r = store_db_begin(s, e);
    if (!r) {
        r = insert_collection(s, name, metadata_json, index ? index : &def, if_missing, id, e);
        rg_index_settings have;
        if (!r && if_missing && index)
            r = settings_by_name(s, name, &have, e);
        if (!r && if_missing && index && !store_index_settings_equal(&have, index))
            r = rg_error(e, RG_ERR_EXISTS,
                         "collection \"%s\" already exists with a %s index (m %d, ef_construction %d, "
                         "ef_search %d); index settings are fixed when a collection is created",
                         name, have.type, have.hnsw_m, have.ef_construction, have.ef_search);
        r = store_db_end(s, r, e);
    }
    store_db_unlock(s);
    return r;
}

rg_status store_collection_create(rg_store *s, const char *name, const char *metadata_json, int64_t *id,
                                  rg_err *e)
{
    return create_collection(s, name, metadata_json, NULL, 0, id, e);
}

rg_status store_collection_create_indexed(rg_store *s, const char *name, const char *metadata_json,
                                          const rg_index_settings *index, int64_t *id, rg_err *e)
{
    return create_collection(s, name, metadata_json, index, 0, id, e);
}

rg_status store_collection_ensure(rg_store *s, const char *name, int64_t *id, rg_err *e)
{
    return create_collection(s, name, NULL, NULL, 1, id, e);
}

rg_status store_collection_ensure_indexed(rg_store *s, const char *name, const rg_index_settings *index,
                                          int64_t *id, rg_err *e)
{
    return create_collection(s, name, NULL, index, 1, id, e);
}

rg_status store_collection_index(rg_store *s, int64_t id, rg_index_settings *out, rg_err *e)
{
    store_index_settings_default(out);
    store_db_lock(s);
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s,
                                   "SELECT index_type, index_hnsw_m, index_ef_construction, index_ef_search "
                                   "FROM collections WHERE id = ?1",
                                   &st, e);
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_i64(st, 1, id, &rc);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            read_index_settings(st, 0, out);
        else if (rc == SQLITE_DONE)
            r = rg_error(e, RG_ERR_NOT_FOUND, "no collection with id %lld", (long long)id);
        else
            r = store_db_fail(s, rc, e, "reading index settings");
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    return r;
}

#define COLLECTION_COLUMNS                                                                         \
    "c.id, c.name, c.metadata, c.created_ms, "                                                     \
    "(SELECT count(*) FROM documents d WHERE d.collection_id = c.id), "                            \
    "(SELECT count(*) FROM chunks k JOIN documents d ON d.id = k.document_id WHERE d.collection_id = c.id), " \
    "c.index_type, c.index_hnsw_m, c.index_ef_construction, c.index_ef_search "

static rg_status read_collection(sqlite3_stmt *st, void *elem, rg_err *e)
{
    rg_collection *c = elem;
    memset(c, 0, sizeof *c);
    c->id = sqlite3_column_int64(st, 0);
    c->created_ms = sqlite3_column_int64(st, 3);
    c->n_documents = sqlite3_column_int64(st, 4);
    c->n_chunks = sqlite3_column_int64(st, 5);
    read_index_settings(st, 6, &c->index);
    rg_status r = RG_OK;
    store_db_column_text(st, 1, 1, &c->name, &r, e);
    store_db_column_json(st, 2, &c->metadata_json, &r, e);
    if (r)
        store_collection_free(c);
    return r;
}

rg_status store_collection_get(rg_store *s, const char *name, rg_collection *out, rg_err *e)
{
    memset(out, 0, sizeof *out);
    if (!name)
        return rg_error(e, RG_ERR_INVALID, "no collection name");
    store_db_lock(s);
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, "SELECT " COLLECTION_COLUMNS "FROM collections c WHERE c.name = ?1", &st, e);
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_text(st, 1, name, &rc);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            r = read_collection(st, out, e);
        else if (rc == SQLITE_DONE)
            r = rg_error(e, RG_ERR_NOT_FOUND, "no collection named \"%.200s\"", name);
        else
            r = store_db_fail(s, rc, e, "reading a collection");
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    return r;
}

rg_status store_collection_list(rg_store *s, rg_collection **out, size_t *n, rg_err *e)
{
    *out = NULL;
    *n = 0;
    store_db_lock(s);
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, "SELECT " COLLECTION_COLUMNS "FROM collections c ORDER BY c.name", &st, e);
    void *v = NULL;
    size_t len = 0;
    if (!r) {
        int rc = SQLITE_OK;
        r = store_db_read_rows(s, st, &rc, read_collection, sizeof(rg_collection), &v, &len, "listing collections", e);
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    if (r) {
        store_collections_free(v, len);
        return r;
    }
    *out = v;
    *n = len;
    return RG_OK;
}

rg_status store_collection_delete(rg_store *s, const char *name, rg_err *e)
{
    if (!name)
        return rg_error(e, RG_ERR_INVALID, "no collection name");
    store_db_lock(s);
    rg_status r = store_db_begin(s, e);
    if (!r) {
        sqlite3_stmt *st;
        /* ON DELETE CASCADE removes the documents and chunks; the chunk
         * delete trigger removes the FTS rows. */
        r = store_db_prepare(s, "DELETE FROM collections WHERE name = ?1", &st, e);
        if (!r) {
            int rc = SQLITE_OK;
            int64_t changes = 0;
            store_db_bind_text(st, 1, name, &rc);
            r = store_db_step_done(s, st, rc, &changes, "deleting a collection", e);
            if (!r && changes == 0)
                r = rg_error(e, RG_ERR_NOT_FOUND, "no collection named \"%.200s\"", name);
            sqlite3_finalize(st);
        }
        r = store_db_end(s, r, e);
    }
    store_db_unlock(s);
    return r;
}

void store_collection_free(rg_collection *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->metadata_json);
    c->name = NULL;
    c->metadata_json = NULL;
}

void store_collections_free(rg_collection *c, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++)
        store_collection_free(&c[i]);
    free(c);
}
