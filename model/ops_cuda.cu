// ops_cuda.cu - the encoder's CUDA kernels and their launchers (see
// ops_cuda.cuh). Row kernels run one 256-thread block per row with the row
// cached in shared memory, so a row is read from global memory once.
#include "model/ops_cuda.cuh"

#include <cmath>
#include <cstring>

extern "C" {
#include "model/quant.h" // f32_to_fp16
}

#define ROW_THREADS 256
#define EW_THREADS 256
#define SOFTMAX_WARPS 8

rg_status cu_check(cudaError_t err, const char *what, rg_err *e)
{
    if (err == cudaSuccess)
        return RG_OK;
    rg_status st = err == cudaErrorMemoryAllocation ? RG_ERR_NOMEM : RG_ERR_INTERNAL;
    return rg_error(e, st, "CUDA: %s: %s", what, cudaGetErrorString(err));
}

rg_status cublas_check(cublasStatus_t st, const char *what, rg_err *e)
{
    if (st == CUBLAS_STATUS_SUCCESS)
        return RG_OK;
    return rg_error(e, st == CUBLAS_STATUS_ALLOC_FAILED ? RG_ERR_NOMEM : RG_ERR_INTERNAL, "cuBLAS: %s: %s", what,
                    cublasGetStatusString(st));
}

void cu_host_to_f16(const float *src, size_t n, cu_f16 *dst)
{
    for (size_t i = 0; i < n; i++) {
        __half_raw raw;
        raw.x = f32_to_fp16(src[i]);
        dst[i] = cu_f16(raw);
    }
}

// ---- reductions ------------------------------------------------------------

__device__ static float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ static float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block; every thread gets the result. red holds 33 floats.
__device__ static float block_sum(float v, float *red)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads(); // red may still be read by a previous call
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < nwarps ? red[lane] : 0.0f;
        w = warp_sum(w);
        if (lane == 0)
            red[32] = w;
    }
    __syncthreads();
    return red[32];
}

// Normalizes row[0..n) (shared) and writes it out; all threads of the block.
__device__ static void layernorm_row(const float *row, int n, const float *gamma, const float *beta, float eps,
                                     float *out, cu_f16 *outb, float *red)
{
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        s += row[i];
    float mean = block_sum(s, red) / (float)n;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float d = row[i] - mean;
        ss += d * d;
    }
    float var = block_sum(ss, red) / (float)n;
    float inv = 1.0f / sqrtf(var + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float o = (row[i] - mean) * inv * gamma[i] + beta[i];
        out[i] = o;
        if (outb)
            outb[i] = __float2half_rn(o);
    }
}

// ---- kernels -----------------------------------------------------------------

__global__ static void k_embed_layernorm(const int32_t *ids, const int32_t *types, int T, int H, const float *word,
                                         const float *pos, const float *type, const float *gamma, const float *beta,
                                         float eps, float *x, cu_f16 *xb)
{
    extern __shared__ float row[];
    __shared__ float red[33];
    size_t r = blockIdx.x;
    int t = (int)(r % (size_t)T);
    const float *we = word + (size_t)ids[r] * H;
    const float *pe = pos + (size_t)t * H;
    const float *te = type + (size_t)(types ? types[r] : 0) * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x)
        row[i] = we[i] + pe[i] + te[i];
    __syncthreads();
    layernorm_row(row, H, gamma, beta, eps, x + r * H, xb ? xb + r * H : nullptr, red);
}

__global__ static void k_add_layernorm(float *x, const float *y, const float *bias, int n, const float *gamma,
                                       const float *beta, float eps, cu_f16 *xb)
{
    extern __shared__ float row[];
    __shared__ float red[33];
    size_t r = blockIdx.x;
    float *xr = x + r * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = xr[i];
        if (y)
            v += y[r * n + i] + (bias ? bias[i] : 0.0f);
        row[i] = v;
    }
    __syncthreads();
    layernorm_row(row, n, gamma, beta, eps, xr, xb ? xb + r * n : nullptr, red);
}

__global__ static void k_bias_gelu(const float *y, const float *bias, size_t rows, int n, cu_f16 *out)
{
    const float inv_sqrt2 = 0.70710678118654752440f;
    size_t total = rows * (size_t)n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float v = y[i] + (bias ? bias[i % (size_t)n] : 0.0f);
        out[i] = __float2half_rn(0.5f * v * (1.0f + erff(v * inv_sqrt2)));
    }
}

