// decoder_cuda_ggml.cu - the q8 decoder's attention and SwiGLU in the CPU
// path's arithmetic (model/decoder_attn.c, model/decoder_math.c), which is
// llama.cpp's CPU arithmetic: every floating-point operation of the CPU's
// attention and SwiGLU, with the same operands, in the same order.
//
// Why: with 8-bit activations downstream, a value one unit in the last
// place away from the CPU's flips an activation's rounding now and then,
// and a flip moves it by max|x| / 127; on SmolLM2 a 1e-7 difference in the
// first layers had grown to 1e-2 in the logits after a few positions
// (docs/internals/cuda-decoder.md). So these kernels give up the fast kernels' freedom of
// order (decoder_cuda_kernels.cu) for the CPU's:
//   - scores: the query rounded to f16 (f16 cache), each dot product in the
//     CPU's lane order (16 lanes for a token that shares its call with
//     others of its sequence, ggml's 64-lane vec_dot with a double tail for
//     a lone token: dec_cu_tok.one), times 1/sqrt(head_dim);
//   - softmax: ggml_v_expf's polynomial, sums of 16 in a halving tree added
//     into a double in order, the weights times the float nearest 1/sum,
//     rounded to f16 (f16 cache);
//   - V: position p into partial sum p mod 16 (64 for a lone token) by FMA
//     in position order, the partial sums added as a halving tree, a lone
//     token's last positions (past its 64-blocks) then added in double.
// One block per (query head, token), or per (query head, run of a prompt's
// consecutive tokens) where the run's K and V tiles are staged once for
// all its queries (att_run); positions go in tiles, and the scores are
// computed again in each of three passes (maximum, sum, weighted sum)
// rather than kept (att_token keeps its first 2048), so any context
// fits in a fixed shared memory (a CUDA graph fixes the launch's size).
// Each thread owns fixed (element, lane) pairs of the V sums, so every sum
// is one thread's FMA chain in order.
#include <cmath>

#include "model/decoder_cuda_kernels.cuh"
#include "model/decoder_cuda_q8act.cuh"

extern "C" {
#include "model/decoder_exp_consts.h"
}

#define GG_THREADS 256
#define GG_TILE 256         // positions per tile (a multiple of 64)
#define GG_MAX_PAIRS_PER 64 // (element, lane) pairs a thread owns: head_dim 256 x 64 lanes / 256 threads
#define GG_KEPT 2048        // scores kept between the passes (8 KiB); later ones are computed again
#define RUN_MAX 16          // tokens a run block takes at most
#define RUN_PAIRS_PER 2     // (query, element) pairs of a run a thread owns: 16 lane sums each

// ---- ggml_v_expf (model/decoder_math.c exp_one) --------------------------------------

__device__ static inline float pow2i(int k) // 2^k, k in [-126, 127]
{
    return __int_as_float((k + 127) << 23);
}

__device__ static inline float exp_ggml(float x)
{
    float z = __fmaf_rn(x, EXP_LOG2E, EXP_SHIFT);
    float n = __fsub_rn(z, EXP_SHIFT);
    if (isnan(n))
        return n;
    if (fabsf(n) > 192.0f)
        return n <= 0.0f ? 0.0f : INFINITY;
    float b = __fmaf_rn(-n, EXP_LN2_LO, __fmaf_rn(-n, EXP_LN2_HI, x));
    float u = __fmul_rn(b, b);
    float j = __fmaf_rn(__fmaf_rn(__fmaf_rn(EXP_C5, b, EXP_C4), u, __fmaf_rn(EXP_C3, b, EXP_C2)), u,
                        __fmaf_rn(EXP_C1, b, 1.0f));
    int k = (int)n;
    if (k > 127) // j * 2^k rounded once
        return __fmul_rn(__fmul_rn(j, pow2i(64)), pow2i(k - 64));
    if (k < -126)
        return __fmul_rn(__fmul_rn(j, pow2i(k + 100)), pow2i(-100));
    return __fmul_rn(j, pow2i(k));
}

// ---- SwiGLU (model/decoder_math.c dec_math_swiglu) --------------------------------------

// Value i of token t's row: ggml's vector loop up to blocked, its scalar
// tail (libm's expf there) after.
__device__ static inline float swiglu_at(const float *gu, size_t t, int i, int F, int blocked)
{
    float g = gu[t * 2 * (size_t)F + (size_t)i], u = gu[t * 2 * (size_t)F + (size_t)F + (size_t)i];
    float e = i < blocked ? exp_ggml(__fsub_rn(0.0f, g)) : expf(-g);
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, e)), u);
}

