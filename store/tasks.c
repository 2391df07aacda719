/* tasks.c - durable ingestion tasks, so queued work survives a restart. */
#include "store/store_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[TASK_STATE_COUNT] = {"queued", "running", "done", "failed"};

const char *store_task_state_name(rg_task_state st)
{
    if ((int)st < 0 || (int)st >= TASK_STATE_COUNT)
        return "unknown";
    return state_names[st];
}

static int state_from_name(const char *name)
{
    for (int i = 0; name && i < TASK_STATE_COUNT; i++)
        if (!strcmp(name, state_names[i]))
            return i;
    return -1;
}

rg_status store_task_create(rg_store *s, const rg_task_in *t, int64_t *id, rg_err *e)
{
    if (!t)
        return rg_error(e, RG_ERR_INVALID, "no task");
    if (!store_collection_name_valid(t->collection))
        return rg_error(e, RG_ERR_INVALID, "task has an invalid collection name \"%.80s\"",
                        t->collection ? t->collection : "");
    if (!t->name || !*t->name)
        return rg_error(e, RG_ERR_INVALID, "task has no document name");
    if (!t->source_path || !*t->source_path)
        return rg_error(e, RG_ERR_INVALID, "task has no source path");
    store_db_lock(s);
    rg_status r = store_db_check_metadata(s, t->metadata_json, e);
    sqlite3_stmt *st = NULL;
    if (!r)
        r = store_db_prepare(s,
                             "INSERT INTO tasks(state, collection, name, source_path, spooled, metadata, "
                             "created_ms, updated_ms) VALUES ('queued', ?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                             &st, e);
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_text(st, 1, t->collection, &rc);
        store_db_bind_text(st, 2, t->name, &rc);
        store_db_bind_text(st, 3, t->source_path, &rc);
        store_db_bind_i64(st, 4, t->spooled ? 1 : 0, &rc);
        store_db_bind_text(st, 5, t->metadata_json ? t->metadata_json : "{}", &rc);
        store_db_bind_i64(st, 6, clock_now_ms(), &rc);
        r = store_db_step_done(s, st, rc, NULL, "creating a task", e);
        if (!r && id)
            *id = sqlite3_last_insert_rowid(s->db);
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    return r;
}

#define TASK_SELECT                                                                                   \
    "SELECT id, state, collection, name, source_path, spooled, metadata, document_id, outcome, "      \
    "progress_done, progress_total, error, created_ms, updated_ms FROM tasks "

static rg_status read_task(sqlite3_stmt *st, void *elem, rg_err *e)
{
    rg_task *t = elem;
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    int state = state_from_name((const char *)sqlite3_column_text(st, 1));
    if (state < 0)
        return rg_error(e, RG_ERR_CORRUPT, "store: task %lld has an unknown state", (long long)t->id);
    t->state = (rg_task_state)state;
    t->spooled = sqlite3_column_int(st, 5) != 0;
    t->document_id = sqlite3_column_int64(st, 7);
    t->progress_done = sqlite3_column_int64(st, 9);
    t->progress_total = sqlite3_column_int64(st, 10);
    t->created_ms = sqlite3_column_int64(st, 12);
    t->updated_ms = sqlite3_column_int64(st, 13);
    rg_status r = RG_OK;
    store_db_column_text(st, 2, 1, &t->collection, &r, e);
    store_db_column_text(st, 3, 1, &t->name, &r, e);
    store_db_column_text(st, 4, 1, &t->source_path, &r, e);
    store_db_column_json(st, 6, &t->metadata_json, &r, e);
    store_db_column_text(st, 8, 0, &t->outcome, &r, e);
    store_db_column_text(st, 11, 0, &t->error, &r, e);
    if (r)
        store_task_free(t);
    return r;
}

rg_status store_task_get(rg_store *s, int64_t id, rg_task *out, rg_err *e)
{
    memset(out, 0, sizeof *out);
    store_db_lock(s);
    rg_status r = store_db_get_by_id(s, TASK_SELECT "WHERE id = ?1", id, "task", read_task, out, "reading a task", e);
    store_db_unlock(s);
    return r;
}

rg_status store_task_write(rg_store *s, int64_t id, rg_task_state state, int64_t done, int64_t total,
                           int64_t document_id, const char *outcome, const char *error, rg_err *e)
{
    if ((int)state < 0 || (int)state >= TASK_STATE_COUNT)
        return rg_error(e, RG_ERR_INVALID, "invalid task state %d", (int)state);
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s,
                                   "UPDATE tasks SET state = ?2, progress_done = ?3, progress_total = ?4, "
                                   "document_id = CASE WHEN ?5 > 0 THEN ?5 ELSE document_id END, "
                                   "outcome = coalesce(?6, outcome), error = coalesce(?7, error), "
                                   "updated_ms = ?8 WHERE id = ?1",
                                   &st, e);
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_i64(st, 1, id, &rc);
        store_db_bind_text(st, 2, state_names[state], &rc);
        store_db_bind_i64(st, 3, done, &rc);
        store_db_bind_i64(st, 4, total, &rc);
        store_db_bind_i64(st, 5, document_id, &rc);
        store_db_bind_text(st, 6, outcome, &rc);
        store_db_bind_text(st, 7, error, &rc);
        store_db_bind_i64(st, 8, clock_now_ms(), &rc);
        int64_t changes = 0;
        r = store_db_step_done(s, st, rc, &changes, "updating a task", e);
        if (!r && changes == 0)
            r = rg_error(e, RG_ERR_NOT_FOUND, "no task with id %lld", (long long)id);
        sqlite3_finalize(st);
    }
    return r;
}

