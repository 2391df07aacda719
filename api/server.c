#define _GNU_SOURCE
#include "api/server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/completions.h"
#include "api/http.h"
#include "api/routes.h"
#include "common/fs.h"
#include "common/log.h"
#include "index/embedder.h"

void server_config_default(rg_server_config *c)
{
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8000;
    c->data_dir = "./data";
    c->device = RG_DEVICE_AUTO;
    c->rerank_max_passages = 400;
    c->max_body_bytes = (size_t)1 << 20;
    c->max_upload_bytes = (size_t)256 << 20;
    c->threads = 8;
    c->idle_timeout_s = 120;
    generator_opts_default(&c->gen);
    c->pipeline.workers = 2;
    c->pipeline.queue_capacity = 1024;
    ingest_opts_default(&c->pipeline.ingest);
}

/* ---- routing -------------------------------------------------------------- */

typedef struct rg_route {
    const char *method;
    const char *pattern; /* segments "{x}" capture one path segment */
    rg_handler handler;
    int public;          /* reachable without the API key */
} rg_route;

static const rg_route routes[] = {
    {"GET", "/v1/health/live", route_health_live, 1},
    {"GET", "/v1/health/ready", route_health_ready, 1},
    {"GET", "/v1/version", route_version, 0},
    {"GET", "/v1/metrics", route_metrics, 0},
    {"POST", "/v1/collections", route_collections_create, 0},
    {"GET", "/v1/collections", route_collections_list, 0},
    {"GET", "/v1/collections/{name}", route_collections_get, 0},
    {"DELETE", "/v1/collections/{name}", route_collections_delete, 0},
    {"POST", "/v1/documents", NULL, 0}, /* streamed: see upload_* */
    {"GET", "/v1/documents", route_documents_list, 0},
    {"GET", "/v1/documents/{id}", route_documents_get, 0},
    {"DELETE", "/v1/documents/{id}", route_documents_delete, 0},
    {"GET", "/v1/tasks", route_tasks_list, 0},
    {"GET", "/v1/tasks/{id}", route_tasks_get, 0},
    {"POST", "/v1/retrieval", route_retrieval, 0},
    {"POST", "/v1/search", route_search, 0},
    {"GET", "/v1/models", route_models, 0},
    {"POST", "/v1/embeddings", route_embeddings, 0},
    {"POST", "/v1/ranking", route_ranking, 0},
    {"POST", "/v1/rerank", route_rerank, 0},
    {"POST", "/v1/completions", route_completions, 0},
    {"POST", "/v1/chat/completions", route_chat_completions, 0},
};

/* Matches path against pattern, capturing {x} segments into params. */
static int route_match(const char *pattern, const char *path, rg_request *r)
{
    int np = 0;
    while (*pattern && *path) {
        if (*pattern == '{') {
            const char *close = strchr(pattern, '}');
            const char *slash = strchr(path, '/');
            size_t n = slash ? (size_t)(slash - path) : strlen(path);
            if (n == 0 || n >= sizeof r->params[0] || np >= HTTP_MAX_PARAMS)
                return 0;
            memcpy(r->params[np], path, n);
            r->params[np][n] = '\0';
            np++;
            pattern = close + 1;
            path += n;
        } else if (*pattern++ != *path++) {
            return 0;
        }
    }
    return *pattern == '\0' && *path == '\0';
}

/* Finds the route; *path_known is set when the path exists with another
 * method (so the answer is 405, not 404). */
static const rg_route *route_find(rg_request *r, int *path_known)
{
    *path_known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!route_match(routes[i].pattern, r->path, r))
            continue;
        /* HEAD is GET without the body (MHD drops it). */
        if (strcmp(routes[i].method, r->method) == 0 ||
            (strcmp(r->method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0))
            return &routes[i];
        *path_known = 1;
    }
    return NULL;
}

/* Constant-time comparison so the key cannot be guessed byte by byte. */
static int key_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

static int authorized(rg_request *r)
{
    const char *key = r->server->cfg.api_key;
    if (!key || !*key)
        return 1;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    return key_equal(h, key);
}

