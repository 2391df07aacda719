/* quant_rand.h - reproducible random inputs for the tests of the products
 * on quantized weights: floats from a fixed xorshift64* sequence, and GGUF
 * blocks of any type with random quants and realistic, finite scales. */
#ifndef RAGD_TESTS_QUANT_RAND_H
#define RAGD_TESTS_QUANT_RAND_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/quant.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static inline float frand(float lo, float hi) /* xorshift64*: reproducible */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 2685821657736338717ull;
    return lo + (hi - lo) * (float)((r >> 40) / 16777216.0);
}

static inline float *rand_vec(size_t n, float lo, float hi)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = frand(lo, hi);
    return v;
}

/* Random GGUF blocks of a type: random quants, scale fields set to finite
 * fp16 values of a realistic size (random bytes there could be inf/NaN). */
static inline void rand_blocks(uint32_t type, unsigned char *b, size_t n_blocks, size_t bb)
{
    for (size_t i = 0; i < n_blocks * bb; i++)
        b[i] = (unsigned char)(frand(0, 256));
    for (size_t k = 0; k < n_blocks; k++) {
        unsigned char *blk = b + k * bb;
        uint16_t d = f32_to_fp16(frand(1e-3f, 2e-2f)), m = f32_to_fp16(frand(-0.2f, 0.2f));
        size_t at_d = type == GGML_TYPE_Q6_K ? 208 : 0;
        memcpy(blk + at_d, &d, 2);
        if (type == GGML_TYPE_Q4_1 || type == GGML_TYPE_Q5_1 || type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q5_K) {
            if (type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q5_K) /* dmin: positive, subtracted */
                m = f32_to_fp16(frand(1e-3f, 2e-2f));
            memcpy(blk + 2, &m, 2);
        }
    }
}

#endif
