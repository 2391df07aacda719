/* test_store_index_settings.c - schema v3: per-collection dense index
 * settings (migration from a v2 database, round trip, bounds, the
 * ensure-with-settings rule) and the embedding backlog with its cursor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "common/sha256.h"
#include "store/store.h"
#include "store/vectors.h"

static char dir[] = "/tmp/ragd-idxset-XXXXXX";
static char path[256];

static void raw_exec(const char *sql)
{
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    CHECK_MSG(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
    sqlite3_free(msg);
    sqlite3_close(db);
}

static int64_t raw_i64(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* A document of n one-word chunks "<name>0 <name>1 ..."; chunk ids out. */
static void add_doc(rg_store *s, int64_t coll, const char *name, int n, int64_t *ids)
{
    char text[256] = "";
    rg_chunk_in chunks[8];
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (i)
            text[len++] = ' ';
        size_t start = len;
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%d", name, i);
        chunks[i] = (rg_chunk_in){.text = text + start, .text_len = len - start, .char_start = (int64_t)start,
                                  .char_end = (int64_t)len};
    }
    char sha[65];
    sha256_hex(text, len, sha);
    rg_document_in d = {.collection_id = coll, .name = name, .source = "upload", .mime = "text/plain",
                        .byte_size = (int64_t)len, .sha256 = sha, .text = text, .text_len = len};
    rg_err e = {0};
    int64_t doc = 0;
    CHECK_OK(store_document_put(s, &d, chunks, (size_t)n, &doc, NULL, &e), e);
    rg_chunk *cs = NULL;
    size_t nc = 0;
    CHECK_OK(store_chunk_list(s, doc, &cs, &nc, &e), e);
    for (size_t i = 0; i < nc && i < (size_t)n; i++)
        ids[i] = cs[i].id;
    store_chunks_free(cs, nc);
}

/* A database as schema v2 left it: the settings columns are absent. */
static void test_migration_from_v2(void)
{
    rg_store *s = NULL;
    rg_err e = {0};
    CHECK_OK(store_open(path, &s, &e), e);
    int64_t cid = 0, ids[2];
    CHECK_OK(store_collection_create(s, "old", "{\"team\":\"a\"}", &cid, &e), e);
    add_doc(s, cid, "legacy", 2, ids);
    store_close(s);
    raw_exec("ALTER TABLE collections DROP COLUMN index_type; ALTER TABLE collections DROP COLUMN index_hnsw_m;"
             "ALTER TABLE collections DROP COLUMN index_ef_construction;"
             "ALTER TABLE collections DROP COLUMN index_ef_search; PRAGMA user_version = 2;");
    CHECK(raw_i64("SELECT count(*) FROM pragma_table_info('collections') WHERE name LIKE 'index_%'") == 0);

    s = NULL;
    CHECK_OK(store_open(path, &s, &e), e);
    if (!s)
        return;
    CHECK(store_schema_version(s) == 3);
    CHECK(raw_i64("PRAGMA user_version") == 3);
    rg_collection c;
    CHECK_OK(store_collection_get(s, "old", &c, &e), e);
    /* Existing collections keep the exact index they had, data intact. */
    CHECK_STR(c.index.type, "flat");
    CHECK(c.index.hnsw_m == STORE_INDEX_HNSW_M_DEFAULT);
    CHECK(c.index.ef_search == STORE_INDEX_EF_SEARCH_DEFAULT);
    CHECK(c.n_documents == 1 && c.n_chunks == 2);
    CHECK(c.metadata_json && strstr(c.metadata_json, "team"));
    store_collection_free(&c);
    /* The columns' own checks hold for writers other than ragd too. */
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "UPDATE collections SET index_type = 'ivf'", NULL, NULL, NULL) == SQLITE_CONSTRAINT);
    CHECK(sqlite3_exec(db, "UPDATE collections SET index_hnsw_m = 1000", NULL, NULL, NULL) == SQLITE_CONSTRAINT);
    sqlite3_close(db);
    store_close(s);
}

