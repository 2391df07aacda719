/* decoder_attn.c - the decoder's attention over a sequence's KV cache on the
 * CPU: a group of query rows (the query heads that share one key/value head,
 * for one or several tokens of the same sequence) against one key/value head.
 *
 * Each cache row is converted to f32 once per group rather than once per
 * query head and token: with grouped-query attention three or more query
 * heads read the same K and V rows, and a prefill tile of several tokens
 * reads them again. The products run on AVX2/F16C where the CPU has it
 * (chosen at run time, as model/quant does), in portable C elsewhere. A
 * decode step over an f16 cache, the hot case, has its own AVX2 kernels
 * that convert inside the products and keep their sums in registers, with
 * the same bits as the general path (test_decoder_attn checks that).
 *
 * The arithmetic follows llama.cpp's CPU attention with an f16 cache: the
 * query is rounded to f16 for the K products (ggml converts the f32 operand
 * of an F16 matrix product to f16), the softmax is taken in f32 on the
 * scaled scores and normalized, and each weight is rounded to f16 before it
 * meets V. This model family is sensitive enough that skipping those
 * roundings alone moves logits by ~1e-2 relative. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "model/cpu_x86.h"
#include "model/decoder_internal.h"
#include "model/decoder_math.h"
#include "model/quant.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ATT_X86 1
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#endif

/* The V product sums each output over positions in interleaved partial
 * sums (position p into sum p % lanes), then adds them pairwise as a
 * halving tree. That is the order of llama.cpp's CPU matrix products for
 * its attention, and which order depends on how many tokens the batch has
 * (llamafile_sgemm declines a single column):
 *   - several tokens: tinyBLAS on AVX-512, 16 float lanes (ATT_LANES) for
 *     both the K and the V product;
 *   - one token (a decode step): ggml_vec_dot_f16, four 16-lane
 *     accumulators over blocks of 64 (ATT_LANES_ONE lanes in all), the
 *     positions past the last whole block of the cache view summed one by
 *     one in double. The view has a multiple of ATT_KV_PAD positions, so
 *     the double tail is its last 32 when that is not a multiple of 64.
 * With 8-bit activations downstream, a different but equally exact order
 * flips roundings and moves logits by ~1e-2 relative. */
#define ATT_LANES 16
#define ATT_LANES_ONE 64
#define ATT_KV_PAD 32

size_t dec_attn_scratch_floats(size_t nq, size_t max_np, size_t hd)
{
    /* scores, rounded queries, one cache row, lane sums (the larger
     * count), and the double tails with a float of slack to align them */
    return nq * max_np + nq * hd + hd + nq * ATT_LANES_ONE * hd + 2 * nq * hd + 1;
}

/* Positions of a one-token query attending np positions that llama.cpp's
 * vec_dot sums in its 64-float blocks; the rest go to its double tail. */
static size_t one_token_blocked(size_t np)
{
    size_t view = (np + ATT_KV_PAD - 1) / ATT_KV_PAD * ATT_KV_PAD;
    size_t blocked = view / ATT_LANES_ONE * ATT_LANES_ONE;
    return blocked < np ? blocked : np;
}

/* ---- portable ------------------------------------------------------------------ */

static float round_f16(float x)
{
    return dec_h2f(f32_to_fp16(x));
}

/* One cache row as f32: the row itself for an f32 cache, else converted
 * into buf. */
static const float *row_f32(const rg_kv_cache *kv, const void *base, size_t p, float *buf, size_t hd)
{
    if (kv->type != RG_KV_F16)
        return (const float *)base + p * kv->kv_dim;
    const uint16_t *r = (const uint16_t *)base + p * kv->kv_dim;
    for (size_t i = 0; i < hd; i++)
        buf[i] = dec_h2f(r[i]);
    return buf;
}