// qkv [B*T, 3H] + bias -> qh, kh, vh [B, heads, T, d] fp16.
__global__ static void k_split_heads(const float *qkv, const float *bias3, int B, int T, int H, int heads, cu_f16 *qh,
                                     cu_f16 *kh, cu_f16 *vh)
{
    int d = H / heads;
    size_t total = (size_t)B * T * 3 * H;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (3 * (size_t)H);
        int c = (int)(i % (3 * (size_t)H));
        int which = c / H, cc = c % H, h = cc / d, j = cc % d;
        size_t b = r / T, t = r % T;
        float v = qkv[i] + (bias3 ? bias3[c] : 0.0f);
        cu_f16 *dst = which == 0 ? qh : which == 1 ? kh : vh;
        dst[((b * heads + h) * T + t) * d + j] = __float2half_rn(v);
    }
}

// One warp per score row (b, h, query): masked, scaled softmax over keys.
__global__ static void k_masked_softmax(const float *scores, const int32_t *mask, size_t rows, int T, int heads,
                                        float scale, cu_f16 *probs)
{
    size_t row = blockIdx.x * (size_t)SOFTMAX_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    size_t b = row / ((size_t)heads * T);
    const int32_t *m = mask + b * T;
    const float *s = scores + row * T;
    cu_f16 *p = probs + row * T;
    float mx = -INFINITY;
    for (int j = lane; j < T; j += 32)
        if (m[j])
            mx = fmaxf(mx, s[j] * scale);
    mx = warp_max(mx);
    if (mx == -INFINITY) { // no real key: zero weights give a zero context
        for (int j = lane; j < T; j += 32)
            p[j] = __float2half_rn(0.0f);
        return;
    }
    float sum = 0.0f;
    for (int j = lane; j < T; j += 32)
        if (m[j])
            sum += expf(s[j] * scale - mx);
    sum = warp_sum(sum);
    float inv = 1.0f / sum;
    for (int j = lane; j < T; j += 32)
        p[j] = __float2half_rn(m[j] ? expf(s[j] * scale - mx) * inv : 0.0f);
}

// ctx [B, heads, T, d] fp32 -> ctxb [B*T, H] fp16.
__global__ static void k_merge_heads(const float *ctx, int B, int T, int H, int heads, cu_f16 *ctxb)
{
    int d = H / heads;
    size_t total = (size_t)B * T * H;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / H;
        int c = (int)(i % H), h = c / d, j = c % d;
        size_t b = r / T, t = r % T;
        ctxb[i] = __float2half_rn(ctx[((b * heads + h) * T + t) * d + j]);
    }
}

__global__ static void k_pool(const float *hidden, const int32_t *mask, int T, int H, int cls, int normalize,
                              float *out)
{
    extern __shared__ float row[];
    __shared__ float red[33];
    size_t b = blockIdx.x;
    const float *hb = hidden + b * T * H;
    const int32_t *m = mask + b * T;
    int cnt = 0;
    for (int t = 0; t < T; t++)
        cnt += m[t] != 0;
    float inv_cnt = cnt ? 1.0f / (float)cnt : 0.0f;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        float v;
        if (cls) {
            v = hb[i];
        } else {
            float s = 0.0f;
            for (int t = 0; t < T; t++)
                if (m[t])
                    s += hb[(size_t)t * H + i];
            v = s * inv_cnt;
        }
        row[i] = v;
        ss += v * v;
    }
    float norm = normalize ? sqrtf(block_sum(ss, red)) : 1.0f;
    float inv = 1.0f / fmaxf(norm, 1e-12f);
    for (int i = threadIdx.x; i < H; i += blockDim.x)
        out[b * H + i] = row[i] * inv;
}

// ---- launchers -------------------------------------------------------------------

static unsigned ew_blocks(size_t n)
{
    size_t b = (n + EW_THREADS - 1) / EW_THREADS;
    if (b > 65535u * 8u) // grid-stride loops cover the rest
        b = 65535u * 8u;
    return (unsigned)(b ? b : 1);
}

static rg_status row_size_ok(int n, const char *what, rg_err *e)
{
    if (n <= 0 || n > CU_MAX_ROW)
        return rg_error(e, RG_ERR_UNSUPPORTED, "CUDA %s: row of %d values (the kernel caches at most %d)", what, n,
                        CU_MAX_ROW);
    return RG_OK;
}

rg_status cu_linear(cublasHandle_t h, const cu_f16 *x, int rows, int in, const cu_f16 *w, int out, float *y,
                    rg_err *e)
{
    // Row-major y = x W^T is column-major y^T = W x^T: W read transposed.
    const float alpha = 1.0f, beta = 0.0f;
    return cublas_check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &alpha, w, CUDA_R_16F, in, x,
                                     CUDA_R_16F, in, &beta, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT),
                        "linear layer", e);
}

