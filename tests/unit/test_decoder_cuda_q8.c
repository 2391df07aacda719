/* test_decoder_cuda_q8.c - the CUDA decoder's products with 8-bit
 * activations (model/decoder_cuda_q8.cu) against model/quant's CPU kernels,
 * whose results are llama.cpp's (test_decoder: its logits within 1e-6):
 *   - activations quantized on the device are quant_act_prepare's blocks
 *     byte for byte, for each kind (blocks of 32 with an fp16 d and the
 *     Q8_0 or Q8_1 sum term, Q8_K blocks of 256): random rows, rows of
 *     zeros, a largest magnitude present with both signs (the first one
 *     sets Q8_K's sign), values that fall on rounding ties;
 *   - the integer products on every block type equal the CPU's x86 kernels
 *     (ggml's float order) on the same activations bit for bit, where this
 *     CPU runs them, else the portable kernels within fp32 rounding (1e-5
 *     of the sum of |w x| over the 8-bit values), at 1 to 16 token rows and past
 *     16 (prefill: chunks of 16 over one grid), each row's result bitwise
 *     what it gives alone (a sequence's logits cannot depend on its batch:
 *     also fp16 parts on the float kernel, up to 16 rows);
 *   - float matrices kept as in the file (F32, F16, BF16) multiplied by the
 *     fp32 activations in the CPU's order, bit for bit too (widths with a
 *     tail past 16-value blocks);
 *   - a Q4_K_M-style Q|K|V (Q4_K | Q6_K | F16) in one product, each part at
 *     its offset;
 *   - the attention and SwiGLU kernels of the CPU path's arithmetic
 *     (model/decoder_cuda_ggml.cu) against the CPU's dec_attend and
 *     dec_math_swiglu on random inputs, bit for bit: prefill tokens (the
 *     16-lane order) and lone tokens (ggml's 64-lane vec_dot with its double
 *     tail) over 1 to 2300 positions (past a tile of 256 and the 2048
 *     scores kept between passes), grouped-query
 *     heads of 64 and 128, f16 and f32 caches; SwiGLU past its 16-wide
 *     blocks (the tail takes libm's expf: within 1e-6 there);
 *   - RMSNorm, that attention and SwiGLU leaving their outputs quantized for
 *     the next product (the q8 decoder's fused launches: blocks of 32 within
 *     a row or a head, Q8_K's 256, and the separate quantizing where a
 *     block spans two heads) exactly as quant_act_prepare quantizes them;
 *   - RMSNorm's output equal to the CPU's bit for bit, on rows whose tree
 *     and sequential sums of squares round to two different floats too.
 * Exits 77 (ctest: skipped) without a usable CUDA device. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "quant_rand.h"
#include "model/backend.h"
#include "model/decoder.h"
#include "model/decoder_cuda_ops.h"
#include "model/decoder_internal.h"
#include "model/decoder_math.h"
#include "model/quant.h"

#ifdef RAGD_HAVE_CUDA

#include "cache_rand.h"

/* ---- quantizing ----------------------------------------------------------------------- */

static void test_quantize(uint32_t type, size_t rows, size_t in)
{
    rg_err e = {0};
    size_t rb = quant_act_bytes(type, in);
    float *x = rand_vec(rows * in, -3, 3);
    /* row 1: zeros; row 2: the largest magnitude twice, both signs, and
     * ties (127 / max is 1: x.5 values round to even) */
    if (rows > 2) {
        memset(x + in, 0, in * sizeof(float));
        float *t = x + 2 * in;
        for (size_t k = 0; k < in; k++)
            t[k] = (float)((int)(k % 60) - 30) + 0.5f;
        for (size_t b = 0; b < in; b += 32) {
            t[b + 3] = -127.0f;
            t[b + 9] = 127.0f;
        }
    }
    unsigned char *want = malloc(rows * rb), *got = malloc(rows * rb);
    CHECK_OK(quant_act_prepare(type, x, in, rows, want, &e), e);
    CHECK_OK(dec_cuda_ops_quantize_act(type, x, rows, in, got, &e), e);
    size_t bad_rows = 0;
    for (size_t r = 0; r < rows; r++)
        bad_rows += memcmp(want + r * rb, got + r * rb, rb) != 0;
    CHECK_MSG(bad_rows == 0, "%s activations, %zu x %zu: %zu rows differ from quant_act_prepare's", ggml_type_name(type),
              rows, in, bad_rows);
    free(x), free(want), free(got);
}