static float dot_c(const float *a, const float *b, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ggml_vec_dot_f16's order: n rounded down to 64 in 64 lanes (i % 64),
 * reduced 64 -> 32 -> ... -> 1, then the rest added in double. */
static float dot_one_c(const float *a, const float *b, size_t n)
{
    float acc[ATT_LANES_ONE] = {0};
    size_t n64 = n / ATT_LANES_ONE * ATT_LANES_ONE, i = 0;
    for (; i < n64; i++)
        acc[i % ATT_LANES_ONE] += a[i] * b[i];
    for (size_t w = ATT_LANES_ONE / 2; w >= 1; w /= 2)
        for (size_t j = 0; j < w; j++)
            acc[j] += acc[j + w];
    double sum = acc[0];
    for (; i < n; i++)
        sum += (double)(a[i] * b[i]);
    return (float)sum;
}

static void axpy_c(float *y, float w, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += w * x[i];
}

/* ---- AVX2 + F16C ---------------------------------------------------------------- */

#ifdef ATT_X86
static int att_avx2(void)
{
    return cpu_has_avx2_fma_f16c();
}

AVX2_FN static const float *row_f32_avx2(const rg_kv_cache *kv, const void *base, size_t p, float *buf, size_t hd)
{
    if (kv->type != RG_KV_F16)
        return (const float *)base + p * kv->kv_dim;
    const uint16_t *r = (const uint16_t *)base + p * kv->kv_dim;
    for (size_t i = 0; i < hd; i += 8)
        _mm256_storeu_ps(buf + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(r + i))));
    return buf;
}

AVX2_FN static float dot_avx2(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i < n)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    __m256 s = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* dot_one_c with 8-float registers: r0+r1, r2+r3, r4+r5, r6+r7 are the
 * halves of ggml's four 16-lane accumulators; accumulator j += j + 2, then
 * 0 += 1, then the 16 lanes' tree as in dot_avx2. Named registers, not an
 * array: GCC keeps an array of eight in memory. */
AVX2_FN static float dot_one_avx2(const float *a, const float *b, size_t n)
{
    __m256 r0 = _mm256_setzero_ps(), r1 = r0, r2 = r0, r3 = r0, r4 = r0, r5 = r0, r6 = r0, r7 = r0;
    size_t n64 = n / ATT_LANES_ONE * ATT_LANES_ONE, i = 0;
    for (; i < n64; i += ATT_LANES_ONE) {
        r0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), r0);
        r1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), r1);
        r2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), r2);
        r3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), r3);
        r4 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 32), _mm256_loadu_ps(b + i + 32), r4);
        r5 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 40), _mm256_loadu_ps(b + i + 40), r5);
        r6 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 48), _mm256_loadu_ps(b + i + 48), r6);
        r7 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 56), _mm256_loadu_ps(b + i + 56), r7);
    }
    r0 = _mm256_add_ps(_mm256_add_ps(r0, r4), _mm256_add_ps(r2, r6));
    r1 = _mm256_add_ps(_mm256_add_ps(r1, r5), _mm256_add_ps(r3, r7));
    __m256 s = _mm256_add_ps(r0, r1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    double sum = _mm_cvtss_f32(h);
    for (; i < n; i++)
        sum += (double)(a[i] * b[i]);
    return (float)sum;
}

AVX2_FN static void axpy_avx2(float *y, float w, const float *x, size_t n)
{
    __m256 wv = _mm256_set1_ps(w);
    for (size_t i = 0; i < n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
}

AVX2_FN static void add_avx2(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
}

/* acc[0..n) += (double)(w * x[i]): the product rounded to float, the sum
 * in double */
AVX2_FN static void axpy_double_avx2(double *acc, float w, const float *x, size_t n)
{
    const __m256 wv = _mm256_set1_ps(w);
    for (size_t i = 0; i < n; i += 8) {
        __m256 p = _mm256_mul_ps(wv, _mm256_loadu_ps(x + i));
        _mm256_storeu_pd(acc + i, _mm256_add_pd(_mm256_loadu_pd(acc + i), _mm256_cvtps_pd(_mm256_castps256_ps128(p))));
        _mm256_storeu_pd(acc + i + 4,
                         _mm256_add_pd(_mm256_loadu_pd(acc + i + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1))));
    }
}

