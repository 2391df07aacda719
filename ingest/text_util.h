/* text_util.h - small UTF-8 text helpers shared inside ingest/ (not a public API). */
#ifndef RAGD_INGEST_TEXT_UTIL_H
#define RAGD_INGEST_TEXT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Nonzero for code points the loaders treat as white space: ASCII white
 * space, the Unicode space separators (Zs, Zl, Zp), NEL, and the control
 * characters (Cc), which are never kept in prose. */
int text_is_space(int32_t cp);

/* Appends s[0..len) to out with every run of white space collapsed to one
 * space, leading and trailing white space dropped, U+FEFF dropped and
 * invalid UTF-8 replaced by U+FFFD. *wrote (may be NULL) is set to the
 * number of bytes appended. */
rg_status text_collapse_append(rg_buf *out, const char *s, size_t len, size_t *wrote, rg_err *e);

/* Appends the UTF-8 encoding of cp (U+FFFD for surrogates, NUL and
 * values past U+10FFFF). */
rg_status text_append_cp(rg_buf *out, int32_t cp, rg_err *e);

/* Decodes the character reference at s[0] == '&' (&name; from the HTML
 * entity table, &#NNN; or &#xHH;) into out and sets *used to its length;
 * *used = 0 (nothing appended) when s does not start with one. */
rg_status text_append_char_ref(const char *s, size_t n, size_t *used, rg_buf *out, rg_err *e);

/* ASCII case-insensitive search for needle in hay[0..len); returns the
 * offset or (size_t)-1. */
size_t text_find_ci(const char *hay, size_t len, const char *needle);

/* ASCII case-insensitive prefix test. */
int text_starts_ci(const char *s, size_t len, const char *prefix);

#endif