__global__ static void k_swiglu_ggml(const float *gu, size_t n, int F, float *out)
{
    size_t total = n * (size_t)F;
    int blocked = F - F % 16;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x)
        out[idx] = swiglu_at(gu, idx / (size_t)F, (int)(idx % (size_t)F), F, blocked);
}

// The same, also quantized for the down projection: one warp per
// activation block (32 values, or Q8_K's 256: 8 a lane), F a multiple of it.
__global__ static void k_swiglu_ggml_q8(const float *gu, size_t n, int F, float *out, int kind, uint8_t *q8,
                                        size_t q8_row)
{
    int per = kind == DEC_Q8_K ? GGML_QK_K : 32, lane = threadIdx.x & 31, blocked = F - F % 16;
    size_t row_blocks = (size_t)(F / per), total = n * row_blocks;
    size_t bytes = kind == DEC_Q8_K ? Q8K_BYTES : A8_BYTES;
    for (size_t b = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; b < total;
         b += (size_t)gridDim.x * blockDim.x / 32) { // (the whole warp takes the same b)
        size_t t = b / row_blocks, j = b % row_blocks;
        uint8_t *blk = q8 + t * q8_row + j * bytes;
        if (kind == DEC_Q8_K) {
            float v[8];
#pragma unroll
            for (int m = 0; m < 8; m++) {
                int i = (int)j * GGML_QK_K + 8 * lane + m;
                v[m] = swiglu_at(gu, t, i, F, blocked);
                out[t * (size_t)F + (size_t)i] = v[m];
            }
            q8_k_warp(v, blk);
        } else {
            int i = (int)j * 32 + lane;
            float v = swiglu_at(gu, t, i, F, blocked);
            out[t * (size_t)F + (size_t)i] = v;
            q8_a8_warp(v, kind, blk);
        }
    }
}

rg_status dec_cu_swiglu_ggml(cudaStream_t s, const float *gu, int n, int F, float *out, const dec_cu_q8_out *qo,
                             rg_err *e)
{
    size_t total = (size_t)n * (size_t)F;
    size_t blocks = (total + 255) / 256;
    if (blocks > 4096)
        blocks = 4096;
    if (!blocks)
        return RG_OK;
    int after, kind = q8_fused_kind(qo, F, &after);
    if (kind != DEC_Q8_NONE)
        k_swiglu_ggml_q8<<<(unsigned)blocks, 256, 0, s>>>(gu, (size_t)n, F, out, kind,
                                                           static_cast<uint8_t *>(qo->buf),
                                                           dec_cu_q8_row_bytes(kind, F));
    else
        k_swiglu_ggml<<<(unsigned)blocks, 256, 0, s>>>(gu, (size_t)n, F, out);
    rg_status st = cu_check(cudaGetLastError(), "SwiGLU kernel (CPU arithmetic)", e);
    if (!st && after)
        st = dec_cu_quantize_act(s, qo->kind, out, n, F, qo->buf, e);
    return st;
}

// ---- attention ----------------------------------------------------------------------------

__device__ static inline float cache_at(const dec_cu_tok &tk, const void *base, size_t idx)
{
    return tk.half ? __half2float(static_cast<const cu_f16 *>(base)[idx]) : static_cast<const float *>(base)[idx];
}

// The 8-float reduction of the CPU's SIMD dot products (hsum): (s0 + s4) +
// (s2 + s6), (s1 + s5) + (s3 + s7), then the two.
__device__ static inline float hsum8(const float *s)
{
    float h0 = __fadd_rn(s[0], s[4]), h1 = __fadd_rn(s[1], s[5]), h2 = __fadd_rn(s[2], s[6]),
          h3 = __fadd_rn(s[3], s[7]);
    return __fadd_rn(__fadd_rn(h0, h2), __fadd_rn(h1, h3));
}

// Eight values of a cache row from element i (a multiple of 8): one 16-byte
// load of f16 (rows start 16-byte aligned: kv_dim and head_dim are
// multiples of 8 and the cache 256-byte aligned), two of f32.
__device__ static inline void cache8(const dec_cu_tok &tk, const void *base, size_t idx, float *v)
{
    if (tk.half) {
        const cu_f16 *p = static_cast<const cu_f16 *>(base) + idx;
        CUDASIM_ALIGNED(p, 16);
        union {
            uint4 u4;
            __half2 h2[4];
        } w;
        w.u4 = *reinterpret_cast<const uint4 *>(p);
        for (int j = 0; j < 4; j++) {
            float2 f = __half22float2(w.h2[j]);
            v[2 * j] = f.x;
            v[2 * j + 1] = f.y;
        }
    } else {
        const float *p = static_cast<const float *>(base) + idx;
        CUDASIM_ALIGNED(p, 16);
        float4 a = reinterpret_cast<const float4 *>(p)[0], b = reinterpret_cast<const float4 *>(p)[1];
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    }
}