/* f32 -> f16, round to nearest even (as f32_to_fp16) */
AVX2_FN static size_t to_f16_avx2(uint16_t *dst, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    return i;
}

AVX2_FN static size_t round_f16_avx2(float *dst, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT)));
    return i;
}

/* ---- AVX2 + F16C, a decode step over an f16 cache --------------------------------- */

/* The one-token path above costs per position a cache row converted into
 * a buffer, and per position and query a call, a horizontal sum and, for
 * V, a read-modify-write of one of 64 lane rows (nq x 64 x hd floats, past
 * L1). These two produce the same bits with the conversions inside the products:
 * scores eight positions at a time with one transposed horizontal sum, and
 * V lane by lane with the lane's sums in registers. hd % 64 == 0 (no tail
 * in ggml's dot of one row). */

/* One position's eight lane sums of q . k, reduced to one vector as
 * dot_one_avx2 reduces them (before its horizontal sum). Named registers,
 * as there: an array of eight stays in memory. */
AVX2_FN static inline __attribute__((always_inline)) __m256 one_lanes(const float *q, const uint16_t *k, size_t hd)
{
#define ATT_KH(m) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + c + 8 * (m))))
#define ATT_FMA(r, m) r = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8 * (m)), ATT_KH(m), r)
    __m256 r0 = _mm256_setzero_ps(), r1 = r0, r2 = r0, r3 = r0, r4 = r0, r5 = r0, r6 = r0, r7 = r0;
    for (size_t c = 0; c < hd; c += ATT_LANES_ONE) {
        ATT_FMA(r0, 0);
        ATT_FMA(r1, 1);
        ATT_FMA(r2, 2);
        ATT_FMA(r3, 3);
        ATT_FMA(r4, 4);
        ATT_FMA(r5, 5);
        ATT_FMA(r6, 6);
        ATT_FMA(r7, 7);
    }
#undef ATT_FMA
#undef ATT_KH
    __m256 a = _mm256_add_ps(_mm256_add_ps(r0, r4), _mm256_add_ps(r2, r6));
    __m256 b = _mm256_add_ps(_mm256_add_ps(r1, r5), _mm256_add_ps(r3, r7));
    return _mm256_add_ps(a, b);
}

/* h = lo + hi of two vectors: [h(x) | h(y)] */
AVX2_FN static inline __m256 halves_sum(__m256 x, __m256 y)
{
    return _mm256_add_ps(_mm256_permute2f128_ps(x, y, 0x20), _mm256_permute2f128_ps(x, y, 0x31));
}

/* The horizontal sums of v0..v7 as dot_one_avx2 takes them ((lo + hi),
 * then lanes 0 + 2 and 1 + 3, then those two), eight at once. */
AVX2_FN static inline __attribute__((always_inline)) __m256 hsum8(__m256 v0, __m256 v1, __m256 v2, __m256 v3,
                                                                  __m256 v4, __m256 v5, __m256 v6, __m256 v7)
{
    __m256d t0 = _mm256_castps_pd(halves_sum(v0, v4)), t1 = _mm256_castps_pd(halves_sum(v1, v5));
    __m256d t2 = _mm256_castps_pd(halves_sum(v2, v6)), t3 = _mm256_castps_pd(halves_sum(v3, v7));
    /* [a0 b0 a2 b2 | a4 b4 a6 b6] and [a1 b1 a3 b3 | a5 b5 a7 b7]: a = h0 + h2, b = h1 + h3 */
    __m256 u02 = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)), _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)));
    __m256 u13 = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)), _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3)));
    /* a + b in the order [0 2 1 3 | 4 6 5 7], then put in order */
    __m256 r = _mm256_add_ps(_mm256_shuffle_ps(u02, u13, 0x88), _mm256_shuffle_ps(u02, u13, 0xdd));
    return _mm256_permute_ps(r, 0xd8);
}

