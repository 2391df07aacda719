// ops_cuda_host.cu - model/ops_cuda.h: each kernel on host arrays, for the
// tests that check it against the CPU path.
#include <climits>
#include <cstdlib>
#include <cstring>

#include "model/ops_cuda.cuh"

extern "C" {
#include "model/ops_cuda.h"
}

namespace {

// Device allocations of one call, all freed when it returns.
struct scratch {
    void *p[16];
    int n = 0;
    rg_err *e;
    explicit scratch(rg_err *err) : e(err) {}
    ~scratch()
    {
        for (int i = 0; i < n; i++)
            cudaFree(p[i]);
    }
    scratch(const scratch &) = delete;
    scratch &operator=(const scratch &) = delete;

    template <typename T> rg_status alloc(T **out, size_t count)
    {
        *out = nullptr;
        if (n == 16)
            return rg_error(e, RG_ERR_INTERNAL, "ops_cuda: too many buffers");
        if (count > SIZE_MAX / sizeof(T))
            return rg_error(e, RG_ERR_TOO_LARGE, "ops_cuda: buffer too large");
        void *d = nullptr;
        rg_status st = cu_check(cudaMalloc(&d, count ? count * sizeof(T) : 1), "cudaMalloc", e);
        if (st) {
            cudaGetLastError(); // not sticky: later launch checks must not report it
            return st;
        }
        p[n++] = d;
        *out = static_cast<T *>(d);
        return RG_OK;
    }
    template <typename T> rg_status upload(T **out, const T *host, size_t count)
    {
        rg_status st = alloc(out, count);
        if (st || !count)
            return st;
        return cu_check(cudaMemcpy(*out, host, count * sizeof(T), cudaMemcpyHostToDevice), "upload", e);
    }
    rg_status upload_f16(cu_f16 **out, const float *host, size_t count)
    {
        cu_f16 *tmp = static_cast<cu_f16 *>(malloc(count ? count * sizeof(cu_f16) : 1));
        if (!tmp)
            return rg_error(e, RG_ERR_NOMEM, "ops_cuda: out of memory");
        cu_host_to_f16(host, count, tmp);
        rg_status st = upload(out, tmp, count);
        free(tmp);
        return st;
    }
    template <typename T> rg_status download(T *host, const T *dev, size_t count)
    {
        rg_status st = cu_check(cudaDeviceSynchronize(), "kernel", e);
        if (st || !count)
            return st;
        return cu_check(cudaMemcpy(host, dev, count * sizeof(T), cudaMemcpyDeviceToHost), "download", e);
    }
    rg_status download_f16(float *host, const cu_f16 *dev, size_t count)
    {
        cu_f16 *tmp = static_cast<cu_f16 *>(malloc(count ? count * sizeof(cu_f16) : 1));
        if (!tmp)
            return rg_error(e, RG_ERR_NOMEM, "ops_cuda: out of memory");
        rg_status st = download(tmp, dev, count);
        for (size_t i = 0; !st && i < count; i++)
            host[i] = __half2float(tmp[i]);
        free(tmp);
        return st;
    }
};

rg_status dims_ok(size_t a, size_t b, size_t c, rg_err *e)
{
    if (a > INT_MAX || b > INT_MAX || c > INT_MAX || (b && a > (size_t)INT_MAX / b) ||
        (b && c && a * b > (size_t)INT_MAX / c))
        return rg_error(e, RG_ERR_TOO_LARGE, "ops_cuda: %zu x %zu x %zu is too large", a, b, c);
    return RG_OK;
}

} // namespace

extern "C" rg_status ops_cuda_linear(const float *x, size_t rows, size_t in, const float *w, size_t out, float *y,
                                     rg_err *e)
{
    rg_status st = dims_ok(rows, in > out ? in : out, 1, e);
    if (st || (st = dims_ok(in, out, 1, e)))
        return st;
    scratch s(e);
    cu_f16 *dx = nullptr, *dw = nullptr;
    float *dy = nullptr;
    cublasHandle_t h;
    if ((st = s.upload_f16(&dx, x, rows * in)) || (st = s.upload_f16(&dw, w, out * in)) ||
        (st = s.alloc(&dy, rows * out)))
        return st;
    if ((st = cublas_check(cublasCreate(&h), "cublasCreate", e)))
        return st;
    st = cu_linear(h, dx, (int)rows, (int)in, dw, (int)out, dy, e);
    if (!st)
        st = s.download(y, dy, rows * out);
    cublasDestroy(h);
    return st;
}

extern "C" rg_status ops_cuda_embed_layernorm(const int32_t *ids, const int32_t *types, size_t B, size_t T, size_t H,
                                              const float *word, size_t vocab, const float *pos, size_t n_pos,
                                              const float *type, size_t n_types, const float *gamma,
                                              const float *beta, float eps, float *x, rg_err *e)
{
    rg_status st = dims_ok(B * T, H, 1, e);
    if (st || (st = dims_ok(vocab, H, 1, e)))
        return st;
    if (T > n_pos)
        return rg_error(e, RG_ERR_INVALID, "ops_cuda: %zu positions, table has %zu", T, n_pos);
    for (size_t r = 0; r < B * T; r++)
        if (ids[r] < 0 || (size_t)ids[r] >= vocab || (types && (types[r] < 0 || (size_t)types[r] >= n_types)))
            return rg_error(e, RG_ERR_INVALID, "ops_cuda: id out of range at %zu", r);
    scratch s(e);
    int32_t *di = nullptr, *dt = nullptr;
    float *dwd = nullptr, *dp = nullptr, *dty = nullptr, *dg = nullptr, *db = nullptr, *dx = nullptr;
    if ((st = s.upload(&di, ids, B * T)) || (types && (st = s.upload(&dt, types, B * T))) ||
        (st = s.upload(&dwd, word, vocab * H)) || (st = s.upload(&dp, pos, n_pos * H)) ||
        (st = s.upload(&dty, type, n_types * H)) || (st = s.upload(&dg, gamma, H)) || (st = s.upload(&db, beta, H)) ||
        (st = s.alloc(&dx, B * T * H)))
        return st;
    if ((st = cu_embed_layernorm(0, di, dt, (int)B, (int)T, (int)H, dwd, dp, dty, dg, db, eps, dx, nullptr, e)))
        return st;
    return s.download(x, dx, B * T * H);
}

