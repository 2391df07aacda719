// decoder_cuda_ops.cu - model/decoder_cuda_ops.h: each decoder kernel on
// host arrays, for the tests that check it against the CPU computation.
#include <climits>
#include <cstdlib>
#include <cstring>

#include "model/decoder_cuda_kernels.cuh"

extern "C" {
#include "model/decoder_cuda_ops.h"
#include "model/quant.h"
}

namespace {

// Device allocations of one call, all freed when it returns.
struct dev_scratch {
    enum { MAX = 64 };
    void *p[MAX];
    int n = 0;
    rg_err *e;
    explicit dev_scratch(rg_err *err) : e(err) {}
    ~dev_scratch()
    {
        cudaDeviceSynchronize();
        for (int i = 0; i < n; i++)
            cudaFree(p[i]);
    }
    dev_scratch(const dev_scratch &) = delete;
    dev_scratch &operator=(const dev_scratch &) = delete;

    rg_status alloc(void **out, size_t bytes)
    {
        *out = nullptr;
        if (n == MAX)
            return rg_error(e, RG_ERR_INTERNAL, "decoder_cuda_ops: too many buffers");
        rg_status st = cu_check(cudaMalloc(out, bytes ? bytes : 1), "cudaMalloc", e);
        if (st) {
            cudaGetLastError();
            return st;
        }
        p[n++] = *out;
        return RG_OK;
    }
    template <typename T> rg_status upload(T **out, const T *host, size_t count)
    {
        void *d;
        rg_status st = alloc(&d, count * sizeof(T));
        *out = static_cast<T *>(d);
        if (st || !count || !host)
            return st;
        return cu_check(cudaMemcpy(d, host, count * sizeof(T), cudaMemcpyHostToDevice), "upload", e);
    }
    rg_status download(void *host, const void *dev, size_t bytes)
    {
        rg_status st = cu_check(cudaDeviceSynchronize(), "kernel", e);
        if (st || !bytes)
            return st;
        return cu_check(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost), "download", e);
    }
    // count values of an activation buffer of type t into floats
    rg_status download_act(float *host, const void *dev, size_t count, dec_cu_act t)
    {
        if (t == DEC_CU_F32)
            return download(host, dev, count * sizeof(float));
        uint16_t *tmp = static_cast<uint16_t *>(malloc(count ? count * sizeof(uint16_t) : 1));
        if (!tmp)
            return rg_error(e, RG_ERR_NOMEM, "decoder_cuda_ops: out of memory");
        rg_status st = download(tmp, dev, count * sizeof(uint16_t));
        for (size_t i = 0; !st && i < count; i++) {
            __half_raw r;
            r.x = tmp[i];
            host[i] = __half2float(cu_f16(r));
        }
        free(tmp);
        return st;
    }
};

bool heads_ok(const dec_cuda_ops_heads *g)
{
    return g->n_head_kv && g->n_head % g->n_head_kv == 0 && g->head_dim <= DEC_CU_MAX_HEAD_DIM &&
           g->head_dim % 2 == 0 && g->rope_dim % 2 == 0 && g->rope_dim <= g->head_dim && g->n_head <= 4096;
}

dec_cu_heads to_heads(const dec_cuda_ops_heads *g)
{
    dec_cu_heads h = {(int)g->n_head, (int)g->n_head_kv, (int)g->head_dim, (int)g->rope_dim, g->neox,
                      (int)(g->n_head_kv * g->head_dim)};
    return h;
}

size_t cache_bytes(const dec_cuda_ops_cache *c, size_t n_layer, size_t kvd)
{
    return n_layer * c->cap * kvd * (c->half ? sizeof(uint16_t) : sizeof(float));
}

// Room on the device for rows of width values quantized for weights of
// type, and the dec_cu_q8_out asking a kernel for them (q8 NULL: none).
rg_status q8_room(dev_scratch &s, uint32_t type, const void *q8, size_t rows, size_t width, dec_cu_q8_out *qo,
                  size_t *bytes, rg_err *e)
{
    *qo = dec_cu_q8_out{DEC_Q8_NONE, nullptr};
    *bytes = 0;
    if (!q8)
        return RG_OK;
    int kind = dec_cu_q8_kind_of(type);
    size_t rb = width <= INT_MAX ? dec_cu_q8_row_bytes(kind, (int)width) : 0;
    if (!rb)
        return rg_error(e, RG_ERR_INVALID, "8-bit activations for type %u, %zu values a row", (unsigned)type, width);
    *bytes = rows * rb;
    qo->kind = kind;
    return s.alloc(&qo->buf, *bytes);
}

} // namespace

