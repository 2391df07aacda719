// decoder_cuda_quant.cu - the decoder's weight matrices kept on the GPU in
// their GGUF blocks (see decoder_cuda_kernels.cuh): a matrix-vector product
// that unpacks the blocks as it reads them (decode steps), and a kernel that
// unpacks rows into fp16 or fp32 (the fp16 rows feed cuBLAS in prefill).
//
// Why: a decode step reads every weight once, so its time is the bytes read.
// Q4_1 is 5 bits a weight, Q8_0 8.5, Q4_K 4.5; the fp16 copies the decoder
// made before were 16, and for a 7B or larger model they are also the
// difference between fitting on the card or not.
//
// The values are model/quant's dequantization, bit for bit: every product
// and sum that model/quant rounds separately is rounded separately here
// (__fmul_rn / __fadd_rn / __fsub_rn, which nvcc never fuses into an FMA).
// The dot products then use those exact values (not fp16 roundings of
// them) with fp32 accumulation.
#include "model/decoder_cuda_kernels.cuh"

extern "C" {
#include "model/quant.h"
}

#define MVQ_WARPS 4
#define MVQ_ROWS 2 // weight rows per warp, as k_matvec_f16
#define MVQ_MAX_N 16
#define DQ_THREADS 256

// ---- reading blocks ------------------------------------------------------------------
// Every block field this file reads lies at an even offset of a block whose
// size is even, and rows start at even offsets of a 256-byte-aligned
// allocation, so 16-bit loads are always aligned; 32-bit loads are used
// where the type's block size (and so every field offset read that way)
// is a multiple of four.

__device__ static inline uint32_t ld16(const uint8_t *p)
{
    return *reinterpret_cast<const uint16_t *>(p);
}

template <bool A4> __device__ static inline uint32_t ld32(const uint8_t *p)
{
    if (A4)
        return *reinterpret_cast<const uint32_t *>(p);
    return ld16(p) | ld16(p + 2) << 16;
}

__device__ static inline float f16_bits(uint32_t bits)
{
    __half_raw r;
    r.x = (unsigned short)bits;
    return __half2float(__half(r));
}

// 32 bytes from p into w[8] (little-endian words).
template <bool A4> __device__ static inline void ld_bytes32(const uint8_t *p, uint32_t *w)
{
#pragma unroll
    for (int i = 0; i < 8; i++)
        w[i] = ld32<A4>(p + 4 * i);
}

__device__ static inline int byte_of(const uint32_t *w, int j)
{
    return (int)((w[j >> 2] >> (8 * (j & 3))) & 0xffu);
}

// ---- one unit: the 32 consecutive values u*32 .. u*32+31 of a row ----------------------

// Q4_0, Q4_1, Q5_0, Q5_1: one block per unit (model/quant.c dequant_legacy_block).
template <uint32_t T> __device__ static inline void dq_legacy(const uint8_t *b, float *v)
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
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; i++)
        w[i] = ld32<A4>(qs + 4 * i);
#pragma unroll
    for (int j = 0; j < 16; j++) {
        int q = byte_of(w, j), lo = q & 0x0f, hi = q >> 4;
        if (T == GGML_TYPE_Q5_0 || T == GGML_TYPE_Q5_1) {
            lo |= (int)((qh >> j) & 1u) << 4;
            hi |= (int)((qh >> (j + 16)) & 1u) << 4;
        }
        if (T == GGML_TYPE_Q4_0) {
            v[j] = __fmul_rn(d, (float)(lo - 8));
            v[j + 16] = __fmul_rn(d, (float)(hi - 8));
        } else if (T == GGML_TYPE_Q5_0) {
            v[j] = __fmul_rn(d, (float)(lo - 16));
            v[j + 16] = __fmul_rn(d, (float)(hi - 16));
        } else {
            v[j] = __fadd_rn(__fmul_rn(d, (float)lo), m);
            v[j + 16] = __fadd_rn(__fmul_rn(d, (float)hi), m);
        }
    }
}

__device__ static inline void dq_q8_0(const uint8_t *b, float *v)
{
    float d = f16_bits(ld16(b));
#pragma unroll
    for (int j = 0; j < 16; j++) {
        uint32_t two = ld16(b + 2 + 2 * j);
        v[2 * j] = __fmul_rn(d, (float)(int8_t)(two & 0xffu));
        v[2 * j + 1] = __fmul_rn(d, (float)(int8_t)(two >> 8));
    }
}

