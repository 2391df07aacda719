// decoder_cuda_blocks.cuh - reading weight rows kept on the GPU in their
// GGUF blocks: aligned loads of block fields, and each type's "pieces" (8
// consecutive values of a row) as model/quant's dequantization gives them.
// Shared by the float product kernel and the unpacking kernel
// (decoder_cuda_matvec.cu) and the 8-bit activation kernel
// (decoder_cuda_q8.cu), with the switch over the block types. Device functions only (C++, included by
// model/decoder_cuda*.cu).
#ifndef RAGD_MODEL_DECODER_CUDA_BLOCKS_CUH
#define RAGD_MODEL_DECODER_CUDA_BLOCKS_CUH

#include "model/decoder_cuda_kernels.cuh"

extern "C" {
#include "model/quant.h"
}

// ---- reading blocks ------------------------------------------------------------------
// Every block field this file reads lies at an even offset of a block whose
// size is even, and rows start at even offsets of a 256-byte-aligned
// allocation, so 16-bit loads are always aligned; 32-bit loads are used
// where the type's block size (and so every field offset read that way)
// is a multiple of four.

__device__ static inline uint32_t ld16(const uint8_t *p)
{
    CUDASIM_ALIGNED(p, 2);
    return *reinterpret_cast<const uint16_t *>(p);
}

template <bool A4> __device__ static inline uint32_t ld32(const uint8_t *p)
{
    if (A4) {
        CUDASIM_ALIGNED(p, 4);
        return *reinterpret_cast<const uint32_t *>(p);
    }
    return ld16(p) | ld16(p + 2) << 16;
}

__device__ static inline float f16_bits(uint32_t bits)
{
    __half_raw r;
    r.x = (unsigned short)bits;
    return __half2float(__half(r));
}

// 8 bytes from p into w[2] (little-endian words).
template <bool A4> __device__ static inline void ld_bytes8(const uint8_t *p, uint32_t *w)
{
    w[0] = ld32<A4>(p);
    w[1] = ld32<A4>(p + 4);
}

__device__ static inline int byte_of(const uint32_t *w, int j)
{
    return (int)((w[j >> 2] >> (8 * (j & 3))) & 0xffu);
}

// ---- one piece: the 8 consecutive values 8p .. 8p+7 of a row ----------------------------
// Pieces of 8 rather than whole blocks per thread so that consecutive lanes
// read consecutive bytes of a row (a block's quants split over four lanes):
// a warp's load instruction then touches a few cache lines, where a lane per
// block would spread it over the 18- to 210-byte stride of the blocks.

// Q4_0, Q4_1, Q5_0, Q5_1 (model/quant.c dequant_legacy_block): value e < 16
// of a block is the low nibble of qs[e], value e + 16 its high nibble; bit
// e of qh is value e's fifth bit.
template <uint32_t T> __device__ static inline void dq_legacy(const uint8_t *b, int q, float *v)
{
    constexpr bool A4 = T == GGML_TYPE_Q4_1 || T == GGML_TYPE_Q5_1;
    float d = f16_bits(ld16(b)), m = 0.0f;
    uint32_t qh = 0;
    const uint8_t *qs;
    if (T == GGML_TYPE_Q4_0) {
        qs = b + 2;
    } else if (T == GGML_TYPE_Q4_1) {
        m = f16_bits(ld16(b + 2));
        qs = b + 4;
    } else if (T == GGML_TYPE_Q5_0) {
        qh = ld32<false>(b + 2);
        qs = b + 6;
    } else {
        m = f16_bits(ld16(b + 2));
        qh = ld32<true>(b + 4);
        qs = b + 8;
    }
    uint32_t w[2];
    ld_bytes8<A4>(qs + 8 * (q & 1), w);
    int shift = 4 * (q >> 1);
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int x = (byte_of(w, j) >> shift) & 0x0f;
        if (T == GGML_TYPE_Q5_0 || T == GGML_TYPE_Q5_1)
            x |= (int)((qh >> (8 * q + j)) & 1u) << 4;
        if (T == GGML_TYPE_Q4_0)
            v[j] = __fmul_rn(d, (float)(x - 8));
        else if (T == GGML_TYPE_Q5_0)
            v[j] = __fmul_rn(d, (float)(x - 16));
        else
            v[j] = __fadd_rn(__fmul_rn(d, (float)x), m);
    }
}

