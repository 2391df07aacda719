/* test_gemm_cpu.c - the CPU kernels of the encoder's fast path against
 * plain double-precision references on random inputs: the packed GEMM
 * (every edge of its 6 x 16 blocks, both packings, strides, bias), the
 * polynomial GELU, the scaled softmax and the decoder's SiLU product
 * (model/gemm_cpu.h, model/ops_cpu.h). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/gemm_cpu.h"
#include "model/ops_cpu.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* C = A B + bias with B given as [N, K] (nk) or [K, N] (kn). */
static void check_gemm(size_t M, size_t K, size_t N, int nk, int with_bias)
{
    size_t lda = K + 3, ldc = N + 5, ldb = nk ? K + 2 : N + 2;
    float *a = malloc(M * lda * sizeof *a), *b = malloc((nk ? N : K) * ldb * sizeof *b);
    float *bias = malloc(N * sizeof *bias), *c = malloc(M * ldc * sizeof *c);
    float *bp = malloc(gemm_bpack_floats(K, N) * sizeof *bp), *ap = malloc(gemm_apack_floats(M, K) * sizeof *ap);
    for (size_t i = 0; i < M * lda; i++)
        a[i] = frand();
    for (size_t i = 0; i < (nk ? N : K) * ldb; i++)
        b[i] = frand();
    for (size_t i = 0; i < N; i++)
        bias[i] = frand();
    for (size_t i = 0; i < M * ldc; i++)
        c[i] = 12345.0f; /* sentinel: columns past N must stay untouched */
    if (nk)
        gemm_pack_b_nk(b, ldb, N, K, bp);
    else
        gemm_pack_b_kn(b, ldb, K, N, bp);
    gemm_packed(a, lda, M, K, bp, N, with_bias ? bias : NULL, c, ldc, ap);
    /* The vector kernels (AVX2, AVX-512: fused multiply-adds) give the same
     * bits, so the encoder's results do not depend on which kernel or tile
     * computed a row; the portable kernel (separate multiply and add) is
     * checked against the reference below like the others. */
    float *c2 = malloc(M * ldc * sizeof *c2), *c0 = malloc(M * ldc * sizeof *c0);
    int same = 1;
    for (int level = 1; level <= gemm_cpu_level(); level++) {
        memcpy(c2, c, M * ldc * sizeof *c2);
        gemm_packed_level(level, a, lda, M, K, bp, N, with_bias ? bias : NULL, c2, ldc, ap);
        same &= memcmp(c2, c, M * ldc * sizeof *c2) == 0;
    }
    CHECK_MSG(same, "gemm M=%zu K=%zu N=%zu: vector kernel levels disagree", M, K, N);
    memcpy(c0, c, M * ldc * sizeof *c0);
    gemm_packed_level(0, a, lda, M, K, bp, N, with_bias ? bias : NULL, c0, ldc, ap);
    free(c2);
    double worst = 0;
    int sentinel_ok = 1;
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            double ref = with_bias ? bias[j] : 0.0, mag = fabs(ref);
            for (size_t k = 0; k < K; k++) {
                double bv = nk ? b[j * ldb + k] : b[k * ldb + j];
                ref += (double)a[i * lda + k] * bv;
                mag += fabs((double)a[i * lda + k] * bv);
            }
            double err = fabs(c[i * ldc + j] - ref) / (mag * 1e-6 + 1e-30);
            double err0 = fabs(c0[i * ldc + j] - ref) / (mag * 1e-6 + 1e-30);
            worst = err > worst ? err : worst;
            worst = err0 > worst ? err0 : worst;
        }
        for (size_t j = N; j < ldc; j++)
            sentinel_ok &= c[i * ldc + j] == 12345.0f && c0[i * ldc + j] == 12345.0f;
    }
    /* Float accumulation of K terms: error well under K * 2^-24 * sum|ab|. */
    CHECK_MSG(worst <= 1.0, "gemm M=%zu K=%zu N=%zu %s bias=%d: error %.3g x 1e-6 sum|ab|", M, K, N, nk ? "nk" : "kn",
              with_bias, worst);
    CHECK_MSG(sentinel_ok, "gemm M=%zu K=%zu N=%zu wrote past column N", M, K, N);
    free(a), free(b), free(bias), free(c), free(c0), free(bp), free(ap);
}

static void test_gemm(void)
{
    size_t Ms[] = {1, 5, 6, 7, 13, 64}, Ks[] = {1, 3, 4, 5, 32, 384}, Ns[] = {1, 15, 16, 17, 40, 96};
    for (size_t mi = 0; mi < 6; mi++)
        for (size_t ki = 0; ki < 6; ki++)
            for (size_t ni = 0; ni < 6; ni++)
                check_gemm(Ms[mi], Ks[ki], Ns[ni], (mi + ki + ni) % 2, (mi + ni) % 3 != 0);
    check_gemm(50, 1536, 384, 1, 1); /* the encoder's output projection */
    check_gemm(37, 200, 32, 0, 0);   /* attention: probabilities x values */
    printf("test_gemm_cpu: gemm kernels: %s\n",
           gemm_cpu_has_avx512() ? "avx512f + avx2+fma" : gemm_cpu_has_avx2() ? "avx2+fma" : "portable C");
}

