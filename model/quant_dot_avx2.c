/* quant_dot_avx2.c - AVX2 (+FMA, F16C) dot products of quantized weight rows
 * with prepared activations, compiled with function-level target attributes
 * so the default build still runs on any x86-64: quant_matvec calls them only
 * when model/cpu_x86.h says the CPU has the instructions. Off x86 this
 * file provides no kernels.
 *
 * The integer core multiplies unsigned weight quants by signed activation
 * quants 32 at a time (vpmaddubsw -> 16-bit pair sums, vpmaddwd -> 32-bit),
 * which never saturates here: quants are below 64 and activations within
 * +-127, so a pair sums to at most 2 * 63 * 127 = 16002. Offsets (Q4_0's -8,
 * Q5_0's -16, Q6_K's -32, the mins of the _1 types and of Q4_K/Q5_K) are taken
 * out of the loop with the activations' block sums. */
#include "model/cpu_x86.h"
#include "model/quant_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <string.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))

int quant_avx2_usable(void)
{
    return cpu_has_avx2_fma_f16c();
}

AVX2_FN static inline float half(const unsigned char *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX2_FN static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 bytes of packed nibbles -> 32 bytes: the low nibbles (elements 0..15)
 * then the high nibbles (elements 16..31). */
AVX2_FN static inline __m256i unpack_nibbles16(const unsigned char *qs)
{
    __m128i t = _mm_loadu_si128((const __m128i *)(const void *)qs);
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* Bit j of qh -> 0x10 in byte j, 0 elsewhere (the fifth bit of Q5 quants). */
AVX2_FN static inline __m256i fifth_bits(uint32_t qh)
{
    /* byte j of the shuffle holds byte j / 8 of qh ... */
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                          3, 3, 3, 3, 3, 3, 3);
    /* ... and is tested against bit j % 8 */
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), pick);
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/* 32 unsigned quants times 32 signed activations -> 8 int32 partial sums. */
AVX2_FN static inline __m256i dot_u8s8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

AVX2_FN static inline __m256i load32(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* ---- float weights (F32, F16, BF16) -------------------------------------- */

AVX2_FN static inline __m256 bf16x8(const unsigned char *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* Eight weights of a float type as floats. */
AVX2_FN static inline __m256 float8(uint32_t type, const unsigned char *w, size_t i)
{
    if (type == GGML_TYPE_F32)
        return _mm256_loadu_ps((const float *)(const void *)(w + 4 * i));
    if (type == GGML_TYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + 2 * i)));
    return bf16x8(w + 2 * i);
}

AVX2_FN static inline float float1(uint32_t type, const unsigned char *w, size_t i)
{
    if (type == GGML_TYPE_F32) {
        float f;
        memcpy(&f, w + 4 * i, 4);
        return f;
    }
    if (type == GGML_TYPE_F16)
        return half(w + 2 * i);
    return bf16_to_f32((uint16_t)(w[2 * i] | w[2 * i + 1] << 8));
}

/* One row against nv vectors (quant_matvec runs this for one vector too):
 * per vector two 8-lane accumulators over groups of 16, the hsum of their
 * sum, then the rest one by one, the same for any nv, so a vector gets the
 * same bits alone or in a batch (test_quant checks), and the CUDA q8
 * decoder's k_matvec_fcpu computes this order too; each group of 16
 * weights is converted once for all vectors, which is what makes a
 * prompt's products cheaper than nv single dots (session 19: 3.2x the
 * prompt speed of an F16 model). */
AVX2_FN static inline __attribute__((always_inline)) void
multi_float_n(uint32_t type, const unsigned char *w, const float *const *x, const size_t nv, size_t n, float *out)
{
    __m256 a0[QUANT_MULTI_MAX], a1[QUANT_MULTI_MAX];
    for (size_t v = 0; v < QUANT_MULTI_MAX; v++)
        a0[v] = a1[v] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = float8(type, w, i), w1 = float8(type, w, i + 8);
#pragma GCC unroll 4
        for (size_t v = 0; v < nv; v++) {
            a0[v] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[v] + i), a0[v]);
            a1[v] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[v] + i + 8), a1[v]);
        }
    }
    for (size_t v = 0; v < nv; v++) {
        float acc = hsum(_mm256_add_ps(a0[v], a1[v]));
        for (size_t j = i; j < n; j++)
            acc += float1(type, w, j) * x[v][j];
        out[v] = acc;
    }
}