extern "C" rg_status dec_cuda_ops_rmsnorm(const float *x, const float *add, size_t rows, size_t n, const float *w,
                                          float eps, int f32, float *out, float *x_after, uint32_t q8_type, void *q8,
                                          rg_err *e)
{
    if (rows > INT_MAX || n > INT_MAX || (q8 && !f32))
        return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_rmsnorm: too large, or 8-bit output without f32");
    dev_scratch s(e);
    float *dx, *da = nullptr, *dw;
    float *dout; // room for either type
    dec_cu_act t = f32 ? DEC_CU_F32 : DEC_CU_F16;
    dec_cu_q8_out qo;
    size_t q8_bytes;
    rg_status st;
    if ((st = s.upload(&dx, x, rows * n)) || (add && (st = s.upload(&da, add, rows * n))) ||
        (st = s.upload(&dw, w, n)) || (st = s.upload(&dout, (const float *)nullptr, rows * n)) ||
        (st = q8_room(s, q8_type, q8, rows, n, &qo, &q8_bytes, e)) ||
        (st = dec_cu_rmsnorm(nullptr, dx, da, nullptr, (int)rows, (int)n, dw, eps, dout, t, &qo, e)) ||
        (st = s.download_act(out, dout, rows * n, t)) || (q8 && (st = s.download(q8, qo.buf, q8_bytes))))
        return st;
    return x_after ? s.download(x_after, dx, rows * n * sizeof(float)) : RG_OK;
}

extern "C" rg_status dec_cuda_ops_qkv_rope(const float *qkv, const float *bias, size_t n, const dec_cuda_ops_heads *g,
                                           const float *inv_freq, const size_t *pos, dec_cuda_ops_cache *cache,
                                           size_t n_layer, size_t layer, float *q, rg_err *e)
{
    if (!heads_ok(g) || n == 0 || n > 65535 || layer >= n_layer)
        return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_qkv_rope: bad geometry");
    size_t qd = g->n_head * g->head_dim, kvd = g->n_head_kv * g->head_dim, W = qd + 2 * kvd;
    for (size_t t = 0; t < n; t++)
        if (pos[t] >= cache->cap)
            return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_qkv_rope: position beyond the cache");
    dev_scratch s(e);
    dec_cu_heads h = to_heads(g);
    float *dqkv, *dbias = nullptr, *dfreq, *dq;
    char *dk, *dv;
    dec_cu_tok *dtok;
    size_t cb = cache_bytes(cache, n_layer, kvd);
    dec_cu_tok *ht = static_cast<dec_cu_tok *>(calloc(n, sizeof *ht));
    if (!ht)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    rg_status st;
    if ((st = s.upload(&dqkv, qkv, n * W)) || (bias && (st = s.upload(&dbias, bias, W))) ||
        (st = s.upload(&dfreq, inv_freq, g->rope_dim / 2 ? g->rope_dim / 2 : 1)) ||
        (st = s.upload(&dq, (const float *)nullptr, n * qd)) ||
        (st = s.upload(&dk, (const char *)cache->k, cb)) || (st = s.upload(&dv, (const char *)cache->v, cb)))
        goto out;
    for (size_t t = 0; t < n; t++) {
        ht[t].k = dk;
        ht[t].v = dv;
        ht[t].cap = cache->cap;
        ht[t].pos = (int32_t)pos[t];
        ht[t].half = cache->half;
    }
    if ((st = s.upload(&dtok, (const dec_cu_tok *)ht, n)) ||
        (st = dec_cu_qkv_rope(nullptr, dqkv, dbias, nullptr, 0.0f, (int)n, &h, dfreq, nullptr, dtok, (int)layer, dq,
                              e)) ||
        (st = s.download(q, dq, n * qd * sizeof(float))) || (st = s.download(cache->k, dk, cb)) ||
        (st = s.download(cache->v, dv, cb)))
        goto out;
out:
    free(ht);
    return st;
}

