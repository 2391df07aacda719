/* quant.c - ggml block layouts, fp16/bf16 conversion and dequantization. */
#include "model/quant.h"

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

_Static_assert(2 + 16 == 18, "Q4_0 block is 18 bytes");
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
    return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 ||
           type == GGML_TYPE_Q8_0;
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