#define MULTI_FLOAT(name, type)                                                                                     \
    AVX2_FN static void name(const unsigned char *w, const void *const *act, size_t nv, size_t n, float *out)       \
    {                                                                                                              \
        const float *const *x = (const float *const *)act;                                                         \
        switch (nv) {                                                                                              \
        case 1: multi_float_n(type, w, x, 1, n, out); break;                                                       \
        case 2: multi_float_n(type, w, x, 2, n, out); break;                                                       \
        case 3: multi_float_n(type, w, x, 3, n, out); break;                                                       \
        default: multi_float_n(type, w, x, 4, n, out); break;                                                      \
        }                                                                                                          \
    }
MULTI_FLOAT(multi_f32, GGML_TYPE_F32)
MULTI_FLOAT(multi_f16, GGML_TYPE_F16)
MULTI_FLOAT(multi_bf16, GGML_TYPE_BF16)

/* ---- 32-element types, several activation vectors at once ------------------ */

/* The block's unsigned quants u (0..31) give sum(u * qx); the value is
 * d * (u - off) or d * u + m, so
 *   dot = d * dx * sum(u * qx) - d * off * s   or   ... + m * s
 * with s = dx * sum(qx) from the activation block. */

/* One block of a row against nv vectors: acc[v] += d * dx * sum(u * qx),
 * sacc[v] += k * s. */
AVX2_FN static inline __attribute__((always_inline)) void
legacy_block(const unsigned char *w, const quant_a8_block *const *a, size_t b, const size_t nv, int has_m, int has_qh,
             float off, __m256 *acc, float *sacc)
{
    size_t qs_at = 2 + (has_m ? 2 : 0) + (has_qh ? 4 : 0);
    float d = half(w);
    __m256i u = unpack_nibbles16(w + qs_at);
    if (has_qh) {
        uint32_t qh;
        memcpy(&qh, w + 2 + (has_m ? 2 : 0), 4);
        u = _mm256_or_si256(u, fifth_bits(qh));
    }
    float k = has_m ? half(w + 2) : -d * off;
#pragma GCC unroll 4
    for (size_t v = 0; v < nv; v++) {
        const quant_a8_block *av = a[v] + b;
        __m256 p = _mm256_cvtepi32_ps(dot_u8s8(u, load32(av->q)));
        acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d * av->d), p, acc[v]);
        sacc[v] += k * av->s;
    }
}

/* One weight row against nv (1..QUANT_MULTI_MAX) activation vectors: each
 * block is unpacked and its scales converted once, then multiplied into
 * every vector, where the single-vector kernel would redo that per vector.
 * quant_matvec runs these for one vector too, so a sequence's products are
 * bitwise the same alone or in a batch (the per-vector arithmetic does not
 * depend on nv). One accumulator per vector, blocks in order, the offset
 * terms summed apart and added after the horizontal sum: ggml's order for
 * these products, which the logits' agreement with llama.cpp depends on
 * (two accumulators, even and odd blocks, were no faster here and moved one
 * golden prompt's logits from 3e-4 to 3e-2 relative error). */
AVX2_FN static inline __attribute__((always_inline)) void
multi_legacy_n(const unsigned char *w, const quant_a8_block *const *a, const size_t nv, size_t nb, size_t bytes,
               int has_m, int has_qh, float off, float *out)
{
    __m256 acc[QUANT_MULTI_MAX];
    float sacc[QUANT_MULTI_MAX]; /* each vector's offset terms */
    for (size_t v = 0; v < QUANT_MULTI_MAX; v++) {
        acc[v] = _mm256_setzero_ps();
        sacc[v] = 0.0f;
    }
    for (size_t b = 0; b < nb; b++, w += bytes)
        legacy_block(w, a, b, nv, has_m, has_qh, off, acc, sacc);
    for (size_t v = 0; v < nv; v++)
        out[v] = hsum(acc[v]) + sacc[v];
}

