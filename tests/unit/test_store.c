/* test_store.c - the SQLite store: schema and migrations, collections,
 * atomic document put/replace, FTS consistency, tasks, threads, stats.
 *
 * Reaches into store_internal.h only to inject faults (a trigger that
 * fails half-way through a put, a short busy timeout). FTS consistency is
 * checked through a separate raw connection, because the store's own
 * search joins chunks and would hide stale FTS rows. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "common/sha256.h"
#include "common/utf8.h"
#include "store/store.h"
#include "store/store_internal.h"

/* ---- scaffolding -------------------------------------------------------- */

typedef struct tdb {
    char dir[64];
    char path[128];
} tdb;

static void tdb_init(tdb *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/ragd-test-store-XXXXXX");
    if (!mkdtemp(t->dir)) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(t->path, sizeof t->path, "%s/ragd.db", t->dir);
}

static void tdb_cleanup(tdb *t)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(p, sizeof p, "%s%s", t->path, suffixes[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        fprintf(stderr, "raw open %s: %s\n", path, sqlite3_errmsg(db));
        exit(2);
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* One integer from a query on a raw connection, or INT64_MIN on error. */
static int64_t raw_i64(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = INT64_MIN;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "raw prepare: %s\n", sqlite3_errmsg(db));
        return v;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int raw_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* The FTS index agrees with the chunks table (rank 1 = also check against
 * the external content table, which a plain integrity-check skips). */
static int fts_consistent(const char *path)
{
    sqlite3 *db = raw_open(path);
    int rc = raw_exec(db, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)");
    sqlite3_close(db);
    return rc == SQLITE_OK;
}

/* Rows the FTS index itself holds for a term, stale ones included. */
static int64_t fts_index_rows(const char *path, const char *term)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH '%s'", term);
    sqlite3 *db = raw_open(path);
    int64_t n = raw_i64(db, sql);
    sqlite3_close(db);
    return n;
}

static rg_store *open_store(const char *path)
{
    rg_store *s = NULL;
    rg_err e = {0};
    rg_status st = store_open(path, &s, &e);
    CHECK_OK(st, e);
    if (st) {
        fprintf(stderr, "cannot continue without a store\n");
        exit(2);
    }
    return s;
}

/* Puts a document whose text is the chunk texts joined by "\n\n", with
 * sha256 of the text, so different text means different bytes. */
static rg_status put_doc(rg_store *s, int64_t coll, const char *name, const char *const *texts, size_t n,
                         const char *metadata, int64_t *id, rg_put_outcome *oc, rg_err *e)
{
    char text[4096];
    size_t len = 0;
    rg_chunk_in chunks[16];
    if (n > 16)
        return RG_ERR_INTERNAL;
    for (size_t i = 0; i < n; i++) {
        if (i) {
            memcpy(text + len, "\n\n", 2);
            len += 2;
        }
        size_t tl = strlen(texts[i]);
        if (len + tl >= sizeof text)
            return RG_ERR_INTERNAL;
        chunks[i] = (rg_chunk_in){.text = text + len, .text_len = tl};
        chunks[i].char_start = (int64_t)utf8_length(text, len);
        memcpy(text + len, texts[i], tl);
        len += tl;
        chunks[i].char_end = (int64_t)utf8_length(text, len);
        chunks[i].heading_path = i == 0 ? "Intro" : "Intro > More";
        chunks[i].page = (int)i + 1;
        chunks[i].token_count = (int)tl / 4;
    }
    text[len] = '\0';
    char sha[65];
    sha256_hex(text, len, sha);
    rg_document_in d = {.collection_id = coll,
                        .name = name,
                        .source = "upload",
                        .mime = "text/plain",
                        .byte_size = (int64_t)len,
                        .sha256 = sha,
                        .metadata_json = metadata,
                        .title = "A title",
                        .text = text,
                        .text_len = len};
    return store_document_put(s, &d, chunks, n, id, oc, e);
}

static size_t search_count(rg_store *s, int64_t coll, const char *expr)
{
    rg_hit *h = NULL;
    size_t n = 0;
    rg_err e = {0};
    rg_status st = store_chunk_search_fts(s, coll, expr, 50, &h, &n, &e);
    CHECK_OK(st, e);
    store_hits_free(h, n);
    return st ? (size_t)-1 : n;
}

/* ---- schema ------------------------------------------------------------- */

static void test_open_and_migrate(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    CHECK(store_schema_version(s) == STORE_SCHEMA_VERSION);
    rg_err e = {0};
    int64_t cid = 0;
    CHECK_OK(store_collection_create(s, "docs", "{\"owner\":\"qa\"}", &cid, &e), e);
    store_close(s);

    sqlite3 *db = raw_open(t.path);
    CHECK(raw_i64(db, "PRAGMA user_version") == STORE_SCHEMA_VERSION);
    CHECK(raw_i64(db, "PRAGMA application_id") == STORE_APPLICATION_ID);
    CHECK(raw_i64(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'chunks_fts'") == 1);
    /* WAL is persistent in the file. */
    CHECK(raw_i64(db, "SELECT journal_mode = 'wal' FROM pragma_journal_mode") == 1);
    sqlite3_close(db);

    /* Reopening keeps the data and the version. */
    s = open_store(t.path);
    CHECK(store_schema_version(s) == STORE_SCHEMA_VERSION);
    rg_collection c;
    CHECK_OK(store_collection_get(s, "docs", &c, &e), e);
    CHECK(c.id == cid);
    CHECK(c.metadata_json && strstr(c.metadata_json, "qa"));
    store_collection_free(&c);
    store_close(s);
    tdb_cleanup(&t);
}

static void test_refuse_newer_and_foreign(void)
{
    tdb t;
    tdb_init(&t);
    store_close(open_store(t.path));
    sqlite3 *db = raw_open(t.path);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SCHEMA_VERSION + 1);
    CHECK(raw_exec(db, sql) == SQLITE_OK);
    sqlite3_close(db);

    rg_store *s = NULL;
    rg_err e = {0};
    CHECK(store_open(t.path, &s, &e) == RG_ERR_CORRUPT);
    CHECK(s == NULL);
    CHECK_MSG(strstr(e.msg, "newer") != NULL, "message: %s", e.msg);
    tdb_cleanup(&t);

    /* Some other program's SQLite file: never write our tables into it. */
    tdb_init(&t);
    db = raw_open(t.path);
    CHECK(raw_exec(db, "CREATE TABLE notes(x)") == SQLITE_OK);
    sqlite3_close(db);
    rg_err_clear(&e);
    CHECK(store_open(t.path, &s, &e) == RG_ERR_CORRUPT);
    CHECK_MSG(strstr(e.msg, "not a ragd database") != NULL, "message: %s", e.msg);
    db = raw_open(t.path);
    CHECK(raw_i64(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'documents'") == 0);
    sqlite3_close(db);
    tdb_cleanup(&t);

    /* Not a database at all. */
    tdb_init(&t);
    FILE *f = fopen(t.path, "w");
    for (int i = 0; f && i < 100; i++)
        fputs("this is not a database file. ", f);
    if (f)
        fclose(f);
    rg_err_clear(&e);
    CHECK(store_open(t.path, &s, &e) == RG_ERR_CORRUPT);
    tdb_cleanup(&t);
}

/* ---- collections -------------------------------------------------------- */

static void test_collection_names(void)
{
    CHECK(store_collection_name_valid("docs"));
    CHECK(store_collection_name_valid("a"));
    CHECK(store_collection_name_valid("9lives_v1.2-beta"));
    CHECK(!store_collection_name_valid(""));
    CHECK(!store_collection_name_valid(NULL));
    CHECK(!store_collection_name_valid("_hidden"));
    CHECK(!store_collection_name_valid(".hidden"));
    CHECK(!store_collection_name_valid("has space"));
    CHECK(!store_collection_name_valid("slash/name"));
    CHECK(!store_collection_name_valid("caf\xc3\xa9"));
    char n64[65], n65[66];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    memset(n65, 'a', 65);
    n65[65] = '\0';
    CHECK(store_collection_name_valid(n64));
    CHECK(!store_collection_name_valid(n65));
}

static void test_collections(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    rg_err e = {0};
    int64_t a = 0, b = 0, again = 0;
    CHECK_OK(store_collection_create(s, "beta", NULL, &b, &e), e);
    CHECK_OK(store_collection_create(s, "alpha", "{}", &a, &e), e);
    CHECK(a > 0 && b > 0 && a != b);
    CHECK(store_collection_create(s, "alpha", NULL, &again, &e) == RG_ERR_EXISTS);
    CHECK(store_collection_create(s, "bad name", NULL, &again, &e) == RG_ERR_INVALID);
    CHECK(store_collection_create(s, "gamma", "[1,2]", &again, &e) == RG_ERR_INVALID);
    CHECK(store_collection_create(s, "gamma", "{not json", &again, &e) == RG_ERR_INVALID);

    for (int i = 0; i < 5; i++) { /* as ingestion does, once per document */
        CHECK_OK(store_collection_ensure(s, "alpha", &again, &e), e);
        CHECK(again == a);
    }
    int64_t g = 0;
    CHECK_OK(store_collection_ensure(s, "gamma", &g, &e), e);
    CHECK(g > 0 && g != a && g != b);
    /* ensuring an existing collection takes no id: the next is the next */
    CHECK_MSG(g == (a > b ? a : b) + 1, "collection ids jumped: %lld after %lld", (long long)g,
              (long long)(a > b ? a : b));
    CHECK(store_collection_ensure(s, "-x", &g, &e) == RG_ERR_INVALID);

    rg_collection *list = NULL;
    size_t n = 0;
    CHECK_OK(store_collection_list(s, &list, &n, &e), e);
    CHECK(n == 3);
    if (n == 3) {
        CHECK_STR(list[0].name, "alpha");
        CHECK_STR(list[1].name, "beta");
        CHECK_STR(list[2].name, "gamma");
        CHECK_STR(list[2].metadata_json, "{}");
    }
    store_collections_free(list, n);

    /* Counts and cascading delete. */
    const char *t1[] = {"The quick brown fox jumps.", "Over the lazy dog."};
    const char *t2[] = {"Foxes are clever animals."};
    int64_t d1, d2;
    rg_put_outcome oc;
    CHECK_OK(put_doc(s, a, "one.txt", t1, 2, NULL, &d1, &oc, &e), e);
    CHECK_OK(put_doc(s, a, "two.txt", t2, 1, NULL, &d2, &oc, &e), e);
    CHECK_OK(put_doc(s, b, "keep.txt", t2, 1, NULL, NULL, &oc, &e), e);
    rg_collection c;
    CHECK_OK(store_collection_get(s, "alpha", &c, &e), e);
    CHECK(c.n_documents == 2);
    CHECK(c.n_chunks == 3);
    store_collection_free(&c);
    CHECK(store_collection_get(s, "nope", &c, &e) == RG_ERR_NOT_FOUND);
    store_collection_free(&c); /* zeroed on failure: safe */

    CHECK(search_count(s, 0, "fox") == 3); /* porter: foxes -> fox */
    CHECK_OK(store_collection_delete(s, "alpha", &e), e);
    CHECK(store_collection_delete(s, "alpha", &e) == RG_ERR_NOT_FOUND);
    CHECK(search_count(s, 0, "fox") == 1);
    CHECK(fts_index_rows(t.path, "lazy") == 0);
    CHECK(fts_index_rows(t.path, "fox") == 1);
    CHECK(fts_consistent(t.path));
    rg_document d;
    CHECK(store_document_get(s, d1, &d, &e) == RG_ERR_NOT_FOUND);
    rg_store_stats stats;
    CHECK_OK(store_stats(s, &stats, &e), e);
    CHECK(stats.collections == 2 && stats.documents == 1 && stats.chunks == 1);

    /* A new collection never reuses the deleted one's id. */
    int64_t a2 = 0;
    CHECK_OK(store_collection_create(s, "alpha", NULL, &a2, &e), e);
    CHECK(a2 > g);
    store_close(s);
    tdb_cleanup(&t);
}

/* ---- documents ---------------------------------------------------------- */

static void test_put_replace(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    rg_err e = {0};
    int64_t coll = 0, other = 0;
    CHECK_OK(store_collection_create(s, "docs", NULL, &coll, &e), e);
    CHECK_OK(store_collection_create(s, "other", NULL, &other, &e), e);

    const char *v1[] = {"Installing the widget requires a screwdriver.", "Calibrate the sprocket afterwards."};
    int64_t id1 = 0, id = 0;
    rg_put_outcome oc = STORE_PUT_UNCHANGED;
    CHECK_OK(put_doc(s, coll, "guide.md", v1, 2, "{\"lang\":\"en\"}", &id1, &oc, &e), e);
    CHECK(oc == STORE_PUT_ADDED);
    CHECK(id1 > 0);

    rg_document d;
    CHECK_OK(store_document_get(s, id1, &d, &e), e);
    CHECK(d.collection_id == coll);
    CHECK_STR(d.collection, "docs");
    CHECK_STR(d.name, "guide.md");
    CHECK_STR(d.status, DOC_STATUS_READY);
    CHECK(d.error == NULL);
    CHECK(d.n_chunks == 2);
    CHECK(strlen(d.sha256) == 64);
    CHECK_STR(d.title, "A title");
    CHECK_STR(d.metadata_json, "{\"lang\":\"en\"}");
    CHECK(d.n_chars == (int64_t)(strlen(v1[0]) + 2 + strlen(v1[1])));
    char sha1[65];
    memcpy(sha1, d.sha256, sizeof sha1);
    int64_t updated1 = d.updated_ms;
    store_document_free(&d);

    /* Same bytes again: unchanged, same id, nothing written. */
    CHECK_OK(put_doc(s, coll, "guide.md", v1, 2, NULL, &id, &oc, &e), e);
    CHECK(oc == STORE_PUT_UNCHANGED);
    CHECK(id == id1);
    /* Same bytes under another name in the same collection: unchanged too. */
    CHECK_OK(put_doc(s, coll, "copy-of-guide.md", v1, 2, NULL, &id, &oc, &e), e);
    CHECK(oc == STORE_PUT_UNCHANGED);
    CHECK(id == id1);
    /* ...but in another collection it is a new document. */
    CHECK_OK(put_doc(s, other, "guide.md", v1, 2, NULL, &id, &oc, &e), e);
    CHECK(oc == STORE_PUT_ADDED);
    CHECK(id != id1);
    CHECK(search_count(s, coll, "screwdriver") == 1);
    CHECK(search_count(s, 0, "screwdriver") == 2);

    /* Same name, new bytes: replaced in place. */
    const char *v2[] = {"Installing the gadget needs a wrench.", "No calibration.", "Done."};
    CHECK_OK(put_doc(s, coll, "guide.md", v2, 3, NULL, &id, &oc, &e), e);
    CHECK(oc == STORE_PUT_REPLACED);
    CHECK(id == id1);
    CHECK(search_count(s, coll, "screwdriver") == 0);
    CHECK(search_count(s, coll, "sprocket") == 0);
    CHECK(search_count(s, coll, "wrench") == 1);
    CHECK(search_count(s, 0, "screwdriver") == 1); /* the copy in "other" */
    CHECK(fts_consistent(t.path));
    CHECK_OK(store_document_get(s, id1, &d, &e), e);
    CHECK(d.n_chunks == 3);
    CHECK(strcmp(d.sha256, sha1) != 0);
    CHECK(d.updated_ms >= updated1);
    store_document_free(&d);

    rg_chunk *ch = NULL;
    size_t n = 0;
    CHECK_OK(store_chunk_list(s, id1, &ch, &n, &e), e);
    CHECK(n == 3);
    if (n == 3) {
        CHECK_STR(ch[0].text, v2[0]);
        CHECK_STR(ch[2].text, "Done.");
        CHECK(ch[1].ordinal == 1);
        CHECK(ch[0].char_start == 0);
        CHECK(ch[1].char_start == (int64_t)strlen(v2[0]) + 2);
        CHECK_STR(ch[1].heading_path, "Intro > More");
        CHECK(ch[2].page == 3);
        CHECK(ch[0].id < ch[1].id && ch[1].id < ch[2].id);
    }
    store_chunks_free(ch, n);

    char *text = NULL;
    size_t tl = 0;
    CHECK_OK(store_document_text(s, id1, &text, &tl, &e), e);
    CHECK(text && tl == strlen(text) && strncmp(text, v2[0], strlen(v2[0])) == 0);
    free(text);
    CHECK(store_document_text(s, 999999, &text, &tl, &e) == RG_ERR_NOT_FOUND);

    /* Listing: newest first, paged, per collection or all. */
    const char *v3[] = {"Third document."};
    int64_t id3 = 0;
    CHECK_OK(put_doc(s, coll, "third.md", v3, 1, NULL, &id3, &oc, &e), e);
    rg_document *docs = NULL;
    CHECK_OK(store_document_list(s, coll, 10, 0, &docs, &n, &e), e);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(docs[0].id == id3);
        CHECK(docs[1].id == id1);
    }
    store_documents_free(docs, n);
    CHECK_OK(store_document_list(s, coll, 1, 1, &docs, &n, &e), e);
    CHECK(n == 1 && docs[0].id == id1);
    store_documents_free(docs, n);
    CHECK_OK(store_document_list(s, 0, 0, 0, &docs, &n, &e), e);
    CHECK(n == 3);
    store_documents_free(docs, n);

    /* Input checks. */
    const char *bad[] = {"x"};
    CHECK(put_doc(s, 424242, "x.md", bad, 1, NULL, &id, &oc, &e) == RG_ERR_NOT_FOUND);
    CHECK(put_doc(s, coll, "x.md", bad, 1, "not json", &id, &oc, &e) == RG_ERR_INVALID);
    rg_document_in din = {.collection_id = coll, .name = "y.md", .sha256 = "abc", .text = "y", .text_len = 1};
    CHECK(store_document_put(s, &din, NULL, 0, &id, &oc, &e) == RG_ERR_INVALID);
    char zeros[65];
    memset(zeros, '0', 64);
    zeros[64] = '\0';
    din.sha256 = zeros;
    rg_chunk_in past = {.text = "y", .text_len = 1, .char_start = 0, .char_end = 5};
    CHECK(store_document_put(s, &din, &past, 1, &id, &oc, &e) == RG_ERR_INVALID);
    rg_chunk_in badutf = {.text = "\xff\xfe", .text_len = 2, .char_start = 0, .char_end = 1};
    CHECK(store_document_put(s, &din, &badutf, 1, &id, &oc, &e) == RG_ERR_INVALID);
    CHECK(store_document_get(s, 0, &d, &e) == RG_ERR_NOT_FOUND);

    store_close(s);
    tdb_cleanup(&t);
}

static void test_put_atomic(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    rg_err e = {0};
    int64_t coll = 0, id1 = 0, id = 0;
    rg_put_outcome oc;
    CHECK_OK(store_collection_create(s, "docs", NULL, &coll, &e), e);
    const char *v1[] = {"Original alpha paragraph.", "Original beta paragraph."};
    CHECK_OK(put_doc(s, coll, "a.md", v1, 2, NULL, &id1, &oc, &e), e);
    rg_document before;
    CHECK_OK(store_document_get(s, id1, &before, &e), e);

    /* Fail the third chunk insert of the replacement: by then the row was
     * rewritten and the old chunks deleted, so only a rollback saves us. */
    CHECK(sqlite3_exec(s->db,
                       "CREATE TEMP TRIGGER inject_failure BEFORE INSERT ON main.chunks WHEN new.ordinal = 2 "
                       "BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                       NULL, NULL, NULL) == SQLITE_OK);
    const char *v2[] = {"Replacement gamma.", "Replacement delta.", "Replacement epsilon."};
    rg_status st = put_doc(s, coll, "a.md", v2, 3, NULL, &id, &oc, &e);
    CHECK(st != RG_OK);
    CHECK_MSG(strstr(e.msg, "injected failure") != NULL, "message: %s", e.msg);
    CHECK(sqlite3_get_autocommit(s->db)); /* no transaction left open */
    CHECK(sqlite3_exec(s->db, "DROP TRIGGER temp.inject_failure", NULL, NULL, NULL) == SQLITE_OK);

    rg_document after;
    CHECK_OK(store_document_get(s, id1, &after, &e), e);
    CHECK_STR(after.sha256, before.sha256);
    CHECK(after.n_chunks == 2);
    CHECK(after.updated_ms == before.updated_ms);
    store_document_free(&after);
    CHECK(search_count(s, coll, "alpha") == 1);
    CHECK(search_count(s, coll, "gamma") == 0);
    CHECK(fts_index_rows(t.path, "gamma") == 0);
    CHECK(fts_consistent(t.path));

    /* A failed first put leaves no document behind either. */
    CHECK(sqlite3_exec(s->db,
                       "CREATE TEMP TRIGGER inject_failure BEFORE INSERT ON main.chunks WHEN new.ordinal = 1 "
                       "BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                       NULL, NULL, NULL) == SQLITE_OK);
    CHECK(put_doc(s, coll, "new.md", v2, 3, NULL, &id, &oc, &e) != RG_OK);
    CHECK(sqlite3_exec(s->db, "DROP TRIGGER temp.inject_failure", NULL, NULL, NULL) == SQLITE_OK);
    rg_store_stats stats;
    CHECK_OK(store_stats(s, &stats, &e), e);
    CHECK(stats.documents == 1 && stats.chunks == 2);

    /* Another process holds the write lock past our busy timeout: BUSY,
     * and again nothing changes. */
    sqlite3 *other = raw_open(t.path);
    CHECK(raw_exec(other, "BEGIN IMMEDIATE") == SQLITE_OK);
    sqlite3_busy_timeout(s->db, 50);
    rg_err_clear(&e);
    st = put_doc(s, coll, "a.md", v2, 3, NULL, &id, &oc, &e);
    CHECK_MSG(st == RG_ERR_BUSY, "status %d: %s", (int)st, e.msg);
    CHECK(raw_exec(other, "COMMIT") == SQLITE_OK);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    CHECK(search_count(s, coll, "alpha") == 1);
    CHECK(search_count(s, coll, "gamma") == 0);
    sqlite3_close(other);

    /* With the lock free the same put goes through. */
    CHECK_OK(put_doc(s, coll, "a.md", v2, 3, NULL, &id, &oc, &e), e);
    CHECK(oc == STORE_PUT_REPLACED && id == id1);
    CHECK(search_count(s, coll, "alpha") == 0);
    CHECK(search_count(s, coll, "gamma") == 1);
    CHECK(fts_consistent(t.path));

    store_document_free(&before);
    store_close(s);
    tdb_cleanup(&t);
}

typedef struct lock_holder {
    sqlite3 *db;
    int hold_ms;
} lock_holder;

static void *release_later(void *arg)
{
    lock_holder *h = arg;
    struct timespec ts = {h->hold_ms / 1000, (long)(h->hold_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    raw_exec(h->db, "COMMIT");
    return NULL;
}

/* A short lock by another process (the CLI) is waited out, not failed. */
static void test_busy_wait(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    rg_err e = {0};
    int64_t coll = 0;
    CHECK_OK(store_collection_create(s, "docs", NULL, &coll, &e), e);
    lock_holder h = {raw_open(t.path), 300};
    CHECK(raw_exec(h.db, "BEGIN IMMEDIATE") == SQLITE_OK);
    pthread_t th;
    pthread_create(&th, NULL, release_later, &h);
    const char *v[] = {"Waited for the lock."};
    rg_put_outcome oc;
    CHECK_OK(put_doc(s, coll, "w.md", v, 1, NULL, NULL, &oc, &e), e);
    pthread_join(th, NULL);
    sqlite3_close(h.db);
    CHECK(search_count(s, coll, "waited") == 1);
    store_close(s);
    tdb_cleanup(&t);
}

static void test_delete_document(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    rg_err e = {0};
    int64_t coll = 0, id1 = 0, id2 = 0;
    rg_put_outcome oc;
    CHECK_OK(store_collection_create(s, "docs", NULL, &coll, &e), e);
    const char *v1[] = {"Zebras graze.", "Zebras run."};
    const char *v2[] = {"Lions hunt zebras."};
    CHECK_OK(put_doc(s, coll, "z.md", v1, 2, NULL, &id1, &oc, &e), e);
    CHECK_OK(put_doc(s, coll, "l.md", v2, 1, NULL, &id2, &oc, &e), e);
    CHECK(fts_index_rows(t.path, "zebra") == 3);
    CHECK_OK(store_document_delete(s, id1, &e), e);
    CHECK(store_document_delete(s, id1, &e) == RG_ERR_NOT_FOUND);
    CHECK(fts_index_rows(t.path, "zebra") == 1);
    CHECK(fts_index_rows(t.path, "graze") == 0);
    CHECK(fts_consistent(t.path));
    rg_chunk *ch = NULL;
    size_t n = 99;
    CHECK(store_chunk_list(s, id1, &ch, &n, &e) == RG_ERR_NOT_FOUND);
    CHECK(ch == NULL && n == 0);

    rg_hit *h = NULL;
    CHECK_OK(store_chunk_search_fts(s, coll, "zebra", 10, &h, &n, &e), e);
    CHECK(n == 1);
    if (n == 1)
        CHECK(h[0].document_id == id2);
    store_hits_free(h, n);

    /* The check used above can fail: drift the index on purpose (in a
     * transaction rolled back afterwards) and watch it complain. */
    sqlite3 *db = raw_open(t.path);
    CHECK(raw_exec(db, "BEGIN; DROP TRIGGER chunks_fts_delete; DELETE FROM chunks;") == SQLITE_OK);
    CHECK(raw_exec(db, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)") != SQLITE_OK);
    raw_exec(db, "ROLLBACK");
    sqlite3_close(db);
    CHECK(fts_consistent(t.path));
    CHECK(search_count(s, coll, "zebra") == 1);
    store_close(s);
    tdb_cleanup(&t);
}

static void test_failed_document(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    rg_err e = {0};
    int64_t coll = 0, fid = 0, id = 0;
    rg_put_outcome oc;
    CHECK_OK(store_collection_create(s, "docs", NULL, &coll, &e), e);
    rg_document_in din = {.collection_id = coll, .name = "broken.pdf", .source = "/srv/broken.pdf",
                          .mime = "application/pdf", .byte_size = 1234};
    CHECK_OK(store_document_put_failed(s, &din, "no text layer", &fid, &e), e);
    rg_document d;
    CHECK_OK(store_document_get(s, fid, &d, &e), e);
    CHECK_STR(d.status, DOC_STATUS_FAILED);
    CHECK(d.error && strcmp(d.error, "no text layer") == 0);
    CHECK(d.n_chunks == 0);
    CHECK(d.byte_size == 1234);
    CHECK_STR(d.mime, "application/pdf");
    store_document_free(&d);

    /* Failing again replaces the record by name. */
    int64_t fid2 = 0;
    CHECK_OK(store_document_put_failed(s, &din, "still broken", &fid2, &e), e);
    CHECK(fid2 == fid);
    rg_store_stats stats;
    CHECK_OK(store_stats(s, &stats, &e), e);
    CHECK(stats.documents == 1 && stats.documents_failed == 1);

    /* A later good load of the same name replaces the failed record. */
    const char *v[] = {"Recovered text layer."};
    CHECK_OK(put_doc(s, coll, "broken.pdf", v, 1, NULL, &id, &oc, &e), e);
    CHECK(oc == STORE_PUT_REPLACED && id == fid);
    CHECK_OK(store_document_get(s, fid, &d, &e), e);
    CHECK_STR(d.status, DOC_STATUS_READY);
    CHECK(d.error == NULL);
    CHECK(d.n_chunks == 1);
    store_document_free(&d);

    /* And a failure after a good load removes the chunks from search. */
    CHECK_OK(store_document_put_failed(s, &din, "corrupt now", &fid2, &e), e);
    CHECK(fid2 == fid);
    CHECK(search_count(s, coll, "recovered") == 0);
    CHECK(fts_consistent(t.path));
    CHECK_OK(store_stats(s, &stats, &e), e);
    CHECK(stats.documents_failed == 1 && stats.chunks == 0);
    store_close(s);
    tdb_cleanup(&t);
}

/* ---- search ------------------------------------------------------------- */

static void test_search(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    rg_err e = {0};
    int64_t a = 0, b = 0, id = 0;
    rg_put_outcome oc;
    CHECK_OK(store_collection_create(s, "a", NULL, &a, &e), e);
    CHECK_OK(store_collection_create(s, "b", NULL, &b, &e), e);
    const char *va[] = {"Kubernetes kubernetes kubernetes cluster.", "A cluster of servers running things.",
                        "Unrelated caf\xc3\xa9 text."};
    const char *vb[] = {"Cluster in collection b."};
    CHECK_OK(put_doc(s, a, "k8s.md", va, 3, "{\"tag\":\"ops\"}", &id, &oc, &e), e);
    CHECK_OK(put_doc(s, b, "b.md", vb, 1, NULL, NULL, &oc, &e), e);

    rg_hit *h = NULL;
    size_t n = 0;
    CHECK_OK(store_chunk_search_fts(s, a, "\"kubernetes\" OR \"cluster\"", 10, &h, &n, &e), e);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(h[0].score > 0 && h[0].score >= h[1].score);
        CHECK_STR(h[0].text, va[0]);
        CHECK_STR(h[0].document, "k8s.md");
        CHECK_STR(h[0].collection, "a");
        CHECK_STR(h[0].metadata_json, "{\"tag\":\"ops\"}");
        CHECK(h[0].document_id == id);
        CHECK(h[0].char_start == 0 && h[0].char_end == (int64_t)strlen(va[0]));
        CHECK_STR(h[0].heading_path, "Intro");
        CHECK(h[0].page == 1);
        CHECK(h[1].page == 2);
    }
    store_hits_free(h, n);

    CHECK(search_count(s, 0, "cluster") == 3);
    CHECK(search_count(s, b, "cluster") == 1);
    CHECK(search_count(s, a, "run") == 1);  /* porter: running -> run */
    CHECK(search_count(s, a, "cafe") == 1); /* diacritics removed */

    CHECK_OK(store_chunk_search_fts(s, 0, "cluster", 1, &h, &n, &e), e);
    CHECK(n == 1);
    store_hits_free(h, n);
    CHECK_OK(store_chunk_search_fts(s, 0, "cluster", 0, &h, &n, &e), e);
    CHECK(n == 0 && h == NULL);

    rg_status st = store_chunk_search_fts(s, 0, "\"unbalanced", 5, &h, &n, &e);
    CHECK_MSG(st == RG_ERR_INVALID, "status %d: %s", (int)st, e.msg);
    CHECK(h == NULL && n == 0);
    CHECK(store_chunk_search_fts(s, 0, "nosuchcolumn: word", 5, &h, &n, &e) == RG_ERR_INVALID);
    CHECK(store_chunk_search_fts(s, 0, "AND OR", 5, &h, &n, &e) == RG_ERR_INVALID);
    CHECK(store_chunk_search_fts(s, 0, "", 5, &h, &n, &e) == RG_ERR_INVALID);
    /* The handle still works after the errors. */
    CHECK(search_count(s, 0, "cluster") == 3);
    store_hits_free(NULL, 0);
    store_close(s);
    tdb_cleanup(&t);
}

/* ---- tasks -------------------------------------------------------------- */

static void test_tasks(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    rg_err e = {0};
    CHECK_STR(store_task_state_name(TASK_QUEUED), "queued");
    CHECK_STR(store_task_state_name(TASK_RUNNING), "running");
    CHECK_STR(store_task_state_name(TASK_DONE), "done");
    CHECK_STR(store_task_state_name(TASK_FAILED), "failed");

    int64_t t1 = 0, t2 = 0, t3 = 0;
    rg_task_in in = {.collection = "docs", .name = "a.md", .source_path = "/spool/1", .spooled = 1,
                     .metadata_json = "{\"k\":1}"};
    CHECK_OK(store_task_create(s, &in, &t1, &e), e);
    in.name = "b.md";
    in.source_path = "/data/b.md";
    in.spooled = 0;
    in.metadata_json = NULL;
    CHECK_OK(store_task_create(s, &in, &t2, &e), e);
    in.name = "c.md";
    CHECK_OK(store_task_create(s, &in, &t3, &e), e);
    CHECK(t1 < t2 && t2 < t3);
    in.collection = "bad name";
    CHECK(store_task_create(s, &in, &t3, &e) == RG_ERR_INVALID);

    rg_task tk;
    CHECK_OK(store_task_get(s, t1, &tk, &e), e);
    CHECK(tk.state == TASK_QUEUED);
    CHECK_STR(tk.collection, "docs");
    CHECK_STR(tk.name, "a.md");
    CHECK_STR(tk.source_path, "/spool/1");
    CHECK(tk.spooled == 1);
    CHECK_STR(tk.metadata_json, "{\"k\":1}");
    CHECK(tk.document_id == 0 && tk.outcome == NULL && tk.error == NULL);
    store_task_free(&tk);

    CHECK_OK(store_task_update(s, t1, TASK_RUNNING, 1, 4, 0, NULL, NULL, &e), e);
    CHECK_OK(store_task_update(s, t1, TASK_DONE, 4, 4, 77, "added", NULL, &e), e);
    CHECK_OK(store_task_update(s, t2, TASK_RUNNING, 0, 0, 0, NULL, NULL, &e), e);
    CHECK(store_task_update(s, 999999, TASK_DONE, 0, 0, 0, NULL, NULL, &e) == RG_ERR_NOT_FOUND);
    CHECK_OK(store_task_get(s, t1, &tk, &e), e);
    CHECK(tk.state == TASK_DONE && tk.progress_done == 4 && tk.progress_total == 4);
    CHECK(tk.document_id == 77);
    CHECK(tk.outcome && strcmp(tk.outcome, "added") == 0);
    store_task_free(&tk);
    /* 0/NULL leave fields alone. */
    CHECK_OK(store_task_update(s, t1, TASK_DONE, 4, 4, 0, NULL, NULL, &e), e);
    CHECK_OK(store_task_get(s, t1, &tk, &e), e);
    CHECK(tk.document_id == 77 && tk.outcome && strcmp(tk.outcome, "added") == 0);
    store_task_free(&tk);

    rg_task *list = NULL;
    size_t n = 0;
    CHECK_OK(store_task_list_unfinished(s, &list, &n, &e), e);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(list[0].id == t2 && list[0].state == TASK_RUNNING);
        CHECK(list[1].id == t3 && list[1].state == TASK_QUEUED);
    }
    store_tasks_free(list, n);

    CHECK_OK(store_task_update(s, t3, TASK_FAILED, 0, 0, 0, NULL, "unsupported type", &e), e);
    CHECK_OK(store_task_list(s, 10, 0, &list, &n, &e), e);
    CHECK(n == 3);
    if (n == 3) {
        CHECK(list[0].id == t3 && list[0].state == TASK_FAILED);
        CHECK(list[0].error && strcmp(list[0].error, "unsupported type") == 0);
        CHECK(list[2].id == t1);
    }
    store_tasks_free(list, n);
    CHECK_OK(store_task_list(s, 1, 1, &list, &n, &e), e);
    CHECK(n == 1 && list[0].id == t2);
    store_tasks_free(list, n);

    rg_store_stats stats;
    CHECK_OK(store_stats(s, &stats, &e), e);
    CHECK(stats.tasks[TASK_QUEUED] == 0 && stats.tasks[TASK_RUNNING] == 1);
    CHECK(stats.tasks[TASK_DONE] == 1 && stats.tasks[TASK_FAILED] == 1);

    /* Tasks survive a restart. */
    store_close(s);
    s = open_store(t.path);
    CHECK_OK(store_task_list_unfinished(s, &list, &n, &e), e);
    CHECK(n == 1 && list[0].id == t2);
    store_tasks_free(list, n);
    store_close(s);
    tdb_cleanup(&t);
}

/* ---- threads ------------------------------------------------------------ */

#define N_THREADS 4
#define PUTS_PER_THREAD 20

typedef struct worker {
    rg_store *s;
    int64_t coll;
    int index;
    int errors;
    char last_error[512];
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < PUTS_PER_THREAD; i++) {
        char name[64], c0[128], c1[128];
        /* Every other put replaces the previous document of this thread. */
        snprintf(name, sizeof name, "t%d-%d.md", w->index, i / 2);
        snprintf(c0, sizeof c0, "Shared words plus marker%d in version %d.", w->index, i);
        snprintf(c1, sizeof c1, "Second chunk for thread %d.", w->index);
        const char *texts[] = {c0, c1};
        rg_err e = {0};
        rg_put_outcome oc;
        rg_status st = put_doc(w->s, w->coll, name, texts, 2, NULL, NULL, &oc, &e);
        if (!st && oc != (i % 2 ? STORE_PUT_REPLACED : STORE_PUT_ADDED))
            st = RG_ERR_INTERNAL;
        rg_hit *h = NULL;
        size_t n = 0;
        if (!st)
            st = store_chunk_search_fts(w->s, w->coll, "shared", 5, &h, &n, &e);
        store_hits_free(h, n);
        char marker[32];
        snprintf(marker, sizeof marker, "marker%d", w->index);
        if (!st)
            st = store_chunk_search_fts(w->s, 0, marker, 50, &h, &n, &e);
        /* Exactly this thread's live documents carry its marker. */
        if (!st && n != (size_t)(i / 2 + 1))
            st = RG_ERR_INTERNAL;
        store_hits_free(h, n);
        rg_store_stats stats;
        if (!st)
            st = store_stats(w->s, &stats, &e);
        if (st) {
            w->errors++;
            snprintf(w->last_error, sizeof w->last_error, "put %d: status %d: %.400s", i, (int)st, e.msg);
        }
    }
    return NULL;
}

static void test_threads(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    rg_err e = {0};
    int64_t coll = 0;
    CHECK_OK(store_collection_create(s, "docs", NULL, &coll, &e), e);
    worker w[N_THREADS];
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (worker){.s = s, .coll = coll, .index = i};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(w[i].errors == 0, "thread %d: %d errors, last: %s", i, w[i].errors, w[i].last_error);
    }
    rg_store_stats stats;
    CHECK_OK(store_stats(s, &stats, &e), e);
    CHECK(stats.documents == N_THREADS * PUTS_PER_THREAD / 2);
    CHECK(stats.chunks == N_THREADS * PUTS_PER_THREAD);
    CHECK(fts_consistent(t.path));
    store_close(s);
    tdb_cleanup(&t);
}

/* ---- frees -------------------------------------------------------------- */

static void test_free_null(void)
{
    store_close(NULL);
    store_collection_free(NULL);
    store_collections_free(NULL, 0);
    store_document_free(NULL);
    store_documents_free(NULL, 0);
    store_chunks_free(NULL, 0);
    store_hits_free(NULL, 0);
    store_task_free(NULL);
    store_tasks_free(NULL, 0);
    rg_document d;
    memset(&d, 0, sizeof d);
    store_document_free(&d);
    CHECK(store_schema_version(NULL) == -1);
}

/* A task named in the document is finished by the same transaction, so a
 * crash between "document written" and "task done" cannot happen. */
static void test_put_finishes_task(void)
{
    tdb t;
    tdb_init(&t);
    rg_store *s = open_store(t.path);
    rg_err e = {0};
    int64_t coll = 0, t1 = 0, t2 = 0, id = 0;
    CHECK_OK(store_collection_ensure(s, "docs", &coll, &e), e);
    rg_task_in in = {.collection = "docs", .name = "a.txt", .source_path = "/spool/a", .spooled = 1};
    CHECK_OK(store_task_create(s, &in, &t1, &e), e);
    in.name = "b.txt";
    CHECK_OK(store_task_create(s, &in, &t2, &e), e);

    const char *text = "alpha beta gamma";
    char sha[65];
    sha256_hex(text, strlen(text), sha);
    rg_chunk_in chunk = {.text = text, .text_len = strlen(text), .char_start = 0, .char_end = 16};
    rg_document_in d = {.collection_id = coll, .name = "a.txt", .source = "upload", .mime = "text/plain",
                        .byte_size = 16, .sha256 = sha, .text = text, .text_len = strlen(text), .task_id = t1};
    rg_put_outcome oc;
    CHECK_OK(store_document_put(s, &d, &chunk, 1, &id, &oc, &e), e);
    rg_task tk;
    CHECK_OK(store_task_get(s, t1, &tk, &e), e);
    CHECK(tk.state == TASK_DONE && tk.document_id == id && tk.outcome && strcmp(tk.outcome, "added") == 0);
    store_task_free(&tk);

    /* A task that no longer exists rolls the document back with it. */
    d.name = "c.txt";
    d.task_id = 99999;
    CHECK(store_document_put(s, &d, &chunk, 1, &id, &oc, &e) == RG_ERR_NOT_FOUND);
    rg_document *docs = NULL;
    size_t n = 0;
    CHECK_OK(store_document_list(s, coll, 0, 0, &docs, &n, &e), e);
    CHECK(n == 1);
    store_documents_free(docs, n);

    rg_document_in f = {.collection_id = coll, .name = "b.txt", .source = "upload", .mime = "text/plain",
                        .task_id = t2};
    CHECK_OK(store_document_put_failed(s, &f, "no text", &id, &e), e);
    CHECK_OK(store_task_get(s, t2, &tk, &e), e);
    CHECK(tk.state == TASK_FAILED && tk.error && strcmp(tk.error, "no text") == 0 && tk.document_id == id);
    store_task_free(&tk);
    store_close(s);
    tdb_cleanup(&t);
}

int main(void)
{
    test_open_and_migrate();
    test_refuse_newer_and_foreign();
    test_collection_names();
    test_collections();
    test_put_replace();
    test_put_atomic();
    test_busy_wait();
    test_delete_document();
    test_failed_document();
    test_search();
    test_tasks();
    test_put_finishes_task();
    test_threads();
    test_free_null();
    return check_finish("test_store");
}
