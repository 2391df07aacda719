/* decoder_cuda_ops.h - the decoder's CUDA kernels on host arrays, so that
 * tests can check each against the CPU computation on random inputs.
 *
 * Each call uploads its inputs, runs the launcher the CUDA decoder runs
 * (model/decoder_cuda_kernels.cuh), downloads the results and frees what
 * it allocated: for checking, not speed. The kernels whose outputs feed a
 * product write fp16 (the default decoder) or, with f32 set, fp32 (a decoder
 * loaded for f32 activations); fp16 results come back widened to float. Only declared when the CUDA backend is compiled in
 * (RAGD_HAVE_CUDA); they need a device (backend_cuda_devices() > 0). */
#ifndef RAGD_MODEL_DECODER_CUDA_OPS_H
#define RAGD_MODEL_DECODER_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#ifdef RAGD_HAVE_CUDA

/* A KV cache in host memory: [n_layer][cap][kv_dim] values, fp16 bits
 * (half = 1, k and v are uint16_t arrays) or floats. */
typedef struct dec_cuda_ops_cache {
    void *k, *v;
    size_t cap;
    int half;
} dec_cuda_ops_cache;

/* The attention geometry of a layer. */
typedef struct dec_cuda_ops_heads {
    size_t n_head, n_head_kv, head_dim, rope_dim;
    int neox;
} dec_cuda_ops_heads;

/* out[rows, n] = RMSNorm(x + add) * w (fp16 widened, or fp32 with f32);
 * add may be NULL; x_after (may be NULL) receives x + add. With q8 (may be
 * NULL; f32 only), the kernel also leaves out quantized for weights of
 * q8_type as the q8 decoder does, in quant_act_prepare's layout (rows *
 * quant_act_bytes(q8_type, n) bytes into q8). */
rg_status dec_cuda_ops_rmsnorm(const float *x, const float *add, size_t rows, size_t n, const float *w, float eps,
                               int f32, float *out, float *x_after, uint32_t q8_type, void *q8, rg_err *e);

/* qkv [n, qd + 2 kv_dim] + bias (may be NULL) -> q [n, qd] (RoPE applied,
 * f16-rounded with an f16 cache); every token's K and V are written into
 * cache (n_layer layers) at layer, pos[t]. */
rg_status dec_cuda_ops_qkv_rope(const float *qkv, const float *bias, size_t n, const dec_cuda_ops_heads *g,
                                const float *inv_freq, const size_t *pos, dec_cuda_ops_cache *cache, size_t n_layer,
                                size_t layer, float *q, rg_err *e);

/* out [n, qd] (fp16 widened, or fp32 with f32): token t's query q[t] over
 * caches[t]'s positions 0..pos[t] of layer (several tokens may share a
 * cache); with split, on the kernels of a decode step (positions in spans,
 * the decoder's path for calls of up to 64 tokens), else one block per
 * head and token (prefill). */
rg_status dec_cuda_ops_attention(const float *q, size_t n, const dec_cuda_ops_heads *g,
                                 const dec_cuda_ops_cache *const *caches, const size_t *pos, size_t n_layer,
                                 size_t layer, int f32, int split, float *out, rg_err *e);

/* dec_cuda_ops_attention on the q8 decoder's kernel, the CPU path's
 * arithmetic (model/decoder_cuda_ggml.cu), fp32 out: bit for bit the CPU's
 * dec_attend, a token alone of its cache in the call taking the one-token
 * order; consecutive tokens of a cache at consecutive positions share
 * blocks as the decoder groups them (dec_cu_attention_ggml_runs). */
rg_status dec_cuda_ops_attention_ggml(const float *q, size_t n, const dec_cuda_ops_heads *g,
                                      const dec_cuda_ops_cache *const *caches, const size_t *pos, size_t n_layer,
                                      size_t layer, float *out, uint32_t q8_type, void *q8, rg_err *e);

/* out[n, F] = SwiGLU as the CPU path's dec_math_swiglu, on the device.
 * q8 (and in dec_cuda_ops_attention_ggml) as in dec_cuda_ops_rmsnorm. */
rg_status dec_cuda_ops_swiglu_ggml(const float *gu, size_t n, size_t F, float *out, uint32_t q8_type, void *q8,
                                   rg_err *e);

/* out[n, F] = silu(gu[:, :F]) * gu[:, F:] (fp16 widened, or fp32 with f32). */
rg_status dec_cuda_ops_swiglu(const float *gu, size_t n, size_t F, int f32, float *out, rg_err *e);

/* y[rows, out] = x[rows, in] W^T in fp32 from fp16 x, as the fp16
 * decoder's products (dec_cu_linear), with W in up to three row ranges
 * (out = the sum of their rows), each fp16 bits (type GGML_TYPE_F16) or
 * GGUF blocks of a quantized type (dec_cu_blocks_on_device, in a multiple
 * of 32), as a decoder's Q|K|V of mixed types: on the decoder's own kernel
 * when rows <= matvec_max (and fp16 rows have in a multiple of 8), else
 * through cuBLAS, blocks unpacked into fp16 first (a third of the rows at a
 * time, as in a prefill); *on_kernel (may be NULL) says whether the kernel
 * ran. */
typedef struct dec_cuda_ops_part {
    uint32_t type;
    const void *w;
    size_t rows, row_bytes;
} dec_cuda_ops_part;
rg_status dec_cuda_ops_linear_parts(const dec_cuda_ops_part *parts, size_t n_parts, const uint16_t *x, size_t rows,
                                    size_t in, int matvec_max, float *y, int *on_kernel, rg_err *e);

/* out = rows rows of x [rows, in] quantized on the device for weights of a
 * block type, in quant_act_prepare's layout (rows * quant_act_bytes(type,
 * in) bytes): the q8 decoder's activations. */
rg_status dec_cuda_ops_quantize_act(uint32_t type, const float *x, size_t rows, size_t in, void *out, rg_err *e);

/* y[rows, out] = x[rows, in] W^T as a q8 decoder's products, bit for bit
 * the CPU path's (quant_matmul_prepared on x86): x (fp32) quantized to 8
 * bits for each block part and multiplied in integers, float parts (F32,
 * F16, BF16) multiplied by x as it is; any row count. */
rg_status dec_cuda_ops_linear_q8(const dec_cuda_ops_part *parts, size_t n_parts, const float *x, size_t rows,
                                 size_t in, float *y, rg_err *e);

/* out[rows, cols] = rows of GGUF blocks unpacked by the device kernel, in
 * fp32 (f32 set) or rounded to fp16 and widened. */
rg_status dec_cuda_ops_dequant(uint32_t type, const void *w, size_t row_bytes, size_t rows, size_t cols, int f32,
                               float *out, rg_err *e);

#endif

#endif