// q (f32 values, f16-rounded with an f16 cache) . K row p, as the CPU's
// dot_avx2 (several tokens of the sequence in the call) or dot_one_avx2
// (a lone token). hd is a multiple of 8.
__device__ static float score_dot(const float *q, const dec_cu_tok &tk, const void *kb, size_t row, int hd, int one)
{
    if (!one) { // two 8-lane accumulators over blocks of 16, an 8-wide tail into the first
        float s0[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s1[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int i = 0;
        float k0[8], k1[8];
        for (; i + 16 <= hd; i += 16) {
            cache8(tk, kb, row + (size_t)i, k0);
            cache8(tk, kb, row + (size_t)i + 8, k1);
            for (int j = 0; j < 8; j++) {
                s0[j] = __fmaf_rn(q[i + j], k0[j], s0[j]);
                s1[j] = __fmaf_rn(q[i + 8 + j], k1[j], s1[j]);
            }
        }
        if (i < hd) {
            cache8(tk, kb, row + (size_t)i, k0);
            for (int j = 0; j < 8; j++)
                s0[j] = __fmaf_rn(q[i + j], k0[j], s0[j]);
        }
        for (int j = 0; j < 8; j++)
            s0[j] = __fadd_rn(s0[j], s1[j]);
        return hsum8(s0);
    }
    // eight 8-lane accumulators over blocks of 64, combined (0 + 4) + (2 + 6)
    // and (1 + 5) + (3 + 7), then hsum; the rest in double
    float r[8][8];
    for (int m = 0; m < 8; m++)
        for (int j = 0; j < 8; j++)
            r[m][j] = 0.0f;
    int n64 = hd / 64 * 64, i = 0;
    for (; i < n64; i += 64)
        for (int m = 0; m < 8; m++) {
            float kv[8];
            cache8(tk, kb, row + (size_t)(i + 8 * m), kv);
            for (int j = 0; j < 8; j++)
                r[m][j] = __fmaf_rn(q[i + 8 * m + j], kv[j], r[m][j]);
        }
    float s[8];
    for (int j = 0; j < 8; j++) {
        float a = __fadd_rn(__fadd_rn(r[0][j], r[4][j]), __fadd_rn(r[2][j], r[6][j]));
        float b = __fadd_rn(__fadd_rn(r[1][j], r[5][j]), __fadd_rn(r[3][j], r[7][j]));
        s[j] = __fadd_rn(a, b);
    }
    double sum = (double)hsum8(s);
    for (; i < hd; i++)
        sum += (double)__fmul_rn(q[i], cache_at(tk, kb, row + (size_t)i));
    return (float)sum;
}

// Positions of a lone token's np that ggml's vec_dot sums in 64-blocks
// (model/decoder_attn.c one_token_blocked: the cache view is a multiple of
// 32 positions); the rest go to its double tail.
__device__ static inline int one_blocked(int np)
{
    int view = (np + 31) / 32 * 32, blocked = view / 64 * 64;
    return blocked < np ? blocked : np;
}

// A group of 16 exponentials summed as a halving tree (the CPU's
// _mm512_reduce_add_ps order).
__device__ static inline float sum16(const float *w)
{
    float v[16];
    for (int i = 0; i < 16; i++)
        v[i] = w[i];
    for (int w2 = 8; w2 >= 1; w2 /= 2)
        for (int i = 0; i < w2; i++)
            v[i] = __fadd_rn(v[i], v[i + w2]);
    return v[0];
}

// A position's weight: e^(score - max) / sum, rounded to f16 with an f16 cache.
__device__ static inline float att_weight(float score, float mx, float inv, int half)
{
    float w = __fmul_rn(exp_ggml(__fsub_rn(score, mx)), inv);
    return half ? __half2float(__float2half_rn(w)) : w;
}

// Head h's hd values o (written by the whole block, visible after a
// barrier) into the quantized row q8row: whole blocks of the kind.
__device__ static inline void q8_head(const float *o, int hd, int h, int kind, uint8_t *q8row)
{
    int per = kind == DEC_Q8_K ? GGML_QK_K : 32;
    size_t bytes = kind == DEC_Q8_K ? Q8K_BYTES : A8_BYTES;
    q8_span_block(o, hd, kind, q8row + (size_t)(h * hd / per) * bytes);
}

// Block-wide maximum (every thread gets it).
__device__ static float block_max(float v, float *red)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads(); // red is free (an earlier use is over)
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    float m = red[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++)
        m = fmaxf(m, red[w]);
    return m;
}

// What att_token's V sums read: the token's cache rows from base, its
// positions (np; the first blocked ones in the lane sums), the tile's
// weights wt, and where the sums go.
struct att_v {
    const dec_cu_tok &tk;
    size_t base;
    int kv_dim, hd, np, lanes, blocked;
    const float *wt;
    float *lane_sums;
};

// The V sums of att_token: pair i = threadIdx.x + k * blockDim.x of the
// thread is element i % hd, lane i / hd, whose sum takes the positions p
// with p % lanes == lane in order (FMA, weight times value), into
// lane_sums[i]. weights(p0, len) fills wt for a tile of positions. MINE 0:
// any geometry, the sums in an array indexed at run time. MINE > 0 (where
// the block's size is a multiple of hd, lanes * hd = MINE * blockDim.x):
// the thread's pairs share element threadIdx.x % hd and their lanes are l0
// + step * k, so its positions are l0 + step * m, pair m % MINE; one pass
// over them in order keeps the MINE sums in registers and their loads
// independent. att_token takes MINE 4, 8 and 16 (SmolLM2's heads of 64: 16
// lanes 4, a lone token's 64 lanes 16); 32 (a lone token's heads of 128)
// took the kernel from 128 to 172 registers, one block an SM instead of
// two. Returns the last tile's first position.
template <int MINE, typename W>
__device__ static int att_v_sums(const att_v &v, W weights)
{
    constexpr int SLOTS = MINE ? MINE : GG_MAX_PAIRS_PER;
    const int bd = (int)blockDim.x, tid = (int)threadIdx.x, hd = v.hd;
    const int mine = MINE ? MINE : (hd * v.lanes - tid + bd - 1) / bd, step = bd / hd, l0 = tid / hd;
    float acc[SLOTS];
#pragma unroll
    for (int k = 0; k < SLOTS; k++)
        acc[k] = 0.0f;
    int last0 = 0;
    for (int p0 = 0; p0 < v.np; p0 += GG_TILE) {
        int len = v.np - p0 < GG_TILE ? v.np - p0 : GG_TILE;
        last0 = p0;
        __syncthreads();
        weights(p0, len);
        __syncthreads();
        int end = v.blocked - p0 < len ? v.blocked - p0 : len; // positions of this tile in the lane sums
        // (p0 % lanes == 0: position p0 + i is in lane i % lanes)
        auto row = [&](int i, int el) {
            return cache_at(v.tk, v.tk.v, v.base + (size_t)(p0 + i) * (size_t)v.kv_dim + (size_t)el);
        };
        if (MINE) {
            int el = tid % hd;
            for (int m0 = 0; l0 + step * m0 < end; m0 += SLOTS)
#pragma unroll
                for (int k = 0; k < SLOTS; k++) {
                    int i = l0 + step * (m0 + k);
                    if (i < end)
                        acc[k] = __fmaf_rn(v.wt[i], row(i, el), acc[k]);
                }
        } else {
            for (int k = 0; k < mine; k++) {
                int pi = tid + k * bd, el = pi % hd, lane = pi / hd;
                for (int i = lane; i < end; i += v.lanes)
                    acc[k] = __fmaf_rn(v.wt[i], row(i, el), acc[k]);
            }
        }
    }
#pragma unroll
    for (int k = 0; k < SLOTS; k++) // (each thread its own slots; read after the caller's barrier)
        if (k < mine)
            v.lane_sums[tid + k * bd] = acc[k];
    return last0;
}

// Query head h of token t alone: one block.
__device__ static void att_token(const float *q, const dec_cu_tok &tk, size_t t, int h, const dec_cu_heads &g,
                                 int layer, float scale, float *out, int q8_kind, uint8_t *q8, size_t q8_row)
{
    __shared__ float qs[DEC_CU_MAX_HEAD_DIM];
    __shared__ float wt[GG_TILE];          // a tile's exponentials, then its weights
    __shared__ float tree[GG_TILE / 16];   // a tile's sums of 16
    __shared__ float red[GG_THREADS / 32];
    __shared__ float kept[GG_KEPT];        // the scores of positions below GG_KEPT, from the first pass
    __shared__ double total;
    int hd = g.head_dim, np = tk.pos + 1, kvh = h / (g.n_head / g.n_head_kv), one = tk.one;
    int lanes = one ? 64 : 16, blocked = one ? one_blocked(np) : np;
    size_t base = (size_t)layer * tk.cap * (size_t)g.kv_dim + (size_t)kvh * (size_t)hd;
    const float *qh = q + t * (size_t)(g.n_head * hd) + (size_t)h * (size_t)hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x)
        qs[i] = tk.half ? __half2float(__float2half_rn(qh[i])) : qh[i];
    __syncthreads();
    auto dot = [&](int p) {
        return __fmul_rn(score_dot(qs, tk, tk.k, base + (size_t)p * (size_t)g.kv_dim, hd, one), scale);
    };
    // (the same operations every time: a kept score is the one recomputed)
    auto score = [&](int p) { return p < GG_KEPT ? kept[p] : dot(p); };
    // pass 1: the maximum
    float mx = -INFINITY;
    for (int p = threadIdx.x; p < np; p += blockDim.x) {
        float v = dot(p);
        if (p < GG_KEPT)
            kept[p] = v;
        mx = fmaxf(mx, v);
    }
    mx = block_max(mx, red); // (its barriers publish kept)
    // pass 2: the exponentials' sum, 16 at a time into a double, in order
    if (threadIdx.x == 0)
        total = 0.0;
    for (int p0 = 0; p0 < np; p0 += GG_TILE) {
        int len = np - p0 < GG_TILE ? np - p0 : GG_TILE;
        __syncthreads();
        for (int i = threadIdx.x; i < GG_TILE; i += blockDim.x)
            wt[i] = i < len ? exp_ggml(__fsub_rn(score(p0 + i), mx)) : 0.0f; // padding adds 0
        __syncthreads();
        for (int b = threadIdx.x; b < (len + 15) / 16; b += blockDim.x)
            tree[b] = sum16(wt + 16 * b);
        __syncthreads();
        if (threadIdx.x == 0)
            for (int b = 0; b < (len + 15) / 16; b++)
                total += (double)tree[b];
    }
    __syncthreads();
    float inv = (float)(1.0 / total);
    // pass 3: weights (rounded to f16 with an f16 cache) into the V sums,
    // left in lane_sums (lanes * hd floats: element i % hd, lane i / hd)
    extern __shared__ float lane_sums[];
    int step = (int)blockDim.x / hd, fixed = (int)blockDim.x % hd == 0 && step <= lanes ? lanes / step : 0;
    int last0; // the last tile's first position (it holds a lone token's tail)
    auto weights = [&](int p0, int len) {
        for (int i = threadIdx.x; i < len; i += blockDim.x)
            wt[i] = att_weight(score(p0 + i), mx, inv, tk.half);
    };
    const att_v v = {tk, base, g.kv_dim, hd, np, lanes, blocked, wt, lane_sums};
    if (fixed == 4)
        last0 = att_v_sums<4>(v, weights);
    else if (fixed == 8)
        last0 = att_v_sums<8>(v, weights);
    else if (fixed == 16)
        last0 = att_v_sums<16>(v, weights);
    else
        last0 = att_v_sums<0>(v, weights);
    // the lanes' halving tree, per element, through shared memory
    __syncthreads();
    float *o = out + t * (size_t)(g.n_head * hd) + (size_t)h * (size_t)hd;
    for (int w = lanes / 2; w >= 1; w /= 2) {
        for (int i = threadIdx.x; i < w * hd; i += blockDim.x) // element i % hd, lane i / hd < w
            lane_sums[i] = __fadd_rn(lane_sums[i], lane_sums[i + w * hd]);
        __syncthreads();
    }
    for (int el = threadIdx.x; el < hd; el += blockDim.x) {
        float v = lane_sums[el];
        if (blocked < np) { // a lone token's tail, in double, position by position
            double d = (double)v;
            for (int p = blocked; p < np; p++) // in the last tile, whose weights wt still holds
                d += (double)__fmul_rn(wt[p - last0],
                                       cache_at(tk, tk.v, base + (size_t)p * (size_t)g.kv_dim + (size_t)el));
            v = (float)d;
        }
        o[el] = v;
    }
    if (q8_kind != DEC_Q8_NONE) { // this head's values are whole blocks of the next product's input
        __syncthreads();
        q8_head(o, hd, h, q8_kind, q8 + t * q8_row);
    }
}

