// decoder_cuda_kernels.cu - the decoder's CUDA kernels and their launchers
// (see decoder_cuda_kernels.cuh). Row kernels run one block per row (token);
// attention runs one block per (query head, token), one key per thread, or
// for a decode step one per (query head, token, span of positions).
#include "model/decoder_cuda_kernels.cuh"
#include "model/decoder_cuda_q8act.cuh"

extern "C" {
#include "model/quant.h"
}

#include <atomic>
#include <climits>
#include <cmath>

#define ROW_THREADS 256
#define EW_THREADS 256
#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / 32)
#define ATT_SCORES 2048 // scores kept between the passes (8 KiB of shared memory)
#define ATT_SPAN 128     // positions a block of the split path takes (one tile)
#define ATT_MAX_SPANS 32 // blocks of the split path per (head, token)

// ---- reductions ------------------------------------------------------------

__device__ static double warp_sum_d(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the block (blockDim.x a multiple of 32); every thread gets it.
__device__ static double block_sum_d(double v, double *red)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_sum_d(v);
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        double w = lane < nwarps ? red[lane] : 0.0;
        w = warp_sum_d(w);
        if (lane == 0)
            red[32] = w;
    }
    __syncthreads();
    return red[32];
}

// ---- activation stores ---------------------------------------------------------

__device__ static void act_put(cu_f16 *o, size_t i, float v)
{
    o[i] = __float2half_rn(v);
}

__device__ static void act_put(float *o, size_t i, float v)
{
    o[i] = v;
}

// ---- products ----------------------------------------------------------------

static std::atomic<unsigned long long> matvec_launched{0};

unsigned long long dec_cu_matvec_launches(void)
{
    return matvec_launched.load();
}

// y[:, off .. off + rows of p) through cuBLAS: row-major y = x W^T is
// column-major y^T = W x^T, W read transposed; ldy apart. CUBLAS_COMPUTE_32F
// on fp32 operands is plain fp32 (TF32 would need
// CUBLAS_COMPUTE_32F_FAST_TF32 or the handle's TF32 math mode, neither
// set), so the f32 decoder really computes in float32.
static rg_status gemm_part(cublasHandle_t h, cudaDataType dt, const void *w, int wrows, const void *x, int n, int in,
                           float *y, int ldy, rg_err *e)
{
    const float alpha = 1.0f, beta = 0.0f;
    return cublas_check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, wrows, n, in, &alpha, w, dt, in, x, dt, in, &beta, y,
                                     CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                        "decoder product", e);
}

// Quantizes x for parts of kind into P->q8_buf unless it holds that
// already (*have: the kind it holds in this call).
static rg_status q8_acts(const dec_cu_prod *P, int kind, const void *x, int rows, int in, int *have, rg_err *e)
{
    if (*have == kind)
        return RG_OK;
    size_t need = (size_t)rows * dec_cu_q8_row_bytes(kind, in);
    if (!P->q8_buf || need == 0 || need > P->q8_bytes)
        return rg_error(e, RG_ERR_INTERNAL, "no room to quantize %d x %d activations", rows, in);
    *have = kind;
    return dec_cu_quantize_act(P->s, kind, static_cast<const float *>(x), rows, in, P->q8_buf, e);
}

int dec_cu_q8_kind_for(const dec_cu_mat *W)
{
    int kind = DEC_Q8_NONE;
    for (int i = 0; i < W->n_part; i++) {
        int k = dec_cu_blocks_on_device(W->part[i].type) ? dec_cu_q8_kind_of(W->part[i].type) : DEC_Q8_NONE;
        if (k != DEC_Q8_NONE && kind != DEC_Q8_NONE && k != kind)
            return DEC_Q8_NONE;
        if (k != DEC_Q8_NONE)
            kind = k;
    }
    return kind;
}