// Each token's cache uploaded (once per distinct cache) into ht; one: the
// decoder's "lone token" (no neighbour in the call shares its cache).
static rg_status upload_tokens(dev_scratch &s, const dec_cuda_ops_cache *const *caches, const size_t *pos, size_t n,
                               size_t n_layer, size_t kvd, dec_cu_tok *ht, rg_err *e)
{
    for (size_t t = 0; t < n; t++) {
        if (pos[t] >= caches[t]->cap)
            return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_attention: position beyond the cache");
        size_t same = t;
        for (size_t u = 0; u < t; u++)
            if (caches[u] == caches[t]) {
                same = u;
                break;
            }
        if (same < t) { // a cache shared with an earlier token: uploaded once
            ht[t].k = ht[same].k;
            ht[t].v = ht[same].v;
        } else {
            size_t cb = cache_bytes(caches[t], n_layer, kvd);
            char *dk, *dv;
            rg_status st;
            if ((st = s.upload(&dk, (const char *)caches[t]->k, cb)) ||
                (st = s.upload(&dv, (const char *)caches[t]->v, cb)))
                return st;
            ht[t].k = dk;
            ht[t].v = dv;
        }
        ht[t].cap = caches[t]->cap;
        ht[t].pos = (int32_t)pos[t];
        ht[t].half = caches[t]->half;
        ht[t].one = !(t > 0 && caches[t - 1] == caches[t]) && !(t + 1 < n && caches[t + 1] == caches[t]);
    }
    return RG_OK;
}

// The fast kernels (ggml 0) with fp16 or fp32 output, or the CPU
// arithmetic's (ggml 1, fp32 output).
static rg_status attention_call(const float *q, size_t n, const dec_cuda_ops_heads *g,
                                const dec_cuda_ops_cache *const *caches, const size_t *pos, size_t n_layer,
                                size_t layer, int f32, int split, int ggml, float *out, uint32_t q8_type, void *q8,
                                rg_err *e)
{
    if (!heads_ok(g) || n == 0 || n > 65535 || layer >= n_layer)
        return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_attention: bad geometry");
    size_t qd = g->n_head * g->head_dim, kvd = g->n_head_kv * g->head_dim;
    dev_scratch s(e);
    dec_cu_heads h = to_heads(g);
    dec_cu_tok *ht = static_cast<dec_cu_tok *>(calloc(n, sizeof *ht));
    if (!ht)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    float *dq, *dout; // dout: room for either type
    void *att = nullptr;
    dec_cu_act t = f32 || ggml ? DEC_CU_F32 : DEC_CU_F16;
    dec_cu_tok *dtok;
    dec_cu_q8_out qo;
    size_t q8_bytes;
    rg_status st = upload_tokens(s, caches, pos, n, n_layer, kvd, ht, e);
    if (!st && ggml) // a prefill's tokens in runs, as the decoder groups them
        dec_cu_attention_ggml_runs(ht, (int)n, &h, (int)n);
    if (!st && !((st = s.upload(&dq, q, n * qd)) || (st = s.upload(&dout, (const float *)nullptr, n * qd)) ||
                 (st = s.upload(&dtok, (const dec_cu_tok *)ht, n)) ||
                 (split && (st = s.alloc(&att, dec_cu_attention_scratch_bytes(&h, (int)n)))) ||
                 (st = q8_room(s, q8_type, ggml ? q8 : nullptr, n, qd, &qo, &q8_bytes, e)) ||
                 (st = ggml ? dec_cu_attention_ggml(nullptr, dq, dtok, (int)n, &h, (int)layer, dout, &qo, e)
                            : dec_cu_attention(nullptr, dq, dtok, (int)n, &h, (int)layer, dout, t, att, (int)n, e))))
        st = s.download_act(out, dout, n * qd, t);
    if (!st && ggml && q8)
        st = s.download(q8, qo.buf, q8_bytes);
    free(ht);
    return st;
}

extern "C" rg_status dec_cuda_ops_attention(const float *q, size_t n, const dec_cuda_ops_heads *g,
                                            const dec_cuda_ops_cache *const *caches, const size_t *pos,
                                            size_t n_layer, size_t layer, int f32, int split, float *out,
                                            rg_err *e)
{
    return attention_call(q, n, g, caches, pos, n_layer, layer, f32, split, 0, out, 0, nullptr, e);
}