static void test_round_trip_and_bounds(void)
{
    rg_store *s = NULL;
    rg_err e = {0};
    CHECK_OK(store_open(path, &s, &e), e);
    if (!s)
        return;
    rg_index_settings h;
    store_index_settings_default(&h);
    CHECK_STR(h.type, "flat");
    snprintf(h.type, sizeof h.type, "hnsw");
    h.hnsw_m = 16;
    h.ef_construction = 100;
    h.ef_search = 128;
    int64_t hid = 0;
    CHECK_OK(store_collection_create_indexed(s, "graph", NULL, &h, &hid, &e), e);

    rg_collection c;
    CHECK_OK(store_collection_get(s, "graph", &c, &e), e);
    CHECK(store_index_settings_equal(&c.index, &h));
    CHECK(c.index.hnsw_m == 16 && c.index.ef_construction == 100 && c.index.ef_search == 128);
    store_collection_free(&c);
    rg_index_settings by_id;
    CHECK_OK(store_collection_index(s, hid, &by_id, &e), e);
    CHECK(store_index_settings_equal(&by_id, &h));
    CHECK(store_collection_index(s, 987654, &by_id, &e) == RG_ERR_NOT_FOUND);

    rg_collection *cs = NULL;
    size_t n = 0;
    CHECK_OK(store_collection_list(s, &cs, &n, &e), e);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(cs[i].name, "graph") == 0)
            found = store_index_settings_equal(&cs[i].index, &h);
    CHECK(found);
    store_collections_free(cs, n);

    /* Out of bounds: refused with the field named, nothing created. */
    rg_index_settings bad = h;
    bad.hnsw_m = 3;
    CHECK(store_collection_create_indexed(s, "bad1", NULL, &bad, NULL, &e) == RG_ERR_INVALID);
    CHECK_MSG(strstr(e.msg, "'m'") && strstr(e.msg, "4") && strstr(e.msg, "128"), "message: %s", e.msg);
    bad = h;
    bad.ef_search = 5000;
    CHECK(store_collection_create_indexed(s, "bad2", NULL, &bad, NULL, &e) == RG_ERR_INVALID);
    CHECK_MSG(strstr(e.msg, "ef_search") != NULL, "message: %s", e.msg);
    bad = h;
    bad.ef_construction = 0;
    CHECK(store_collection_create_indexed(s, "bad3", NULL, &bad, NULL, &e) == RG_ERR_INVALID);
    bad = h;
    snprintf(bad.type, sizeof bad.type, "ivf");
    CHECK(store_collection_create_indexed(s, "bad4", NULL, &bad, NULL, &e) == RG_ERR_INVALID);
    CHECK_MSG(strstr(e.msg, "flat or hnsw") != NULL, "message: %s", e.msg);
    CHECK(store_collection_get(s, "bad1", &c, &e) == RG_ERR_NOT_FOUND);

    /* Ensure: same settings find the collection; others are refused, so
     * `ragd ingest --index` never silently keeps a different index. */
    int64_t again = 0;
    CHECK_OK(store_collection_ensure_indexed(s, "graph", &h, &again, &e), e);
    CHECK(again == hid);
    CHECK_OK(store_collection_ensure(s, "graph", &again, &e), e); /* no settings asked: any */
    rg_index_settings flat;
    store_index_settings_default(&flat);
    CHECK(store_collection_ensure_indexed(s, "graph", &flat, &again, &e) == RG_ERR_EXISTS);
    CHECK_MSG(strstr(e.msg, "hnsw") != NULL, "message: %s", e.msg);
    rg_index_settings other = h;
    other.ef_search = 256;
    CHECK(store_collection_ensure_indexed(s, "graph", &other, &again, &e) == RG_ERR_EXISTS);
    CHECK_OK(store_collection_ensure_indexed(s, "fresh", &h, &again, &e), e);
    CHECK_OK(store_collection_index(s, again, &by_id, &e), e);
    CHECK_STR(by_id.type, "hnsw");
    /* Flat settings carry no parameters: any values compare equal. */
    rg_index_settings flat2 = flat;
    flat2.hnsw_m = 64;
    CHECK(store_index_settings_equal(&flat, &flat2));
    store_close(s);
}

