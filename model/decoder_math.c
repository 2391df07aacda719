/* decoder_math.c - SwiGLU and the attention softmax in llama.cpp's CPU
 * arithmetic (see decoder_math.h for why it has to be the same floats).
 *
 * The exponential is ggml_v_expf's: n = round(x log2 e) through the
 * 1.5 * 2^23 trick, b = x - n ln2 in two fused steps (ln2 split in a short
 * high part and a correction), e^b from a degree-5 polynomial evaluated in
 * fused multiply-adds in a fixed order, the result scaled by 2^n with one
 * rounding (AVX-512's scalef; here a power-of-two multiply, split in two
 * where 2^n is not a normal float so that only the last multiply rounds).
 * |n| > 192 gives 0 or infinity. Constants and the order of every operation
 * are those of that routine; the code is ours. */
#include "model/cpu_x86.h"
#include "model/decoder_math.h"
#include "model/decoder_exp_consts.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MATH_X86 1
#define AVX2_FN __attribute__((target("avx2,fma")))
#endif


/* Block size of ggml's vector loops on AVX-512 (16 floats): SwiGLU's tail
 * and the softmax's partial sums are cut at multiples of it. */
#define GGML_LANES 16

static float pow2i(int k) /* 2^k, k in [-126, 127] */
{
    uint32_t bits = (uint32_t)(k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* j * 2^k rounded once (k integral, |k| <= 192). */
static float scale_pow2(float j, int k)
{
    if (k > 127) /* j * 2^64 is exact; only the second product rounds (or overflows) */
        return j * pow2i(64) * pow2i(k - 64);
    if (k < -126) /* j * 2^(k + 100) is a normal float, exact; the 2^-100 rounds once */
        return j * pow2i(k + 100) * pow2i(-100);
    return j * pow2i(k);
}

static float exp_one(float x)
{
    float z = fmaf(x, EXP_LOG2E, EXP_SHIFT);
    float n = z - EXP_SHIFT;
    if (isnan(n))
        return n;
    if (fabsf(n) > 192.0f)
        return n <= 0.0f ? 0.0f : INFINITY;
    float b = fmaf(-n, EXP_LN2_LO, fmaf(-n, EXP_LN2_HI, x));
    float u = b * b;
    float j = fmaf(fmaf(fmaf(EXP_C5, b, EXP_C4), u, fmaf(EXP_C3, b, EXP_C2)), u, fmaf(EXP_C1, b, 1.0f));
    return scale_pow2(j, (int)n);
}

/* ---- AVX2 ------------------------------------------------------------------------ */

#ifdef MATH_X86
static int math_avx2(void)
{
    return cpu_has_avx2_fma();
}

/* exp_one on 8 lanes; lanes whose 2^n is not a normal float (rare: x
 * outside about [-87, 88]) or NaN go through exp_one itself. */
AVX2_FN static __m256 exp8(__m256 x)
{
    const __m256 shift = _mm256_set1_ps(EXP_SHIFT);
    __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(EXP_LOG2E), shift), shift);
    __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x));
    __m256 u = _mm256_mul_ps(b, b);
    __m256 hi = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(EXP_C5), b, _mm256_set1_ps(EXP_C4)), u,
                                _mm256_fmadd_ps(_mm256_set1_ps(EXP_C3), b, _mm256_set1_ps(EXP_C2)));
    __m256 j = _mm256_fmadd_ps(hi, u, _mm256_fmadd_ps(_mm256_set1_ps(EXP_C1), b, _mm256_set1_ps(1.0f)));
    __m256 normal = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_set1_ps(-126.0f), _CMP_GE_OQ),
                                  _mm256_cmp_ps(n, _mm256_set1_ps(127.0f), _CMP_LE_OQ));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 r = _mm256_mul_ps(j, _mm256_castsi256_ps(e));
    if (_mm256_movemask_ps(normal) != 0xff) {
        float xs[8], rs[8];
        _mm256_storeu_ps(xs, x);
        for (int i = 0; i < 8; i++)
            rs[i] = exp_one(xs[i]);
        r = _mm256_loadu_ps(rs);
    }
    return r;
}

AVX2_FN static void exp_avx2(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    for (; i < n; i++)
        y[i] = exp_one(x[i]);
}

