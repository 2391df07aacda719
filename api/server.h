/* server.h - the HTTP server: configuration, the shared state handlers use,
 * and its lifecycle. */
#ifndef RAGD_API_SERVER_H
#define RAGD_API_SERVER_H

#include <pthread.h>
#include <stddef.h>

#include "api/metrics.h"
#include "api/semantic.h"
#include "common/err.h"
#include "generate/engine.h"
#include "ingest/pipeline.h"
#include "model/lm_reranker.h"
#include "store/store.h"

typedef struct rg_server_config {
    const char *host;
    unsigned port;
    const char *data_dir;
    const char *api_key;   /* NULL or "" = no authentication */
    const char *embed_model; /* model directory, NULL = no embedding model */
    const char *rerank_model; /* cross-encoder directory or causal-LM GGUF/directory, NULL = none */
    const char *gen_model;    /* generator GGUF file or directory, NULL = no generator */
    rg_gen_opts gen;          /* the generator engine's limits (--kv-cache-mb, ...) */
    size_t rerank_max_passages; /* passages per /v1/ranking or /v1/rerank request */
    rg_lm_precision rerank_precision; /* a causal-LM reranker's CPU arithmetic (--rerank-precision) */
    rg_device device;        /* where the models run (--device) */
    size_t max_body_bytes; /* JSON request bodies */
    size_t max_upload_bytes; /* one multipart upload request, all files together */
    size_t threads;        /* HTTP worker threads */
    size_t idle_timeout_s; /* a connection silent this long is closed (--idle-timeout) */
    rg_pipeline_opts pipeline;
} rg_server_config;

void server_config_default(rg_server_config *c);

typedef struct rg_server {
    rg_server_config cfg;
    rg_store *store;
    rg_pipeline *pipeline;
    rg_semantic semantic;         /* embedder + vector indexes for ingestion and retrieval */
    rg_generator *generator;      /* NULL: no generation model */
    struct rg_completion_waiter *gen_waiter; /* parked non-streaming generation requests */
    int64_t started_ms;
    rg_metrics metrics;
    char uploads_dir[4096];
    /* Serialises "is there room in the queue" with creating the tasks, so
     * concurrent uploads cannot overfill it. */
    pthread_mutex_t admission;
    struct MHD_Daemon *daemon;
    int ready;
    int lock_fd; /* flock on <data>/serve.lock */
} rg_server;

/* Opens the store, starts the ingestion workers and the HTTP daemon. */
rg_status server_start(rg_server *srv, const rg_server_config *cfg, rg_err *e);
void server_stop(rg_server *srv);

#endif
