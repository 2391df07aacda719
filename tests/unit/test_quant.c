/* test_quant.c - the quantized block formats and the products on them.
 *
 * 1. Dequantization of every supported type must equal, bit for bit, the
 *    values the `gguf` Python package (ggml's numpy reference) gives for the
 *    blocks in tests/fixtures/quant_golden.txt (scripts/gen_quant_golden.py),
 *    also from unaligned memory.
 * 2. quantize_row_q8_k: ggml's activation format (scale, clamping, bsums).
 * 3. quant_matvec / quant_matmul on random weights of every type, on every
 *    kernel set this CPU runs (AVX2 and portable C): each result must lie
 *    within the error that quantizing the activations to 8 bits (rounding
 *    them to fp16 / bf16 for F16 / BF16 weights) allows of
 *    the exact product of the dequantized weights, the kernel sets must agree
 *    with each other, batched rows must equal single-vector rows, and row
 *    ranges must write only their rows.
 * 4. Bad arguments give clear errors. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/err.h"
#include "model/quant.h"
#include "model/quant_internal.h"

#define GOLDEN "tests/fixtures/quant_golden.txt"

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic across runs and platforms */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static float rnd_normal(void)
{
    double u1 = ((double)(rnd() >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(rnd() >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes len hex digits into bytes; returns the byte count or -1. */
static long unhex(const char *s, size_t len, unsigned char *out)
{
    if (len % 2)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

static uint32_t type_by_name(const char *name)
{
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++) {
        const char *n = ggml_type_name(t);
        if (n && strcmp(n, name) == 0)
            return t;
    }
    return UINT32_MAX;
}

static void put_f16(unsigned char *p, float v)
{
    uint16_t h = f32_to_fp16(v);
    p[0] = (unsigned char)(h & 0xff);
    p[1] = (unsigned char)(h >> 8);
}

/* ---- 1. golden dequantization ---------------------------------------------- */

static void test_golden(void)
{
    FILE *f = fopen(GOLDEN, "r");
    CHECK_MSG(f != NULL, "cannot open %s (run from the repository root)", GOLDEN);
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int records = 0, seen[GGML_TYPE_COUNT] = {0};
    while ((got = getline(&line, &cap, f)) > 0) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char type_name[16];
        size_t n = 0;
        int off = 0;
        if (sscanf(line, "block %15s %zu %n", type_name, &n, &off) != 2 || off == 0) {
            CHECK_MSG(0, "bad fixture line: %.60s", line);
            continue;
        }
        uint32_t type = type_by_name(type_name);
        CHECK_MSG(type != UINT32_MAX, "unknown type %s", type_name);
        if (type == UINT32_MAX)
            continue;
        const char *blocks_hex = line + off;
        const char *sp = strchr(blocks_hex, ' ');
        CHECK(sp != NULL);
        if (!sp)
            continue;
        const char *vals_hex = sp + 1;
        size_t vlen = strcspn(vals_hex, "\n");
        unsigned char *blocks = malloc((size_t)(sp - blocks_hex) / 2 + 1);
        float *want = malloc(vlen / 2 + 4);
        float *have = malloc(n * sizeof(float) + 4);
        unsigned char *shifted = malloc((size_t)(sp - blocks_hex) / 2 + 2);
        long nb = unhex(blocks_hex, (size_t)(sp - blocks_hex), blocks);
        long nv = unhex(vals_hex, vlen, (unsigned char *)want);
        size_t expect_bytes = 0;
        rg_err e;
        CHECK_OK(ggml_row_bytes(type, n, &expect_bytes, &e), e);
        CHECK_MSG(nb == (long)expect_bytes && nv == (long)(n * 4), "%s: %ld block bytes (want %zu), %ld value bytes",
                  type_name, nb, expect_bytes, nv);
        if (nb == (long)expect_bytes && nv == (long)(n * 4)) {
            CHECK_OK(dequantize_row(type, blocks, have, n, &e), e);
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < n; i++)
                if (memcmp(&have[i], &want[i], 4) != 0 && bad++ == 0)
                    first = i;
            CHECK_MSG(bad == 0, "%s: %zu of %zu values differ from the gguf package; first at %zu: %.9g vs %.9g",
                      type_name, bad, n, first, (double)have[first], (double)want[first]);
            /* tensor data in a mapping has any alignment */
            memcpy(shifted + 1, blocks, (size_t)nb);
            memset(have, 0, n * sizeof(float));
            CHECK_OK(dequantize_row(type, shifted + 1, have, n, &e), e);
            CHECK_MSG(memcmp(have, want, n * 4) == 0, "%s: unaligned blocks dequantize differently", type_name);
            records++;
            seen[type] = 1;
        }
        free(blocks);
        free(want);
        free(have);
        free(shifted);
    }
    free(line);
    fclose(f);
    static const uint32_t must[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                                    GGML_TYPE_Q8_0, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
                                    GGML_TYPE_Q8_K, GGML_TYPE_F16,  GGML_TYPE_BF16};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        CHECK_MSG(seen[must[i]], "the fixture has no %s blocks", ggml_type_name(must[i]));
    printf("golden: %d records match the gguf package bit for bit\n", records);
}

/* ---- 2. Q8_K activations ------------------------------------------------------- */

static void test_q8_k(void)
{
    float x[512];
    for (int i = 0; i < 512; i++)
        x[i] = rnd_normal() * (i < 256 ? 0.3f : 40.0f);
    x[300] = -500.0f; /* the extreme of block 1 is negative */
    unsigned char q[2 * GGML_Q8_K_BLOCK_BYTES];
    float y[512];
    rg_err e;
    CHECK_OK(quantize_row_q8_k(x, q, 512, &e), e);
    CHECK_OK(dequantize_row(GGML_TYPE_Q8_K, q, y, 512, &e), e);
    for (int b = 0; b < 2; b++) {
        const unsigned char *blk = q + b * GGML_Q8_K_BLOCK_BYTES;
        float d;
        memcpy(&d, blk, 4);
        float amax = 0;
        for (int j = 0; j < 256; j++)
            amax = fmaxf(amax, fabsf(x[256 * b + j]));
        CHECK_MSG(fabsf(fabsf(d) * 127.0f - amax) <= 1e-5f * amax, "block %d: |d| * 127 = %g, max %g", b,
                  (double)(fabsf(d) * 127.0f), (double)amax);
        int worst = 0;
        for (int j = 0; j < 256; j++) {
            float err = fabsf(y[256 * b + j] - x[256 * b + j]);
            if (err > fabsf(d) * 0.5001f)
                worst++;
        }
        CHECK_MSG(worst == 0, "block %d: %d values off by more than d/2", b, worst);
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += (signed char)blk[4 + 16 * g + j];
            int16_t bs;
            memcpy(&bs, blk + 260 + 2 * g, 2);
            CHECK_MSG(bs == sum, "block %d bsum %d: %d vs %d", b, g, bs, sum);
        }
    }
    /* ggml maps the signed extreme to -127 */
    CHECK((signed char)q[GGML_Q8_K_BLOCK_BYTES + 4 + 44] == -127);
    float zeros[256] = {0};
    CHECK_OK(quantize_row_q8_k(zeros, q, 256, &e), e);
    CHECK_OK(dequantize_row(GGML_TYPE_Q8_K, q, y, 256, &e), e);
    int nonzero = 0;
    for (int j = 0; j < 256; j++)
        nonzero += y[j] != 0.0f;
    CHECK(nonzero == 0);
    CHECK(quantize_row_q8_k(x, q, 100, &e) == RG_ERR_INVALID);
}

/* ---- 3. products ------------------------------------------------------------------- */

/* Random weights of type: random quant bits with finite, weight-like fp16
 * scales, so every bit pattern of the quants is exercised. */
static unsigned char *random_weights(uint32_t type, size_t rows, size_t cols, size_t *row_bytes)
{
    uint32_t be, bb;
    ggml_type_layout(type, &be, &bb);
    size_t nb = cols / be;
    *row_bytes = nb * bb;
    unsigned char *w = malloc(rows * *row_bytes);
    for (size_t i = 0; i < rows * *row_bytes; i++)
        w[i] = (unsigned char)rnd();
    for (size_t r = 0; r < rows; r++)
        for (size_t b = 0; b < nb; b++) {
            unsigned char *blk = w + r * *row_bytes + b * bb;
            switch (type) {
            case GGML_TYPE_F32:
                for (uint32_t k = 0; k < be; k++) {
                    float v = rnd_normal();
                    memcpy(blk + 4 * k, &v, 4);
                }
                break;
            case GGML_TYPE_F16: put_f16(blk, rnd_normal()); break;
            case GGML_TYPE_BF16: {
                uint16_t h = f32_to_bf16(rnd_normal());
                blk[0] = (unsigned char)h;
                blk[1] = (unsigned char)(h >> 8);
                break;
            }
            case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
                put_f16(blk, rnd_normal() * 0.02f);
                put_f16(blk + 2, rnd_normal() * 0.02f);
                break;
            case GGML_TYPE_Q6_K: put_f16(blk + 208, rnd_normal() * 0.02f); break;
            default: put_f16(blk, rnd_normal() * 0.02f); break; /* Q4_0, Q5_0, Q8_0 */
            }
        }
    return w;
}

/* The exact product of the dequantized row with x, and the error bound the
 * 8-bit activations allow: per activation block of k elements the rounding
 * moves each x by at most d/2 = max|x| / 254, so the product moves by at most
 * (max|x| / 254) * sum |w| over the block; the 32-element blocks keep d in
 * fp16 as ggml does (relative rounding <= 2^-11), which moves each x by up to
 * another 127 * d * 2^-11 = max|x| * 2^-11; plus float rounding. */
static void reference(uint32_t type, const float *wrow, const float *xin, size_t cols, double *dot, double *bound)
{
    /* F16 / BF16 weights take the activations rounded to their own type
     * (llama.cpp's vec_dot_type), then the products are exact: only float
     * summation is left */
    float xr[1024];
    const float *x = xin;
    if ((type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) && cols <= sizeof xr / sizeof xr[0]) {
        for (size_t c = 0; c < cols; c++)
            xr[c] = type == GGML_TYPE_F16 ? fp16_to_f32(f32_to_fp16(xin[c])) : bf16_to_f32(f32_to_bf16(xin[c]));
        x = xr;
    }
    size_t k = type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q5_K || type == GGML_TYPE_Q6_K ? 256
               : type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 ? 0
                                                                                          : 32;
    double s = 0, mag = 0, b = 0;
    for (size_t c = 0; c < cols; c++) {
        s += (double)wrow[c] * x[c];
        mag += fabs((double)wrow[c] * x[c]);
    }
    if (k)
        for (size_t c0 = 0; c0 < cols; c0 += k) {
            double amax = 0, wsum = 0;
            for (size_t c = c0; c < c0 + k; c++) {
                amax = fmax(amax, fabs((double)x[c]));
                wsum += fabs((double)wrow[c]);
            }
            b += amax * (1.0 / 254.0 + (k == 32 ? 1.0 / 2048.0 : 0.0)) * wsum;
        }
    *dot = s;
    *bound = b * (1 + 1e-5) + 2e-6 * mag + 1e-30;
}

static void test_products_of(uint32_t type)
{
    const char *name = ggml_type_name(type);
    size_t cols = type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q5_K || type == GGML_TYPE_Q6_K ? 768
                  : type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 ? 203
                                                                                             : 544;
    const size_t rows = 37, n_vec = 5;
    size_t row_bytes;
    unsigned char *w = random_weights(type, rows, cols, &row_bytes);
    float *wf = malloc(rows * cols * sizeof(float));
    float *x = malloc(n_vec * cols * sizeof(float));
    float *y = malloc(n_vec * rows * sizeof(float));
    float *y1 = malloc(rows * sizeof(float));
    float *ys = malloc(n_vec * rows * sizeof(float));
    float *xq = malloc(cols * sizeof(float));
    rg_err e;
    CHECK_OK(dequantize_row(type, w, wf, rows * cols, &e), e);
    for (size_t i = 0; i < n_vec * cols; i++)
        x[i] = rnd_normal() * (i % 97 == 0 ? 8.0f : 1.0f); /* a few outliers, as activations have */
    for (size_t i = 0; i < cols; i++)
        x[2 * cols + i] = 0.0f; /* a zero vector */

    void *act = malloc(n_vec * quant_act_bytes(type, cols));
    CHECK(quant_act_bytes(type, cols) > 0);
    CHECK_OK(quant_act_prepare(type, x, cols, n_vec, act, &e), e);
    for (int isa = QUANT_ISA_SCALAR; isa <= QUANT_ISA_AVX2; isa++) {
        if (!quant_isa_available((quant_isa)isa)) {
            printf("%s: %s kernels not available on this CPU\n", name, quant_isa_name((quant_isa)isa));
            continue;
        }
        float *out = isa == QUANT_ISA_SCALAR ? ys : y;
        for (size_t i = 0; i < n_vec * rows; i++)
            out[i] = NAN;
        CHECK_OK(quant_matmul_prepared_isa((quant_isa)isa, type, w, rows, cols, act, n_vec, out, rows, 0, rows, &e),
                 e);
        size_t bad = 0;
        double worst = 0;
        for (size_t v = 0; v < n_vec; v++)
            for (size_t r = 0; r < rows; r++) {
                double ref, bound;
                reference(type, wf + r * cols, x + v * cols, cols, &ref, &bound);
                double err = fabs((double)out[v * rows + r] - ref);
                if (!(err <= bound))
                    bad++;
                if (bound > 0 && err / bound > worst)
                    worst = err / bound;
            }
        CHECK_MSG(bad == 0, "%s/%s: %zu of %zu products outside the activation-quantization bound (worst %.3g x)",
                  name, quant_isa_name((quant_isa)isa), bad, n_vec * rows, worst);
        /* against the 8-bit activations themselves only float rounding is
         * left: this catches what the bound above is too loose to see */
        size_t off = 0;
        double worst_rel = 0;
        for (size_t v = 0; v < n_vec; v++) {
            CHECK_OK(quant_act_to_f32(type, (const unsigned char *)act + v * quant_act_bytes(type, cols), cols, xq, &e),
                     e);
            for (size_t r = 0; r < rows; r++) {
                double s = 0, mag = 0, s_round = 0;
                for (size_t c = 0; c < cols; c++) {
                    s += (double)wf[r * cols + c] * xq[c];
                    mag += fabs((double)wf[r * cols + c] * xq[c]);
                }
                if (type == GGML_TYPE_Q4_1 || type == GGML_TYPE_Q5_1) {
                    /* Q8_1's s = fp16(d * sum q) with the unrounded d: off
                     * d_fp16 * sum q by at most 2^-10 of it, times the
                     * block's m */
                    uint32_t bb = 0;
                    ggml_type_layout(type, NULL, &bb);
                    for (size_t b = 0; b < cols / 32; b++) {
                        const unsigned char *blk = w + r * row_bytes + b * bb;
                        double bs = 0;
                        for (size_t c = 32 * b; c < 32 * b + 32; c++)
                            bs += xq[c];
                        s_round += fabs((double)fp16_to_f32((uint16_t)(blk[2] | blk[3] << 8))) * fabs(bs) *
                                   (1.0 / 1024.0) * 1.01;
                    }
                }
                double err = fabs((double)out[v * rows + r] - s);
                err = err > s_round ? err - s_round : 0.0;
                double rel = mag > 0 ? err / mag : fabs((double)out[v * rows + r]);
                if (!(rel <= 1e-6))
                    off++;
                if (rel > worst_rel)
                    worst_rel = rel;
            }
        }
        CHECK_MSG(off == 0,
                  "%s/%s: %zu products differ from W . x8 by more than 1e-6 of sum |w x| (past Q8_1's fp16 sum "
                  "term; worst %.3g)",
                  name, quant_isa_name((quant_isa)isa), off, worst_rel);
        printf("%s/%s: worst error %.3f of the 8-bit bound, %.2g relative to W . x8\n", name,
               quant_isa_name((quant_isa)isa), worst, worst_rel);
    }
    if (quant_isa_available(QUANT_ISA_AVX2)) {
        size_t bad = 0;
        for (size_t v = 0; v < n_vec; v++)
            for (size_t r = 0; r < rows; r++) {
                double mag = 0;
                for (size_t c = 0; c < cols; c++)
                    mag += fabs((double)wf[r * cols + c] * x[v * cols + c]);
                if (!(fabs((double)y[v * rows + r] - ys[v * rows + r]) <= 1e-5 * mag + 1e-30))
                    bad++;
            }
        CHECK_MSG(bad == 0, "%s: %zu AVX2 products differ from the portable ones", name, bad);
    }

    /* the convenience forms; a batch equals its vectors one by one, and a
     * row range writes exactly its rows */
    CHECK_OK(quant_matmul(type, w, rows, cols, x, n_vec, y, 0, rows, &e), e);
    for (size_t v = 0; v < n_vec; v++) {
        for (size_t r = 0; r < rows; r++)
            y1[r] = -7.0f;
        CHECK_OK(quant_matvec(type, w, rows, cols, x + v * cols, y1, 5, 30, &e), e);
        size_t diff = 0, touched = 0;
        for (size_t r = 0; r < rows; r++) {
            if (r >= 5 && r < 30)
                diff += memcmp(&y1[r], &y[v * rows + r], 4) != 0;
            else
                touched += y1[r] != -7.0f;
        }
        CHECK_MSG(diff == 0, "%s: vector %zu alone differs from the batch in %zu rows", name, v, diff);
        CHECK_MSG(touched == 0, "%s: rows outside [5, 30) written", name);
    }
    for (size_t r = 0; r < rows; r++)
        CHECK_MSG(y[2 * rows + r] == 0.0f, "%s: zero activations give %g", name, (double)y[2 * rows + r]);
    free(w);
    free(wf);
    free(x);
    free(y);
    free(y1);
    free(ys);
    free(xq);
    free(act);
}

static void test_products(void)
{
    static const uint32_t types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q4_0,
                                     GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0,
                                     GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    printf("best kernels on this CPU: %s\n", quant_isa_name(quant_isa_best()));
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        CHECK(quant_matvec_supported(types[i]));
        test_products_of(types[i]);
    }
}

