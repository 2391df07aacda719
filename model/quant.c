/* quant.c - ggml block layouts, fp16/bf16 conversion and dequantization. */
#include "model/quant.h"
#include "model/quant_internal.h"

#include <math.h>
#include <string.h>

typedef struct type_layout {
    const char *name;
    uint32_t block_elems;
    uint32_t block_bytes;
} type_layout;

/* Sizes from the GGUF specification's ggml_type list and the block structs
 * of ggml-common.h (QK_K = 256). A zero entry is a removed or unknown type. */
static const type_layout LAYOUTS[GGML_TYPE_COUNT] = {
    [GGML_TYPE_F32] = {"F32", 1, 4},
    [GGML_TYPE_F16] = {"F16", 1, 2},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 2 + 16},
    [GGML_TYPE_Q4_1] = {"Q4_1", 32, 2 + 2 + 16},
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 2 + 4 + 16},
    [GGML_TYPE_Q5_1] = {"Q5_1", 32, 2 + 2 + 4 + 16},
    [GGML_TYPE_Q8_0] = {"Q8_0", GGML_QK8_0, GGML_Q8_0_BLOCK_BYTES},
    [GGML_TYPE_Q8_1] = {"Q8_1", 32, 2 + 2 + 32},
    [GGML_TYPE_Q2_K] = {"Q2_K", GGML_QK_K, 16 + 64 + 2 + 2},           /* 84 */
    [GGML_TYPE_Q3_K] = {"Q3_K", GGML_QK_K, 32 + 64 + 12 + 2},          /* 110 */
    [GGML_TYPE_Q4_K] = {"Q4_K", GGML_QK_K, 2 + 2 + 12 + 128},          /* 144 */
    [GGML_TYPE_Q5_K] = {"Q5_K", GGML_QK_K, 2 + 2 + 12 + 32 + 128},     /* 176 */
    [GGML_TYPE_Q6_K] = {"Q6_K", GGML_QK_K, 128 + 64 + 16 + 2},         /* 210 */
    [GGML_TYPE_Q8_K] = {"Q8_K", GGML_QK_K, 4 + 256 + 16 * 2},          /* 292 */
    [GGML_TYPE_IQ2_XXS] = {"IQ2_XXS", GGML_QK_K, 2 + 32 * 2},          /* 66 */
    [GGML_TYPE_IQ2_XS] = {"IQ2_XS", GGML_QK_K, 2 + 32 * 2 + 8},        /* 74 */
    [GGML_TYPE_IQ3_XXS] = {"IQ3_XXS", GGML_QK_K, 2 + 96},              /* 98 */
    [GGML_TYPE_IQ1_S] = {"IQ1_S", GGML_QK_K, 2 + 32 + 8 * 2},          /* 50 */
    [GGML_TYPE_IQ4_NL] = {"IQ4_NL", 32, 2 + 16},                       /* 18 */
    [GGML_TYPE_IQ3_S] = {"IQ3_S", GGML_QK_K, 2 + 64 + 8 + 32 + 4},     /* 110 */
    [GGML_TYPE_IQ2_S] = {"IQ2_S", GGML_QK_K, 2 + 64 + 8 + 8},          /* 82 */
    [GGML_TYPE_IQ4_XS] = {"IQ4_XS", GGML_QK_K, 2 + 2 + 4 + 128},       /* 136 */
    [GGML_TYPE_I8] = {"I8", 1, 1},
    [GGML_TYPE_I16] = {"I16", 1, 2},
    [GGML_TYPE_I32] = {"I32", 1, 4},
    [GGML_TYPE_I64] = {"I64", 1, 8},
    [GGML_TYPE_F64] = {"F64", 1, 8},
    [GGML_TYPE_IQ1_M] = {"IQ1_M", GGML_QK_K, 32 + 16 + 8},             /* 56 */
    [GGML_TYPE_BF16] = {"BF16", 1, 2},
    [GGML_TYPE_TQ1_0] = {"TQ1_0", GGML_QK_K, 48 + 4 + 2},              /* 54 */
    [GGML_TYPE_TQ2_0] = {"TQ2_0", GGML_QK_K, 64 + 2},                  /* 66 */
    [GGML_TYPE_MXFP4] = {"MXFP4", 32, 1 + 16},                         /* 17 */
};

