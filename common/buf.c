#include "common/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rg_buf_init(rg_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void rg_buf_free(rg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void rg_buf_reset(rg_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

rg_status rg_buf_reserve(rg_buf *b, size_t n, rg_err *e)
{
    if (n > SIZE_MAX / 2 - b->len - 1)
        return rg_error(e, RG_ERR_TOO_LARGE, "buffer size overflow");
    size_t need = b->len + n + 1;
    if (b->max && b->len + n > b->max)
        return rg_error(e, RG_ERR_TOO_LARGE, "exceeds the limit of %zu bytes", b->max);
    if (need <= b->cap)
        return RG_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return rg_error(e, RG_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
    return RG_OK;
}

rg_status rg_buf_append(rg_buf *b, const void *p, size_t n, rg_err *e)
{
    rg_status s = rg_buf_reserve(b, n, e);
    if (s)
        return s;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return RG_OK;
}

rg_status rg_buf_append_str(rg_buf *b, const char *s, rg_err *e)
{
    return rg_buf_append(b, s, strlen(s), e);
}

rg_status rg_buf_append_char(rg_buf *b, char c, rg_err *e)
{
    return rg_buf_append(b, &c, 1, e);
}

rg_status rg_buf_printf(rg_buf *b, rg_err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return rg_error(e, RG_ERR_INTERNAL, "bad format");
    rg_status s = rg_buf_reserve(b, (size_t)n, e);
    if (s)
        return s;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return RG_OK;
}

char *rg_buf_take(rg_buf *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
