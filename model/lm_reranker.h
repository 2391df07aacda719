/* lm_reranker.h - causal-LM rerankers (the Qwen3-Reranker style) on the
 * Llama-family decoder (model/decoder.h): a chat model is asked whether a
 * passage answers a query, and the relevance score of the pair is
 *
 *     score = logit("yes") - logit("no")   at the last prompt position,
 *
 * the log-odds of the two answers (a softmax over just those two, as
 * Qwen3-Reranker takes, is sigmoid(score)).
 *
 * The prompt, in ChatML turns (SmolLM2, Qwen2/2.5/3), is five pieces
 * tokenized one by one and concatenated:
 *   HEAD   "<|im_start|>system\n" SYSTEM "<|im_end|>\n<|im_start|>user\n<Query>:"
 *          (markup: special tokens parsed; BOS first when the model asks)
 *   QUERY  " " + query        (content: special tokens stay text)
 *   MID    "\n<Document>:"     (plain)
 *   DOC    " " + passage      (content, cut at its end to fit the limit)
 *   TAIL   "<|im_end|>\n<|im_start|>assistant\n"   (markup)
 * with SYSTEM = 'Judge whether the Document answers the Query. Note that
 * the answer can only be "yes" or "no".' Pieces are tokenized apart (as
 * Qwen3-Reranker's own code does with its prefix, pair and suffix) so that
 * a query or passage spelling "<|im_end|>" cannot close a turn, and so that
 * HEAD+QUERY+MID, the prefix, is the same ids for every passage of a query:
 * it is computed once and copied into each passage's cache
 * (kv_cache_copy_prefix), and the passages' rests are prefilled together,
 * up to 16 and 512 tokens per forward pass (decoder_prefill_batch: the
 * weights are read once per pass, which makes short passages cheap; each
 * score is the one a passage alone would get). The leading spaces make a query's or passage's first
 * word the " word" token it is in running text.
 *
 * "yes" and "no" are the vocabulary's tokens without a leading space: the
 * answer is the first token after "assistant\n", where text has no space
 * (SmolLM2: ids 10407 and 4607; the load checks each is one token).
 * scripts/gen_lmrerank_golden.py computes the same prompt and scores with
 * llama.cpp (tests/unit/test_lmrerank.c compares).
 *
 * Truncation to a limit of max_tokens per pair (at most the model's
 * context): the passage loses tokens from its end first; only when the
 * prompt without any passage exceeds the limit does the query lose tokens
 * from its end too (the passage then keeps none).
 *
 * Models without ChatML turn markers in their vocabulary (Llama 3, Llama 2,
 * Mistral) are refused with RG_ERR_UNSUPPORTED: their prompt layout has not
 * been checked against a reference.
 *
 * Encoding is thread-safe (the tokenizer is immutable); scoring is used by
 * one thread at a time (it drives the decoder and owns one KV cache). */
#ifndef RAGD_MODEL_LM_RERANKER_H
#define RAGD_MODEL_LM_RERANKER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/backend.h"
#include "model/bpe.h"

typedef struct rg_lm_reranker rg_lm_reranker;

/* The default limit of tokens per (query, passage) prompt. */
#define LM_RERANKER_DEFAULT_MAX_TOKENS 1024

/* The arithmetic of the CPU decoder under the reranker.
 * F32: f32 activations and an f32 KV cache (rg_decoder_opts.f32_activations):
 *      the scores transformers computes on the dequantized weights, to
 *      ~1e-5 (tests/unit/test_lmrerank.c); the default.
 * Q8:  activations rounded to 8-bit blocks and an f16 cache, as llama.cpp
 *      computes: the generator's arithmetic, scores equal to llama.cpp's
 *      CPU ones to the fixture's 5 decimals on x86-64 with AVX2.
 * On CUDA, F32 keeps fp32 weights and fp32 product inputs on the device (no
 * TF32; 4 bytes a weight), so it is the same float32 function; Q8 there is
 * the generator's CUDA arithmetic (fp16 weights and inputs, f32
 * accumulation), not llama.cpp's 8-bit rounding. */
