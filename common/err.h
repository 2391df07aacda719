/* err.h - status codes and the error record every fallible function fills.
 *
 * Convention: a function that can fail returns rg_status and, when it fails,
 * writes a human-readable message into the caller's rg_err. The status maps
 * one-to-one onto an HTTP status in api/, so lower floors can say "this was
 * the caller's fault" without knowing HTTP. */
#ifndef RAGD_COMMON_ERR_H
#define RAGD_COMMON_ERR_H

#include <stddef.h>

typedef enum rg_status {
    RG_OK = 0,
    RG_ERR_INVALID,     /* malformed input from the caller (400) */
    RG_ERR_NOT_FOUND,   /* no such object (404) */
    RG_ERR_EXISTS,      /* conflicts with an existing object (409) */
    RG_ERR_TOO_LARGE,   /* exceeds a configured size limit (413) */
    RG_ERR_UNSUPPORTED, /* a type or feature we do not handle (415) */
    RG_ERR_BUSY,        /* overloaded; retrying later makes sense (503) */
    RG_ERR_IO,          /* file system or database failure (500) */
    RG_ERR_NOMEM,       /* allocation failed (500) */
    RG_ERR_CORRUPT,     /* stored data failed a consistency check (500) */
    RG_ERR_INTERNAL     /* broken invariant (500) */
} rg_status;

typedef struct rg_err {
    rg_status status;
    char msg[512];
} rg_err;

/* Records status and a printf-style message in *e (e may be NULL) and
 * returns status, so callers can write `return rg_error(e, ...)`. */
rg_status rg_error(rg_err *e, rg_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in *e with more context ("file x: ..."). */
rg_status rg_error_wrap(rg_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void rg_err_clear(rg_err *e);

/* Short stable name of a status, e.g. "invalid_request". */
const char *rg_status_name(rg_status status);

#endif