rg_status dec_cu_linear(const dec_cu_prod *P, const void *x, int rows, const dec_cu_mat *W, int have, float *y,
                        rg_err *e)
{
    int in = W->cols, ldy = W->rows, off = 0, have_q8 = P->q8 ? have : DEC_Q8_NONE;
    rg_status st = RG_OK;
    if (P->q8 && P->t != DEC_CU_F32)
        return rg_error(e, RG_ERR_INTERNAL, "8-bit activations are quantized from fp32");
    for (int i = 0; i < W->n_part && !st; off += W->part[i].rows, i++) {
        const dec_cu_part *p = &W->part[i];
        float *yp = y + off;
        int blocks = dec_cu_blocks_on_device(p->type);
        if (P->q8) { // the CPU path's products, whatever the row count
            if (blocks) {
                int kind = dec_cu_q8_kind_of(p->type);
                if (!(st = q8_acts(P, kind, x, rows, in, &have_q8, e)))
                    st = dec_cu_matvec_q8(P->s, p->type, p->w, p->row_bytes, P->q8_buf, rows, in, p->rows, yp, ldy,
                                          e);
            } else {
                st = dec_cu_matvec_fcpu(P->s, p->type, p->w, p->row_bytes, static_cast<const float *>(x), rows, in,
                                        p->rows, yp, ldy, e);
            }
            matvec_launched++;
        } else if (blocks && P->t != DEC_CU_F16) {
            return rg_error(e, RG_ERR_INTERNAL, "quantized weights need fp16 or 8-bit activations");
        } else if (P->t == DEC_CU_F16 && dec_cu_matvec_takes(p->type, rows, in, P->matvec_max, p->w, p->row_bytes, x)) {
            st = dec_cu_matvec(P->s, p->type, p->w, p->row_bytes, static_cast<const cu_f16 *>(x), rows, in, p->rows, yp,
                               ldy, e);
            matvec_launched++;
        } else if (blocks) { // unpack as many rows as the scratch holds, multiply, go on
            const dec_cu_scratch *sc = &P->unpack;
            int chunk = (int)(sc->buf ? sc->elems / (size_t)in : 0);
            if (chunk < 1)
                return rg_error(e, RG_ERR_INTERNAL, "no scratch to unpack quantized weights into");
            for (int r = 0; r < p->rows && !st; r += chunk) {
                int nr = p->rows - r < chunk ? p->rows - r : chunk;
                st = dec_cu_dequant(P->s, p->type, static_cast<const char *>(p->w) + (size_t)r * p->row_bytes,
                                    p->row_bytes, nr, in, sc->buf, DEC_CU_F16, e);
                if (!st)
                    st = gemm_part(P->blas, CUDA_R_16F, sc->buf, nr, x, rows, in, yp + r, ldy, e);
            }
        } else {
            st = gemm_part(P->blas, P->t == DEC_CU_F32 ? CUDA_R_32F : CUDA_R_16F, p->w, p->rows, x, rows, in, yp, ldy,
                           e);
        }
    }
    return st;
}

// ---- RMSNorm -------------------------------------------------------------------

// mean(x^2) as the CPU path (ggml) forms it: (float)(S / n), S the double
// sum of the float squares taken in index order. ss is this block's tree sum
// of the same terms. Both sums of these n nonnegative terms lie within
// gamma(n + 16) * S of the exact one (u = 2^-53; no term goes through more
// than n + 16 roundings, the tree's zero padding counted), so within
// 4 (n + 17) u * ss of each other: twice the bound, the slack covering the
// rounding of ss -+ d, contracted or not. Division and float rounding are
// monotone: when both ends of that interval give one float, so does the
// CPU's sum. Only when a float rounding boundary of S / n lies inside
// (about 4e-6 of the rows at n = 576) does one thread redo the CPU's loop,
// a few microseconds: the mean is the CPU's bit for bit, not one ulp away.
__device__ static float rms_mean(double ss, const float *xr, int n)
{
    __shared__ float exact;
    double d = ss * ((double)(n + 17) * 0x1p-51);
    float lo = (float)((ss - d) / (double)n), hi = (float)((ss + d) / (double)n);
    if (lo == hi) // the same in every thread of the block: ss is the block's
        return lo;
    if (threadIdx.x == 0) { // xr: written before block_sum_d's barriers
        double s = 0.0;
        for (int i = 0; i < n; i++)
            s += (double)__fmul_rn(xr[i], xr[i]);
        exact = (float)(s / (double)n);
    }
    __syncthreads();
    return exact;
}

