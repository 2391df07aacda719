/* test_decoder_math.c - model/decoder_math: the vector exponential gives the
 * same floats on every lane path, stays within ggml_v_expf's error, handles
 * the edges (overflow, underflow to subnormals and zero, infinities, NaN),
 * and SwiGLU / softmax keep the block structure they mirror. test_decoder
 * checks the end result against llama.cpp; this pins the pieces, so a
 * change that keeps the golden prompts but breaks a rarely hit lane (a
 * subnormal result, a tail of a width that is not a multiple of 16) fails
 * here. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/decoder_math.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* units in the last place between a and the correctly rounded b */
static double ulps(float a, double b)
{
    float bf = (float)b;
    float step = nextafterf(fabsf(bf), INFINITY) - fabsf(bf);
    return fabs((double)a - b) / (double)step;
}

/* The 8-lane path (runs of 8) and the one-at-a-time path (runs of 1) must
 * agree bit for bit on every input, and stay near the true e^x where the
 * result is a normal float: ggml_v_expf states 1.45 ulp plus the final
 * rounding; measured here at most 2.19 ulp of the result's float spacing
 * (a broken polynomial or reduction is off by orders more). */
static void test_exp_sweep(void)
{
    enum { N = 1 << 16 };
    float *x = malloc(N * sizeof *x), *v = malloc(N * sizeof *v), *s = malloc(N * sizeof *s);
    uint32_t seed = 12345;
    for (size_t i = 0; i < N; i++) {
        seed = seed * 1664525u + 1013904223u;
        /* mostly the range the decoder meets, some far out on both sides */
        x[i] = i % 8 == 7 ? ((float)(seed >> 8) / 16777216.0f - 0.5f) * 240.0f
                          : ((float)(seed >> 8) / 16777216.0f - 0.5f) * 40.0f;
    }
    dec_math_exp(v, x, N);
    for (size_t i = 0; i < N; i++)
        dec_math_exp(s + i, x + i, 1);
    size_t differ = 0, over = 0;
    double worst = 0;
    for (size_t i = 0; i < N; i++) {
        differ += bits(v[i]) != bits(s[i]);
        double ref = exp((double)x[i]);
        if (ref > 1.2e-38 && ref < 3.4e38) {
            double u = ulps(v[i], ref);
            worst = u > worst ? u : worst;
            over += u > 2.5;
        }
    }
    CHECK_MSG(differ == 0, "vector and scalar exp differ on %zu of %d inputs", differ, N);
    CHECK_MSG(over == 0, "exp off by more than 2.5 ulp on %zu inputs (worst %.2f)", over, worst);
    printf("test_decoder_math: exp over %d inputs: %zu differ between vector and scalar lanes, worst %.2f ulp\n", N,
           differ, worst);
    free(x), free(v), free(s);
}

static void test_exp_edges(void)
{
    float x[16] = {0.0f, -0.0f, 1.0f, -1.0f, 88.0f, 88.7f, 89.0f, -87.0f,
                   -95.0f, -103.0f, -104.5f, -200.0f, INFINITY, -INFINITY, NAN, 1e-30f};
    float v[16], s[16];
    dec_math_exp(v, x, 16);
    for (size_t i = 0; i < 16; i++)
        dec_math_exp(s + i, x + i, 1);
    for (size_t i = 0; i < 16; i++)
        CHECK_MSG(bits(v[i]) == bits(s[i]) || (isnan(v[i]) && isnan(s[i])), "exp(%g): lanes %g vs scalar %g",
                  (double)x[i], (double)v[i], (double)s[i]);
    CHECK(v[0] == 1.0f && v[1] == 1.0f && v[15] == 1.0f);
    CHECK_MSG(ulps(v[2], exp(1.0)) <= 2.5 && ulps(v[3], exp(-1.0)) <= 2.5, "e = %.9g, 1/e = %.9g", (double)v[2],
              (double)v[3]);
    CHECK(isfinite(v[4]) && isfinite(v[5]) && isinf(v[6]));
    /* e^-95 and e^-103 are subnormal floats: rounded once, not flushed */
    CHECK(v[8] > 0.0f && v[8] < 1.2e-38f && ulps(v[8], exp(-95.0)) <= 2.0);
    CHECK(v[9] > 0.0f && v[9] < 1.2e-38f);
    CHECK(v[11] == 0.0f && v[12] == INFINITY && v[13] == 0.0f && isnan(v[14]));
}

/* SwiGLU: g / (1 + e^-g) * u, the same floats whatever the row width (the
 * last width % 16 of a row through libm's expf), within float rounding of
 * the exact formula. */
static void test_swiglu(void)
{
    size_t widths[] = {16, 48, 37, 5};
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
        size_t n = widths[w], rows = 3;
        float *g = malloc(rows * n * sizeof *g), *u = malloc(rows * n * sizeof *u), *g0 = malloc(rows * n * sizeof *g0);
        for (size_t i = 0; i < rows * n; i++) {
            g0[i] = g[i] = (float)((int)(i * 37 % 101) - 50) * 0.37f;
            u[i] = (float)(i % 7) * 0.5f - 1.0f;
        }
        dec_math_swiglu(g, u, rows, n);
        double worst = 0;
        for (size_t i = 0; i < rows * n; i++) {
            double ref = (double)g0[i] / (1.0 + exp(-(double)g0[i])) * u[i];
            double err = fabs(g[i] - ref) / (fabs(ref) + 1e-30);
            worst = err > worst ? err : worst;
        }
        CHECK_MSG(worst < 1e-6, "swiglu width %zu: relative error %.3g", n, worst);
        /* a row is computed alone: the second row equals the same row run by itself */
        float one[64];
        memcpy(one, g0 + n, n * sizeof *one);
        dec_math_swiglu(one, u + n, 1, n);
        CHECK_MSG(memcmp(one, g + n, n * sizeof *one) == 0, "swiglu width %zu: row 1 depends on its neighbours", n);
        free(g), free(u), free(g0);
    }
}

/* Softmax: sums to 1, masked (-inf) entries are 0, a row of -inf is all
 * zeros, and the result of n entries equals that of the same entries
 * followed by -inf padding (llama.cpp's cache view is padded that way). */
static void test_softmax(void)
{
    size_t lens[] = {1, 5, 16, 33, 100};
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
        size_t n = lens[k];
        float x[128], y[128];
        for (size_t i = 0; i < n; i++)
            x[i] = (float)((int)(i * 53 % 29) - 14) * 0.9f;
        memcpy(y, x, n * sizeof *x);
        for (size_t i = n; i < 128; i++)
            y[i] = -INFINITY;
        size_t padded = (n + 31) / 32 * 32;
        dec_math_softmax(x, n);
        dec_math_softmax(y, padded);
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += x[i];
        CHECK_MSG(fabs(sum - 1.0) < 1e-5, "softmax of %zu: sum %.9g", n, sum);
        CHECK_MSG(memcmp(x, y, n * sizeof *x) == 0, "softmax of %zu: -inf padding changes the weights", n);
        for (size_t i = n; i < padded; i++)
            CHECK(y[i] == 0.0f);
    }
    float z[3] = {-INFINITY, -INFINITY, -INFINITY};
    dec_math_softmax(z, 3);
    CHECK(z[0] == 0.0f && z[1] == 0.0f && z[2] == 0.0f);
    float big[2] = {1000.0f, 0.0f};
    dec_math_softmax(big, 2);
    CHECK(big[0] == 1.0f && big[1] == 0.0f);
}

int main(void)
{
    test_exp_sweep();
    test_exp_edges();
    test_swiglu();
    test_softmax();
    return check_finish("test_decoder_math");
}
