/* index/dense: exact search finds what was added, removal, atomic save and
 * load, and a damaged or mismatched file is reported for rebuilding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "index/dense.h"

#define DIM 32
#define N 500

static void normalise(float *v)
{
    double s = 0;
    for (int j = 0; j < DIM; j++)
        s += (double)v[j] * v[j];
    for (int j = 0; j < DIM; j++)
        v[j] = (float)(v[j] / sqrt(s));
}

static float *random_vectors(size_t n, unsigned seed)
{
    float *v = malloc(sizeof(float) * DIM * n);
    srand(seed);
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < DIM; j++)
            v[i * DIM + j] = (float)rand() / RAND_MAX - 0.5f;
        normalise(v + i * DIM);
    }
    return v;
}

/* The id of the best match by brute force. */
static int64_t brute_best(const float *xs, const int64_t *ids, size_t n, const float *q, const char *skip)
{
    int64_t best = 0;
    double best_s = -1e9;
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i])
            continue;
        double s = 0;
        for (int j = 0; j < DIM; j++)
            s += (double)xs[i * DIM + j] * q[j];
        if (s > best_s)
            best_s = s, best = ids[i];
    }
    return best;
}

static void test_flat(const char *dir)
{
    rg_err e = {0};
    float *xs = random_vectors(N, 1), *qs = random_vectors(50, 2);
    int64_t ids[N];
    for (size_t i = 0; i < N; i++)
        ids[i] = 10 + 2 * (int64_t)i;
    rg_dense_index *x = NULL;
    CHECK_OK(dense_index_create(DIM, DENSE_FLAT, &x, &e), e);
    CHECK_OK(dense_index_add(x, N, xs, ids, &e), e);
    CHECK(dense_index_count(x) == N);
    CHECK(dense_index_max_id(x) == ids[N - 1]);

    int64_t got[10];
    float sc[10];
    size_t n = 0;
    int agree = 0;
    for (int q = 0; q < 50; q++) {
        CHECK_OK(dense_index_search(x, qs + q * DIM, 10, got, sc, &n, &e), e);
        CHECK(n == 10);
        CHECK(sc[0] >= sc[9]);
        agree += got[0] == brute_best(xs, ids, N, qs + q * DIM, NULL);
    }
    CHECK_MSG(agree == 50, "exact search agreed with brute force %d/50 times", agree);

    /* Remove every third vector: it is never returned again. */
    char skip[N] = {0};
    int64_t gone[N];
    size_t ng = 0, removed = 0;
    for (size_t i = 0; i < N; i += 3)
        skip[i] = 1, gone[ng++] = ids[i];
    CHECK_OK(dense_index_remove(x, ng, gone, &removed, &e), e);
    CHECK(removed == ng);
    CHECK(dense_index_count(x) == N - ng);
    for (int q = 0; q < 50; q++) {
        CHECK_OK(dense_index_search(x, qs + q * DIM, 1, got, sc, &n, &e), e);
        CHECK(n == 1 && got[0] == brute_best(xs, ids, N, qs + q * DIM, skip));
    }

    /* Save, load: same answers; wrong dimension or kind, garbage, absence. */
    char path[512];
    snprintf(path, sizeof path, "%s/c1.index", dir);
    CHECK_OK(dense_index_save(x, path, &e), e);
    rg_dense_index *y = NULL;
    CHECK_OK(dense_index_load(path, DIM, DENSE_FLAT, &y, &e), e);
    CHECK(y && dense_index_count(y) == N - ng && dense_index_max_id(y) == ids[N - 1]);
    int64_t got2[10];
    float sc2[10];
    size_t n2 = 0;
    CHECK_OK(dense_index_search(x, qs, 10, got, sc, &n, &e), e);
    CHECK_OK(dense_index_search(y, qs, 10, got2, sc2, &n2, &e), e);
    CHECK(n == n2 && memcmp(got, got2, n * sizeof *got) == 0);
    dense_index_free(y);
    y = NULL;
    CHECK(dense_index_load(path, DIM + 1, DENSE_FLAT, &y, &e) == RG_ERR_CORRUPT);
    CHECK(dense_index_load(path, DIM, DENSE_HNSW, &y, &e) == RG_ERR_CORRUPT);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.index", dir);
    CHECK(dense_index_load(missing, DIM, DENSE_FLAT, &y, &e) == RG_ERR_NOT_FOUND);
    /* One changed byte inside the FAISS data (a count, a vector, an HNSW
     * neighbour: FAISS would read it as given) is caught by the checksum. */
    FILE *g = fopen(path, "r+b");
    int byte = g && fseek(g, 300, SEEK_SET) == 0 ? fgetc(g) : EOF;
    CHECK(byte != EOF && fseek(g, 300, SEEK_SET) == 0 && fputc(byte ^ 0xFF, g) != EOF);
    if (g)
        fclose(g);
    CHECK(dense_index_load(path, DIM, DENSE_FLAT, &y, &e) == RG_ERR_CORRUPT && strstr(e.msg, "damaged"));
    CHECK(y == NULL);
    CHECK_OK(dense_index_save(x, path, &e), e);
    CHECK_OK(dense_index_load(path, DIM, DENSE_FLAT, &y, &e), e);
    dense_index_free(y);
    y = NULL;
    /* A file of the first format (no checksum) is refused, so rebuilt. */
    g = fopen(path, "r+b");
    CHECK(g && fwrite("RAGDVEC1", 1, 8, g) == 8);
    if (g)
        fclose(g);
    CHECK(dense_index_load(path, DIM, DENSE_FLAT, &y, &e) == RG_ERR_CORRUPT);
    CHECK_OK(dense_index_save(x, path, &e), e);
    /* A truncated file (a crash mid-copy by something else) is corrupt. */
    FILE *f = fopen(path, "r+b");
    CHECK(f && ftruncate(fileno(f), 200) == 0);
    if (f)
        fclose(f);
    CHECK(dense_index_load(path, DIM, DENSE_FLAT, &y, &e) == RG_ERR_CORRUPT);
    CHECK(y == NULL);
    unlink(path);

    CHECK(dense_index_add(x, 1, xs, (int64_t[]){0}, &e) == RG_ERR_INVALID);
    dense_index_free(x);
    free(xs);
    free(qs);
}