// q8_kind (with fp32 out): the block also quantizes its output row into
// q8 (rows q8_row bytes apart) once it is written.
template <typename T>
__global__ static void k_rmsnorm(float *x, const float *add, const int32_t *rows, int n, const float *w, float eps,
                                 T *out, int q8_kind, uint8_t *q8, size_t q8_row)
{
    __shared__ double red[33];
    size_t r = rows ? (size_t)rows[blockIdx.x] : (size_t)blockIdx.x;
    float *xr = x + r * (size_t)n;
    const float *ar = add ? add + r * (size_t)n : nullptr;
    double ss = 0.0;
    // each thread reads back only the elements it wrote: no barrier needed
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = xr[i];
        if (ar) {
            v += ar[i];
            xr[i] = v;
        }
        ss += (double)__fmul_rn(v, v); // the square in float, as the CPU path (and ggml)
    }
    float scale = 1.0f / sqrtf(rms_mean(block_sum_d(ss, red), xr, n) + eps);
    T *o = out + (size_t)blockIdx.x * (size_t)n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        act_put(o, (size_t)i, xr[i] * scale * w[i]);
    if (q8_kind != DEC_Q8_NONE) {
        __syncthreads(); // the row's values, written by every thread, are visible to the block
        q8_span_block(reinterpret_cast<const float *>(o), n, q8_kind, q8 + (size_t)blockIdx.x * q8_row);
    }
}

rg_status dec_cu_rmsnorm(cudaStream_t s, float *x, const float *add, const int32_t *rows, int n_rows, int n,
                         const float *w, float eps, void *out, dec_cu_act t, const dec_cu_q8_out *qo, rg_err *e)
{
    if (n_rows <= 0)
        return RG_OK;
    if (t != DEC_CU_F32 && qo && qo->kind != DEC_Q8_NONE)
        return rg_error(e, RG_ERR_INTERNAL, "8-bit activations are quantized from fp32");
    int after, kind = q8_fused_kind(qo, n, &after);
    uint8_t *q8 = kind != DEC_Q8_NONE ? static_cast<uint8_t *>(qo->buf) : nullptr;
    size_t q8_row = dec_cu_q8_row_bytes(kind, n);
    if (t == DEC_CU_F32)
        k_rmsnorm<<<(unsigned)n_rows, ROW_THREADS, 0, s>>>(x, add, rows, n, w, eps, static_cast<float *>(out), kind,
                                                           q8, q8_row);
    else
        k_rmsnorm<<<(unsigned)n_rows, ROW_THREADS, 0, s>>>(x, add, rows, n, w, eps, static_cast<cu_f16 *>(out),
                                                           DEC_Q8_NONE, nullptr, 0);
    rg_status st = cu_check(cudaGetLastError(), "RMSNorm kernel", e);
    if (!st && after)
        st = dec_cu_quantize_act(s, qo->kind, static_cast<const float *>(out), n_rows, n, qo->buf, e);
    return st;
}

// ---- QKV bias, RoPE, cache store -----------------------------------------------------

__device__ static void cache_put(const dec_cu_tok &tk, const void *base, size_t idx, float v)
{
    if (tk.half)
        ((cu_f16 *)base)[idx] = __float2half_rn(v);
    else
        ((float *)base)[idx] = v;
}