/* Asks for the V rows of positions [p0, p1) to be brought to L2. The V
 * kernel below visits positions 64 apart (one lane at a time), which the
 * hardware prefetcher cannot follow: without this, a cache that has left
 * the CPU caches (16 sequences' caches do) costs a miss per row there. */
AVX2_FN static inline void fetch_v_rows(const uint16_t *vb, size_t kv_dim, size_t hd, size_t p0, size_t p1)
{
    for (size_t p = p0; p < p1; p++) {
        const char *r = (const char *)(vb + p * kv_dim);
        for (size_t off = 0; off < hd * sizeof(uint16_t); off += 64)
            _mm_prefetch(r + off, _MM_HINT_T1);
        _mm_prefetch(r + hd * sizeof(uint16_t) - 1, _MM_HINT_T1);
    }
}

/* s[i * ld + p] for the first np / 8 * 8 positions: dot_one_avx2(q_i, K_p)
 * * scale; meanwhile the V rows of all np positions are fetched */
AVX2_FN static size_t scores_one_f16(const uint16_t *kb, const uint16_t *vb, size_t kv_dim, const float *qr,
                                     size_t nq, size_t hd, size_t np, float scale, float *s, size_t ld)
{
    size_t p8 = np / 8 * 8;
    const __m256 sc = _mm256_set1_ps(scale);
    for (size_t i = 0; i < nq; i++)
        for (size_t p0 = 0; p0 < p8; p0 += 8) {
            if (i == 0)
                fetch_v_rows(vb, kv_dim, hd, p0, p0 + 8);
            const float *q = qr + i * hd;
            const uint16_t *k = kb + p0 * kv_dim;
            __m256 h = hsum8(one_lanes(q, k, hd), one_lanes(q, k + kv_dim, hd), one_lanes(q, k + 2 * kv_dim, hd),
                             one_lanes(q, k + 3 * kv_dim, hd), one_lanes(q, k + 4 * kv_dim, hd),
                             one_lanes(q, k + 5 * kv_dim, hd), one_lanes(q, k + 6 * kv_dim, hd),
                             one_lanes(q, k + 7 * kv_dim, hd));
            _mm256_storeu_ps(s + i * ld + p0, _mm256_mul_ps(h, sc));
        }
    fetch_v_rows(vb, kv_dim, hd, p8, np);
    return p8;
}

/* Lane j of G queries from query i0 on, for 16 dimensions from c:
 * lanes[((i0 + g) * 64 + j) * hd + c ..] = sum over p = j, j + 64, ... below
 * blocked of w_g[p] * V[p], fused in that order (axpy_avx2's), in registers
 * (named, and G a constant here: GCC keeps an indexed array in memory). */
AVX2_FN static inline __attribute__((always_inline)) void lanes_group(const uint16_t *vb, size_t kv_dim,
                                                                      const float *s, size_t ld, size_t i0,
                                                                      const size_t G, size_t hd, size_t j,
                                                                      size_t c, size_t blocked, float *lanes)
{
    /* the weights of the group's queries (only the G that exist are formed) */
    const float *w0 = s + i0 * ld, *w1 = G > 1 ? w0 + ld : w0, *w2 = G > 2 ? w1 + ld : w0, *w3 = G > 3 ? w2 + ld : w0;
    __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
    for (size_t p = j; p < blocked; p += ATT_LANES_ONE) {
        const uint16_t *vr = vb + p * kv_dim + c;
        __m256 v0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)vr));
        __m256 v1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(vr + 8)));
