/* cache_rand.h - random KV caches in host memory for the CUDA decoder's
 * attention tests (model/decoder_cuda_ops.h): keys and values uniform in
 * [-2, 2], as fp16 bits or floats. CUDA builds only. */
#ifndef RAGD_TESTS_CACHE_RAND_H
#define RAGD_TESTS_CACHE_RAND_H

#include <stdint.h>
#include <stdlib.h>

#include "quant_rand.h"
#include "model/decoder_cuda_ops.h"
#include "model/quant.h"

/* n_elem keys and as many values (all layers and positions of the cache). */
static inline void fill_cache(dec_cuda_ops_cache *c, size_t n_elem, int half)
{
    size_t es = half ? 2 : 4;
    c->half = half;
    c->k = malloc(n_elem * es);
    c->v = malloc(n_elem * es);
    for (size_t i = 0; i < n_elem; i++) {
        float a = frand(-2, 2), b = frand(-2, 2);
        if (half) {
            ((uint16_t *)c->k)[i] = f32_to_fp16(a);
            ((uint16_t *)c->v)[i] = f32_to_fp16(b);
        } else {
            ((float *)c->k)[i] = a;
            ((float *)c->v)[i] = b;
        }
    }
}

#endif
