/* store/vectors: vectors round-trip per model and collection, paging by
 * chunk id, the embedding backlog, and cascade on document delete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/sha256.h"
#include "store/store.h"
#include "store/vectors.h"

#define DIM 4

/* A document with n one-word chunks; chunk ids returned in ids. */
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
    CHECK(nc == (size_t)n);
    for (size_t i = 0; i < nc; i++)
        ids[i] = cs[i].id;
    store_chunks_free(cs, nc);
}

int main(void)
{
    char dir[] = "/tmp/ragd-vec-XXXXXX", path[256];
    if (!mkdtemp(dir))
        return 2;
    snprintf(path, sizeof path, "%s/t.db", dir);
    rg_store *s = NULL;
    rg_err e = {0};
    CHECK_OK(store_open(path, &s, &e), e);
    if (!s)
        return check_finish("test_store_vectors");
    int64_t c1 = 0, c2 = 0, a[3], b[2];
    CHECK_OK(store_collection_ensure(s, "one", &c1, &e), e);
    CHECK_OK(store_collection_ensure(s, "two", &c2, &e), e);
    add_doc(s, c1, "alpha", 3, a);
    add_doc(s, c2, "beta", 2, b);

    int64_t missing[8];
    size_t n = 0;
    CHECK_OK(store_chunks_missing_vectors(s, "m1", 8, missing, &n, &e), e);
    CHECK(n == 5);

    int64_t top = -1;
    CHECK_OK(store_vectors_max_id(s, "m1", &top, &e), e);
    CHECK(top == 0); /* no vector yet */

    float va[3 * DIM], vb[2 * DIM];
    for (int i = 0; i < 3 * DIM; i++)
        va[i] = (float)i * 0.5f;
    for (int i = 0; i < 2 * DIM; i++)
        vb[i] = -(float)i;
    CHECK_OK(store_vectors_put(s, "m1", DIM, 3, a, va, &e), e);
    CHECK_OK(store_vectors_put(s, "m1", DIM, 2, b, vb, &e), e);
    CHECK_OK(store_chunks_missing_vectors(s, "m1", 8, missing, &n, &e), e);
    CHECK(n == 0);
    CHECK_OK(store_chunks_missing_vectors(s, "m2", 8, missing, &n, &e), e);
    CHECK(n == 5); /* another model has its own vectors */

    CHECK_OK(store_vectors_max_id(s, "m1", &top, &e), e);
    CHECK(top == b[1]); /* the newest chunk with a vector, across collections */
    CHECK_OK(store_vectors_max_id(s, "m2", &top, &e), e);
    CHECK(top == 0);

    int64_t cnt = 0;
    CHECK_OK(store_vectors_count(s, c1, "m1", &cnt, &e), e);
    CHECK(cnt == 3);
    CHECK_OK(store_vectors_count(s, 0, "m1", &cnt, &e), e);
    CHECK(cnt == 5);

    /* Paging two at a time through collection one gives its vectors back. */
    int64_t ids[2];
    float got[2 * DIM];
    int64_t after = 0;
    size_t seen = 0;
    for (int page = 0; page < 5; page++) {
        CHECK_OK(store_vectors_scan(s, c1, "m1", DIM, after, 2, ids, got, &n, &e), e);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            CHECK(ids[i] == a[seen]);
            CHECK(memcmp(got + i * DIM, va + seen * DIM, DIM * sizeof(float)) == 0);
            seen++;
        }
        after = ids[n - 1];
    }
    CHECK(seen == 3);
    CHECK(store_vectors_scan(s, c1, "m1", DIM + 1, 0, 2, ids, got, &n, &e) == RG_ERR_CORRUPT);

    /* A vanished chunk fails the batch; nothing of it is written. */
    int64_t bad[2] = {b[0], 999999};
    CHECK(store_vectors_put(s, "m2", DIM, 2, bad, vb, &e) == RG_ERR_NOT_FOUND);
    CHECK_OK(store_vectors_count(s, 0, "m2", &cnt, &e), e);
    CHECK(cnt == 0);
    CHECK(store_vectors_put(s, "", DIM, 1, a, va, &e) == RG_ERR_INVALID);
    CHECK(store_vectors_put(s, "m1", 0, 1, a, va, &e) == RG_ERR_INVALID);

    /* Deleting the collection removes its chunks' vectors. */
    CHECK_OK(store_collection_delete(s, "one", &e), e);
    CHECK_OK(store_vectors_count(s, 0, "m1", &cnt, &e), e);
    CHECK(cnt == 2);

    store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_finish("test_store_vectors");
}
