/* semantic.h - what ties the embedding model to ingestion and retrieval in
 * one process: the embedder engine and (in the server) the collections'
 * vector indexes. Ingestion gets its embed/vectors-stored callbacks here. */
#ifndef RAGD_API_SEMANTIC_H
#define RAGD_API_SEMANTIC_H

#include "index/backlog.h"
#include "index/embedder.h"
#include "index/vindex.h"
#include "ingest/pipeline.h"
#include "rerank/reranker.h"

typedef struct rg_semantic {
    rg_embedder *embedder; /* NULL: no model, lexical only */
    rg_vindex *vindex;     /* NULL outside the server */
    rg_reranker *reranker; /* NULL: no reranking model (server only) */
    rg_backlog *backlog;   /* the server's embedding backlog worker, or NULL */
    _Atomic long long last_save_ms; /* when changed indexes were last written */
} rg_semantic;

/* The model directory `serve` and `ingest` use by default:
 * $RAGD_MODELS/all-MiniLM-L6-v2, else ./models/all-MiniLM-L6-v2. */
void semantic_default_model(char *out, size_t size);

/* Starts the embedding backlog worker (server only; a no-op without an
 * embedder and vector indexes). */
rg_status semantic_backlog_start(rg_semantic *sem, rg_store *s, rg_err *e);
/* Stops it; call before closing the indexes and the embedder. */
void semantic_backlog_stop(rg_semantic *sem);

/* Parses a command-line index spec: "flat", or "hnsw" optionally followed
 * by ",m=N", ",ef_construction=N", ",ef_search=N"; checks the bounds. */
rg_status semantic_index_parse(const char *spec, rg_index_settings *out, rg_err *e);

/* Points o's embedding callbacks at sem (no-op without an embedder). */
void semantic_attach(rg_semantic *sem, rg_ingest_opts *o);

#endif