/* ---- the libmicrohttpd callbacks ------------------------------------------ */

typedef struct rg_conn {
    rg_request req;
    const rg_route *route;
    rg_upload *upload;
    int answered; /* an error was decided before the whole body was read */
    int queued;   /* the response went to MHD */
    int parked;   /* suspended until the handler's result is ready (res.park) */
    size_t discarded; /* body bytes dropped after an error */
    int64_t start_us;
} rg_conn;

static enum MHD_Result send_response(rg_conn *c)
{
    rg_request *r = &c->req;
    c->queued = 1;
    if (!r->res.status)
        http_error(r, 500, "internal_error", "the handler produced no response");
    struct MHD_Response *resp;
    if (r->res.stream_read) {
        /* a streamed body: MHD owns the context from here and calls
         * stream_free when the response is done or the client has gone */
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, r->res.stream_read, r->res.stream_ctx,
                                                 r->res.stream_free);
        if (!resp)
            r->res.stream_free(r->res.stream_ctx);
        r->res.stream_read = NULL;
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    } else {
        resp = MHD_create_response_from_buffer(r->res.body_len, r->res.body,
                                               r->res.body_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_COPY);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->res.content_type ? r->res.content_type : "application/json");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->res.retry_after[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, r->res.retry_after);
    if (r->res.status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(r->conn, r->res.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static size_t content_length(struct MHD_Connection *conn)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return v ? (size_t)strtoull(v, NULL, 10) : 0;
}

/* First call for a request: route, authorise and check declared sizes. */
static void request_begin(rg_server *srv, rg_conn *c)
{
    rg_request *r = &c->req;
    int path_known;
    c->route = route_find(r, &path_known);
    if (!c->route) {
        r->route = "other";
        c->answered = 1;
        if ((strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) && strncmp(r->path, "/v1/", 4) != 0 &&
            route_static(r)) {
            r->route = "/static";
            return;
        }
        if (path_known)
            http_error(r, 405, "method_not_allowed", "%s is not allowed on %s", r->method, r->path);
        else
            http_error(r, 404, "not_found", "no route for %s %s", r->method, r->path);
        return;
    }
    r->route = c->route->pattern;
    if (!c->route->public && !authorized(r)) {
        c->answered = 1;
        http_error(r, 401, "unauthorized", "a valid API key is required (Authorization: Bearer KEY)");
        return;
    }
    if (!c->route->handler) { /* the streamed upload */
        c->upload = upload_begin(r);
        if (!c->upload)
            c->answered = 1;
        return;
    }
    if (content_length(r->conn) > srv->cfg.max_body_bytes) {
        c->answered = 1;
        http_error(r, 413, "payload_too_large", "the request body exceeds the limit of %zu bytes",
                   srv->cfg.max_body_bytes);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    rg_server *srv = cls;
    rg_conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return MHD_NO;
        c->start_us = clock_mono_us();
        c->req.server = srv;
        c->req.conn = conn;
        c->req.method = method;
        c->req.path = url;
        rg_buf_init(&c->req.body, srv->cfg.max_body_bytes);
        *con_cls = c;
        request_begin(srv, c);
        /* A request refused before its body is read is answered at once:
         * MHD then closes the connection instead of reading a body (which
         * may be a huge upload) that nobody wants. */
        return c->answered ? send_response(c) : MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (c->answered) {
            /* MHD cannot queue a response while the body is being read, so
             * an error found mid-body is sent once it has been drained; a
             * client that keeps sending far past the limit is cut off. */
            c->discarded += n;
            return c->queued || c->discarded <= srv->cfg.max_upload_bytes ? MHD_YES : MHD_NO;
        }
        if (c->upload) {
            if (!upload_feed(c->upload, upload_data, n))
                c->answered = 1;
            return MHD_YES;
        }
        rg_err e;
        if (rg_buf_append(&c->req.body, upload_data, n, &e) != RG_OK) {
            c->answered = 1;
            http_error(&c->req, 413, "payload_too_large", "the request body exceeds the limit of %zu bytes",
                       srv->cfg.max_body_bytes);
        }
        return MHD_YES;
    }
    /* The whole body has arrived: run the handler and answer. */
    if (c->parked) { /* resumed: what the handler waited for is there */
        c->parked = 0;
        c->req.res.unpark(&c->req);
        return send_response(c);
    }
    if (c->answered)
        return c->queued ? MHD_YES : send_response(c);
    {
        if (c->upload)
            upload_finish(c->upload);
        else
            c->route->handler(&c->req);
    }
    if (c->req.res.park) {
        /* the handler waits for a result: free this thread meanwhile */
        c->parked = 1;
        MHD_suspend_connection(conn);
        c->req.res.park(&c->req);
        return MHD_YES;
    }
    return send_response(c);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    rg_server *srv = cls;
    rg_conn *c = *con_cls;
    if (!c)
        return;
    double seconds = (double)(clock_mono_us() - c->start_us) / 1e6;
    metrics_observe(&srv->metrics, c->req.route ? c->req.route : "other", c->req.res.status, seconds);
    if (c->upload)
        upload_free(c->upload);
    if (c->req.res.park_free)
        c->req.res.park_free(c->req.res.park_ctx);
    if (!c->req.res.body_static)
        free(c->req.res.body);
    rg_buf_free(&c->req.body);
    free(c);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    LOG_WARN("http: %s", line);
}

/* Loads (or rebuilds) every collection's vector index and catches it up
 * with the store, so the first query does not pay for it. */
static rg_status vectors_catch_up(rg_server *srv, rg_err *e)
{
    rg_collection *cs = NULL;
    size_t n = 0;
    rg_status st = store_collection_list(srv->store, &cs, &n, e);
    for (size_t i = 0; i < n && !st; i++)
        st = vindex_sync(srv->semantic.vindex, cs[i].id, e);
    store_collections_free(cs, n);
    return st;
}

/* Removes spooled uploads that no unfinished task refers to: what a crash
 * left mid-upload (never acknowledged) or after a task's outcome. */
static rg_status uploads_sweep(rg_server *srv, rg_err *e)
{
    rg_task *tasks = NULL;
    size_t n = 0;
    rg_status st = store_task_list_unfinished(srv->store, &tasks, &n, e);
    if (st)
        return st;
    DIR *d = opendir(srv->uploads_dir);
    size_t removed = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 8 || strcmp(de->d_name + len - 7, ".upload") != 0)
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", srv->uploads_dir, de->d_name);
        /* Spool names are random and unique, so the name identifies it. */
        int wanted = 0;
        for (size_t i = 0; i < n && !wanted; i++)
            wanted = tasks[i].spooled && strcmp(fs_basename(tasks[i].source_path), de->d_name) == 0;
        if (!wanted && unlink(path) == 0)
            removed++;
    }
    if (d)
        closedir(d);
    store_tasks_free(tasks, n);
    if (removed)
        LOG_INFO("removed %zu orphaned upload file(s)", removed);
    return RG_OK;
}

