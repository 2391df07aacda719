/* encoder.h - BERT-class sentence encoders (all-MiniLM-L6-v2, BGE, GTE, E5)
 * on the CPU or a CUDA GPU: post-LN BERT, mean or CLS pooling, optional L2
 * normalization.
 *
 * A model directory in Hugging Face / sentence-transformers layout is read:
 *   config.json                  architecture (model/bert_config.h)
 *   model.safetensors            weights by the standard names, with or
 *                                without a "bert." prefix; F32, F16 or BF16
 *                                (converted to f32 once at load)
 *   tokenizer.json or vocab.txt  WordPiece (model/tokenizer.h)
 *   sentence_bert_config.json    max_seq_length (optional; default: the
 *                                position table size)
 *   modules.json                 the Pooling module's directory and whether
 *                                a Normalize module follows (optional)
 *   <pooling dir>/config.json    pooling_mode_mean_tokens or
 *                                pooling_mode_cls_token (others refused)
 * Without modules.json the encoder uses mean pooling and L2 normalization
 * (what sentence-transformers builds for a plain BERT checkpoint, plus the
 * normalization every embedding server applies) and logs that it did.
 *
 * A regular file is read as GGUF in the layout llama.cpp's converter
 * (convert_hf_to_gguf.py, BertModel) writes (model/encoder_gguf.c):
 *   general.architecture "bert"; bert.embedding_length, .block_count,
 *   .attention.head_count, .feed_forward_length, .context_length,
 *   .attention.layer_norm_epsilon (all required); the vocabulary and
 *   token-type counts from the rows of token_embd.weight / token_types.weight
 *   tensors   token_embd, position_embd, token_types, token_embd_norm and per
 *             layer blk.N.attn_q/attn_k/attn_v/attn_output, attn_output_norm,
 *             ffn_up, ffn_down, layer_output_norm (.weight and .bias), any
 *             type model/quant dequantizes, converted to f32 at load
 *   pooling   bert.pooling_type 1 mean, 2 CLS (others refused by name;
 *             absent: mean, logged)
 *   normalize always L2: GGUF does not record sentence-transformers'
 *             Normalize module, and llama.cpp normalizes embeddings by
 *             default (embd_normalize 2), so the same file gives the same
 *             vectors in both
 *   tokens    tokenizer.ggml.model "bert"; .tokens with the converter's
 *             "phantom space" rewriting undone (U+2581 "x" -> "x", "[...]"
 *             kept, other "x" -> "##x"); control and user-defined token
 *             types are the added tokens; [CLS] = bos_token_id (or
 *             cls_token_id), [SEP] = seperator_token_id (sic) or
 *             eos_token_id, [UNK] = unknown_token_id. Always lowercased,
 *             accents stripped: GGUF does not record do_lower_case and
 *             llama.cpp's WordPiece always lowercases (uncased models)
 *   max_tokens bert.context_length (the position table), as llama.cpp: GGUF
 *             has no sentence-transformers max_seq_length, so e.g.
 *             all-MiniLM-L6-v2 runs to 512 tokens from GGUF, 256 from its
 *             directory
 * A fused blk.N.attn_qkv is not read. Cross-encoder heads (cls.*,
 * cls.output.*, bert.pooling_type 4) are model/cross_encoder.c's: with
 * rg_encoder_opts.gguf_rank the encoder loads such a file and pools nothing.
 *
 * Threads: on the CPU a forward pass runs on the encoder's own thread pool
 * (one thread per available CPU, model/encoder_cpu.c); concurrent calls are
 * safe: one gets the pool, the others run on their own calling threads
 * meanwhile, with the same results. On CUDA (model/encoder_cuda.h)
 * concurrent calls are safe too: they are serialized on the encoder's one
 * stream. */
#ifndef RAGD_MODEL_ENCODER_H
#define RAGD_MODEL_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/backend.h"
#include "model/bert_config.h"
#include "model/tokenizer.h"

typedef struct rg_encoder rg_encoder;

typedef enum rg_pooling { RG_POOL_MEAN = 0, RG_POOL_CLS = 1 } rg_pooling;

typedef struct rg_encoder_opts {
    /* RG_DEVICE_CPU; RG_DEVICE_CUDA (an error when the backend is not
     * compiled in or no usable GPU is found); RG_DEVICE_AUTO (CUDA when it
     * works, else the CPU, with a log line saying which and why). */
    rg_device device;
    /* GGUF only: accept bert.pooling_type 4 (rank), which marks a
     * cross-encoder whose head the caller reads (model/cross_encoder.h);
     * the encoder then pools nothing itself (encoder_forward only). 0, the
     * default: refused, as for an embedding model. */
    int gguf_rank;
} rg_encoder_opts;

void encoder_opts_default(rg_encoder_opts *o); /* device RG_DEVICE_CPU, gguf_rank 0 */

/* Loads the model directory or GGUF file at model_dir. RG_ERR_NOT_FOUND for a missing file,
 * RG_ERR_CORRUPT / RG_ERR_UNSUPPORTED with the file and field named;
 * RG_ERR_UNSUPPORTED when device cuda was asked for and cannot be used.
 * o may be NULL (defaults). */
rg_status encoder_load_opts(const char *model_dir, const rg_encoder_opts *o, rg_encoder **out, rg_err *e);
/* encoder_load_opts with the defaults: the CPU. */
rg_status encoder_load(const char *model_dir, rg_encoder **out, rg_err *e);
void encoder_free(rg_encoder *enc); /* NULL is fine */

size_t encoder_dim(const rg_encoder *enc);        /* embedding dimension (hidden size) */
size_t encoder_max_tokens(const rg_encoder *enc); /* per input, special tokens included */
const rg_tokenizer *encoder_tokenizer(const rg_encoder *enc);
const rg_bert_config *encoder_config(const rg_encoder *enc);
rg_pooling encoder_pooling(const rg_encoder *enc);
int encoder_normalizes(const rg_encoder *enc);
/* Where the encoder runs (RG_DEVICE_CPU or RG_DEVICE_CUDA, never AUTO) and
 * a one-line description of that device. */
rg_device encoder_device(const rg_encoder *enc);
const char *encoder_device_desc(const rg_encoder *enc);

/* Texts per forward pass inside encoder_embed (default 32, at least 1). */
void encoder_set_max_batch(rg_encoder *enc, size_t max_batch);

/* Embeds n texts (texts[i] of lens[i] bytes; lens may be NULL for
 * NUL-terminated texts) into out[n * encoder_dim]. Each text is tokenized as
 * [CLS] text [SEP] and truncated at the end to encoder_max_tokens. Texts
 * run in their given order in padded batches of up to max_batch texts (the
 * caller sorts by length to save padding). tokens_used (may be NULL)
 * receives the number of tokens processed, special tokens included. */
rg_status encoder_embed(const rg_encoder *enc, const char *const *texts, const size_t *lens, size_t n, float *out,
                        size_t *tokens_used, rg_err *e);

/* encoder_embed with a choice of which end of an over-long text is cut. */
rg_status encoder_embed_side(const rg_encoder *enc, const char *const *texts, const size_t *lens, size_t n,
                             rg_trunc_side side, float *out, size_t *tokens_used, rg_err *e);

/* The transformer alone on a padded batch: ids, type_ids, mask [B, T]
 * (mask 0 = padding) -> hidden [B, T, H] (last layer, before pooling).
 * T must not exceed max_position_embeddings; ids and type ids are range
 * checked (RG_ERR_INVALID). */
rg_status encoder_forward(const rg_encoder *enc, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                          size_t B, size_t T, float *hidden, rg_err *e);

#endif
