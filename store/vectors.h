/* vectors.h - embedding vectors of chunks, per model: the durable source a
 * collection's FAISS index is built and caught up from. */
#ifndef RAGD_STORE_VECTORS_H
#define RAGD_STORE_VECTORS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Stores (or replaces) the vectors of n chunks, n * dim floats, in one
 * transaction. A chunk that no longer exists fails the whole batch with
 * RG_ERR_NOT_FOUND (its document was deleted meanwhile). */
rg_status store_vectors_put(rg_store *s, const char *model, int dim, size_t n, const int64_t *chunk_ids,
                            const float *vectors, rg_err *e);

/* Reads up to max vectors of one collection (collection_id > 0) or all (0)
 * for model, with chunk ids greater than after_id, in id order: call again
 * with the last id to page through (building or catching up an index).
 * ids gets max entries, vectors max * dim floats. */
rg_status store_vectors_scan(rg_store *s, int64_t collection_id, const char *model, int dim, int64_t after_id,
                             size_t max, int64_t *ids, float *vectors, size_t *n, rg_err *e);

/* Up to max ids of chunks (oldest first) that have no vector for model:
 * the embedding backlog. */
rg_status store_chunks_missing_vectors(rg_store *s, const char *model, size_t max, int64_t *ids, size_t *n,
                                       rg_err *e);

/* One chunk of the embedding backlog: what it takes to embed it and put
 * its vector in the right collection's index. */
typedef struct rg_backlog_chunk {
    int64_t id;
    int64_t collection_id;
    char *text;
} rg_backlog_chunk;

/* Up to max chunks with ids above after_id that have no vector for model,
 * oldest first, with their text. *scanned_to gets the chunk id up to which
 * every chunk has been looked at: the next call's after_id. Chunk ids only
 * grow, so a caller that keeps the cursor never rescans the whole table. */
rg_status store_vector_backlog(rg_store *s, const char *model, int64_t after_id, size_t max, rg_backlog_chunk **out,
                               size_t *n, int64_t *scanned_to, rg_err *e);
void store_backlog_free(rg_backlog_chunk *c, size_t n);

/* The highest chunk id with a vector for model in any collection (0 when
 * none): one lookup in the primary key. A reader that remembers it can tell
 * that no vector was stored for a new chunk since, without scanning. */
rg_status store_vectors_max_id(rg_store *s, const char *model, int64_t *max_id, rg_err *e);

/* How many vectors model has in a collection (0 = all). */
rg_status store_vectors_count(rg_store *s, int64_t collection_id, const char *model, int64_t *n, rg_err *e);

#endif
