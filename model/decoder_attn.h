/* decoder_attn.h - dec_attend (decoder_internal.h) with the summation
 * order named by the caller. llama.cpp multiplies its attention in one
 * order when the batch holds several tokens and in another for a batch of
 * one token (decoder_attn.c says which), and the decoder mirrors whichever
 * llama.cpp would take, since a different order flips 8-bit roundings
 * downstream. dec_attend is this with one_token 0. */
#ifndef RAGD_MODEL_DECODER_ATTN_H
#define RAGD_MODEL_DECODER_ATTN_H

#include <stddef.h>

#include "model/decoder.h"

/* one_token: the queries belong to a token that is the only one of its
 * sequence in this forward pass (a decode step, or a prefill of one). */
void dec_attend_ordered(const rg_kv_cache *kv, size_t layer, size_t kvh, size_t hd, const float *const *q,
                        const size_t *np, size_t nq, float *const *out, float *scratch, int one_token);

#endif