static double gelu_ref(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }

static void test_gelu(void)
{
    /* A dense grid over the range where GELU is neither 0 nor x, plus the
     * tails; n not a multiple of 8 so the vector loop's tail runs too. */
    size_t n = 40003;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(-12.0 + 24.0 * (double)i / (double)(n - 1));
    x[0] = -30.0f, x[1] = 30.0f, x[2] = 0.0f, x[3] = -0.0f, x[4] = 1e-30f, x[5] = -1e-20f;
    for (size_t i = 0; i < n; i++)
        y[i] = x[i];
    ops_gelu(y, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double ref = gelu_ref(x[i]);
        /* Relative error, in units of its expected size: float rounding
         * and the erfc fit (< 1.2e-7) give ~2e-7; on the negative side
         * exp(-x^2/2) also amplifies the rounding of x^2 by x^2/2. (The
         * textbook float form 0.5 x (1 + erff(x / sqrt 2)) is off by 1e-5
         * at x = -3 and by 100% below -6, where it returns 0.) */
        double err = fabs(y[i] - ref) / (fabs(ref) + 1e-300) / (3e-7 * (1.0 + (double)x[i] * x[i]));
        if (fabs(ref) < 1e-37)
            err = fabs(y[i]) > 1e-37 ? 2.0 : 0.0;
        worst = err > worst ? err : worst;
    }
    CHECK_MSG(worst <= 1.0, "GELU error %.3g x the bound 3e-7 (1 + x^2) relative", worst);
    printf("test_gemm_cpu: GELU max error %.2g of the bound 3e-7 (1 + x^2) relative\n", worst);
    free(x), free(y);
}

static void test_softmax(void)
{
    size_t lens[] = {1, 7, 8, 9, 31, 256, 513};
    double worst = 0;
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        size_t n = lens[li];
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        for (size_t i = 0; i < n; i++)
            x[i] = 20.0f * frand();
        if (n > 2)
            x[n / 2] = -INFINITY; /* a masked key */
        for (size_t i = 0; i < n; i++)
            y[i] = x[i];
        float scale = 0.17677669f;
        ops_softmax_scaled(y, n, scale);
        double mx = -INFINITY, sum = 0;
        for (size_t i = 0; i < n; i++)
            mx = x[i] > mx ? x[i] : mx;
        for (size_t i = 0; i < n; i++)
            sum += exp(((double)x[i] - mx) * scale);
        for (size_t i = 0; i < n; i++) {
            double ref = exp(((double)x[i] - mx) * scale) / sum;
            double err = fabs(y[i] - ref) / (ref + 1e-30);
            if (ref == 0)
                CHECK_MSG(y[i] == 0.0f, "softmax n=%zu: masked entry %g", n, y[i]);
            else
                worst = err > worst ? err : worst;
        }
        for (size_t i = 0; i < n; i++)
            y[i] = -INFINITY;
        ops_softmax_scaled(y, n, 1.0f);
        int zeros = 1;
        for (size_t i = 0; i < n; i++)
            zeros &= y[i] == 0.0f;
        CHECK_MSG(zeros, "softmax n=%zu of all -inf is not all zeros", n);
        free(x), free(y);
    }
    CHECK_MSG(worst < 2e-6, "softmax relative error %.3g", worst);
    /* exp's range: tiny probabilities underflow to 0, never to NaN. */
    float z[3] = {0.0f, -200.0f, -86.0f};
    ops_softmax(z, 3);
    CHECK(z[0] > 0.99f && z[1] == 0.0f && z[2] >= 0.0f && z[2] < 1e-37f);
    printf("test_gemm_cpu: softmax max relative error %.2g\n", worst);
}

/* The packed layout itself, element by element: panel p, row k, lane j
 * holds w[(16p + j) * ldw + k], zero past N (the AVX2 path transposes 8x8
 * blocks, with scalar tails for K % 8 and a short last panel). */
static void test_pack_layout(void)
{
    static const size_t Ks[] = {1, 7, 8, 9, 16, 23, 64, 577};
    static const size_t Ns[] = {1, 15, 16, 17, 48, 50};
    size_t bad = 0, cases = 0;
    for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
        for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++) {
            size_t K = Ks[a], N = Ns[b], ldw = K + 3;
            float *w = malloc(N * ldw * sizeof *w), *bp = malloc(gemm_bpack_floats(K, N) * sizeof *bp);
            for (size_t i = 0; i < N * ldw; i++)
                w[i] = (float)i;
            gemm_pack_b_nk(w, ldw, N, K, bp);
            for (size_t p = 0; p * GEMM_NR < N; p++)
                for (size_t k = 0; k < K; k++)
                    for (size_t j = 0; j < GEMM_NR; j++) {
                        size_t n = p * GEMM_NR + j;
                        float want = n < N ? w[n * ldw + k] : 0.0f;
                        bad += bp[p * GEMM_NR * K + k * GEMM_NR + j] != want;
                    }
            cases++;
            free(w);
            free(bp);
        }
    CHECK_MSG(bad == 0, "gemm_pack_b_nk misplaced %zu values over %zu shapes", bad, cases);
}

int main(void)
{
    test_pack_layout();
    test_gemm();
    test_gelu();
    test_softmax();
    return check_finish("test_gemm_cpu");
}
