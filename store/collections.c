/* collections.c - named groups of documents. */
#include "store/store_internal.h"

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

/* Inserts a collection; *inserted says whether it was new (with
 * if_missing, an existing one is no error). The lock is held. */
static rg_status insert_collection(rg_store *s, const char *name, const char *metadata_json, int if_missing,
                                   int64_t *id, rg_err *e)
{
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s,
                                   if_missing ? "INSERT INTO collections(name, metadata, created_ms) VALUES (?1, ?2, ?3) "
                                                "ON CONFLICT(name) DO NOTHING"
                                              : "INSERT INTO collections(name, metadata, created_ms) VALUES (?1, ?2, ?3)",
                                   &st, e);
    if (r)
        return r;
    int rc = SQLITE_OK;
    store_db_bind_text(st, 1, name, &rc);
    store_db_bind_text(st, 2, metadata_json ? metadata_json : "{}", &rc);
    store_db_bind_i64(st, 3, clock_now_ms(), &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return rg_error(e, RG_ERR_EXISTS, "collection \"%s\" already exists", name);
    if (rc != SQLITE_DONE)
        return store_db_fail(s, rc, e, "creating a collection");

    r = store_db_prepare(s, "SELECT id FROM collections WHERE name = ?1", &st, e);
    if (r)
        return r;
    rc = SQLITE_OK;
    store_db_bind_text(st, 1, name, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (id)
            *id = sqlite3_column_int64(st, 0);
        r = RG_OK;
    } else if (rc == SQLITE_DONE) {
        r = rg_error(e, RG_ERR_INTERNAL, "store: collection \"%s\" vanished after insert", name);
    } else {
        r = store_db_fail(s, rc, e, "reading a collection id");
    }
    sqlite3_finalize(st);
    return r;
}

/* Creates (or with if_missing, finds) a collection in its own transaction.
 * NULL metadata_json stores "{}". */
static rg_status create_collection(rg_store *s, const char *name, const char *metadata_json, int if_missing,
                                   int64_t *id, rg_err *e)
{
    rg_status r = check_name(name, e);
    if (r)
        return r;
    store_db_lock(s);
    r = store_db_check_metadata(s, metadata_json, e);
    if (!r)
        r = store_db_begin(s, e);
    if (!r)
        r = store_db_end(s, insert_collection(s, name, metadata_json, if_missing, id, e), e);
    store_db_unlock(s);
    return r;
}

rg_status store_collection_create(rg_store *s, const char *name, const char *metadata_json, int64_t *id,
                                  rg_err *e)
{
    return create_collection(s, name, metadata_json, 0, id, e);
}

rg_status store_collection_ensure(rg_store *s, const char *name, int64_t *id, rg_err *e)
{
    return create_collection(s, name, NULL, 1, id, e);
}

#define COLLECTION_COLUMNS                                                                         \
    "c.id, c.name, c.metadata, c.created_ms, "                                                     \
    "(SELECT count(*) FROM documents d WHERE d.collection_id = c.id), "                            \
    "(SELECT count(*) FROM chunks k JOIN documents d ON d.id = k.document_id WHERE d.collection_id = c.id) "

static rg_status read_collection(sqlite3_stmt *st, void *elem, rg_err *e)
{
    rg_collection *c = elem;
    memset(c, 0, sizeof *c);
    c->id = sqlite3_column_int64(st, 0);
    c->created_ms = sqlite3_column_int64(st, 3);
    c->n_documents = sqlite3_column_int64(st, 4);
    c->n_chunks = sqlite3_column_int64(st, 5);
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