rg_status server_start(rg_server *srv, const rg_server_config *cfg, rg_err *e)
{
    memset(srv, 0, sizeof *srv);
    srv->lock_fd = -1;
    srv->cfg = *cfg;
    metrics_init(&srv->metrics);
    pthread_mutex_init(&srv->admission, NULL);

    rg_status st = fs_mkdirs(cfg->data_dir, e);
    if (st)
        return st;
    if (snprintf(srv->uploads_dir, sizeof srv->uploads_dir, "%s/uploads", cfg->data_dir) >=
        (int)sizeof srv->uploads_dir)
        return rg_error(e, RG_ERR_INVALID, "data directory path too long");
    if ((st = fs_mkdirs(srv->uploads_dir, e)))
        return st;
    /* Tasks record absolute spool paths, so a restart from another working
     * directory still finds them. */
    char *abs = realpath(srv->uploads_dir, NULL);
    if (abs) {
        snprintf(srv->uploads_dir, sizeof srv->uploads_dir, "%s", abs);
        free(abs);
    }
    /* One server per data directory: a second would requeue the first's
     * running tasks and ingest them twice. The lock dies with the process. */
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/serve.lock", cfg->data_dir);
    srv->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (srv->lock_fd < 0 || flock(srv->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return rg_error(e, RG_ERR_BUSY, "another 'ragd serve' is using the data directory %s", cfg->data_dir);
    char db[4200];
    snprintf(db, sizeof db, "%s/ragd.db", cfg->data_dir);
    if ((st = store_open(db, &srv->store, e)))
        return st;
    srv->started_ms = clock_now_ms();
    if (cfg->embed_model) {
        rg_embedder_opts eo;
        embedder_opts_default(&eo);
        eo.device = cfg->device;
        if ((st = embedder_start(cfg->embed_model, &eo, &srv->semantic.embedder, e)))
            return rg_error_wrap(e, "embedding model %s", cfg->embed_model);
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/indexes", cfg->data_dir);
        if ((st = vindex_open(srv->store, dir, embedder_model_id(srv->semantic.embedder), (int)embedder_dim(srv->semantic.embedder),
                              &srv->semantic.vindex, e)))
            return st;
        if ((st = vectors_catch_up(srv, e)))
            return st;
        /* Chunks without vectors for this model are embedded in the
         * background, so startup does not wait for them. */
        if ((st = semantic_backlog_start(&srv->semantic, srv->store, e)))
            return st;
    }
    if (cfg->rerank_model) {
        rg_reranker_opts ro;
        reranker_opts_default(&ro);
        ro.device = cfg->device;
        ro.precision = cfg->rerank_precision;
        if ((st = reranker_start(cfg->rerank_model, &ro, &srv->semantic.reranker, e)))
            return rg_error_wrap(e, "reranking model %s", cfg->rerank_model);
    }
    if (cfg->gen_model && (st = generator_start(cfg->gen_model, &cfg->gen, &srv->generator, e)))
        return rg_error_wrap(e, "generation model %s", cfg->gen_model);
    if (srv->generator && (st = completion_waiter_start(&srv->gen_waiter, e)))
        return st;
    if ((st = uploads_sweep(srv, e)))
        return st;
    rg_pipeline_opts po = cfg->pipeline;
    semantic_attach(&srv->semantic, &po.ingest);
    if ((st = pipeline_start(srv->store, &po, &srv->pipeline, e)))
        return st;

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1)
        return rg_error(e, RG_ERR_INVALID, "--host must be an IPv4 address, not '%s'", cfg->host);

    srv->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)cfg->port, NULL, NULL,
        on_request, srv,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)512, MHD_OPTION_END);
    if (!srv->daemon)
        return rg_error(e, RG_ERR_IO, "cannot listen on %s:%u (in use, or not permitted)", cfg->host, cfg->port);
    srv->ready = 1;
    return RG_OK;
}

void server_stop(rg_server *srv)
{
    srv->ready = 0;
    /* libmicrohttpd must not be stopped with suspended connections */
    completion_waiter_stop(srv->gen_waiter);
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    pipeline_stop(srv->pipeline);
    srv->pipeline = NULL;
    semantic_backlog_stop(&srv->semantic);
    vindex_close(srv->semantic.vindex);
    srv->semantic.vindex = NULL;
    embedder_stop(srv->semantic.embedder);
    srv->semantic.embedder = NULL;
    reranker_stop(srv->semantic.reranker);
    srv->semantic.reranker = NULL;
    generator_stop(srv->generator);
    srv->generator = NULL;
    completion_waiter_free(srv->gen_waiter);
    srv->gen_waiter = NULL;
    store_close(srv->store);
    srv->store = NULL;
    metrics_destroy(&srv->metrics);
    pthread_mutex_destroy(&srv->admission);
    if (srv->lock_fd >= 0)
        close(srv->lock_fd);
    srv->lock_fd = -1;
}
