/* store.h - ragd's durable state in SQLite: collections, documents, chunks
 * (with an FTS5 index kept in sync by triggers) and ingestion tasks.
 *
 * One rg_store handle owns one SQLite connection in WAL mode with foreign
 * keys on. The handle is safe to share between threads: every public
 * function takes the handle's lock for its whole duration, and every write
 * that must be atomic happens inside one function, in one transaction.
 * Strings returned inside result structs are heap copies owned by the
 * caller and released with the matching *_free function. */
#ifndef RAGD_STORE_STORE_H
#define RAGD_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct rg_store rg_store;

/* The schema version this build writes (PRAGMA user_version). */
#define STORE_SCHEMA_VERSION 3

/* Opens (creating if needed) the database at path and applies forward
 * migrations. A database from a newer ragd (user_version higher than ours)
 * is refused with RG_ERR_CORRUPT rather than silently misread. */
rg_status store_open(const char *path, rg_store **out, rg_err *e);
void store_close(rg_store *s);
int store_schema_version(rg_store *s);

/* ---- collections ------------------------------------------------------ */

/* Collection names: 1..64 chars of [A-Za-z0-9_.-], starting alphanumeric. */
int store_collection_name_valid(const char *name);

/* How a collection's embedding vectors are indexed: an exact flat index
 * (the default) or an approximate HNSW graph, which answers faster on large
 * collections at some recall. The store only keeps and checks the settings;
 * index/ builds the index from them. Fixed when the collection is created. */
#define STORE_INDEX_FLAT "flat"
#define STORE_INDEX_HNSW "hnsw"
#define STORE_INDEX_HNSW_M_MIN 4 /* graph neighbours per node */
#define STORE_INDEX_HNSW_M_MAX 128
#define STORE_INDEX_HNSW_M_DEFAULT 32
#define STORE_INDEX_EF_CONSTRUCTION_MIN 8 /* candidates kept while inserting */
#define STORE_INDEX_EF_CONSTRUCTION_MAX 2048
#define STORE_INDEX_EF_CONSTRUCTION_DEFAULT 40
#define STORE_INDEX_EF_SEARCH_MIN 8 /* candidates kept while searching */
#define STORE_INDEX_EF_SEARCH_MAX 4096
#define STORE_INDEX_EF_SEARCH_DEFAULT 64

typedef struct rg_index_settings {
    char type[8]; /* STORE_INDEX_FLAT or STORE_INDEX_HNSW */
    int hnsw_m;   /* the rest only matter for hnsw */
    int ef_construction;
    int ef_search;
} rg_index_settings;

/* Flat, with the HNSW defaults filled in for when the type is changed. */
void store_index_settings_default(rg_index_settings *x);
/* RG_ERR_INVALID naming the field and its bounds when out of range. */
rg_status store_index_settings_check(const rg_index_settings *x, rg_err *e);
int store_index_settings_equal(const rg_index_settings *a, const rg_index_settings *b);

typedef struct rg_collection {
    int64_t id;
    char *name;
    char *metadata_json; /* user metadata, a JSON object as text ("{}" if none) */
    int64_t created_ms;
    int64_t n_documents;
    int64_t n_chunks;
    rg_index_settings index;
} rg_collection;

/* RG_ERR_EXISTS if the name is taken, RG_ERR_INVALID for a bad name. */
rg_status store_collection_create(rg_store *s, const char *name, const char *metadata_json, int64_t *id,
                                  rg_err *e);
/* The same with index settings (NULL = the default flat index). */
rg_status store_collection_create_indexed(rg_store *s, const char *name, const char *metadata_json,
                                          const rg_index_settings *index, int64_t *id, rg_err *e);
/* Returns the id of the named collection, creating it if missing. */
rg_status store_collection_ensure(rg_store *s, const char *name, int64_t *id, rg_err *e);
/* The same, creating it with these index settings; an existing collection
 * whose settings differ is RG_ERR_EXISTS (settings never change silently). */
rg_status store_collection_ensure_indexed(rg_store *s, const char *name, const rg_index_settings *index,
                                          int64_t *id, rg_err *e);
/* The index settings of a collection by id (RG_ERR_NOT_FOUND if none). */
rg_status store_collection_index(rg_store *s, int64_t id, rg_index_settings *out, rg_err *e);
rg_status store_collection_get(rg_store *s, const char *name, rg_collection *out, rg_err *e);
rg_status store_collection_list(rg_store *s, rg_collection **out, size_t *n, rg_err *e);
/* Deletes the collection with all its documents and chunks (one transaction). */
rg_status store_collection_delete(rg_store *s, const char *name, rg_err *e);
void store_collection_free(rg_collection *c);
void store_collections_free(rg_collection *c, size_t n);

