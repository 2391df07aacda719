/* quant_matvec.c - matrix-vector and small matrix products on quantized
 * weights: activation preparation, kernel choice (AVX2 or portable C at run
 * time), row loops. The kernels themselves are in quant_dot_*.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/quant.h"
#include "model/quant_internal.h"

/* Activation form of a weight type: 0 = float vector, 32 = a8 blocks,
 * 256 = Q8_K blocks; -1 = not supported. */
static int act_kind(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
        return 0;
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: case GGML_TYPE_Q8_0:
        return 32;
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K:
        return 256;
    default:
        return -1;
    }
}

int quant_matvec_supported(uint32_t type)
{
    return act_kind(type) >= 0;
}

quant_isa quant_isa_best(void)
{
    return quant_avx2_usable() ? QUANT_ISA_AVX2 : QUANT_ISA_SCALAR;
}

int quant_isa_available(quant_isa isa)
{
    switch (isa) {
    case QUANT_ISA_SCALAR: return 1;
    case QUANT_ISA_AVX2: return quant_avx2_usable();
    }
    return 0;
}

const char *quant_isa_name(quant_isa isa)
{
    switch (isa) {
    case QUANT_ISA_SCALAR: return "scalar";
    case QUANT_ISA_AVX2: return "avx2";
    }
    return "unknown";
}

size_t quant_act_bytes(uint32_t type, size_t cols)
{
    int kind = act_kind(type);
    if (kind < 0 || cols == 0)
        return 0;
    if (kind == 0)
        return cols > SIZE_MAX / sizeof(float) ? 0 : cols * sizeof(float);
    if (cols % (size_t)kind != 0)
        return 0;
    size_t blocks = cols / (size_t)kind;
    size_t bb = kind == 32 ? sizeof(quant_a8_block) : sizeof(quant_q8k_block);
    return blocks > SIZE_MAX / bb ? 0 : blocks * bb;
}

/* x to 8-bit blocks as ggml's x86 CPU path quantizes activations (its
 * quantize_row_q8_0 / q8_1), because llama.cpp's logits are the reference:
 * id = 127 / max|x| (not 1 / d), round to nearest even, and the scale d
 * rounded to fp16 (block_q8_0/q8_1 store it so, and the products use the
 * rounded value). s carries the weight offsets: for the _1 weight types
 * (paired with Q8_1 in ggml) it is fp16(d * sum q) with the unrounded d, as
 * block_q8_1.s; for the others (paired with Q8_0, which has no s; ggml
 * subtracts the offset in integers) it is the rounded d times sum q, which
 * is exact in float (an 11-bit d times a 12-bit sum). Keeping both in f32
 * would be more precise, but it moves the logits away from llama.cpp's. */
void quant_a8_quantize_c(const float *x, size_t nblocks, int q8_1, quant_a8_block *out)
{
    for (size_t b = 0; b < nblocks; b++) {
        const float *v = x + 32 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(v[j]);
            if (a > amax)
                amax = a;
        }
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            long q = lrintf(v[j] * id);
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            out[b].q[j] = (int8_t)q;
            sum += (int32_t)q;
        }
        float dh = fp16_to_f32(f32_to_fp16(d));
        out[b].d = dh;
        out[b].s = q8_1 ? fp16_to_f32(f32_to_fp16(d * (float)sum)) : dh * (float)sum;
    }
}

static void quantize_a8(const float *x, size_t cols, int q8_1, quant_a8_block *out)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (quant_avx2_usable()) {
        quant_a8_quantize_avx2(x, cols / 32, q8_1, out);
        return;
    }
#endif
    quant_a8_quantize_c(x, cols / 32, q8_1, out);
}

static rg_status check_args(uint32_t type, size_t cols, const void *p, const char *what, rg_err *e)
{
    const char *name = ggml_type_name(type);
    if (act_kind(type) < 0)
        return rg_error(e, RG_ERR_UNSUPPORTED, "quantized product: unsupported weight type %u (%s)", (unsigned)type,
                        name ? name : "unknown");
    if (quant_act_bytes(type, cols) == 0)
        return rg_error(e, RG_ERR_INVALID, "quantized product: %zu columns of %s are not a whole number of blocks",
                        cols, name);
    if (act_kind(type) > 0 && ((uintptr_t)p % _Alignof(float)) != 0)
        return rg_error(e, RG_ERR_INVALID, "quantized product: %s buffer is not 4-byte aligned", what);
    return RG_OK;
}