static void test_hnsw(void)
{
    rg_err e = {0};
    float *xs = random_vectors(N, 3);
    int64_t ids[N];
    for (size_t i = 0; i < N; i++)
        ids[i] = 1 + (int64_t)i;
    rg_dense_index *x = NULL;
    CHECK_OK(dense_index_create(DIM, DENSE_HNSW, &x, &e), e);
    CHECK_OK(dense_index_add(x, N, xs, ids, &e), e);
    /* Each stored vector finds itself. */
    int self = 0;
    for (size_t i = 0; i < N; i += 10) {
        int64_t got[1];
        float sc[1];
        size_t n = 0;
        CHECK_OK(dense_index_search(x, xs + i * DIM, 1, got, sc, &n, &e), e);
        self += n == 1 && got[0] == ids[i];
    }
    CHECK_MSG(self >= 48, "HNSW found %d/50 stored vectors", self);
    CHECK(dense_index_remove(x, 1, ids, NULL, &e) == RG_ERR_UNSUPPORTED);
    rg_dense_kind k;
    CHECK(dense_kind_parse("hnsw", &k, &e) == RG_OK && k == DENSE_HNSW);
    CHECK(dense_kind_parse("ivf", &k, &e) == RG_ERR_INVALID);
    dense_index_free(x);
    free(xs);
}

int main(void)
{
    char dir[] = "/tmp/ragd-dense-XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    test_flat(dir);
    test_hnsw();
    rmdir(dir);
    return check_finish("test_dense_index");
}
