/* quant.h - ggml tensor element types as stored in GGUF files: their block
 * layout (how many elements a block holds and how many bytes it takes) and
 * dequantization of rows to float.
 *
 * Block layouts follow the GGUF specification (ggml docs/gguf.md) and
 * ggml-common.h; e.g. Q8_0 is 32 elements per 34-byte block: an IEEE fp16
 * scale d followed by 32 int8 quants, value = d * q. All multi-byte fields are
 * little-endian. */
#ifndef RAGD_MODEL_QUANT_H
#define RAGD_MODEL_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The numbering is the on-disk ggml_type of the GGUF specification; gaps
 * (4, 5, 31-33, 36-38) are types whose support ggml removed. */
typedef enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_IQ2_XXS = 16,
    GGML_TYPE_IQ2_XS = 17,
    GGML_TYPE_IQ3_XXS = 18,
    GGML_TYPE_IQ1_S = 19,
    GGML_TYPE_IQ4_NL = 20,
    GGML_TYPE_IQ3_S = 21,
    GGML_TYPE_IQ2_S = 22,
    GGML_TYPE_IQ4_XS = 23,
    GGML_TYPE_I8 = 24,
    GGML_TYPE_I16 = 25,
    GGML_TYPE_I32 = 26,
    GGML_TYPE_I64 = 27,
    GGML_TYPE_F64 = 28,
    GGML_TYPE_IQ1_M = 29,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_TQ1_0 = 34,
    GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_MXFP4 = 39,
    GGML_TYPE_COUNT = 40
} ggml_type;

/* Elements per block of 32 for the legacy quants, 256 (QK_K) for the
 * k-quants. */
#define GGML_QK8_0 32
#define GGML_QK_K 256

/* Bytes per block of the formats this runtime reads and writes. Layouts
 * (ggml-common.h; all scales are IEEE fp16 unless said otherwise):
 *   Q4_0  d, qs[16]                 x = d * (q - 8), q 4-bit
 *   Q4_1  d, m, qs[16]              x = d * q + m
 *   Q5_0  d, qh[4], qs[16]          x = d * (q - 16), q 5-bit (high bit in qh)
 *   Q5_1  d, m, qh[4], qs[16]       x = d * q + m
 *   Q8_0  d, qs[32] (int8)          x = d * q
 * In the 32-element types element j < 16 is the low nibble of qs[j] and
 * element j + 16 its high nibble; bit j of the little-endian u32 qh is the
 * fifth bit of element j.
 *   Q4_K  d, dmin, scales[12], qs[128]: 8 sub-blocks of 32 with 6-bit scale
 *         sc and min m packed in scales; x = d * sc * q - dmin * m
 *   Q5_K  d, dmin, scales[12], qh[32], qs[128]: as Q4_K with a fifth bit,
 *         bit i of qh[l] for element l of sub-block i
 *   Q6_K  ql[128], qh[64], scales[16] (int8), d: 16 sub-blocks of 16,
 *         x = d * scale * (q - 32), q 6-bit
 *   Q8_K  d (f32), qs[256] (int8), bsums[16] (int16 sums of 16 quants):
 *         the activation type of the k-quant dot products, x = d * q */
#define GGML_Q4_0_BLOCK_BYTES 18
#define GGML_Q4_1_BLOCK_BYTES 20
#define GGML_Q5_0_BLOCK_BYTES 22
#define GGML_Q5_1_BLOCK_BYTES 24
#define GGML_Q8_0_BLOCK_BYTES 34 /* fp16 d + int8 qs[32] */
#define GGML_Q4_K_BLOCK_BYTES 144
#define GGML_Q5_K_BLOCK_BYTES 176
#define GGML_Q6_K_BLOCK_BYTES 210
#define GGML_Q8_K_BLOCK_BYTES 292

/* Name of a type ("F32", "Q8_0"), or NULL for a number that is not a type
 * whose layout is known. */
const char *ggml_type_name(uint32_t type);

/* Block layout of a type: elements per block and bytes per block. Returns 0
 * for an unknown type number (out pointers untouched), 1 otherwise. */
int ggml_type_layout(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);

/* Bytes that n elements of type take. Fails (RG_ERR_UNSUPPORTED) for an
 * unknown type and (RG_ERR_INVALID) when n is not a whole number of blocks
 * or the size overflows size_t. */
rg_status ggml_row_bytes(uint32_t type, uint64_t n, size_t *bytes, rg_err *e);

/* 1 when dequantize_row handles the type: F32, F16, BF16, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K. */
int dequantize_supported(uint32_t type);

/* Converts n elements of the given type at src (packed as in a GGUF file,
 * any alignment) into n floats at dst. n must be a whole number of blocks.
 * The arithmetic is ggml's reference order in float (e.g. Q4_K computes
 * (d*sc)*q - (dmin*m)), so results are bitwise those of ggml and of the
 * `gguf` Python package. Types whose layout is known but that are not
 * dequantized here give RG_ERR_UNSUPPORTED "unsupported tensor type N (NAME)". */
rg_status dequantize_row(uint32_t type, const void *src, float *dst, size_t n, rg_err *e);

/* IEEE half and bfloat16 conversions (exact for every finite value,
 * infinities and NaN). */
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f); /* round to nearest even */
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f); /* round to nearest even, NaN kept quiet */

