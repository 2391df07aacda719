/* dense.h - a collection's vector index: FAISS (through its C API) holding
 * L2-normalised embeddings under their chunk ids, searched by inner product
 * (= cosine similarity).
 *
 * SQLite stays the source of truth; this index is a cache. Its file holds a
 * small header (magic, dimension, kind, the highest chunk id it covers,
 * the length and a checksum of what follows) followed by the FAISS index,
 * written to a temporary file, fsynced and renamed, so a reader sees the
 * old or the new index, never half of one. A file that is missing,
 * unreadable, of another dimension or not byte for byte what was written
 * (FAISS itself trusts its input) is reported as such and the caller
 * rebuilds it from the store.
 *
 * Safe to share between threads: searches run concurrently, changes are
 * exclusive (a read-write lock). */
#ifndef RAGD_INDEX_DENSE_H
#define RAGD_INDEX_DENSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef enum rg_dense_kind {
    DENSE_FLAT = 0, /* exact: IDMap2 over Flat, inner product (the default) */
    DENSE_HNSW = 1  /* approximate: IDMap2 over HNSW32; removal needs a rebuild */
} rg_dense_kind;

typedef struct rg_dense_index rg_dense_index;

/* "flat" / "hnsw" -> kind; RG_ERR_INVALID for anything else. */
rg_status dense_kind_parse(const char *name, rg_dense_kind *kind, rg_err *e);
const char *dense_kind_name(rg_dense_kind kind);

rg_status dense_index_create(int dim, rg_dense_kind kind, rg_dense_index **out, rg_err *e);
/* An HNSW index with m neighbours per node (FAISS's M, 4..128) and the
 * candidate list sizes used while building (efConstruction) and searching
 * (efSearch, at least 1; a search for k uses max(k, efSearch)). */
rg_status dense_index_create_hnsw(int dim, int m, int ef_construction, int ef_search, rg_dense_index **out,
                                  rg_err *e);
/* Sets efSearch of an HNSW index (a loaded file keeps the value it was
 * saved with until told otherwise); a no-op for flat. */
rg_status dense_index_set_ef_search(rg_dense_index *x, int ef_search, rg_err *e);
/* Reads an index file. RG_ERR_NOT_FOUND when absent, RG_ERR_CORRUPT when
 * unreadable or not for dim/kind: both mean "rebuild from the store". */
rg_status dense_index_load(const char *path, int dim, rg_dense_kind kind, rg_dense_index **out, rg_err *e);
/* Writes the index atomically (temp file + fsync + rename). */
rg_status dense_index_save(rg_dense_index *x, const char *path, rg_err *e);
void dense_index_free(rg_dense_index *x);

/* Adds n vectors (n*dim floats) under ids; ids must be new to the index. */
rg_status dense_index_add(rg_dense_index *x, size_t n, const float *vectors, const int64_t *ids, rg_err *e);
/* Removes ids (absent ones are ignored); *removed may be NULL.
 * RG_ERR_UNSUPPORTED for HNSW, whose graph cannot drop nodes: rebuild. */
rg_status dense_index_remove(rg_dense_index *x, size_t n, const int64_t *ids, size_t *removed, rg_err *e);
/* The best k by inner product with query (dim floats), best first. *n_out
 * may be less than k when the index holds fewer vectors. */
rg_status dense_index_search(rg_dense_index *x, const float *query, size_t k, int64_t *ids, float *scores,
                             size_t *n_out, rg_err *e);

size_t dense_index_count(rg_dense_index *x);
int dense_index_dim(const rg_dense_index *x);
rg_dense_kind dense_index_kind(const rg_dense_index *x);
/* The highest chunk id added so far (0 when none): how far the cache is
 * caught up with the store. */
int64_t dense_index_max_id(rg_dense_index *x);

#endif