// One block per token. A head's head_dim values form head_dim / 2 slots:
// slot j < rope_dim / 2 is a rotated pair (adjacent: 2j, 2j + 1; NEOX: j,
// j + rope_dim / 2), a later slot passes two values through unrotated.
// With qk_norm, each head's scale is found first (a thread a head, its
// squares summed in index order in double, as the CPU path) and kept in
// shared memory for the slots.
__global__ static void k_qkv_rope(const float *qkv, const float *bias, const float *qk_norm, float eps,
                                  dec_cu_heads g, const float *inv_freq, const float *rope, const dec_cu_tok *tok,
                                  int layer, float *q)
{
    __shared__ float head_scale[DEC_CU_MAX_NORM_HEADS];
    size_t t = blockIdx.x;
    const dec_cu_tok tk = tok[t];
    int hd = g.head_dim, qd = g.n_head * hd, kvd = g.kv_dim, rhalf = g.rope_dim / 2, slots = hd / 2;
    const float *row = qkv + t * (size_t)(qd + 2 * kvd);
    size_t cache_row = ((size_t)layer * tk.cap + (size_t)tk.pos) * (size_t)kvd;
    int n_slots = (g.n_head + g.n_head_kv) * slots;
    if (qk_norm) {
        for (int head = threadIdx.x; head < g.n_head + g.n_head_kv; head += blockDim.x) {
            const float *hr = row + head * hd, *hb = bias ? bias + head * hd : nullptr;
            double ss = 0.0;
            for (int i = 0; i < hd; i++) {
                float v = hb ? __fadd_rn(hr[i], hb[i]) : hr[i];
                ss += (double)__fmul_rn(v, v);
            }
            head_scale[head] = 1.0f / sqrtf((float)(ss / (double)hd) + eps);
        }
        __syncthreads();
    }
    for (int task = threadIdx.x; task < n_slots; task += blockDim.x) {
        int head = task / slots, j = task % slots;
        int a, b;
        if (j < rhalf) {
            a = g.neox ? j : 2 * j;
            b = g.neox ? j + rhalf : 2 * j + 1;
        } else {
            a = g.rope_dim + 2 * (j - rhalf);
            b = a + 1;
        }
        int off = head * hd; // within Q | K, which are adjacent in the row
        float x0 = row[off + a], x1 = row[off + b];
        if (bias) {
            x0 += bias[off + a];
            x1 += bias[off + b];
        }
        if (qk_norm) {
            const float *w = qk_norm + (head < g.n_head ? 0 : hd);
            x0 = __fmul_rn(__fmul_rn(x0, head_scale[head]), w[a]);
            x1 = __fmul_rn(__fmul_rn(x1, head_scale[head]), w[b]);
        }
        if (j < rhalf) {
            float cs, sn;
            if (rope) {
                cs = rope[t * (size_t)g.rope_dim + (size_t)j];
                sn = rope[t * (size_t)g.rope_dim + (size_t)(rhalf + j)];
            } else {
                float ang = (float)tk.pos * inv_freq[j];
                cs = cosf(ang);
                sn = sinf(ang);
            }
            // model/decoder_cpu.c rope_pairs: one FMA on a rounded product each
            float r0 = __fmaf_rn(x0, cs, -__fmul_rn(x1, sn)), r1 = __fmaf_rn(x0, sn, __fmul_rn(x1, cs));
            x0 = r0;
            x1 = r1;
        }
        if (head < g.n_head) {
            if (tk.half) {
                x0 = __half2float(__float2half_rn(x0));
                x1 = __half2float(__float2half_rn(x1));
            }
            float *qo = q + t * (size_t)qd + off;
            qo[a] = x0;
            qo[b] = x1;
        } else {
            size_t c = cache_row + (size_t)(off - qd);
            cache_put(tk, tk.k, c + (size_t)a, x0);
            cache_put(tk, tk.k, c + (size_t)b, x1);
        }
    }
    for (int i = threadIdx.x; i < kvd; i += blockDim.x) {
        float v = row[qd + kvd + i];
        if (bias)
            v += bias[qd + kvd + i];
        cache_put(tk, tk.v, cache_row + (size_t)i, v);
    }
}

rg_status dec_cu_qkv_rope(cudaStream_t s, const float *qkv, const float *bias, const float *qk_norm, float eps,
                          int n, const dec_cu_heads *g, const float *inv_freq, const float *rope,
                          const dec_cu_tok *tok, int layer, float *q, rg_err *e)
{
    if (n <= 0)
        return RG_OK;
    if (qk_norm && g->n_head + g->n_head_kv > DEC_CU_MAX_NORM_HEADS)
        return rg_error(e, RG_ERR_UNSUPPORTED, "per-head Q/K norms of more than %d heads", DEC_CU_MAX_NORM_HEADS);
    k_qkv_rope<<<(unsigned)n, ROW_THREADS, 0, s>>>(qkv, bias, qk_norm, eps, *g, inv_freq, rope, tok, layer, q);
    return cu_check(cudaGetLastError(), "QKV/RoPE kernel", e);
}

// ---- attention -----------------------------------------------------------------------

// q . k over one head of hd values, q in shared memory (f32 values, already
// rounded to f16 where the cache is f16), k a cache row: one thread, in
// order. 16-byte loads where the row allows (hd a multiple of 8 halves or
// 4 floats, and the row so aligned: the usual case), else one at a time.
__device__ static float att_dot(const float *q, const void *base, size_t row, int hd, int half)
{
    float d = 0.0f;
    if (half) {
        const cu_f16 *k = (const cu_f16 *)base + row;
        if ((hd & 7) == 0 && ((uintptr_t)k & 15) == 0) {
            const uint4 *k4 = (const uint4 *)k;
            for (int i = 0; i < hd / 8; i++) {
                union { // eight halves in one load; a union, not a cast, so no aliasing rule is broken
                    uint4 u;
                    __half2 h2[4];
                } r;
                r.u = k4[i];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    float2 f = __half22float2(r.h2[j]);
                    d += q[8 * i + 2 * j] * f.x;
                    d += q[8 * i + 2 * j + 1] * f.y;
                }
            }
        } else {
            for (int i = 0; i < hd; i++)
                d += q[i] * __half2float(k[i]);
        }
    } else {
        const float *k = (const float *)base + row;
        if ((hd & 3) == 0 && ((uintptr_t)k & 15) == 0) {
            const float4 *k4 = (const float4 *)k;
            for (int i = 0; i < hd / 4; i++) {
                float4 f = k4[i];
                d += q[4 * i] * f.x;
                d += q[4 * i + 1] * f.y;
                d += q[4 * i + 2] * f.z;
                d += q[4 * i + 3] * f.w;
            }
        } else {
            for (int i = 0; i < hd; i++)
                d += q[i] * k[i];
        }
    }
    return d;
}

