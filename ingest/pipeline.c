#include "ingest/pipeline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/utf8.h"
#include "ingest/loader.h"
#include "store/task_queue.h"

void ingest_opts_default(rg_ingest_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_file_bytes = (size_t)256 << 20;
    o->limits.max_text_bytes = (size_t)64 << 20;
    o->limits.max_blocks = 1000000;
    o->limits.max_depth = 256;
    o->chunk.target_tokens = 256;
    o->chunk.overlap_tokens = 32;
    o->chunk.count = token_count_approx;
    o->chunk.count_ctx = NULL;
}

/* Loads and chunks bytes; fills doc_err with a document-level reason. */
static rg_status load_and_chunk(const rg_ingest_opts *o, const char *name, const rg_buf *bytes, const char **mime,
                                rg_doctext *doc, rg_chunk_span **chunks, size_t *n_chunks, rg_err *doc_err)
{
    *mime = loader_sniff(name, bytes->data, bytes->len, doc_err);
    if (!*mime)
        return doc_err->status ? doc_err->status : RG_ERR_UNSUPPORTED;
    rg_status st = loader_load(*mime, bytes->data, bytes->len, doc, doc_err);
    if (st)
        return st;
    return chunker_split(doc, &o->chunk, chunks, n_chunks, doc_err);
}

static rg_status embed_chunks(const rg_ingest_opts *o, const rg_doctext *doc, const rg_chunk_span *spans,
                              size_t n, float **out, rg_err *e)
{
    const char **texts = malloc(n * sizeof *texts);
    size_t *lens = malloc(n * sizeof *lens);
    float *vectors = malloc(n * (size_t)o->embed_dim * sizeof *vectors);
    rg_status st = texts && lens && vectors ? RG_OK : rg_error(e, RG_ERR_NOMEM, "out of memory for %zu vectors", n);
    for (size_t i = 0; i < n && !st; i++) {
        texts[i] = doc->text.data + spans[i].start;
        lens[i] = spans[i].end - spans[i].start;
    }
    if (!st)
        st = o->embed(o->embed_ctx, texts, lens, n, vectors, e);
    free(texts);
    free(lens);
    if (st) {
        free(vectors);
        return st;
    }
    *out = vectors;
    return RG_OK;
}

static rg_status ingest_one(rg_store *s, const rg_ingest_opts *o, const char *collection, const char *name,
                            const char *path, const char *source, const char *metadata_json, int64_t task_id,
                            rg_ingest_result *res, rg_err *e)
{
    memset(res, 0, sizeof *res);
    int64_t coll_id;
    rg_status st = store_collection_ensure(s, collection, &coll_id, e);
    if (st)
        return st;

    rg_buf bytes;
    rg_buf_init(&bytes, 0);
    rg_doctext doc;
    doctext_init(&doc, &o->limits);
    rg_chunk_span *spans = NULL;
    size_t n_spans = 0;
    rg_chunk_in *rows = NULL;
    float *vectors = NULL;
    const char *mime = NULL;
    char sha[65] = "";
    rg_err doc_err;
    rg_err_clear(&doc_err);

    /* An unreadable or vanished source is a document-level failure. */
    rg_status dst = fs_read_file(path, o->max_file_bytes, &bytes, &doc_err);
    if (!dst) {
        sha256_hex(bytes.data, bytes.len, sha);
        dst = load_and_chunk(o, name, &bytes, &mime, &doc, &spans, &n_spans, &doc_err);
    }

    rg_document_in in = {
        .collection_id = coll_id,
        .name = name,
        .source = source,
        .mime = mime ? mime : "application/octet-stream",
        .byte_size = (int64_t)bytes.len,
        .sha256 = sha,
        .metadata_json = metadata_json,
        .title = doc.title,
        .text = doc.text.data ? doc.text.data : "",
        .text_len = doc.text.len,
        .task_id = task_id,
    };

    if (dst) {
        res->failed = 1;
        snprintf(res->error, sizeof res->error, "%s", doc_err.msg[0] ? doc_err.msg : rg_status_name(dst));
        st = store_document_put_failed(s, &in, res->error, &res->document_id, e);
        goto done;
    }

    rows = calloc(n_spans ? n_spans : 1, sizeof *rows);
    if (!rows) {
        st = rg_error(e, RG_ERR_NOMEM, "out of memory for %zu chunks", n_spans);
        goto done;
    }
    /* Unchanged bytes need no embedding: the put will be a no-op. */
    if (o->embed && n_spans && !store_document_has_sha(s, coll_id, sha)) {
        st = embed_chunks(o, &doc, spans, n_spans, &vectors, e);
        if (st)
            goto done;
        in.vector_model = o->embed_model;
        in.vector_dim = o->embed_dim;
    }
    for (size_t i = 0; i < n_spans; i++) {
        rows[i].text = doc.text.data + spans[i].start;
        rows[i].text_len = spans[i].end - spans[i].start;
        rows[i].char_start = (int64_t)spans[i].char_start;
        rows[i].char_end = (int64_t)spans[i].char_end;
        rows[i].heading_path = spans[i].heading_path;
        rows[i].page = spans[i].page;
        rows[i].token_count = (int)spans[i].token_count;
        rows[i].vector = vectors ? vectors + i * (size_t)o->embed_dim : NULL;
    }
    st = store_document_put(s, &in, rows, n_spans, &res->document_id, &res->outcome, e);
    if (!st)
        res->n_chunks = n_spans;
    if (!st && vectors && res->outcome != STORE_PUT_UNCHANGED && o->vectors_stored)
        st = o->vectors_stored(o->embed_ctx, coll_id, e);

done:
    free(vectors);
    free(rows);
    chunker_free(spans, n_spans);
    doctext_free(&doc);
    rg_buf_free(&bytes);
    return st;
}

