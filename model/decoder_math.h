/* decoder_math.h - the decoder's element-wise math (RMSNorm, SwiGLU,
 * attention softmax) in the arithmetic of llama.cpp's CPU backend, bit for bit.
 *
 * Why not plain libm: the decoder quantizes activations to 8 bits before
 * every weight product, so an exp one unit in the last place away from
 * llama.cpp's flips some of those roundings, and on a small Q4_1 model the
 * flips add up to ~1e-2 relative error in the logits (tests/unit/
 * test_decoder.c compares with llama.cpp; docs/internals/decoder.md, "Arithmetic order
 * matters"). llama.cpp built for an AVX-512 CPU (the reference) takes its
 * exponential from ggml_v_expf, a polynomial good to ~1.5 units in the last
 * place, on 16 floats at a time; these functions compute the same floats on
 * AVX2 (8 lanes, lane for lane the same operations) or in portable C with
 * fmaf. */
#ifndef RAGD_MODEL_DECODER_MATH_H
#define RAGD_MODEL_DECODER_MATH_H

#include <stddef.h>

/* y[i] = e^x[i] as ggml_v_expf computes it (y may be x). */
void dec_math_exp(float *y, const float *x, size_t n);

/* g <- SiLU(g) * u over rows x width floats, as ggml's swiglu: per row,
 * blocks of 16 through the vector exp (g / (1 + e^-g) * u), the last
 * width % 16 with libm's expf (ggml's scalar tail). */
void dec_math_swiglu(float *g, const float *u, size_t rows, size_t width);

/* out = x / sqrt(mean(x^2) + eps) * w over n floats, as ggml's rms_norm:
 * each square in float, their sum in double in index order (the CUDA
 * decoder's RMSNorm gives this mean bit for bit, its tree sum checked).
 * out may be x. */
void dec_math_rmsnorm(const float *x, const float *w, size_t n, float eps, float *out);

/* x[0..n) <- softmax(x) as ggml's soft_max: e^(x - max) through the vector
 * exp, summed per 16 positions (a block's halving tree, as
 * _mm512_reduce_add_ps) into a double, each value then multiplied by the
 * float nearest 1/sum. A row that is all -INFINITY becomes zeros. */
void dec_math_softmax(float *x, size_t n);

#endif
