/* ops_cpu.h - the CPU kernels of the encoder: linear layers on OpenBLAS
 * sgemm, layer norm, GELU (erf form), masked softmax attention, pooling.
 *
 * All tensors are row-major float arrays. These functions are single-threaded
 * C apart from the sgemm calls in ops_linear and ops_attention, which use
 * OpenBLAS's own thread pool; they keep no state, so any number of threads
 * may call them on separate data. The encoder's CPU forward pass
 * (encoder_cpu.c) runs its products on model/gemm_cpu instead and calls the
 * element-wise ones here from its own threads; ops_linear and ops_attention
 * stay as the plain references the other backends are checked against. */
#ifndef RAGD_MODEL_OPS_CPU_H
#define RAGD_MODEL_OPS_CPU_H

#include <stddef.h>
#include <stdint.h>

/* y[rows, out] = x[rows, in] * W^T + bias, with W [out, in] as Hugging Face
 * stores nn.Linear weights. bias may be NULL. */
void ops_linear(const float *x, size_t rows, size_t in, const float *w, const float *bias, size_t out, float *y);

/* x[rows, n] <- layer_norm(x (+ res when res is non-NULL)) * gamma + beta,
 * statistics per row, biased variance, eps inside the square root. */
void ops_add_layernorm(float *x, const float *res, size_t rows, size_t n, const float *gamma, const float *beta,
                       float eps);

/* x <- 0.5 x (1 + erf(x / sqrt 2)), the exact GELU of BERT's "gelu"
 * (through erfc, relative error within ~3e-7 of the float result of erff;
 * AVX2 when the CPU has it). */
void ops_gelu(float *x, size_t n);

/* Softmax of x[0..n) in place. */
void ops_softmax(float *x, size_t n);

/* Softmax of scale * x[0..n) in place (scale > 0); -INFINITY entries get
 * 0, and a row of nothing but -INFINITY becomes all zeros. */
void ops_softmax_scaled(float *x, size_t n, float scale);

/* ops_softmax_scaled without the division: x <- exp(scale (x - max x)),
 * returning the sum (0 for a row of -INFINITY, then all zeros), so that a
 * caller can divide a smaller product instead (attention divides the
 * context row, d values, rather than the scores row). */
float ops_softmax_unnormalized(float *x, size_t n, float scale);

/* Multi-head scaled dot-product attention over a padded batch.
 * q, k, v, ctx: [B*T, H] (head h is columns h*d .. h*d+d-1, d = H/heads);
 * mask [B*T]: 0 marks a padded key that no query may attend to.
 * scores: scratch of T*T floats. A sequence with no unmasked key gets a
 * zero context. */
void ops_attention(const float *q, const float *k, const float *v, const int32_t *mask, size_t B, size_t T, size_t H,
                   size_t heads, float *ctx, float *scores);

/* out[H] = mean of hidden[t, H] over the tokens t with mask[t] != 0
 * (zeros when there are none). */
void ops_mean_pool(const float *hidden, const int32_t *mask, size_t T, size_t H, float *out);

/* x[0..n) /= max(||x||_2, 1e-12), as torch.nn.functional.normalize. */
void ops_l2_normalize(float *x, size_t n);

#endif