/* The softmax's whole 16-float blocks: x[i] <- e^(x[i] - mx), returning
 * the blocks' sums added in double, each block's sum formed as
 * _mm512_reduce_add_ps forms it (halves, quarters, pairs; a block's two
 * 8-float halves are the 16 lanes' low and high halves). */
AVX2_FN static double softmax_blocks_avx2(float *x, size_t blocks, float mx)
{
    const __m256 m = _mm256_set1_ps(mx);
    double sum = 0.0;
    for (size_t b = 0; b < blocks; b++) {
        float *p = x + b * 16;
        __m256 lo = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), m));
        __m256 hi = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + 8), m));
        _mm256_storeu_ps(p, lo);
        _mm256_storeu_ps(p + 8, hi);
        __m256 s = _mm256_add_ps(lo, hi);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        sum += (double)_mm_cvtss_f32(h);
    }
    return sum;
}

AVX2_FN static float max_avx2(const float *x, size_t n)
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

AVX2_FN static void scale_avx2(float *x, size_t n, float v)
{
    const __m256 s = _mm256_set1_ps(v);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), s));
    for (; i < n; i++)
        x[i] *= v;
}

/* g[0..n) <- g / (1 + e^(0 - g)) * u, n a multiple of 8 */
AVX2_FN static void swiglu_avx2(float *g, const float *u, size_t n)
{
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, x))));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
}
#endif

/* ---- the calls ----------------------------------------------------------------------- */

void dec_math_exp(float *y, const float *x, size_t n)
{
#ifdef MATH_X86
    if (math_avx2()) {
        exp_avx2(y, x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        y[i] = exp_one(x[i]);
}

void dec_math_swiglu(float *g, const float *u, size_t rows, size_t width)
{
    size_t blocks = width - width % GGML_LANES;
#ifdef MATH_X86
    int avx2 = math_avx2();
#endif
    for (size_t r = 0; r < rows; r++) {
        float *gr = g + r * width;
        const float *ur = u + r * width;
        size_t i = 0;
#ifdef MATH_X86
        if (avx2) {
            swiglu_avx2(gr, ur, blocks);
            i = blocks;
        }
#endif
        for (; i < blocks; i++)
            gr[i] = gr[i] / (1.0f + exp_one(0.0f - gr[i])) * ur[i];
        for (; i < width; i++) /* ggml's scalar tail: libm's expf */
            gr[i] = gr[i] / (1.0f + expf(-gr[i])) * ur[i];
    }
}

/* The sum of 16 floats as _mm512_reduce_add_ps adds them: halves, then
 * quarters, then pairs. */
static float sum16(float *v)
{
    for (size_t w = GGML_LANES / 2; w >= 1; w /= 2)
        for (size_t i = 0; i < w; i++)
            v[i] += v[i + w];
    return v[0];
}

void dec_math_rmsnorm(const float *x, const float *w, size_t n, float eps, float *out)
{
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)(x[i] * x[i]);
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

void dec_math_softmax(float *x, size_t n)
{
#ifdef MATH_X86
    int avx2 = math_avx2();
#endif
    float mx = -INFINITY;
#ifdef MATH_X86
    if (avx2)
        mx = max_avx2(x, n);
    else
#endif
        for (size_t i = 0; i < n; i++)
            mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) { /* nothing to attend to: zeros, not NaNs */
        memset(x, 0, n * sizeof *x);
        return;
    }
    double sum = 0.0;
    size_t i0 = 0;
#ifdef MATH_X86
    if (avx2) {
        sum = softmax_blocks_avx2(x, n / GGML_LANES, mx);
        i0 = n / GGML_LANES * GGML_LANES;
    }
#endif
    float blk[GGML_LANES];
    for (; i0 < n; i0 += GGML_LANES) {
        /* a last partial block is padded with positions that are masked in
         * llama.cpp (its cache rows come in multiples of 32): they add 0 */
        size_t m = n - i0 < GGML_LANES ? n - i0 : GGML_LANES;
        for (size_t i = 0; i < m; i++)
            blk[i] = x[i0 + i] - mx;
        dec_math_exp(blk, blk, m);
        memcpy(x + i0, blk, m * sizeof *x);
        for (size_t i = m; i < GGML_LANES; i++)
            blk[i] = 0.0f;
        sum += (double)sum16(blk);
    }
    float inv = (float)(1.0 / sum);
#ifdef MATH_X86
    if (avx2) {
        scale_avx2(x, n, inv);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}
