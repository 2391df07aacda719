#include "api/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

const char *http_query(rg_request *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

static void set_body(rg_request *r, unsigned status, char *body, const char *type)
{
    if (r->res.body && !r->res.body_static)
        free(r->res.body);
    r->res.status = status;
    r->res.body = body;
    r->res.body_len = body ? strlen(body) : 0;
    r->res.body_static = 0;
    r->res.content_type = type;
}

void http_json(rg_request *r, unsigned status, cJSON *json)
{
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!text) {
        set_body(r, 500, strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"internal_error\",\"code\":500}}"),
                 "application/json");
        return;
    }
    set_body(r, status, text, "application/json");
}

void http_error(rg_request *r, unsigned status, const char *type, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages quote request input (paths, names): keep the JSON valid UTF-8. */
    rg_buf clean;
    rg_buf_init(&clean, 0);
    int ok = utf8_sanitize(msg, strlen(msg), &clean, NULL, NULL) == RG_OK && clean.data;
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", ok ? clean.data : "invalid request");
    rg_buf_free(&clean);
    cJSON_AddStringToObject(err, "type", type);
    cJSON_AddNumberToObject(err, "code", status);
    http_json(r, status, root);
}

unsigned http_status_for(rg_status st)
{
    switch (st) {
    case RG_OK: return 200;
    case RG_ERR_INVALID: return 400;
    case RG_ERR_NOT_FOUND: return 404;
    case RG_ERR_EXISTS: return 409;
    case RG_ERR_TOO_LARGE: return 413;
    case RG_ERR_UNSUPPORTED: return 415;
    case RG_ERR_BUSY: return 503;
    default: return 500;
    }
}

void http_fail(rg_request *r, const rg_err *e)
{
    unsigned status = http_status_for(e->status);
    if (status == 503)
        snprintf(r->res.retry_after, sizeof r->res.retry_after, "2");
    http_error(r, status, rg_status_name(e->status), "%s", e->msg[0] ? e->msg : rg_status_name(e->status));
}

/* Where a valid JSON text spells a NUL character (the escape \u0000), or
 * -1. cJSON decodes one into a C string, which then ends there: a text
 * would be cut short without a word, so such bodies are refused instead.
 * In valid JSON a backslash only starts an escape inside a string, so
 * skipping each escape's next character is enough to tell "\u0000" from
 * an escaped backslash followed by "u0000". */
static long escaped_nul_at(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\\')
            continue;
        if (p[i + 1] == 'u' && i + 5 < n && p[i + 2] == '0' && p[i + 3] == '0' && p[i + 4] == '0' &&
            p[i + 5] == '0')
            return (long)i;
        i++; /* the escaped character */
    }
    return -1;
}

cJSON *http_body_json(rg_request *r)
{
    if (r->body.len == 0) {
        http_error(r, 400, "invalid_request", "the request needs a JSON body");
        return NULL;
    }
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(r->body.data, r->body.len, &end, 0);
    /* Only whitespace may follow the value (cJSON's own check wants a NUL
     * inside the length, which would let an embedded NUL end the body). */
    while (json && end < r->body.data + r->body.len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (json && end != r->body.data + r->body.len) {
        cJSON_Delete(json);
        json = NULL;
    }
    if (!json) {
        http_error(r, 400, "invalid_request", "the body is not valid JSON (near byte %ld)",
                   end ? (long)(end - r->body.data) : 0L);
        return NULL;
    }
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        http_error(r, 400, "invalid_request", "the body must be a JSON object");
        return NULL;
    }
    long nul = escaped_nul_at(r->body.data, r->body.len);
    if (nul >= 0) {
        cJSON_Delete(json);
        http_error(r, 400, "invalid_request",
                   "a string holds a NUL character (\\u0000 at byte %ld): texts cannot contain it", nul);
        return NULL;
    }
    return json;
}

int http_json_bool(rg_request *r, const cJSON *obj, const char *name, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v)) {
        http_error(r, 400, "invalid_request", "'%s' must be true or false", name);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 1;
}

int http_query_int(rg_request *r, const char *key, long min, long max, long def, long *out)
{
    *out = def;
    const char *v = http_query(r, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        http_error(r, 400, "invalid_request", "query parameter %s must be an integer in %ld..%ld", key, min, max);
        return -1;
    }
    *out = n;
    return 0;
}