__device__ static inline void dq_q8_0(const uint8_t *b, int q, float *v)
{
    float d = f16_bits(ld16(b));
    uint32_t w[2];
    ld_bytes8<false>(b + 2 + 8 * q, w);
#pragma unroll
    for (int j = 0; j < 8; j++)
        v[j] = __fmul_rn(d, (float)(int8_t)byte_of(w, j));
}

// Q4_K / Q5_K: piece q of sub-block i of a 256-value block (model/quant.c
// dequant_q45k_block and quant_k_scale_min).
template <uint32_t T> __device__ static inline void dq_q45k(const uint8_t *blk, int i, int q, float *v)
{
    float d = f16_bits(ld16(blk)), dmin = f16_bits(ld16(blk + 2));
    uint32_t sw[3];
#pragma unroll
    for (int k = 0; k < 3; k++)
        sw[k] = ld32<true>(blk + 4 + 4 * k);
    int sc, mn;
    if (i < 4) {
        sc = byte_of(sw, i) & 63;
        mn = byte_of(sw, i + 4) & 63;
    } else {
        sc = (byte_of(sw, i + 4) & 0x0f) | ((byte_of(sw, i - 4) >> 6) << 4);
        mn = (byte_of(sw, i + 4) >> 4) | ((byte_of(sw, i) >> 6) << 4);
    }
    float dl = __fmul_rn(d, (float)sc), ml = __fmul_rn(dmin, (float)mn);
    uint32_t w[2], h[2] = {0, 0};
    ld_bytes8<true>(blk + (T == GGML_TYPE_Q5_K ? 48 : 16) + 32 * (i >> 1) + 8 * q, w);
    if (T == GGML_TYPE_Q5_K)
        ld_bytes8<true>(blk + 16 + 8 * q, h);
    int shift = 4 * (i & 1);
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int x = (byte_of(w, j) >> shift) & 0x0f;
        if (T == GGML_TYPE_Q5_K)
            x |= ((byte_of(h, j) >> i) & 1) << 4;
        v[j] = __fsub_rn(__fmul_rn(dl, (float)x), ml);
    }
}

// Q6_K: piece pb (0..31) of a 256-value block, values 8 pb .. 8 pb + 7 =
// 128 half + 32 k + l (model/quant.c dequant_q6k_block).
__device__ static inline void dq_q6k(const uint8_t *blk, int pb, float *v)
{
    int half = pb >> 4, k = (pb >> 2) & 3, l0 = 8 * (pb & 3);
    uint32_t ql[2], qh[2];
    ld_bytes8<false>(blk + 64 * half + 32 * (k & 1) + l0, ql);
    ld_bytes8<false>(blk + 128 + 32 * half + l0, qh);
    uint32_t sc2 = ld16(blk + 192 + 8 * half + 2 * k); // the scales of l 0-15 and 16-31
    float d = f16_bits(ld16(blk + 208));
    float dl = __fmul_rn(d, (float)(int8_t)(l0 < 16 ? sc2 & 0xffu : sc2 >> 8));
    int shift = k >= 2 ? 4 : 0;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int lo = (byte_of(ql, j) >> shift) & 0x0f, hi = (byte_of(qh, j) >> (2 * k)) & 3;
        v[j] = __fmul_rn(dl, (float)((lo | hi << 4) - 32));
    }
}

