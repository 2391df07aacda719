/* pipeline.h - the ingestion pipeline: bytes on disk -> sniff -> load ->
 * chunk -> one store transaction; and the worker pool that runs it for
 * queued tasks.
 *
 * The task table in SQLite is the queue: a task is durable from the moment
 * it is created, workers claim the oldest queued task, and a restart puts
 * tasks that were running back in the queue. So an acknowledged upload is
 * never lost, and a crash mid-ingest leaves no half-written document
 * (store_document_put is one transaction). The queue is bounded: submitters
 * check pipeline_can_accept() and answer "overloaded" instead of growing. */
#ifndef RAGD_INGEST_PIPELINE_H
#define RAGD_INGEST_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/chunker.h"
#include "ingest/doctext.h"
#include "store/store.h"

/* Embeds n chunk texts into out (n * dim floats). */
typedef rg_status (*rg_embed_fn)(void *ctx, const char *const *texts, const size_t *lens, size_t n, float *out,
                                 rg_err *e);
/* Called after a document's vectors were committed to the store. */
typedef rg_status (*rg_vectors_stored_fn)(void *ctx, int64_t collection_id, rg_err *e);

typedef struct rg_ingest_opts {
    size_t max_file_bytes; /* larger files are refused (document fails) */
    rg_load_limits limits;
    rg_chunk_opts chunk;
    /* Optional embedding: when embed is set, every chunk is embedded before
     * the document is written and its vector is stored with it (same
     * transaction); vectors_stored then brings the index up to date. */
    rg_embed_fn embed;
    void *embed_ctx;
    const char *embed_model;
    int embed_dim;
    rg_vectors_stored_fn vectors_stored;
} rg_ingest_opts;

/* Sensible defaults: 256 MiB files, 64 MiB of text, 256-token chunks with
 * 32 tokens of overlap, counted by token_count_approx. */
void ingest_opts_default(rg_ingest_opts *o);

typedef struct rg_ingest_result {
    int64_t document_id;
    rg_put_outcome outcome;
    size_t n_chunks;
    int failed;        /* 1 = the document could not be loaded (recorded as failed) */
    char error[512];   /* why, when failed */
} rg_ingest_result;

/* Ingests one file synchronously. A document-level problem (unsupported
 * type, no text, too large) is not an error of this function: it returns
 * RG_OK with res->failed = 1 and the document recorded as failed. A non-OK
 * return means the store itself failed. */
rg_status ingest_file(rg_store *s, const rg_ingest_opts *o, const char *collection, const char *name,
                      const char *path, const char *source, const char *metadata_json, rg_ingest_result *res,
                      rg_err *e);

/* The same for a queued task: the task's outcome is written in the same
 * transaction as the document. */
rg_status ingest_task_file(rg_store *s, const rg_ingest_opts *o, const rg_task *t, rg_ingest_result *res,
                           rg_err *e);

typedef struct rg_pipeline rg_pipeline;

typedef struct rg_pipeline_opts {
    size_t workers;        /* worker threads */
    size_t queue_capacity; /* most tasks allowed to wait in the queue */
    rg_ingest_opts ingest;
} rg_pipeline_opts;

/* Requeues tasks left running by a previous process and starts workers. */
rg_status pipeline_start(rg_store *s, const rg_pipeline_opts *o, rg_pipeline **out, rg_err *e);
/* Stops claiming tasks, waits for the running ones, joins the workers.
 * Queued tasks stay queued in the store for the next start. */
void pipeline_stop(rg_pipeline *p);
/* RG_OK when n more tasks fit in the queue, else RG_ERR_BUSY. */
rg_status pipeline_can_accept(rg_pipeline *p, size_t n, rg_err *e);
/* Wakes a worker after tasks were created. */
void pipeline_notify(rg_pipeline *p);
/* Number of tasks waiting (queued in the store). */
size_t pipeline_queue_length(rg_pipeline *p);

#endif
