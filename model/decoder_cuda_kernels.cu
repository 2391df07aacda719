// decoder_cuda_kernels.cu - the decoder's CUDA kernels and their launchers
// (see decoder_cuda_kernels.cuh). Row kernels run one block per row (token);
// attention runs one block per (query head, token).
#include "model/decoder_cuda_kernels.cuh"

#include <climits>
#include <cmath>

#define ROW_THREADS 256
#define EW_THREADS 256
#define ATT_WARPS 4
#define ATT_PER_LANE (DEC_CU_MAX_HEAD_DIM / 32)

// ---- reductions ------------------------------------------------------------

__device__ static float warp_sum_f(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

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

rg_status dec_cu_linear(cublasHandle_t h, dec_cu_act t, const void *x, int rows, int in, const void *w, int out,
                        float *y, rg_err *e)
{
    // Row-major y = x W^T is column-major y^T = W x^T: W read transposed.
    // CUBLAS_COMPUTE_32F on fp32 operands is plain fp32 (TF32 would need
    // CUBLAS_COMPUTE_32F_FAST_TF32 or the handle's TF32 math mode, neither
    // set), so the f32 decoder really computes in float32.
    const float alpha = 1.0f, beta = 0.0f;
    cudaDataType dt = t == DEC_CU_F32 ? CUDA_R_32F : CUDA_R_16F;
    return cublas_check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &alpha, w, dt, in, x, dt, in, &beta,
                                     y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                        "decoder product", e);
}

// ---- RMSNorm -------------------------------------------------------------------

template <typename T>
__global__ static void k_rmsnorm(float *x, const float *add, const int32_t *rows, int n, const float *w, float eps,
                                 T *out)
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
        ss += (double)v * v;
    }
    ss = block_sum_d(ss, red);
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    T *o = out + (size_t)blockIdx.x * (size_t)n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        act_put(o, (size_t)i, xr[i] * scale * w[i]);
}

