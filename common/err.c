#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

rg_status rg_error(rg_err *e, rg_status status, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        e->status = status;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

rg_status rg_error_wrap(rg_err *e, const char *fmt, ...)
{
    if (!e)
        return RG_ERR_INTERNAL;
    char prefix[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%.255s: %.250s", prefix, old);
    return e->status;
}

void rg_err_clear(rg_err *e)
{
    if (e) {
        e->status = RG_OK;
        e->msg[0] = '\0';
    }
}

const char *rg_status_name(rg_status status)
{
    switch (status) {
    case RG_OK: return "ok";
    case RG_ERR_INVALID: return "invalid_request";
    case RG_ERR_NOT_FOUND: return "not_found";
    case RG_ERR_EXISTS: return "conflict";
    case RG_ERR_TOO_LARGE: return "payload_too_large";
    case RG_ERR_UNSUPPORTED: return "unsupported_media_type";
    case RG_ERR_BUSY: return "overloaded";
    case RG_ERR_IO: return "io_error";
    case RG_ERR_NOMEM: return "out_of_memory";
    case RG_ERR_CORRUPT: return "corrupt_data";
    case RG_ERR_INTERNAL: return "internal_error";
    }
    return "internal_error";
}
