// decoder_cuda_q8.cu - the decoder's products on weights kept in GGUF blocks
// with 8-bit activations: each activation row quantized as llama.cpp's CPU
// path (and model/quant's) quantizes it, then integer dot products of the
// blocks' quants with the activations' (dp4a), combined in fp32 with the
// blocks' scales.
//
// Why: llama.cpp's logits are the reference (issue 5), and llama.cpp
// rounds activations to 8 bits (Q8_0/Q8_1 blocks of 32, Q8_K blocks of 256)
// before every product on quantized weights. Multiplying fp16 activations
// instead computes a slightly different function: on the golden prompts it
// left the GPU within 1e-2 of llama.cpp's logits on 22 of 33 (worst 0.055),
// where the CPU path, which quantizes as llama.cpp does, is within 1e-6. The
// integer products are also cheaper than unpacking every weight to float:
// 2 dp4a per 8 weights and token instead of 8 conversions and 8 FMAs.
//
// Layout: eight lanes of a warp take one weight row and multiply it into
// a chunk of 1 to 16 token rows, in the CPU's exact float order (see "the
// product" below): a token's result is the CPU's bit for bit, so it never
// depends on the other rows of the call either (batch independence, as in
// the float kernel). The chunks are a grid dimension, reading the weights
// again from L2 (step_rows, prefill_chunk: few rows a chunk, for the
// latency); in a prefill the eight lanes take 4 weight rows (2 of a K
// type) and load the activations once for them.
#include <climits>
#include <cstdlib>
#include <cstring>

#include "model/decoder_cuda_blocks.cuh"
#include "model/decoder_cuda_q8act.cuh"

extern "C" {
#include "common/log.h"
}

#define Q8_WARPS 2
#define Q8_N 16           // token rows a block multiplies at most
#define Q8_QUANT_THREADS 256

// ---- activation blocks ------------------------------------------------------------

int dec_cu_q8_kind_of(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q8_0: return DEC_Q8_A8_0;
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_1: return DEC_Q8_A8_1;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K: return DEC_Q8_K;
    default: return DEC_Q8_NONE;
    }
}

size_t dec_cu_q8_row_bytes(int kind, int in)
{
    if (in <= 0)
        return 0;
    if (kind == DEC_Q8_A8_0 || kind == DEC_Q8_A8_1)
        return in % 32 ? 0 : (size_t)(in / 32) * A8_BYTES;
    if (kind == DEC_Q8_K)
        return in % GGML_QK_K ? 0 : (size_t)(in / GGML_QK_K) * Q8K_BYTES;
    return 0;
}

// One warp per block of 32 (q8_a8_warp).
template <int KIND> __global__ static void k_quant_a8(const float *__restrict__ x, size_t blocks, uint8_t *out)
{
    size_t b = (size_t)blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
    if (b >= blocks) // the whole warp leaves together
        return;
    q8_a8_warp(x[b * 32 + (size_t)(threadIdx.x & 31)], KIND, out + b * A8_BYTES);
}

// One warp per block of 256 (q8_k_warp; lane j: values 8j .. 8j + 7).
__global__ static void k_quant_q8k(const float *__restrict__ x, size_t blocks, uint8_t *out)
{
    size_t b = (size_t)blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
    if (b >= blocks)
        return;
    const float *xv = x + b * GGML_QK_K + 8 * (size_t)(threadIdx.x & 31);
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; j++)
        v[j] = xv[j];
    q8_k_warp(v, out + b * Q8K_BYTES);
}

rg_status dec_cu_quantize_act(cudaStream_t s, int kind, const float *x, int rows, int in, void *out, rg_err *e)
{
    size_t row_bytes = dec_cu_q8_row_bytes(kind, in);
    if (!row_bytes || rows < 0)
        return rg_error(e, RG_ERR_INTERNAL, "dec_cu_quantize_act: kind %d, %d x %d", kind, rows, in);
    size_t per = kind == DEC_Q8_K ? GGML_QK_K : 32, blocks = (size_t)rows * (size_t)in / per;
    size_t warps = Q8_QUANT_THREADS / 32, grid = (blocks + warps - 1) / warps;
    if (grid == 0)
        return RG_OK;
    if (grid > INT_MAX)
        return rg_error(e, RG_ERR_INTERNAL, "dec_cu_quantize_act: %zu blocks", blocks);
    uint8_t *o = static_cast<uint8_t *>(out);
    if (kind == DEC_Q8_K)
        k_quant_q8k<<<(unsigned)grid, Q8_QUANT_THREADS, 0, s>>>(x, blocks, o);
    else if (kind == DEC_Q8_A8_1)
        k_quant_a8<DEC_Q8_A8_1><<<(unsigned)grid, Q8_QUANT_THREADS, 0, s>>>(x, blocks, o);
    else
        k_quant_a8<DEC_Q8_A8_0><<<(unsigned)grid, Q8_QUANT_THREADS, 0, s>>>(x, blocks, o);
    return cu_check(cudaGetLastError(), "quantizing activations", e);
}

