/* decoder_cuda.h - the Llama-family decoder on a CUDA GPU
 * (model/decoder_cuda.cu, kernels in model/decoder_cuda_kernels.cu).
 *
 * decoder_load creates one when asked for --device cuda (or auto with a GPU
 * present): weight matrices of the types dec_cu_blocks_on_device takes
 * stay in their GGUF blocks (model/decoder_cuda_q8.cu, decoder_cuda_matvec.
 * cu). With any such matrix the decoder computes the CPU path's arithmetic
 * (llama.cpp's), bit for bit: 8-bit activations and integer products on
 * the blocks, float matrices kept as in the file, RMSNorm, RoPE (the CPU's
 * cos/sin), attention and SwiGLU in the CPU's operations and order
 * (decoder_cuda_ggml.cu), every product on ragd's kernels whatever its row
 * count. RAGD_CUDA_ACTIVATIONS=fp16 (or a model without blocks) gives the
 * fp16 decoder instead: the other matrices, and all with
 * RAGD_CUDA_WEIGHTS=fp16, dequantized on the host with model/quant and
 * uploaded once in fp16, products of at most DEC_CU_MATVEC_DEFAULT_ROWS
 * token rows on ragd's float kernel (RAGD_CUDA_MATVEC_ROWS=N sets the
 * limit, up to 16; 0 sends everything to cuBLAS), larger ones on cuBLAS,
 * blocks unpacked to fp16 first. A decoder loaded with f32_activations (the
 * causal-LM reranker's f32 precision) keeps fp32 copies and fp32 product
 * inputs (no TF32), so the scores stay the float32 function the CPU path
 * and transformers compute. Norm weights, biases and RoPE frequencies (the
 * CPU path's table) are fp32. The token embedding is looked up on the host
 * from the mapped file, exactly as the CPU path.
 *
 * KV caches of a CUDA decoder live in device memory (kv_cache_alloc). One
 * stream and one cuBLAS handle per decoder; calls are serialized by a mutex
 * (the generator engine calls from one thread anyway). Activation buffers
 * grow to the largest call seen and are kept. Only declared when the CUDA
 * backend is compiled in (RAGD_HAVE_CUDA). */
#ifndef RAGD_MODEL_DECODER_CUDA_H
#define RAGD_MODEL_DECODER_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/decoder.h"

#ifdef RAGD_HAVE_CUDA

typedef struct rg_decoder_cuda rg_decoder_cuda;

/* Uploads d's weights to device 0. desc (may be NULL) gets a one-line
 * description of the device and the memory used. */
rg_status decoder_cuda_create(const rg_decoder *d, rg_decoder_cuda **out, char *desc, size_t desc_size, rg_err *e);
void decoder_cuda_free(rg_decoder_cuda *c); /* NULL is fine */

/* dec_forward's contract (model/decoder_internal.h) on the device: token t
 * is ids[t] at position pos[t] of cache kv[t] (device caches, room checked
 * by the caller); logits of the n_out rows out_rows go to the host. */
rg_status decoder_cuda_forward(rg_decoder_cuda *c, const rg_decoder *d, rg_kv_cache *const *kv, const int32_t *ids,
                               const size_t *pos, size_t n, const size_t *out_rows, size_t n_out, float *logits,
                               rg_err *e);

/* Pinned (page-locked) host memory, for logits the decoder downloads into
 * (decoder_logits_alloc): a device-to-host copy into it runs at the bus's
 * full rate, where pageable memory goes through a driver staging copy. */
rg_status decoder_cuda_host_alloc(size_t bytes, void **out, rg_err *e);
void decoder_cuda_host_free(void *p); /* NULL is fine */

/* cudaMemGetInfo of the decoder's device. */
rg_status decoder_cuda_memory(rg_decoder_cuda *c, size_t *free_bytes, size_t *total_bytes, rg_err *e);

/* Device memory for a cache's keys and values, bytes each. */
rg_status decoder_cuda_kv_alloc(size_t bytes, void **k, void **v, rg_err *e);
void decoder_cuda_kv_free(void *k, void *v);
/* For each of n_layer layers, the first bytes bytes of the keys and values
 * at src (layers src_pitch bytes apart) to dst (dst_pitch apart), on the
 * decoder's stream, finished on return. */
rg_status decoder_cuda_kv_copy(rg_decoder_cuda *c, void *dst_k, void *dst_v, size_t dst_pitch, const void *src_k,
                               const void *src_v, size_t src_pitch, size_t bytes, size_t n_layer, rg_err *e);

/* CUDA graphs the decoder holds now (for tests): a decode step (logits for
 * every token) of at most 64 tokens whose size was run before is captured
 * once and replayed; RAGD_CUDA_GRAPHS=0 in the environment at creation
 * turns them off, as does a failed capture. */
size_t decoder_cuda_graphs(rg_decoder_cuda *c);

/* Which uploaded matrix decoder_cuda_weight reads. */
typedef enum dec_cuda_weight {
    DEC_CUDA_W_QKV = 0,  /* attn_q | attn_k | attn_v rows */
    DEC_CUDA_W_O = 1,
    DEC_CUDA_W_GATE_UP = 2, /* ffn_gate | ffn_up rows */
    DEC_CUDA_W_DOWN = 3,
    DEC_CUDA_W_OUTPUT = 4 /* layer ignored */
} dec_cuda_weight;

/* Copies an uploaded matrix back, for tests: *rows x *cols values as the
 * products read them (fp16 copies widened to float, GGUF blocks unpacked
 * by the device's kernel); out_n must be at least that. */
rg_status decoder_cuda_weight(rg_decoder_cuda *c, size_t layer, dec_cuda_weight which, float *out, size_t out_n,
                              size_t *rows, size_t *cols, rg_err *e);

/* Bytes of the weight matrices on the device: what a decode step reads. */
size_t decoder_cuda_matrix_bytes(const rg_decoder_cuda *c);

/* Whether matrices of this ggml_type stay on the device as in the file
 * (the default for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, and in an
 * 8-bit-activation decoder for F32, F16 and BF16 too; RAGD_CUDA_WEIGHTS=fp16
 * or an f32 decoder makes copies instead). */
int decoder_cuda_keeps_blocks(const rg_decoder_cuda *c, uint32_t type);

#endif

#endif