/* got: rows of width values (vals) that a kernel also left quantized for
 * weights of type; they must be quant_act_prepare's blocks of vals. */
static void check_q8_out(const char *what, uint32_t type, const float *vals, size_t rows, size_t width,
                         const unsigned char *got)
{
    rg_err e = {0};
    size_t rb = quant_act_bytes(type, width);
    unsigned char *want = malloc(rows * rb);
    CHECK_OK(quant_act_prepare(type, vals, width, rows, want, &e), e);
    size_t bad_rows = 0;
    for (size_t r = 0; r < rows; r++)
        bad_rows += memcmp(want + r * rb, got + r * rb, rb) != 0;
    CHECK_MSG(bad_rows == 0, "%s, quantized for %s: %zu of %zu rows differ from quant_act_prepare's", what,
              ggml_type_name(type), bad_rows, rows);
    free(want);
}

/* RMSNorm leaving its output quantized for the next product (in its own
 * kernel: the row's blocks of 32 or 256). */
static void test_rmsnorm_q8(uint32_t type, size_t rows, size_t n)
{
    rg_err e = {0};
    float *x = rand_vec(rows * n, -30, 30), *add = rand_vec(rows * n, -5, 5), *w = rand_vec(n, 0.5f, 2);
    float *out = malloc(rows * n * sizeof(float));
    unsigned char *q8 = malloc(rows * quant_act_bytes(type, n));
    CHECK_OK(dec_cuda_ops_rmsnorm(x, add, rows, n, w, 1e-5f, 1, out, NULL, type, q8, &e), e);
    char what[64];
    snprintf(what, sizeof what, "RMSNorm %zu x %zu", rows, n);
    check_q8_out(what, type, out, rows, n, q8);
    free(x), free(add), free(w), free(out), free(q8);
}

/* RMSNorm's fp32 output equals the CPU path's bit for bit, its mean too
 * where the kernel's tree sum of the squares and the CPU's sequential sum
 * fall on two sides of a float rounding boundary. The first 16 rows are
 * built so: 1 + 2^-24 is the midpoint between 1 and the next float, and n a
 * power of two keeps S / n a midpoint; the CPU adds 1, 2^-24, then each
 * 2^-54 (a quarter ulp, rounded away), or the 2^-54 first, and stays on the
 * midpoint (rounding to even); the tree adds the 2^-54 among themselves
 * first, passes it and rounds up. The square root often hides a one-ulp
 * mean: the plain tree-sum kernel failed 3 of these rows at n = 256 and 8
 * at 512. The others are random, with a random residual added (the
 * kernel's fallback reads back what other threads wrote). */
static void test_rmsnorm_order(size_t n)
{
    const size_t rows = 20, crafted = 16;
    rg_err e = {0};
    float *x = rand_vec(rows * n, -30, 30), *add = rand_vec(rows * n, -5, 5), *w = rand_vec(n, 0.5f, 2);
    float *out = malloc(rows * n * sizeof(float)), *want = malloc(n * sizeof(float));
    memset(add, 0, crafted * n * sizeof(float));
    for (size_t r = 0; r < crafted; r++) {
        float *xr = x + r * n, s = ldexpf(1.0f, (int)r - 8); /* scales by powers of two stay exact */
        for (size_t i = 0; i < n; i++)
            xr[i] = s * ldexpf(1.0f, -27);
        xr[r % 2 ? n - 1 : 0] = s;
        xr[r % 2 ? 0 : 1] = s * ldexpf(1.0f, -12);
    }
    unsigned char *q8 = malloc(rows * quant_act_bytes(GGML_TYPE_Q4_1, n));
    CHECK_OK(dec_cuda_ops_rmsnorm(x, add, rows, n, w, 1e-12f, 1, out, NULL, GGML_TYPE_Q4_1, q8, &e), e);
    size_t bad_rows = 0, bad_crafted = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t i = 0; i < n; i++)
            x[r * n + i] += add[r * n + i];
        dec_math_rmsnorm(x + r * n, w, n, 1e-12f, want);
        int bad = memcmp(want, out + r * n, n * sizeof(float)) != 0;
        bad_rows += bad;
        bad_crafted += bad && r < crafted;
    }
    CHECK_MSG(bad_rows == 0, "RMSNorm %zu x %zu: %zu rows (%zu of the %zu on a rounding boundary) differ from the CPU's",
              rows, n, bad_rows, bad_crafted, crafted);
    check_q8_out("RMSNorm on rounding boundaries", GGML_TYPE_Q4_1, out, rows, n, q8);
    free(x), free(add), free(w), free(out), free(want), free(q8);
}