// 4 nibbles of w (shift 0: low, 4: high) as 4 bytes 0..15.
__device__ static inline uint32_t nib4(uint32_t w, int shift)
{
    return (w >> shift) & 0x0f0f0f0fu;
}

// Bits j0 .. j0 + 3 of hb to bit 4 of bytes 0..3.
__device__ static inline uint32_t bit4_of(uint32_t hb, int j0)
{
    uint32_t r = 0;
#pragma unroll
    for (int j = 0; j < 4; j++)
        r |= ((hb >> (j0 + j)) & 1u) << (8 * j + 4);
    return r;
}

// ---- the product -----------------------------------------------------------------------
//
// The float arithmetic is model/quant_dot_avx2.c's (ggml's x86 order), so
// a row's result equals the CPU's bit for bit: eight accumulators per row
// and token, accumulator l taking the integer sum of elements 4l .. 4l + 3
// of each 32 (vpmaddubsw + vpmaddwd: one dp4a here) times the block's scale
// product, blocks in order, with one FMA; the offset terms (the _1 types'
// m * s, Q4_0's and Q5_0's -d * off * s, the k-quants' mins and Q6_K's -32)
// summed apart with a rounded product and an add; then the accumulators'
// horizontal sum in the order of the SIMD reduction, plus the offsets. The
// integer sums are exact, so each floating-point operation meets the same
// operands as on the CPU. Why it matters: llama.cpp's logits are chaotic in
// these roundings (an activation's 8-bit rounding flips on a change in its
// last bit, and a flip moves it by max|x| / 127); fp32 sums in another order
// (1e-7 apart) had moved some golden prompts' logits by more than 1e-2.
//
// Eight lanes of a warp take one weight row (lane l: accumulator l), four
// rows a warp; each lane reads 4 bytes of each block (the 8 lanes together
// a block's quants) and multiplies them into every token row of the call.

// Lane l's 4 quants of a block's 32-element group as 4 bytes, for the
// 32-element types: elements 4l .. 4l + 3 (low nibbles of qs for l < 4,
// high nibbles for l >= 4; Q5's fifth bits from qh; Q8_0's signed bytes),
// with d (and m for the _1 types).
template <uint32_t T> __device__ static inline uint32_t legacy_u(const uint8_t *blk, int l, float *d, float *m)
{
    constexpr bool A4 = T == GGML_TYPE_Q4_1 || T == GGML_TYPE_Q5_1;
    *d = f16_bits(ld16(blk));
    if (T == GGML_TYPE_Q8_0)
        return ld16(blk + 2 + 4 * l) | ld16(blk + 4 + 4 * l) << 16; // 34-byte blocks: 2-byte aligned
    uint32_t qh = 0;
    const uint8_t *qs;
    if (T == GGML_TYPE_Q4_0) {
        qs = blk + 2;
    } else if (T == GGML_TYPE_Q4_1) {
        *m = f16_bits(ld16(blk + 2));
        qs = blk + 4;
    } else if (T == GGML_TYPE_Q5_0) {
        qh = ld32<false>(blk + 2);
        qs = blk + 6;
    } else {
        *m = f16_bits(ld16(blk + 2));
        qh = ld32<true>(blk + 4);
        qs = blk + 8;
    }
    uint32_t u = nib4(ld32<A4>(qs + 4 * (l & 3)), 4 * (l >> 2));
    if (T == GGML_TYPE_Q5_0 || T == GGML_TYPE_Q5_1)
        u |= bit4_of(qh >> (4 * l), 0);
    return u;
}

