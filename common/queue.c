#include "common/queue.h"

#include <stdlib.h>

rg_status queue_init(rg_queue *q, size_t capacity, rg_err *e)
{
    if (capacity == 0)
        return rg_error(e, RG_ERR_INVALID, "queue capacity must be positive");
    q->items = calloc(capacity, sizeof *q->items);
    if (!q->items)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a queue of %zu", capacity);
    q->cap = capacity;
    q->head = q->count = 0;
    q->closed = 0;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    return RG_OK;
}

void queue_destroy(rg_queue *q)
{
    free(q->items);
    q->items = NULL;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->nonempty);
}

rg_status queue_push(rg_queue *q, void *item, rg_err *e)
{
    rg_status s = RG_OK;
    pthread_mutex_lock(&q->mu);
    if (q->closed)
        s = rg_error(e, RG_ERR_INVALID, "queue is shut down");
    else if (q->count == q->cap)
        s = rg_error(e, RG_ERR_BUSY, "queue is full (%zu items)", q->cap);
    else {
        q->items[(q->head + q->count) % q->cap] = item;
        q->count++;
        pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->mu);
    return s;
}

void *queue_pop(rg_queue *q)
{
    void *item = NULL;
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->nonempty, &q->mu);
    if (q->count) {
        item = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    pthread_mutex_unlock(&q->mu);
    return item;
}

void queue_close(rg_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
}

size_t queue_length(rg_queue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}