/* ---- products ------------------------------------------------------------------------- */

/* |m| of each 32-value block of a _1-type row, else 0 (the sum term's
 * magnitude). */
static float block_min(uint32_t type, const unsigned char *row, size_t k)
{
    if (type != GGML_TYPE_Q4_1 && type != GGML_TYPE_Q5_1)
        return 0.0f;
    size_t bb = type == GGML_TYPE_Q4_1 ? GGML_Q4_1_BLOCK_BYTES : GGML_Q5_1_BLOCK_BYTES;
    const unsigned char *blk = row + k / 32 * bb;
    return fabsf(fp16_to_f32((uint16_t)(blk[2] | blk[3] << 8)));
}

/* Parts as a decoder's Q|K|V: types[i] with part_rows[i] rows (GGUF blocks
 * or float rows); x [rows, in] floats. */
static void test_products(const uint32_t *types, const size_t *part_rows, size_t n_parts, size_t in)
{
    enum { MAXR = 40 };
    rg_err e = {0};
    size_t out = 0;
    for (size_t i = 0; i < n_parts; i++)
        out += part_rows[i];
    dec_cuda_ops_part parts[3];
    float *x = rand_vec(MAXR * in, -3, 3);
    float *deq = malloc(out * in * sizeof(float)), *want = malloc(MAXR * out * sizeof(float)),
          *mag = malloc(MAXR * out * sizeof(float));
    float *y = malloc(MAXR * out * sizeof(float)), *y1 = malloc(out * sizeof(float));
    float *x8 = malloc(in * sizeof(float)), *yp = malloc(MAXR * out * sizeof(float));
    char name[64] = "";
    /* the device follows the x86 kernels' float order (ggml's): equal bit
     * for bit where this CPU runs them, else near the portable kernels */
    int exact = quant_isa_available(QUANT_ISA_AVX2);
    /* the CPU's results for every row count at once (a row's result does
     * not depend on the others there either) */
    for (size_t i = 0, at = 0; i < n_parts; at += part_rows[i], i++) {
        uint32_t type = types[i], be = 1, bb = 2;
        CHECK(ggml_type_layout(type, &be, &bb) && in % be == 0);
        size_t row_bytes = in / be * bb, pr = part_rows[i];
        unsigned char *w = malloc(pr * row_bytes);
        if (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 || type == GGML_TYPE_F32)
            for (size_t k = 0; k < pr * in; k++) {
                float v = frand(-1, 1);
                uint16_t h = type == GGML_TYPE_F16 ? f32_to_fp16(v) : f32_to_bf16(v);
                if (type == GGML_TYPE_F32)
                    memcpy(w + 4 * k, &v, 4);
                else
                    memcpy(w + 2 * k, &h, 2);
            }
        else
            rand_blocks(type, w, pr * in / be, bb);
        for (size_t r = 0; r < pr; r++)
            CHECK_OK(dequantize_row(type, w + r * row_bytes, deq + (at + r) * in, in, &e), e);
        parts[i] = (dec_cuda_ops_part){type, w, pr, row_bytes};
        snprintf(name + strlen(name), sizeof name - strlen(name), "%s%s x %zu", i ? " | " : "", ggml_type_name(type),
                 pr);
        size_t ab = quant_act_bytes(type, in);
        void *act = malloc(MAXR * ab);
        CHECK_OK(quant_act_prepare(type, x, in, MAXR, act, &e), e);
        CHECK_OK(quant_matmul_prepared_isa(exact ? QUANT_ISA_AVX2 : QUANT_ISA_SCALAR, type, w, pr, in, act, MAXR, yp,
                                           pr, 0, pr, &e), e);
        for (size_t t = 0; t < MAXR; t++) {
            CHECK_OK(quant_act_to_f32(type, (const char *)act + t * ab, in, x8, &e), e);
            for (size_t r = 0; r < pr; r++) {
                double m = 0;
                for (size_t k = 0; k < in; k++)
                    m += (fabs(deq[(at + r) * in + k]) + block_min(type, w + r * row_bytes, k)) * fabs(x8[k]);
                want[t * out + at + r] = yp[t * pr + r];
                mag[t * out + at + r] = (float)m;
            }
        }
        free(act);
    }
    size_t row_counts[] = {1, 2, 3, 4, 5, 8, 9, 13, 16, 17, 33, 40};
    for (size_t ri = 0; ri < sizeof row_counts / sizeof *row_counts; ri++) {
        size_t rows = row_counts[ri], bad = 0;
        double worst = 0;
        CHECK_OK(dec_cuda_ops_linear_q8(parts, n_parts, x, rows, in, y, &e), e);
        for (size_t i = 0; i < rows * out; i++) {
            double d = fabs((double)y[i] - want[i]), tol = 1e-5 * mag[i] + 1e-30;
            if (exact) /* the CPU's float operations, one by one */
                bad += memcmp(&y[i], &want[i], sizeof(float)) != 0;
            else
                bad += !(d <= tol);
            worst = d / tol > worst ? d / tol : worst;
        }
        size_t n = rows - 1;
        CHECK_OK(dec_cuda_ops_linear_q8(parts, n_parts, x + n * in, 1, in, y1, &e), e);
        int not_alone = memcmp(y1, y + n * out, out * sizeof *y1) != 0;
        CHECK_MSG(bad == 0 && !not_alone,
                  "8-bit product %zu rows x %zu -> [%s]: %zu values off the CPU's (%s; worst %.3g of 1e-5); last "
                  "row "
                  "%s alone", rows, in, name, bad, exact ? "bit for bit" : "within 1e-5", worst,
                  not_alone ? "differs from" : "equals");
    }
    for (size_t i = 0; i < n_parts; i++)
        free((void *)parts[i].w);
    free(x), free(deq), free(want), free(mag), free(y), free(y1), free(x8), free(yp);
}