/* ---- 4. bad arguments --------------------------------------------------------------- */

static void test_errors(void)
{
    rg_err e;
    float x[256] = {0}, y[4];
    unsigned char w[4 * GGML_Q4_K_BLOCK_BYTES] = {0};
    CHECK(!quant_matvec_supported(GGML_TYPE_Q2_K));
    CHECK(quant_matvec(GGML_TYPE_Q2_K, w, 1, 256, x, y, 0, 1, &e) == RG_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(e.msg, "Q2_K") != NULL, "%s", e.msg);
    CHECK(quant_matvec(GGML_TYPE_Q4_K, w, 1, 200, x, y, 0, 1, &e) == RG_ERR_INVALID);
    CHECK_MSG(strstr(e.msg, "200") != NULL, "%s", e.msg);
    CHECK(quant_matvec(GGML_TYPE_Q4_K, w, 1, 256, x, y, 0, 2, &e) == RG_ERR_INVALID);
    CHECK(quant_matvec(GGML_TYPE_Q4_K, w, 4, 256, x, y, 3, 2, &e) == RG_ERR_INVALID);
    CHECK(quant_matvec(77, w, 1, 256, x, y, 0, 1, &e) == RG_ERR_UNSUPPORTED);
    CHECK(quant_act_bytes(GGML_TYPE_Q4_0, 48) == 0);
    CHECK(quant_act_bytes(GGML_TYPE_Q4_0, 64) == 80);
    CHECK(quant_act_bytes(GGML_TYPE_Q6_K, 512) == 2 * GGML_Q8_K_BLOCK_BYTES);
    CHECK(quant_act_bytes(GGML_TYPE_F16, 3) == 12);
    _Alignas(8) unsigned char act[2 * GGML_Q8_K_BLOCK_BYTES + 8];
    CHECK(quant_act_prepare(GGML_TYPE_Q4_K, x, 256, 1, act + 1, &e) == RG_ERR_INVALID);
    CHECK(quant_matmul_prepared(GGML_TYPE_Q4_K, w, 4, 256, act, 2, y, 3, 0, 4, &e) == RG_ERR_INVALID);
    /* still-unsupported types are refused by name */
    CHECK(dequantize_row(GGML_TYPE_Q3_K, w, x, 256, &e) == RG_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(e.msg, "Q3_K") != NULL, "%s", e.msg);
    CHECK(dequantize_row(GGML_TYPE_Q4_0, w, x, 48, &e) == RG_ERR_INVALID);
    /* a zero-row range is fine and writes nothing */
    y[0] = 3.0f;
    CHECK_OK(quant_matvec(GGML_TYPE_Q4_0, w, 4, 32, x, y, 2, 2, &e), e);
    CHECK(y[0] == 3.0f);
}

