// decoder_cuda_kernels.cuh - the Llama-family decoder's CUDA kernels, as
// launchers on device pointers (C++, included only by model/decoder_cuda*.cu).
//
// Precision, three decoders. The default one for a model with GGUF blocks
// (q8: model/decoder_cuda_q8.cu, decoder_cuda_ggml.cu) computes the CPU
// path's arithmetic bit for bit: 8-bit activations and integer products on
// the blocks, float matrices as in the file, and RMSNorm, RoPE, attention
// and SwiGLU in the CPU's operations and order, fp32 activations between.
// The fp16 one (RAGD_CUDA_ACTIVATIONS=fp16, or a model without blocks): the
// weight products take fp16 activations with fp32 accumulation and write
// fp32. Weights kept in their GGUF blocks enter the
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

// The alignment each wide access relies on; cudasim (tests/cudasim) checks
// it, as the GPU would fault, where the CPU emulating it would not.
#ifndef CUDASIM_ALIGNED
#define CUDASIM_ALIGNED(p, n) ((void)0)
#endif

// Largest head the attention kernel takes (two output values a thread).
#define DEC_CU_MAX_HEAD_DIM 256
// heads of Q and K together a per-head norm (Qwen3) handles per token
#define DEC_CU_MAX_NORM_HEADS 512

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
    int32_t one;  // no other token of its cache in the call (the CPU path's "lone token" order)
    int32_t run;  // the q8 attention's blocks: n > 1, this token and the next n - 1 (a run of
                  // consecutive positions of its cache) are one block's; -1: an earlier
                  // token's run has it; 0: alone (dec_cu_attention_ggml_runs sets it)
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

// How dec_cu_linear multiplies: the handles, the limits and the scratch
// buffers of one decoder.
//   t: the type of x, the activations (fp16 or fp32).
//   q8 (x fp32): parts kept in GGUF blocks multiply x quantized to 8 bits
//     per row as llama.cpp's CPU path does (dec_cu_quantize_act into
//     q8_buf), in integers on the decoder's own kernel whatever the row
//     count (dec_cu_matvec_q8); parts of a float type (kept as in the file)
//     multiply x as it is (dec_cu_matvec_fcpu): both bit for bit the CPU
//     path's products. Without q8, block parts need fp16 x.
//   Products of at most matvec_max rows (DEC_CU_MATVEC_MAX_ROWS at most)
//     that are not q8 run on the float kernel (dec_cu_matvec) on stream s,
//     whose result for a row does not depend on the other rows; the rest
//     go through cuBLAS (handle blas, bound to s), quantized parts unpacked
//     into unpack first. CUBLAS_COMPUTE_32F: fp32 accumulation (with fp32
//     x plain fp32 arithmetic, no TF32).
struct dec_cu_prod {
    cublasHandle_t blas;
    cudaStream_t s;
    int matvec_max;
    dec_cu_act t;
    int q8;
    dec_cu_scratch unpack;
    void *q8_buf;      // q8_bytes: at least rows * dec_cu_q8_row_bytes(kind, cols) for every product
    size_t q8_bytes;
};
#define DEC_CU_MATVEC_MAX_ROWS 16
// The default limit (RAGD_CUDA_MATVEC_ROWS): measured on an H200 (session
// 11, SmolLM2-135M Q4_1, docs/BENCHMARKS.md), the kernel's steps beat
// cuBLAS's at 1 and 4 sequences (1.78 against 2.13 ms, 2.11 against 2.27)
// and lose at 8 and 16 (2.65 against 2.30, 3.60 against 2.46).
#define DEC_CU_MATVEC_DEFAULT_ROWS 4
// y[rows, W.rows] (fp32) = x[rows, W.cols] * W^T, as P says. have: the
// kind P->q8_buf already holds x quantized as (the producer of x left it
// there: dec_cu_q8_out), DEC_Q8_NONE when it holds nothing of x.
rg_status dec_cu_linear(const dec_cu_prod *P, const void *x, int rows, const dec_cu_mat *W, int have, float *y,
                        rg_err *e);
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
// ---- 8-bit activations (model/decoder_cuda_q8.cu) ----
// The activation blocks a weight type multiplies, in model/quant's
// prepared layout (quant_act_prepare: 40-byte blocks of 32 with f32 d and
// s, or ggml's 292-byte Q8_K blocks of 256), so tests compare them byte
// for byte with the CPU's. DEC_Q8_NONE: not a block type.
enum dec_cu_q8_kind {
    DEC_Q8_NONE = 0,
    DEC_Q8_A8_0 = 1, // Q4_0, Q5_0, Q8_0: s = fp16(d) * sum q
    DEC_Q8_A8_1 = 2, // Q4_1, Q5_1: s = fp16(d * sum q), ggml's block_q8_1
    DEC_Q8_K = 3     // Q4_K, Q5_K, Q6_K
};
int dec_cu_q8_kind_of(uint32_t type);
// Bytes of one row of in values in that kind (in a multiple of its block);
// 0 for DEC_Q8_NONE or a ragged in.
size_t dec_cu_q8_row_bytes(int kind, int in);
// out = rows rows of x [rows, in] (fp32) quantized as model/quant's
// quant_act_prepare does, bit for bit.
rg_status dec_cu_quantize_act(cudaStream_t s, int kind, const float *x, int rows, int in, void *out, rg_err *e);
// The one kind W's block parts take (DEC_Q8_NONE: none, or parts of two
// kinds): what the kernel writing W's input should also leave quantized.
int dec_cu_q8_kind_for(const dec_cu_mat *W);
// What a kernel feeding a q8 product also writes: its fp32 output
// quantized as kind into buf (rows dec_cu_q8_row_bytes(kind, width)
// apart), in the same kernel where the output's shape allows (else a
// dec_cu_quantize_act after it). kind DEC_Q8_NONE, or a NULL
// dec_cu_q8_out: nothing.
struct dec_cu_q8_out {
    int kind;
    void *buf;
};
// y[t * ldy + r] = W[r] . act[t] for t < n (any count), r < out: the
// integer dot products of llama.cpp's CPU kernels (and model/quant's) on
// the blocks and the activations' 8-bit values, combined in fp32; a row's
// result does not depend on the other rows.
rg_status dec_cu_matvec_q8(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, const void *act, int n,
                           int in, int out, float *y, int ldy, rg_err *e);