// The CPU's offset term of a 32-element block: m for the _1 types (times
// the activations' s), -d * off for Q4_0 / Q5_0, none for Q8_0.
template <uint32_t T> __device__ static inline float legacy_k(float d, float m)
{
    if (T == GGML_TYPE_Q4_1 || T == GGML_TYPE_Q5_1)
        return m;
    return -__fmul_rn(d, T == GGML_TYPE_Q4_0 ? 8.0f : 16.0f);
}

// Q4_K / Q5_K: the 6-bit scales and mins of the 8 sub-blocks.
__device__ static inline void k_scales(const uint8_t *blk, int *sc, int *mn)
{
    uint32_t sw[3];
#pragma unroll
    for (int k = 0; k < 3; k++)
        sw[k] = ld32<true>(blk + 4 + 4 * k);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        sc[j] = byte_of(sw, j) & 63;
        mn[j] = byte_of(sw, j + 4) & 63;
        sc[j + 4] = (byte_of(sw, j + 8) & 0x0f) | ((byte_of(sw, j) >> 6) << 4);
        mn[j + 4] = (byte_of(sw, j + 8) >> 4) | ((byte_of(sw, j + 4) >> 6) << 4);
    }
}

// A Q8_K activation block's sum of quants 16g .. 16g + 15 (bsums[g]).
__device__ static inline int bsum(const uint8_t *a, int g)
{
    CUDASIM_ALIGNED(a + 260 + 2 * g, 2);
    return *reinterpret_cast<const int16_t *>(a + 260 + 2 * g);
}

__device__ static inline int act4(const uint8_t *a, size_t at)
{
    CUDASIM_ALIGNED(a + at, 4);
    return *reinterpret_cast<const int32_t *>(a + at);
}

__device__ static inline float act_f(const uint8_t *a, int i)
{
    CUDASIM_ALIGNED(a, 4);
    return reinterpret_cast<const float *>(a)[i];
}

// The integer sum of 4 byte products, as a float, without a conversion
// instruction (a quarter-rate I2F on recent GPUs): dp4a adds the products
// to the bits of 1.5 * 2^23, whose last place is 1, so the bits read as a
// float are 1.5 * 2^23 + p exactly while |p| < 2^22 (4 products of 8-bit
// values are at most 65024); subtracting 1.5 * 2^23 is then exact too.
#define Q8_MAGIC_BITS 0x4B400000
#define Q8_MAGIC 12582912.0f

__device__ static inline float dp4a_f(uint32_t u, int a)
{
    return __fsub_rn(__int_as_float(__dp4a((int)u, a, Q8_MAGIC_BITS)), Q8_MAGIC);
}

// Offset sums a lane owns: token t's is lane t % 8's number t / 8. The CPU
// keeps one offset sum per row and token (a scalar beside its SIMD lanes),
// so one lane of the row's 8 computes it, in block order, and the others
// skip the loads and products that would repeat it (N / 8 tokens a lane
// instead of N).
template <int N> struct q8_own {
    enum { n = (N + 7) / 8 };
};

// A K-type block as lane l reads it: its quants u of elements 4l .. 4l + 3
// of each of the 8 sub-blocks of 32 (scales sc), d; for the offset sum
// (computed only by lanes that own a token: owner), Q4_K / Q5_K's mins
// (off[0..8)) with dmin, or Q6_K's 16 scales (off) with d.
struct k_block {
    uint32_t u[8];
    int sc[8], off[16];
    float d, dmin;
};

template <uint32_t T> __device__ static inline void k_unpack(const uint8_t *blk, int l, bool owner, k_block &kb)
{
    if (T == GGML_TYPE_Q4_K || T == GGML_TYPE_Q5_K) {
        k_scales(blk, kb.sc, kb.off);
        uint32_t h = 0;
        if (T == GGML_TYPE_Q5_K)
            h = ld32<true>(blk + 16 + 4 * l); // the fifth bits of elements 4l .. 4l + 3 of each sub-block
        const uint8_t *qs = blk + (T == GGML_TYPE_Q5_K ? 48 : 16);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            kb.u[i] = nib4(ld32<true>(qs + 32 * (i >> 1) + 4 * l), 4 * (i & 1));
            if (T == GGML_TYPE_Q5_K)
                kb.u[i] |= ((h >> i) & 0x01010101u) << 4;
        }
        kb.d = f16_bits(ld16(blk));
        kb.dmin = f16_bits(ld16(blk + 2));
    } else { // Q6_K
        // elements 128 h + 32 k + 4l .. + 3: ql's nibbles, qh's 2-bit pairs;
        // scale 8h + 2k for l < 4 (the group's first 16), 8h + 2k + 1 after
#pragma unroll
        for (int h = 0; h < 2; h++) {
            uint32_t qh = ld32<false>(blk + 128 + 32 * h + 4 * l);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                uint32_t ql = ld32<false>(blk + 64 * h + 32 * (k & 1) + 4 * l);
                kb.u[4 * h + k] = nib4(ql, k >= 2 ? 4 : 0) | (((qh >> (2 * k)) & 0x03030303u) << 4);
                kb.sc[4 * h + k] = (int8_t)blk[192 + 8 * h + 2 * k + (l >= 4)];
            }
        }
        kb.d = f16_bits(ld16(blk + 208));
