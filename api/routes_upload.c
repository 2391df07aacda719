/* POST /v1/documents: multipart/form-data uploads, parsed by libmicrohttpd's
 * post processor and streamed to spool files under <data>/uploads. Files
 * are fsynced and their tasks committed before the 202 goes out, so an
 * acknowledged upload survives a crash. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "api/json_out.h"
#include "api/routes.h"
#include "api/server.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/utf8.h"
#include "ingest/loader.h"

#define UPLOAD_MAX_FILES 1000
#define UPLOAD_MAX_FIELD_BYTES 65536
#define UPLOAD_SNIFF_BYTES 65536
#define UPLOAD_NAME_MAX 255

typedef struct rg_spool {
    char path[4200];
    char name[UPLOAD_NAME_MAX + 1];
    int fd;
    size_t bytes;
    unsigned long open_feed; /* upload_feed call that opened it */
    int queued; /* handed to a task: no longer ours to delete */
} rg_spool;

struct rg_upload {
    rg_request *req;
    struct MHD_PostProcessor *pp;
    rg_spool *files;
    size_t n_files, cap_files;
    size_t total_bytes;
    unsigned long feeds; /* upload_feed calls so far */
    int field_seen;      /* a non-file part came after the last file part */
    rg_buf collection, metadata, data;
    rg_err err; /* first error; status RG_OK while none */
};

static int is_file_key(const char *key)
{
    return key && (strcmp(key, "file") == 0 || strcmp(key, "documents") == 0 || strcmp(key, "files") == 0);
}

