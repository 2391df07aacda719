/* queue.h - a bounded, blocking FIFO of pointers shared between threads.
 *
 * Producers never block: a full queue is reported (RG_ERR_BUSY) so callers
 * can answer "overloaded" instead of growing without bound. Consumers block
 * until an item arrives or the queue is closed. */
#ifndef RAGD_COMMON_QUEUE_H
#define RAGD_COMMON_QUEUE_H

#include <pthread.h>
#include <stddef.h>

#include "common/err.h"

typedef struct rg_queue {
    pthread_mutex_t mu;
    pthread_cond_t nonempty;
    void **items;
    size_t cap, head, count;
    int closed;
} rg_queue;

rg_status queue_init(rg_queue *q, size_t capacity, rg_err *e);
void queue_destroy(rg_queue *q);
/* RG_ERR_BUSY when full, RG_ERR_INVALID when closed. */
rg_status queue_push(rg_queue *q, void *item, rg_err *e);
/* Blocks; returns NULL once the queue is closed and drained. */
void *queue_pop(rg_queue *q);
/* Wakes all consumers; later pushes fail, queued items can still be popped. */
void queue_close(rg_queue *q);
size_t queue_length(rg_queue *q);

#endif
