/* ops_cpu.c - CPU kernels of the encoder (see ops_cpu.h). */
#include "model/ops_cpu.h"
#include "model/cpu_x86.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OPS_X86 1
#endif

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

#ifdef OPS_X86
__attribute__((target("avx2,fma"))) static float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One row, n a multiple of 8: the same two-pass statistics as the scalar
 * code, in float with 8 partial sums (the row is a few hundred values, so
 * float sums lose nothing that shows at the output). */
__attribute__((target("avx2,fma"))) static void layernorm_row_avx2(float *row, const float *res, size_t n,
                                                                   const float *gamma, const float *beta, float eps)
{
    __m256 sum = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) {
        __m256 v = _mm256_loadu_ps(row + i);
        if (res) {
            v = _mm256_add_ps(v, _mm256_loadu_ps(res + i));
            _mm256_storeu_ps(row + i, v);
        }
        sum = _mm256_add_ps(sum, v);
    }
    __m256 mean = _mm256_set1_ps(hsum8(sum) / (float)n), var = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) {
        __m256 dv = _mm256_sub_ps(_mm256_loadu_ps(row + i), mean);
        var = _mm256_fmadd_ps(dv, dv, var);
    }
    __m256 inv = _mm256_set1_ps((float)(1.0 / sqrt((double)hsum8(var) / (double)n + (double)eps)));
    for (size_t i = 0; i < n; i += 8) {
        __m256 dv = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(row + i), mean), inv);
        _mm256_storeu_ps(row + i, _mm256_fmadd_ps(dv, _mm256_loadu_ps(gamma + i), _mm256_loadu_ps(beta + i)));
    }
}
#endif

static int ops_has_avx2(void);

void ops_add_layernorm(float *x, const float *res, size_t rows, size_t n, const float *gamma, const float *beta,
                       float eps)
{
#ifdef OPS_X86
    if (n % 8 == 0 && ops_has_avx2()) {
        for (size_t r = 0; r < rows; r++)
            layernorm_row_avx2(x + r * n, res ? res + r * n : NULL, n, gamma, beta, eps);
        return;
    }
#endif
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

/* ---- exp and GELU, vectorized where the CPU allows --------------------------
 *
 * exp: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor polynomial to
 * degree 7 (truncation error < 6e-9 relative, below float rounding), 2^n
 * put into the exponent bits. Inputs below -87 give 0 (masked scores are
 * -inf), inputs are capped at 88 (never reached: scores are max-shifted).
 *
 * GELU: x Phi(x) = x (1 - erfc(z)/2) for x >= 0 and x erfc(z)/2 for x < 0,
 * z = |x|/sqrt 2, with erfc(z) = t exp(-z^2 + P(t)), t = 1/(1 + z/2): the
 * Chebyshev fit of Press et al. (Numerical Recipes, sec. 6.2, "erfcc"),
 * relative error < 1.2e-7 for all z. Taking erfc on the negative side keeps
 * GELU's small negative outputs accurate (1 + erf(x) cancels there). */

#define EXP_LO (-87.0f)
#define EXP_HI 88.0f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f /* ln 2 split so that n * LN2_HI is exact */
#define LN2_LO (-2.12194440e-4f)

static const float erfc_coef[10] = {-1.26551223f, 1.00002368f,  0.37409196f,  0.09678418f, -0.18628806f,
                                    0.27886807f,  -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};

static inline float exp_poly(float x)
{
    if (isnan(x))
        return x; /* a NaN weight's result stays NaN (and never reaches the int conversion below) */
    if (x < EXP_LO)
        return 0.0f;
    if (x > EXP_HI)
        x = EXP_HI;
    float n = nearbyintf(x * LOG2E);
    float r = x - n * LN2_HI - n * LN2_LO;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return ldexpf(p, (int)n);
}

static inline float gelu_one(float x)
{
    float z = fabsf(x) * 0.70710678118654752440f;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = erfc_coef[9];
    for (int i = 8; i >= 0; i--)
        p = p * t + erfc_coef[i];
    float erfc = t * exp_poly(-z * z + p);
    return x >= 0.0f ? x * (1.0f - 0.5f * erfc) : 0.5f * x * erfc;
}

#ifdef OPS_X86
__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x)
{
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LO), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, p);
}