__device__ static float cache_get(const void *base, size_t idx, int half)
{
    return half ? __half2float(((const cu_f16 *)base)[idx]) : ((const float *)base)[idx];
}

// Block-wide max and sum of the (m, l) pairs of an online softmax: every
// thread gets the maximum M and L = sum of l * exp(m - M).
__device__ static void att_combine(float m, float l, float *red, float *M_out, float *L_out)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), l2 = __shfl_xor_sync(0xffffffffu, l, o);
        float mm = fmaxf(m, m2);
        l = (l > 0.0f ? l * expf(m - mm) : 0.0f) + (l2 > 0.0f ? l2 * expf(m2 - mm) : 0.0f);
        m = mm;
    }
    if (lane == 0) {
        red[warp] = m;
        red[ATT_WARPS + warp] = l;
    }
    __syncthreads();
    float M = red[0];
    for (int w = 1; w < ATT_WARPS; w++)
        M = fmaxf(M, red[w]);
    float L = 0.0f;
    for (int w = 0; w < ATT_WARPS; w++)
        if (red[ATT_WARPS + w] > 0.0f)
            L += red[ATT_WARPS + w] * expf(red[w] - M);
    *M_out = M;
    *L_out = L;
}

// Shared memory of one attention block.
struct att_smem {
    float q[DEC_CU_MAX_HEAD_DIM];
    float s[ATT_SCORES]; // scores kept from pass 1 (relative to the span's start)
    float w[ATT_THREADS];
    float red[2 * ATT_WARPS];
    float acc[ATT_THREADS];
};

// What block (h, t) reads: its query head (into shared memory), the key and
// value head's offset in the cache, its positions.
struct att_head {
    dec_cu_tok tk;
    size_t base;
    int hd, np;
};

__device__ static att_head att_begin(const float *q, const dec_cu_tok *tok, const dec_cu_heads &g, int layer, int h,
                                     size_t t, att_smem *sm)
{
    att_head a;
    a.tk = tok[t];
    a.hd = g.head_dim;
    int qd = g.n_head * a.hd, kvh = h / (g.n_head / g.n_head_kv);
    for (int i = threadIdx.x; i < a.hd; i += ATT_THREADS)
        sm->q[i] = q[t * (size_t)qd + (size_t)(h * a.hd + i)];
    __syncthreads();
    a.base = (size_t)layer * a.tk.cap * (size_t)g.kv_dim + (size_t)kvh * (size_t)a.hd;
    a.np = a.tk.pos + 1;
    return a;
}

__device__ static float att_score(const att_head &a, const att_smem *sm, int p, float scale, int kv_dim)
{
    return att_dot(sm->q, a.tk.k, a.base + (size_t)p * (size_t)kv_dim, a.hd, a.tk.half) * scale;
}

// Pass 1 over positions [p0, p1): thread i scores p0 + i, p0 + i +
// ATT_THREADS, ... each with a whole dot product of its own (no reduction
// across lanes per key), keeping an online maximum and sum; then the block
// combines them. Scores of the span's first ATT_SCORES positions stay in
// shared memory for pass 2 (read by the thread that wrote them, so no
// barrier is needed).
__device__ static void att_pass1(const att_head &a, att_smem *sm, int p0, int p1, float scale, int kv_dim, float *M,
                                 float *L)
{
    float m = -INFINITY, l = 0.0f;
    for (int p = p0 + (int)threadIdx.x; p < p1; p += ATT_THREADS) {
        float s = att_score(a, sm, p, scale, kv_dim);
        if (p - p0 < ATT_SCORES)
            sm->s[p - p0] = s;
        if (s > m) {
            l = l * expf(m - s) + 1.0f;
            m = s;
        } else {
            l += expf(s - m);
        }
    }
    att_combine(m, l, sm->red, M, L);
}