static void test_backlog(void)
{
    rg_store *s = NULL;
    rg_err e = {0};
    CHECK_OK(store_open(path, &s, &e), e);
    if (!s)
        return;
    int64_t c1 = 0, c2 = 0, a[3], b[3];
    CHECK_OK(store_collection_ensure(s, "bl1", &c1, &e), e);
    CHECK_OK(store_collection_ensure(s, "bl2", &c2, &e), e);
    add_doc(s, c1, "apple", 3, a);
    add_doc(s, c2, "berry", 3, b);
    /* Everything so far lacks vectors for "mx" (the migration test's chunks
     * too): page through with a cursor, two at a time. */
    int64_t cursor = 0, next = 0;
    rg_backlog_chunk *bc = NULL;
    size_t n = 0, total = 0;
    int saw_a1 = 0, saw_b2 = 0;
    for (int page = 0; page < 20; page++) {
        CHECK_OK(store_vector_backlog(s, "mx", cursor, 2, &bc, &n, &next, &e), e);
        CHECK(n <= 2);
        CHECK(next >= cursor);
        for (size_t i = 0; i < n; i++) {
            CHECK(bc[i].id > cursor && bc[i].id <= next);
            if (bc[i].id == a[1]) {
                saw_a1 = bc[i].collection_id == c1 && strcmp(bc[i].text, "apple1") == 0;
            }
            if (bc[i].id == b[2])
                saw_b2 = bc[i].collection_id == c2 && strcmp(bc[i].text, "berry2") == 0;
        }
        total += n;
        store_backlog_free(bc, n);
        cursor = next;
        if (n < 2)
            break;
    }
    CHECK(saw_a1 && saw_b2);
    CHECK(total == 8); /* 2 legacy + 3 + 3 */
    CHECK(cursor == b[2]);
    /* At the end: nothing more, the cursor stays. */
    CHECK_OK(store_vector_backlog(s, "mx", cursor, 2, &bc, &n, &next, &e), e);
    CHECK(n == 0 && next == cursor);

    /* Chunks that got vectors drop out; a new document appears after the
     * cursor. */
    float v[3 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    CHECK_OK(store_vectors_put(s, "mx", 4, 3, a, v, &e), e);
    CHECK_OK(store_vector_backlog(s, "mx", 0, 50, &bc, &n, &next, &e), e);
    for (size_t i = 0; i < n; i++)
        CHECK(bc[i].id != a[0] && bc[i].id != a[1] && bc[i].id != a[2]);
    CHECK(n == 5);
    store_backlog_free(bc, n);
    int64_t c[2];
    add_doc(s, c1, "cherry", 2, c);
    CHECK_OK(store_vector_backlog(s, "mx", cursor, 50, &bc, &n, &next, &e), e);
    CHECK(n == 2 && bc[0].id == c[0] && bc[1].id == c[1]);
    CHECK(next == c[1]);
    store_backlog_free(bc, n);

    CHECK(store_vector_backlog(s, "", 0, 10, &bc, &n, &next, &e) == RG_ERR_INVALID);
    CHECK(store_vector_backlog(s, "mx", 0, 0, &bc, &n, &next, &e) == RG_ERR_INVALID);
    CHECK(store_vector_backlog(s, "mx", 0, 100000, &bc, &n, &next, &e) == RG_ERR_INVALID);
    store_close(s);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 2;
    snprintf(path, sizeof path, "%s/ragd.db", dir);
    test_migration_from_v2();
    test_round_trip_and_bounds();
    test_backlog();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_finish("test_store_index_settings");
}
