/* backlog.c - the embedding backlog worker (see backlog.h). */
#include "index/backlog.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fs.h"
#include "common/log.h"
#include "store/vectors.h"

/* Chunks per embedder call: small enough that a query queued behind the
 * bulk request waits for little, large enough to batch well. */
#define BACKLOG_BATCH 32
/* How often an idle worker looks for chunks written by other processes. */
#define BACKLOG_POLL_MS 3000
/* Back-off after the embedder said it is busy, or after a store error. */
#define BACKLOG_BUSY_MS 200
#define BACKLOG_ERROR_MS 5000
/* Index files are caches; written at most this often while working. */
#define BACKLOG_SAVE_MS 10000

struct rg_backlog {
    rg_store *store;
    rg_embedder *embedder;
    rg_vindex *vindex;
    const char *model;
    int dim;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop, woken;
    rg_backlog_stats stats; /* guarded by mu */
};

/* Sleeps up to ms or until woken/stopped. Returns nonzero when stopping. */
static int backlog_wait(rg_backlog *b, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&b->mu);
    while (!b->stop && !b->woken)
        if (pthread_cond_timedwait(&b->cond, &b->mu, &ts) == ETIMEDOUT)
            break;
    b->woken = 0;
    int stop = b->stop;
    pthread_mutex_unlock(&b->mu);
    return stop;
}

static int stopping(rg_backlog *b)
{
    pthread_mutex_lock(&b->mu);
    int stop = b->stop;
    pthread_mutex_unlock(&b->mu);
    return stop;
}

static void count(rg_backlog *b, int64_t embedded, int64_t skipped, int busy)
{
    pthread_mutex_lock(&b->mu);
    b->stats.embedded += embedded;
    b->stats.skipped += skipped;
    b->stats.busy = busy;
    pthread_mutex_unlock(&b->mu);
}

/* Stores the batch's vectors. A chunk deleted since it was read fails the
 * whole put; then they are stored one by one and the deleted ones marked
 * (id 0) so they are not indexed. */
static rg_status store_batch(rg_backlog *b, rg_backlog_chunk *c, size_t n, int64_t *ids, const float *vecs,
                             rg_err *e)
{
    rg_status st = store_vectors_put(b->store, b->model, b->dim, n, ids, vecs, e);
    if (st != RG_ERR_NOT_FOUND)
        return st;
    for (size_t i = 0; i < n; i++) {
        st = store_vectors_put(b->store, b->model, b->dim, 1, &ids[i], vecs + i * (size_t)b->dim, e);
        if (st == RG_ERR_NOT_FOUND) {
            ids[i] = 0;
            c[i].collection_id = 0;
        } else if (st) {
            return st;
        }
    }
    return RG_OK;
}

/* Adds the stored vectors to their collections' indexes, one call per
 * collection present in the batch. */
static rg_status index_batch(rg_backlog *b, const rg_backlog_chunk *c, size_t n, const int64_t *ids,
                             const float *vecs, int64_t *sub_ids, float *sub_vecs, rg_err *e)
{
    rg_status st = RG_OK;
    for (size_t i = 0; i < n && !st; i++) {
        int64_t cid = c[i].collection_id;
        if (cid == 0)
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = c[j].collection_id == cid;
        if (seen)
            continue;
        size_t m = 0;
        for (size_t j = i; j < n; j++)
            if (c[j].collection_id == cid) {
                sub_ids[m] = ids[j];
                memcpy(sub_vecs + m * (size_t)b->dim, vecs + j * (size_t)b->dim, (size_t)b->dim * sizeof(float));
                m++;
            }
        st = vindex_add(b->vindex, cid, m, sub_ids, sub_vecs, e);
        /* The collection was deleted meanwhile: its vectors went with it. */
        if (st == RG_ERR_NOT_FOUND)
            st = RG_OK;
    }
    return st;
}