__attribute__((target("avx2,fma"))) static inline __m256 gelu8(__m256 v)
{
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    __m256 z = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v), _mm256_set1_ps(0.70710678118654752440f));
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
    __m256 p = _mm256_set1_ps(erfc_coef[9]);
    for (int c = 8; c >= 0; c--)
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(erfc_coef[c]));
    __m256 erfc = _mm256_mul_ps(t, exp8(_mm256_fnmadd_ps(z, z, p)));
    __m256 he = _mm256_mul_ps(half, erfc);
    __m256 pos = _mm256_mul_ps(v, _mm256_sub_ps(one, he));
    __m256 neg = _mm256_mul_ps(v, he);
    return _mm256_blendv_ps(pos, neg, v); /* the sign bit of v picks neg */
}

/* Two vectors per step: each is one long chain of dependent operations
 * (polynomials by Horner's rule), so interleaving two hides latency. */
__attribute__((target("avx2,fma"))) static void gelu_avx2(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = gelu8(_mm256_loadu_ps(x + i)), b = gelu8(_mm256_loadu_ps(x + i + 8));
        _mm256_storeu_ps(x + i, a);
        _mm256_storeu_ps(x + i + 8, b);
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
    for (; i < n; i++)
        x[i] = gelu_one(x[i]);
}

/* x <- exp((x - mx) * scale); returns the sum. */
__attribute__((target("avx2,fma"))) static float exp_sum_avx2(float *x, size_t n, float mx, float scale)
{
    __m256 acc = _mm256_setzero_ps(), m = _mm256_set1_ps(mx), s = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), s));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    float sum = 0.0f;
    for (int j = 0; j < 8; j++)
        sum += lanes[j];
    for (; i < n; i++) {
        x[i] = exp_poly((x[i] - mx) * scale);
        sum += x[i];
    }
    return sum;
}
#endif

static int ops_has_avx2(void)
{
#ifdef OPS_X86
    return cpu_has_avx2_fma();
#else
    return 0;
#endif
}

void ops_gelu(float *x, size_t n)
{
#ifdef OPS_X86
    if (ops_has_avx2()) {
        gelu_avx2(x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        x[i] = gelu_one(x[i]);
}

#ifdef OPS_X86
__attribute__((target("avx2,fma"))) static float max_avx2(const float *x, size_t n)
{
    __m256 m = _mm256_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float lanes[8], mx = -INFINITY;
    _mm256_storeu_ps(lanes, m);
    for (int j = 0; j < 8; j++)
        mx = lanes[j] > mx ? lanes[j] : mx;
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    return mx;
}
#endif

float ops_softmax_unnormalized(float *x, size_t n, float scale)
{
    if (n == 0)
        return 0.0f;
    float mx;
#ifdef OPS_X86
    int avx2 = ops_has_avx2();
    if (avx2) {
        mx = max_avx2(x, n);
    } else
#endif
    {
        mx = x[0];
        for (size_t i = 1; i < n; i++)
            mx = x[i] > mx ? x[i] : mx;
    }
    if (mx == -INFINITY) { /* nothing to attend to: no NaNs, all zero */
        memset(x, 0, n * sizeof *x);
        return 0.0f;
    }
#ifdef OPS_X86
    if (avx2)
        return exp_sum_avx2(x, n, mx, scale);
#endif
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = exp_poly((x[i] - mx) * scale);
        sum += x[i];
    }
    return sum;
}

void ops_softmax_scaled(float *x, size_t n, float scale)
{
    float sum = ops_softmax_unnormalized(x, n, scale);
    if (sum == 0.0f)
        return;
    float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}

void ops_softmax(float *x, size_t n) { ops_softmax_scaled(x, n, 1.0f); }

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
