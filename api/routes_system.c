/* Health, version, metrics and the embedded web UI. */
#include <stdio.h>
#include <string.h>

#include "api/json_out.h"
#include "api/routes.h"
#include "api/server.h"
#include "api/web_assets.h"
#include "model/backend.h"

void route_health_live(rg_request *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "live");
    http_json(r, 200, o);
}

void route_health_ready(rg_request *r)
{
    int ready = r->server->ready;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", ready ? "ready" : "starting");
    http_json(r, ready ? 200 : 503, o);
}

void route_version(rg_request *r)
{
    char cuda[256], cpu[256];
    int devices = backend_cuda_devices(cuda, sizeof cuda);
    backend_cpu_describe(cpu, sizeof cpu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", RAGD_VERSION);
    cJSON_AddNumberToObject(o, "schema_version", STORE_SCHEMA_VERSION);
    cJSON *c = cJSON_AddObjectToObject(o, "cuda");
    cJSON_AddBoolToObject(c, "compiled", backend_cuda_compiled());
    cJSON_AddNumberToObject(c, "devices", devices);
    cJSON_AddStringToObject(c, "description", cuda);
    cJSON_AddStringToObject(o, "cpu", cpu);
    /* What the loaded models actually run on (--device auto resolves here). */
    const rg_embedder *em = r->server->semantic.embedder;
    if (em) {
        cJSON *m = cJSON_AddObjectToObject(o, "embedding");
        cJSON_AddStringToObject(m, "model", embedder_model_id(em));
        cJSON_AddStringToObject(m, "device", backend_device_name(embedder_device(em)));
        cJSON_AddStringToObject(m, "device_description", embedder_device_desc(em));
    }
    const rg_reranker *rr = r->server->semantic.reranker;
    if (rr) {
        cJSON *m = cJSON_AddObjectToObject(o, "ranking");
        cJSON_AddStringToObject(m, "model", reranker_model_id(rr));
        cJSON_AddStringToObject(m, "method", reranker_method(rr));
        if (reranker_precision(rr))
            cJSON_AddStringToObject(m, "precision", reranker_precision(rr));
        cJSON_AddStringToObject(m, "device", backend_device_name(reranker_device(rr)));
        cJSON_AddStringToObject(m, "device_description", reranker_device_desc(rr));
    }
    const rg_generator *gen = r->server->generator;
    if (gen) {
        cJSON *m = cJSON_AddObjectToObject(o, "generation");
        cJSON_AddStringToObject(m, "model", generator_model_id(gen));
        cJSON_AddStringToObject(m, "device", backend_device_name(generator_device(gen)));
        cJSON_AddStringToObject(m, "device_description", generator_device_desc(gen));
    }
    http_json(r, 200, o);
}

void route_metrics(rg_request *r)
{
    rg_server *srv = r->server;
    rg_err e;
    rg_buf out;
    rg_buf_init(&out, 0);
    rg_store_stats st;
    rg_status s = store_stats(srv->store, &st, &e);
    if (!s)
        s = metrics_render(&srv->metrics, &out, &e);
    if (!s)
        s = rg_buf_printf(&out, &e,
                          "# HELP ragd_collections Collections in the store.\n# TYPE ragd_collections gauge\n"
                          "ragd_collections %lld\n"
                          "# HELP ragd_documents Documents ready for retrieval.\n# TYPE ragd_documents gauge\n"
                          "ragd_documents %lld\n"
                          "# HELP ragd_documents_failed Documents that failed to load.\n"
                          "# TYPE ragd_documents_failed gauge\nragd_documents_failed %lld\n"
                          "# HELP ragd_chunks Chunks in the store.\n# TYPE ragd_chunks gauge\nragd_chunks %lld\n"
                          "# HELP ragd_ingest_queue_length Ingestion tasks waiting.\n"
                          "# TYPE ragd_ingest_queue_length gauge\nragd_ingest_queue_length %zu\n"
                          "# HELP ragd_tasks Ingestion tasks by state.\n# TYPE ragd_tasks gauge\n",
                          (long long)st.collections, (long long)(st.documents - st.documents_failed),
                          (long long)st.documents_failed, (long long)st.chunks,
                          pipeline_queue_length(srv->pipeline));
    for (int i = 0; i < TASK_STATE_COUNT && !s; i++)
        s = rg_buf_printf(&out, &e, "ragd_tasks{state=\"%s\"} %lld\n", store_task_state_name((rg_task_state)i),
                          (long long)st.tasks[i]);
    if (!s && srv->generator) {
        rg_gen_stats gs;
        generator_stats(srv->generator, &gs);
        s = rg_buf_printf(&out, &e,
                          "# HELP ragd_generator_sequences Generation sequences decoding now.\n"
                          "# TYPE ragd_generator_sequences gauge\nragd_generator_sequences %zu\n"
                          "# HELP ragd_generator_queue_length Generation requests waiting for a slot.\n"
                          "# TYPE ragd_generator_queue_length gauge\nragd_generator_queue_length %zu\n"
                          "# HELP ragd_generator_kv_tokens KV-cache positions reserved by running sequences.\n"
                          "# TYPE ragd_generator_kv_tokens gauge\nragd_generator_kv_tokens %zu\n"
                          "# HELP ragd_generator_kv_budget_tokens KV-cache positions available in all.\n"
                          "# TYPE ragd_generator_kv_budget_tokens gauge\nragd_generator_kv_budget_tokens %zu\n"
                          "# HELP ragd_generator_finished_total Sequences that ran to their end.\n"
                          "# TYPE ragd_generator_finished_total counter\nragd_generator_finished_total %llu\n"
                          "# HELP ragd_generator_cancelled_total Sequences cancelled (client gone).\n"
                          "# TYPE ragd_generator_cancelled_total counter\nragd_generator_cancelled_total %llu\n"
                          "# HELP ragd_generator_tokens_total Tokens generated.\n"
                          "# TYPE ragd_generator_tokens_total counter\nragd_generator_tokens_total %llu\n"
                          "# HELP ragd_generator_steps_total Batched decode steps.\n"
                          "# TYPE ragd_generator_steps_total counter\nragd_generator_steps_total %llu\n",
                          gs.running, gs.queued, gs.kv_used_tokens, gs.kv_budget_tokens,
                          (unsigned long long)gs.finished, (unsigned long long)gs.cancelled,
                          (unsigned long long)gs.tokens_generated, (unsigned long long)gs.steps);
    }
    if (s) {
        rg_buf_free(&out);
        http_fail(r, &e);
        return;
    }
    r->res.status = 200;
    r->res.body_len = out.len;
    r->res.body = rg_buf_take(&out);
    r->res.content_type = "text/plain; version=0.0.4; charset=utf-8";
}

int route_static(rg_request *r)
{
    const char *path = strcmp(r->path, "/") == 0 ? "/index.html" : r->path;
    for (size_t i = 0; i < web_assets_count; i++) {
        if (strcmp(web_assets[i].path, path) == 0) {
            r->res.status = 200;
            r->res.body = (char *)web_assets[i].data;
            r->res.body_len = web_assets[i].size;
            r->res.body_static = 1;
            r->res.content_type = web_assets[i].mime;
            return 1;
        }
    }
    return 0;
}