#pragma unroll
        for (int g = 0; g < 16; g++) // (the scales are read only by lanes that own a token)
            kb.off[g] = owner ? (int8_t)blk[192 + g] : 0;
    }
}

// The offset sum's term of a token's Q8_K block at: the CPU's
// d * s * (sum of mins times the activations' pair sums), or Q6_K's -32
// times the scaled group sums, as a rounded product to subtract.
template <uint32_t T> __device__ static inline float k_offset(const k_block &kb, const uint8_t *at)
{
    int sum = 0;
    if constexpr (T == GGML_TYPE_Q6_K) {
#pragma unroll
        for (int g = 0; g < 16; g++)
            sum += kb.off[g] * bsum(at, g);
        return __fmul_rn(__fmul_rn(kb.d, act_f(at, 0)), (float)(32 * sum));
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++)
            sum += kb.off[i] * (bsum(at, 2 * i) + bsum(at, 2 * i + 1));
        return __fmul_rn(__fmul_rn(kb.dmin, act_f(at, 0)), (float)sum);
    }
}

// One block of each of R rows (blk) into each token row's accumulator,
// and into the offset sums lane l owns (lane l of the rows' 8). a: the
// token rows' activation block b (rows act_row_bytes apart). Each row's
// operations are its own, the same for any R; a token row's activation
// loads (scale, quants for lane l, sum terms) serve all R rows. R > 1 for
// a prefill's chunks (see R_PREFILL).
template <uint32_t T, int N, int R>
__device__ static inline void block_q8(const uint8_t *const (&blk)[R], const uint8_t *a, size_t act_row_bytes, int n,
                                       int l, float (&acc)[R][N], float (&sacc)[R][q8_own<N>::n])
{
    constexpr bool K = T == GGML_TYPE_Q4_K || T == GGML_TYPE_Q5_K || T == GGML_TYPE_Q6_K;
    if constexpr (K) {
        k_block kb[R];
#pragma unroll
        for (int k = 0; k < R; k++)
            k_unpack<T>(blk[k], l, l < n, kb[k]);
        // the integer sums: lane l's quants of the 8 sub-blocks times each
        // token row's, scaled per sub-block, then one FMA with d times the
        // row's d
#pragma unroll
        for (int t = 0; t < N; t++) {
            if (t >= n)
                break;
            const uint8_t *at = a + (size_t)t * act_row_bytes;
            float da = act_f(at, 0);
            int q[8];
#pragma unroll
            for (int i = 0; i < 8; i++)
                q[i] = act4(at, 4 + 32 * (size_t)i + 4 * (size_t)l);
#pragma unroll
            for (int k = 0; k < R; k++) {
                int sumi = 0;
#pragma unroll
                for (int i = 0; i < 8; i++)
                    sumi += kb[k].sc[i] * __dp4a((int)kb[k].u[i], q[i], 0);
                acc[k][t] = __fmaf_rn(__fmul_rn(kb[k].d, da), (float)sumi, acc[k][t]);
            }
        }
#pragma unroll
        for (int j = 0; j < q8_own<N>::n; j++) {
            int t = l + 8 * j;
            if (t < n) {
                const uint8_t *at = a + (size_t)t * act_row_bytes;
#pragma unroll
                for (int k = 0; k < R; k++)
                    sacc[k][j] = __fsub_rn(sacc[k][j], k_offset<T>(kb[k], at));
            }
        }
    } else {
        float d[R], m[R];
        uint32_t u[R];
#pragma unroll
        for (int k = 0; k < R; k++) {
            m[k] = 0.0f;
            u[k] = legacy_u<T>(blk[k], l, &d[k], &m[k]);
        }
#pragma unroll
        for (int t = 0; t < N; t++) {
            if (t >= n)
                break;
            const uint8_t *at = a + (size_t)t * act_row_bytes;
            float da = act_f(at, 0);
            int q = act4(at, 8 + 4 * (size_t)l);
#pragma unroll
            for (int k = 0; k < R; k++)
                acc[k][t] = __fmaf_rn(__fmul_rn(d[k], da), dp4a_f(u[k], q), acc[k][t]);
        }
        if (T != GGML_TYPE_Q8_0) {
#pragma unroll
            for (int j = 0; j < q8_own<N>::n; j++) {
                int t = l + 8 * j;
                if (t < n) {
                    float sa = act_f(a + (size_t)t * act_row_bytes, 1);
#pragma unroll
                    for (int k = 0; k < R; k++)
                        sacc[k][j] = __fadd_rn(sacc[k][j], __fmul_rn(legacy_k<T>(d[k], m[k]), sa));
                }
            }
        }
    }
}

