/* bench_flat_search - one dense query against a flat index, as
 * /v1/retrieval's dense mode runs it (index/dense.c), through FAISS's two
 * paths on the same index in the same run:
 *
 *   bench_flat_search N [DIM=384] [K=50] [QUERIES=300]
 *
 * "faiss loops": FAISS's default for fewer than 20 queries, its own
 * inner-product loops (scalar in Debian's baseline-x86-64 libfaiss.a);
 * "blas": distance_compute_blas_threshold 1, what ragd sets, so the query
 * goes through BLAS (OpenBLAS's CPU-dispatched kernels, on the calling
 * thread: index/dense.c sets OpenBLAS to one thread, for both paths here). N random unit
 * vectors, ids 1..N; each query is a stored vector with noise added, the
 * two paths alternating query by query so load on the machine hits both
 * alike. Prints one JSON line: median and mean milliseconds of each, the
 * ratio of the medians, the bytes a query reads (N x DIM x 4) over the
 * median time, and whether both paths returned the same ids with scores
 * within 1e-4. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <faiss/c_api/utils/distances_c.h>

#include "index/dense.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((rng * 2685821657736338717ull) >> 40) / 16777216.0f - 0.5f;
}

static void normalize(float *v, size_t d)
{
    double s = 0;
    for (size_t i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    float inv = (float)(1.0 / sqrt(s > 0 ? s : 1));
    for (size_t i = 0; i < d; i++)
        v[i] *= inv;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats(double *t, size_t n, double *median, double *mean)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += t[i];
    *mean = s / (double)n;
    qsort(t, n, sizeof *t, cmp_d);
    *median = t[n / 2];
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: bench_flat_search N [DIM=384] [K=50] [QUERIES=300]\n");
        return 2;
    }
    size_t n = (size_t)atol(argv[1]), d = argc > 2 ? (size_t)atol(argv[2]) : 384;
    size_t k = argc > 3 ? (size_t)atol(argv[3]) : 50, nq = argc > 4 ? (size_t)atol(argv[4]) : 300;
    if (!n || !d || d > 65536 || !k || k > n || !nq || n > ((size_t)1 << 34) / d) {
        fprintf(stderr, "bench_flat_search: need 0 < K <= N, 0 < DIM <= 65536, QUERIES > 0, N x DIM <= 2^34\n");
        return 2;
    }
    rg_err e = {0};
    rg_dense_index *x = NULL;
    float *vec = malloc(n * d * sizeof *vec), *q = malloc(d * sizeof *q);
    float *sa = malloc(k * sizeof *sa), *sb = malloc(k * sizeof *sb);
    int64_t *ids = malloc(n * sizeof *ids), *ia = malloc(k * sizeof *ia), *ib = malloc(k * sizeof *ib);
    double *ta = malloc(nq * sizeof *ta), *tb = malloc(nq * sizeof *tb);
    if (!vec || !q || !sa || !sb || !ids || !ia || !ib || !ta || !tb) {
        fprintf(stderr, "bench_flat_search: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++)
            vec[i * d + j] = frand();
        normalize(vec + i * d, d);
        ids[i] = (int64_t)i + 1; /* chunk ids start at 1 */
    }
    if (dense_index_create((int)d, DENSE_FLAT, &x, &e) || dense_index_add(x, n, vec, ids, &e)) {
        fprintf(stderr, "bench_flat_search: %s\n", e.msg);
        return 1;
    }
    size_t same = 0;
    for (size_t r = 0; r < nq; r++) {
        const float *base = vec + (r * 7919 % n) * d;
        for (size_t j = 0; j < d; j++)
            q[j] = base[j] + 0.05f * frand();
        normalize(q, d);
        size_t na = 0, nb = 0;
        faiss_set_distance_compute_blas_threshold(20); /* FAISS's default */
        double t0 = now();
        rg_status s1 = dense_index_search(x, q, k, ia, sa, &na, &e);
        double t1 = now();
        faiss_set_distance_compute_blas_threshold(1); /* ragd's */
        rg_status s2 = dense_index_search(x, q, k, ib, sb, &nb, &e);
        double t2 = now();
        if (s1 || s2) {
            fprintf(stderr, "bench_flat_search: %s\n", e.msg);
            return 1;
        }
        ta[r] = (t1 - t0) * 1e3;
        tb[r] = (t2 - t1) * 1e3;
        int ok = na == nb;
        for (size_t i = 0; ok && i < na; i++) /* same ranking; a near-tie may swap neighbours */
            ok = (ia[i] == ib[i] || (i + 1 < na && ia[i] == ib[i + 1] && ia[i + 1] == ib[i]) ||
                  (i > 0 && ia[i] == ib[i - 1] && ia[i - 1] == ib[i])) &&
                 fabsf(sa[i] - sb[i]) < 1e-4f;
        same += ok;
    }
    double ma, mb, mean_a, mean_b;
    stats(ta, nq, &ma, &mean_a);
    stats(tb, nq, &mb, &mean_b);
    double bytes = (double)n * (double)d * 4.0;
    printf("{\"n\": %zu, \"dim\": %zu, \"k\": %zu, \"queries\": %zu, \"faiss_loops_ms\": {\"median\": %.3f, "
           "\"mean\": %.3f}, \"blas_ms\": {\"median\": %.3f, \"mean\": %.3f}, \"speedup_median\": %.2f, "
           "\"faiss_loops_gbps\": %.2f, \"blas_gbps\": %.2f, \"same_results\": \"%zu/%zu\"}\n",
           n, d, k, nq, ma, mean_a, mb, mean_b, ma / mb, bytes / (ma * 1e6), bytes / (mb * 1e6), same, nq);
    dense_index_free(x);
    free(vec), free(q), free(sa), free(sb), free(ids), free(ia), free(ib), free(ta), free(tb);
    return same == nq ? 0 : 1;
}
