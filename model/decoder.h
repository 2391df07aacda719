/* decoder.h - Llama-family decoder-only transformer (Llama 2/3, SmolLM2,
 * Mistral, TinyLlama, Qwen2) on the CPU: the forward pass the generator's
 * continuous-batching engine drives.
 *
 * A model is a GGUF file (weights used in their stored type: F32, F16, BF16
 * and the quantized block types go through model/quant's matrix-vector
 * kernels, weights read straight from the mapping) or a Hugging Face
 * directory (config.json + *.safetensors in F32/F16/BF16, also used from the
 * mapping).
 *
 * Sequences live in KV caches (one per sequence, sized when allocated). Two
 * calls advance them: decoder_prefill appends n prompt tokens to one sequence;
 * decoder_decode appends one token to each of several sequences in a single
 * step, reading every weight matrix once for all of them. Both return logits.
 *
 * A decoder is used by one thread at a time (the engine's worker); it owns a
 * small thread pool over which the rows of every matrix product are split. */
#ifndef RAGD_MODEL_DECODER_H
#define RAGD_MODEL_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/backend.h"
#include "model/llama_config.h"

typedef struct rg_decoder rg_decoder;
typedef struct rg_kv_cache rg_kv_cache;

typedef enum rg_kv_type {
    RG_KV_F16 = 0, /* as llama.cpp's default cache: half the memory */
    RG_KV_F32 = 1
} rg_kv_type;

typedef struct rg_decoder_opts {
    size_t threads; /* 0: the online CPUs, at most 16 */
    /* 1: dequantize every weight matrix to f32 at load (the fallback path,
     * forced; 4-8x the memory of a quantized file). Products then run on
     * unquantized activations: the exact function of the stored weights,
     * which tests use to measure the kernels' own error. */
    int f32_weights;
    /* 1: products run on f32 activations, each tile of weight rows
     * dequantized on the fly and multiplied by model/gemm_cpu: the function
     * a reference implementation (transformers) computes on the dequantized
     * weights, with the weights kept in their stored type. Without it,
     * activations are rounded to 8-bit blocks as llama.cpp does (faster for
     * few tokens per call: a decode step reads each quantized row once).
     * Prompts of dozens of tokens or more run as fast or faster this way
     * (docs/BENCHMARKS.md). CPU only; a CUDA decoder computes in fp16
     * weights with f32 accumulation either way. */
    int f32_activations;
    /* Where the decoder runs (model/decoder_cuda.h for CUDA), read only when
     * device_set is non-zero: zero-initialised options (and NULL) keep the
     * CPU, since RG_DEVICE_AUTO is the enum's zero and callers written
     * before the CUDA path must not move to a GPU unasked. AUTO: CUDA when
     * compiled in and a device is usable, else the CPU; CUDA that cannot be
     * used is RG_ERR_UNSUPPORTED with the reason. With CUDA, threads and
     * f32_weights only concern the host side (token embedding rows). */
    rg_device device;
    int device_set;
} rg_decoder_opts;

/* Loads path: a .gguf file or a directory with config.json and safetensors.
 * opts may be NULL. Errors name the file and what is wrong with it. */
rg_status decoder_load(const char *path, const rg_decoder_opts *opts, rg_decoder **out, rg_err *e);
void decoder_free(rg_decoder *d); /* NULL is fine */

const llama_config *decoder_config(const rg_decoder *d);
size_t decoder_vocab(const rg_decoder *d);
size_t decoder_threads(const rg_decoder *d);
/* Runs fn(ctx, worker, n_workers) on the decoder's host threads, which are
 * idle between forward passes (on a GPU, always): the caller is worker 0
 * and each other worker (< decoder_threads) that wakes in time joins, so
 * fn must share its work dynamically (tasks taken from an atomic counter)
 * and never assume that every worker runs. Not during a forward pass. The
 * generator picks its sequences' next tokens this way: a second pool
 * beside this one would spin against it on a small machine. */
void decoder_host_parallel(rg_decoder *d, void (*fn)(void *ctx, size_t worker, size_t n_workers), void *ctx);
/* Where the loaded decoder runs (cpu or cuda, never auto) and a one-line
 * description of that device. */
rg_device decoder_device(const rg_decoder *d);
const char *decoder_device_desc(const rg_decoder *d);
/* Bytes of weight matrices a decode step reads on the GPU (GGUF blocks or
 * fp16/fp32 copies, model/decoder_cuda.cu); 0 on the CPU. */
