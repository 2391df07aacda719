/* cross_encoder_gguf.h - the head of a BERT cross-encoder GGUF file, for
 * model/cross_encoder.c (nothing else includes this).
 *
 * Layout: llama.cpp's converter (convert_hf_to_gguf.py, BertModel, from
 * BertForSequenceClassification) plus the pooler, as llama.cpp's RANK
 * pooling reads it:
 *   general.architecture "bert", bert.embedding_length H
 *   bert.pooling_type 4 (rank)                    required
 *   bert.classifier.output_labels                 optional; one string
 *   cls.weight [H, H], cls.bias [H]               BERT's pooler dense (then tanh)
 *   cls.output.weight [H, 1], cls.output.bias [1] the classifier, one label
 * (dims in GGUF order, fastest first), of any type model/quant dequantizes.
 * The converter of llama-cpp-python 0.3.16 drops BERT's pooler and writes
 * no pooling type for such a model; its files are refused with that said,
 * since the logit needs the pooler (scripts/make_bert_gguf.py writes it). */
#ifndef RAGD_MODEL_CROSS_ENCODER_GGUF_H
#define RAGD_MODEL_CROSS_ENCODER_GGUF_H

#include <stddef.h>

#include "common/err.h"

typedef struct ce_gguf_head {
    size_t H;
    float *pool_w, *pool_b; /* [H, H] (row o: output o), [H] */
    float *cls_w;           /* [H] */
    float cls_b;
} ce_gguf_head;

/* Reads and checks the head of path; on failure nothing is left allocated
 * and e names the file. */
rg_status cross_encoder_gguf_head(const char *path, ce_gguf_head *out, rg_err *e);
void cross_encoder_gguf_head_free(ce_gguf_head *h);

#endif