// ---- runs: the tokens of a prefill share their reads -----------------------------------

// Shared memory of a run block: S staged cache rows (room for f32, each
// padded by 16 bytes so that the rows a warp reads at once fall in
// different banks), then per token: its double sum, query, scores or
// weights of a tile, the tile's sums of 16, maximum and 1 / sum.
struct run_layout {
    size_t total, qs, wt, part, mx, inv, bytes;
};

__host__ __device__ static inline run_layout run_lay(int hd, int T, int S)
{
    run_layout L;
    size_t o = (size_t)S * (size_t)(hd * 4 + 16);
    L.total = o;
    o += (size_t)T * sizeof(double);
    L.qs = o;
    o += (size_t)T * (size_t)hd * sizeof(float);
    L.wt = o;
    o += (size_t)T * (size_t)S * sizeof(float);
    L.part = o;
    o += (size_t)T * (size_t)(S / 16) * sizeof(float);
    L.mx = o;
    o += (size_t)T * sizeof(float);
    L.inv = o;
    o += (size_t)T * sizeof(float);
    L.bytes = o;
    return L;
}

// Query head h of tokens t0 .. t0 + T - 1, at consecutive positions of one
// cache (so none is a lone token: the 16-lane order). Positions go in
// tiles of S rows staged in shared memory and read there by all T queries,
// so each K and V row leaves L2 once a block, not once a token (a
// 2048-token prefill moved ~4.8 GB a layer through L2 one token a block).
// Each query's arithmetic is att_token's, operation for operation: the same
// dots (score_dot on the staged rows), maximum, sums of 16 into a double
// in position order, weights, V chains of lane p mod 16 in position order
// (thread-owned (query, element) pairs, the 16 lanes in registers) and
// their halving tree. The scores are computed again in each pass.
__device__ static void att_run(const float *q, const dec_cu_tok &tk, size_t t0, int T, int S, int h,
                               const dec_cu_heads &g, int layer, float scale, float *out, int q8_kind, uint8_t *q8,
                               size_t q8_row)
{
    extern __shared__ float4 run_smem[]; // 16-byte aligned
    const int tid = (int)threadIdx.x, bd = (int)blockDim.x, lane = tid & 31, warp = tid >> 5, warps = bd >> 5;
    const int hd = g.head_dim, kvh = h / (g.n_head / g.n_head_kv), es = tk.half ? 2 : 4;
    const int rb = hd * es + 16, stride = rb / es, groups = S / 16, pos0 = tk.pos, np_last = pos0 + T;
    const size_t base = (size_t)layer * tk.cap * (size_t)g.kv_dim + (size_t)kvh * (size_t)hd;
    const size_t qstride = (size_t)g.n_head * (size_t)hd;
    const run_layout L = run_lay(hd, T, S);
    unsigned char *sm = reinterpret_cast<unsigned char *>(run_smem), *stage = sm;
    double *total = reinterpret_cast<double *>(sm + L.total);
    float *qs = reinterpret_cast<float *>(sm + L.qs), *wt = reinterpret_cast<float *>(sm + L.wt);
    float *part = reinterpret_cast<float *>(sm + L.part), *mx = reinterpret_cast<float *>(sm + L.mx);
    float *inv = reinterpret_cast<float *>(sm + L.inv);
    for (int i = tid; i < T * hd; i += bd) {
        float v = q[(t0 + (size_t)(i / hd)) * qstride + (size_t)h * (size_t)hd + (size_t)(i % hd)];
        qs[i] = tk.half ? __half2float(__float2half_rn(v)) : v;
    }
    for (int j = tid; j < T; j += bd) {
        mx[j] = -INFINITY;
        total[j] = 0.0;
    }
    // rows p0 .. p0 + len - 1 of this head's K or V into the stage, 16 bytes at a time
    auto stage_rows = [&](const void *cache, int p0, int len) {
        int chunks = hd * es / 16;
        const unsigned char *src = static_cast<const unsigned char *>(cache);
        for (int i = tid; i < len * chunks; i += bd) {
            int r = i / chunks, c = i % chunks;
            const unsigned char *from = src + (base + (size_t)(p0 + r) * (size_t)g.kv_dim) * (size_t)es + 16 * c;
            CUDASIM_ALIGNED(from, 16);
            reinterpret_cast<uint4 *>(stage + (size_t)r * (size_t)rb)[c] = *reinterpret_cast<const uint4 *>(from);
        }
    };
    // pair i of the tile: query i / S, staged row i % S, inside its causal range
    auto in_range = [&](int i, int p0, int len) { return i % S < len && p0 + i % S <= pos0 + i / S; };
    auto score = [&](int i) {
        return __fmul_rn(score_dot(qs + (i / S) * hd, tk, stage, (size_t)(i % S) * (size_t)stride, hd, 0), scale);
    };
    // pass 1: each query's maximum
    for (int p0 = 0; p0 < np_last; p0 += S) {
        int len = np_last - p0 < S ? np_last - p0 : S;
        __syncthreads(); // the stage and wt are free
        stage_rows(tk.k, p0, len);
        __syncthreads();
        for (int i = tid; i < T * S; i += bd)
            wt[i] = in_range(i, p0, len) ? score(i) : -INFINITY;
        __syncthreads();
        for (int j = warp; j < T; j += warps) {
            float m = -INFINITY;
            for (int k = lane; k < len; k += 32)
                m = fmaxf(m, wt[j * S + k]);
            for (int o = 16; o > 0; o >>= 1)
                m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
            if (lane == 0)
                mx[j] = fmaxf(mx[j], m);
        }
    }
    // pass 2: the exponentials' sums of 16 into each query's double, in order
    for (int p0 = 0; p0 < np_last; p0 += S) {
        int len = np_last - p0 < S ? np_last - p0 : S;
        __syncthreads();
        stage_rows(tk.k, p0, len);
        __syncthreads();
        for (int i = tid; i < T * S; i += bd)
            wt[i] = in_range(i, p0, len) ? exp_ggml(__fsub_rn(score(i), mx[i / S])) : 0.0f; // padding adds 0
        __syncthreads();
        for (int i = tid; i < T * groups; i += bd)
            part[i] = sum16(wt + (i / groups) * S + 16 * (i % groups));
        __syncthreads();
        for (int j = tid; j < T; j += bd)
            for (int b = 0; b < groups && p0 + 16 * b <= pos0 + j; b++) // groups holding its positions
                total[j] += (double)part[j * groups + b];
    }
    __syncthreads();
    for (int j = tid; j < T; j += bd)
        inv[j] = (float)(1.0 / total[j]);
    // pass 3: the weights of a tile, then its V rows into the lane sums
    float acc[RUN_PAIRS_PER][16];
#pragma unroll
    for (int c = 0; c < RUN_PAIRS_PER; c++)
#pragma unroll
        for (int l = 0; l < 16; l++)
            acc[c][l] = 0.0f;
    for (int p0 = 0; p0 < np_last; p0 += S) {
        int len = np_last - p0 < S ? np_last - p0 : S;
        __syncthreads(); // (also publishes inv)
        stage_rows(tk.k, p0, len);
        __syncthreads();
        for (int i = tid; i < T * S; i += bd)
            wt[i] = in_range(i, p0, len) ? att_weight(score(i), mx[i / S], inv[i / S], tk.half) : 0.0f;
        __syncthreads();
        stage_rows(tk.v, p0, len);
        __syncthreads();
#pragma unroll
        for (int c = 0; c < RUN_PAIRS_PER; c++) { // pair tid + c * bd: query / hd, element % hd
            int pi = tid + c * bd, j = pi / hd, el = pi % hd;
            int end = pos0 + j + 1 - p0 < len ? pos0 + j + 1 - p0 : len; // this query's rows of the tile
            const float *w = wt + j * S;
            for (int i0 = 0; j < T && i0 < end; i0 += 16) // p0 % 16 == 0: row i0 + l is lane l
#pragma unroll
                for (int l = 0; l < 16; l++)
                    if (i0 + l < end)
                        acc[c][l] = __fmaf_rn(w[i0 + l], cache_at(tk, stage, (size_t)(i0 + l) * stride + el), acc[c][l]);
        }
    }
#pragma unroll
    for (int c = 0; c < RUN_PAIRS_PER; c++) {
        int pi = tid + c * bd, j = pi / hd, el = pi % hd;
        if (j < T) {
#pragma unroll
            for (int w = 8; w >= 1; w /= 2)
#pragma unroll
                for (int l = 0; l < w; l++)
                    acc[c][l] = __fadd_rn(acc[c][l], acc[c][l + w]);
            out[(t0 + (size_t)j) * qstride + (size_t)h * (size_t)hd + (size_t)el] = acc[c][0];
        }
    }
    if (q8_kind != DEC_Q8_NONE) {
        __syncthreads();
        for (int j = 0; j < T; j++)
            q8_head(out + (t0 + (size_t)j) * qstride + (size_t)h * (size_t)hd, hd, h, q8_kind,
                    q8 + (t0 + (size_t)j) * q8_row);
    }
}

