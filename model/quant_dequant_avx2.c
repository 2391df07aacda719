/* quant_dequant_avx2.c - AVX2 dequantization of the 32-element block types
 * that common GGUF files hold most (Q4_0, Q4_1, Q8_0), and the rounding of
 * activations to fp16 / bf16 for F16 / BF16 weights (quant_round_act_avx2,
 * end of file). The dequantization is for the decoder's f32
 * products, which dequantize every weight tile on each call
 * (decoder_matmul.c): the portable per-element loop made that a quarter of
 * the reranker's time.
 *
 * Results are bitwise those of dequantize_row's portable code (test_quant
 * checks): the same fp16 scale conversion (exact either way), the same
 * operations in float. d * q is exact (an 11-bit significand times a
 * value of at most 8 bits), so whether a compiler fuses Q4_1's + m into it
 * cannot change a result; the file still asks for no FMA. */
#include "model/quant_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <string.h>

#define DQ_FN __attribute__((target("avx2,f16c")))

DQ_FN static inline __m256 half_bcast(const unsigned char *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _mm256_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h))));
}

/* Eight bytes (zero- or sign-extended) to eight floats. */
DQ_FN static inline __m256 u8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }
DQ_FN static inline __m256 i8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

/* Q4_0 (d, 16 bytes of nibbles) and Q4_1 (d, m, nibbles): element j < 16 is
 * qs[j]'s low nibble, j + 16 its high one. Q4_0 is d * (q - 8), the
 * subtraction in integers; Q4_1 is d * q + m. */
DQ_FN static void dequant_q4(const unsigned char *p, float *out, size_t nblocks, int has_min)
{
    const size_t bytes = has_min ? GGML_Q4_1_BLOCK_BYTES : GGML_Q4_0_BLOCK_BYTES;
    const __m128i low4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    for (size_t b = 0; b < nblocks; b++, p += bytes, out += 32) {
        __m256 d = half_bcast(p);
        const unsigned char *qs = p + (has_min ? 4 : 2);
        __m128i q = _mm_loadu_si128((const __m128i *)(const void *)qs);
        __m128i lo = _mm_and_si128(q, low4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), low4);
        __m256 v[4];
        if (has_min) {
            v[0] = u8_to_ps(lo), v[1] = u8_to_ps(_mm_srli_si128(lo, 8));
            v[2] = u8_to_ps(hi), v[3] = u8_to_ps(_mm_srli_si128(hi, 8));
            __m256 m = half_bcast(p + 2);
            for (int i = 0; i < 4; i++)
                _mm256_storeu_ps(out + 8 * i, _mm256_add_ps(_mm256_mul_ps(d, v[i]), m));
        } else {
            lo = _mm_sub_epi8(lo, eight), hi = _mm_sub_epi8(hi, eight);
            v[0] = i8_to_ps(lo), v[1] = i8_to_ps(_mm_srli_si128(lo, 8));
            v[2] = i8_to_ps(hi), v[3] = i8_to_ps(_mm_srli_si128(hi, 8));
            for (int i = 0; i < 4; i++)
                _mm256_storeu_ps(out + 8 * i, _mm256_mul_ps(d, v[i]));
        }
    }
}

DQ_FN static void dequant_q8_0(const unsigned char *p, float *out, size_t nblocks)
{
    for (size_t b = 0; b < nblocks; b++, p += GGML_Q8_0_BLOCK_BYTES, out += 32) {
        __m256 d = half_bcast(p);
        for (int i = 0; i < 4; i++) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(const void *)(p + 2 + 8 * i));
            _mm256_storeu_ps(out + 8 * i, _mm256_mul_ps(d, i8_to_ps(q)));
        }
    }
}

int quant_dequant_avx2(uint32_t type, const unsigned char *src, float *dst, size_t nblocks)
{
    switch (type) {
    case GGML_TYPE_Q4_0: dequant_q4(src, dst, nblocks, 0); return 1;
    case GGML_TYPE_Q4_1: dequant_q4(src, dst, nblocks, 1); return 1;
    case GGML_TYPE_Q8_0: dequant_q8_0(src, dst, nblocks); return 1;
    default: return 0;
    }
}

/* Activations rounded to fp16 / bf16 for F16 / BF16 weights, eight at a
 * time, bitwise as quant_matvec.c's portable loop for every non-NaN value
 * (F16C's conversion rounds to nearest even, subnormals and overflow to
 * infinity included; bf16 is the same integer rounding); a NaN stays a NaN.
 * Returns the count done (a multiple of 8); the caller finishes the rest. */
DQ_FN size_t quant_round_act_avx2(uint32_t type, const float *x, size_t n, float *out)
{
    size_t i = 0;
    if (type == GGML_TYPE_F16) {
        for (; i + 8 <= n; i += 8) {
            __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
        }
    } else if (type == GGML_TYPE_BF16) {
        const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
        const __m256i quiet = _mm256_set1_epi32(0x400000), half = _mm256_set1_epi32(0x7fff);
        const __m256i one = _mm256_set1_epi32(1), top = _mm256_set1_epi32((int)0xffff0000u);
        for (; i + 8 <= n; i += 8) {
            __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
            __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
            __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(half, odd));
            r = _mm256_blendv_epi8(r, _mm256_or_si256(u, quiet), nan);
            _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_and_si256(r, top)));
        }
    }
    return i;
}

#else /* not x86-64 */

int quant_dequant_avx2(uint32_t type, const unsigned char *src, float *dst, size_t nblocks)
{
    (void)type, (void)src, (void)dst, (void)nblocks;
    return 0;
}

size_t quant_round_act_avx2(uint32_t type, const float *x, size_t n, float *out)
{
    (void)type, (void)x, (void)n, (void)out;
    return 0;
}

#endif