size_t decoder_device_matrix_bytes(const rg_decoder *d);
/* Free and total memory of the GPU a CUDA decoder runs on (its weights
 * already there); RG_ERR_UNSUPPORTED on the CPU. */
rg_status decoder_device_memory(const rg_decoder *d, size_t *free_bytes, size_t *total_bytes, rg_err *e);

/* A buffer for rows x n_vocab logits that the decoder fills fastest: pinned
 * (page-locked) host memory for a CUDA decoder, whose downloads into it run
 * at the bus's full rate without the driver's staging copy (a 16-sequence
 * step of a 49K-token vocabulary brings back 3 MB), plain memory on the
 * CPU (and where the system refuses to lock more memory). Any float
 * buffer works as the logits argument below; this one is faster. NULL
 * when rows is 0 or the memory is not there. Free it with
 * decoder_logits_free (not free()). */
float *decoder_logits_alloc(const rg_decoder *d, size_t rows);
void decoder_logits_free(const rg_decoder *d, float *logits); /* NULL is fine */

/* Bytes a cache of max_tokens positions takes (0 on overflow). */
size_t kv_cache_bytes(const rg_decoder *d, size_t max_tokens, rg_kv_type type);
/* A cache for one sequence of at most max_tokens positions (prompt and
 * generated together), in device memory for a CUDA decoder. RG_ERR_INVALID when max_tokens is 0 or beyond the
 * model's trained context, RG_ERR_NOMEM when the memory is not there. */
rg_status kv_cache_alloc(const rg_decoder *d, size_t max_tokens, rg_kv_type type, rg_kv_cache **out, rg_err *e);
void kv_cache_free(rg_kv_cache *kv); /* NULL is fine */
/* Forgets the sequence; the memory is kept for the next one. */
void kv_cache_reset(rg_kv_cache *kv);
size_t kv_cache_len(const rg_kv_cache *kv);      /* positions filled */
size_t kv_cache_capacity(const rg_kv_cache *kv); /* max_tokens */
/* Forgets every position from n on (n <= kv_cache_len), keeping 0..n-1: a
 * shared prompt prefix computed once is continued by several suffixes in
 * turn (the causal-LM reranker scores many passages after one query). */
void kv_cache_truncate(rg_kv_cache *kv, size_t n);
/* Makes dst hold src's first n positions (n <= kv_cache_len(src)) and
 * nothing after them: a prefix computed once is copied into the caches of
 * several continuations that are then prefilled together
 * (decoder_prefill_batch). Both caches belong to d and have one type;
 * RG_ERR_TOO_LARGE when dst has no room for n. */
rg_status kv_cache_copy_prefix(const rg_decoder *d, rg_kv_cache *dst, const rg_kv_cache *src, size_t n, rg_err *e);

/* Appends ids[0..n) to kv's sequence. When logits is non-NULL it receives
 * the n_vocab logits of the last position. RG_ERR_INVALID for an id outside
 * the vocabulary or n == 0, RG_ERR_TOO_LARGE when the cache lacks room
 * (nothing is appended then). */
rg_status decoder_prefill(rg_decoder *d, rg_kv_cache *kv, const int32_t *ids, size_t n, float *logits, rg_err *e);

/* Appends ids[i][0..n[i]) to kv[i] for n_seq distinct sequences in shared
 * forward passes (each pass reads the weights once for all its tokens):
 * whole sequences packed into passes of up to 512 tokens, a longer one in
 * 512-token chunks alone. Each token's results are those decoder_prefill
 * gives it (model/decoder_batch.c says why). logits (may be NULL) receives
 * sequence i's last-position logits at logits[i * n_vocab]. Arguments are
 * checked before anything runs; on any error nothing is appended. */
rg_status decoder_prefill_batch(rg_decoder *d, rg_kv_cache *const *kv, const int32_t *const *ids, const size_t *n,
                                size_t n_seq, float *logits, rg_err *e);

/* One step for n_seq sequences: ids[i] is appended to kv[i] (n_seq distinct
 * caches) and logits[i * n_vocab ..] receives its next-token logits. All or
 * nothing: on an error no cache advances. */
rg_status decoder_decode(rg_decoder *d, rg_kv_cache *const *kv, const int32_t *ids, size_t n_seq, float *logits,
                         rg_err *e);

#endif