// Q4_K / Q5_K: sub-block i of a 256-value block (model/quant.c
// dequant_q45k_block and quant_k_scale_min).
template <uint32_t T> __device__ static inline void dq_q45k(const uint8_t *blk, int i, float *v)
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
    const uint8_t *qs = blk + (T == GGML_TYPE_Q5_K ? 48 : 16) + 32 * (i >> 1);
    int shift = 4 * (i & 1);
    uint32_t q[8], h[8];
    ld_bytes32<true>(qs, q);
    if (T == GGML_TYPE_Q5_K)
        ld_bytes32<true>(blk + 16, h);
#pragma unroll
    for (int l = 0; l < 32; l++) {
        int x = (byte_of(q, l) >> shift) & 0x0f;
        if (T == GGML_TYPE_Q5_K)
            x |= ((byte_of(h, l) >> i) & 1) << 4;
        v[l] = __fsub_rn(__fmul_rn(dl, (float)x), ml);
    }
}

// Q6_K: piece p = 4 * half + k of a 256-value block, values 128 half + 32 k
// + l (model/quant.c dequant_q6k_block).
__device__ static inline void dq_q6k(const uint8_t *blk, int p, float *v)
{
    int half = p >> 2, k = p & 3;
    uint32_t ql[8], qh[8];
    ld_bytes32<false>(blk + 64 * half + 32 * (k & 1), ql);
    ld_bytes32<false>(blk + 128 + 32 * half, qh);
    uint32_t sc2 = ld16(blk + 192 + 8 * half + 2 * k); // the scales of values 0-15 and 16-31
    float d = f16_bits(ld16(blk + 208));
    float dl0 = __fmul_rn(d, (float)(int8_t)(sc2 & 0xffu)), dl1 = __fmul_rn(d, (float)(int8_t)(sc2 >> 8));
    int shift = k >= 2 ? 4 : 0;
#pragma unroll
    for (int l = 0; l < 32; l++) {
        int lo = (byte_of(ql, l) >> shift) & 0x0f, hi = (byte_of(qh, l) >> (2 * k)) & 3;
        v[l] = __fmul_rn(l < 16 ? dl0 : dl1, (float)((lo | hi << 4) - 32));
    }
}

template <uint32_t T> struct qblock;
template <> struct qblock<GGML_TYPE_Q4_0> { enum { bytes = GGML_Q4_0_BLOCK_BYTES, units = 1 }; };
template <> struct qblock<GGML_TYPE_Q4_1> { enum { bytes = GGML_Q4_1_BLOCK_BYTES, units = 1 }; };
template <> struct qblock<GGML_TYPE_Q5_0> { enum { bytes = GGML_Q5_0_BLOCK_BYTES, units = 1 }; };
template <> struct qblock<GGML_TYPE_Q5_1> { enum { bytes = GGML_Q5_1_BLOCK_BYTES, units = 1 }; };
template <> struct qblock<GGML_TYPE_Q8_0> { enum { bytes = GGML_Q8_0_BLOCK_BYTES, units = 1 }; };
template <> struct qblock<GGML_TYPE_Q4_K> { enum { bytes = GGML_Q4_K_BLOCK_BYTES, units = 8 }; };
template <> struct qblock<GGML_TYPE_Q5_K> { enum { bytes = GGML_Q5_K_BLOCK_BYTES, units = 8 }; };
template <> struct qblock<GGML_TYPE_Q6_K> { enum { bytes = GGML_Q6_K_BLOCK_BYTES, units = 8 }; };

// The 32 values of unit u of a row.
template <uint32_t T> __device__ static inline void dq_unit(const uint8_t *row, int u, float *v)
{
    const uint8_t *blk = row + (size_t)(u / qblock<T>::units) * qblock<T>::bytes;
    if (T == GGML_TYPE_Q8_0)
        dq_q8_0(blk, v);
    else if (T == GGML_TYPE_Q4_K || T == GGML_TYPE_Q5_K)
        dq_q45k<T>(blk, u % 8, v);
    else if (T == GGML_TYPE_Q6_K)
        dq_q6k(blk, u % 8, v);
    else
        dq_legacy<T>(blk, v);
}