extern "C" rg_status dec_cuda_ops_attention_ggml(const float *q, size_t n, const dec_cuda_ops_heads *g,
                                                 const dec_cuda_ops_cache *const *caches, const size_t *pos,
                                                 size_t n_layer, size_t layer, float *out, uint32_t q8_type,
                                                 void *q8, rg_err *e)
{
    return attention_call(q, n, g, caches, pos, n_layer, layer, 1, 0, 1, out, q8_type, q8, e);
}

extern "C" rg_status dec_cuda_ops_swiglu_ggml(const float *gu, size_t n, size_t F, float *out, uint32_t q8_type,
                                              void *q8, rg_err *e)
{
    dev_scratch s(e);
    float *dgu, *dout;
    dec_cu_q8_out qo;
    size_t q8_bytes;
    rg_status st;
    if ((st = s.upload(&dgu, gu, n * 2 * F)) || (st = s.upload(&dout, (const float *)nullptr, n * F)) ||
        (st = q8_room(s, q8_type, q8, n, F, &qo, &q8_bytes, e)) ||
        (st = dec_cu_swiglu_ggml(nullptr, dgu, (int)n, (int)F, dout, &qo, e)) ||
        (q8 && (st = s.download(q8, qo.buf, q8_bytes))))
        return st;
    return s.download(out, dout, n * F * sizeof(float));
}

extern "C" rg_status dec_cuda_ops_swiglu(const float *gu, size_t n, size_t F, int f32, float *out, rg_err *e)
{
    if (n > INT_MAX || F > INT_MAX / 2)
        return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_swiglu: too large");
    dev_scratch s(e);
    float *dgu, *dout; // dout: room for either type
    dec_cu_act t = f32 ? DEC_CU_F32 : DEC_CU_F16;
    rg_status st;
    if ((st = s.upload(&dgu, gu, n * 2 * F)) || (st = s.upload(&dout, (const float *)nullptr, n * F)) ||
        (st = dec_cu_swiglu(nullptr, dgu, (int)n, (int)F, dout, t, e)))
        return st;
    return s.download_act(out, dout, n * F, t);
}

extern "C" rg_status dec_cuda_ops_linear_parts(const dec_cuda_ops_part *parts, size_t n_parts, const uint16_t *x,
                                               size_t rows, size_t in, int matvec_max, float *y, int *on_kernel,
                                               rg_err *e)
{
    unsigned long long before = dec_cu_matvec_launches();
    if (n_parts < 1 || n_parts > DEC_CU_MAX_PARTS || rows > INT_MAX || in > INT_MAX)
        return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_linear_parts: %zu parts, %zu x %zu", n_parts, rows, in);
    dev_scratch s(e);
    dec_cu_mat m = {};
    m.cols = (int)in;
    size_t most_blocks = 0;
    rg_status st = RG_OK;
    for (size_t i = 0; i < n_parts && !st; i++) {
        const dec_cuda_ops_part *p = &parts[i];
        int blocks = dec_cu_blocks_on_device(p->type);
        if ((!blocks && p->type != GGML_TYPE_F16) || (blocks && in % 32) || p->rows > (size_t)(INT_MAX / 4))
            return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_linear_parts: part %zu of type %u", i, (unsigned)p->type);
        char *dw;
        st = s.upload(&dw, static_cast<const char *>(p->w), p->rows * p->row_bytes);
        m.part[i] = dec_cu_part{dw, p->type, (int)p->rows, p->row_bytes};
        m.rows += (int)p->rows;
        if (blocks && p->rows > most_blocks)
            most_blocks = p->rows;
    }
    m.n_part = (int)n_parts;
    uint16_t *dx;
    float *dy;
    cublasHandle_t h = nullptr;
    dec_cu_scratch sc = {nullptr, 0};
    if (st || (st = s.upload(&dx, x, rows * in)) || (st = s.upload(&dy, (const float *)nullptr, rows * m.rows)) ||
        (st = cublas_check(cublasCreate(&h), "cublasCreate", e)))
        return st;
    if (most_blocks) { // room for a third of the largest part's rows: several unpacking rounds
        sc.elems = (most_blocks / 3 + 1) * in;
        st = s.alloc((void **)&sc.buf, sc.elems * sizeof(cu_f16));
    }
    dec_cu_prod P = {h, nullptr, matvec_max, DEC_CU_F16, 0, sc, nullptr, 0};
    if (!st)
        st = dec_cu_linear(&P, dx, (int)rows, &m, DEC_Q8_NONE, dy, e);
    if (!st)
        st = s.download(y, dy, rows * (size_t)m.rows * sizeof(float));
    cublasDestroy(h);
    if (on_kernel) // the tests run one product at a time
        *on_kernel = dec_cu_matvec_launches() != before;
    return st;
}