typedef enum rg_lm_precision {
    RG_LM_F32 = 0,
    RG_LM_Q8 = 1
} rg_lm_precision;

/* "f32" / "q8" (NULL when out of range) and the reverse (-1: unknown). */
const char *lm_precision_name(rg_lm_precision p);
int lm_precision_parse(const char *s);

/* path: a GGUF file or a Hugging Face decoder directory (model/decoder.h).
 * threads: the decoder's threads (0: its default); device: where it runs
 * (RG_DEVICE_AUTO: CUDA when usable, as rg_decoder_opts.device says);
 * precision: the CPU arithmetic above. */
rg_status lm_reranker_load(const char *path, size_t threads, rg_device device, rg_lm_precision precision,
                           rg_lm_reranker **out, rg_err *e);
void lm_reranker_free(rg_lm_reranker *lr); /* NULL is fine */

size_t lm_reranker_context(const rg_lm_reranker *lr); /* the model's trained context */
/* Where its decoder runs (cpu or cuda) and that device in one line. */
rg_device lm_reranker_device(const rg_lm_reranker *lr);
const char *lm_reranker_device_desc(const rg_lm_reranker *lr);
rg_lm_precision lm_reranker_precision(const rg_lm_reranker *lr);
int32_t lm_reranker_yes_id(const rg_lm_reranker *lr);
int32_t lm_reranker_no_id(const rg_lm_reranker *lr);

/* The prefix HEAD+QUERY+MID of query's prompts, appended to prefix (start
 * it zeroed; bpe_ids_free). max_tokens: the limit per prompt. truncate: cut
 * an over-long query; otherwise a query that leaves no room for the TAIL is
 * RG_ERR_INVALID naming the numbers. *query_tokens (may be NULL): the
 * query's own tokens before any cut. */
rg_status lm_reranker_encode_query(const rg_lm_reranker *lr, const char *query, size_t query_len, size_t max_tokens,
                                   int truncate, rg_bpe_ids *prefix, size_t *query_tokens, rg_err *e);

/* The rest of a prompt after a prefix of n_prefix ids: DOC+TAIL, appended to
 * rest. truncate: cut the passage to fit max_tokens; otherwise an over-long
 * prompt is RG_ERR_INVALID naming its tokens and the limit. *cut (may be
 * NULL): 1 when the passage lost tokens. */
rg_status lm_reranker_encode_passage(const rg_lm_reranker *lr, size_t n_prefix, const char *passage,
                                     size_t passage_len, size_t max_tokens, int truncate, rg_bpe_ids *rest, int *cut,
                                     rg_err *e);

/* Scores n prompts prefix + rests[i] into scores[i]: the prefix is
 * prefilled once, the rests after copies of it in shared forward passes.
 * Every prompt fits the
 * model's context (the encoders above guarantee it for max_tokens within
 * it). */
rg_status lm_reranker_score(rg_lm_reranker *lr, const int32_t *prefix, size_t n_prefix, const rg_bpe_ids *rests,
                            size_t n, float *scores, rg_err *e);

/* One request's prompts for lm_reranker_score_groups: what
 * lm_reranker_score takes, and its outcome. */
typedef struct rg_lm_group {
    const int32_t *prefix;
    size_t n_prefix;
    const rg_bpe_ids *rests;
    size_t n;
    float *scores; /* n scores out */
    rg_status status;
    rg_err err;
} rg_lm_group;

/* Scores ng groups (requests) as lm_reranker_score would one by one, with
 * the same results bit for bit on the CPU, but small groups (at most half
 * a pass of passages) share forward passes: their prefixes are prefilled
 * together, then all their passages together, so concurrent requests of a
 * few passages each cost about one request's passes. Each group gets its
 * own status and error; one group's failure does not touch the others'
 * scores (a failed shared pass fails the groups in it). */
void lm_reranker_score_groups(rg_lm_reranker *lr, rg_lm_group *g, size_t ng);

#endif
