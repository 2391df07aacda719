/* http.h - one HTTP request as the route handlers see it, and the helpers
 * they answer with. Only api/ knows HTTP and JSON wire formats. */
#ifndef RAGD_API_HTTP_H
#define RAGD_API_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "common/buf.h"
#include "common/err.h"

struct rg_server;
struct rg_request;

#define HTTP_MAX_PARAMS 2

typedef struct rg_response {
    unsigned status;
    char *body; /* malloc'd */
    size_t body_len;
    const char *content_type;
    int body_static; /* body points at static data, do not free */
    char retry_after[16];
    /* A body produced while it is sent (server-sent events): when
     * stream_read is set, the server answers with a libmicrohttpd callback
     * response over it instead of body; stream_free runs once the response
     * is done or the client has gone away. */
    ssize_t (*stream_read)(void *ctx, uint64_t pos, char *buf, size_t max);
    void (*stream_free)(void *ctx);
    void *stream_ctx;
    /* A response that waits without holding an HTTP thread: when park is
     * set the server suspends the connection (libmicrohttpd suspend/resume)
     * and calls park(r), which must see to it that MHD_resume_connection is
     * called later; once resumed the server calls unpark(r), which answers as
     * a handler does and takes park_ctx over. park_free(park_ctx) runs when
     * the request ends without unpark having run (server shutdown). */
    void (*park)(struct rg_request *r);
    void (*unpark)(struct rg_request *r);
    void (*park_free)(void *ctx);
    void *park_ctx;
} rg_response;

typedef struct rg_request {
    struct rg_server *server;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    const char *route;                  /* the matched pattern, for metrics */
    char params[HTTP_MAX_PARAMS][256];  /* {id}/{name} path segments, in order */
    rg_buf body;                        /* JSON request body (capped) */
    rg_response res;
} rg_request;

/* Query-string argument, or NULL. */
const char *http_query(rg_request *r, const char *key);

/* Answers with a JSON document (takes ownership of json). */
void http_json(rg_request *r, unsigned status, cJSON *json);
/* Answers {"error":{"message","type","code"}} with the given status. */
void http_error(rg_request *r, unsigned status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers an rg_err with the HTTP status its rg_status maps to. */
void http_fail(rg_request *r, const rg_err *e);
unsigned http_status_for(rg_status st);

/* Parses the request body as a JSON object; on failure answers 400 and
 * returns NULL. */
cJSON *http_body_json(rg_request *r);

/* The optional boolean member name of obj into *out: 1 when set, 0 when
 * absent or null (*out unchanged), -1 (after answering 400) when it is not
 * a boolean. */
int http_json_bool(rg_request *r, const cJSON *obj, const char *name, int *out);

/* Parses a decimal query argument in [min,max]; answers 400 and returns -1
 * when present but invalid. *out keeps def when absent. */
int http_query_int(rg_request *r, const char *key, long min, long max, long def, long *out);

#endif