// Float matrices (F32, F16, BF16 as in the file) of a q8 decoder: y[t * ldy
// + r] = W[r] . x[t] (x fp32 [n, in], any n) in the CPU's order
// (model/quant_dot_avx2.c dot_f32 / dot_f16 / dot_bf16), bit for bit.
int dec_cu_float_type(uint32_t type);
rg_status dec_cu_matvec_fcpu(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, const float *x, int n,
                             int in, int out, float *y, int ldy, rg_err *e);

// out[rows, cols] (fp16 rounded to nearest, or fp32 with ot DEC_CU_F32) =
// model/quant's dequantization of rows of GGUF blocks, bit for bit in fp32.
rg_status dec_cu_dequant(cudaStream_t s, uint32_t type, const void *w, size_t row_bytes, int rows, int cols, void *out,
                         dec_cu_act ot, rg_err *e);

// For b < n_rows, r = rows ? rows[b] : b: x[r] += add[r] when add is
// non-NULL, then out[b] = x[r] / sqrt(mean(x[r]^2) + eps) * w as type t
// (fp16 rounded to nearest): each square in float, their sum in double, as
// the CPU path.
// With qo (fp32 out only), out is also left quantized as qo says.
rg_status dec_cu_rmsnorm(cudaStream_t s, float *x, const float *add, const int32_t *rows, int n_rows, int n,
                         const float *w, float eps, void *out, dec_cu_act t, const dec_cu_q8_out *qo, rg_err *e);

// qkv [n, qd + 2 kv_dim] (the Q | K | V products of n tokens) plus bias
// (may be NULL) -> with qk_norm (Qwen3; NULL for none: head_dim weights for
// Q's heads, then head_dim for K's) each Q and K head RMS-normalized with
// eps as model/decoder_math.c's dec_math_rmsnorm, bit for bit (squares in
// float summed in double in index order, (x * scale) * w)
// -> RoPE on Q and K at each token's position (adjacent pairs
// or NEOX halves over the first rope_dim values of each head; cos and sin
// of pair i from rope [t][i] and [t][rope_dim / 2 + i] when rope is given,
// the CPU path's own values, else of pos * inv_freq[i]; each rotated value
// one FMA on a rounded product, as the CPU path) -> Q into q [n, qd]
// (rounded to f16 values where the token's cache is f16), K and V into each
// token's cache at layer, pos.
rg_status dec_cu_qkv_rope(cudaStream_t s, const float *qkv, const float *bias, const float *qk_norm, float eps,
                          int n, const dec_cu_heads *g,
                          const float *inv_freq, const float *rope, const dec_cu_tok *tok, int layer, float *q,
                          rg_err *e);

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

// ---- the CPU path's arithmetic (model/decoder_cuda_ggml.cu) ----
// dec_cu_attention with fp32 out, every operation the CPU path's
// (model/decoder_attn.c), for a q8 decoder: see that file. Takes head
// sizes that are a multiple of 8, up to 144 (_takes says).
int dec_cu_attention_ggml_takes(const dec_cu_heads *g);
// qo as for dec_cu_rmsnorm (in the same kernel for blocks of 32 within a
// head: head_dim a multiple of 32). tok's run fields say which tokens share
// a block: set them with dec_cu_attention_ggml_runs before the upload.
rg_status dec_cu_attention_ggml(cudaStream_t s, const float *q, const dec_cu_tok *tok, int n, const dec_cu_heads *g,
                                int layer, float *out, const dec_cu_q8_out *qo, rg_err *e);
// Groups tok[0..n) into runs for dec_cu_attention_ggml: consecutive tokens
// of one cache at consecutive positions (a prefill), at most max_run of
// them (1: every token alone) and at most what the geometry's shared memory
// allows. The result depends on the tokens, not on the grouping.
void dec_cu_attention_ggml_runs(dec_cu_tok *tok, int n, const dec_cu_heads *g, int max_run);
// dec_cu_swiglu into fp32 as the CPU path's dec_math_swiglu computes it;
// qo as for dec_cu_rmsnorm.
rg_status dec_cu_swiglu_ggml(cudaStream_t s, const float *gu, int n, int F, float *out, const dec_cu_q8_out *qo,
                             rg_err *e);

// out[t, i] = silu(gu[t, i]) * gu[t, F + i] (type t) for t < n, i < F.
rg_status dec_cu_swiglu(cudaStream_t s, const float *gu, int n, int F, void *out, dec_cu_act t, rg_err *e);

#endif
