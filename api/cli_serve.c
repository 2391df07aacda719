/* ragd serve */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/cli.h"
#include "api/semantic.h"
#include "api/server.h"
#include "common/fs.h"
#include "common/log.h"

static const char serve_help[] =
    "usage: ragd serve [options]\n\n"
    "Runs the HTTP API (http://HOST:PORT/v1/...) and the web UI (http://HOST:PORT/).\n\n"
    "  --host H            address to bind (default 127.0.0.1)\n"
    "  --port P            port (default 8000)\n"
    "  --data DIR          data directory (default $RAGD_DATA or ./data)\n"
    "  --api-key KEY       require 'Authorization: Bearer KEY' (default $RAGD_API_KEY)\n"
    "  --embed-model M     embedding model: a directory or BERT GGUF file, or 'none' (default\n"
    "                      $RAGD_MODELS/all-MiniLM-L6-v2 or ./models/all-MiniLM-L6-v2 when installed)\n"
    "  --rerank-model M    reranker: a cross-encoder (Hugging Face BertForSequenceClassification\n"
    "                      directory, or BERT GGUF file with its head), a chat model (GGUF file or\n"
    "                      Hugging Face *ForCausalLM directory) scored by its yes/no logits,\n"
    "                      'gen' (the --gen-model file), or 'none' (default: the default\n"
    "                      generator GGUF, SmolLM2-135M-Instruct, when installed)\n"
    "  --rerank-max-passages N  passages per ranking request (default 400)\n"
    "  --rerank-precision P  a chat-model reranker's CPU arithmetic: f32 (default;\n"
    "                      transformers' scores, weights stay quantized in memory) or\n"
    "                      q8 (8-bit activations, f16 cache: llama.cpp's arithmetic)\n"
    "  --gen-model PATH    generation model: a GGUF file or Hugging Face directory, or\n"
    "                      'none' (default $RAGD_MODELS/SmolLM2-135M-Instruct/\n"
    "                      SmolLM2-135M-Instruct.Q4_1.gguf or under ./models when installed)\n"
    "  --chat-template T   chatml, llama3, llama2 or mistral, for a model whose own\n"
    "                      template ragd does not recognise (default: the model's)\n"
    "  --kv-cache-mb N     KV-cache memory of all generation sequences (default 2048)\n"
    "  --gen-max-seqs N    sequences generated together (default 16)\n"
    "  --gen-queue N       generation requests waiting before 503 (default 64)\n"
    "  --gen-prefill-tokens N  prompt tokens prefilled per generation step (default\n"
    "                      512): longer prompts are prefilled over several steps\n"
    "                      while the running sequences keep decoding\n"
    "  --default-max-tokens N  max_tokens of a generation request that sets none\n"
    "                      (default 2048, at most the context left after the prompt)\n"
    "  --device D          where models run: cpu, cuda or auto (default $RAGD_DEVICE,\n"
    "                      else auto: cuda when a GPU is usable, else cpu)\n"
    "  --max-upload-mb N   largest upload request in MiB (default 256)\n"
    "  --max-body-kb N     largest JSON request body in KiB (default 1024)\n"
    "  --workers N         ingestion worker threads (default 2)\n"
    "  --queue N           most ingestion tasks waiting before uploads get 503 (default 1024)\n"
    "  --threads N         HTTP threads (default 8)\n"
    "  --idle-timeout S    close a connection that sends or receives nothing for S\n"
    "                      seconds (default 120; a quiet stream sends keep-alives)\n"
    "  --chunk-tokens N    target chunk size in tokens (default 256)\n"
    "  --chunk-overlap N   overlap between chunks in tokens (default 32)\n"
    "  --verbose           log debug messages\n";