/* The AVX2 activation quantization equals the portable one bit for bit:
 * random blocks of several scales, ties at .5 after scaling (round to
 * even), zero and sign-only blocks, huge and subnormal values. */
static void test_act_quantize_avx2(void)
{
    if (!quant_avx2_usable()) {
        printf("test_quant: no AVX2 here, activation quantization compared on the portable path only\n");
        return;
    }
    enum { NB = 64 };
    float x[NB * 32];
    uint64_t r = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < NB * 32; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        float u = (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        float scale = (float)pow(10.0, (double)((i / 32) % 9) - 4.0);
        x[i] = u * scale;
    }
    for (int j = 0; j < 32; j++) {
        x[32 * 1 + j] = 0.0f;                         /* all zero */
        x[32 * 2 + j] = j % 2 ? -0.0f : 0.0f;         /* signed zeros */
        x[32 * 3 + j] = (float)(j - 16) * 0.5f;       /* x * id lands on .5 ties */
        x[32 * 4 + j] = j == 5 ? 3.0e38f : 1.0f;      /* huge */
        x[32 * 5 + j] = (float)j * 1.0e-40f;          /* subnormal */
        x[32 * 6 + j] = j == 31 ? -127.0f : (float)j; /* the negative extreme */
    }
    for (int q8_1 = 0; q8_1 < 2; q8_1++) {
        quant_a8_block a[NB], b[NB];
        memset(a, 0x55, sizeof a);
        memset(b, 0xaa, sizeof b);
        quant_a8_quantize_c(x, NB, q8_1, a);
        quant_a8_quantize_avx2(x, NB, q8_1, b);
        size_t differ = 0;
        for (size_t i = 0; i < NB; i++)
            differ += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
        CHECK_MSG(differ == 0, "AVX2 activation quantization differs on %zu of %d blocks (q8_1 %d)", differ, NB,
                  q8_1);
    }
}

