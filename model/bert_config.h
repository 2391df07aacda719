/* bert_config.h - the Hugging Face config.json of a BERT-class encoder.
 *
 * Every field the encoder depends on is required and checked: a missing,
 * mistyped or out-of-range field gives RG_ERR_CORRUPT (RG_ERR_UNSUPPORTED for
 * a model this runtime does not compute, e.g. another activation or a
 * relative position embedding) with a message naming the file and the field. */
#ifndef RAGD_MODEL_BERT_CONFIG_H
#define RAGD_MODEL_BERT_CONFIG_H

#include <stddef.h>

#include "common/err.h"

/* Upper bounds that keep every product of sizes far from overflow (config.json
 * and GGUF metadata alike). */
#define BERT_MAX_DIM ((size_t)1 << 16)
#define BERT_MAX_LAYERS 256
#define BERT_MAX_VOCAB ((size_t)1 << 24)

typedef struct rg_bert_config {
    size_t hidden_size;             /* H */
    size_t num_hidden_layers;       /* L */
    size_t num_attention_heads;     /* divides H */
    size_t intermediate_size;       /* feed-forward width */
    size_t max_position_embeddings; /* absolute position table rows */
    size_t type_vocab_size;         /* token type (segment) table rows */
    size_t vocab_size;              /* word embedding rows */
    float layer_norm_eps;
} rg_bert_config;

/* Parses config.json text (json[0..len)); what names it in messages. */
rg_status bert_config_parse(const char *json, size_t len, const char *what, rg_bert_config *out, rg_err *e);
/* Reads and parses the file at path. */
rg_status bert_config_load(const char *path, rg_bert_config *out, rg_err *e);

#endif
