// decoder_cuda_matvec.cu - the decoder's products of a few token rows
// (decode steps) on its own kernel, over fp16 weight rows or over weight
// matrices kept on the GPU in their GGUF blocks (see
// decoder_cuda_kernels.cuh), and the kernel that unpacks block rows into
// fp16 or fp32 (the fp16 rows feed cuBLAS in prefill).
//
// Why: a decode step reads every weight once, so its time is the bytes read.
// Q4_1 is 5 bits a weight, Q8_0 8.5, Q4_K 4.5; the fp16 copies the decoder
// made before were 16, and for a model of 30B parameters or more they are
// also the difference between fitting on one card or not.
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

// The alignment each wide access relies on; cudasim (tests/cudasim) checks
// it, as the GPU would fault, where the CPU emulating it would not.
#ifndef CUDASIM_ALIGNED
#define CUDASIM_ALIGNED(p, n) ((void)0)
#endif

#define MVQ_WARPS 4
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

// ---- the matrix-vector product ----------------------------------------------------------------

// Weight rows per warp: each token row's 8 values (one 16-byte load from
// L1) serve this many weight rows, so the token rows' reloads, which
// dominate at 16 tokens, are shared by more rows as the batch grows.
template <int N> struct mvq_rows { enum { value = N >= 8 ? 4 : 2 }; };

// y[t * ldy + r] = sum_k W[r, k] x[t, k] for t < n (n <= N), r < out. Each
// warp takes R weight rows; lane j unpacks pieces j, j + 32, ... of each
// (8 values in registers) and multiplies them with the same 8 values of
// every token row. The partial sums then go through shared memory and
// lane j adds the 32 lanes' sums of one (weight row, token row) pair in
// lane order (one warp barrier for all pairs, where a butterfly takes five
// shuffles per pair). A token's output is computed by the same operations
// in the same order whatever the other rows of the call are (and whatever
// N), so a sequence's logits do not depend on the batch it is decoded in
// (cuBLAS picks kernels, tilings and split-K reductions by the batch's
// size). The weights are read once for all n rows.
template <uint32_t T, int N>
__global__ static void __launch_bounds__(MVQ_WARPS * 32)
    k_matvec_q(const uint8_t *__restrict__ w, size_t row_bytes, const cu_f16 *__restrict__ x, int n, int in, int out,
               float *__restrict__ y, int ldy)
{
    constexpr int R = mvq_rows<N>::value;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int r0 = (blockIdx.x * MVQ_WARPS + warp) * R;
    if (r0 >= out) // the whole warp leaves together
        return;
    int nr = out - r0 < R ? out - r0 : R;
    int pieces = in / 8;
    const uint4 *xs = reinterpret_cast<const uint4 *>(x);
    float acc[R][N];
#pragma unroll
    for (int k = 0; k < R; k++)
#pragma unroll
        for (int t = 0; t < N; t++)
            acc[k][t] = 0.0f;
    for (int p = lane; p < pieces; p += 32) {
        float wv[R][8];
#pragma unroll
        for (int k = 0; k < R; k++) // missing rows read the first again; their sums are dropped
            dq_piece<T>(w + (size_t)(k < nr ? r0 + k : r0) * row_bytes, p, wv[k]);
#pragma unroll
        for (int t = 0; t < N; t++) {
            if (t >= n)
                break;
            union { // eight halves in one load; a union, not a cast (aliasing)
                uint4 u4;
                __half2 h2[4];
            } xv;
            CUDASIM_ALIGNED(xs + (size_t)t * (size_t)pieces + (size_t)p, 16);
            xv.u4 = xs[(size_t)t * (size_t)pieces + (size_t)p];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float2 xf = __half22float2(xv.h2[j]);
#pragma unroll
                for (int k = 0; k < R; k++) {
                    acc[k][t] = fmaf(wv[k][2 * j], xf.x, acc[k][t]);
                    acc[k][t] = fmaf(wv[k][2 * j + 1], xf.y, acc[k][t]);
                }
            }
        }
    }
    __shared__ float part[MVQ_WARPS][R * N][33]; // padded: lanes hit different banks
    float(*mine)[33] = part[warp];
#pragma unroll
    for (int k = 0; k < R; k++)
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
    int per_block = MVQ_WARPS * mvq_rows<N>::value;
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

// Eight values as eight fp16 (one 16-byte store) or eight floats.
__device__ static inline void put8(cu_f16 *o, const float *v)
{
    union {
        uint4 u4;
        __half2 h2[4];
    } pk;
#pragma unroll
    for (int j = 0; j < 4; j++)
        pk.h2[j] = __halves2half2(__float2half_rn(v[2 * j]), __float2half_rn(v[2 * j + 1]));
    CUDASIM_ALIGNED(o, 16);
    *reinterpret_cast<uint4 *>(o) = pk.u4;
}

__device__ static inline void put8(float *o, const float *v)
{
#pragma unroll
    for (int j = 0; j < 8; j++)
        o[j] = v[j];
}

// One thread per piece: consecutive threads unpack consecutive pieces of a
// row and store consecutive 16 (fp16) or 32 bytes.
template <uint32_t T, typename O>
__global__ static void k_dequant(const uint8_t *__restrict__ w, size_t row_bytes, int rows, int cols,
                                 O *__restrict__ out)
{
    size_t pieces = (size_t)cols / 8, total = (size_t)rows * pieces;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / pieces;
        int p = (int)(i % pieces);
        float v[8];
        dq_piece<T>(w + r * row_bytes, p, v);
        put8(out + r * (size_t)cols + (size_t)p * 8, v);
    }
}

template <uint32_t T, typename O>
static void launch_dq(cudaStream_t s, const void *w, size_t row_bytes, int rows, int cols, O *out)
{
    size_t total = (size_t)rows * (size_t)(cols / 8);
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

int dec_cu_matvec_takes(uint32_t type, int rows, int in, int max_rows, const void *w, size_t row_bytes,
                        const void *x)
{
    if (rows < 1 || rows > max_rows || rows > MVQ_MAX_N || ((uintptr_t)x & 15))
        return 0;
    if (type == GGML_TYPE_F16) // 16-byte loads of weights and token rows
        return in % 8 == 0 && ((uintptr_t)w & 15) == 0 && row_bytes % 16 == 0;
    return dec_cu_blocks_on_device(type) && in % 32 == 0;
}

rg_status dec_cu_matvec(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, const cu_f16 *x, int n,
                        int in, int out, float *y, int ldy, rg_err *e)
{
    if (!dec_cu_matvec_takes(type, n, in, MVQ_MAX_N, w, row_bytes, x) || out < 0)
        return rg_error(e, RG_ERR_INTERNAL, "dec_cu_matvec: type %u, %d rows of %d", (unsigned)type, n, in);
    if (out == 0)
        return RG_OK;
#define MVQ_CALL(T) launch_mvq_n<T>(s, w, row_bytes, x, n, in, out, y, ldy)
    if (type == GGML_TYPE_F16)
        MVQ_CALL(GGML_TYPE_F16);
    else
        DEC_CU_QUANT_DISPATCH(type, MVQ_CALL)
#undef MVQ_CALL
    return cu_check(cudaGetLastError(), "decoder product (matvec)", e);
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