// Pass 2 over positions [p0, p1) in tiles of ATT_THREADS: each thread turns
// its score (kept when keep, else computed again by the same code) into
// the normalized weight exp(s - M) * inv (rounded to f16 with an f16 cache,
// as the CPU path does before the V product), and the block then sums the
// tile's weighted V rows, thread (part, d) taking dimension d (and d +
// ATT_THREADS when hd > ATT_THREADS) of every parts-th position so the V
// reads of a warp are consecutive; the loop is unrolled so that several of
// a thread's reads are in flight at once (a decode step is bound by their
// latency, not by bandwidth).
__device__ static void att_pass2(const att_head &a, att_smem *sm, int p0, int p1, float scale, int kv_dim, float M,
                                 float inv, int keep, float *acc0, float *acc1)
{
    int tid = threadIdx.x, hd = a.hd;
    int parts = hd < ATT_THREADS ? ATT_THREADS / hd : 1;
    int part = hd < ATT_THREADS ? tid / hd : 0;
    int d0 = hd < ATT_THREADS ? tid % hd : tid;
    float s0 = 0.0f, s1 = 0.0f;
    for (int tile = p0; tile < p1; tile += ATT_THREADS) {
        int p = tile + tid;
        if (p < p1) {
            float s = keep && p - p0 < ATT_SCORES ? sm->s[p - p0] : att_score(a, sm, p, scale, kv_dim);
            float wgt = expf(s - M) * inv;
            if (a.tk.half)
                wgt = __half2float(__float2half_rn(wgt));
            sm->w[tid] = wgt;
        }
        __syncthreads();
        int n_in = p1 - tile < ATT_THREADS ? p1 - tile : ATT_THREADS;
        if (part < parts) {
            size_t row = a.base + (size_t)tile * (size_t)kv_dim;
#pragma unroll 8
            for (int k = part; k < n_in; k += parts) {
                size_t r = row + (size_t)k * (size_t)kv_dim;
                float wk = sm->w[k];
                if (d0 < hd)
                    s0 += wk * cache_get(a.tk.v, r + (size_t)d0, a.tk.half);
                if (d0 + ATT_THREADS < hd)
                    s1 += wk * cache_get(a.tk.v, r + (size_t)(d0 + ATT_THREADS), a.tk.half);
            }
        }
        __syncthreads(); // sm->w is refilled by the next tile
    }
    *acc0 = s0;
    *acc1 = s1;
}

// The sums of pass 2 as values of dimensions 0..hd-1: put(i, v) for each
// (the parts' sums of a dimension meet in shared memory).
template <typename Put>
__device__ static void att_finish(const att_head &a, att_smem *sm, float acc0, float acc1, Put put)
{
    int tid = threadIdx.x, hd = a.hd;
    if (hd >= ATT_THREADS) { // one part: thread d holds dimensions d and d + ATT_THREADS
        if (tid < hd)
            put(tid, acc0);
        if (tid + ATT_THREADS < hd)
            put(tid + ATT_THREADS, acc1);
        return;
    }
    int parts = ATT_THREADS / hd;
    sm->acc[tid] = acc0; // threads past parts * hd hold 0
    __syncthreads();
    for (int i = tid; i < hd; i += ATT_THREADS) {
        float v = 0.0f;
        for (int pt = 0; pt < parts; pt++)
            v += sm->acc[pt * hd + i];
        put(i, v);
    }
}

// One token's positions in spans for the split kernels: spans of
// ATT_SPAN positions, longer (in whole tiles) past ATT_MAX_SPANS of them.
// It depends on the token's own position only, so a sequence's output is
// the same whatever else is in the batch.
__device__ static int att_span_len(int np)
{
    if (np <= ATT_SPAN * ATT_MAX_SPANS)
        return ATT_SPAN;
    int per = (np + ATT_MAX_SPANS - 1) / ATT_MAX_SPANS;
    return (per + ATT_THREADS - 1) / ATT_THREADS * ATT_THREADS;
}