// ---- the matrix-vector product ----------------------------------------------------------------

// y[t * ldy + r] = sum_k W[r, k] x[t, k] for t < n (n <= N), r < out. Each
// warp takes MVQ_ROWS weight rows; lane j unpacks units j, j + 32, ... of
// both (32 values each, in registers) and multiplies them with the same 32
// values of every token row (four 16-byte loads a row). The lanes' sums
// are then added in lane order from shared memory, as k_matvec_f16 does, so
// a token's result is the same whatever the other rows of the call are.
template <uint32_t T, int N>
__global__ static void __launch_bounds__(MVQ_WARPS * 32)
    k_matvec_q(const uint8_t *__restrict__ w, size_t row_bytes, const cu_f16 *__restrict__ x, int n, int in, int out,
               float *__restrict__ y, int ldy)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int r0 = (blockIdx.x * MVQ_WARPS + warp) * MVQ_ROWS;
    if (r0 >= out) // the whole warp leaves together
        return;
    int nr = out - r0 < MVQ_ROWS ? out - r0 : MVQ_ROWS;
    int units = in / 32;
    float acc[MVQ_ROWS][N];
#pragma unroll
    for (int k = 0; k < MVQ_ROWS; k++)
#pragma unroll
        for (int t = 0; t < N; t++)
            acc[k][t] = 0.0f;
    for (int u = lane; u < units; u += 32) {
        float wv[MVQ_ROWS][32];
#pragma unroll
        for (int k = 0; k < MVQ_ROWS; k++) // a missing second row reads the first again; its sums are dropped
            dq_unit<T>(w + (size_t)(k < nr ? r0 + k : r0) * row_bytes, u, wv[k]);
#pragma unroll
        for (int t = 0; t < N; t++) {
            if (t >= n)
                break;
            const uint4 *xp = reinterpret_cast<const uint4 *>(x + (size_t)t * (size_t)in + (size_t)u * 32);
#pragma unroll
            for (int c = 0; c < 4; c++) {
                union { // eight halves in one load; a union, not a cast (aliasing)
                    uint4 u4;
                    __half2 h2[4];
                } xv;
                xv.u4 = xp[c];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    float2 xf = __half22float2(xv.h2[j]);
#pragma unroll
                    for (int k = 0; k < MVQ_ROWS; k++) {
                        acc[k][t] = fmaf(wv[k][8 * c + 2 * j], xf.x, acc[k][t]);
                        acc[k][t] = fmaf(wv[k][8 * c + 2 * j + 1], xf.y, acc[k][t]);
                    }
                }
            }
        }
    }
    __shared__ float part[MVQ_WARPS][MVQ_ROWS * MVQ_MAX_N][33]; // padded: lanes hit different banks
    float(*mine)[33] = part[warp];
#pragma unroll
    for (int k = 0; k < MVQ_ROWS; k++)
#pragma unroll
        for (int t = 0; t < N; t++)
            if (t < n)
                mine[k * n + t][lane] = acc[k][t];
    __syncwarp();
    for (int j = lane; j < nr * n; j += 32) {
        float s = 0.0f;
        for (int i = 0; i < 32; i++)
            s += mine[j][i];
        y[(size_t)(j % n) * (size_t)ldy + (size_t)(r0 + j / n)] = s;
    }
}

template <uint32_t T, int N>
static void launch_mvq(cudaStream_t s, const void *w, size_t row_bytes, const cu_f16 *x, int n, int in, int out,
                       float *y, int ldy)
{
    int per_block = MVQ_WARPS * MVQ_ROWS;
    k_matvec_q<T, N><<<(unsigned)((out + per_block - 1) / per_block), MVQ_WARPS * 32, 0, s>>>(
        static_cast<const uint8_t *>(w), row_bytes, x, n, in, out, y, ldy);
}