#define ATT_LANE_FMA(wq, a, b)                                                                                   \
    do {                                                                                                           \
        __m256 w = _mm256_broadcast_ss((wq) + p);                                                                  \
        a = _mm256_fmadd_ps(w, v0, a);                                                                             \
        b = _mm256_fmadd_ps(w, v1, b);                                                                             \
    } while (0)
        ATT_LANE_FMA(w0, a0, b0);
        if (G > 1)
            ATT_LANE_FMA(w1, a1, b1);
        if (G > 2)
            ATT_LANE_FMA(w2, a2, b2);
        if (G > 3)
            ATT_LANE_FMA(w3, a3, b3);
#undef ATT_LANE_FMA
    }
    float *dst = lanes + (i0 * ATT_LANES_ONE + j) * hd + c;
    const size_t next = ATT_LANES_ONE * hd; /* the same lane of the next query */
    __m256 sums[8] = {a0, b0, a1, b1, a2, b2, a3, b3}; /* stored once per lane: memory is fine here */
    for (size_t g = 0; g < G; g++) {
        _mm256_storeu_ps(dst + g * next, sums[2 * g]);
        _mm256_storeu_ps(dst + g * next + 8, sums[2 * g + 1]);
    }
}

/* Every lane of every query (zero where no position falls), for the
 * positions below blocked. Queries go four at a time so one conversion of a
 * V slice serves them all and their sums fit the 16 registers. A lane's
 * four slices are taken one after another, so its rows are still in L1 for
 * the next slice; taking each slice over all lanes before the next would
 * sweep a head's V rows (~70 KB at 550 positions) through L1 four times. */
AVX2_FN static void lanes_one_f16(const uint16_t *vb, size_t kv_dim, const float *s, size_t ld, size_t nq, size_t hd,
                                  size_t blocked, float *lanes)
{
    for (size_t i0 = 0; i0 < nq; i0 += 4)
        for (size_t j = 0; j < ATT_LANES_ONE; j++)
            for (size_t c = 0; c < hd; c += 16)
                switch (nq - i0) {
                case 1: lanes_group(vb, kv_dim, s, ld, i0, 1, hd, j, c, blocked, lanes); break;
                case 2: lanes_group(vb, kv_dim, s, ld, i0, 2, hd, j, c, blocked, lanes); break;
                case 3: lanes_group(vb, kv_dim, s, ld, i0, 3, hd, j, c, blocked, lanes); break;
                default: lanes_group(vb, kv_dim, s, ld, i0, 4, hd, j, c, blocked, lanes); break;
                }
}
#endif

/* ---- the kernels of one call, chosen once: simd says the AVX2 ones ---------------- */

static int use_simd(size_t hd)
{
#ifdef ATT_X86
    return hd % 8 == 0 && att_avx2();
#else
    (void)hd;
    return 0;
#endif
}

/* The dispatchers are forced inline: they run per cache row and query, and
 * GCC stopped inlining row_of once the attention grew its one-token path. */
static inline __attribute__((always_inline)) const float *row_of(int simd, const rg_kv_cache *kv, const void *base,
                                                                 size_t p, float *buf, size_t hd)
{
#ifdef ATT_X86
    if (simd)
        return row_f32_avx2(kv, base, p, buf, hd);
#endif
    (void)simd;
    return row_f32(kv, base, p, buf, hd);
}

static inline __attribute__((always_inline)) float dot_of(int simd, const float *a, const float *b, size_t n)
{
#ifdef ATT_X86
    if (simd)
        return dot_avx2(a, b, n);
#endif
    (void)simd;
    return dot_c(a, b, n);
}

static inline __attribute__((always_inline)) float dot_one_of(int simd, const float *a, const float *b, size_t n)
{
#ifdef ATT_X86
    if (simd)
        return dot_one_avx2(a, b, n);
#endif
    (void)simd;
    return dot_one_c(a, b, n);
}