// y[t * ldy + r] = W[r] . act[t], t < n, for the chunk of N token rows
// blockIdx.x; 4 row groups a warp (8 lanes each), Q8_WARPS warps a block,
// R rows a group (rows R * group .. + R - 1), block row range blockIdx.y.
// The chunks are the grid's fast dimension so that the blocks reading the
// same weight rows for different chunks run close together (a prefill
// reads each row from L2 after the first chunk, not from memory again).
template <uint32_t T, int N, int R>
__global__ static void __launch_bounds__(Q8_WARPS * 32)
    k_matvec_q8(const uint8_t *__restrict__ w, size_t row_bytes, const uint8_t *__restrict__ act,
                size_t act_row_bytes, int n, int in, int out, float *__restrict__ y, int ldy)
{
    constexpr bool K = T == GGML_TYPE_Q4_K || T == GGML_TYPE_Q5_K || T == GGML_TYPE_Q6_K;
    constexpr int VALUES = K ? GGML_QK_K : 32;        // per block (weights and activations alike)
    constexpr size_t ACT_BYTES = K ? Q8K_BYTES : A8_BYTES;
    constexpr int OWN = q8_own<N>::n;
    int lane = threadIdx.x & 31, l = lane & 7;
    int t0 = (int)blockIdx.x * N;
    n -= t0;
    if (n > N)
        n = N;
    act += (size_t)t0 * act_row_bytes;
    y += (size_t)t0 * (size_t)ldy;
    int r0 = ((blockIdx.y * Q8_WARPS + (threadIdx.x >> 5)) * 4 + (lane >> 3)) * R;
    const uint8_t *wr[R];
    float acc[R][N], sacc[R][OWN];
#pragma unroll
    for (int k = 0; k < R; k++) {
        // the lanes of a missing row compute row 0 and drop it (shuffles need the whole warp)
        wr[k] = w + (size_t)(r0 + k < out ? r0 + k : 0) * row_bytes;
#pragma unroll
        for (int t = 0; t < N; t++)
            acc[k][t] = 0.0f;
#pragma unroll
        for (int j = 0; j < OWN; j++)
            sacc[k][j] = 0.0f;
    }
    // blocks in flight: a decode step's few rows leave the loads' latency
    // exposed (a lane's FMAs are little work between them), so the fewer
    // token rows (and registers) a lane carries, the more iterations are
    // unrolled and their loads issued together; as many as ptxas keeps
    // without spilling (-Xptxas -v, sm_90: 32 to 80 registers). (cudasim
    // ignores the pragma: maybe_unused.) A prefill's chunks take R rows a
    // lane instead (R_PREFILL).
    [[maybe_unused]] constexpr int UNROLL = R > 1 ? 1 : K ? (N <= 4 ? 4 : 2) : (N <= 2 ? 8 : N <= 4 ? 4 : 2);
    int nb = in / VALUES;
#pragma unroll UNROLL
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk[R];
#pragma unroll
        for (int k = 0; k < R; k++)
            blk[k] = wr[k] + (size_t)b * qblock<T>::bytes;
        block_q8<T, N, R>(blk, act + (size_t)b * ACT_BYTES, act_row_bytes, n, l, acc, sacc);
    }
    // the horizontal sum: (a0 + a4) + (a2 + a6), (a1 + a5) + (a3 + a7), then
    // those two; then the offset sum from the lane that owns it
#pragma unroll
    for (int k = 0; k < R; k++)
