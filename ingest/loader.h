/* loader.h - type detection and the loaders that turn bytes into rg_doctext. */
#ifndef RAGD_INGEST_LOADER_H
#define RAGD_INGEST_LOADER_H

#include <stddef.h>

#include "ingest/doctext.h"

#define MIME_TEXT "text/plain"
#define MIME_MARKDOWN "text/markdown"
#define MIME_HTML "text/html"
#define MIME_XML "application/xml"

/* Detects a supported type from the file name and the leading bytes.
 * Returns one of the MIME_* constants, or NULL when the content is not a
 * supported type (binary data, an unknown format): the caller answers
 * "unsupported media type" with the reason written to e. */
const char *loader_sniff(const char *filename, const char *data, size_t len, rg_err *e);

/* Loads data of the given MIME_* type into out (initialised by the caller
 * with doctext_init). Invalid UTF-8 is replaced with U+FFFD; data that is
 * mostly not text is refused (RG_ERR_UNSUPPORTED); an empty or textless
 * document is RG_ERR_INVALID ("no text"). */
rg_status loader_load(const char *mime, const char *data, size_t len, rg_doctext *out, rg_err *e);

/* The individual loaders, for tests. */
rg_status loader_text(const char *data, size_t len, rg_doctext *out, rg_err *e);
rg_status loader_markdown(const char *data, size_t len, rg_doctext *out, rg_err *e);
rg_status loader_html(const char *data, size_t len, rg_doctext *out, rg_err *e);
rg_status loader_xml(const char *data, size_t len, rg_doctext *out, rg_err *e);

#endif
