/* task_queue.c - the tasks table as the durable ingestion queue. */
#include "store/task_queue.h"

#include <stdio.h>
#include <string.h>

#include "store/store_internal.h"

rg_status store_task_claim_next(rg_store *s, rg_task *out, int *found, rg_err *e)
{
    *found = 0;
    int64_t id = 0;
    store_db_lock(s);
    rg_status r = store_db_begin(s, e);
    if (!r)
        r = store_db_query_i64(s, "SELECT COALESCE((SELECT id FROM tasks WHERE state = 'queued' ORDER BY id LIMIT 1), 0)",
                               &id, e);
    if (!r && id > 0) {
        sqlite3_stmt *st = NULL;
        r = store_db_prepare(s, "UPDATE tasks SET state = 'running', updated_ms = ?1 WHERE id = ?2", &st, e);
        if (!r) {
            int rc = SQLITE_OK;
            store_db_bind_i64(st, 1, clock_now_ms(), &rc);
            store_db_bind_i64(st, 2, id, &rc);
            r = store_db_step_done(s, st, rc, NULL, "claiming a task", e);
            sqlite3_finalize(st);
        }
    }
    r = store_db_end(s, r, e);
    store_db_unlock(s);
    if (r || id == 0)
        return r;
    r = store_task_get(s, id, out, e);
    if (!r)
        *found = 1;
    return r;
}

rg_status store_task_requeue_running(rg_store *s, int64_t *n, rg_err *e)
{
    store_db_lock(s);
    rg_status r = store_db_exec(s, "UPDATE tasks SET state = 'queued' WHERE state = 'running'", e);
    if (!r && n)
        *n = sqlite3_changes(s->db);
    store_db_unlock(s);
    return r;
}

rg_status store_task_count(rg_store *s, rg_task_state state, int64_t *n, rg_err *e)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM tasks WHERE state = '%s'", store_task_state_name(state));
    store_db_lock(s);
    rg_status r = store_db_query_i64(s, sql, n, e);
    store_db_unlock(s);
    return r;
}