/* ---- documents and chunks --------------------------------------------- */

/* A document's processing state. */
#define DOC_STATUS_READY "ready"   /* chunks written and searchable */
#define DOC_STATUS_FAILED "failed" /* could not be loaded; error says why; no chunks */

typedef struct rg_document {
    int64_t id;
    int64_t collection_id;
    char *collection;    /* collection name */
    char *name;          /* file name as uploaded or relative path */
    char *source;        /* absolute source path, or "upload" */
    char *mime;          /* detected type, e.g. "text/markdown" */
    int64_t byte_size;   /* size of the original bytes */
    char sha256[65];     /* hex digest of the original bytes */
    char *status;        /* DOC_STATUS_* */
    char *error;         /* NULL unless failed */
    char *metadata_json; /* user metadata object as text */
    char *title;         /* title found by the loader, may be NULL */
    int64_t created_ms;
    int64_t updated_ms;
    int64_t n_chunks;
    int64_t n_chars; /* length of the extracted text in code points */
} rg_document;

/* What a caller hands to store_document_put: the document's identity and
 * the chunks the chunker produced. Offsets are code-point offsets into the
 * extracted text, which is stored too so chunks can be re-derived later. */
typedef struct rg_document_in {
    int64_t collection_id;
    const char *name;
    const char *source;
    const char *mime;
    int64_t byte_size;
    const char *sha256;
    const char *metadata_json; /* NULL = "{}" */
    const char *title;         /* may be NULL */
    const char *text;          /* extracted text, UTF-8 */
    size_t text_len;           /* bytes */
    /* When > 0, the ingestion task this document comes from: it is marked
     * done (or failed) in the same transaction that writes the document, so
     * a crash can never leave a written document with an unfinished task
     * (which a restart would run again and report as "unchanged"). */
    int64_t task_id;
    /* When non-NULL, every chunk carries an embedding (rg_chunk_in.vector)
     * by this model, stored with the chunks in the same transaction. */
    const char *vector_model;
    int vector_dim;
} rg_document_in;

typedef struct rg_chunk_in {
    const char *text; /* UTF-8, need not be NUL-terminated */
    size_t text_len;  /* bytes */
    int64_t char_start, char_end; /* code points into the document text */
    const char *heading_path;     /* "Guide > Install", may be NULL */
    int page;                     /* 0 = unknown */
    int token_count;
    const float *vector; /* vector_dim floats when the document has vectors */
} rg_chunk_in;

typedef enum rg_put_outcome {
    STORE_PUT_ADDED,     /* a new document */
    STORE_PUT_UNCHANGED, /* same bytes already ready in this collection: nothing written */
    STORE_PUT_REPLACED   /* same name, different bytes: old chunks replaced, id kept */
} rg_put_outcome;

/* "added", "unchanged", "replaced". */
const char *store_put_outcome_name(rg_put_outcome o);

/* Writes a ready document and all its chunks in one transaction.
 * Same sha256 already READY in the collection -> UNCHANGED, *doc_id = that
 * document. Same name in the collection -> REPLACED atomically (the
 * document keeps its id; its chunks and FTS rows are swapped). */
rg_status store_document_put(rg_store *s, const rg_document_in *doc, const rg_chunk_in *chunks, size_t n_chunks,
                             int64_t *doc_id, rg_put_outcome *outcome, rg_err *e);

/* Records (or replaces, by name) a document that failed to load, with no
 * chunks, so listings show the error. doc->text may be NULL. */
rg_status store_document_put_failed(rg_store *s, const rg_document_in *doc, const char *error, int64_t *doc_id,
                                    rg_err *e);

rg_status store_document_get(rg_store *s, int64_t id, rg_document *out, rg_err *e);
/* Documents of one collection (collection_id > 0) or of all (0), newest
 * first, paged. */
rg_status store_document_list(rg_store *s, int64_t collection_id, size_t limit, size_t offset, rg_document **out,
                              size_t *n, rg_err *e);
/* Removes the document and its chunks (and FTS rows) in one transaction. */
rg_status store_document_delete(rg_store *s, int64_t id, rg_err *e);
/* The extracted text of a document (caller frees). */
rg_status store_document_text(rg_store *s, int64_t id, char **text, size_t *len, rg_err *e);
void store_document_free(rg_document *d);
void store_documents_free(rg_document *d, size_t n);