#pragma unroll
        for (int t = 0; t < N; t++) {
            if (t >= n)
                break;
            float v = acc[k][t];
            v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, 4, 8));
            v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, 2, 8));
            v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, 1, 8));
            if (T != GGML_TYPE_Q8_0) // (Q8_0 has no offset sum, on the CPU either)
                v = __fadd_rn(v, __shfl_sync(0xffffffffu, sacc[k][t / 8], t % 8, 8));
            if (l == 0 && r0 + k < out)
                y[(size_t)t * (size_t)ldy + (size_t)(r0 + k)] = v;
        }
}

// Rows a lane takes: R_PREFILL (R_PREFILL_K for the K types, whose blocks
// hold more a lane) for a prefill of more than Q8_N token rows, where the
// activations' loads were as many as the dp4a (more for the 32-element
// types), and the chunks keep the grid wide; 1 for a decode step (up to 16 sequences: R
// rows a lane would leave 1 / R of the blocks, on a grid that is already
// narrow).
#define R_PREFILL 4
#define R_PREFILL_K 2

// RAGD_CUDA_Q8_PREFILL_ROWS=1 keeps one row a lane in a prefill too (the
// benchmark's comparison; the same values either way). Read once.
static bool prefill_rows(void)
{
    static const bool on = [] {
        const char *v = getenv("RAGD_CUDA_Q8_PREFILL_ROWS");
        return !(v && strcmp(v, "1") == 0);
    }();
    return on;
}

template <uint32_t T, int N, int R>
static void launch_q8(cudaStream_t s, const void *w, size_t row_bytes, const void *act, size_t act_row_bytes, int n,
                      int in, int out, float *y, int ldy)
{
    int per_block = Q8_WARPS * 4 * R;
    dim3 grid((unsigned)((n + N - 1) / N), (unsigned)((out + per_block - 1) / per_block));
    k_matvec_q8<T, N, R><<<grid, Q8_WARPS * 32, 0, s>>>(static_cast<const uint8_t *>(w), row_bytes,
                                                        static_cast<const uint8_t *>(act), act_row_bytes, n, in, out,
                                                        y, ldy);
}

// A power of two from 1 to Q8_N in the environment variable name, else def
// (with a warning when it is set to something else).
static int env_rows(const char *name, int def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end = nullptr;
    long r = strtol(v, &end, 10);
    if (!*end && r >= 1 && r <= Q8_N && (r & (r - 1)) == 0)
        return (int)r;
    LOG_WARN("CUDA decoder: %s=%s is not 1, 2, 4, 8 or 16; using %d", name, v, def);
    return def;
}

// Token rows a block takes: in a product of up to Q8_N rows (a decode
// step of up to 16 sequences) at most step_rows(), in a prefill
// prefill_chunk(); the rest go to more chunks of the grid. Why so few: a
// lane's token rows are a chain of dependent loads and FMAs, and with all
// 16 rows in a block the grid is out / 8 blocks of two warps, one or two
// warps a scheduler to hide that latency: on an H200 (session 20) a step
// of 16 sequences took 10.7 ms that way (88% in these products, against
// 2.3 ms for a step of one), 6.6 ms with 8 rows a block, 4.4 with 4, 2.9
// with 2 and 2.8 with 1. Chunks of fewer rows read the same weight rows
// again, from L2 (the chunks are the grid's fast dimension). Each token
// row's operations are the same in any chunk (batch independence), so the
// values do not change. RAGD_CUDA_Q8_STEP_ROWS and
// RAGD_CUDA_Q8_PREFILL_CHUNK (1, 2, 4, 8 or 16) set them for the
// benchmark's comparison; read once.
static int step_rows(void)
{
    static const int rows = env_rows("RAGD_CUDA_Q8_STEP_ROWS", 1);
    return rows;
}
static int prefill_chunk(void)
{
    static const int rows = env_rows("RAGD_CUDA_Q8_PREFILL_CHUNK", 4);
    return rows;
}