int cli_serve(int argc, char **argv)
{
    rg_cli_opt opts[] = {
        {"--host", NULL, 1, NULL, 0},        {"--port", "-p", 1, NULL, 0},       {"--data", NULL, 1, NULL, 0},
        {"--api-key", NULL, 1, NULL, 0},     {"--embed-model", NULL, 1, NULL, 0},     {"--max-upload-mb", NULL, 1, NULL, 0},
        {"--max-body-kb", NULL, 1, NULL, 0}, {"--workers", NULL, 1, NULL, 0},    {"--queue", NULL, 1, NULL, 0},
        {"--threads", NULL, 1, NULL, 0},     {"--chunk-tokens", NULL, 1, NULL, 0},
        {"--chunk-overlap", NULL, 1, NULL, 0}, {"--verbose", "-v", 0, NULL, 0},
        {"--rerank-model", NULL, 1, NULL, 0}, {"--rerank-max-passages", NULL, 1, NULL, 0},
        {"--rerank-precision", NULL, 1, NULL, 0},
        {"--device", NULL, 1, NULL, 0},
        {"--gen-model", NULL, 1, NULL, 0}, {"--chat-template", NULL, 1, NULL, 0},
        {"--kv-cache-mb", NULL, 1, NULL, 0}, {"--gen-max-seqs", NULL, 1, NULL, 0},
        {"--gen-queue", NULL, 1, NULL, 0}, {"--gen-prefill-tokens", NULL, 1, NULL, 0},
        {"--default-max-tokens", NULL, 1, NULL, 0}, {"--idle-timeout", NULL, 1, NULL, 0},
    };
    size_t n = sizeof opts / sizeof opts[0], npos;
    const char *pos[1];
    int parsed = cli_parse(argc, argv, 2, opts, n, pos, 0, &npos, serve_help);
    if (parsed)
        return parsed < 0 ? 2 : 0;
    rg_server_config cfg;
    server_config_default(&cfg);
    const rg_cli_opt *o;
    if ((o = cli_opt(opts, n, "--host")))
        cfg.host = o->value;
    cfg.data_dir = cli_data_dir(opts, n);
    cfg.api_key = getenv("RAGD_API_KEY");
    if ((o = cli_opt(opts, n, "--api-key")))
        cfg.api_key = o->value;
    char default_model[4096];
    semantic_default_model(default_model, sizeof default_model);
    if ((o = cli_opt(opts, n, "--embed-model")))
        cfg.embed_model = strcmp(o->value, "none") == 0 ? NULL : o->value;
    else if (fs_is_dir(default_model))
        cfg.embed_model = default_model;
    else
        LOG_WARN("no embedding model at %s (run `make models`); /v1/embeddings is off", default_model);
    if (cli_device(opts, n, &cfg.device))
        return 2;
    char gen_model[4096];
    if (cli_gen_model(opts, n, gen_model, sizeof gen_model, 1, &cfg.gen_model) || cli_gen_opts(opts, n, &cfg.gen))
        return 2;
    /* The reranker loads its own copy of a decoder (the generator's is
     * driven by the generator's worker alone); a mapped GGUF file's pages
     * are shared anyway. */
    char rerank_model[4096];
    if ((o = cli_opt(opts, n, "--rerank-model"))) {
        if (strcmp(o->value, "none") == 0) {
            cfg.rerank_model = NULL;
        } else if (strcmp(o->value, "gen") == 0) {
            if (!cfg.gen_model) {
                fprintf(stderr, "ragd: --rerank-model gen: there is no generation model (see --gen-model)\n");
                return 2;
            }
            cfg.rerank_model = cfg.gen_model;
        } else {
            cfg.rerank_model = o->value;
        }
    } else {
        cli_default_gen_model(rerank_model, sizeof rerank_model);
        if (fs_is_file(rerank_model))
            cfg.rerank_model = rerank_model;
        else
            LOG_WARN("no reranking model at %s (run `make models`); /v1/ranking and /v1/rerank are off", rerank_model);
    }
    if ((o = cli_opt(opts, n, "--rerank-precision"))) {
        int p = lm_precision_parse(o->value);
        if (p < 0) {
            fprintf(stderr, "ragd: --rerank-precision is f32 or q8, not '%s'\n", o->value);
            return 2;
        }
        cfg.rerank_precision = (rg_lm_precision)p;
    }
    size_t port = cfg.port, upload_mb = cfg.max_upload_bytes >> 20, body_kb = cfg.max_body_bytes >> 10;
    size_t chunk = cfg.pipeline.ingest.chunk.target_tokens, overlap = cfg.pipeline.ingest.chunk.overlap_tokens;
    if (cli_size(cli_opt(opts, n, "--port"), 1, 65535, &port) ||
        cli_size(cli_opt(opts, n, "--max-upload-mb"), 1, 1 << 20, &upload_mb) ||
        cli_size(cli_opt(opts, n, "--max-body-kb"), 1, 1 << 20, &body_kb) ||
        cli_size(cli_opt(opts, n, "--workers"), 1, 64, &cfg.pipeline.workers) ||
        cli_size(cli_opt(opts, n, "--queue"), 1, 1000000, &cfg.pipeline.queue_capacity) ||
        cli_size(cli_opt(opts, n, "--threads"), 1, 256, &cfg.threads) ||
        cli_size(cli_opt(opts, n, "--idle-timeout"), 1, 86400, &cfg.idle_timeout_s) ||
        cli_size(cli_opt(opts, n, "--rerank-max-passages"), 1, 100000, &cfg.rerank_max_passages) ||
        cli_size(cli_opt(opts, n, "--chunk-tokens"), 16, 8192, &chunk) ||
        cli_size(cli_opt(opts, n, "--chunk-overlap"), 0, 4096, &overlap))
        return 2;
    if (overlap * 2 >= chunk) {
        fprintf(stderr, "ragd: --chunk-overlap must be less than half of --chunk-tokens\n");
        return 2;
    }
    cfg.port = (unsigned)port;
    cfg.max_upload_bytes = upload_mb << 20;
    /* A file the server accepted must not then be too large to ingest. */
    if (cfg.pipeline.ingest.max_file_bytes < cfg.max_upload_bytes)
        cfg.pipeline.ingest.max_file_bytes = cfg.max_upload_bytes;
    cfg.max_body_bytes = body_kb << 10;
    cfg.pipeline.ingest.chunk.target_tokens = chunk;
    cfg.pipeline.ingest.chunk.overlap_tokens = overlap;
    if (cli_opt(opts, n, "--verbose"))
        rg_log_set_level(RG_LOG_DEBUG);

    /* Block the stop signals in every thread; main waits for them below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    rg_server srv;
    rg_err e;
    if (server_start(&srv, &cfg, &e) != RG_OK) {
        fprintf(stderr, "ragd: %s\n", e.msg);
        server_stop(&srv);
        return 1;
    }
    LOG_INFO("ragd %s serving http://%s:%u/ (data %s%s)", RAGD_VERSION, cfg.host, cfg.port, cfg.data_dir,
             cfg.api_key && *cfg.api_key ? ", API key required" : "");
    int sig = 0;
    sigwait(&stop, &sig);
    LOG_INFO("signal %d: shutting down", sig);
    server_stop(&srv);
    return 0;
}