typedef struct rg_chunk {
    int64_t id;
    int64_t document_id;
    int ordinal; /* 0-based position within the document */
    char *text;
    int64_t char_start, char_end;
    char *heading_path;
    int page;
    int token_count;
} rg_chunk;

/* All chunks of a document in order. */
rg_status store_chunk_list(rg_store *s, int64_t document_id, rg_chunk **out, size_t *n, rg_err *e);
void store_chunks_free(rg_chunk *c, size_t n);

/* ---- lexical search --------------------------------------------------- */

typedef struct rg_hit {
    int64_t chunk_id;
    int64_t document_id;
    char *document;   /* document name */
    char *collection; /* collection name */
    char *text;
    double score; /* BM25, higher is better (the negated FTS5 bm25()) */
    char *metadata_json;
    int64_t char_start, char_end;
    char *heading_path;
    int page;
} rg_hit;

/* Runs an FTS5 MATCH expression (already built by the caller) over the
 * chunks of one collection (collection_id > 0) or all (0), best k first. */
rg_status store_chunk_search_fts(rg_store *s, int64_t collection_id, const char *match_expr, size_t k,
                                 rg_hit **out, size_t *n, rg_err *e);
void store_hits_free(rg_hit *h, size_t n);

/* Hits (score 0) for the given chunk ids, in the given order, restricted to
 * one collection (collection_id > 0) or not (0). Ids of chunks that no
 * longer exist (or are in another collection) are skipped, so *n may be
 * less than n_ids. */
rg_status store_chunk_hits(rg_store *s, int64_t collection_id, const int64_t *ids, size_t n_ids, rg_hit **out,
                           size_t *n, rg_err *e);

/* Nonzero when a READY document with this sha256 exists in the collection
 * (store_document_put would answer UNCHANGED): lets a caller skip costly
 * work such as embedding. */
int store_document_has_sha(rg_store *s, int64_t collection_id, const char *sha256);

/* ---- ingestion tasks -------------------------------------------------- */

typedef enum rg_task_state { TASK_QUEUED = 0, TASK_RUNNING, TASK_DONE, TASK_FAILED } rg_task_state;
#define TASK_STATE_COUNT 4
const char *store_task_state_name(rg_task_state st); /* "queued", "running", "done", "failed" */

typedef struct rg_task {
    int64_t id;
    rg_task_state state;
    char *collection;    /* collection name */
    char *name;          /* document name */
    char *source_path;   /* file to read: a spooled upload or a path on disk */
    int spooled;         /* 1 = source_path is ragd's own copy, removed when done */
    char *metadata_json; /* user metadata for the document */
    int64_t document_id; /* 0 until known */
    char *outcome;       /* "added", "unchanged", "replaced", or NULL */
    int64_t progress_done, progress_total; /* steps done / total, for progress bars */
    char *error;
    int64_t created_ms, updated_ms;
} rg_task;

typedef struct rg_task_in {
    const char *collection;
    const char *name;
    const char *source_path;
    int spooled;
    const char *metadata_json;
} rg_task_in;

rg_status store_task_create(rg_store *s, const rg_task_in *t, int64_t *id, rg_err *e);
rg_status store_task_get(rg_store *s, int64_t id, rg_task *out, rg_err *e);
/* Moves a task to state with progress; document_id/outcome/error may be
 * 0/NULL to leave them unchanged. */
rg_status store_task_update(rg_store *s, int64_t id, rg_task_state state, int64_t done, int64_t total,
                            int64_t document_id, const char *outcome, const char *error, rg_err *e);
/* Tasks still QUEUED or RUNNING (oldest first): what a restart must resume. */
rg_status store_task_list_unfinished(rg_store *s, rg_task **out, size_t *n, rg_err *e);
/* Most recent tasks first, paged. */
rg_status store_task_list(rg_store *s, size_t limit, size_t offset, rg_task **out, size_t *n, rg_err *e);
void store_task_free(rg_task *t);
void store_tasks_free(rg_task *t, size_t n);

/* ---- statistics (for /v1/metrics) ------------------------------------- */

typedef struct rg_store_stats {
    int64_t collections;
    int64_t documents;
    int64_t documents_failed;
    int64_t chunks;
    int64_t tasks[TASK_STATE_COUNT];
} rg_store_stats;

rg_status store_stats(rg_store *s, rg_store_stats *out, rg_err *e);

#endif
