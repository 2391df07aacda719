/* bench_index_load - what the vector index file's checksum costs at load
 * (index/dense.c, format RAGDVEC2: the FAISS bytes are read once to check
 * their length and checksum, then read again by FAISS):
 *
 *   bench_index_load N [DIM=384] [ROUNDS=5]
 *
 * Saves a flat index of N random vectors, then alternates, round by round
 * on the same file: "ragd" = dense_index_load (header, checksum, FAISS
 * read), "faiss" = faiss_read_index alone on the bytes after the header
 * (what loading cost without the check). Both read from the page cache
 * after the first round. Prints one JSON line: median seconds of each,
 * their ratio, and the file's size. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_io_c.h>

#include "index/dense.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s N [DIM=384] [ROUNDS=5]\n", argv[0]);
        return 2;
    }
    size_t n = strtoull(argv[1], NULL, 10), dim = argc > 2 ? strtoull(argv[2], NULL, 10) : 384;
    size_t rounds = argc > 3 ? strtoull(argv[3], NULL, 10) : 5;
    if (n == 0 || dim == 0 || dim > 65536 || rounds == 0 || rounds > 1000) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    float *x = malloc(n * dim * sizeof *x);
    int64_t *ids = malloc(n * sizeof *ids);
    double *t_ragd = malloc(rounds * sizeof *t_ragd), *t_faiss = malloc(rounds * sizeof *t_faiss);
    if (!x || !ids || !t_ragd || !t_faiss)
        return 1;
    srand(7);
    for (size_t i = 0; i < n * dim; i++)
        x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (size_t i = 0; i < n; i++)
        ids[i] = (int64_t)i + 1;
    rg_err e;
    rg_dense_index *ix = NULL;
    char path[64];
    snprintf(path, sizeof path, "/tmp/bench_index_load.%ld", (long)getpid());
    if (dense_index_create((int)dim, DENSE_FLAT, &ix, &e) || dense_index_add(ix, n, x, ids, &e) ||
        dense_index_save(ix, path, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    dense_index_free(ix);
    long size = 0;
    for (size_t r = 0; r < rounds; r++) {
        rg_dense_index *y = NULL;
        double t0 = now();
        if (dense_index_load(path, (int)dim, DENSE_FLAT, &y, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        t_ragd[r] = now() - t0;
        dense_index_free(y);

        FILE *f = fopen(path, "rb");
        FaissIndex *fx = NULL;
        t0 = now();
        /* the header is 40 bytes (magic, dim, kind, max id, length, checksum) */
        if (!f || fseek(f, 40, SEEK_SET) != 0 || faiss_read_index(f, 0, &fx) != 0) {
            fprintf(stderr, "faiss_read_index failed\n");
            return 1;
        }
        t_faiss[r] = now() - t0;
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fclose(f);
        faiss_Index_free(fx);
    }
    unlink(path);
    double mr = median(t_ragd, rounds), mf = median(t_faiss, rounds);
    printf("{\"n\": %zu, \"dim\": %zu, \"file_mb\": %.1f, \"rounds\": %zu, \"ragd_load_s\": %.4f, "
           "\"faiss_read_s\": %.4f, \"ratio\": %.3f}\n",
           n, dim, (double)size / 1e6, rounds, mr, mf, mr / mf);
    free(x);
    free(ids);
    free(t_ragd);
    free(t_faiss);
    return 0;
}