/* Quantizes n floats (a whole number of 32-element blocks) into Q8_0 blocks
 * the way ggml's reference quantizer does: d = max|x| / 127, q = round(x / d).
 * dst receives n / 32 * 34 bytes. */
rg_status quantize_row_q8_0(const float *src, void *dst, size_t n, rg_err *e);

/* Quantizes n floats (a whole number of 256-element blocks) into Q8_K blocks
 * as ggml's reference does: per block the value of largest magnitude maps to
 * -127 (d = max / -127, so d may be negative), q = nearest(x / d) clamped to
 * 127, bsums the sums of each 16 quants. dst receives n / 256 * 292 bytes. */
rg_status quantize_row_q8_k(const float *src, void *dst, size_t n, rg_err *e);

/* ---- matrix-vector products on quantized weights ------------------------
 *
 * W is a rows x cols matrix stored row after row in its GGUF type (a row is
 * cols elements, a whole number of blocks; ggml's dims[0] is cols). The
 * products compute y[r] = sum_c W[r][c] * x[c] for rows in
 * [row_begin, row_end), so callers can split the rows over threads; y is
 * indexed by absolute row.
 *
 * As in llama.cpp, the activations are first quantized to 8 bits (blocks of
 * 32 with an fp16 scale, ggml's Q8_0/Q8_1, for the legacy types and Q8_0;
 * Q8_K blocks of 256 with a float scale for the k-quants) and the dot
 * products run in integers; F32/F16/BF16 weights use the float activations as
 * they are. The error against the exact product of the dequantized weights is
 * therefore bounded by sum over blocks of (max|x| in the block / 254) * sum |W|
 * over the block, plus for the fp16 scale max|x| * 2^-11 * sum |W|, plus for
 * Q4_1/Q5_1 the fp16 rounding of Q8_1's sum term (|m| * |s| * 2^-10 per
 * block), plus float rounding.
 *
 * Types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
 * The kernels are chosen at run time: AVX2+FMA+F16C where the CPU has them,
 * else portable C (the only path on other architectures). */

typedef enum quant_isa {
    QUANT_ISA_SCALAR = 0, /* portable C */
    QUANT_ISA_AVX2 = 1    /* x86-64 AVX2 + FMA + F16C */
} quant_isa;

/* The best kernel set this CPU runs. */
quant_isa quant_isa_best(void);
/* 1 when this CPU (and this build) can run isa. */
int quant_isa_available(quant_isa isa);
const char *quant_isa_name(quant_isa isa);

/* 1 when quant_matvec handles weights of this type. */
int quant_matvec_supported(uint32_t type);

/* Bytes of the prepared (quantized) form of ONE activation vector of cols
 * elements for weights of type; 0 when the type is not supported or cols is
 * not a whole number of its blocks. */
size_t quant_act_bytes(uint32_t type, size_t cols);

/* Prepares n_vec activation vectors (x: n_vec rows of cols floats) for
 * products with weights of type; act receives n_vec * quant_act_bytes(type,
 * cols) bytes and must be 4-byte aligned (malloc memory is; a misaligned
 * buffer is refused with RG_ERR_INVALID). Prepare once, then run the row ranges of many
 * threads on the same act. As llama.cpp does: 8-bit blocks for the block
 * types, and for F16 / BF16 weights floats rounded to fp16 / bf16 (F32:
 * unchanged). */
rg_status quant_act_prepare(uint32_t type, const float *x, size_t cols, size_t n_vec, void *act, rg_err *e);

/* The activations as the kernels see them (x rounded to 8 bits), one vector
 * of cols floats: the exact reference the kernels must reproduce up to float
 * rounding. */
rg_status quant_act_to_f32(uint32_t type, const void *act, size_t cols, float *x, rg_err *e);

/* Y = W X^T on prepared activations: for each of the n_vec vectors v and
 * each row r in [row_begin, row_end): y[v * ldy + r] = W[r] . x_v. Weights are
 * read once per row for all n_vec vectors (the continuous-batching decoder's
 * step). ldy >= rows. */
rg_status quant_matmul_prepared(uint32_t type, const void *w, size_t rows, size_t cols, const void *act,
                                size_t n_vec, float *y, size_t ldy, size_t row_begin, size_t row_end, rg_err *e);
/* The same on a chosen kernel set (tests and benchmarks compare them);
 * RG_ERR_UNSUPPORTED when the CPU cannot run isa. */
rg_status quant_matmul_prepared_isa(quant_isa isa, uint32_t type, const void *w, size_t rows, size_t cols,
                                    const void *act, size_t n_vec, float *y, size_t ldy, size_t row_begin,
                                    size_t row_end, rg_err *e);

/* Convenience forms that prepare x themselves (one allocation per call):
 * quant_matvec for one vector (y has rows entries), quant_matmul for n_vec
 * vectors (x is n_vec x cols, y is n_vec x rows). */
rg_status quant_matvec(uint32_t type, const void *w, size_t rows, size_t cols, const float *x, float *y,
                       size_t row_begin, size_t row_end, rg_err *e);
rg_status quant_matmul(uint32_t type, const void *w, size_t rows, size_t cols, const float *x, size_t n_vec,
                       float *y, size_t row_begin, size_t row_end, rg_err *e);

#endif
