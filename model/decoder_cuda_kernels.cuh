// decoder_cuda_kernels.cuh - the Llama-family decoder's CUDA kernels, as
// launchers on device pointers (C++, included only by model/decoder_cuda*.cu).
//
// Precision: the weight products take fp16 activations with fp32
// accumulation and write fp32. Weights kept in their GGUF blocks enter the
// decode-step kernel with their exact dequantized values and cuBLAS (prefill)
// as fp16 roundings of them, as fp16 copies do. fp16 rather than bf16
// because a dequantized GGUF value (an fp16 scale times a small integer,
// plus an fp16 minimum) keeps 11 significant bits in fp16 and only 8 in
// bf16; this family is sensitive enough that bf16 weights alone would use
// up most of the 1e-2 logit budget. A decoder made for f32 activations (rg_decoder_opts.
// f32_activations: the causal-LM reranker's default) keeps f32 weights and
// f32 product inputs instead (dec_cu_act says which), so it computes the
// function transformers computes in float32. The residual stream, RMSNorm
// statistics, RoPE, softmax and SwiGLU are fp32 in both.
//
// Attention reproduces the CPU path's (and llama.cpp's) roundings with an
// f16 KV cache: the query is rounded to f16 before the K products and each
// softmax weight before the V product (see model/decoder_cpu.c).
//
// Every launcher checks its launch and returns rg_status; nothing here
// synchronizes, so a fault while a kernel runs surfaces at the caller's
// next synchronization.
#ifndef RAGD_MODEL_DECODER_CUDA_KERNELS_CUH
#define RAGD_MODEL_DECODER_CUDA_KERNELS_CUH

#include <cstddef>
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "model/ops_cuda.cuh" // cu_check, cublas_check, cu_f16

// Largest head the attention kernel takes (two output values a thread).
#define DEC_CU_MAX_HEAD_DIM 256

// The type of the weight matrices and of the activations that feed them
// (the outputs of RMSNorm, attention and SwiGLU).
enum dec_cu_act { DEC_CU_F16 = 0, DEC_CU_F32 = 1 };

// One token of a forward call: the cache its key and value go to and the
// position it takes there (it attends to positions 0..pos of that cache).
struct dec_cu_tok {
    void *k, *v;  // cache base, [layer][cap][kv_dim] of f16 or f32
    size_t cap;   // positions per layer in that cache
    int32_t pos;
    int32_t half; // 1: f16 cache, 0: f32
};

// Geometry of the attention part of one layer.
struct dec_cu_heads {
    int n_head, n_head_kv, head_dim, rope_dim, neox;
    int kv_dim; // n_head_kv * head_dim
};

// A weight matrix on the device: [rows, cols] row-major in up to
// DEC_CU_MAX_PARTS row ranges stored one after another, each either plain
// values of the decoder's activation type (type GGML_TYPE_F16 or
// GGML_TYPE_F32) or GGUF blocks of one quantized type as in the model file
// (dec_cu_blocks_on_device; e.g. a Q4_K_M file's Q|K|V: Q and K in Q4_K,
// V in Q6_K).
#define DEC_CU_MAX_PARTS 3
struct dec_cu_part {
    const void *w;
    uint32_t type;    // ggml_type
    int rows;
    size_t row_bytes; // bytes from one row to the next
};
struct dec_cu_mat {
    dec_cu_part part[DEC_CU_MAX_PARTS];
    int n_part, rows, cols;
};

// Device memory for unpacking quantized rows into fp16 for cuBLAS: elems
// values (at least one row of the widest matrix); a matrix is unpacked and
// multiplied in as many row ranges as it takes.
struct dec_cu_scratch {
    cu_f16 *buf;
    size_t elems;
};

// y[rows, W.rows] (fp32) = x[rows, W.cols] * W^T; x of type t (fp16 for
// quantized parts), fp32 accumulation (with DEC_CU_F32 plain fp32
// arithmetic, no TF32). Products of at most matvec_max rows
// (DEC_CU_MATVEC_MAX_ROWS at most) run on the decoder's own kernel
// (dec_cu_matvec) on stream s, whose result for a row does not depend on
// the other rows; the rest go through cuBLAS (handle h, bound to s),
// quantized parts unpacked into sc first.
#define DEC_CU_MATVEC_MAX_ROWS 16
// The default limit (RAGD_CUDA_MATVEC_ROWS): measured on an H200 (session
// 11, SmolLM2-135M Q4_1, docs/BENCHMARKS.md), the kernel's steps beat
// cuBLAS's at 1 and 4 sequences (1.78 against 2.13 ms, 2.11 against 2.27)
// and lose at 8 and 16 (2.65 against 2.30, 3.60 against 2.46).
#define DEC_CU_MATVEC_DEFAULT_ROWS 4
rg_status dec_cu_linear(cublasHandle_t h, cudaStream_t s, int matvec_max, dec_cu_act t, const void *x, int rows,
                        const dec_cu_mat *W, float *y, const dec_cu_scratch *sc, rg_err *e);
