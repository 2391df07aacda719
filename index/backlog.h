/* backlog.h - the embedding backlog worker: embeds, in the background,
 * the chunks that have no vector for the loaded model (documents ingested
 * while no model was configured, or with another model), stores the
 * vectors and adds them to their collections' indexes.
 *
 * One thread per server. It submits its texts to the embedder's bulk
 * queue, which always yields to interactive work (queries, /v1/embeddings),
 * so it never delays startup, and a query waits at most for the batch
 * being computed. It scans the chunk table with a cursor (chunk ids only
 * grow), looking again when woken and every few seconds otherwise, so
 * chunks written by another process (`ragd ingest --embed-model none`) are
 * picked up too. Progress is visible per collection as its vector count
 * against its chunk count. */
#ifndef RAGD_INDEX_BACKLOG_H
#define RAGD_INDEX_BACKLOG_H

#include <stdint.h>

#include "common/err.h"
#include "index/embedder.h"
#include "index/vindex.h"
#include "store/store.h"

typedef struct rg_backlog rg_backlog;

typedef struct rg_backlog_stats {
    int64_t embedded; /* chunks embedded and indexed since start */
    int64_t skipped;  /* chunks whose embedding failed (retried after a restart) */
    int busy;         /* 1 while chunks are known to be waiting */
} rg_backlog_stats;

/* Starts the worker; it begins with a scan from the first chunk. */
rg_status backlog_start(rg_store *s, rg_embedder *em, rg_vindex *v, rg_backlog **out, rg_err *e);
/* Asks for a scan now (after an ingestion, say). */
void backlog_wake(rg_backlog *b);
void backlog_stats(rg_backlog *b, rg_backlog_stats *out);
/* Finishes the batch in hand, then stops and frees the worker. */
void backlog_stop(rg_backlog *b);

#endif