_Static_assert(2 + 16 == GGML_Q4_0_BLOCK_BYTES, "Q4_0 block is fp16 d + 16 nibble bytes");
_Static_assert(2 + 2 + 16 == GGML_Q4_1_BLOCK_BYTES, "Q4_1 block is fp16 d, m + 16 nibble bytes");
_Static_assert(2 + 4 + 16 == GGML_Q5_0_BLOCK_BYTES, "Q5_0 block is fp16 d + u32 qh + 16 nibble bytes");
_Static_assert(2 + 2 + 4 + 16 == GGML_Q5_1_BLOCK_BYTES, "Q5_1 block is fp16 d, m + u32 qh + 16 bytes");
_Static_assert(2 + 2 + 12 + 128 == GGML_Q4_K_BLOCK_BYTES, "Q4_K block");
_Static_assert(2 + 2 + 12 + 32 + 128 == GGML_Q5_K_BLOCK_BYTES, "Q5_K block");
_Static_assert(128 + 64 + 16 + 2 == GGML_Q6_K_BLOCK_BYTES, "Q6_K block");
_Static_assert(4 + 256 + 16 * 2 == GGML_Q8_K_BLOCK_BYTES, "Q8_K block");
_Static_assert(GGML_Q8_0_BLOCK_BYTES == 2 + GGML_QK8_0, "Q8_0 block is fp16 d + 32 int8");

static const type_layout *layout_of(uint32_t type)
{
    if (type >= GGML_TYPE_COUNT || LAYOUTS[type].name == NULL)
        return NULL;
    return &LAYOUTS[type];
}

const char *ggml_type_name(uint32_t type)
{
    const type_layout *l = layout_of(type);
    return l ? l->name : NULL;
}

int ggml_type_layout(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes)
{
    const type_layout *l = layout_of(type);
    if (!l)
        return 0;
    if (block_elems)
        *block_elems = l->block_elems;
    if (block_bytes)
        *block_bytes = l->block_bytes;
    return 1;
}

rg_status ggml_row_bytes(uint32_t type, uint64_t n, size_t *bytes, rg_err *e)
{
    const type_layout *l = layout_of(type);
    if (!l)
        return rg_error(e, RG_ERR_UNSUPPORTED, "unsupported tensor type %u", (unsigned)type);
    if (n % l->block_elems != 0)
        return rg_error(e, RG_ERR_INVALID, "%llu elements of type %s are not a whole number of %u-element blocks",
                        (unsigned long long)n, l->name, (unsigned)l->block_elems);
    uint64_t blocks = n / l->block_elems;
    if (blocks > SIZE_MAX / l->block_bytes)
        return rg_error(e, RG_ERR_INVALID, "%llu elements of type %s overflow the address space",
                        (unsigned long long)n, l->name);
    *bytes = (size_t)(blocks * l->block_bytes);
    return RG_OK;
}

int dequantize_supported(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K: case GGML_TYPE_Q8_K:
        return 1;
    default:
        return 0;
    }
}

/* ---- scalar conversions ------------------------------------------------ */

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf / NaN (payload kept) */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13); /* 127 - 15 = 112 */
    } else if (man == 0) {
        bits = sign; /* signed zero */
    } else {
        /* subnormal: man * 2^-24, exact in float */
        float v = (float)man * 5.9604644775390625e-08f;
        bits = sign | f32_bits(v);
    }
    return f32_from_bits(bits);
}

uint16_t f32_to_fp16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or NaN */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
    if (ax >= 0x477ff000u) /* >= 65520 rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below the smallest normal half (2^-14) */
        if (ax < 0x33000000u) /* < 2^-25: rounds to zero */
            return sign;
        /* subnormal half: value / 2^-24, rounded to nearest even */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* 14..24 for e in 102..112 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    /* normal half */
    uint32_t e = (ax >> 23) - 112u;
    uint32_t m = ax & 0x7fffffu;
    uint32_t q = (e << 10) | (m >> 13);
    uint32_t rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
        q++; /* may carry into the exponent, which is correct */
    return (uint16_t)(sign | q);
}

float bf16_to_f32(uint16_t b)
{
    return f32_from_bits((uint32_t)b << 16);
}

