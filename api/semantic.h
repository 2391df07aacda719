/* semantic.h - what ties the embedding model to ingestion and retrieval in
 * one process: the embedder engine and (in the server) the collections'
 * vector indexes. Ingestion gets its embed/vectors-stored callbacks here. */
#ifndef RAGD_API_SEMANTIC_H
#define RAGD_API_SEMANTIC_H

#include "index/embedder.h"
#include "index/vindex.h"
#include "ingest/pipeline.h"

typedef struct rg_semantic {
    rg_embedder *embedder; /* NULL: no model, lexical only */
    rg_vindex *vindex;     /* NULL outside the server */
    _Atomic long long last_save_ms; /* when changed indexes were last written */
} rg_semantic;

/* The model directory `serve` and `ingest` use by default:
 * $RAGD_MODELS/all-MiniLM-L6-v2, else ./models/all-MiniLM-L6-v2. */
void semantic_default_model(char *out, size_t size);

/* Points o's embedding callbacks at sem (no-op without an embedder). */
void semantic_attach(rg_semantic *sem, rg_ingest_opts *o);

#endif
