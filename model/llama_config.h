/* llama_config.h - hyperparameters of a Llama-family decoder (Llama 2/3,
 * SmolLM/SmolLM2, Mistral, TinyLlama, Qwen2), read from GGUF metadata
 * ("general.architecture" and the "<arch>.*" keys) or from a Hugging Face
 * config.json.
 *
 * Every value is checked against bounds before anything is sized from it: a
 * missing or out-of-range field gives RG_ERR_CORRUPT naming the file and the
 * key, an architecture or RoPE scaling this runtime does not compute gives
 * RG_ERR_UNSUPPORTED. */
#ifndef RAGD_MODEL_LLAMA_CONFIG_H
#define RAGD_MODEL_LLAMA_CONFIG_H

#include <stddef.h>

#include "common/err.h"
#include "model/gguf.h"

/* Bounds on what a model file may ask for (far above any model this runtime
 * targets; they stop a hostile file from sizing huge allocations). */
#define LLAMA_MAX_VOCAB 1048576u
#define LLAMA_MAX_EMBD 65536u
#define LLAMA_MAX_LAYERS 1024u
#define LLAMA_MAX_HEADS 1024u
#define LLAMA_MAX_HEAD_DIM 1024u
#define LLAMA_MAX_FF 524288u
#define LLAMA_MAX_CTX 4194304u

typedef enum llama_arch {
    LLAMA_ARCH_LLAMA = 0, /* llama, mistral (same graph) */
    LLAMA_ARCH_QWEN2 = 1, /* adds Q/K/V biases; NEOX rotation in GGUF */
    LLAMA_ARCH_QWEN3 = 2  /* no biases; an RMSNorm on each Q and K head before RoPE; NEOX */
} llama_arch;

typedef enum llama_rope_scaling {
    LLAMA_ROPE_SCALING_NONE = 0,
    LLAMA_ROPE_SCALING_LINEAR, /* positions divided by factor */
    LLAMA_ROPE_SCALING_LLAMA3  /* Llama 3.1 per-frequency smoothing */
} llama_rope_scaling;

typedef struct llama_config {
    llama_arch arch;
    size_t n_vocab;
    size_t n_embd;    /* hidden size */
    size_t n_layer;
    size_t n_head;    /* query heads */
    size_t n_head_kv; /* key/value heads; divides n_head (grouped-query) */
    size_t head_dim;  /* per head; n_head * head_dim is the Q width */
    size_t n_ff;      /* SwiGLU intermediate size */
    size_t n_ctx_train;
    size_t rope_dim;  /* rotated dimensions per head (<= head_dim, even) */
    float rope_theta;
    llama_rope_scaling rope_scaling;
    float rope_factor;              /* linear / llama3 factor */
    float rope_low_freq_factor;     /* llama3 */
    float rope_high_freq_factor;    /* llama3 */
    size_t rope_orig_ctx;           /* llama3 original_max_position_embeddings */
    /* 1: rotate pairs (i, i + rope_dim/2) (HF's rotate_half, GGUF qwen2);
     * 0: rotate adjacent pairs (2i, 2i+1), which is what llama.cpp's HF->GGUF
     * conversion makes of Llama's Q/K weights by permuting their rows. */
    int rope_neox;
    float rms_eps;
    int tied_output; /* output projection is the token embedding */
    int qkv_bias;
    int qk_norm; /* Qwen3: per-head RMSNorm of Q and K (weights of head_dim), before RoPE */
} llama_config;

/* From an opened GGUF file. tied_output is set when no "output.weight"
 * tensor exists. */
rg_status llama_config_from_gguf(const gguf_file *g, const char *what, llama_config *out, rg_err *e);

/* From config.json text (json[0..len)); what names it in messages. Accepts
 * model_type llama, mistral, qwen2, qwen3 (and architectures naming them). */
rg_status llama_config_parse_hf(const char *json, size_t len, const char *what, llama_config *out, rg_err *e);
rg_status llama_config_load_hf(const char *path, llama_config *out, rg_err *e);

/* Checks the cross-field invariants (divisibility, bounds); both readers
 * call it. */
rg_status llama_config_validate(const llama_config *c, const char *what, rg_err *e);

#endif
