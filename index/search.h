/* search.h - retrieval: lexical (BM25), dense (embedding cosine) or hybrid
 * (reciprocal rank fusion of both), returning chunks with their document. */
#ifndef RAGD_INDEX_SEARCH_H
#define RAGD_INDEX_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "index/embedder.h"
#include "index/vindex.h"
#include "store/store.h"

typedef enum rg_search_mode { SEARCH_LEXICAL, SEARCH_DENSE, SEARCH_HYBRID } rg_search_mode;

/* "lexical"/"dense"/"hybrid"; RG_ERR_INVALID otherwise. */
rg_status search_mode_parse(const char *name, rg_search_mode *mode, rg_err *e);
const char *search_mode_name(rg_search_mode mode);

typedef struct rg_search {
    rg_store *store;
    rg_embedder *embedder; /* NULL: only lexical is available */
    rg_vindex *vindex;
} rg_search;

typedef struct rg_search_result {
    rg_hit *hits; /* best first; score: BM25, cosine or fused RRF score */
    size_t n;
    int *rank_lexical; /* per hit, 1-based, 0 = not in that list (hybrid) */
    int *rank_dense;
    size_t query_tokens; /* tokens of the query as the model counts them (0 if lexical) */
} rg_search_result;

/* Runs a query over one collection (> 0) or all (0). candidates is how
 * many each method contributes before fusion (at least k). */
rg_status search_run(const rg_search *s, int64_t collection_id, const char *query, rg_search_mode mode, size_t k,
                     size_t candidates, rg_search_result *out, rg_err *e);
void search_result_free(rg_search_result *r);

#endif
