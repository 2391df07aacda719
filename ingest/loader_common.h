/* loader_common.h - checks and conversions shared by the loaders (internal to ingest/). */
#ifndef RAGD_INGEST_LOADER_COMMON_H
#define RAGD_INGEST_LOADER_COMMON_H

#include <stddef.h>

#include "ingest/doctext.h"

/* Name of a known binary format whose signature starts data ("PDF",
 * "ZIP", ...), or NULL. */
const char *loader_binary_format(const char *data, size_t len);

/* 1 for a UTF-16LE byte order mark, 2 for UTF-16BE, 0 otherwise. */
int loader_utf16_bom(const char *data, size_t len);

/* Refuses data that is not text, with RG_ERR_UNSUPPORTED and a message:
 * a known binary signature, NUL bytes in the first 8 KiB, or more than 10%
 * control characters (and, when strict_utf8, invalid UTF-8 sequences) in
 * the first 64 KiB. UTF-16 with a byte order mark passes. */
rg_status loader_check_text(const char *data, size_t len, int strict_utf8, rg_err *e);

/* Checks data (loader_check_text, strict) and converts it into out as
 * valid UTF-8: a UTF-8 byte order mark is dropped, UTF-16 with a byte
 * order mark is converted, invalid sequences become U+FFFD, NULs go. */
rg_status loader_decode_text(const char *data, size_t len, rg_buf *out, rg_err *e);

/* The character encoding declared in the first 4 KiB of markup (an XML
 * declaration's encoding=, or, when html, a charset= anywhere there),
 * copied into enc (NUL-terminated, lower case); 0 if none is declared. */
int loader_declared_charset(const char *data, size_t len, int html, char *enc, size_t enc_size);

/* Nonzero if enc names UTF-8 or ASCII. */
int loader_charset_is_utf8(const char *enc);

/* Sets d->title from s[0..len) with white space collapsed, at most 1 KiB. */
rg_status loader_set_title(rg_doctext *d, const char *s, size_t len, rg_err *e);

/* Ends a load: a document without blocks is RG_ERR_INVALID "no text";
 * with title_from_heading, a missing title is taken from the first
 * level-1 heading. */
rg_status loader_finish(rg_doctext *d, int title_from_heading, rg_err *e);

#endif