// Block (h, t), every position of the token: pass 1, then pass 2 normalized
// by the block's own maximum and sum, written to out. Memory stays bounded
// whatever the context.
template <typename T>
__device__ static void att_whole(const att_head &a, att_smem *sm, float scale, int kv_dim, T *o)
{
    float M, L, acc0, acc1;
    att_pass1(a, sm, 0, a.np, scale, kv_dim, &M, &L);
    att_pass2(a, sm, 0, a.np, scale, kv_dim, M, 1.0f / L, 1, &acc0, &acc1);
    att_finish(a, sm, acc0, acc1, [&](int i, float v) { act_put(o, (size_t)i, v); });
}

template <typename T>
__global__ static void __launch_bounds__(ATT_THREADS)
    k_attention(const float *q, const dec_cu_tok *tok, dec_cu_heads g, int layer, float scale, T *out)
{
    __shared__ att_smem sm;
    size_t t = blockIdx.y;
    att_head a = att_begin(q, tok, g, layer, (int)blockIdx.x, t, &sm);
    att_whole(a, &sm, scale, g.kv_dim, out + t * (size_t)(g.n_head * a.hd) + (size_t)blockIdx.x * (size_t)a.hd);
}

// The split path (few tokens, long contexts: a decode step), three kernels
// over blocks (h, t, span): a token of one span is computed whole by
// k_att_spans as k_attention does. For longer ones, k_att_stats writes each
// span's maximum and sum (pass 1); k_att_spans combines every span's, in
// span order, into the token's M and L and writes the span's weighted V
// sum (pass 2, weights normalized and rounded as in the whole kernel); and
// k_att_sum adds the spans' sums in span order. Spans past a token's last
// exit at once (the grid is sized for ATT_MAX_SPANS, so a captured graph
// serves any position).
__global__ static void __launch_bounds__(ATT_THREADS)
    k_att_stats(const float *q, const dec_cu_tok *tok, dec_cu_heads g, int layer, float scale, float2 *stats)
{
    int np = tok[blockIdx.y].pos + 1, len = att_span_len(np), c = (int)blockIdx.z;
    if (np <= len || c * len >= np) // one span, or past the last
        return;
    __shared__ att_smem sm;
    size_t t = blockIdx.y;
    att_head a = att_begin(q, tok, g, layer, (int)blockIdx.x, t, &sm);
    float M, L;
    int p0 = c * len, p1 = p0 + len < np ? p0 + len : np;
    att_pass1(a, &sm, p0, p1, scale, g.kv_dim, &M, &L);
    if (threadIdx.x == 0)
        stats[(t * (size_t)g.n_head + blockIdx.x) * ATT_MAX_SPANS + (size_t)c] = make_float2(M, L);
}

template <typename T>
__global__ static void __launch_bounds__(ATT_THREADS)
    k_att_spans(const float *q, const dec_cu_tok *tok, dec_cu_heads g, int layer, float scale, const float2 *stats,
                float *sums, T *out)
{
    int np = tok[blockIdx.y].pos + 1, len = att_span_len(np), c = (int)blockIdx.z;
    if (c * len >= np)
        return;
    __shared__ att_smem sm;
    size_t t = blockIdx.y, th = t * (size_t)g.n_head + blockIdx.x;
    att_head a = att_begin(q, tok, g, layer, (int)blockIdx.x, t, &sm);
    if (np <= len) {
        att_whole(a, &sm, scale, g.kv_dim, out + t * (size_t)(g.n_head * a.hd) + (size_t)blockIdx.x * (size_t)a.hd);
        return;
    }
    int nc = (np + len - 1) / len;
    const float2 *st = stats + th * ATT_MAX_SPANS;
    float M = st[0].x;
    for (int i = 1; i < nc; i++)
        M = fmaxf(M, st[i].x);
    float L = 0.0f;
    for (int i = 0; i < nc; i++)
        if (st[i].y > 0.0f)
            L += st[i].y * expf(st[i].x - M);
    float acc0, acc1;
    int p0 = c * len, p1 = p0 + len < np ? p0 + len : np;
    att_pass2(a, &sm, p0, p1, scale, g.kv_dim, M, 1.0f / L, 0, &acc0, &acc1);
    float *dst = sums + (th * ATT_MAX_SPANS + (size_t)c) * (size_t)a.hd;
    att_finish(a, &sm, acc0, acc1, [&](int i, float v) { dst[i] = v; });
}

