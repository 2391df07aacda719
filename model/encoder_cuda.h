/* encoder_cuda.h - the BERT encoder on a CUDA GPU (model/encoder_cuda.cu).
 *
 * encoder.c creates one when the encoder is loaded for --device cuda (or
 * auto with a GPU present): the weights are uploaded once, the products'
 * weights in fp16 (fp32 accumulation), embedding tables, biases and layer
 * norm parameters in fp32 (see model/ops_cuda.cuh for why fp16).
 *
 * Threads: one CUDA stream and one cuBLAS handle per encoder; calls from
 * several threads are serialized by a mutex inside (the embedder engine
 * calls from one worker thread anyway). Activation buffers grow to the
 * largest batch seen and are kept; a failed allocation is an rg_err, and
 * the encoder stays usable for smaller batches. Only declared when the CUDA
 * backend is compiled in (RAGD_HAVE_CUDA). */
#ifndef RAGD_MODEL_ENCODER_CUDA_H
#define RAGD_MODEL_ENCODER_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/encoder.h"

#ifdef RAGD_HAVE_CUDA

typedef struct rg_encoder_cuda rg_encoder_cuda;

/* Uploads enc's weights to device 0. desc (may be NULL) gets a one-line
 * description of the device used. */
rg_status encoder_cuda_create(const rg_encoder *enc, rg_encoder_cuda **out, char *desc, size_t desc_size, rg_err *e);
void encoder_cuda_free(rg_encoder_cuda *c); /* NULL is fine */

/* The transformer on ids, type_ids (may be NULL), mask [B, T], already
 * range-checked by encoder_forward -> hidden [B, T, H] on the host. */
rg_status encoder_cuda_forward(rg_encoder_cuda *c, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                               size_t B, size_t T, float *hidden, rg_err *e);

/* The transformer plus pooling (mean or CLS) and optional L2 normalization
 * on the device; only out [B, H] comes back to the host. */
rg_status encoder_cuda_embed(rg_encoder_cuda *c, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                             size_t B, size_t T, rg_pooling pooling, int normalize, float *out, rg_err *e);

#endif

#endif