static inline __attribute__((always_inline)) void axpy_of(int simd, float *y, float w, const float *x, size_t n)
{
#ifdef ATT_X86
    if (simd) {
        axpy_avx2(y, w, x, n);
        return;
    }
#endif
    (void)simd;
    axpy_c(y, w, x, n);
}

/* y[0..n) += x[0..n) */
static inline __attribute__((always_inline)) void add_of(int simd, float *y, const float *x, size_t n)
{
#ifdef ATT_X86
    if (simd) {
        add_avx2(y, x, n);
        return;
    }
#endif
    (void)simd;
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

static inline __attribute__((always_inline)) void axpy_double_of(int simd, double *acc, float w, const float *x,
                                                                  size_t n)
{
#ifdef ATT_X86
    if (simd) {
        axpy_double_avx2(acc, w, x, n);
        return;
    }
#endif
    (void)simd;
    for (size_t i = 0; i < n; i++)
        acc[i] += (double)(w * x[i]);
}

/* dst[i] = src[i] rounded to the nearest f16 value (dst may be src). */
static void round_f16_n(int simd, float *dst, const float *src, size_t n)
{
    size_t i = 0;
#ifdef ATT_X86
    if (simd)
        i = round_f16_avx2(dst, src, n);
#endif
    (void)simd;
    for (; i < n; i++)
        dst[i] = round_f16(src[i]);
}

static void to_f16_n(int simd, uint16_t *dst, const float *src, size_t n)
{
    size_t i = 0;
#ifdef ATT_X86
    if (simd)
        i = to_f16_avx2(dst, src, n);
#endif
    (void)simd;
    for (; i < n; i++)
        dst[i] = f32_to_fp16(src[i]);
}

void dec_kv_store(rg_kv_cache *kv, size_t layer, size_t pos, const float *k, const float *v)
{
    size_t off = (layer * kv->cap + pos) * kv->kv_dim;
    if (kv->type == RG_KV_F16) {
        int simd = use_simd(8); /* the conversions take any length */
        to_f16_n(simd, (uint16_t *)kv->k + off, k, kv->kv_dim);
        to_f16_n(simd, (uint16_t *)kv->v + off, v, kv->kv_dim);
    } else {
        memcpy((float *)kv->k + off, k, kv->kv_dim * sizeof(float));
        memcpy((float *)kv->v + off, v, kv->kv_dim * sizeof(float));
    }
}

/* ---- the group ------------------------------------------------------------------ */

void dec_attend(const rg_kv_cache *kv, size_t layer, size_t kvh, size_t hd, const float *const *q, const size_t *np,
                size_t nq, float *const *out, float *scratch, int one_token)
{
    size_t max_np = 0;
    for (size_t i = 0; i < nq; i++)
        if (np[i] > max_np)
            max_np = np[i];
    float *s = scratch, *qr = s + nq * max_np, *row = qr + nq * hd, *lanes = row + hd;
    size_t off = layer * kv->cap * kv->kv_dim + kvh * hd;
    const void *kb, *vb;
    if (kv->type == RG_KV_F16) {
        kb = (const uint16_t *)kv->k + off;
        vb = (const uint16_t *)kv->v + off;
    } else {
        kb = (const float *)kv->k + off;
        vb = (const float *)kv->v + off;
    }
    int half = kv->type == RG_KV_F16, simd = use_simd(hd);
    for (size_t i = 0; i < nq; i++) {
        if (half)
            round_f16_n(simd, qr + i * hd, q[i], hd);
        else
            memcpy(qr + i * hd, q[i], hd * sizeof(float));
    }
    float scale = 1.0f / sqrtf((float)hd);

    /* a decode step over an f16 cache: the fused kernels above (same bits) */
    int fused = 0;
#ifdef ATT_X86
    fused = one_token && half && simd && hd % ATT_LANES_ONE == 0;
    for (size_t i = 0; i < nq && fused; i++)
        fused = np[i] == max_np;
#endif

    /* scores: each K row once, against every query that reaches it */
    size_t p_first = 0;
#ifdef ATT_X86
    if (fused)
        p_first = scores_one_f16(kb, vb, kv->kv_dim, qr, nq, hd, max_np, scale, s, max_np);
#endif
    for (size_t p = p_first; p < max_np; p++) {
        const float *kr = row_of(simd, kv, kb, p, row, hd);
        for (size_t i = 0; i < nq; i++)
            if (p < np[i])
                s[i * max_np + p] = (one_token ? dot_one_of(simd, qr + i * hd, kr, hd)
                                               : dot_of(simd, qr + i * hd, kr, hd)) * scale;
    }

    /* softmax per query, normalized, then rounded as the V operand */
    for (size_t i = 0; i < nq; i++) {
        float *si = s + i * max_np;
        dec_math_softmax(si, np[i]);
        if (half)
            round_f16_n(simd, si, si, np[i]);
    }

    /* weighted sum of V rows (each row once on the general path; once per
     * four queries on the fused one) into interleaved partial sums
     * (a one-token query's tail positions wait for the second pass) */
    size_t max_blocked = 0;
    for (size_t i = 0; i < nq; i++) {
        size_t b = one_token ? one_token_blocked(np[i]) : np[i];
        max_blocked = b > max_blocked ? b : max_blocked;
    }
    size_t lanes_n = one_token ? ATT_LANES_ONE : ATT_LANES;
    if (max_blocked == 0) { /* a one-token query over a short context: all in the double tail */
        for (size_t i = 0; i < nq; i++)
            memset(out[i], 0, hd * sizeof(float));
    } else {
        if (fused) {
#ifdef ATT_X86
            lanes_one_f16(vb, kv->kv_dim, s, max_np, nq, hd, max_blocked, lanes);
#endif
        } else {
            memset(lanes, 0, nq * lanes_n * hd * sizeof(float));
            for (size_t p = 0; p < max_blocked; p++) {
                const float *vr = row_of(simd, kv, vb, p, row, hd);
                for (size_t i = 0; i < nq; i++)
                    if (p < (one_token ? one_token_blocked(np[i]) : np[i]))
                        axpy_of(simd, lanes + (i * lanes_n + (p & (lanes_n - 1))) * hd, s[i * max_np + p], vr, hd);
            }
        }
        for (size_t i = 0; i < nq; i++) {
            float *acc = lanes + i * lanes_n * hd;
            for (size_t w = lanes_n / 2; w >= 1; w /= 2)
                for (size_t j = 0; j < w; j++)
                    add_of(simd, acc + j * hd, acc + (j + w) * hd, hd);
            memcpy(out[i], acc, hd * sizeof(float));
        }
    }
    if (!one_token)
        return;
    size_t min_blocked = max_np;
    for (size_t i = 0; i < nq; i++) {
        size_t b = one_token_blocked(np[i]);
        min_blocked = b < min_blocked ? b : min_blocked;
    }
    if (min_blocked == max_np)
        return;

    /* a one-token query's tail: after the blocks' sum, position by
     * position in double (ggml's vec_dot leftovers) */
    uintptr_t at = (uintptr_t)(lanes + nq * lanes_n * hd);
    double *tail = (double *)(void *)((at + sizeof(double) - 1) / sizeof(double) * sizeof(double));
    for (size_t i = 0; i < nq; i++)
        for (size_t k = 0; k < hd; k++)
            tail[i * hd + k] = out[i][k];
    for (size_t p = min_blocked; p < max_np; p++) {
        const float *vr = row_of(simd, kv, vb, p, row, hd);
        for (size_t i = 0; i < nq; i++)
            if (p >= one_token_blocked(np[i]) && p < np[i])
                axpy_double_of(simd, tail + i * hd, s[i * max_np + p], vr, hd);
    }
    for (size_t i = 0; i < nq; i++)
        for (size_t k = 0; k < hd; k++)
            out[i][k] = (float)tail[i * hd + k];
}