/* Keeps the last path component, drops control characters, bounds length. */
static void clean_name(const char *filename, size_t index, char out[UPLOAD_NAME_MAX + 1])
{
    const char *base = filename ? filename : "";
    for (const char *p = base; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    rg_buf b;
    rg_buf_init(&b, 0);
    utf8_sanitize(base, strlen(base), &b, NULL, NULL);
    size_t n = 0;
    for (size_t i = 0; b.data && i < b.len && n < UPLOAD_NAME_MAX; i++)
        if ((unsigned char)b.data[i] >= 0x20 && b.data[i] != 0x7f)
            out[n++] = b.data[i];
    n = utf8_truncate(out, n, UPLOAD_NAME_MAX);
    out[n] = '\0';
    rg_buf_free(&b);
    if (n == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
        snprintf(out, UPLOAD_NAME_MAX + 1, "upload-%zu", index + 1);
}

/* Makes a finished spool file durable and closes it, so that a request
 * with many files holds one descriptor at a time. */
static int spool_close(rg_upload *u, rg_spool *s)
{
    if (s->fd < 0)
        return 1;
    int bad = fsync(s->fd) != 0;
    bad |= close(s->fd) != 0;
    s->fd = -1;
    if (bad)
        return rg_error(&u->err, RG_ERR_IO, "storing the upload: %s", strerror(errno)), 0;
    return 1;
}

static rg_spool *spool_open(rg_upload *u, const char *filename)
{
    if (u->n_files && !spool_close(u, &u->files[u->n_files - 1]))
        return NULL;
    if (u->n_files == UPLOAD_MAX_FILES) {
        rg_error(&u->err, RG_ERR_TOO_LARGE, "at most %d files per request", UPLOAD_MAX_FILES);
        return NULL;
    }
    if (u->n_files == u->cap_files) {
        size_t cap = u->cap_files ? u->cap_files * 2 : 4;
        rg_spool *f = realloc(u->files, cap * sizeof *f);
        if (!f) {
            rg_error(&u->err, RG_ERR_NOMEM, "out of memory");
            return NULL;
        }
        u->files = f;
        u->cap_files = cap;
    }
    rg_spool *s = &u->files[u->n_files];
    memset(s, 0, sizeof *s);
    s->fd = -1;
    unsigned char rnd[12];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        rg_error(&u->err, RG_ERR_IO, "no randomness for a spool file name");
        return NULL;
    }
    char hex[25];
    for (int i = 0; i < 12; i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(s->path, sizeof s->path, "%s/%s.upload", u->req->server->uploads_dir, hex);
    s->fd = open(s->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        rg_error(&u->err, RG_ERR_IO, "cannot create %s: %s", s->path, strerror(errno));
        return NULL;
    }
    clean_name(filename, u->n_files, s->name);
    s->open_feed = u->feeds;
    u->n_files++;
    return s;
}

static int spool_write(rg_upload *u, rg_spool *s, const char *data, size_t size)
{
    while (size) {
        ssize_t n = write(s->fd, data, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rg_error(&u->err, RG_ERR_IO, "writing the upload: %s", strerror(errno));
            return 0;
        }
        data += n;
        size -= (size_t)n;
        s->bytes += (size_t)n;
    }
    return 1;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                               const char *content_type, const char *transfer_encoding, const char *data,
                               uint64_t off, size_t size)
{
    rg_upload *u = cls;
    if (u->err.status)
        return MHD_NO;
    u->total_bytes += size;
    if (u->total_bytes > u->req->server->cfg.max_upload_bytes) {
        rg_error(&u->err, RG_ERR_TOO_LARGE, "the upload exceeds the limit of %zu bytes",
                 u->req->server->cfg.max_upload_bytes);
        return MHD_NO;
    }
    if (is_file_key(key) || filename) {
        rg_spool *cur = u->n_files ? &u->files[u->n_files - 1] : NULL;
        /* off restarts at 0 for every part, and a part may arrive in pieces.
         * MHD reports every part at least once, with size 0 when it is empty
         * or when none of its bytes are buffered yet; in the second case
         * nothing more is reported in that MHD_post_process call, and the
         * bytes follow at off 0 in a later one. So an off-0 call after a
         * still empty spool is the same part only when it comes in a later
         * call, with no other field in between, under the same name. */
        int new_part = !cur || off == 0;
        if (new_part && cur && cur->bytes == 0 && !u->field_seen && cur->open_feed != u->feeds) {
            char name[UPLOAD_NAME_MAX + 1];
            clean_name(filename, u->n_files - 1, name);
            new_part = strcmp(name, cur->name) != 0;
        }
        u->field_seen = 0;
        if (new_part && !(cur = spool_open(u, filename)))
            return MHD_NO;
        return size == 0 || spool_write(u, cur, data, size) ? MHD_YES : MHD_NO;
    }
    u->field_seen = 1;
    rg_buf *field = NULL;
    if (key && strcmp(key, "collection") == 0)
        field = &u->collection;
    else if (key && strcmp(key, "metadata") == 0)
        field = &u->metadata;
    else if (key && strcmp(key, "data") == 0)
        field = &u->data; /* RAG Blueprint: a JSON string with collection_name */
    if (!field)
        return MHD_YES; /* unknown fields are ignored */
    if (off == 0)
        rg_buf_reset(field);
    if (rg_buf_append(field, data, size, &u->err)) {
        rg_error(&u->err, RG_ERR_TOO_LARGE, "form field '%s' exceeds %d bytes", key, UPLOAD_MAX_FIELD_BYTES);
        return MHD_NO;
    }
    return MHD_YES;
}

rg_upload *upload_begin(rg_request *r)
{
    rg_server *srv = r->server;
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0) {
        http_error(r, 415, "unsupported_media_type",
                   "POST /v1/documents expects multipart/form-data with one or more 'file' parts");
        return NULL;
    }
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > srv->cfg.max_upload_bytes + 65536) {
        http_error(r, 413, "payload_too_large", "the upload exceeds the limit of %zu bytes",
                   srv->cfg.max_upload_bytes);
        return NULL;
    }
    rg_upload *u = calloc(1, sizeof *u);
    if (!u) {
        http_error(r, 500, "out_of_memory", "out of memory");
        return NULL;
    }
    u->req = r;
    rg_buf_init(&u->collection, UPLOAD_MAX_FIELD_BYTES);
    rg_buf_init(&u->metadata, UPLOAD_MAX_FIELD_BYTES);
    rg_buf_init(&u->data, UPLOAD_MAX_FIELD_BYTES);
    u->pp = MHD_create_post_processor(r->conn, 65536, on_part, u);
    if (!u->pp) {
        http_error(r, 415, "unsupported_media_type", "cannot parse this multipart body (missing boundary?)");
        upload_free(u);
        return NULL;
    }
    return u;
}

int upload_feed(rg_upload *u, const char *data, size_t size)
{
    u->feeds++;
    if (MHD_post_process(u->pp, data, size) == MHD_YES && !u->err.status)
        return 1;
    if (!u->err.status)
        rg_error(&u->err, RG_ERR_INVALID, "malformed multipart/form-data body");
    http_fail(u->req, &u->err);
    return 0;
}