// per token rows a block (1, 2, 4, 8 or 16), R weight rows a lane.
template <uint32_t T, int R>
static void launch_q8_per(int per, cudaStream_t s, const void *w, size_t row_bytes, const void *act,
                          size_t act_row_bytes, int n, int in, int out, float *y, int ldy)
{
    if (per <= 1)
        launch_q8<T, 1, R>(s, w, row_bytes, act, act_row_bytes, n, in, out, y, ldy);
    else if (per <= 2)
        launch_q8<T, 2, R>(s, w, row_bytes, act, act_row_bytes, n, in, out, y, ldy);
    else if (per <= 4)
        launch_q8<T, 4, R>(s, w, row_bytes, act, act_row_bytes, n, in, out, y, ldy);
    else if (per <= 8)
        launch_q8<T, 8, R>(s, w, row_bytes, act, act_row_bytes, n, in, out, y, ldy);
    else
        launch_q8<T, Q8_N, R>(s, w, row_bytes, act, act_row_bytes, n, in, out, y, ldy);
}

template <uint32_t T>
static void launch_q8_n(cudaStream_t s, const void *w, size_t row_bytes, const void *act, size_t act_row_bytes,
                        int n, int in, int out, float *y, int ldy)
{
    constexpr bool K = T == GGML_TYPE_Q4_K || T == GGML_TYPE_Q5_K || T == GGML_TYPE_Q6_K;
    if (n <= Q8_N)
        launch_q8_per<T, 1>(n < step_rows() ? n : step_rows(), s, w, row_bytes, act, act_row_bytes, n, in, out, y,
                            ldy);
    else if (!prefill_rows())
        launch_q8_per<T, 1>(prefill_chunk(), s, w, row_bytes, act, act_row_bytes, n, in, out, y, ldy);
    else
        launch_q8_per<T, K ? R_PREFILL_K : R_PREFILL>(prefill_chunk(), s, w, row_bytes, act, act_row_bytes, n, in,
                                                      out, y, ldy);
}

rg_status dec_cu_matvec_q8(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, const void *act, int n,
                           int in, int out, float *y, int ldy, rg_err *e)
{
    size_t arb = dec_cu_q8_row_bytes(dec_cu_q8_kind_of(type), in);
    if (!arb || n < 0 || out < 0 || (out + 4 * Q8_WARPS - 1) / (4 * Q8_WARPS) > 65535 || ((uintptr_t)act & 7))
        return rg_error(e, RG_ERR_INTERNAL, "dec_cu_matvec_q8: type %u, %d rows of %d", (unsigned)type, n, in);
    if (n == 0 || out == 0)
        return RG_OK;
#define Q8_CALL(T) launch_q8_n<T>(s, w, row_bytes, act, arb, n, in, out, y, ldy)
    DEC_CU_QUANT_DISPATCH(type, Q8_CALL)
#undef Q8_CALL
    return cu_check(cudaGetLastError(), "decoder product (8-bit activations)", e);
}

// ---- float weights (F32, F16, BF16) in the CPU's order --------------------------------------
//
// A q8 decoder keeps a matrix of a float type as it is in the file and
// multiplies it by the fp32 activations, rounded to the weights' type first
// as model/quant_matvec.c's quant_act_prepare does (llama.cpp's
// vec_dot_type), as model/quant_dot_avx2.c's multi_float_n does for each
// vector: two 8-lane accumulators over blocks of 16
// (lane j: elements 16i + j and 16i + 8 + j), added lane by lane, the SIMD
// reduction, then the last in % 16 elements one by one (a rounded product
// and an add). Eight lanes of a warp take a row, as in the integer kernel.

template <uint32_t T> __device__ static inline float wf(const uint8_t *row, int i)
{
    if (T == GGML_TYPE_F32) {
        CUDASIM_ALIGNED(row + 4 * (size_t)i, 4);
        return reinterpret_cast<const float *>(row)[i];
    }
    uint32_t h = ld16(row + 2 * (size_t)i);
    return T == GGML_TYPE_F16 ? f16_bits(h) : __int_as_float((int)(h << 16));
}

// an activation rounded to the weights' type (nearest even; a NaN stays a
// quiet NaN, as model/quant.c's f32_to_bf16)
template <uint32_t T> __device__ static inline float xr(float v)
{
    if (T == GGML_TYPE_F16)
        return q8_f16_round(v);
    if (T == GGML_TYPE_BF16) {
        uint32_t u = (uint32_t)__float_as_int(v);
        u = (u & 0x7fffffffu) > 0x7f800000u ? (u | 0x400000u) : u + 0x7fffu + ((u >> 16) & 1u);
        return __int_as_float((int)(u & 0xffff0000u));
    }
    return v;
}

