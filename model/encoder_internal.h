/* encoder_internal.h - the loaded encoder's weights, shared by the files of
 * model/ that run it (encoder.c loads and embeds; encoder_cpu.c runs the
 * transformer on the CPU; backends add their own copies of the weights).
 * Nothing outside model/ includes this. */
#ifndef RAGD_MODEL_ENCODER_INTERNAL_H
#define RAGD_MODEL_ENCODER_INTERNAL_H

#include "model/encoder.h"

typedef struct enc_layer {
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* [H, H], [H] */
    float *ao_w, *ao_b;                       /* attention output dense [H, H] */
    float *aln_g, *aln_b;                     /* attention output LayerNorm */
    float *i_w, *i_b;                         /* intermediate [I, H], [I] */
    float *o_w, *o_b;                         /* output dense [H, I], [H] */
    float *oln_g, *oln_b;                     /* output LayerNorm */
} enc_layer;

struct rg_encoder {
    rg_bert_config cfg;
    rg_tokenizer *tok;
    size_t max_tokens;
    size_t max_batch;
    rg_pooling pooling;
    int normalize;
    int gguf_rank;         /* rg_encoder_opts.gguf_rank: bert.pooling_type 4 accepted */
    float *word_emb, *pos_emb, *type_emb, *emb_ln_g, *emb_ln_b;
    enc_layer *layers;     /* host weights; freed (NULL) once uploaded to a GPU */
    rg_device device;      /* where encoder_forward runs: CPU or CUDA */
    char device_desc[256]; /* one line for logs and /v1/version */
    struct rg_encoder_cuda *cuda; /* the device copy when device is CUDA */
    struct enc_cpu *cpu;          /* encoder_cpu.c: packed weights and threads, when device is CPU */
};

struct gguf_file;

/* Fills enc's config, tokenizer, pooling, normalization, max_tokens and f32
 * host weights from a BERT GGUF file (encoder_gguf.c); on failure what was
 * filled stays for encoder_free and e names path. */
rg_status encoder_gguf_load(rg_encoder *enc, const char *path, rg_err *e);
/* The WordPiece tokenizer of a BERT GGUF file's tokenizer.ggml.* metadata
 * (encoder_gguf_vocab.c). */
rg_status encoder_gguf_tokenizer(const struct gguf_file *g, rg_tokenizer **out, rg_err *e);

/* Packs the layers' weights for the CPU kernels and starts the CPU thread
 * pool (one thread per available CPU); encoder_load calls it when the
 * encoder runs on the CPU. encoder_cpu_release undoes it (safe when not
 * done). */
rg_status encoder_cpu_prepare(rg_encoder *enc, rg_err *e);
void encoder_cpu_release(rg_encoder *enc);

/* The transformer on the CPU; arguments already checked by encoder_forward. */
rg_status encoder_forward_cpu(const rg_encoder *enc, const int32_t *ids, const int32_t *type_ids,
                              const int32_t *mask, size_t B, size_t T, float *hidden, rg_err *e);

/* The transformer plus pooling on the CPU -> out [B, H], computing only the
 * positions up to each sequence's last real token (no work on padding);
 * arguments already checked as for encoder_forward. */
rg_status encoder_embed_cpu(const rg_encoder *enc, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                            size_t B, size_t T, rg_pooling pooling, int normalize, float *out, rg_err *e);

#endif