/* ---- the CPU path's attention and SwiGLU ------------------------------------------------ */

/* One call: tokens t < n at positions pos[t] of caches[t] (layer 1 of 2),
 * each (token, key/value head) also through dec_attend with the same
 * "lone token" rule as the decoder. */
static void check_attention_ggml(const char *what, const dec_cuda_ops_heads *g, const dec_cuda_ops_cache *const *caches,
                                 const size_t *pos, size_t n, uint32_t q8_type)
{
    enum { LAYERS = 2, LAYER = 1 };
    rg_err e = {0};
    size_t hd = g->head_dim, qd = g->n_head * hd, kvd = g->n_head_kv * hd, group = g->n_head / g->n_head_kv;
    float *q = rand_vec(n * qd, -2, 2), *got = malloc(n * qd * sizeof(float)), *want = malloc(n * qd * sizeof(float));
    size_t max_np = 0;
    for (size_t t = 0; t < n; t++)
        max_np = pos[t] + 1 > max_np ? pos[t] + 1 : max_np;
    float *scratch = malloc(dec_attn_scratch_floats(group, max_np, hd) * sizeof(float));
    unsigned char *q8 = malloc(n * quant_act_bytes(q8_type, qd));
    CHECK_OK(dec_cuda_ops_attention_ggml(q, n, g, caches, pos, LAYERS, LAYER, got, q8_type, q8, &e), e);
    check_q8_out(what, q8_type, got, n, qd, q8);
    free(q8);
    for (size_t t = 0; t < n; t++) {
        const dec_cuda_ops_cache *c = caches[t];
        rg_kv_cache kv = {LAYERS, kvd, c->cap, pos[t] + 1, c->half ? RG_KV_F16 : RG_KV_F32, c->k, c->v, 0};
        int one = !(t > 0 && caches[t - 1] == c) && !(t + 1 < n && caches[t + 1] == c);
        for (size_t kvh = 0; kvh < g->n_head_kv; kvh++) {
            const float *qs[64];
            float *outs[64];
            size_t np[64];
            for (size_t i = 0; i < group; i++) {
                size_t h = kvh * group + i;
                qs[i] = q + t * qd + h * hd;
                outs[i] = want + t * qd + h * hd;
                np[i] = pos[t] + 1;
            }
            dec_attend(&kv, LAYER, kvh, hd, qs, np, group, outs, scratch, one);
        }
    }
    size_t bad = 0;
    for (size_t i = 0; i < n * qd; i++)
        bad += memcmp(&got[i], &want[i], sizeof(float)) != 0;
    CHECK_MSG(bad == 0, "attention in the CPU arithmetic, %s: %zu of %zu values differ from dec_attend's", what, bad,
              n * qd);
    free(q), free(got), free(want), free(scratch);
}