// One block per (query head, token); a token in an earlier token's run
// leaves it to that token's block.
__global__ static void __launch_bounds__(GG_THREADS)
    k_att_ggml(const float *q, const dec_cu_tok *tok, dec_cu_heads g, int layer, float scale, int span, float *out,
               int q8_kind, uint8_t *q8, size_t q8_row)
{
    size_t t = blockIdx.y;
    const dec_cu_tok tk = tok[t];
    if (tk.run > 1)
        att_run(q, tk, t, tk.run, span, (int)blockIdx.x, g, layer, scale, out, q8_kind, q8, q8_row);
    else if (tk.run >= 0)
        att_token(q, tk, t, (int)blockIdx.x, g, layer, scale, out, q8_kind, q8, q8_row);
}

static size_t att_ggml_smem(const dec_cu_heads *g)
{
    return (size_t)64 * (size_t)g->head_dim * sizeof(float);
}

// att_token's static shared memory (qs, wt, tree, red, kept, total).
#define GG_STATIC_SMEM                                                                                               \
    ((DEC_CU_MAX_HEAD_DIM + GG_TILE + GG_TILE / 16 + GG_THREADS / 32 + GG_KEPT) * sizeof(float) + sizeof(double))
#define GG_SMEM_LIMIT (48 * 1024) // what a launch gets without opting in

