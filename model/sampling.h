/* sampling.h - choosing the next token from a decoder's logits.
 *
 * One sampler per sequence: it carries the request's parameters, its own
 * seeded random generator (same seed, same tokens; no global state) and the
 * counts of the tokens seen so far for the penalties.
 *
 * The order of operations, per step:
 *   0. logit bias (OpenAI's logit_bias): a fixed amount added to the logits
 *      of the listed tokens; -100 in effect bans a token, +100 forces it.
 *   1. repetition penalty (Hugging Face / llama.cpp semantics): every token
 *      that occurs in the prompt or the generated text has its logit divided
 *      by the penalty when positive, multiplied by it when negative; each
 *      token once, however often it occurs. (HF looks at the whole sequence;
 *      llama.cpp at the last 64 tokens by default; we follow HF.)
 *   2. presence / frequency penalties (OpenAI semantics, generated tokens
 *      only): logit -= presence * [count > 0] + frequency * count.
 *   3. temperature 0: the largest penalised logit (lowest id on a tie).
 *      Otherwise, as transformers' logits warpers: divide by the temperature,
 *      keep the top_k largest (0 = all), softmax, keep the smallest prefix of
 *      the sorted distribution whose mass reaches top_p (1 = all), drop tokens
 *      whose probability is below min_p times the largest (0 = none), and
 *      draw from what is left, renormalised.
 * Log-probabilities reported to clients are the log-softmax of the raw
 * logits (before penalties and warpers), as OpenAI reports the model's own
 * distribution. */
#ifndef RAGD_MODEL_SAMPLING_H
#define RAGD_MODEL_SAMPLING_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Tokens a request may bias (OpenAI has no documented limit; 300 is what
 * its API used to enforce). */
#define RG_SAMPLING_MAX_BIAS 300

typedef struct rg_sampling_params {
    float temperature;        /* 0 = greedy; at most 100 */
    size_t top_k;             /* 0 = off */
    float top_p;              /* (0, 1]; 1 = off */
    float min_p;              /* [0, 1); 0 = off */
    float repetition_penalty; /* > 0; 1 = off */
    float presence_penalty;   /* [-2, 2]; 0 = off */
    float frequency_penalty;  /* [-2, 2]; 0 = off */
    uint64_t seed;
    size_t n_bias;                           /* logit_bias entries, at most RG_SAMPLING_MAX_BIAS */
    int32_t bias_id[RG_SAMPLING_MAX_BIAS];   /* distinct token ids (checked against the vocabulary by sampler_new) */
    float bias[RG_SAMPLING_MAX_BIAS];        /* [-100, 100] */
} rg_sampling_params;

/* temperature 1, top_p 1, no penalties, seed 0. */
void sampling_params_default(rg_sampling_params *p);
/* RG_ERR_INVALID naming the first parameter out of its range. */
rg_status sampling_params_check(const rg_sampling_params *p, rg_err *e);
/* RG_ERR_INVALID when a logit_bias token id lies outside n_vocab. */
rg_status sampling_bias_check(const rg_sampling_params *p, size_t n_vocab, rg_err *e);

/* xoshiro256**, seeded through splitmix64: small, fast, and the same
 * sequence everywhere for a seed. */
typedef struct rg_rng {
    uint64_t s[4];
} rg_rng;

void rng_seed(rg_rng *r, uint64_t seed);
uint64_t rng_next(rg_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform(rg_rng *r);

typedef struct rg_sampler rg_sampler;

/* A sampler over n_vocab logits. A bias entry outside the vocabulary is
 * RG_ERR_INVALID naming it. */
rg_status sampler_new(const rg_sampling_params *p, size_t n_vocab, rg_sampler **out, rg_err *e);
void sampler_free(rg_sampler *s); /* NULL is fine */

/* Tokens of the prompt: only the repetition penalty looks at them. Ids
 * outside the vocabulary are ignored. */
void sampler_add_prompt(rg_sampler *s, const int32_t *ids, size_t n);
/* Records a generated token (for all three penalties). */
void sampler_accept(rg_sampler *s, int32_t id);

/* Picks the next token. logits (n_vocab) is used as scratch and left
 * modified. Does not call sampler_accept. */
int32_t sampler_sample(rg_sampler *s, float *logits);

typedef struct rg_token_logprob {
    int32_t id;
    float logprob;
} rg_token_logprob;

/* Log-softmax of logits[0..n) at chosen (into *chosen_lp) and the top_n
 * largest entries in descending order (into top[0..top_n), ties by lower
 * id); top_n may be 0. Leaves logits unchanged. */
void sampling_logprobs(const float *logits, size_t n, int32_t chosen, float *chosen_lp, rg_token_logprob *top,
                       size_t top_n);

#endif
