/* store_internal.h - what the store/ files share and nobody else uses:
 * the handle's layout and small SQLite helpers.
 *
 * Locking rule: every public store_* function takes s->mu first thing and
 * releases it on every return path; the helpers here assume it is held. */
#ifndef RAGD_STORE_STORE_INTERNAL_H
#define RAGD_STORE_STORE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "common/err.h"
#include "common/fs.h" /* clock_now_ms */
#include "store/store.h"

struct rg_store {
    sqlite3 *db;
    pthread_mutex_t mu;
};

/* PRAGMA application_id of a ragd database: "ragd" in ASCII. */
#define STORE_APPLICATION_ID 0x72616764

/* How long a write waits for another connection (the CLI) to finish. */
#define STORE_BUSY_TIMEOUT_MS 5000

void store_db_lock(rg_store *s);
void store_db_unlock(rg_store *s);

/* Maps a SQLite result code onto an rg_status and records
 * "store: <what>: <sqlite message>" in *e. Returns the status. */
rg_status store_db_fail(rg_store *s, int rc, rg_err *e, const char *what);

rg_status store_db_prepare(rg_store *s, const char *sql, sqlite3_stmt **st, rg_err *e);
/* Runs SQL that returns no rows (may hold several statements). */
rg_status store_db_exec(rg_store *s, const char *sql, rg_err *e);
/* BEGIN IMMEDIATE: takes the write lock up front, waiting up to the busy
 * timeout, so a transaction never fails half-way on a lock upgrade. */
rg_status store_db_begin(rg_store *s, rg_err *e);
rg_status store_db_commit(rg_store *s, rg_err *e);
/* Rolls back if a transaction is open; never fails the caller. */
void store_db_rollback(rg_store *s);
/* Ends the transaction store_db_begin opened: commits when r is RG_OK,
 * otherwise rolls back and hands r back. Returns the outcome. */
rg_status store_db_end(rg_store *s, rg_status r, rg_err *e);

/* Binders that do nothing once *rc holds an error, so a run of binds can be
 * checked once. NULL text binds SQL NULL. */
void store_db_bind_i64(sqlite3_stmt *st, int idx, int64_t v, int *rc);
void store_db_bind_text(sqlite3_stmt *st, int idx, const char *text, int *rc);
void store_db_bind_textn(sqlite3_stmt *st, int idx, const char *text, size_t len, int *rc);

/* Statements handed to the helpers below stay the caller's: whoever
 * prepares a statement finalizes it. */

/* Steps a bound statement that returns no rows; rc is the binders' result.
 * *changes (may be NULL) receives how many rows it changed. A failed bind
 * or step is reported as store_db_fail(what). */
rg_status store_db_step_done(rg_store *s, sqlite3_stmt *st, int rc, int64_t *changes, const char *what,
                             rg_err *e);
/* Prepares sql, binds ?1 = id and runs it as store_db_step_done does. */
rg_status store_db_run_id(rg_store *s, const char *sql, int64_t id, int64_t *changes, const char *what, rg_err *e);

/* Fills one element of a result array from the current row. It must leave
 * the element freeable by the array's *_free even when it fails. */
typedef rg_status (*store_row_reader)(sqlite3_stmt *st, void *elem, rg_err *e);

/* Prepares sql, binds ?1 = id and hands the row it yields to read (NULL
 * read: only checks that there is one). No row is RG_ERR_NOT_FOUND
 * "no <noun> with id N"; a failed bind or step is store_db_fail(what). */
rg_status store_db_get_by_id(rg_store *s, const char *sql, int64_t id, const char *noun, store_row_reader read,
                             void *elem, const char *what, rg_err *e);

/* Steps a bound statement to its end, appending one elem_size element per
 * row to the growing array *v (which starts NULL, *len 0). An element whose
 * read failed is still counted, so on failure the caller releases *v and
 * *len with its *_free. *rc comes in as the binders' result and leaves as
 * the code that ended the rows (SQLITE_DONE when all were read); a failed
 * bind or step is reported as store_db_fail(what). */
rg_status store_db_read_rows(rg_store *s, sqlite3_stmt *st, int *rc, store_row_reader read, size_t elem_size,
                             void **v, size_t *len, const char *what, rg_err *e);

/* Column copies that, like the binders, do nothing once *r holds an error,
 * so a row's copies can be checked once. store_db_column_text copies a text
 * column into a fresh NUL-terminated string; SQL NULL gives *out = NULL, or
 * "" when empty_for_null. store_db_column_json copies a metadata column (a
 * JSON object as text), SQL NULL giving "{}". RG_ERR_NOMEM on allocation
 * failure. */
void store_db_column_text(sqlite3_stmt *st, int col, int empty_for_null, char **out, rg_status *r, rg_err *e);
void store_db_column_json(sqlite3_stmt *st, int col, char **out, rg_status *r, rg_err *e);

/* Runs a single-row query that yields one integer, e.g. a count. */
rg_status store_db_query_i64(rg_store *s, const char *sql, int64_t *out, rg_err *e);

/* Checks a caller-supplied metadata object ("{}" for NULL). */
rg_status store_db_check_metadata(rg_store *s, const char *metadata_json, rg_err *e);

/* Makes room in a growing result array for element len (doubling). */
rg_status store_db_grow(void **v, size_t *cap, size_t len, size_t elem, rg_err *e);

char *store_strdup(const char *s);

/* tasks.c: store_task_update without taking the lock, for use inside
 * another function's transaction. */
rg_status store_task_write(rg_store *s, int64_t id, rg_task_state state, int64_t done, int64_t total,
                           int64_t document_id, const char *outcome, const char *error, rg_err *e);

/* schema.c: brings the open connection's schema up to STORE_SCHEMA_VERSION. */
rg_status store_schema_migrate(rg_store *s, const char *path, rg_err *e);

#endif