/* Closes and fsyncs every spool file, then the directory entry. */
static int spools_sync(rg_upload *u)
{
    for (size_t i = 0; i < u->n_files; i++)
        if (!spool_close(u, &u->files[i]))
            return 0;
    int dfd = open(u->req->server->uploads_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 1;
}

/* Refuses the request when a file is not a type we can load. */
static int spools_sniff(rg_upload *u)
{
    for (size_t i = 0; i < u->n_files; i++) {
        rg_spool *s = &u->files[i];
        if (s->bytes == 0)
            continue; /* empty: the task will fail with "no text" */
        char head[UPLOAD_SNIFF_BYTES];
        int fd = open(s->path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, head, sizeof head) : -1;
        if (fd >= 0)
            close(fd);
        if (n < 0)
            return rg_error(&u->err, RG_ERR_IO, "reading back %s: %s", s->name, strerror(errno)), 0;
        rg_err e;
        rg_err_clear(&e);
        /* Only the head is sniffed: a UTF-8 sequence cut at its end is not
         * held against the file. */
        size_t len = (size_t)n == sizeof head ? utf8_truncate(head, (size_t)n, (size_t)n - 4) : (size_t)n;
        if (!loader_sniff(s->name, head, len, &e)) {
            rg_error(&u->err, RG_ERR_UNSUPPORTED, "%s: %s", s->name,
                     e.msg[0] ? e.msg : "not a supported document type");
            return 0;
        }
    }
    return 1;
}

/* Extracts the collection name from the form (or the RAG Blueprint 'data'
 * JSON); returns 0 after answering 400. */
static int upload_collection(rg_upload *u, char *out, size_t out_size)
{
    const char *name = u->collection.len ? u->collection.data : NULL;
    cJSON *data = NULL;
    if (!name && u->data.len) {
        data = cJSON_ParseWithLength(u->data.data, u->data.len);
        const cJSON *cn = data ? cJSON_GetObjectItemCaseSensitive(data, "collection_name") : NULL;
        if (cJSON_IsString(cn))
            name = cn->valuestring;
    }
    snprintf(out, out_size, "%s", name && *name ? name : "default");
    cJSON_Delete(data);
    if (!store_collection_name_valid(out)) {
        http_error(u->req, 400, "invalid_request",
                   "invalid collection name '%.64s' (1-64 of A-Z a-z 0-9 _ . -, starting alphanumeric)", out);
        return 0;
    }
    return 1;
}

void upload_finish(rg_upload *u)
{
    rg_request *r = u->req;
    rg_server *srv = r->server;
    if (MHD_destroy_post_processor(u->pp) != MHD_YES && !u->err.status)
        rg_error(&u->err, RG_ERR_INVALID, "the multipart/form-data body ended early");
    u->pp = NULL;
    if (u->err.status) {
        http_fail(r, &u->err);
        return;
    }
    if (u->n_files == 0) {
        http_error(r, 400, "invalid_request", "no file in the upload: send one or more 'file' parts");
        return;
    }
    char collection[128];
    if (!upload_collection(u, collection, sizeof collection))
        return;
    char *meta_text = NULL;
    if (u->metadata.len) {
        cJSON *m = cJSON_ParseWithLength(u->metadata.data, u->metadata.len);
        if (!cJSON_IsObject(m)) {
            cJSON_Delete(m);
            http_error(r, 400, "invalid_request", "'metadata' must be a JSON object");
            return;
        }
        meta_text = cJSON_PrintUnformatted(m);
        cJSON_Delete(m);
    }
    if (!spools_sync(u) || !spools_sniff(u)) {
        free(meta_text);
        http_fail(r, &u->err);
        return;
    }

    rg_err e;
    rg_err_clear(&e);
    int64_t coll_id;
    int64_t *ids = calloc(u->n_files, sizeof *ids);
    rg_status st = ids ? RG_OK : rg_error(&e, RG_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&srv->admission);
    if (!st)
        st = pipeline_can_accept(srv->pipeline, u->n_files, &e);
    /* Only an accepted upload creates its collection. */
    if (!st)
        st = store_collection_ensure(srv->store, collection, &coll_id, &e);
    for (size_t i = 0; i < u->n_files && !st; i++) {
        rg_task_in t = {.collection = collection,
                        .name = u->files[i].name,
                        .source_path = u->files[i].path,
                        .spooled = 1,
                        .metadata_json = meta_text};
        st = store_task_create(srv->store, &t, &ids[i], &e);
        if (!st)
            u->files[i].queued = 1;
    }
    pthread_mutex_unlock(&srv->admission);
    free(meta_text);
    if (st && ids) {
        /* Tasks created before the failure are already durable and will
         * run; report the failure for the request as a whole. */
        for (size_t i = 0; i < u->n_files; i++)
            if (u->files[i].queued)
                LOG_WARN("upload partly queued: task %lld (%s)", (long long)ids[i], u->files[i].name);
    }
    if (st) {
        free(ids);
        http_fail(r, &e);
        return;
    }
    pipeline_notify(srv->pipeline);

    cJSON *data;
    cJSON *o = json_list(&data);
    cJSON_AddStringToObject(o, "collection", collection);
    for (size_t i = 0; i < u->n_files; i++) {
        rg_task t = {0};
        if (store_task_get(srv->store, ids[i], &t, &e) == RG_OK) {
            cJSON_AddItemToArray(data, json_task(&t));
            store_task_free(&t);
        }
    }
    free(ids);
    http_json(r, 202, o);
}

void upload_free(rg_upload *u)
{
    if (!u)
        return;
    if (u->pp)
        MHD_destroy_post_processor(u->pp);
    for (size_t i = 0; i < u->n_files; i++) {
        rg_spool *s = &u->files[i];
        if (s->fd >= 0)
            close(s->fd);
        if (!s->queued)
            unlink(s->path);
    }
    free(u->files);
    rg_buf_free(&u->collection);
    rg_buf_free(&u->metadata);
    rg_buf_free(&u->data);
    free(u);
}
