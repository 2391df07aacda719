/* schema.c - the database schema as an ordered list of forward migrations.
 *
 * migrations[i] takes a database from user_version i to i + 1. Each step
 * runs in its own IMMEDIATE transaction together with its version bump, so
 * a crash leaves the database at some whole version, and two processes
 * opening the same new file at once cannot both apply a step. Never edit a
 * released step: append a new one and raise STORE_SCHEMA_VERSION. */
#include "store/store_internal.h"

#include <stdio.h>

/* Metadata columns hold a JSON object as text. CASE keeps json_type() from
 * raising "malformed JSON" before json_valid() has said no. */
#define JSON_OBJECT_CHECK(col) "CHECK (CASE WHEN json_valid(" col ") THEN json_type(" col ") = 'object' ELSE 0 END)"

static const char *const migrations[] = {
    /* 0 -> 1: the initial schema. Ids are AUTOINCREMENT so they are never
     * reused: a vector index file records the highest chunk id it covers,
     * and a reused id would look covered while holding other text. */
    "PRAGMA application_id = 1918986084;\n" /* STORE_APPLICATION_ID, "ragd" */
    "CREATE TABLE collections (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  name TEXT NOT NULL UNIQUE,\n"
    "  metadata TEXT NOT NULL DEFAULT '{}' " JSON_OBJECT_CHECK("metadata") ",\n"
    "  created_ms INTEGER NOT NULL\n"
    ");\n"
    "CREATE TABLE documents (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL CHECK (length(name) > 0),\n"
    "  source TEXT NOT NULL DEFAULT '',\n"
    "  mime TEXT NOT NULL DEFAULT '',\n"
    "  byte_size INTEGER NOT NULL DEFAULT 0 CHECK (byte_size >= 0),\n"
    "  sha256 TEXT NOT NULL DEFAULT '',\n"
    "  status TEXT NOT NULL CHECK (status IN ('ready', 'failed')),\n"
    "  error TEXT,\n"
    "  metadata TEXT NOT NULL DEFAULT '{}' " JSON_OBJECT_CHECK("metadata") ",\n"
    "  title TEXT,\n"
    "  text TEXT,\n"
    "  n_chars INTEGER NOT NULL DEFAULT 0,\n"
    "  created_ms INTEGER NOT NULL,\n"
    "  updated_ms INTEGER NOT NULL,\n"
    "  UNIQUE (collection_id, name)\n"
    ");\n"
    "CREATE INDEX documents_by_sha256 ON documents(collection_id, sha256);\n"
    "CREATE INDEX documents_by_created ON documents(created_ms);\n"
    "CREATE TABLE chunks (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,\n"
    "  ordinal INTEGER NOT NULL CHECK (ordinal >= 0),\n"
    "  text TEXT NOT NULL,\n"
    "  char_start INTEGER NOT NULL CHECK (char_start >= 0),\n"
    "  char_end INTEGER NOT NULL CHECK (char_end >= char_start),\n"
    "  heading_path TEXT,\n"
    "  page INTEGER NOT NULL DEFAULT 0 CHECK (page >= 0),\n"
    "  token_count INTEGER NOT NULL DEFAULT 0 CHECK (token_count >= 0),\n"
    "  UNIQUE (document_id, ordinal)\n" /* also the chunks-by-document index */
    ");\n"
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(\n"
    "  text, content = 'chunks', content_rowid = 'id',\n"
    "  tokenize = 'porter unicode61 remove_diacritics 2'\n"
    ");\n"
    /* External content: the FTS index only changes through these triggers.
     * They also fire for rows removed by ON DELETE CASCADE (tested). */
    "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN\n"
    "  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);\n"
    "END;\n"
    "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN\n"
    "  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);\n"
    "END;\n"
    "CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN\n"
    "  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);\n"
    "  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);\n"
    "END;\n"
    "CREATE TABLE tasks (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),\n"
    "  collection TEXT NOT NULL,\n"
    "  name TEXT NOT NULL,\n"
    "  source_path TEXT NOT NULL,\n"
    "  spooled INTEGER NOT NULL DEFAULT 0,\n"
    "  metadata TEXT NOT NULL DEFAULT '{}' " JSON_OBJECT_CHECK("metadata") ",\n"
    "  document_id INTEGER,\n" /* no foreign key: a task outlives its document */
    "  outcome TEXT,\n"
    "  progress_done INTEGER NOT NULL DEFAULT 0,\n"
    "  progress_total INTEGER NOT NULL DEFAULT 0,\n"
    "  error TEXT,\n"
    "  created_ms INTEGER NOT NULL,\n"
    "  updated_ms INTEGER NOT NULL\n"
    ");\n"
    "CREATE INDEX tasks_by_state ON tasks(state, id);\n",

    /* 1 -> 2: embedding vectors, the source of truth behind each
     * collection's FAISS index. One vector per chunk and model; float32
     * little-endian, so a vector's blob is dim * 4 bytes. */
    "CREATE TABLE chunk_vectors (\n"
    "  chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,\n"
    "  model TEXT NOT NULL,\n"
    "  dim INTEGER NOT NULL CHECK (dim > 0),\n"
    "  vector BLOB NOT NULL CHECK (length(vector) = dim * 4),\n"
    "  PRIMARY KEY (model, chunk_id)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX chunk_vectors_by_chunk ON chunk_vectors(chunk_id);\n",

    /* 2 -> 3: each collection's dense index settings (the kind of FAISS
     * index its vectors are kept in). Existing collections keep the exact
     * flat index they were built with. The bounds match
     * store_index_settings_check, so a row can never hold settings the
     * index builder would refuse. */
    "ALTER TABLE collections ADD COLUMN index_type TEXT NOT NULL DEFAULT 'flat'\n"
    "  CHECK (index_type IN ('flat', 'hnsw'));\n"
    "ALTER TABLE collections ADD COLUMN index_hnsw_m INTEGER NOT NULL DEFAULT 32\n"
    "  CHECK (index_hnsw_m BETWEEN 4 AND 128);\n"
    "ALTER TABLE collections ADD COLUMN index_ef_construction INTEGER NOT NULL DEFAULT 40\n"
    "  CHECK (index_ef_construction BETWEEN 8 AND 2048);\n"
    "ALTER TABLE collections ADD COLUMN index_ef_search INTEGER NOT NULL DEFAULT 64\n"
    "  CHECK (index_ef_search BETWEEN 8 AND 4096);\n",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

_Static_assert(N_MIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");
_Static_assert(STORE_APPLICATION_ID == 1918986084, "application_id literal in migration 1");

static rg_status read_pragma(rg_store *s, const char *pragma, int64_t *v, rg_err *e)
{
    return store_db_query_i64(s, pragma, v, e);
}

static rg_status check_version(rg_store *s, const char *path, int64_t version, rg_err *e)
{
    if (version > STORE_SCHEMA_VERSION)
        return rg_error(e, RG_ERR_CORRUPT,
                        "store: %s has schema version %lld but this ragd knows only up to %d; "
                        "it was written by a newer ragd (upgrade ragd, or use another database)",
                        path, (long long)version, STORE_SCHEMA_VERSION);
    if (version < 0)
        return rg_error(e, RG_ERR_CORRUPT, "store: %s has a negative schema version %lld", path,
                        (long long)version);
    return RG_OK;
}

/* A database at version 0 must be empty: anything else is some other
 * program's file and we must not write our tables into it. */
static rg_status check_fresh(rg_store *s, const char *path, rg_err *e)
{
    int64_t n;
    rg_status st = store_db_query_i64(s, "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'", &n, e);
    if (st)
        return st;
    if (n > 0)
        return rg_error(e, RG_ERR_CORRUPT, "store: %s is not a ragd database (it has tables but no schema version)",
                        path);
    return RG_OK;
}

static rg_status apply_step(rg_store *s, const char *path, int target, rg_err *e)
{
    rg_status st = store_db_begin(s, e);
    if (st)
        return st;
    /* Re-read inside the write lock: another process may have migrated. */
    int64_t version;
    st = read_pragma(s, "PRAGMA user_version", &version, e);
    if (!st)
        st = check_version(s, path, version, e);
    if (!st && version == 0)
        st = check_fresh(s, path, e);
    if (!st && version < target) {
        if (version != target - 1) {
            st = rg_error(e, RG_ERR_INTERNAL, "store: migration order broken at version %lld", (long long)version);
        } else {
            st = store_db_exec(s, migrations[target - 1], e);
            if (st) {
                rg_error_wrap(e, "migrating %s to schema version %d", path, target);
            } else {
                char bump[64];
                snprintf(bump, sizeof bump, "PRAGMA user_version = %d", target);
                st = store_db_exec(s, bump, e);
            }
        }
    }
    return store_db_end(s, st, e);
}

rg_status store_schema_migrate(rg_store *s, const char *path, rg_err *e)
{
    int64_t version;
    rg_status st = read_pragma(s, "PRAGMA user_version", &version, e);
    if (!st)
        st = check_version(s, path, version, e);
    if (st)
        return st;
    for (int target = (int)version + 1; target <= N_MIGRATIONS; target++) {
        st = apply_step(s, path, target, e);
        if (st)
            return st;
    }
    st = read_pragma(s, "PRAGMA user_version", &version, e);
    if (!st)
        st = check_version(s, path, version, e);
    if (st)
        return st;
    int64_t app_id;
    st = read_pragma(s, "PRAGMA application_id", &app_id, e);
    if (st)
        return st;
    if (app_id != STORE_APPLICATION_ID)
        return rg_error(e, RG_ERR_CORRUPT, "store: %s is not a ragd database (application_id %lld)", path,
                        (long long)app_id);
    return RG_OK;
}