/* nv as a constant in each case, so the accumulators live in registers
 * (indexed by a run-time nv they go through memory every block: 6x slower) */
AVX2_FN static inline __attribute__((always_inline)) void
multi_legacy(const unsigned char *w, const quant_a8_block *const *a, size_t nv, size_t nb, size_t bytes, int has_m,
             int has_qh, float off, float *out)
{
    switch (nv) {
    case 1: multi_legacy_n(w, a, 1, nb, bytes, has_m, has_qh, off, out); break;
    case 2: multi_legacy_n(w, a, 2, nb, bytes, has_m, has_qh, off, out); break;
    case 3: multi_legacy_n(w, a, 3, nb, bytes, has_m, has_qh, off, out); break;
    default: multi_legacy_n(w, a, 4, nb, bytes, has_m, has_qh, off, out); break;
    }
}

AVX2_FN static void multi_q4_0(const unsigned char *w, const void *const *a, size_t nv, size_t nb, float *out)
{
    multi_legacy(w, (const quant_a8_block *const *)a, nv, nb, GGML_Q4_0_BLOCK_BYTES, 0, 0, 8.0f, out);
}

AVX2_FN static void multi_q4_1(const unsigned char *w, const void *const *a, size_t nv, size_t nb, float *out)
{
    multi_legacy(w, (const quant_a8_block *const *)a, nv, nb, GGML_Q4_1_BLOCK_BYTES, 1, 0, 0.0f, out);
}

AVX2_FN static void multi_q5_0(const unsigned char *w, const void *const *a, size_t nv, size_t nb, float *out)
{
    multi_legacy(w, (const quant_a8_block *const *)a, nv, nb, GGML_Q5_0_BLOCK_BYTES, 0, 1, 16.0f, out);
}

AVX2_FN static void multi_q5_1(const unsigned char *w, const void *const *a, size_t nv, size_t nb, float *out)
{
    multi_legacy(w, (const quant_a8_block *const *)a, nv, nb, GGML_Q5_1_BLOCK_BYTES, 1, 1, 0.0f, out);
}

AVX2_FN static inline __attribute__((always_inline)) void
multi_q8_0_n(const unsigned char *w, const quant_a8_block *const *a, const size_t nv, size_t nb, float *out)
{
    __m256 acc[QUANT_MULTI_MAX];
    for (size_t v = 0; v < QUANT_MULTI_MAX; v++)
        acc[v] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++, w += GGML_Q8_0_BLOCK_BYTES) {
        __m256i q = load32(w + 2);
        __m256i aq = _mm256_sign_epi8(q, q); /* |q|, once for every vector */
        float d = half(w);
#pragma GCC unroll 4
        for (size_t v = 0; v < nv; v++) {
            const quant_a8_block *av = a[v] + b;
            __m256i p = dot_u8s8(aq, _mm256_sign_epi8(load32(av->q), q));
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d * av->d), _mm256_cvtepi32_ps(p), acc[v]);
        }
    }
    for (size_t v = 0; v < nv; v++)
        out[v] = hsum(acc[v]);
}

AVX2_FN static void multi_q8_0(const unsigned char *w, const void *const *act, size_t nv, size_t nb, float *out)
{
    const quant_a8_block *const *a = (const quant_a8_block *const *)act;
    switch (nv) {
    case 1: multi_q8_0_n(w, a, 1, nb, out); break;
    case 2: multi_q8_0_n(w, a, 2, nb, out); break;
    case 3: multi_q8_0_n(w, a, 3, nb, out); break;
    default: multi_q8_0_n(w, a, 4, nb, out); break;
    }
}

/* ---- one vector, QUANT_ROWS rows at once ----------------------------------------- */

