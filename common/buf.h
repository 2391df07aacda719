/* buf.h - a growable byte buffer with an optional hard size cap.
 *
 * Used wherever untrusted input accumulates (request bodies, extracted
 * document text): the cap is checked before every growth, so an attacker
 * cannot make us allocate more than the caller allowed. The contents are
 * always NUL-terminated (the terminator is not counted in len). */
#ifndef RAGD_COMMON_BUF_H
#define RAGD_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "common/err.h"

typedef struct rg_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* 0 = unlimited */
} rg_buf;

void rg_buf_init(rg_buf *b, size_t max);
void rg_buf_free(rg_buf *b);
void rg_buf_reset(rg_buf *b);
/* Makes room for n more bytes; RG_ERR_TOO_LARGE past max, RG_ERR_NOMEM. */
rg_status rg_buf_reserve(rg_buf *b, size_t n, rg_err *e);
rg_status rg_buf_append(rg_buf *b, const void *p, size_t n, rg_err *e);
rg_status rg_buf_append_str(rg_buf *b, const char *s, rg_err *e);
rg_status rg_buf_append_char(rg_buf *b, char c, rg_err *e);
rg_status rg_buf_printf(rg_buf *b, rg_err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Hands the data to the caller (who frees it) and leaves b empty. */
char *rg_buf_take(rg_buf *b);

#endif
