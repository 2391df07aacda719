/* quant_dequant_avx2.c - AVX2 dequantization of the 32-element block types
 * that common GGUF files hold most (Q4_0, Q4_1, Q8_0), for the decoder's f32
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

#else /* not x86-64 */

int quant_dequant_avx2(uint32_t type, const unsigned char *src, float *dst, size_t nblocks)
{
    (void)type, (void)src, (void)dst, (void)nblocks;
    return 0;
}

#endif
