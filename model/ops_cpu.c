/* ops_cpu.c - CPU kernels of the encoder (see ops_cpu.h). */
#include "model/ops_cpu.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void ops_linear(const float *x, size_t rows, size_t in, const float *w, const float *bias, size_t out, float *y)
{
    float beta = 0.0f;
    if (bias) {
        for (size_t r = 0; r < rows; r++)
            memcpy(y + r * out, bias, out * sizeof *y);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)out, (blasint)in, 1.0f, x,
                (blasint)in, w, (blasint)in, beta, y, (blasint)out);
}

void ops_add_layernorm(float *x, const float *res, size_t rows, size_t n, const float *gamma, const float *beta,
                       float eps)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * n;
        if (res) {
            const float *rr = res + r * n;
            for (size_t i = 0; i < n; i++)
                row[i] += rr[i];
        }
        double sum = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += row[i];
        float mean = (float)(sum / (double)n);
        double var = 0.0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)row[i] - mean;
            var += d * d;
        }
        float inv = (float)(1.0 / sqrt(var / (double)n + (double)eps));
        for (size_t i = 0; i < n; i++)
            row[i] = (row[i] - mean) * inv * gamma[i] + beta[i];
    }
}

void ops_gelu(float *x, size_t n)
{
    const float inv_sqrt2 = 0.70710678118654752440f;
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * inv_sqrt2));
}

void ops_softmax(float *x, size_t n)
{
    if (n == 0)
        return;
    float mx = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}

void ops_attention(const float *q, const float *k, const float *v, const int32_t *mask, size_t B, size_t T, size_t H,
                   size_t heads, float *ctx, float *scores)
{
    size_t d = H / heads;
    float scale = 1.0f / sqrtf((float)d);
    for (size_t b = 0; b < B; b++) {
        const int32_t *m = mask + b * T;
        /* Keys past the last real one are never attended: cut them out of
         * the products (padding sits at the end of a sequence). */
        size_t tk = T;
        while (tk > 0 && m[tk - 1] == 0)
            tk--;
        for (size_t h = 0; h < heads; h++) {
            const float *qb = q + b * T * H + h * d;
            const float *kb = k + b * T * H + h * d;
            const float *vb = v + b * T * H + h * d;
            float *cb = ctx + b * T * H + h * d;
            if (tk == 0) {
                for (size_t t = 0; t < T; t++)
                    memset(cb + t * H, 0, d * sizeof *cb);
                continue;
            }
            /* scores[T, tk] = scale * Q_h K_h^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)T, (blasint)tk, (blasint)d, scale, qb,
                        (blasint)H, kb, (blasint)H, 0.0f, scores, (blasint)tk);
            for (size_t i = 0; i < T; i++) {
                float *row = scores + i * tk;
                for (size_t j = 0; j < tk; j++)
                    if (m[j] == 0)
                        row[j] = -INFINITY;
                ops_softmax(row, tk);
            }
            /* ctx_h[T, d] = scores V_h */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)T, (blasint)d, (blasint)tk, 1.0f, scores,
                        (blasint)tk, vb, (blasint)H, 0.0f, cb, (blasint)H);
        }
    }
}

void ops_mean_pool(const float *hidden, const int32_t *mask, size_t T, size_t H, float *out)
{
    memset(out, 0, H * sizeof *out);
    size_t cnt = 0;
    for (size_t t = 0; t < T; t++) {
        if (!mask[t])
            continue;
        const float *row = hidden + t * H;
        for (size_t i = 0; i < H; i++)
            out[i] += row[i];
        cnt++;
    }
    if (cnt == 0)
        return;
    float inv = 1.0f / (float)cnt;
    for (size_t i = 0; i < H; i++)
        out[i] *= inv;
}

void ops_l2_normalize(float *x, size_t n)
{
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    double norm = sqrt(ss);
    if (norm < 1e-12)
        norm = 1e-12;
    float inv = (float)(1.0 / norm);
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}