rg_status store_task_update(rg_store *s, int64_t id, rg_task_state state, int64_t done, int64_t total,
                            int64_t document_id, const char *outcome, const char *error, rg_err *e)
{
    store_db_lock(s);
    rg_status r = store_task_write(s, id, state, done, total, document_id, outcome, error, e);
    store_db_unlock(s);
    return r;
}

static rg_status list_tasks(rg_store *s, const char *sql, int64_t limit, int64_t offset, rg_task **out, size_t *n,
                            rg_err *e)
{
    *out = NULL;
    *n = 0;
    store_db_lock(s);
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s, sql, &st, e);
    void *v = NULL;
    size_t len = 0;
    if (!r) {
        int rc = SQLITE_OK;
        store_db_bind_i64(st, 1, limit, &rc);
        store_db_bind_i64(st, 2, offset, &rc);
        r = store_db_read_rows(s, st, &rc, read_task, sizeof(rg_task), &v, &len, "listing tasks", e);
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    if (r) {
        store_tasks_free(v, len);
        return r;
    }
    *out = v;
    *n = len;
    return RG_OK;
}

rg_status store_task_list_unfinished(rg_store *s, rg_task **out, size_t *n, rg_err *e)
{
    return list_tasks(s, TASK_SELECT "WHERE state IN ('queued', 'running') ORDER BY id LIMIT ?1 OFFSET ?2", -1, 0,
                      out, n, e);
}

rg_status store_task_list(rg_store *s, size_t limit, size_t offset, rg_task **out, size_t *n, rg_err *e)
{
    int64_t lim = limit == 0 ? -1 : limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit;
    int64_t off = offset > (size_t)INT64_MAX ? INT64_MAX : (int64_t)offset;
    return list_tasks(s, TASK_SELECT "ORDER BY id DESC LIMIT ?1 OFFSET ?2", lim, off, out, n, e);
}

void store_task_free(rg_task *t)
{
    if (!t)
        return;
    free(t->collection);
    free(t->name);
    free(t->source_path);
    free(t->metadata_json);
    free(t->outcome);
    free(t->error);
    t->collection = t->name = t->source_path = t->metadata_json = t->outcome = t->error = NULL;
}

void store_tasks_free(rg_task *t, size_t n)
{
    if (!t)
        return;
    for (size_t i = 0; i < n; i++)
        store_task_free(&t[i]);
    free(t);
}

/* ---- statistics --------------------------------------------------------- */

rg_status store_stats(rg_store *s, rg_store_stats *out, rg_err *e)
{
    memset(out, 0, sizeof *out);
    store_db_lock(s);
    sqlite3_stmt *st;
    rg_status r = store_db_prepare(s,
                                   "SELECT (SELECT count(*) FROM collections), (SELECT count(*) FROM documents), "
                                   "(SELECT count(*) FROM documents WHERE status = 'failed'), "
                                   "(SELECT count(*) FROM chunks), "
                                   "(SELECT count(*) FROM tasks WHERE state = 'queued'), "
                                   "(SELECT count(*) FROM tasks WHERE state = 'running'), "
                                   "(SELECT count(*) FROM tasks WHERE state = 'done'), "
                                   "(SELECT count(*) FROM tasks WHERE state = 'failed')",
                                   &st, e);
    if (!r) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            out->collections = sqlite3_column_int64(st, 0);
            out->documents = sqlite3_column_int64(st, 1);
            out->documents_failed = sqlite3_column_int64(st, 2);
            out->chunks = sqlite3_column_int64(st, 3);
            for (int i = 0; i < TASK_STATE_COUNT; i++)
                out->tasks[i] = sqlite3_column_int64(st, 4 + i);
        } else {
            r = store_db_fail(s, rc, e, "reading statistics");
        }
        sqlite3_finalize(st);
    }
    store_db_unlock(s);
    return r;
}
