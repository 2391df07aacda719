// ops_cuda.cuh - the CUDA kernels of the encoder, as launchers on device
// pointers (C++, included only by model/*.cu).
//
// Precision: products take fp16 operands with fp32 accumulation and write
// fp32; everything element-wise (bias, GELU, layer norm statistics,
// softmax, pooling, normalization) is computed in fp32, and the residual
// stream stays fp32. fp16 rather than bf16 for its three more mantissa
// bits: emulating both in transformers on the test cross-encoder (MiniLM
// layers, 120 golden pairs) put the logits within 0.0029 of float32 with
// fp16 and 0.019 with bf16, against the reranker issue's 2e-2 on CUDA
// (embeddings: cosine 0.9999991 vs 0.99995). The cost is fp16's range: a
// product input beyond 65504 (a normalized hidden state, a GELU output or
// a head's Q/K/V value) would become inf; BERT-class encoders stay far
// below it, as their common fp16 inference shows; attention probabilities
// below 6e-8 become subnormal or zero, far under the fp32 sums' rounding.
//
// Every launcher checks its launch and returns rg_status with rg_err
// filled; nothing here synchronizes, so an error raised while a kernel runs
// surfaces at the caller's next synchronization.
#ifndef RAGD_MODEL_OPS_CUDA_CUH
#define RAGD_MODEL_OPS_CUDA_CUH

#include <cstddef>
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

extern "C" {
#include "common/err.h"
}

typedef __half cu_f16;

// Largest row (hidden or intermediate size) the row kernels cache in
// shared memory. Without an opt-in (cudaFuncSetAttribute) a block may use
// 48 KiB of shared memory in all, static plus dynamic, and the row kernels
// also hold a static 33-float reduction array: 12288 floats (exactly
// 48 KiB) would fail to launch. 12160 floats (47.5 KiB) leave 512 bytes.
#define CU_MAX_ROW 12160

rg_status cu_check(cudaError_t err, const char *what, rg_err *e);
rg_status cublas_check(cublasStatus_t st, const char *what, rg_err *e);

// Host f32 -> fp16, round to nearest even (model/quant's f32_to_fp16).
void cu_host_to_f16(const float *src, size_t n, cu_f16 *dst);

// y[rows, out] (fp32) = x[rows, in] * W^T with W [out, in] (nn.Linear
// layout), both fp16, fp32 accumulation. The handle's stream is used.
rg_status cu_linear(cublasHandle_t h, const cu_f16 *x, int rows, int in, const cu_f16 *w, int out, float *y,
                    rg_err *e);

// x[r, :] = LayerNorm(word[ids[r]] + pos[r % T] + type[types[r]]) for
// r < B*T; writes fp32 x and its fp16 copy xb. types may be NULL (type 0).
// The tables are fp32 [*, H]; ids and types were range-checked by the caller.
rg_status cu_embed_layernorm(cudaStream_t s, const int32_t *ids, const int32_t *types, int B, int T, int H,
                             const float *word, const float *pos, const float *type, const float *gamma,
                             const float *beta, float eps, float *x, cu_f16 *xb, rg_err *e);

// x[rows, n] <- LayerNorm(x + y + bias) (y and bias may be NULL), fp32
// statistics; xb (may be NULL) receives the fp16 copy of the result.
rg_status cu_add_layernorm(cudaStream_t s, float *x, const float *y, const float *bias, int rows, int n,
                           const float *gamma, const float *beta, float eps, cu_f16 *xb, rg_err *e);

// out[rows, n] (fp16) = gelu_erf(y + bias), y fp32.
rg_status cu_bias_gelu(cudaStream_t s, const float *y, const float *bias, int rows, int n, cu_f16 *out, rg_err *e);

// Scratch of one attention call over a padded batch (sizes in elements):
// qh, kh, vh: B*heads*T*d fp16 each; scores: B*heads*T*T fp32;
// probs: B*heads*T*T fp16; ctx: B*T*H fp32.
typedef struct cu_attn_bufs {
    cu_f16 *qh, *kh, *vh;
    float *scores;
    cu_f16 *probs;
    float *ctx;
} cu_attn_bufs;

// Multi-head attention: qkv [B*T, 3H] fp32 (query | key | value columns,
// without bias) + bias3 [3H] (may be NULL) -> ctxb [B*T, H] fp16, heads
// side by side as in ops_attention. mask [B*T] on the device: 0 = padding
// key. A sequence with no real key gets a zero context.
rg_status cu_attention(cublasHandle_t h, cudaStream_t s, const float *qkv, const float *bias3, const int32_t *mask,
                       int B, int T, int H, int heads, const cu_attn_bufs *buf, cu_f16 *ctxb, rg_err *e);

// out[B, H] = mean over real tokens (cls = 0) or row 0 (cls = 1) of
// hidden [B, T, H], then L2-normalized when normalize is set (max(norm,
// 1e-12), as torch.nn.functional.normalize).
rg_status cu_pool(cudaStream_t s, const float *hidden, const int32_t *mask, int B, int T, int H, int cls,
                  int normalize, float *out, rg_err *e);

#endif