extern "C" rg_status dec_cuda_ops_dequant(uint32_t type, const void *w, size_t row_bytes, size_t rows, size_t cols,
                                          int f32, float *out, rg_err *e)
{
    if (rows > INT_MAX || cols > INT_MAX || !dec_cu_blocks_on_device(type) || cols % 32)
        return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_dequant: type %u, %zu x %zu", (unsigned)type, rows, cols);
    dev_scratch s(e);
    char *dw;
    float *dout; // room for either type
    dec_cu_act t = f32 ? DEC_CU_F32 : DEC_CU_F16;
    rg_status st;
    if ((st = s.upload(&dw, static_cast<const char *>(w), rows * row_bytes)) ||
        (st = s.upload(&dout, (const float *)nullptr, rows * cols)) ||
        (st = dec_cu_dequant(nullptr, type, dw, row_bytes, (int)rows, (int)cols, dout, t, e)))
        return st;
    return s.download_act(out, dout, rows * cols, t);
}

extern "C" rg_status dec_cuda_ops_quantize_act(uint32_t type, const float *x, size_t rows, size_t in, void *out,
                                               rg_err *e)
{
    int kind = dec_cu_q8_kind_of(type);
    size_t rb = in <= INT_MAX ? dec_cu_q8_row_bytes(kind, (int)in) : 0;
    if (!rb || rows > INT_MAX)
        return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_quantize_act: type %u, %zu x %zu", (unsigned)type, rows, in);
    dev_scratch s(e);
    float *dx;
    void *dout;
    rg_status st;
    if ((st = s.upload(&dx, x, rows * in)) || (st = s.alloc(&dout, rows * rb)) ||
        (st = dec_cu_quantize_act(nullptr, kind, dx, (int)rows, (int)in, dout, e)))
        return st;
    return s.download(out, dout, rows * rb);
}

extern "C" rg_status dec_cuda_ops_linear_q8(const dec_cuda_ops_part *parts, size_t n_parts, const float *x,
                                            size_t rows, size_t in, float *y, rg_err *e)
{
    if (n_parts < 1 || n_parts > DEC_CU_MAX_PARTS || rows > INT_MAX || in > INT_MAX)
        return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_linear_q8: %zu parts, %zu x %zu", n_parts, rows, in);
    dev_scratch s(e);
    dec_cu_mat m = {};
    m.cols = (int)in;
    size_t q8_row = 0;
    rg_status st = RG_OK;
    for (size_t i = 0; i < n_parts && !st; i++) {
        const dec_cuda_ops_part *p = &parts[i];
        int kind = dec_cu_q8_kind_of(p->type);
        if ((!kind && !dec_cu_float_type(p->type)) || (kind && !dec_cu_q8_row_bytes(kind, (int)in)) ||
            p->rows > (size_t)(INT_MAX / 4))
            return rg_error(e, RG_ERR_INVALID, "dec_cuda_ops_linear_q8: part %zu of type %u", i, (unsigned)p->type);
        if (kind && dec_cu_q8_row_bytes(kind, (int)in) > q8_row)
            q8_row = dec_cu_q8_row_bytes(kind, (int)in);
        char *dw;
        st = s.upload(&dw, static_cast<const char *>(p->w), p->rows * p->row_bytes);
        m.part[i] = dec_cu_part{dw, p->type, (int)p->rows, p->row_bytes};
        m.rows += (int)p->rows;
    }
    m.n_part = (int)n_parts;
    float *dx, *dy;
    void *q8 = nullptr;
    if (st || (st = s.upload(&dx, x, rows * in)) || (st = s.upload(&dy, (const float *)nullptr, rows * m.rows)) ||
        (st = s.alloc(&q8, rows * q8_row)))
        return st;
    dec_cu_prod P = {nullptr, nullptr, 0, DEC_CU_F32, 1, {nullptr, 0}, q8, rows * q8_row};
    st = dec_cu_linear(&P, dx, (int)rows, &m, DEC_Q8_NONE, dy, e);
    if (!st)
        st = s.download(y, dy, rows * (size_t)m.rows * sizeof(float));
    return st;
}
