/* fusion.h - reciprocal rank fusion of ranked result lists (hybrid search).
 *
 * Each list ranks chunk ids best first. A chunk's fused score is the sum
 * over the lists it appears in of 1 / (k + rank), rank counted from 1; the
 * usual k = 60 keeps any single list from dominating. Scores of different
 * methods (BM25, cosine) are never compared, only ranks. */
#ifndef RAGD_INDEX_FUSION_H
#define RAGD_INDEX_FUSION_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define FUSION_K_DEFAULT 60.0
#define FUSION_MAX_LISTS 4

typedef struct rg_fused {
    int64_t chunk_id;
    double score;
    int ranks[FUSION_MAX_LISTS]; /* 1-based rank in each list, 0 = absent */
} rg_fused;

/* Fuses n_lists lists (lists[i] has lens[i] ids; duplicate ids within a
 * list count at their best rank) into out, best first, at most max_out.
 * Ties go to the chunk with the better best rank, then the lower id, so
 * the order is deterministic. */
rg_status fusion_rrf(const int64_t *const *lists, const size_t *lens, size_t n_lists, double k, rg_fused *out,
                     size_t max_out, size_t *n_out, rg_err *e);

#endif
