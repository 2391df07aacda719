/* vindex.h - the dense indexes of all collections, kept in step with the
 * vectors in the store.
 *
 * Each collection's FAISS index lives in <dir>/collection-<id>.faiss, of
 * the kind the collection's index settings name (flat or HNSW, read from
 * the store). It is loaded on first use; when the file is missing, corrupt,
 * of another kind or dimension it is rebuilt from the store, and when it is
 * behind (vectors with higher chunk ids exist) it is caught up; when it
 * then holds another number of vectors than the store, it is rebuilt. vindex_sync does the same
 * catching up after ingestion, so the store is the only place vectors are
 * written to first. Changed indexes are saved (atomically) by
 * vindex_save_dirty and on close. Chunks deleted while an index was not
 * told are harmless: search results are looked up in the store, which
 * drops them, and the caller then removes them with vindex_remove. */
#ifndef RAGD_INDEX_VINDEX_H
#define RAGD_INDEX_VINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

typedef struct rg_vindex rg_vindex;

rg_status vindex_open(rg_store *s, const char *dir, const char *model, int dim, rg_vindex **out, rg_err *e);
/* Saves what changed and frees everything. */
void vindex_close(rg_vindex *v);

/* Adds the store's vectors newer than what the collection's index holds. */
rg_status vindex_sync(rg_vindex *v, int64_t collection_id, rg_err *e);
/* Adds vectors that were just stored for chunks of the collection, which
 * may be older than the index's newest (the embedding backlog: chunks
 * ingested without a model). The caller stored them first; each id must
 * have had no vector for this model before, so it is new to the index. */
rg_status vindex_add(rg_vindex *v, int64_t collection_id, size_t n, const int64_t *ids, const float *vectors,
                     rg_err *e);
/* Forgets chunk ids (deleted documents). An HNSW index cannot drop nodes:
 * it is rebuilt from the store before its next use instead. */
rg_status vindex_remove(rg_vindex *v, int64_t collection_id, size_t n, const int64_t *ids, rg_err *e);
/* The collection is gone: drop its index and file. */
void vindex_drop(rg_vindex *v, int64_t collection_id);
/* Best k chunk ids by cosine in one collection (> 0) or all (0). */
rg_status vindex_search(rg_vindex *v, int64_t collection_id, const float *query, size_t k, int64_t *ids,
                        float *scores, size_t *n, rg_err *e);
/* Writes every index changed since its last save. */
rg_status vindex_save_dirty(rg_vindex *v, rg_err *e);

#endif