/* Prefill tokens share a block in runs of consecutive positions of a cache
 * (8 a block for heads of 64, 4 for 128; tiles of 64 staged positions): each token's values must still be dec_attend's. */
static void test_attention_runs(const dec_cuda_ops_heads *smol, const dec_cuda_ops_heads *wide)
{
    /* a prompt from position 0, f32 cache: runs of 8 and a last of 5,
     * the first tiles cut by the causal mask */
    dec_cuda_ops_cache a = {.cap = 40};
    fill_cache(&a, 2 * a.cap * 3 * 64, 0);
    const dec_cuda_ops_cache *ca[37];
    size_t pa[37];
    for (size_t t = 0; t < 37; t++)
        ca[t] = &a, pa[t] = t;
    check_attention_ggml("prompt of 37 from 0 (runs of 8, f32)", smol, ca, pa, 37, GGML_TYPE_Q8_0);
    /* one call: 20 tokens (runs of 8, 8, 4), a lone token, a run of 5 at 100, and
     * a cache whose positions skip one (7 | 9, 10: a token alone in its
     * cache's 16-lane order, then a run of 2) */
    dec_cuda_ops_cache m[4] = {{.cap = 20}, {.cap = 51}, {.cap = 105}, {.cap = 11}};
    for (size_t i = 0; i < 4; i++)
        fill_cache(&m[i], 2 * m[i].cap * 3 * 64, i != 2);
    const dec_cuda_ops_cache *cm[29];
    size_t pm[29], n = 0;
    for (size_t t = 0; t < 20; t++)
        cm[n] = &m[0], pm[n++] = t;
    cm[n] = &m[1], pm[n++] = 50;
    for (size_t t = 0; t < 5; t++)
        cm[n] = &m[2], pm[n++] = 100 + t;
    cm[n] = &m[3], pm[n++] = 7;
    cm[n] = &m[3], pm[n++] = 9;
    cm[n] = &m[3], pm[n++] = 10;
    check_attention_ggml("mixed call: runs of 20 and 5 tokens, a lone token, a gap", smol, cm, pm, n, GGML_TYPE_Q4_1);
    for (size_t i = 0; i < 4; i++)
        free(m[i].k), free(m[i].v);
    /* heads of 128 (runs of 4), f32 and f16 caches; Q4_K's
     * blocks of 256 span two heads (quantized after the kernel) */
    for (int half = 0; half < 2; half++) {
        dec_cuda_ops_cache w = {.cap = 230};
        fill_cache(&w, 2 * w.cap * 2 * 128, half);
        const dec_cuda_ops_cache *cw[30];
        size_t pw[30];
        for (size_t t = 0; t < 30; t++)
            cw[t] = &w, pw[t] = 200 + t;
        check_attention_ggml(half ? "30 at 200..229, heads of 128, f16" : "30 at 200..229, heads of 128, f32", wide,
                             cw, pw, 30, half ? GGML_TYPE_Q4_0 : GGML_TYPE_Q4_K);
        free(w.k), free(w.v);
    }
    /* heads of 72 (dots with an 8-wide tail; runs of 7) and of 144 (runs of
     * 3 over tiles of 32, the shared memory's limit) */
    dec_cuda_ops_heads h72 = {4, 2, 72, 72, 0}, h144 = {2, 1, 144, 144, 0};
    for (int pass = 0; pass < 2; pass++) {
        const dec_cuda_ops_heads *g = pass ? &h144 : &h72;
        dec_cuda_ops_cache c = {.cap = 72};
        fill_cache(&c, 2 * c.cap * g->n_head_kv * g->head_dim, !pass);
        const dec_cuda_ops_cache *cc[12];
        size_t pc[12];
        for (size_t t = 0; t < 12; t++)
            cc[t] = &c, pc[t] = 60 + t;
        check_attention_ggml(pass ? "12 at 60..71, heads of 144, f32" : "12 at 60..71, heads of 72, f16", g, cc, pc, 12,
                             GGML_TYPE_Q8_0);
        free(c.k), free(c.v);
    }
}

