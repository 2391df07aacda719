/* lexical.h - lexical (BM25) retrieval over the FTS5 chunk index.
 *
 * Turns free text typed by a user into a safe FTS5 query: every word becomes
 * a quoted term and the terms are OR-ed, so punctuation or FTS5 operators in
 * the query can never be a syntax error and a document needs only some of
 * the words to be found (BM25 then ranks by how many and how rare). */
#ifndef RAGD_INDEX_LEXICAL_H
#define RAGD_INDEX_LEXICAL_H

#include <stddef.h>

#include "common/buf.h"
#include "store/store.h"

/* Bounds on what a query may cost. */
#define LEXICAL_MAX_TERMS 64

/* Writes the FTS5 MATCH expression for query into out. Returns
 * RG_ERR_INVALID when the query has no searchable word. */
rg_status lexical_build_match(const char *query, rg_buf *out, rg_err *e);

/* BM25 search of one collection (collection_id > 0) or all (0). */
rg_status lexical_search(rg_store *s, int64_t collection_id, const char *query, size_t k, rg_hit **hits, size_t *n,
                         rg_err *e);

#endif