static void *backlog_main(void *arg)
{
    rg_backlog *b = arg;
    size_t dim = (size_t)b->dim;
    float *vecs = malloc(BACKLOG_BATCH * dim * sizeof *vecs);
    float *sub_vecs = malloc(BACKLOG_BATCH * dim * sizeof *sub_vecs);
    int64_t ids[BACKLOG_BATCH], sub_ids[BACKLOG_BATCH];
    const char *texts[BACKLOG_BATCH];
    if (!vecs || !sub_vecs) {
        LOG_ERROR("embedding backlog: out of memory; chunks without vectors stay lexical-only");
        free(vecs);
        free(sub_vecs);
        return NULL;
    }
    int64_t cursor = 0, last_save = clock_now_ms(), unsaved = 0;
    while (!stopping(b)) {
        rg_backlog_chunk *c = NULL;
        size_t n = 0;
        int64_t next = cursor;
        rg_err e;
        rg_status st = store_vector_backlog(b->store, b->model, cursor, BACKLOG_BATCH, &c, &n, &next, &e);
        if (st) {
            LOG_WARN("embedding backlog: %s", e.msg);
            if (backlog_wait(b, BACKLOG_ERROR_MS))
                break;
            continue;
        }
        if (n == 0) {
            cursor = next;
            count(b, 0, 0, 0);
            if (unsaved) {
                if (vindex_save_dirty(b->vindex, &e))
                    LOG_WARN("embedding backlog: saving indexes: %s", e.msg);
                LOG_INFO("embedding backlog: %lld chunk(s) embedded", (long long)unsaved);
                unsaved = 0;
                last_save = clock_now_ms();
            }
            if (backlog_wait(b, BACKLOG_POLL_MS))
                break;
            continue;
        }
        count(b, 0, 0, 1);
        for (size_t i = 0; i < n; i++) {
            texts[i] = c[i].text;
            ids[i] = c[i].id;
        }
        st = embedder_embed(b->embedder, texts, NULL, n, RG_TRUNC_END, 0, vecs, NULL, &e);
        if (st == RG_ERR_BUSY) {
            /* The bulk queue is full (a large ingestion): try again soon,
             * from the same place. */
            store_backlog_free(c, n);
            if (backlog_wait(b, BACKLOG_BUSY_MS))
                break;
            continue;
        }
        if (st) {
            LOG_WARN("embedding backlog: chunks %lld..%lld: %s (left lexical-only until a restart)",
                     (long long)c[0].id, (long long)c[n - 1].id, e.msg);
            count(b, 0, (int64_t)n, 1);
            cursor = next;
            store_backlog_free(c, n);
            continue;
        }
        st = store_batch(b, c, n, ids, vecs, &e);
        if (!st)
            st = index_batch(b, c, n, ids, vecs, sub_ids, sub_vecs, &e);
        store_backlog_free(c, n);
        if (st) {
            /* Vectors already stored are found again by the index's
             * load-time count check; the rest are retried. */
            LOG_WARN("embedding backlog: %s", e.msg);
            if (backlog_wait(b, BACKLOG_ERROR_MS))
                break;
            continue;
        }
        cursor = next;
        count(b, (int64_t)n, 0, 1);
        unsaved += (int64_t)n;
        if (clock_now_ms() - last_save >= BACKLOG_SAVE_MS) {
            if (vindex_save_dirty(b->vindex, &e))
                LOG_WARN("embedding backlog: saving indexes: %s", e.msg);
            last_save = clock_now_ms();
        }
    }
    free(vecs);
    free(sub_vecs);
    return NULL;
}

rg_status backlog_start(rg_store *s, rg_embedder *em, rg_vindex *v, rg_backlog **out, rg_err *e)
{
    *out = NULL;
    rg_backlog *b = calloc(1, sizeof *b);
    if (!b)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    b->store = s;
    b->embedder = em;
    b->vindex = v;
    b->model = embedder_model_id(em);
    b->dim = (int)embedder_dim(em);
    b->stats.busy = 1; /* until the first scan has looked */
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cond, NULL);
    if (pthread_create(&b->thread, NULL, backlog_main, b) != 0) {
        pthread_cond_destroy(&b->cond);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return rg_error(e, RG_ERR_INTERNAL, "cannot start the embedding backlog thread");
    }
    *out = b;
    return RG_OK;
}

void backlog_wake(rg_backlog *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->woken = 1;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

void backlog_stats(rg_backlog *b, rg_backlog_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    *out = b->stats;
    pthread_mutex_unlock(&b->mu);
}

void backlog_stop(rg_backlog *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