static void test_attention_ggml(void)
{
    dec_cuda_ops_heads smol = {9, 3, 64, 64, 0}, wide = {8, 2, 128, 128, 1};
    /* a prefill: 40 tokens of one cache at 260..299 (the 16-lane order,
     * scores past one tile) */
    dec_cuda_ops_cache pre = {.cap = 300};
    fill_cache(&pre, 2 * pre.cap * 3 * 64, 1);
    const dec_cuda_ops_cache *cp[40];
    size_t pp[40];
    for (size_t t = 0; t < 40; t++) {
        cp[t] = &pre;
        pp[t] = 260 + t;
    }
    check_attention_ggml("prefill of 40 at 260..299 (GQA 9/3, f16)", &smol, cp, pp, 40, GGML_TYPE_Q4_1);
    /* a decode step: lone tokens over 1, 7, 33, 64, 65, 130, 600 positions
     * (the 64-blocks and their double tail), f16 and f32 caches */
    size_t len[7] = {1, 7, 33, 64, 65, 130, 600};
    dec_cuda_ops_cache dc[7];
    const dec_cuda_ops_cache *cd[7];
    size_t pd[7];
    for (int pass = 0; pass < 2; pass++) {
        const dec_cuda_ops_heads *g = pass ? &wide : &smol;
        for (size_t i = 0; i < 7; i++) {
            dc[i].cap = len[i] + 2;
            fill_cache(&dc[i], 2 * dc[i].cap * g->n_head_kv * g->head_dim, (i + (size_t)pass) % 2 == 0);
            cd[i] = &dc[i];
            pd[i] = len[i] - 1;
        }
        /* Q8_0's blocks of 32 within a head; Q4_K's of 256 span two heads of
         * 128 (quantized after the kernel) */
        check_attention_ggml(pass ? "decode step, 7 caches (GQA 8/2, head 128)" : "decode step, 7 caches (GQA 9/3)",
                             g, cd, pd, 7, pass ? GGML_TYPE_Q4_K : GGML_TYPE_Q8_0);
        for (size_t i = 0; i < 7; i++)
            free(dc[i].k), free(dc[i].v);
    }
    free(pre.k), free(pre.v);
    /* past the 2048 scores the kernel keeps between its passes (the rest
     * computed again): two tokens of one cache and a lone one */
    dec_cuda_ops_cache big = {.cap = 2300}, lone = {.cap = 2300};
    fill_cache(&big, 2 * big.cap * 3 * 64, 1);
    fill_cache(&lone, 2 * lone.cap * 3 * 64, 0);
    const dec_cuda_ops_cache *cb[3] = {&big, &big, &lone};
    size_t pb[3] = {2090, 2091, 2299};
    check_attention_ggml("past 2048 positions (two tokens of a cache, a lone token)", &smol, cb, pb, 3,
                         GGML_TYPE_Q5_1);
    free(big.k), free(big.v), free(lone.k), free(lone.v);
    test_attention_runs(&smol, &wide);
}

