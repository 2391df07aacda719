/* utf8.h - UTF-8 checks built on utf8proc. */
#ifndef RAGD_COMMON_UTF8_H
#define RAGD_COMMON_UTF8_H

#include <stddef.h>

#include "common/buf.h"

/* Nonzero when s[0..len) is entirely valid UTF-8 (no NUL bytes either). */
int utf8_is_valid(const char *s, size_t len);

/* Appends s to out with every invalid sequence replaced by U+FFFD and NUL
 * bytes dropped; *n_invalid (may be NULL) receives how many were replaced. */
rg_status utf8_sanitize(const char *s, size_t len, rg_buf *out, size_t *n_invalid, rg_err *e);

/* Number of code points in valid UTF-8 s[0..len). */
size_t utf8_length(const char *s, size_t len);

/* Byte length of the longest prefix of s[0..len) that is at most max_bytes
 * and does not cut a code point in two. */
size_t utf8_truncate(const char *s, size_t len, size_t max_bytes);

#endif