int dec_cu_attention_ggml_takes(const dec_cu_heads *g)
{
    // heads of up to 144 values
    return g->head_dim % 8 == 0 && g->head_dim <= DEC_CU_MAX_HEAD_DIM &&
           att_ggml_smem(g) + GG_STATIC_SMEM <= GG_SMEM_LIMIT && g->head_dim * 64 <= GG_THREADS * GG_MAX_PAIRS_PER;
}

// The longest run a block takes for this geometry (T: its (query,
// element) pairs fit the threads' registers, its shared memory the
// limit), with the rows a tile stages (S: 64, or fewer for large heads);
// 1 where no run fits.
static int run_geometry(const dec_cu_heads *g, int *span)
{
    int hd = g->head_dim, T = GG_THREADS * RUN_PAIRS_PER / hd;
    T = T < RUN_MAX ? T : RUN_MAX;
    for (int S = 64; S >= 16 && T > 1; S /= 2)
        if (run_lay(hd, T, S).bytes + GG_STATIC_SMEM <= GG_SMEM_LIMIT) {
            *span = S;
            return T;
        }
    *span = 16;
    return 1;
}

void dec_cu_attention_ggml_runs(dec_cu_tok *tok, int n, const dec_cu_heads *g, int max_run)
{
    int span, T = run_geometry(g, &span);
    T = max_run < T ? max_run : T;
    for (int t = 0; t < n;) {
        int len = 1;
        while (t + len < n && len < T && !tok[t].one && tok[t + len].k == tok[t].k &&
               tok[t + len].pos == tok[t].pos + len)
            len++;
        tok[t].run = len > 1 ? len : 0;
        for (int i = 1; i < len; i++)
            tok[t + i].run = -1;
        t += len;
    }
}