rg_status cu_embed_layernorm(cudaStream_t s, const int32_t *ids, const int32_t *types, int B, int T, int H,
                             const float *word, const float *pos, const float *type, const float *gamma,
                             const float *beta, float eps, float *x, cu_f16 *xb, rg_err *e)
{
    rg_status st = row_size_ok(H, "embeddings", e);
    if (st)
        return st;
    k_embed_layernorm<<<(unsigned)B * (unsigned)T, ROW_THREADS, (size_t)H * sizeof(float), s>>>(
        ids, types, T, H, word, pos, type, gamma, beta, eps, x, xb);
    return cu_check(cudaGetLastError(), "embedding kernel", e);
}

rg_status cu_add_layernorm(cudaStream_t s, float *x, const float *y, const float *bias, int rows, int n,
                           const float *gamma, const float *beta, float eps, cu_f16 *xb, rg_err *e)
{
    rg_status st = row_size_ok(n, "layer norm", e);
    if (st)
        return st;
    k_add_layernorm<<<(unsigned)rows, ROW_THREADS, (size_t)n * sizeof(float), s>>>(x, y, bias, n, gamma, beta, eps,
                                                                                   xb);
    return cu_check(cudaGetLastError(), "layer norm kernel", e);
}

rg_status cu_bias_gelu(cudaStream_t s, const float *y, const float *bias, int rows, int n, cu_f16 *out, rg_err *e)
{
    size_t total = (size_t)rows * (size_t)n;
    k_bias_gelu<<<ew_blocks(total), EW_THREADS, 0, s>>>(y, bias, (size_t)rows, n, out);
    return cu_check(cudaGetLastError(), "GELU kernel", e);
}

rg_status cu_attention(cublasHandle_t h, cudaStream_t s, const float *qkv, const float *bias3, const int32_t *mask,
                       int B, int T, int H, int heads, const cu_attn_bufs *buf, cu_f16 *ctxb, rg_err *e)
{
    int d = H / heads, BH = B * heads;
    size_t R = (size_t)B * T;
    k_split_heads<<<ew_blocks(R * 3 * (size_t)H), EW_THREADS, 0, s>>>(qkv, bias3, B, T, H, heads, buf->qh, buf->kh,
                                                                     buf->vh);
    rg_status st = cu_check(cudaGetLastError(), "attention head split kernel", e);
    if (st)
        return st;
    const float one = 1.0f, zero = 0.0f;
    long long sqk = (long long)T * d, sss = (long long)T * T;
    // scores[bh] (row-major [query, key]) = Q K^T, i.e. column-major K Q^T.
    st = cublas_check(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, T, T, d, &one, buf->kh, CUDA_R_16F, d,
                                                 sqk, buf->qh, CUDA_R_16F, d, sqk, &zero, buf->scores, CUDA_R_32F, T,
                                                 sss, BH, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "attention scores", e);
    if (st)
        return st;
    size_t rows = (size_t)BH * T;
    unsigned blocks = (unsigned)((rows + SOFTMAX_WARPS - 1) / SOFTMAX_WARPS);
    k_masked_softmax<<<blocks, SOFTMAX_WARPS * 32, 0, s>>>(buf->scores, mask, rows, T, heads,
                                                           1.0f / sqrtf((float)d), buf->probs);
    if ((st = cu_check(cudaGetLastError(), "softmax kernel", e)))
        return st;
    // ctx[bh] (row-major [query, d]) = P V, i.e. column-major V^T P^T.
    st = cublas_check(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, d, T, T, &one, buf->vh, CUDA_R_16F, d,
                                                 sqk, buf->probs, CUDA_R_16F, T, sss, &zero, buf->ctx, CUDA_R_32F, d,
                                                 sqk, BH, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "attention context", e);
    if (st)
        return st;
    k_merge_heads<<<ew_blocks(R * (size_t)H), EW_THREADS, 0, s>>>(buf->ctx, B, T, H, heads, ctxb);
    return cu_check(cudaGetLastError(), "attention head merge kernel", e);
}

rg_status cu_pool(cudaStream_t s, const float *hidden, const int32_t *mask, int B, int T, int H, int cls,
                  int normalize, float *out, rg_err *e)
{
    rg_status st = row_size_ok(H, "pooling", e);
    if (st)
        return st;
    k_pool<<<(unsigned)B, ROW_THREADS, (size_t)H * sizeof(float), s>>>(hidden, mask, T, H, cls, normalize, out);
    return cu_check(cudaGetLastError(), "pooling kernel", e);
}
