/* quant_internal.h - what the quantized matrix-vector kernels share: the
 * prepared activation blocks and the per-ISA kernel tables. Only model/quant*.c
 * include this; callers use model/quant.h. */
#ifndef RAGD_MODEL_QUANT_INTERNAL_H
#define RAGD_MODEL_QUANT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "model/quant.h"

/* Activations for the 32-element weight types (Q4_0 ... Q8_0): x ~= d * q.
 * s = d * sum(q) carries the offset terms (Q4_0's -8, Q5_0's -16, the _1
 * types' m) out of the integer loop. d holds an fp16 value and, for the _1
 * types, so does s, as in ggml's block_q8_0/block_q8_1 (quant_matvec.c says
 * why); they are stored widened to float so the kernels need no conversion. */
typedef struct quant_a8_block {
    float d;
    float s;
    int8_t q[32];
} quant_a8_block;

/* Activations for the k-quants: ggml's block_q8_K (f32 d, 256 int8, the 16
 * sums of 16 quants that carry the mins and Q6_K's -32 offset). */
typedef struct quant_q8k_block {
    float d;
    int8_t q[GGML_QK_K];
    int16_t bsums[GGML_QK_K / 16];
} quant_q8k_block;

_Static_assert(sizeof(quant_a8_block) == 40, "a8 block is 40 bytes");
_Static_assert(sizeof(quant_q8k_block) == GGML_Q8_K_BLOCK_BYTES, "q8k block has ggml's layout");

/* One row of weights (nblocks blocks of the weight type, any alignment)
 * against one prepared activation row. */
typedef float (*quant_dot_fn)(const unsigned char *w, const void *act, size_t nblocks);

/* One row of weights against nv (1..QUANT_MULTI_MAX) prepared activation
 * rows a[0..nv), results in out[0..nv): the batched form, which unpacks each
 * weight block once for all the vectors. */
#define QUANT_MULTI_MAX 4
typedef void (*quant_multi_fn)(const unsigned char *w, const void *const *a, size_t nv, size_t nblocks, float *out);

/* QUANT_ROWS consecutive rows of weights (row_bytes apart) against one
 * prepared activation row, results in out[0..QUANT_ROWS): the one-vector
 * form of a decode step, each row bitwise as the batched kernel gives it. */
#define QUANT_ROWS 4
typedef void (*quant_rows_fn)(const unsigned char *w, size_t row_bytes, const void *a, size_t nblocks, float *out);

/* The kernel of a weight type on one ISA; NULL when that ISA has none. */
quant_dot_fn quant_dot_scalar(uint32_t type);
quant_dot_fn quant_dot_avx2(uint32_t type);
quant_multi_fn quant_multi_avx2(uint32_t type); /* NULL: use the per-vector kernel */
quant_rows_fn quant_rows_avx2(uint32_t type);   /* NULL: the batched kernel with nv = 1 */
/* Activations of the 32-element types to 8-bit blocks (quant_matvec.c says
 * how and why): the portable form, and the AVX2 one, bitwise the same, only
 * where quant_avx2_usable() says so (x86-64 builds). q8_1: the _1 weight
 * types' fp16 sum term. */
void quant_a8_quantize_c(const float *x, size_t nblocks, int q8_1, quant_a8_block *out);
void quant_a8_quantize_avx2(const float *x, size_t nblocks, int q8_1, quant_a8_block *out);
/* nblocks blocks of a Q4_0, Q4_1 or Q8_0 row to floats with AVX2, bitwise
 * as dequantize_row's portable code; 0 (nothing written) for other types
 * or builds. Only where quant_avx2_usable() says so. */
int quant_dequant_avx2(uint32_t type, const unsigned char *src, float *dst, size_t nblocks);
/* The first (multiple of 8) of n activations rounded to fp16 / bf16 as
 * quant_act_prepare does for F16 / BF16 weights; returns how many (0 for
 * other types or builds). Only where quant_avx2_usable() says so. */
size_t quant_round_act_avx2(uint32_t type, const float *x, size_t n, float *out);
/* 1 when the build has the AVX2 kernels and the CPU runs them. */
int quant_avx2_usable(void);

/* Q4_K/Q5_K sub-block j (0..7): its 6-bit scale and min from the 12 packed
 * bytes. */
void quant_k_scale_min(const unsigned char *scales, int j, int *sc, int *m);

#endif
