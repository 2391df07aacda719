/* bench_gemm - model/gemm_cpu beside OpenBLAS sgemm on the encoder's product
 * shapes, one thread each, in the same run.
 *
 *   bench_gemm [SECONDS_PER_CASE]
 *
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that other
 * processes on a shared machine do not skew the ratio as much as wall time
 * would. Both sides compute C = A W^T + bias with W an nn.Linear weight
 * [N, K]; ragd's side packs W once outside the timing (as the encoder does
 * at load), OpenBLAS gets the row-major arrays as the old encoder called it.
 * Prints GFLOP/s for each and the ratio, and the largest difference. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/gemm_cpu.h"

void openblas_set_num_threads(int n);

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0.5;
    openblas_set_num_threads(1);
    /* rows x K x N: a short text (18 rows) and the encoder's row tiles (72),
     * for Q|K|V (384 -> 1152), intermediate (384 -> 1536), output (1536 ->
     * 384); attention scores and context of a 256-token sequence. */
    static const size_t shapes[][3] = {{18, 384, 1152}, {18, 1536, 384}, {72, 384, 1152}, {72, 384, 1536},
                                       {72, 1536, 384}, {256, 32, 256},  {256, 256, 32}};
    printf("gemm kernels: %s\n", gemm_cpu_has_avx512() ? "avx512f + avx2+fma"
                                 : gemm_cpu_has_avx2() ? "avx2+fma"
                                                       : "portable C");
    printf("%5s %5s %5s %14s %14s %6s %9s\n", "M", "K", "N", "OpenBLAS GF/s", "ragd GF/s", "ratio", "max diff");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        float *a = malloc(M * K * sizeof *a), *w = malloc(N * K * sizeof *w), *bias = malloc(N * sizeof *bias);
        float *c1 = malloc(M * N * sizeof *c1), *c2 = malloc(M * N * sizeof *c2);
        float *bp = malloc(gemm_bpack_floats(K, N) * sizeof *bp), *ap = malloc(gemm_apack_floats(M, K) * sizeof *ap);
        if (!a || !w || !bias || !c1 || !c2 || !bp || !ap)
            return 1;
        srand(1);
        for (size_t i = 0; i < M * K; i++)
            a[i] = (float)rand() / RAND_MAX - 0.5f;
        for (size_t i = 0; i < N * K; i++)
            w[i] = (float)rand() / RAND_MAX - 0.5f;
        for (size_t i = 0; i < N; i++)
            bias[i] = (float)rand() / RAND_MAX - 0.5f;
        gemm_pack_b_nk(w, K, N, K, bp);
        double flop = 2.0 * (double)M * (double)N * (double)K, t0, t;
        long reps = 0;
        t0 = cpu_s();
        do {
            for (size_t r = 0; r < M; r++)
                memcpy(c1 + r * N, bias, N * sizeof *c1);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f, a,
                        (blasint)K, w, (blasint)K, 1.0f, c1, (blasint)N);
            reps++;
        } while ((t = cpu_s()) - t0 < secs);
        double g_blas = flop * (double)reps / (t - t0) / 1e9;
        reps = 0;
        t0 = cpu_s();
        do {
            gemm_packed(a, K, M, K, bp, N, bias, c2, N, ap);
            reps++;
        } while ((t = cpu_s()) - t0 < secs);
        double g_own = flop * (double)reps / (t - t0) / 1e9, md = 0;
        for (size_t i = 0; i < M * N; i++)
            md = fmax(md, fabs((double)c1[i] - c2[i]));
        printf("%5zu %5zu %5zu %14.1f %14.1f %6.2f %9.1e\n", M, K, N, g_blas, g_own, g_own / g_blas, md);
        free(a), free(w), free(bias), free(c1), free(c2), free(bp), free(ap);
    }
    return 0;
}