// Products (parts) dec_cu_linear has sent to its own kernel so far (for tests).
unsigned long long dec_cu_matvec_launches(void);

// Whether matrices of this ggml_type can stay on the device in their blocks
// (model/decoder_cuda_matvec.cu): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
int dec_cu_blocks_on_device(uint32_t type);
// Whether dec_cu_matvec takes such a product: rows <= max_rows (and 16),
// fp16 x 16-byte aligned; weights fp16 (GGML_TYPE_F16: in a multiple of 8,
// rows 16-byte aligned) or blocks of a dec_cu_blocks_on_device type.
int dec_cu_matvec_takes(uint32_t type, int rows, int in, int max_rows, const void *w, size_t row_bytes,
                        const void *x);
// y[t * ldy + r] = sum_k W[r, k] x[t, k], t < n, r < out, W rows of type
// (row_bytes apart), x fp16 [n, in]; fp32 accumulation of the exact weight
// values (model/quant's dequantization for blocks).
rg_status dec_cu_matvec(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, const cu_f16 *x, int n,
                        int in, int out, float *y, int ldy, rg_err *e);
// out[rows, cols] (fp16 rounded to nearest, or fp32 with ot DEC_CU_F32) =
// model/quant's dequantization of rows of GGUF blocks, bit for bit in fp32.
rg_status dec_cu_dequant(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, int rows, int cols, void *out,
                         dec_cu_act ot, rg_err *e);

// For b < n_rows, r = rows ? rows[b] : b: x[r] += add[r] when add is
// non-NULL, then out[b] = x[r] / sqrt(mean(x[r]^2) + eps) * w as type t
// (fp16 rounded to nearest), the sum of squares in double as the CPU path.
rg_status dec_cu_rmsnorm(cudaStream_t s, float *x, const float *add, const int32_t *rows, int n_rows, int n,
                         const float *w, float eps, void *out, dec_cu_act t, rg_err *e);

// qkv [n, qd + 2 kv_dim] (the Q | K | V products of n tokens) plus bias
// (may be NULL) -> RoPE on Q and K at each token's position (adjacent pairs
// or NEOX halves over the first rope_dim values of each head, angle
// pos * inv_freq[i]) -> Q into q [n, qd] (rounded to f16 values where the
// token's cache is f16), K and V into each token's cache at layer, pos.
rg_status dec_cu_qkv_rope(cudaStream_t s, const float *qkv, const float *bias, int n, const dec_cu_heads *g,
                          const float *inv_freq, const dec_cu_tok *tok, int layer, float *q, rg_err *e);

// out [n, n_head * head_dim] (type t) = softmax(q K^T / sqrt(head_dim)) V
// for every token over its cache's positions 0..pos of layer; query head h
// reads key/value head h / (n_head / n_head_kv). With scratch (of
// dec_cu_attention_scratch_bytes(g, scratch_tokens)) and n <=
// scratch_tokens, a token's positions are split into spans that run on
// blocks of their own (a decode step: one block per head would leave most
// of the GPU idle and wait on one block's reads); a token's output is then
// the same whatever the other tokens of the call.
rg_status dec_cu_attention(cudaStream_t s, const float *q, const dec_cu_tok *tok, int n, const dec_cu_heads *g,
                           int layer, void *out, dec_cu_act t, void *scratch, int scratch_tokens, rg_err *e);
size_t dec_cu_attention_scratch_bytes(const dec_cu_heads *g, int max_tokens);

// out[t, i] = silu(gu[t, i]) * gu[t, F + i] (type t) for t < n, i < F.
rg_status dec_cu_swiglu(cudaStream_t s, const float *gu, int n, int F, void *out, dec_cu_act t, rg_err *e);

#endif