template <uint32_t T, int N>
__global__ static void __launch_bounds__(Q8_WARPS * 32)
    k_matvec_fcpu(const uint8_t *__restrict__ w, size_t row_bytes, const float *__restrict__ x, int n, int in, int out,
                  float *__restrict__ y, int ldy)
{
    int lane = threadIdx.x & 31, l = lane & 7;
    int t0 = (int)blockIdx.x * N;
    n -= t0;
    if (n > N)
        n = N;
    x += (size_t)t0 * (size_t)in;
    y += (size_t)t0 * (size_t)ldy;
    int r = (blockIdx.y * Q8_WARPS + (threadIdx.x >> 5)) * 4 + (lane >> 3);
    bool real = r < out;
    const uint8_t *wr = w + (size_t)(real ? r : 0) * row_bytes;
    float a0[N], a1[N];
#pragma unroll
    for (int t = 0; t < N; t++)
        a0[t] = a1[t] = 0.0f;
    int n16 = in / 16 * 16;
    for (int i = 0; i < n16; i += 16) {
        float w0 = wf<T>(wr, i + l), w1 = wf<T>(wr, i + 8 + l);
#pragma unroll
        for (int t = 0; t < N; t++) {
            if (t >= n)
                break;
            const float *xt = x + (size_t)t * (size_t)in;
            a0[t] = __fmaf_rn(w0, xr<T>(xt[i + l]), a0[t]);
            a1[t] = __fmaf_rn(w1, xr<T>(xt[i + 8 + l]), a1[t]);
        }
    }
#pragma unroll
    for (int t = 0; t < N; t++) {
        if (t >= n)
            break;
        float v = __fadd_rn(a0[t], a1[t]);
        v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, 4, 8));
        v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, 2, 8));
        v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, 1, 8));
        if (l == 0 && real) {
            const float *xt = x + (size_t)t * (size_t)in;
            for (int i = n16; i < in; i++)
                v = __fadd_rn(v, __fmul_rn(wf<T>(wr, i), xr<T>(xt[i])));
            y[(size_t)t * (size_t)ldy + (size_t)r] = v;
        }
    }
}

template <uint32_t T, int N>
static void launch_fcpu(cudaStream_t s, const void *w, size_t row_bytes, const float *x, int n, int in, int out,
                        float *y, int ldy)
{
    int per_block = Q8_WARPS * 4;
    dim3 grid((unsigned)((n + N - 1) / N), (unsigned)((out + per_block - 1) / per_block));
    k_matvec_fcpu<T, N><<<grid, Q8_WARPS * 32, 0, s>>>(static_cast<const uint8_t *>(w), row_bytes, x, n, in, out, y,
                                                       ldy);
}

template <uint32_t T>
static void launch_fcpu_n(cudaStream_t s, const void *w, size_t row_bytes, const float *x, int n, int in, int out,
                          float *y, int ldy)
{
    if (n <= 1)
        launch_fcpu<T, 1>(s, w, row_bytes, x, n, in, out, y, ldy);
    else if (n <= 4)
        launch_fcpu<T, 4>(s, w, row_bytes, x, n, in, out, y, ldy);
    else
        launch_fcpu<T, Q8_N>(s, w, row_bytes, x, n, in, out, y, ldy);
}

int dec_cu_float_type(uint32_t type)
{
    return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
}

rg_status dec_cu_matvec_fcpu(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, const float *x, int n,
                             int in, int out, float *y, int ldy, rg_err *e)
{
    if (!dec_cu_float_type(type) || n < 0 || out < 0 || in <= 0 || (out + 4 * Q8_WARPS - 1) / (4 * Q8_WARPS) > 65535)
        return rg_error(e, RG_ERR_INTERNAL, "dec_cu_matvec_fcpu: type %u, %d rows of %d", (unsigned)type, n, in);
    if (n == 0 || out == 0)
        return RG_OK;
    if (type == GGML_TYPE_F32)
        launch_fcpu_n<GGML_TYPE_F32>(s, w, row_bytes, x, n, in, out, y, ldy);
    else if (type == GGML_TYPE_F16)
        launch_fcpu_n<GGML_TYPE_F16>(s, w, row_bytes, x, n, in, out, y, ldy);
    else
        launch_fcpu_n<GGML_TYPE_BF16>(s, w, row_bytes, x, n, in, out, y, ldy);
    return cu_check(cudaGetLastError(), "decoder product (float weights, CPU order)", e);
}