template <typename T>
__global__ static void k_att_sum(const dec_cu_tok *tok, dec_cu_heads g, const float *sums, T *out)
{
    int np = tok[blockIdx.y].pos + 1, len = att_span_len(np);
    if (np <= len)
        return;
    int nc = (np + len - 1) / len, hd = g.head_dim;
    size_t t = blockIdx.y, th = t * (size_t)g.n_head + blockIdx.x;
    const float *src = sums + th * ATT_MAX_SPANS * (size_t)hd;
    T *o = out + t * (size_t)(g.n_head * hd) + (size_t)blockIdx.x * (size_t)hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float v = 0.0f;
        for (int c = 0; c < nc; c++)
            v += src[(size_t)c * (size_t)hd + (size_t)i];
        act_put(o, (size_t)i, v);
    }
}

size_t dec_cu_attention_scratch_bytes(const dec_cu_heads *g, int max_tokens)
{
    size_t per = (size_t)g->n_head * ATT_MAX_SPANS;
    return (size_t)max_tokens * per * (sizeof(float2) + (size_t)g->head_dim * sizeof(float));
}

template <typename T>
static void launch_attention(cudaStream_t s, const float *q, const dec_cu_tok *tok, int n, const dec_cu_heads *g,
                             int layer, float scale, T *out, void *scratch, int split)
{
    dim3 grid((unsigned)g->n_head, (unsigned)n);
    if (!split) {
        k_attention<<<grid, ATT_THREADS, 0, s>>>(q, tok, *g, layer, scale, out);
        return;
    }
    float2 *stats = static_cast<float2 *>(scratch);
    float *sums = reinterpret_cast<float *>(stats + (size_t)n * (size_t)g->n_head * ATT_MAX_SPANS);
    dim3 spans((unsigned)g->n_head, (unsigned)n, ATT_MAX_SPANS);
    k_att_stats<<<spans, ATT_THREADS, 0, s>>>(q, tok, *g, layer, scale, stats);
    k_att_spans<<<spans, ATT_THREADS, 0, s>>>(q, tok, *g, layer, scale, stats, sums, out);
    k_att_sum<<<grid, 64, 0, s>>>(tok, *g, sums, out);
}

rg_status dec_cu_attention(cudaStream_t s, const float *q, const dec_cu_tok *tok, int n, const dec_cu_heads *g,
                           int layer, void *out, dec_cu_act t, void *scratch, int scratch_tokens, rg_err *e)
{
    if (n <= 0)
        return RG_OK;
    if (g->head_dim > DEC_CU_MAX_HEAD_DIM || n > 65535)
        return rg_error(e, RG_ERR_UNSUPPORTED, "CUDA attention: head size %d or %d tokens beyond the kernel's limits",
                        g->head_dim, n);
    float scale = 1.0f / sqrtf((float)g->head_dim);
    int split = scratch && n <= scratch_tokens;
    if (t == DEC_CU_F32)
        launch_attention(s, q, tok, n, g, layer, scale, static_cast<float *>(out), scratch, split);
    else
        launch_attention(s, q, tok, n, g, layer, scale, static_cast<cu_f16 *>(out), scratch, split);
    return cu_check(cudaGetLastError(), "attention kernel", e);
}

// ---- SwiGLU ----------------------------------------------------------------------------

template <typename T> __global__ static void k_swiglu(const float *gu, size_t n, int F, T *out)
{
    size_t total = n * (size_t)F;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t t = idx / (size_t)F, i = idx % (size_t)F;
        float g = gu[t * 2 * (size_t)F + i], u = gu[t * 2 * (size_t)F + (size_t)F + i];
        act_put(out, idx, g / (1.0f + expf(-g)) * u);
    }
}

rg_status dec_cu_swiglu(cudaStream_t s, const float *gu, int n, int F, void *out, dec_cu_act t, rg_err *e)
{
    size_t total = (size_t)n * (size_t)F;
    if (total == 0)
        return RG_OK;
    size_t blocks = (total + EW_THREADS - 1) / EW_THREADS;
    if (blocks > 65535)
        blocks = 65535; // grid-stride loop covers the rest
    if (t == DEC_CU_F32)
        k_swiglu<<<(unsigned)blocks, EW_THREADS, 0, s>>>(gu, (size_t)n, F, static_cast<float *>(out));
    else
        k_swiglu<<<(unsigned)blocks, EW_THREADS, 0, s>>>(gu, (size_t)n, F, static_cast<cu_f16 *>(out));
    return cu_check(cudaGetLastError(), "SwiGLU kernel", e);
}