rg_status ingest_file(rg_store *s, const rg_ingest_opts *o, const char *collection, const char *name,
                      const char *path, const char *source, const char *metadata_json, rg_ingest_result *res,
                      rg_err *e)
{
    return ingest_one(s, o, collection, name, path, source, metadata_json, 0, res, e);
}

rg_status ingest_task_file(rg_store *s, const rg_ingest_opts *o, const rg_task *t, rg_ingest_result *res,
                           rg_err *e)
{
    return ingest_one(s, o, t->collection, t->name, t->source_path, t->spooled ? "upload" : t->source_path,
                      t->metadata_json, t->id, res, e);
}

/* ---- worker pool ---------------------------------------------------------- */

struct rg_pipeline {
    rg_store *store;
    rg_pipeline_opts opts;
    pthread_t *threads;
    size_t n_threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int stopping;
    unsigned pending_wakeups;
};

static void run_task(rg_pipeline *p, rg_task *t)
{
    rg_err e;
    rg_err_clear(&e);
    rg_ingest_result res;
    if (ingest_task_file(p->store, &p->opts.ingest, t, &res, &e) != RG_OK) {
        /* The store failed; keep the spooled bytes so nothing is lost. */
        LOG_ERROR("task %lld (%s): %s", (long long)t->id, t->name, e.msg);
        store_task_update(p->store, t->id, TASK_FAILED, 0, 1, 0, NULL, e.msg, &e);
        return;
    }
    if (res.failed)
        LOG_WARN("task %lld (%s) failed: %s", (long long)t->id, t->name, res.error);
    else
        LOG_INFO("task %lld: %s %s (%zu chunks)", (long long)t->id, t->name, store_put_outcome_name(res.outcome),
                 res.n_chunks);
    /* The outcome is durable (written with the document); the spooled
     * copy is no longer needed. */
    if (t->spooled)
        fs_remove(t->source_path, NULL);
}

static void *worker_main(void *arg)
{
    rg_pipeline *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        pthread_mutex_unlock(&p->mu);

        rg_task t;
        int found = 0;
        rg_err e;
        if (store_task_claim_next(p->store, &t, &found, &e) != RG_OK) {
            LOG_ERROR("claiming a task: %s", e.msg);
            found = 0;
        }
        if (found) {
            run_task(p, &t);
            store_task_free(&t);
            continue;
        }
        /* Nothing queued: sleep until notified, or poll again in a second
         * (another process, such as the CLI, may share the store). */
        pthread_mutex_lock(&p->mu);
        if (!p->stopping && p->pending_wakeups == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&p->wake, &p->mu, &ts);
        }
        if (p->pending_wakeups)
            p->pending_wakeups--;
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

rg_status pipeline_start(rg_store *s, const rg_pipeline_opts *o, rg_pipeline **out, rg_err *e)
{
    if (o->workers == 0 || o->workers > 64)
        return rg_error(e, RG_ERR_INVALID, "workers must be 1..64, not %zu", o->workers);
    if (o->queue_capacity == 0)
        return rg_error(e, RG_ERR_INVALID, "queue capacity must be positive");
    int64_t requeued = 0;
    rg_status st = store_task_requeue_running(s, &requeued, e);
    if (st)
        return st;
    if (requeued)
        LOG_INFO("requeued %lld interrupted ingestion task(s)", (long long)requeued);
    rg_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    p->threads = calloc(o->workers, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    }
    p->store = s;
    p->opts = *o;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (size_t i = 0; i < o->workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            pipeline_stop(p);
            return rg_error(e, RG_ERR_INTERNAL, "cannot start ingestion worker %zu", i);
        }
        p->n_threads++;
    }
    *out = p;
    return RG_OK;
}

void pipeline_stop(rg_pipeline *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}

size_t pipeline_queue_length(rg_pipeline *p)
{
    int64_t n = 0;
    if (store_task_count(p->store, TASK_QUEUED, &n, NULL) != RG_OK)
        return 0;
    return (size_t)n;
}

rg_status pipeline_can_accept(rg_pipeline *p, size_t n, rg_err *e)
{
    int64_t queued = 0;
    rg_status st = store_task_count(p->store, TASK_QUEUED, &queued, e);
    if (st)
        return st;
    if ((size_t)queued + n > p->opts.queue_capacity)
        return rg_error(e, RG_ERR_BUSY, "the ingestion queue is full (%lld waiting, capacity %zu); retry later",
                        (long long)queued, p->opts.queue_capacity);
    return RG_OK;
}

void pipeline_notify(rg_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->pending_wakeups = (unsigned)p->n_threads;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
}