uint16_t f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static uint16_t load_u16le(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t load_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- block decoders (ggml's reference arithmetic, in float) -------------- */

/* The 32-element types: element j < 16 is the low nibble of qs[j], j + 16
 * its high nibble; the fifth bit of element j is bit j of qh. */
static void dequant_legacy_block(uint32_t type, const unsigned char *blk, float *out)
{
    float d = fp16_to_f32(load_u16le(blk));
    float m = 0.0f;
    uint32_t qh = 0;
    const unsigned char *qs;
    switch (type) {
    case GGML_TYPE_Q4_0: qs = blk + 2; break;
    case GGML_TYPE_Q4_1: m = fp16_to_f32(load_u16le(blk + 2)); qs = blk + 4; break;
    case GGML_TYPE_Q5_0: qh = load_u32le(blk + 2); qs = blk + 6; break;
    default: /* Q5_1 */ m = fp16_to_f32(load_u16le(blk + 2)); qh = load_u32le(blk + 4); qs = blk + 8; break;
    }
    for (int j = 0; j < 16; j++) {
        int lo = qs[j] & 0x0f, hi = qs[j] >> 4;
        if (type == GGML_TYPE_Q5_0 || type == GGML_TYPE_Q5_1) {
            lo |= (int)((qh >> j) & 1u) << 4;
            hi |= (int)((qh >> (j + 16)) & 1u) << 4;
        }
        switch (type) {
        case GGML_TYPE_Q4_0: out[j] = d * (float)(lo - 8); out[j + 16] = d * (float)(hi - 8); break;
        case GGML_TYPE_Q5_0: out[j] = d * (float)(lo - 16); out[j + 16] = d * (float)(hi - 16); break;
        default: /* the _1 types: d * q + m, rounded after each step as in ggml */
            out[j] = d * (float)lo + m;
            out[j + 16] = d * (float)hi + m;
            break;
        }
    }
}

void quant_k_scale_min(const unsigned char *scales, int j, int *sc, int *m)
{
    /* 8 six-bit scales and 8 six-bit mins in 12 bytes: bytes 0-3 hold the
     * low 6 bits of scales 0-3 (top 2 bits: high bits of scales 4-7), bytes
     * 4-7 the same for mins, bytes 8-11 the low nibbles of scales 4-7 (low)
     * and mins 4-7 (high). */
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4);
        *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

/* Q4_K / Q5_K: sub-block 2k takes the low nibbles of qs[32k..32k+31],
 * sub-block 2k+1 their high nibbles; Q5_K's fifth bit of element l of
 * sub-block i is bit i of qh[l]. */
static void dequant_q45k_block(uint32_t type, const unsigned char *blk, float *out)
{
    float d = fp16_to_f32(load_u16le(blk));
    float dmin = fp16_to_f32(load_u16le(blk + 2));
    const unsigned char *scales = blk + 4;
    const unsigned char *qh = type == GGML_TYPE_Q5_K ? blk + 16 : NULL;
    const unsigned char *qs = blk + (type == GGML_TYPE_Q5_K ? 48 : 16);
    for (int i = 0; i < 8; i++) {
        int sc, m;
        quant_k_scale_min(scales, i, &sc, &m);
        float dl = d * (float)sc, ml = dmin * (float)m;
        const unsigned char *q = qs + 32 * (i / 2);
        int shift = 4 * (i & 1);
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> shift) & 0x0f;
            if (qh)
                v |= ((qh[l] >> i) & 1) << 4;
            out[32 * i + l] = dl * (float)v - ml;
        }
    }
}

/* Q6_K: two halves of 128; in half h, element 32k + l (k = 0..3) takes its
 * low 4 bits from ql[64h + l + 32(k&1)] (high nibble when k >= 2) and its top
 * 2 bits from bits 2k of qh[32h + l]; 16-element sub-block s has scale
 * scales[s]. */
static void dequant_q6k_block(const unsigned char *blk, float *out)
{
    const unsigned char *ql = blk, *qh = blk + 128;
    const signed char *scales = (const signed char *)(blk + 192);
    float d = fp16_to_f32(load_u16le(blk + 208));
    for (int h = 0; h < 2; h++) {
        for (int k = 0; k < 4; k++) {
            for (int l = 0; l < 32; l++) {
                int lo = (ql[64 * h + l + 32 * (k & 1)] >> (k >= 2 ? 4 : 0)) & 0x0f;
                int hi = (qh[32 * h + l] >> (2 * k)) & 3;
                int idx = 128 * h + 32 * k + l;
                float dl = d * (float)scales[idx / 16];
                out[idx] = dl * (float)((lo | hi << 4) - 32);
            }
        }
    }
}

/* ---- rows ---------------------------------------------------------------- */