/* The AVX2 dequantizer (used by dequantize_row where the CPU has it, so the
 * golden tests above already run it there) against the formulas of the
 * portable code, bit for bit, on random blocks: every fp16 scale pattern
 * class (normal, subnormal, zero, inf, NaN) and every nibble/byte. */
static void test_dequant_avx2(void)
{
    if (!quant_avx2_usable()) {
        printf("test_quant: no AVX2 on this CPU: the AVX2 dequantizer is not checked\n");
        return;
    }
    enum { NB = 257 };
    static const uint32_t types[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q8_0};
    static const size_t bytes[] = {GGML_Q4_0_BLOCK_BYTES, GGML_Q4_1_BLOCK_BYTES, GGML_Q8_0_BLOCK_BYTES};
    unsigned char *src = malloc(NB * 34);
    float *got = malloc(NB * 32 * sizeof *got), *want = malloc(NB * 32 * sizeof *want);
    uint32_t rng = 12345;
    for (size_t t = 0; t < 3; t++) {
        for (size_t i = 0; i < NB * bytes[t]; i++) {
            rng = rng * 1664525u + 1013904223u;
            src[i] = (unsigned char)(rng >> 24);
        }
        /* scales: mostly ordinary, some special patterns */
        static const uint16_t special[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x7e00, 0x3c00, 0x2e66};
        for (size_t b = 0; b < NB; b++) {
            unsigned char *blk = src + b * bytes[t];
            if (b < sizeof special / sizeof *special) {
                blk[0] = (unsigned char)special[b], blk[1] = (unsigned char)(special[b] >> 8);
            } else {
                blk[1] &= 0x3f; /* |d| below 2: like real scales */
                if (t == 1)
                    blk[3] = (unsigned char)((blk[3] & 0x3f) | (blk[3] & 0x80));
            }
            for (int j = 0; j < 32; j++) {
                float d = fp16_to_f32((uint16_t)(blk[0] | blk[1] << 8)), v;
                if (t == 2) {
                    v = d * (float)(signed char)blk[2 + j];
                } else {
                    const unsigned char *qs = blk + (t == 1 ? 4 : 2);
                    int q = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
                    v = t == 0 ? d * (float)(q - 8) : d * (float)q + fp16_to_f32((uint16_t)(blk[2] | blk[3] << 8));
                }
                want[b * 32 + (size_t)j] = v;
            }
        }
        memset(got, 0x5a, NB * 32 * sizeof *got);
        CHECK(quant_dequant_avx2(types[t], src, got, NB) == 1);
        /* bitwise, except that a NaN from NaN inputs may carry either
         * operand's payload (the compiler may swap an addition's operands) */
#define SAME_BITS(a, b) (memcmp(&(a), &(b), sizeof(a)) == 0 || (isnan(a) && isnan(b)))
        size_t differ = 0;
        for (size_t i = 0; i < NB * 32; i++)
            differ += !SAME_BITS(got[i], want[i]);
        for (size_t i = 0; i < NB * 32 && differ; i++)
            if (!SAME_BITS(got[i], want[i]))
                printf("test_quant: %s value %zu: AVX2 %a, portable %a\n", ggml_type_name(types[t]), i, (double)got[i],
                       (double)want[i]);
        CHECK_MSG(differ == 0, "AVX2 dequantization of %s differs in %zu of %d values", ggml_type_name(types[t]),
                  differ, NB * 32);
    }
#undef SAME_BITS
    CHECK(quant_dequant_avx2(GGML_TYPE_Q6_K, src, got, 1) == 0);
    free(src);
    free(got);
    free(want);
}

