/* quant_dot_scalar.c - portable dot products of quantized weight rows with
 * prepared activations: the fallback on CPUs without AVX2 and the only path
 * on other architectures. They compute the same integer sums as the AVX2
 * kernels, so the two differ only by float rounding order. */
#include <string.h>

#include "model/quant_internal.h"

static uint16_t u16le(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float f32le(const unsigned char *p)
{
    uint32_t u = u32le(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- float weights: activations are the float vector itself ------------- */

static float dot_f32(const unsigned char *w, const void *act, size_t n)
{
    const float *x = act;
    float acc[8] = {0};
    for (size_t i = 0; i < n; i++)
        acc[i & 7] += f32le(w + 4 * i) * x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static float dot_f16(const unsigned char *w, const void *act, size_t n)
{
    const float *x = act;
    float acc[8] = {0};
    for (size_t i = 0; i < n; i++)
        acc[i & 7] += fp16_to_f32(u16le(w + 2 * i)) * x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static float dot_bf16(const unsigned char *w, const void *act, size_t n)
{
    const float *x = act;
    float acc[8] = {0};
    for (size_t i = 0; i < n; i++)
        acc[i & 7] += bf16_to_f32(u16le(w + 2 * i)) * x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* ---- 32-element types against a8 blocks -------------------------------- */

/* sum over the block of (unsigned quant) * qx; nibbles as in quant.h. */
static int32_t isum_nibbles(const unsigned char *qs, uint32_t qh, int has_qh, const int8_t *qx)
{
    int32_t sum = 0;
    for (int j = 0; j < 16; j++) {
        int lo = qs[j] & 0x0f, hi = qs[j] >> 4;
        if (has_qh) {
            lo |= (int)((qh >> j) & 1u) << 4;
            hi |= (int)((qh >> (j + 16)) & 1u) << 4;
        }
        sum += lo * qx[j] + hi * qx[j + 16];
    }
    return sum;
}

static float dot_q4_0(const unsigned char *w, const void *act, size_t nb)
{
    const quant_a8_block *a = act;
    float acc = 0.0f;
    for (size_t b = 0; b < nb; b++, w += GGML_Q4_0_BLOCK_BYTES) {
        float d = fp16_to_f32(u16le(w));
        int32_t s = isum_nibbles(w + 2, 0, 0, a[b].q);
        acc += d * (a[b].d * (float)s - 8.0f * a[b].s);
    }
    return acc;
}

static float dot_q4_1(const unsigned char *w, const void *act, size_t nb)
{
    const quant_a8_block *a = act;
    float acc = 0.0f;
    for (size_t b = 0; b < nb; b++, w += GGML_Q4_1_BLOCK_BYTES) {
        float d = fp16_to_f32(u16le(w)), m = fp16_to_f32(u16le(w + 2));
        int32_t s = isum_nibbles(w + 4, 0, 0, a[b].q);
        acc += d * a[b].d * (float)s + m * a[b].s;
    }
    return acc;
}

static float dot_q5_0(const unsigned char *w, const void *act, size_t nb)
{
    const quant_a8_block *a = act;
    float acc = 0.0f;
    for (size_t b = 0; b < nb; b++, w += GGML_Q5_0_BLOCK_BYTES) {
        float d = fp16_to_f32(u16le(w));
        int32_t s = isum_nibbles(w + 6, u32le(w + 2), 1, a[b].q);
        acc += d * (a[b].d * (float)s - 16.0f * a[b].s);
    }
    return acc;
}

static float dot_q5_1(const unsigned char *w, const void *act, size_t nb)
{
    const quant_a8_block *a = act;
    float acc = 0.0f;
    for (size_t b = 0; b < nb; b++, w += GGML_Q5_1_BLOCK_BYTES) {
        float d = fp16_to_f32(u16le(w)), m = fp16_to_f32(u16le(w + 2));
        int32_t s = isum_nibbles(w + 8, u32le(w + 4), 1, a[b].q);
        acc += d * a[b].d * (float)s + m * a[b].s;
    }
    return acc;
}

static float dot_q8_0(const unsigned char *w, const void *act, size_t nb)
{
    const quant_a8_block *a = act;
    float acc = 0.0f;
    for (size_t b = 0; b < nb; b++, w += GGML_Q8_0_BLOCK_BYTES) {
        float d = fp16_to_f32(u16le(w));
        const signed char *q = (const signed char *)(w + 2);
        int32_t s = 0;
        for (int j = 0; j < 32; j++)
            s += q[j] * a[b].q[j];
        acc += d * a[b].d * (float)s;
    }
    return acc;
}

/* ---- k-quants against Q8_K blocks --------------------------------------- */

static float dot_q45_k(const unsigned char *w, const quant_q8k_block *a, size_t nb, int five)
{
    size_t bytes = five ? GGML_Q5_K_BLOCK_BYTES : GGML_Q4_K_BLOCK_BYTES;
    float acc = 0.0f;
    for (size_t b = 0; b < nb; b++, w += bytes) {
        float d = fp16_to_f32(u16le(w)), dmin = fp16_to_f32(u16le(w + 2));
        const unsigned char *qh = five ? w + 16 : NULL;
        const unsigned char *qs = w + (five ? 48 : 16);
        int32_t sumi = 0, summ = 0;
        for (int i = 0; i < 8; i++) {
            int sc, m;
            quant_k_scale_min(w + 4, i, &sc, &m);
            const unsigned char *q = qs + 32 * (i / 2);
            const int8_t *qx = a[b].q + 32 * i;
            int shift = 4 * (i & 1);
            int32_t s = 0;
            for (int l = 0; l < 32; l++) {
                int v = (q[l] >> shift) & 0x0f;
                if (qh)
                    v |= ((qh[l] >> i) & 1) << 4;
                s += v * qx[l];
            }
            sumi += sc * s;
            summ += m * (a[b].bsums[2 * i] + a[b].bsums[2 * i + 1]);
        }
        acc += a[b].d * (d * (float)sumi - dmin * (float)summ);
    }
    return acc;
}

static float dot_q4_k(const unsigned char *w, const void *act, size_t nb)
{
    return dot_q45_k(w, act, nb, 0);
}

static float dot_q5_k(const unsigned char *w, const void *act, size_t nb)
{
    return dot_q45_k(w, act, nb, 1);
}

static float dot_q6_k(const unsigned char *w, const void *act, size_t nb)
{
    const quant_q8k_block *a = act;
    float acc = 0.0f;
    for (size_t b = 0; b < nb; b++, w += GGML_Q6_K_BLOCK_BYTES) {
        const unsigned char *ql = w, *qh = w + 128;
        const signed char *scales = (const signed char *)(w + 192);
        float d = fp16_to_f32(u16le(w + 208));
        int32_t group[16] = {0};
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++) {
                    int lo = (ql[64 * h + l + 32 * (k & 1)] >> (k >= 2 ? 4 : 0)) & 0x0f;
                    int hi = (qh[32 * h + l] >> (2 * k)) & 3;
                    int idx = 128 * h + 32 * k + l;
                    group[idx / 16] += (lo | hi << 4) * a[b].q[idx];
                }
        /* q - 32 per element: subtract 32 * (sum of the 16 activations) */
        int32_t sumi = 0;
        for (int g = 0; g < 16; g++)
            sumi += scales[g] * (group[g] - 32 * a[b].bsums[g]);
        acc += a[b].d * d * (float)sumi;
    }
    return acc;
}

quant_dot_fn quant_dot_scalar(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_F32: return dot_f32;
    case GGML_TYPE_F16: return dot_f16;
    case GGML_TYPE_BF16: return dot_bf16;
    case GGML_TYPE_Q4_0: return dot_q4_0;
    case GGML_TYPE_Q4_1: return dot_q4_1;
    case GGML_TYPE_Q5_0: return dot_q5_0;
    case GGML_TYPE_Q5_1: return dot_q5_1;
    case GGML_TYPE_Q8_0: return dot_q8_0;
    case GGML_TYPE_Q4_K: return dot_q4_k;
    case GGML_TYPE_Q5_K: return dot_q5_k;
    case GGML_TYPE_Q6_K: return dot_q6_k;
    default: return NULL;
    }
}
