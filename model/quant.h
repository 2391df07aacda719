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

/* Bytes per block of the formats this runtime reads and writes. */
#define GGML_Q8_0_BLOCK_BYTES 34 /* fp16 d + int8 qs[32] */

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

/* 1 when dequantize_row handles the type (F32, F16, BF16, Q8_0). */
int dequantize_supported(uint32_t type);

/* Converts n elements of the given type at src (packed as in a GGUF file,
 * any alignment) into n floats at dst. n must be a whole number of blocks.
 * Types whose layout is known but that are not dequantized here give
 * RG_ERR_UNSUPPORTED "unsupported tensor type N (NAME)". */
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

#endif