/* quant_act_prepare for float weights: F16 and BF16 activations rounded to
 * nearest even in the weights' type (ties, subnormals, overflow to
 * infinity, signed zero, NaN), F32 left alone; bit for bit */
static void test_act_rounding(void)
{
    static const struct {
        float x, f16, bf16;
    } cases[] = {
        {1.0f, 1.0f, 1.0f},
        {1.00048828125f, 1.0f, 1.0f},               /* 1 + 2^-11: an fp16 tie, to even */
        {1.00146484375f, 1.001953125f, 1.0f},       /* 1 + 3 * 2^-11: a tie, up to even */
        {1.00390625f, 1.00390625f, 1.0f},           /* 1 + 2^-8: a bf16 tie, to even */
        {1.01171875f, 1.01171875f, 1.015625f},      /* 1 + 3 * 2^-8: a bf16 tie, up */
        {65504.0f, 65504.0f, 65536.0f},             /* fp16's largest */
        {65519.0f, 65504.0f, 65536.0f},
        {65520.0f, INFINITY, 65536.0f},             /* past it: infinity */
        {1e-7f, 1.1920928955078125e-07f, 1.0011717677116394e-07f}, /* an fp16 subnormal: 2 * 2^-24 */
        {-0.0f, -0.0f, -0.0f},
        {-INFINITY, -INFINITY, -INFINITY},
        {3.4028234663852886e38f, INFINITY, INFINITY}, /* FLT_MAX: bf16 rounds it up too */
    };
    enum { N = sizeof cases / sizeof cases[0], REP = 9 };
    rg_err e;
    /* each value nine times: eight through the AVX2 kernel (where the CPU
     * has it), the ninth through the portable loop */
    for (size_t i = 0; i <= N; i++) {
        float x[REP], out[REP];
        for (size_t k = 0; k < REP; k++)
            x[k] = i < N ? cases[i].x : NAN;
        for (int t = 0; t < 3; t++) {
            uint32_t type = t == 0 ? GGML_TYPE_F16 : t == 1 ? GGML_TYPE_BF16 : GGML_TYPE_F32;
            CHECK_OK(quant_act_prepare(type, x, REP, 1, out, &e), e);
            for (size_t k = 0; k < REP; k++) {
                if (i == N) {
                    CHECK_MSG(isnan(out[k]), "%s activation NaN: %g", ggml_type_name(type), (double)out[k]);
                    continue;
                }
                float want = t == 0 ? cases[i].f16 : t == 1 ? cases[i].bf16 : cases[i].x;
                CHECK_MSG(memcmp(&out[k], &want, sizeof want) == 0, "%s activation %.9g (copy %zu): %.9g, want %.9g",
                          ggml_type_name(type), (double)cases[i].x, k, (double)out[k], (double)want);
            }
        }
    }
    /* the AVX2 rounding against the portable one on random bit patterns
     * (every exponent: subnormals, overflow, infinities; NaNs only as NaN) */
    if (quant_avx2_usable()) {
        enum { M = 1 << 16 };
        float *x = malloc(M * sizeof(float)), *a = malloc(M * sizeof(float));
        size_t bad = 0;
        for (size_t i = 0; i < M; i++) {
            uint32_t u = (uint32_t)rnd();
            memcpy(&x[i], &u, sizeof u);
        }
        for (int t = 0; t < 2; t++) {
            uint32_t type = t == 0 ? GGML_TYPE_F16 : GGML_TYPE_BF16;
            CHECK(quant_round_act_avx2(type, x, M, a) == M);
            for (size_t i = 0; i < M; i++) {
                float want = t == 0 ? fp16_to_f32(f32_to_fp16(x[i])) : bf16_to_f32(f32_to_bf16(x[i]));
                bad += isnan(want) ? !isnan(a[i]) : memcmp(&a[i], &want, sizeof want) != 0;
            }
        }
        CHECK_MSG(bad == 0, "AVX2 activation rounding: %zu of %d values differ from the portable rounding", bad,
                  2 * M);
        free(x);
        free(a);
    }
}

int main(void)
{
    test_act_rounding();
    test_dequant_avx2();
    test_act_quantize_avx2();
    test_golden();
    test_q8_k();
    test_products();
    test_errors();
    return check_finish("test_quant");
}