template <uint32_t T> struct qblock;
template <> struct qblock<GGML_TYPE_F16> { enum { bytes = 16, pieces = 1 }; }; // rows of fp16 values
template <> struct qblock<GGML_TYPE_Q4_0> { enum { bytes = GGML_Q4_0_BLOCK_BYTES, pieces = 4 }; };
template <> struct qblock<GGML_TYPE_Q4_1> { enum { bytes = GGML_Q4_1_BLOCK_BYTES, pieces = 4 }; };
template <> struct qblock<GGML_TYPE_Q5_0> { enum { bytes = GGML_Q5_0_BLOCK_BYTES, pieces = 4 }; };
template <> struct qblock<GGML_TYPE_Q5_1> { enum { bytes = GGML_Q5_1_BLOCK_BYTES, pieces = 4 }; };
template <> struct qblock<GGML_TYPE_Q8_0> { enum { bytes = GGML_Q8_0_BLOCK_BYTES, pieces = 4 }; };
template <> struct qblock<GGML_TYPE_Q4_K> { enum { bytes = GGML_Q4_K_BLOCK_BYTES, pieces = 32 }; };
template <> struct qblock<GGML_TYPE_Q5_K> { enum { bytes = GGML_Q5_K_BLOCK_BYTES, pieces = 32 }; };
template <> struct qblock<GGML_TYPE_Q6_K> { enum { bytes = GGML_Q6_K_BLOCK_BYTES, pieces = 32 }; };

// Eight fp16 values in one 16-byte load (rows 16-byte aligned).
__device__ static inline void dq_f16(const uint8_t *b, float *v)
{
    union { // a union, not a cast (aliasing)
        uint4 u4;
        __half2 h2[4];
    } wv;
    CUDASIM_ALIGNED(b, 16);
    wv.u4 = *reinterpret_cast<const uint4 *>(b);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        float2 f = __half22float2(wv.h2[j]);
        v[2 * j] = f.x;
        v[2 * j + 1] = f.y;
    }
}

// The 8 values of piece p of a row.
template <uint32_t T> __device__ static inline void dq_piece(const uint8_t *row, int p, float *v)
{
    const uint8_t *blk = row + (size_t)(p / qblock<T>::pieces) * qblock<T>::bytes;
    int in_blk = p % qblock<T>::pieces;
    if (T == GGML_TYPE_F16)
        dq_f16(blk, v);
    else if (T == GGML_TYPE_Q8_0)
        dq_q8_0(blk, in_blk, v);
    else if (T == GGML_TYPE_Q4_K || T == GGML_TYPE_Q5_K)
        dq_q45k<T>(blk, in_blk >> 2, in_blk & 3, v);
    else if (T == GGML_TYPE_Q6_K)
        dq_q6k(blk, in_blk, v);
    else
        dq_legacy<T>(blk, in_blk, v);
}

// One switch over the block types for the launchers: CALL(T) runs with the type
// as a template argument.
#define DEC_CU_QUANT_DISPATCH(type, CALL)                                                                           \
    switch (type) {                                                                                                  \
    case GGML_TYPE_Q4_0: CALL(GGML_TYPE_Q4_0); break;                                                                \
    case GGML_TYPE_Q4_1: CALL(GGML_TYPE_Q4_1); break;                                                                \
    case GGML_TYPE_Q5_0: CALL(GGML_TYPE_Q5_0); break;                                                                \
    case GGML_TYPE_Q5_1: CALL(GGML_TYPE_Q5_1); break;                                                                \
    case GGML_TYPE_Q8_0: CALL(GGML_TYPE_Q8_0); break;                                                                \
    case GGML_TYPE_Q4_K: CALL(GGML_TYPE_Q4_K); break;                                                                \
    case GGML_TYPE_Q5_K: CALL(GGML_TYPE_Q5_K); break;                                                                \
    case GGML_TYPE_Q6_K: CALL(GGML_TYPE_Q6_K); break;                                                                \
    default: break;                                                                                                  \
    }

#endif
