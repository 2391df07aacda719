// decoder_cuda_q8act.cuh - quantizing fp32 activations to 8 bits as
// llama.cpp's CPU path does (model/quant_matvec.c quant_a8_quantize_c,
// model/quant.c quantize_row_q8_k), one warp per block: the blocks the q8
// decoder's integer products read (decoder_cuda_q8.cu). Device functions,
// shared by the quantizing kernel and the kernels that leave their output
// quantized for the next product (RMSNorm, attention, SwiGLU), so a layer
// does not launch a separate kernel per product input.
#ifndef RAGD_MODEL_DECODER_CUDA_Q8ACT_CUH
#define RAGD_MODEL_DECODER_CUDA_Q8ACT_CUH

#include "model/decoder_cuda_kernels.cuh"

extern "C" {
#include "model/quant.h"
}

// model/quant_internal.h's quant_a8_block and quant_q8k_block, byte for byte.
#define A8_BYTES 40                     // f32 d, f32 s, int8 q[32]
#define Q8K_BYTES GGML_Q8_K_BLOCK_BYTES // f32 d, int8 q[256], int16 bsums[16]

__device__ static inline float q8_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ static inline int q8_warp_isum(int v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ static inline float q8_f16_round(float v)
{
    return __half2float(__float2half_rn(v));
}

// A block of 32 (lane i holds value i; the whole warp calls) as
// quant_a8_quantize_c: d = max|x| / 127, q = nearest-even(x * (127 /
// max|x|)) clamped to +-127, d kept as its fp16 rounding, s = fp16(d *
// sum q) for DEC_Q8_A8_1, fp16(d) * sum q for DEC_Q8_A8_0. (The maximum of
// |x| is exact in any order; the integer sum too.)
__device__ static inline void q8_a8_warp(float v, int kind, uint8_t *blk)
{
    int lane = threadIdx.x & 31;
    float amax = q8_warp_max(fabsf(v));
    float d = __fdiv_rn(amax, 127.0f);
    float id = amax != 0.0f ? __fdiv_rn(127.0f, amax) : 0.0f;
    int q = __float2int_rn(__fmul_rn(v, id));
    q = q > 127 ? 127 : q < -127 ? -127 : q;
    int sum = q8_warp_isum(q);
    blk[8 + lane] = (uint8_t)(int8_t)q;
    if (lane == 0) {
        float dh = q8_f16_round(d);
        CUDASIM_ALIGNED(blk, 4);
        reinterpret_cast<float *>(blk)[0] = dh;
        reinterpret_cast<float *>(blk)[1] =
            kind == DEC_Q8_A8_1 ? q8_f16_round(__fmul_rn(d, (float)sum)) : __fmul_rn(dh, (float)sum);
    }
}

// A block of 256 (lane j holds values 8j .. 8j + 7; the whole warp calls)
// as quantize_row_q8_k: the value of largest magnitude (the first such in
// order) maps to -127: iscale = -127 / max, q = nearest-even(iscale * x)
// clamped to +-127, d = 1 / iscale; bsums the sums of each 16 quants.
__device__ static inline void q8_k_warp(const float (&v)[8], uint8_t *blk)
{
    int lane = threadIdx.x & 31;
    float amax = 0.0f;
    int at = -1;
#pragma unroll
    for (int j = 0; j < 8; j++)
        if (fabsf(v[j]) > amax) {
            amax = fabsf(v[j]);
            at = 8 * lane + j;
        }
    float mx = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; j++) // (a constant index: v stays in registers)
        if (at == 8 * lane + j)
            mx = v[j];
    // the largest magnitude, the first index among equals (as the CPU's scan)
    for (int o = 16; o > 0; o >>= 1) {
        float oa = __shfl_xor_sync(0xffffffffu, amax, o);
        int oat = __shfl_xor_sync(0xffffffffu, at, o);
        float omx = __shfl_xor_sync(0xffffffffu, mx, o);
        if (oa > amax || (oa == amax && oat >= 0 && (at < 0 || oat < at))) {
            amax = oa;
            at = oat;
            mx = omx;
        }
    }
    float iscale = amax != 0.0f ? __fdiv_rn(-127.0f, mx) : 0.0f;
    uint32_t w[2] = {0, 0};
    int sum = 0;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int q = __float2int_rn(__fmul_rn(iscale, v[j]));
        q = q > 127 ? 127 : q < -127 ? -127 : q;
        sum += q;
        w[j >> 2] |= (uint32_t)(uint8_t)(int8_t)q << (8 * (j & 3));
    }
    CUDASIM_ALIGNED(blk + 4 + 8 * lane, 4);
    reinterpret_cast<uint32_t *>(blk + 4 + 8 * lane)[0] = w[0];
    reinterpret_cast<uint32_t *>(blk + 4 + 8 * lane)[1] = w[1];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1); // lanes 2g and 2g + 1 hold group g's 16
    if ((lane & 1) == 0) {
        CUDASIM_ALIGNED(blk + 260 + lane, 2);
        *reinterpret_cast<int16_t *>(blk + 260 + lane) = (int16_t)sum;
    }
    if (lane == 0) {
        CUDASIM_ALIGNED(blk, 4);
        *reinterpret_cast<float *>(blk) = amax != 0.0f ? __fdiv_rn(1.0f, iscale) : 0.0f;
    }
}

// The n values of x (a multiple of the kind's block, written by this
// thread block before a barrier) quantized into out by the block's warps,
// each taking whole blocks. Every thread of the block calls.
__device__ static inline void q8_span_block(const float *x, int n, int kind, uint8_t *out)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    if (kind == DEC_Q8_K) {
        for (int b = warp; b < n / GGML_QK_K; b += warps) {
            float v[8];
#pragma unroll
            for (int j = 0; j < 8; j++)
                v[j] = x[b * GGML_QK_K + 8 * lane + j];
            q8_k_warp(v, out + (size_t)b * Q8K_BYTES);
        }
    } else {
        for (int b = warp; b < n / 32; b += warps)
            q8_a8_warp(x[b * 32 + lane], kind, out + (size_t)b * A8_BYTES);
    }
}

// For a launcher: the kind qo asks for where its kernel can write it
// (n values a row, whole blocks of the kind), else DEC_Q8_NONE with *after
// set when the launcher must quantize its output separately.
static inline int q8_fused_kind(const dec_cu_q8_out *qo, int n, int *after)
{
    *after = 0;
    if (!qo || qo->kind == DEC_Q8_NONE)
        return DEC_Q8_NONE;
    if (dec_cu_q8_row_bytes(qo->kind, n))
        return qo->kind;
    *after = 1;
    return DEC_Q8_NONE;
}

#endif