rg_status dec_cu_rmsnorm(cudaStream_t s, float *x, const float *add, const int32_t *rows, int n_rows, int n,
                         const float *w, float eps, void *out, dec_cu_act t, rg_err *e)
{
    if (n_rows <= 0)
        return RG_OK;
    if (t == DEC_CU_F32)
        k_rmsnorm<<<(unsigned)n_rows, ROW_THREADS, 0, s>>>(x, add, rows, n, w, eps, static_cast<float *>(out));
    else
        k_rmsnorm<<<(unsigned)n_rows, ROW_THREADS, 0, s>>>(x, add, rows, n, w, eps, static_cast<cu_f16 *>(out));
    return cu_check(cudaGetLastError(), "RMSNorm kernel", e);
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
__global__ static void k_qkv_rope(const float *qkv, const float *bias, dec_cu_heads g, const float *inv_freq,
                                  const dec_cu_tok *tok, int layer, float *q)
{
    size_t t = blockIdx.x;
    const dec_cu_tok tk = tok[t];
    int hd = g.head_dim, qd = g.n_head * hd, kvd = g.kv_dim, rhalf = g.rope_dim / 2, slots = hd / 2;
    const float *row = qkv + t * (size_t)(qd + 2 * kvd);
    size_t cache_row = ((size_t)layer * tk.cap + (size_t)tk.pos) * (size_t)kvd;
    int n_slots = (g.n_head + g.n_head_kv) * slots;
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
        if (j < rhalf) {
            float ang = (float)tk.pos * inv_freq[j];
            float cs = cosf(ang), sn = sinf(ang);
            float r0 = x0 * cs - x1 * sn, r1 = x0 * sn + x1 * cs;
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

rg_status dec_cu_qkv_rope(cudaStream_t s, const float *qkv, const float *bias, int n, const dec_cu_heads *g,
                          const float *inv_freq, const dec_cu_tok *tok, int layer, float *q, rg_err *e)
{
    if (n <= 0)
        return RG_OK;
    k_qkv_rope<<<(unsigned)n, ROW_THREADS, 0, s>>>(qkv, bias, *g, inv_freq, tok, layer, q);
    return cu_check(cudaGetLastError(), "QKV/RoPE kernel", e);
}

// ---- attention -----------------------------------------------------------------------

__device__ static float cache_get(const void *base, size_t idx, int half)
{
    return half ? __half2float(((const cu_f16 *)base)[idx]) : ((const float *)base)[idx];
}

// q . k[p] * scale over one head; lane l holds the query's values l, l + 32, ...
__device__ static float att_score(const float *qv, const dec_cu_tok &tk, size_t row, int hd, int lane, float scale)
{
    float d = 0.0f;
#pragma unroll
    for (int j = 0; j < ATT_PER_LANE; j++) {
        int i = lane + 32 * j;
        if (i < hd)
            d += qv[j] * cache_get(tk.k, row + (size_t)i, tk.half);
    }
    return warp_sum_f(d) * scale;
}

// Block (h, t): ATT_WARPS warps split the positions 0..pos. Pass 1 finds
// the maximum score and the softmax sum (online, per warp, then combined);
// pass 2 recomputes each score (bit-identical: same warp, same order), so
// each weight can be normalized, and rounded to f16 with an f16 cache,
// before it multiplies V, as the CPU path does. No score scratch: memory
// stays bounded whatever the context.
template <typename T>
__global__ static void k_attention(const float *q, const dec_cu_tok *tok, dec_cu_heads g, int layer, float scale,
                                   T *out)
{
    __shared__ float sm_m[ATT_WARPS], sm_l[ATT_WARPS];
    __shared__ float sm_acc[ATT_WARPS][DEC_CU_MAX_HEAD_DIM];
    int h = blockIdx.x;
    size_t t = blockIdx.y;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const dec_cu_tok tk = tok[t];
    int hd = g.head_dim, qd = g.n_head * hd, kvh = h / (g.n_head / g.n_head_kv);
    float qv[ATT_PER_LANE];
#pragma unroll
    for (int j = 0; j < ATT_PER_LANE; j++) {
        int i = lane + 32 * j;
        qv[j] = i < hd ? q[t * (size_t)qd + (size_t)(h * hd + i)] : 0.0f;
    }
    size_t base = (size_t)layer * tk.cap * (size_t)g.kv_dim + (size_t)kvh * (size_t)hd;
    int np = tk.pos + 1;

    float m = -INFINITY, l = 0.0f;
    for (int p = warp; p < np; p += ATT_WARPS) {
        float s = att_score(qv, tk, base + (size_t)p * (size_t)g.kv_dim, hd, lane, scale);
        if (s > m) {
            l = l * expf(m - s) + 1.0f;
            m = s;
        } else {
            l += expf(s - m);
        }
    }
    if (lane == 0) {
        sm_m[warp] = m;
        sm_l[warp] = l;
    }
    __syncthreads();
    float M = sm_m[0];
    for (int w = 1; w < ATT_WARPS; w++)
        M = fmaxf(M, sm_m[w]);
    float L = 0.0f;
    for (int w = 0; w < ATT_WARPS; w++)
        if (sm_l[w] > 0.0f)
            L += sm_l[w] * expf(sm_m[w] - M);
    float inv = 1.0f / L;

    float acc[ATT_PER_LANE];
#pragma unroll
    for (int j = 0; j < ATT_PER_LANE; j++)
        acc[j] = 0.0f;
    for (int p = warp; p < np; p += ATT_WARPS) {
        size_t row = base + (size_t)p * (size_t)g.kv_dim;
        float wgt = expf(att_score(qv, tk, row, hd, lane, scale) - M) * inv;
        if (tk.half)
            wgt = __half2float(__float2half_rn(wgt));
#pragma unroll
        for (int j = 0; j < ATT_PER_LANE; j++) {
            int i = lane + 32 * j;
            if (i < hd)
                acc[j] += wgt * cache_get(tk.v, row + (size_t)i, tk.half);
        }
    }
#pragma unroll
    for (int j = 0; j < ATT_PER_LANE; j++) {
        int i = lane + 32 * j;
        if (i < hd)
            sm_acc[warp][i] = acc[j];
    }
    __syncthreads();
    T *o = out + t * (size_t)qd + (size_t)h * (size_t)hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float v = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++)
            v += sm_acc[w][i];
        act_put(o, (size_t)i, v);
    }
}

rg_status dec_cu_attention(cudaStream_t s, const float *q, const dec_cu_tok *tok, int n, const dec_cu_heads *g,
                           int layer, void *out, dec_cu_act t, rg_err *e)
{
    if (n <= 0)
        return RG_OK;
    if (g->head_dim > DEC_CU_MAX_HEAD_DIM || n > 65535)
        return rg_error(e, RG_ERR_UNSUPPORTED, "CUDA attention: head size %d or %d tokens beyond the kernel's limits",
                        g->head_dim, n);
    float scale = 1.0f / sqrtf((float)g->head_dim);
    dim3 grid((unsigned)g->n_head, (unsigned)n);
    if (t == DEC_CU_F32)
        k_attention<<<grid, ATT_WARPS * 32, 0, s>>>(q, tok, *g, layer, scale, static_cast<float *>(out));
    else
        k_attention<<<grid, ATT_WARPS * 32, 0, s>>>(q, tok, *g, layer, scale, static_cast<cu_f16 *>(out));
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