/* A decode step multiplies one activation vector by every matrix, and the
 * one-row kernel above is then bound by its two per-block dependency chains
 * (the float accumulator and the offset sum) and by per-block scalar work.
 * Here QUANT_ROWS rows advance together over the same activation block:
 * their chains interleave, the activation block is loaded once, and each
 * row's two scales are converted and multiplied as one 4-lane vector
 * ([d, m] x [dx, s]; lanes 2-3 are unused). Per row the arithmetic is the
 * batched kernel's with nv = 1, operation for operation, so a row's product
 * is bitwise the same here, alone or in a batch (test_quant checks it).
 *
 * Each row prefetches the same block of the next group's row: the four
 * interleaved streams otherwise left the weights, which come from DRAM in
 * a decode step, waiting on memory (the gain on a cached matrix, 1.9x, fell
 * to 1.1x streaming; with the prefetch, 1.6x). Q8_0 has no such kernel:
 * there the one-row kernel is bound by memory, and four rows were slower
 * (SmolLM2's 49152 x 576 head: 4.3 -> 5.4 ms per product, prefetch or not). */

AVX2_FN static inline __attribute__((always_inline)) void rows_legacy(const unsigned char *w, size_t row_bytes,
                                                                       const quant_a8_block *a, size_t nb,
                                                                       size_t bytes, int has_m, int has_qh, float off,
                                                                       float *out)
{
    size_t qs_at = 2 + (has_m ? 2 : 0) + (has_qh ? 4 : 0);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i high_half = _mm256_setr_epi64x(0, 0, 4, 4); /* the high nibbles go to lanes 16..31 */
    const __m128 k_of_d = _mm_setr_ps(1.0f, -off, 0.0f, 0.0f); /* no m: [d, -d * off] */
    __m256 acc[QUANT_ROWS];
    __m128 sacc[QUANT_ROWS]; /* lane 1: the offset terms */
    for (size_t r = 0; r < QUANT_ROWS; r++) {
        acc[r] = _mm256_setzero_ps();
        sacc[r] = _mm_setzero_ps();
    }
    for (size_t b = 0; b < nb; b++) {
        const quant_a8_block *ab = a + b;
        __m256i q = load32(ab->q);
        __m128 ds = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(const void *)ab)); /* [dx, s, 0, 0] */
#pragma GCC unroll 4
        for (size_t r = 0; r < QUANT_ROWS; r++) {
            const unsigned char *wr = w + r * row_bytes + b * bytes;
            _mm_prefetch((const char *)(wr + QUANT_ROWS * row_bytes), _MM_HINT_T0);
            int32_t dm;
            memcpy(&dm, wr, 4); /* d and m, or d and two quant bytes */
            __m128 h = _mm_cvtph_ps(_mm_cvtsi32_si128(dm));
            if (!has_m)
                h = _mm_mul_ps(_mm_shuffle_ps(h, h, 0), k_of_d);
            __m128 p = _mm_mul_ps(h, ds); /* [d * dx, k * s] */
            sacc[r] = _mm_add_ps(sacc[r], p);
            __m128i packed = _mm_loadu_si128((const __m128i *)(const void *)(wr + qs_at));
            /* unpack_nibbles16's bytes in one shift of both halves */
            __m256i u = _mm256_and_si256(_mm256_srlv_epi64(_mm256_broadcastsi128_si256(packed), high_half), low4);
            if (has_qh) {
                uint32_t qh;
                memcpy(&qh, wr + 2 + (has_m ? 2 : 0), 4);
                u = _mm256_or_si256(u, fifth_bits(qh));
            }
            acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), _mm256_cvtepi32_ps(dot_u8s8(u, q)), acc[r]);
        }
    }
    for (size_t r = 0; r < QUANT_ROWS; r++)
        out[r] = hsum(acc[r]) + _mm_cvtss_f32(_mm_movehdup_ps(sacc[r]));
}

AVX2_FN static void rows_q4_0(const unsigned char *w, size_t row_bytes, const void *a, size_t nb, float *out)
{
    rows_legacy(w, row_bytes, a, nb, GGML_Q4_0_BLOCK_BYTES, 0, 0, 8.0f, out);
}

AVX2_FN static void rows_q4_1(const unsigned char *w, size_t row_bytes, const void *a, size_t nb, float *out)
{
    rows_legacy(w, row_bytes, a, nb, GGML_Q4_1_BLOCK_BYTES, 1, 0, 0.0f, out);
}

