/* ops_cuda.h - the encoder's CUDA kernels on host arrays, so tests can check
 * each one against its CPU counterpart in model/ops_cpu.h on random inputs.
 *
 * Each call uploads its inputs, runs the same launcher the CUDA encoder
 * runs (model/ops_cuda.cuh), downloads the result and frees what it
 * allocated; it is meant for checking, not speed. Inputs that the encoder
 * feeds to cuBLAS in fp16 are rounded to fp16 on the way in, and fp16
 * results come back widened to float, so a test compares exactly what the
 * encoder computes. Only declared when the CUDA backend is compiled in
 * (RAGD_HAVE_CUDA); they need a device (backend_cuda_devices() > 0). */
#ifndef RAGD_MODEL_OPS_CUDA_H
#define RAGD_MODEL_OPS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#ifdef RAGD_HAVE_CUDA

/* y[rows, out] = x[rows, in] * W^T (no bias) in fp16 with fp32 accumulation. */
rg_status ops_cuda_linear(const float *x, size_t rows, size_t in, const float *w, size_t out, float *y, rg_err *e);

/* x[B*T, H] = LayerNorm(word[ids] + pos[t] + type[types]) (types may be
 * NULL); ids and types must be in range of the tables. */
rg_status ops_cuda_embed_layernorm(const int32_t *ids, const int32_t *types, size_t B, size_t T, size_t H,
                                   const float *word, size_t vocab, const float *pos, size_t n_pos, const float *type,
                                   size_t n_types, const float *gamma, const float *beta, float eps, float *x,
                                   rg_err *e);

/* x[rows, n] <- LayerNorm(x + y + bias) (y, bias may be NULL). */
rg_status ops_cuda_add_layernorm(float *x, const float *y, const float *bias, size_t rows, size_t n,
                                 const float *gamma, const float *beta, float eps, rg_err *e);

/* out = gelu(y + bias) rounded to fp16 (bias may be NULL). */
rg_status ops_cuda_bias_gelu(const float *y, const float *bias, size_t rows, size_t n, float *out, rg_err *e);

/* As ops_attention: q, k, v, ctx [B*T, H]; mask [B*T]. ctx is rounded to
 * fp16, as the encoder feeds it to the output projection. */
rg_status ops_cuda_attention(const float *q, const float *k, const float *v, const int32_t *mask, size_t B, size_t T,
                             size_t H, size_t heads, float *ctx, rg_err *e);

/* out[B, H]: mean (cls = 0) or first-token (cls = 1) pooling of hidden
 * [B, T, H] under mask [B*T], L2-normalized when normalize is set. */
rg_status ops_cuda_pool(const float *hidden, const int32_t *mask, size_t B, size_t T, size_t H, int cls,
                        int normalize, float *out, rg_err *e);

#endif

#endif