// Token counts go up in buckets (1, 2, 4, 8, 16): the kernel's loops skip
// the rows past n, so five instantiations a type cover every count.
template <uint32_t T>
static void launch_mvq_n(cudaStream_t s, const void *w, size_t row_bytes, const cu_f16 *x, int n, int in, int out,
                         float *y, int ldy)
{
    if (n <= 1)
        launch_mvq<T, 1>(s, w, row_bytes, x, n, in, out, y, ldy);
    else if (n <= 2)
        launch_mvq<T, 2>(s, w, row_bytes, x, n, in, out, y, ldy);
    else if (n <= 4)
        launch_mvq<T, 4>(s, w, row_bytes, x, n, in, out, y, ldy);
    else if (n <= 8)
        launch_mvq<T, 8>(s, w, row_bytes, x, n, in, out, y, ldy);
    else
        launch_mvq<T, 16>(s, w, row_bytes, x, n, in, out, y, ldy);
}

// ---- unpacking rows ---------------------------------------------------------------------

__device__ static inline void put(cu_f16 *o, float v)
{
    *o = __float2half_rn(v);
}

__device__ static inline void put(float *o, float v)
{
    *o = v;
}

template <uint32_t T, typename O>
__global__ static void k_dequant(const uint8_t *__restrict__ w, size_t row_bytes, int rows, int cols,
                                 O *__restrict__ out)
{
    size_t units = (size_t)cols / 32, total = (size_t)rows * units;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / units;
        int u = (int)(i % units);
        float v[32];
        dq_unit<T>(w + r * row_bytes, u, v);
        O *o = out + r * (size_t)cols + (size_t)u * 32;
#pragma unroll
        for (int j = 0; j < 32; j++)
            put(o + j, v[j]);
    }
}

template <uint32_t T, typename O>
static void launch_dq(cudaStream_t s, const void *w, size_t row_bytes, int rows, int cols, O *out)
{
    size_t total = (size_t)rows * (size_t)(cols / 32);
    size_t blocks = (total + DQ_THREADS - 1) / DQ_THREADS;
    if (blocks > 65535)
        blocks = 65535; // a grid-stride loop takes the rest
    if (blocks == 0)
        return;
    k_dequant<T, O><<<(unsigned)blocks, DQ_THREADS, 0, s>>>(static_cast<const uint8_t *>(w), row_bytes, rows, cols,
                                                            out);
}

// ---- launchers ------------------------------------------------------------------------

int dec_cu_blocks_on_device(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K: return 1;
    default: return 0;
    }
}

// One switch over the types for both launchers: CALL(T) runs with the type
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

rg_status dec_cu_matvec_q(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, const cu_f16 *x, int n,
                          int in, int out, float *y, int ldy, rg_err *e)
{
    if (!dec_cu_blocks_on_device(type) || n < 1 || n > MVQ_MAX_N || in % 32 || ((uintptr_t)x & 15) || out < 0)
        return rg_error(e, RG_ERR_INTERNAL, "dec_cu_matvec_q: type %u, %d rows of %d", (unsigned)type, n, in);
    if (out == 0)
        return RG_OK;
#define MVQ_CALL(T) launch_mvq_n<T>(s, w, row_bytes, x, n, in, out, y, ldy)
    DEC_CU_QUANT_DISPATCH(type, MVQ_CALL)
#undef MVQ_CALL
    return cu_check(cudaGetLastError(), "decoder product (quantized weights)", e);
}

rg_status dec_cu_dequant(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, int rows, int cols, void *out,
                         dec_cu_act ot, rg_err *e)
{
    if (!dec_cu_blocks_on_device(type) || cols % 32 || rows < 0 || cols < 0)
        return rg_error(e, RG_ERR_INTERNAL, "dec_cu_dequant: type %u, %d x %d", (unsigned)type, rows, cols);
    if (ot == DEC_CU_F32) {
#define DQ_CALL(T) launch_dq<T, float>(s, w, row_bytes, rows, cols, static_cast<float *>(out))
        DEC_CU_QUANT_DISPATCH(type, DQ_CALL)
#undef DQ_CALL
    } else {
#define DQ_CALL(T) launch_dq<T, cu_f16>(s, w, row_bytes, rows, cols, static_cast<cu_f16 *>(out))
        DEC_CU_QUANT_DISPATCH(type, DQ_CALL)
#undef DQ_CALL
    }
    return cu_check(cudaGetLastError(), "unpacking quantized weights", e);
}