AVX2_FN static void rows_q5_0(const unsigned char *w, size_t row_bytes, const void *a, size_t nb, float *out)
{
    rows_legacy(w, row_bytes, a, nb, GGML_Q5_0_BLOCK_BYTES, 0, 1, 16.0f, out);
}

AVX2_FN static void rows_q5_1(const unsigned char *w, size_t row_bytes, const void *a, size_t nb, float *out)
{
    rows_legacy(w, row_bytes, a, nb, GGML_Q5_1_BLOCK_BYTES, 1, 1, 0.0f, out);
}

quant_rows_fn quant_rows_avx2(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_Q4_0: return rows_q4_0;
    case GGML_TYPE_Q4_1: return rows_q4_1;
    case GGML_TYPE_Q5_0: return rows_q5_0;
    case GGML_TYPE_Q5_1: return rows_q5_1;
    default: return NULL;
    }
}

quant_multi_fn quant_multi_avx2(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_Q4_0: return multi_q4_0;
    case GGML_TYPE_Q4_1: return multi_q4_1;
    case GGML_TYPE_Q5_0: return multi_q5_0;
    case GGML_TYPE_Q5_1: return multi_q5_1;
    case GGML_TYPE_Q8_0: return multi_q8_0;
    case GGML_TYPE_F32: return multi_f32;
    case GGML_TYPE_F16: return multi_f16;
    case GGML_TYPE_BF16: return multi_bf16;
    default: return NULL;
    }
}

/* ---- k-quants --------------------------------------------------------------- */

AVX2_FN static inline float dot_q45_k(const unsigned char *w, const quant_q8k_block *a, size_t nb, int five)
{
    size_t bytes = five ? GGML_Q5_K_BLOCK_BYTES : GGML_Q4_K_BLOCK_BYTES;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    float sacc = 0.0f;
    for (size_t b = 0; b < nb; b++, w += bytes) {
        const unsigned char *qs = w + (five ? 48 : 16);
        __m256i qh = five ? load32(w + 16) : _mm256_setzero_si256();
        /* the 6-bit scales and mins, decoded here where the compiler can
         * unroll it (quant_k_scale_min documents the packing) */
        const unsigned char *ps = w + 4;
        int16_t sc[8], m[8];
        for (int j = 0; j < 4; j++) {
            sc[j] = (int16_t)(ps[j] & 63);
            m[j] = (int16_t)(ps[j + 4] & 63);
            sc[j + 4] = (int16_t)((ps[j + 8] & 0x0f) | ((ps[j] >> 6) << 4));
            m[j + 4] = (int16_t)((ps[j + 8] >> 4) | ((ps[j + 4] >> 6) << 4));
        }
        /* mins times the activation sums of their 32 elements (pairs of the
         * 16-element bsums; a pair fits int16: 32 * 127) */
        __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(const void *)a[b].bsums),
                                       _mm_loadu_si128((const __m128i *)(const void *)(a[b].bsums + 8)));
        __m128i mm = _mm_madd_epi16(pairs, _mm_loadu_si128((const __m128i *)(const void *)m));
        mm = _mm_add_epi32(mm, _mm_shuffle_epi32(mm, 0x4e));
        mm = _mm_add_epi32(mm, _mm_shuffle_epi32(mm, 0xb1));
        int32_t summ = _mm_cvtsi128_si32(mm);
        __m256i sumi = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            __m256i raw = load32(qs + 32 * k);
            __m256i lo = _mm256_and_si256(raw, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
            if (five) {
                const __m256i m0 = _mm256_set1_epi8((char)(1 << (2 * k)));
                const __m256i m1 = _mm256_set1_epi8((char)(1 << (2 * k + 1)));
                const __m256i b4 = _mm256_set1_epi8(0x10);
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, m0), m0), b4));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, m1), m1), b4));
            }
            __m256i pl = _mm256_maddubs_epi16(lo, load32(a[b].q + 64 * k));
            __m256i ph = _mm256_maddubs_epi16(hi, load32(a[b].q + 64 * k + 32));
            pl = _mm256_madd_epi16(pl, _mm256_set1_epi16((short)sc[2 * k]));
            ph = _mm256_madd_epi16(ph, _mm256_set1_epi16((short)sc[2 * k + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        float d = half(w) * a[b].d, dmin = half(w + 2) * a[b].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        sacc -= dmin * (float)summ;
    }
    return hsum(acc) + sacc;
}

AVX2_FN static float dot_q4_k(const unsigned char *w, const void *act, size_t nb)
{
    return dot_q45_k(w, act, nb, 0);
}

AVX2_FN static float dot_q5_k(const unsigned char *w, const void *act, size_t nb)
{
    return dot_q45_k(w, act, nb, 1);
}

AVX2_FN static float dot_q6_k(const unsigned char *w, const void *act, size_t nb)
{
    const quant_q8k_block *a = act;
    const __m256i low4 = _mm256_set1_epi8(0x0f), low2 = _mm256_set1_epi8(0x03);
    __m256 acc = _mm256_setzero_ps();
    float sacc = 0.0f;
    for (size_t b = 0; b < nb; b++, w += GGML_Q6_K_BLOCK_BYTES) {
        const signed char *scales = (const signed char *)(w + 192);
        int32_t off = 0;
        for (int g = 0; g < 16; g++)
            off += scales[g] * a[b].bsums[g];
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i ql0 = load32(w + 64 * h), ql1 = load32(w + 64 * h + 32), qh = load32(w + 128 + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4));
            for (int k = 0; k < 4; k++) {
                int g = 8 * h + 2 * k; /* the two 16-element groups of these 32 */
                __m256i p = _mm256_maddubs_epi16(q[k], load32(a[b].q + 128 * h + 32 * k));
                __m256i s = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(scales[g])),
                                                    _mm_set1_epi16(scales[g + 1]), 1);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
            }
        }
        float d = half(w + 208) * a[b].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        sacc -= d * (float)(32 * off);
    }
    return hsum(acc) + sacc;
}