/* Float weights: llama.cpp converts the activations to the weights' own
 * type before the dot (its vec_dot_type: F16 for F16, BF16 for BF16), so
 * they are rounded the same way here (to nearest even) and kept as floats;
 * a product of two such values is exact in float (short of a bf16 product
 * overflowing or underflowing), so only the order of the sums is left to
 * differ. */
static void round_like_weights(uint32_t type, const float *x, size_t cols, float *out)
{
    size_t i = quant_avx2_usable() ? quant_round_act_avx2(type, x, cols, out) : 0;
    if (type == GGML_TYPE_F16)
        for (; i < cols; i++)
            out[i] = fp16_to_f32(f32_to_fp16(x[i]));
    else if (type == GGML_TYPE_BF16)
        for (; i < cols; i++)
            out[i] = bf16_to_f32(f32_to_bf16(x[i]));
    else
        memcpy(out, x, cols * sizeof(float));
}

rg_status quant_act_prepare(uint32_t type, const float *x, size_t cols, size_t n_vec, void *act, rg_err *e)
{
    rg_status s = check_args(type, cols, act, "activation", e);
    if (s)
        return s;
    size_t bytes = quant_act_bytes(type, cols);
    unsigned char *out = act;
    for (size_t v = 0; v < n_vec; v++) {
        const float *xv = x + v * cols;
        unsigned char *dst = out + v * bytes;
        switch (act_kind(type)) {
        case 0: round_like_weights(type, xv, cols, (float *)(void *)dst); break;
        case 32:
            quantize_a8(xv, cols, type == GGML_TYPE_Q4_1 || type == GGML_TYPE_Q5_1,
                        (quant_a8_block *)(void *)dst);
            break;
        default:
            if ((s = quantize_row_q8_k(xv, dst, cols, e)))
                return s;
            break;
        }
    }
    return RG_OK;
}

rg_status quant_act_to_f32(uint32_t type, const void *act, size_t cols, float *x, rg_err *e)
{
    rg_status s = check_args(type, cols, act, "activation", e);
    if (s)
        return s;
    switch (act_kind(type)) {
    case 0:
        memcpy(x, act, cols * sizeof(float));
        return RG_OK;
    case 32: {
        const quant_a8_block *a = act;
        for (size_t b = 0; b < cols / 32; b++)
            for (int j = 0; j < 32; j++)
                x[32 * b + (size_t)j] = a[b].d * (float)a[b].q[j];
        return RG_OK;
    }
    default:
        return dequantize_row(GGML_TYPE_Q8_K, act, x, cols, e);
    }
}