rg_status dec_cu_attention_ggml(cudaStream_t s, const float *q, const dec_cu_tok *tok, int n, const dec_cu_heads *g,
                                int layer, float *out, const dec_cu_q8_out *qo, rg_err *e)
{
    if (n <= 0)
        return RG_OK;
    if (!dec_cu_attention_ggml_takes(g) || n > 65535)
        return rg_error(e, RG_ERR_UNSUPPORTED, "CUDA attention (CPU arithmetic): head size %d or %d tokens",
                        g->head_dim, n);
    float scale = 1.0f / sqrtf((float)g->head_dim);
    dim3 grid((unsigned)g->n_head, (unsigned)n);
    int span, T = run_geometry(g, &span);
    size_t smem = att_ggml_smem(g), run_smem = T > 1 ? run_lay(g->head_dim, T, span).bytes : 0;
    smem = run_smem > smem ? run_smem : smem;
    int after, kind = q8_fused_kind(qo, g->head_dim, &after); // a head's values: whole blocks, or quantize after
    int width = g->n_head * g->head_dim;
    k_att_ggml<<<grid, GG_THREADS, smem, s>>>(q, tok, *g, layer, scale, span, out, kind,
                                              kind ? static_cast<uint8_t *>(qo->buf) : nullptr,
                                              dec_cu_q8_row_bytes(kind, width));
    rg_status st = cu_check(cudaGetLastError(), "attention kernel (CPU arithmetic)", e);
    if (!st && after)
        st = dec_cu_quantize_act(s, qo->kind, out, n, width, qo->buf, e);
    return st;
}
