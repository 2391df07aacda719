/* store.c - opening and closing a store: the connection, its PRAGMAs and
 * the schema migration. */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>

static rg_status set_pragmas(rg_store *s, const char *path, rg_err *e)
{
    /* The busy timeout first: the statements below may meet a lock held by
     * another process (the CLI) working on the same file. */
    int rc = sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        return store_db_fail(s, rc, e, "busy_timeout");

    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, "PRAGMA journal_mode = WAL", &st, e);
    if (r)
        return r;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        /* In-memory databases answer "memory"; a file must be in WAL. */
        if (mode && strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
            r = rg_error(e, RG_ERR_IO, "store: %s: could not switch to WAL mode (journal mode is %s)", path, mode);
    } else {
        r = store_db_fail(s, rc, e, "journal_mode");
    }
    sqlite3_finalize(st);
    if (r)
        return r;
    r = store_db_exec(s,
                      "PRAGMA foreign_keys = ON;"
                      /* FULL: a commit is on disk when it returns, so a
                       * task acknowledged with 202 survives a power loss. */
                      "PRAGMA synchronous = FULL;",
                      e);
    if (r)
        return r;
    int64_t fk;
    r = store_db_query_i64(s, "PRAGMA foreign_keys", &fk, e);
    if (!r && fk != 1)
        r = rg_error(e, RG_ERR_INTERNAL, "store: this SQLite cannot enforce foreign keys");
    return r;
}

rg_status store_open(const char *path, rg_store **out, rg_err *e)
{
    *out = NULL;
    if (!path || !*path)
        return rg_error(e, RG_ERR_INVALID, "store: no database path");
    rg_store *s = calloc(1, sizeof *s);
    if (!s)
        return rg_error(e, RG_ERR_NOMEM, "store: out of memory");
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return rg_error(e, RG_ERR_INTERNAL, "store: could not create a mutex");
    }
    /* NOMUTEX: the handle's own mutex serializes every use of db. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    rg_status st = RG_OK;
    if (rc != SQLITE_OK) {
        st = store_db_fail(s, rc, e, "open");
        rg_error_wrap(e, "%s", path);
    } else {
        sqlite3_extended_result_codes(s->db, 1);
        st = set_pragmas(s, path, e);
        if (!st)
            st = store_schema_migrate(s, path, e);
    }
    if (st) {
        sqlite3_close(s->db);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return st;
    }
    *out = s;
    return RG_OK;
}

void store_close(rg_store *s)
{
    if (!s)
        return;
    store_db_lock(s);
    /* Keeps the planner's statistics fresh; cheap when nothing changed. */
    sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
    sqlite3_close(s->db);
    s->db = NULL;
    store_db_unlock(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int store_schema_version(rg_store *s)
{
    if (!s)
        return -1;
    store_db_lock(s);
    int64_t v = -1;
    if (store_db_query_i64(s, "PRAGMA user_version", &v, NULL) != RG_OK)
        v = -1;
    store_db_unlock(s);
    return (int)v;
}