extern "C" rg_status ops_cuda_add_layernorm(float *x, const float *y, const float *bias, size_t rows, size_t n,
                                            const float *gamma, const float *beta, float eps, rg_err *e)
{
    rg_status st = dims_ok(rows, n, 1, e);
    if (st)
        return st;
    scratch s(e);
    float *dx = nullptr, *dy = nullptr, *dbias = nullptr, *dg = nullptr, *db = nullptr;
    cu_f16 *dxb = nullptr;
    if ((st = s.upload(&dx, x, rows * n)) || (y && (st = s.upload(&dy, y, rows * n))) ||
        (bias && (st = s.upload(&dbias, bias, n))) || (st = s.upload(&dg, gamma, n)) ||
        (st = s.upload(&db, beta, n)) || (st = s.alloc(&dxb, rows * n)))
        return st;
    if ((st = cu_add_layernorm(0, dx, dy, dbias, (int)rows, (int)n, dg, db, eps, dxb, e)))
        return st;
    return s.download(x, dx, rows * n);
}

extern "C" rg_status ops_cuda_bias_gelu(const float *y, const float *bias, size_t rows, size_t n, float *out,
                                        rg_err *e)
{
    rg_status st = dims_ok(rows, n, 1, e);
    if (st)
        return st;
    scratch s(e);
    float *dy = nullptr, *dbias = nullptr;
    cu_f16 *dout = nullptr;
    if ((st = s.upload(&dy, y, rows * n)) || (bias && (st = s.upload(&dbias, bias, n))) ||
        (st = s.alloc(&dout, rows * n)))
        return st;
    if ((st = cu_bias_gelu(0, dy, dbias, (int)rows, (int)n, dout, e)))
        return st;
    return s.download_f16(out, dout, rows * n);
}

extern "C" rg_status ops_cuda_attention(const float *q, const float *k, const float *v, const int32_t *mask, size_t B,
                                        size_t T, size_t H, size_t heads, float *ctx, rg_err *e)
{
    rg_status st = dims_ok(B * T, 3 * H, 1, e);
    if (st || (st = dims_ok(B * heads, T, T, e)))
        return st;
    if (heads == 0 || H % heads)
        return rg_error(e, RG_ERR_INVALID, "ops_cuda: %zu heads do not divide %zu", heads, H);
    size_t R = B * T;
    float *qkv = static_cast<float *>(malloc(R * 3 * H * sizeof(float)));
    if (!qkv)
        return rg_error(e, RG_ERR_NOMEM, "ops_cuda: out of memory");
    for (size_t r = 0; r < R; r++) {
        memcpy(qkv + r * 3 * H, q + r * H, H * sizeof(float));
        memcpy(qkv + r * 3 * H + H, k + r * H, H * sizeof(float));
        memcpy(qkv + r * 3 * H + 2 * H, v + r * H, H * sizeof(float));
    }
    scratch s(e);
    float *dqkv = nullptr;
    int32_t *dm = nullptr;
    cu_f16 *dctxb = nullptr;
    cu_attn_bufs b = {};
    size_t S = B * heads * T * T;
    st = s.upload(&dqkv, qkv, R * 3 * H);
    free(qkv);
    if (st || (st = s.upload(&dm, mask, R)) || (st = s.alloc(&b.qh, R * H)) || (st = s.alloc(&b.kh, R * H)) ||
        (st = s.alloc(&b.vh, R * H)) || (st = s.alloc(&b.scores, S)) || (st = s.alloc(&b.probs, S)) ||
        (st = s.alloc(&b.ctx, R * H)) || (st = s.alloc(&dctxb, R * H)))
        return st;
    cublasHandle_t h;
    if ((st = cublas_check(cublasCreate(&h), "cublasCreate", e)))
        return st;
    st = cu_attention(h, 0, dqkv, nullptr, dm, (int)B, (int)T, (int)H, (int)heads, &b, dctxb, e);
    if (!st)
        st = s.download_f16(ctx, dctxb, R * H);
    cublasDestroy(h);
    return st;
}

extern "C" rg_status ops_cuda_pool(const float *hidden, const int32_t *mask, size_t B, size_t T, size_t H, int cls,
                                   int normalize, float *out, rg_err *e)
{
    rg_status st = dims_ok(B * T, H, 1, e);
    if (st)
        return st;
    scratch s(e);
    float *dh = nullptr, *dout = nullptr;
    int32_t *dm = nullptr;
    if ((st = s.upload(&dh, hidden, B * T * H)) || (st = s.upload(&dm, mask, B * T)) || (st = s.alloc(&dout, B * H)))
        return st;
    if ((st = cu_pool(0, dh, dm, (int)B, (int)T, (int)H, cls, normalize, dout, e)))
        return st;
    return s.download(out, dout, B * H);
}