rg_status dequantize_row(uint32_t type, const void *src, float *dst, size_t n, rg_err *e)
{
    const unsigned char *p = src;
    const type_layout *l = layout_of(type);
    if (!l)
        return rg_error(e, RG_ERR_UNSUPPORTED, "unsupported tensor type %u", (unsigned)type);
    if (!dequantize_supported(type))
        return rg_error(e, RG_ERR_UNSUPPORTED, "unsupported tensor type %u (%s): not dequantized by ragd",
                        (unsigned)type, l->name);
    if (n % l->block_elems != 0)
        return rg_error(e, RG_ERR_INVALID, "%zu elements of type %s are not a whole number of %u-element blocks",
                        n, l->name, (unsigned)l->block_elems);
    if (quant_avx2_usable() && quant_dequant_avx2(type, p, dst, n / l->block_elems))
        return RG_OK;
    switch (type) {
    case GGML_TYPE_F32:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                         (uint32_t)p[4 * i + 3] << 24;
            dst[i] = f32_from_bits(u);
        }
        break;
    case GGML_TYPE_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = fp16_to_f32(load_u16le(p + 2 * i));
        break;
    case GGML_TYPE_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = bf16_to_f32(load_u16le(p + 2 * i));
        break;
    case GGML_TYPE_Q8_0:
        for (size_t b = 0; b < n / GGML_QK8_0; b++) {
            const unsigned char *blk = p + b * GGML_Q8_0_BLOCK_BYTES;
            float d = fp16_to_f32(load_u16le(blk));
            const signed char *qs = (const signed char *)(blk + 2);
            float *out = dst + b * GGML_QK8_0;
            for (int j = 0; j < GGML_QK8_0; j++)
                out[j] = d * (float)qs[j];
        }
        break;
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q5_1:
        for (size_t b = 0; b < n / 32; b++)
            dequant_legacy_block(type, p + b * l->block_bytes, dst + b * 32);
        break;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
        for (size_t b = 0; b < n / GGML_QK_K; b++)
            dequant_q45k_block(type, p + b * l->block_bytes, dst + b * GGML_QK_K);
        break;
    case GGML_TYPE_Q6_K:
        for (size_t b = 0; b < n / GGML_QK_K; b++)
            dequant_q6k_block(p + b * GGML_Q6_K_BLOCK_BYTES, dst + b * GGML_QK_K);
        break;
    case GGML_TYPE_Q8_K:
        for (size_t b = 0; b < n / GGML_QK_K; b++) {
            const unsigned char *blk = p + b * GGML_Q8_K_BLOCK_BYTES;
            float d = f32_from_bits((uint32_t)blk[0] | (uint32_t)blk[1] << 8 | (uint32_t)blk[2] << 16 |
                                    (uint32_t)blk[3] << 24);
            for (int j = 0; j < GGML_QK_K; j++)
                dst[b * GGML_QK_K + (size_t)j] = d * (float)(signed char)blk[4 + j];
        }
        break;
    default:
        return rg_error(e, RG_ERR_INTERNAL, "dequantize_row: type %u fell through", (unsigned)type);
    }
    return RG_OK;
}

rg_status quantize_row_q8_0(const float *src, void *dst, size_t n, rg_err *e)
{
    if (n % GGML_QK8_0 != 0)
        return rg_error(e, RG_ERR_INVALID, "Q8_0 needs a multiple of %d elements, got %zu", GGML_QK8_0, n);
    unsigned char *out = dst;
    for (size_t b = 0; b < n / GGML_QK8_0; b++) {
        const float *x = src + b * GGML_QK8_0;
        unsigned char *blk = out + b * GGML_Q8_0_BLOCK_BYTES;
        float amax = 0.0f;
        for (int j = 0; j < GGML_QK8_0; j++) {
            float a = fabsf(x[j]);
            if (a > amax)
                amax = a;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t h = f32_to_fp16(d);
        blk[0] = (unsigned char)(h & 0xff);
        blk[1] = (unsigned char)(h >> 8);
        for (int j = 0; j < GGML_QK8_0; j++)
            blk[2 + j] = (unsigned char)(signed char)roundf(x[j] * id);
    }
    return RG_OK;
}

rg_status quantize_row_q8_k(const float *src, void *dst, size_t n, rg_err *e)
{
    if (n % GGML_QK_K != 0)
        return rg_error(e, RG_ERR_INVALID, "Q8_K needs a multiple of %d elements, got %zu", GGML_QK_K, n);
    unsigned char *out = dst;
    for (size_t b = 0; b < n / GGML_QK_K; b++) {
        const float *x = src + b * GGML_QK_K;
        unsigned char *blk = out + b * GGML_Q8_K_BLOCK_BYTES;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < GGML_QK_K; j++) {
            float a = fabsf(x[j]);
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        float d = 0.0f;
        signed char q[GGML_QK_K];
        if (amax == 0.0f) {
            memset(q, 0, sizeof q);
        } else {
            /* the signed extreme maps to -127 exactly, as in ggml */
            float iscale = -127.0f / max;
            for (int j = 0; j < GGML_QK_K; j++) {
                long v = lrintf(iscale * x[j]);
                q[j] = (signed char)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
            d = 1.0f / iscale;
        }
        uint32_t db = f32_bits(d);
        for (int k = 0; k < 4; k++)
            blk[k] = (unsigned char)(db >> (8 * k));
        memcpy(blk + 4, q, GGML_QK_K);
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += q[16 * g + j];
            blk[260 + 2 * g] = (unsigned char)((unsigned)sum & 0xff);
            blk[260 + 2 * g + 1] = (unsigned char)(((unsigned)sum >> 8) & 0xff);
        }
    }
    return RG_OK;
}