rg_status quant_matmul_prepared_isa(quant_isa isa, uint32_t type, const void *w, size_t rows, size_t cols,
                                    const void *act, size_t n_vec, float *y, size_t ldy, size_t row_begin,
                                    size_t row_end, rg_err *e)
{
    rg_status s = check_args(type, cols, act, "activation", e);
    if (s)
        return s;
    if (row_begin > row_end || row_end > rows)
        return rg_error(e, RG_ERR_INVALID, "quantized product: rows [%zu, %zu) outside a %zu-row matrix", row_begin,
                        row_end, rows);
    if (n_vec > 1 && ldy < rows)
        return rg_error(e, RG_ERR_INVALID, "quantized product: ldy %zu is less than the %zu rows", ldy, rows);
    if (!quant_isa_available(isa))
        return rg_error(e, RG_ERR_UNSUPPORTED, "quantized product: this CPU cannot run the %s kernels",
                        quant_isa_name(isa));
    quant_dot_fn dot = isa == QUANT_ISA_AVX2 ? quant_dot_avx2(type) : quant_dot_scalar(type);
    if (!dot) /* no dedicated kernel on this ISA: the portable one */
        dot = quant_dot_scalar(type);
    uint32_t be = 1, bb = 1;
    ggml_type_layout(type, &be, &bb);
    size_t nblocks = cols / be;
    size_t row_bytes = nblocks * bb; /* cannot overflow: the caller's matrix exists */
    size_t act_bytes = quant_act_bytes(type, cols);
    const unsigned char *wb = w;
    const unsigned char *ab = act;
    /* the batched kernel also for one vector, or the four-row kernel with
     * the same per-row arithmetic: a sequence's logits must not depend on
     * how many others share its step */
    quant_multi_fn multi = isa == QUANT_ISA_AVX2 ? quant_multi_avx2(type) : NULL;
    quant_rows_fn rows4 = isa == QUANT_ISA_AVX2 && n_vec == 1 ? quant_rows_avx2(type) : NULL;
    if (rows4) {
        /* one vector: QUANT_ROWS rows per call, the rest row by row below */
        for (; row_begin + QUANT_ROWS <= row_end; row_begin += QUANT_ROWS)
            rows4(wb + row_begin * row_bytes, row_bytes, ab, nblocks, y + row_begin);
    }
    if (multi) {
        /* Up to QUANT_MULTI_MAX vectors per pass over a row: each weight
         * block is unpacked once for all of them. Vector groups are the
         * outer loop so a group's activations stay in cache over the rows. */
        for (size_t v0 = 0; v0 < n_vec; v0 += QUANT_MULTI_MAX) {
            size_t nv = n_vec - v0 < QUANT_MULTI_MAX ? n_vec - v0 : QUANT_MULTI_MAX;
            const void *av[QUANT_MULTI_MAX];
            float out[QUANT_MULTI_MAX];
            for (size_t v = 0; v < nv; v++)
                av[v] = ab + (v0 + v) * act_bytes;
            for (size_t r = row_begin; r < row_end; r++) {
                multi(wb + r * row_bytes, av, nv, nblocks, out);
                for (size_t v = 0; v < nv; v++)
                    y[(v0 + v) * ldy + r] = out[v];
            }
        }
        return RG_OK;
    }
    /* Row-outer: a row is read from memory once and then stays in L1 for the
     * n_vec activation vectors, so the batch costs one pass over W. */
    for (size_t r = row_begin; r < row_end; r++) {
        const unsigned char *wr = wb + r * row_bytes;
        for (size_t v = 0; v < n_vec; v++)
            y[v * ldy + r] = dot(wr, ab + v * act_bytes, nblocks);
    }
    return RG_OK;
}

rg_status quant_matmul_prepared(uint32_t type, const void *w, size_t rows, size_t cols, const void *act,
                                size_t n_vec, float *y, size_t ldy, size_t row_begin, size_t row_end, rg_err *e)
{
    return quant_matmul_prepared_isa(quant_isa_best(), type, w, rows, cols, act, n_vec, y, ldy, row_begin,
                                     row_end, e);
}

rg_status quant_matmul(uint32_t type, const void *w, size_t rows, size_t cols, const float *x, size_t n_vec,
                       float *y, size_t row_begin, size_t row_end, rg_err *e)
{
    rg_status s = check_args(type, cols, x, "input", e);
    if (s)
        return s;
    size_t bytes = quant_act_bytes(type, cols);
    if (n_vec == 0)
        return RG_OK;
    if (n_vec > SIZE_MAX / bytes)
        return rg_error(e, RG_ERR_TOO_LARGE, "quantized product: %zu vectors of %zu columns are too many", n_vec,
                        cols);
    void *act = malloc(n_vec * bytes);
    if (!act)
        return rg_error(e, RG_ERR_NOMEM, "quantized product: out of memory for %zu activation vectors", n_vec);
    s = quant_act_prepare(type, x, cols, n_vec, act, e);
    if (!s)
        s = quant_matmul_prepared(type, w, rows, cols, act, n_vec, y, rows, row_begin, row_end, e);
    free(act);
    return s;
}

rg_status quant_matvec(uint32_t type, const void *w, size_t rows, size_t cols, const float *x, float *y,
                       size_t row_begin, size_t row_end, rg_err *e)
{
    return quant_matmul(type, w, rows, cols, x, 1, y, row_begin, row_end, e);
}