/* ---- activations ------------------------------------------------------------ */

/* quant_matvec.c's quantize_a8 on 32 floats at a time, bit for bit: the
 * same max, the same single multiply by id, the conversion rounding to
 * nearest even as lrintf does (MXCSR's default), the same clamp; the fp16
 * scales are rounded by the caller's f32_to_fp16 as in the portable form. */
AVX2_FN void quant_a8_quantize_avx2(const float *x, size_t nblocks, int q8_1, quant_a8_block *out)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    for (size_t b = 0; b < nblocks; b++, x += 32) {
        __m256 v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_loadu_ps(x + 8 * k);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        __m256 idv = _mm256_set1_ps(id);
        __m256i q[4], sum = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            q[k] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[k], idv)), lo), hi);
            sum = _mm256_add_epi32(sum, q[k]);
        }
        /* int32 -> int8 keeping element order: the packs work within 128-bit
         * lanes, the final permute puts the four 4-byte groups in place */
        __m256i w01 = _mm256_packs_epi32(q[0], q[1]), w23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i b8 = _mm256_packs_epi16(w01, w23);
        b8 = _mm256_permutevar8x32_epi32(b8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(void *)out[b].q, b8);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        int32_t isum = _mm_cvtsi128_si32(s4);
        float dh = fp16_to_f32(f32_to_fp16(d));
        out[b].d = dh;
        out[b].s = q8_1 ? fp16_to_f32(f32_to_fp16(d * (float)isum)) : dh * (float)isum;
    }
}

/* The 32-element types have no single-vector kernel here: quant_matvec runs
 * their multi_* kernels for one vector too. */
quant_dot_fn quant_dot_avx2(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_Q4_K: return dot_q4_k;
    case GGML_TYPE_Q5_K: return dot_q5_k;
    case GGML_TYPE_Q6_K: return dot_q6_k;
    default: return NULL;
    }
}

#else /* not x86-64: the portable kernels are the only ones */

int quant_avx2_usable(void)
{
    return 0;
}

quant_dot_fn quant_dot_avx2(uint32_t type)
{
    (void)type;
    return NULL;
}

quant_multi_fn quant_multi_avx2(uint32_t type)
{
    (void)type;
    return NULL;
}

quant_rows_fn quant_rows_avx2(uint32_t type)
{
    (void)type;
    return NULL;
}

#endif