/* q8_type (0: none): the output also quantized for it. */
static void test_swiglu_ggml(size_t n, size_t F, uint32_t q8_type)
{
    rg_err e = {0};
    float *gu = rand_vec(n * 2 * F, -9, 9), *got = malloc(n * F * sizeof(float));
    float *g = malloc(n * F * sizeof(float)), *u = malloc(n * F * sizeof(float));
    for (size_t t = 0; t < n; t++) {
        memcpy(g + t * F, gu + t * 2 * F, F * sizeof(float));
        memcpy(u + t * F, gu + t * 2 * F + F, F * sizeof(float));
    }
    dec_math_swiglu(g, u, n, F);
    unsigned char *q8 = q8_type ? malloc(n * quant_act_bytes(q8_type, F)) : NULL;
    CHECK_OK(dec_cuda_ops_swiglu_ggml(gu, n, F, got, q8_type, q8, &e), e);
    if (q8) {
        char what[64];
        snprintf(what, sizeof what, "SwiGLU %zu x %zu", n, F);
        check_q8_out(what, q8_type, got, n, F, q8);
    }
    free(q8);
    size_t bad = 0, blocked = F - F % 16;
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < F; i++) {
            float a = got[t * F + i], b = g[t * F + i];
            bad += i < blocked ? memcmp(&a, &b, sizeof a) != 0 : !(fabsf(a - b) <= 1e-6f * fabsf(b) + 1e-30f);
        }
    CHECK_MSG(bad == 0, "SwiGLU in the CPU arithmetic, %zu x %zu: %zu values differ from dec_math_swiglu's", n, F, bad);
    free(gu), free(got), free(g), free(u);
}

int main(void)
{
    char desc[256] = "";
    if (backend_cuda_devices(desc, sizeof desc) <= 0) {
        printf("test_decoder_cuda_q8: no CUDA device (%s), skipped\n", desc);
        return 77;
    }
    printf("test_decoder_cuda_q8: on %s\n", desc);
    test_quantize(GGML_TYPE_Q4_0, 5, 576);
    test_quantize(GGML_TYPE_Q4_1, 5, 1088);
    test_quantize(GGML_TYPE_Q6_K, 5, 1536);
    uint32_t types[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                        GGML_TYPE_Q8_0, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        size_t rows = i < 5 ? 37 : 21; /* a warp's last rows missing */
        test_products(&types[i], &rows, 1, i < 5 ? (i % 2 ? 1088 : 576) : (i % 2 ? 1280 : 512));
    }
    uint32_t mixed[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q6_K, GGML_TYPE_F16};
    size_t mixed_rows[] = {10, 7, 5};
    test_products(mixed, mixed_rows, 3, 512);
    /* float matrices kept as in the file, widths with a tail past the
     * blocks of 16 */
    uint32_t floats[] = {GGML_TYPE_Q4_1, GGML_TYPE_F32, GGML_TYPE_BF16};
    size_t float_rows[] = {9, 6, 5};
    test_products(floats, float_rows, 3, 544);
    uint32_t f16 = GGML_TYPE_F16;
    size_t f16_rows = 7;
    test_products(&f16, &f16_rows, 1, 200);
    test_attention_ggml();
    test_swiglu_ggml(3, 1536, GGML_TYPE_Q4_1);
    test_swiglu_ggml(4, 1536, GGML_TYPE_Q6_K);
    test_swiglu_ggml(2, 1000, 0);
    /* the q8 decoder's producers leave their outputs quantized for the next
     * product: RMSNorm here (attention and SwiGLU above) */
    test_rmsnorm_q8(GGML_TYPE_Q4_1, 5, 576);
    test_rmsnorm_q8(GGML_TYPE_Q8_0, 3, 576);
    test_rmsnorm_q8(GGML_TYPE_Q4_K, 4, 512);
    test_rmsnorm_order(256);
    test_rmsnorm_order(512);
    return check_finish("test_decoder_cuda_q8");
}

#else

int main(void)
{
    printf("test_decoder_cuda_q8: built without CUDA, skipped\n");
    return 77;
}

#endif
