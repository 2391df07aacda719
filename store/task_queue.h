/* task_queue.h - the task table used as the durable ingestion queue. */
#ifndef RAGD_STORE_TASK_QUEUE_H
#define RAGD_STORE_TASK_QUEUE_H

#include "store/store.h"

/* Atomically moves the oldest QUEUED task to RUNNING and returns it in out
 * (*found = 1), or sets *found = 0 when none is queued. */
rg_status store_task_claim_next(rg_store *s, rg_task *out, int *found, rg_err *e);
/* Puts every RUNNING task back to QUEUED (after a crash or restart);
 * *n (may be NULL) receives how many. */
rg_status store_task_requeue_running(rg_store *s, int64_t *n, rg_err *e);
/* Number of tasks in a state. */
rg_status store_task_count(rg_store *s, rg_task_state state, int64_t *n, rg_err *e);

#endif
