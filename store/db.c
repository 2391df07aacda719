/* db.c - the SQLite plumbing shared by the store files: locking, error
 * mapping, transactions, binding, running statements, collecting rows and
 * column copies. */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>

void store_db_lock(rg_store *s)
{
    pthread_mutex_lock(&s->mu);
}

void store_db_unlock(rg_store *s)
{
    pthread_mutex_unlock(&s->mu);
}

static rg_status status_for(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return RG_ERR_BUSY;
    case SQLITE_NOMEM:
        return RG_ERR_NOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
        return RG_ERR_CORRUPT;
    case SQLITE_TOOBIG:
        return RG_ERR_TOO_LARGE;
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            return RG_ERR_EXISTS;
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
            return RG_ERR_NOT_FOUND;
        return RG_ERR_INVALID;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return RG_ERR_INTERNAL;
    default:
        return RG_ERR_IO;
    }
}

rg_status store_db_fail(rg_store *s, int rc, rg_err *e, const char *what)
{
    const char *msg = s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    /* After a bind failure errmsg may still describe an older success. */
    if (!msg || !strcmp(msg, "not an error"))
        msg = sqlite3_errstr(rc);
    return rg_error(e, status_for(rc), "store: %s: %s", what, msg);
}

rg_status store_db_prepare(rg_store *s, const char *sql, sqlite3_stmt **st, rg_err *e)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        *st = NULL;
        return store_db_fail(s, rc, e, "prepare");
    }
    return RG_OK;
}

rg_status store_db_exec(rg_store *s, const char *sql, rg_err *e)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(s, rc, e, "exec");
    return RG_OK;
}

rg_status store_db_begin(rg_store *s, rg_err *e)
{
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(s, rc, e, "begin transaction");
    return RG_OK;
}

rg_status store_db_commit(rg_store *s, rg_err *e)
{
    int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rg_status st = store_db_fail(s, rc, e, "commit");
        store_db_rollback(s);
        return st;
    }
    return RG_OK;
}

void store_db_rollback(rg_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

rg_status store_db_end(rg_store *s, rg_status r, rg_err *e)
{
    if (r) {
        store_db_rollback(s);
        return r;
    }
    return store_db_commit(s, e);
}

void store_db_bind_i64(sqlite3_stmt *st, int idx, int64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_int64(st, idx, (sqlite3_int64)v);
}

void store_db_bind_text(sqlite3_stmt *st, int idx, const char *text, int *rc)
{
    store_db_bind_textn(st, idx, text, text ? strlen(text) : 0, rc);
}

void store_db_bind_textn(sqlite3_stmt *st, int idx, const char *text, size_t len, int *rc)
{
    if (*rc != SQLITE_OK)
        return;
    if (!text)
        *rc = sqlite3_bind_null(st, idx);
    else
        *rc = sqlite3_bind_text64(st, idx, len ? text : "", (sqlite3_uint64)len, SQLITE_STATIC, SQLITE_UTF8);
}

rg_status store_db_step_done(rg_store *s, sqlite3_stmt *st, int rc, int64_t *changes, const char *what,
                             rg_err *e)
{
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return store_db_fail(s, rc, e, what);
    if (changes)
        *changes = sqlite3_changes(s->db);
    return RG_OK;
}

rg_status store_db_run_id(rg_store *s, const char *sql, int64_t id, int64_t *changes, const char *what, rg_err *e)
{
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, sql, &st, e);
    if (r)
        return r;
    int rc = SQLITE_OK;
    store_db_bind_i64(st, 1, id, &rc);
    r = store_db_step_done(s, st, rc, changes, what, e);
    sqlite3_finalize(st);
    return r;
}

rg_status store_db_get_by_id(rg_store *s, const char *sql, int64_t id, const char *noun, store_row_reader read,
                             void *elem, const char *what, rg_err *e)
{
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, sql, &st, e);
    if (r)
        return r;
    int rc = SQLITE_OK;
    store_db_bind_i64(st, 1, id, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        r = read ? read(st, elem, e) : RG_OK;
    else if (rc == SQLITE_DONE)
        r = rg_error(e, RG_ERR_NOT_FOUND, "no %s with id %lld", noun, (long long)id);
    else
        r = store_db_fail(s, rc, e, what);
    sqlite3_finalize(st);
    return r;
}

rg_status store_db_read_rows(rg_store *s, sqlite3_stmt *st, int *rc, store_row_reader read, size_t elem_size,
                             void **v, size_t *len, const char *what, rg_err *e)
{
    size_t cap = *len;
    while (*rc == SQLITE_OK || *rc == SQLITE_ROW) {
        *rc = sqlite3_step(st);
        if (*rc != SQLITE_ROW)
            break;
        rg_status r = store_db_grow(v, &cap, *len, elem_size, e);
        if (r)
            return r;
        r = read(st, (char *)*v + *len * elem_size, e);
        (*len)++;
        if (r)
            return r;
    }
    if (*rc != SQLITE_DONE)
        return store_db_fail(s, *rc, e, what);
    return RG_OK;
}

void store_db_column_text(sqlite3_stmt *st, int col, int empty_for_null, char **out, rg_status *r, rg_err *e)
{
    if (*r)
        return;
    *out = NULL;
    const unsigned char *t = sqlite3_column_text(st, col);
    if (!t && sqlite3_column_type(st, col) != SQLITE_NULL) {
        *r = rg_error(e, RG_ERR_NOMEM, "store: out of memory reading a column");
        return;
    }
    if (!t && !empty_for_null)
        return;
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    char *p = malloc(n + 1);
    if (!p) {
        *r = rg_error(e, RG_ERR_NOMEM, "store: out of memory copying %zu bytes", n);
        return;
    }
    if (n)
        memcpy(p, t, n);
    p[n] = '\0';
    *out = p;
}

void store_db_column_json(sqlite3_stmt *st, int col, char **out, rg_status *r, rg_err *e)
{
    store_db_column_text(st, col, 0, out, r, e);
    if (!*r && !*out && !(*out = store_strdup("{}")))
        *r = rg_error(e, RG_ERR_NOMEM, "store: out of memory");
}

rg_status store_db_query_i64(rg_store *s, const char *sql, int64_t *out, rg_err *e)
{
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, sql, &st, e);
    if (r)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = (int64_t)sqlite3_column_int64(st, 0);
        r = RG_OK;
    } else if (rc == SQLITE_DONE) {
        r = rg_error(e, RG_ERR_INTERNAL, "store: query returned no row: %s", sql);
    } else {
        r = store_db_fail(s, rc, e, "query");
    }
    sqlite3_finalize(st);
    return r;
}

rg_status store_db_check_metadata(rg_store *s, const char *metadata_json, rg_err *e)
{
    if (!metadata_json)
        return RG_OK;
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'object' ELSE 0 END", &st, e);
    if (r)
        return r;
    int rc = SQLITE_OK;
    store_db_bind_text(st, 1, metadata_json, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        r = sqlite3_column_int(st, 0) ? RG_OK : rg_error(e, RG_ERR_INVALID, "metadata must be a JSON object");
    else
        r = store_db_fail(s, rc, e, "checking metadata");
    sqlite3_finalize(st);
    return r;
}

rg_status store_db_grow(void **v, size_t *cap, size_t len, size_t elem, rg_err *e)
{
    if (len < *cap)
        return RG_OK;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *nv = realloc(*v, ncap * elem);
    if (!nv)
        return rg_error(e, RG_ERR_NOMEM, "store: out of memory growing a result list");
    *v = nv;
    *cap = ncap;
    return RG_OK;
}

char *store_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}
