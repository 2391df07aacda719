/* cross_encoder.h - BERT cross-encoder rerankers: a Hugging Face
 * BertForSequenceClassification directory with one output label (the
 * ms-marco MiniLM / TinyBERT cross-encoders and their kind), scoring a
 * (query, passage) pair with one relevance logit.
 *
 * The directory holds:
 *   config.json        BERT config (model/bert_config.h) whose architectures,
 *                      if given, name BertForSequenceClassification, and
 *                      whose id2label (or num_labels) says one label
 *   model.safetensors  or model.safetensors.index.json + shards
 *                      (model/weights.h): the encoder under "bert." (or no
 *                      prefix), bert.pooler.dense.{weight,bias} (or
 *                      pooler.*) and classifier.{weight [1, H], bias [1]}
 *   tokenizer.json or vocab.txt, tokenizer_config.json (model_max_length)
 *
 * Computation, as transformers does it: input [CLS] query [SEP] passage
 * [SEP] with token type 0 for the query part and 1 for the passage part;
 * the encoder (model/encoder.h: encoder_forward, so on whatever device the
 * encoder runs); the [CLS] hidden state through the pooler (dense + tanh);
 * the classifier (dense to one output) gives the logit.
 *
 * Truncation: pairs are cut to min(tokenizer_config model_max_length,
 * max_position_embeddings) tokens, longest first, as sentence-transformers'
 * CrossEncoder (Hugging Face tokenizers "longest_first") does: the longer of
 * the two texts loses tokens from its end until it is as short as the
 * other, then both lose alternately (in practice: the passage is cut first;
 * the query too only when it exceeds half the limit).
 *
 * Or a GGUF file (model/cross_encoder_gguf.h): llama.cpp's converter layout
 * for BertForSequenceClassification (bert.* and the encoder tensors as
 * model/encoder.h reads them, cls.output.* the classifier with one label in
 * bert.classifier.output_labels) plus BERT's pooler as cls.weight/cls.bias
 * and bert.pooling_type 4 (rank), which scripts/make_bert_gguf.py writes
 * and llama.cpp's converter does not (it drops the pooler: such files are
 * refused, saying so). Same pair encoding and truncation; the limit is
 * bert.context_length; lowercased as every BERT GGUF (model/encoder.h).
 *
 * ELECTRA (ElectraForSequenceClassification, as in some ms-marco models),
 * RoBERTa/XLM-R (bge-reranker) and multi-label heads are refused with
 * RG_ERR_UNSUPPORTED naming the architecture: none could be checked
 * against a reference here.
 *
 * A loaded cross-encoder is immutable; calls from several threads are safe. */
#ifndef RAGD_MODEL_CROSS_ENCODER_H
#define RAGD_MODEL_CROSS_ENCODER_H

#include <stddef.h>

#include "common/err.h"
#include "model/backend.h"
#include "model/tokenizer.h"

typedef struct rg_cross_encoder rg_cross_encoder;

/* Loads model_dir (a directory, or a GGUF file) for device (cpu, cuda or auto; see model/encoder.h:
 * the encoder runs there, the small head on the CPU). */
rg_status cross_encoder_load(const char *model_dir, rg_device device, rg_cross_encoder **out, rg_err *e);
void cross_encoder_free(rg_cross_encoder *ce); /* NULL is fine */

/* Most tokens per pair, the three special tokens included. */
size_t cross_encoder_max_tokens(const rg_cross_encoder *ce);
const rg_tokenizer *cross_encoder_tokenizer(const rg_cross_encoder *ce);
/* Where the encoder runs (cpu or cuda, never auto) and that device in one line. */
rg_device cross_encoder_device(const rg_cross_encoder *ce);
const char *cross_encoder_device_desc(const rg_cross_encoder *ce);

/* Encodes one pair. truncate: cut longest-first to the limit; otherwise a
 * pair longer than the limit is RG_ERR_INVALID naming both numbers.
 * out->n_untruncated is the pair's full length. */
rg_status cross_encoder_encode(const rg_cross_encoder *ce, const char *query, size_t query_len, const char *passage,
                               size_t passage_len, int truncate, rg_encoding *out, rg_err *e);

/* One padded forward pass over n encoded pairs (each at most the limit):
 * logits[i] for pairs[i]. The caller batches (sorted by length to waste
 * little padding). */
rg_status cross_encoder_logits(const rg_cross_encoder *ce, const rg_encoding *const *pairs, size_t n, float *logits,
                               rg_err *e);

/* Scores query against n passages (lens may be NULL for NUL-terminated
 * passages), truncating, in length-sorted padded batches of at most
 * max_batch pairs. *tokens (may be NULL) gets the tokens processed. */
rg_status cross_encoder_score(const rg_cross_encoder *ce, const char *query, size_t query_len,
                              const char *const *passages, const size_t *lens, size_t n, size_t max_batch,
                              float *logits, size_t *tokens, rg_err *e);

#endif
