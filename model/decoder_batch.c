/* decoder_batch.c - prompts of several sequences prefilled in shared forward
 * passes (decoder_prefill_batch): each pass reads every weight matrix once
 * for all the tokens in it, which is what makes many short prompts cheap
 * (the causal-LM reranker's passages after one query prefix).
 *
 * Whole sequences are packed into passes of at most DEC_BATCH_TOKENS tokens,
 * in order; a sequence longer than that is prefilled alone in chunks of
 * that size, as decoder_prefill splits it. No sequence is split elsewhere,
 * so every token meets the same arithmetic as in decoder_prefill (a token's
 * products and attention do not depend on the other sequences in its pass;
 * the attention's summation order does depend on whether a sequence has one
 * token or more in a pass, and that is kept). */
#include <stdlib.h>

#include "model/decoder_internal.h"

/* Tokens per forward pass: decoder_prefill's chunk. */
#define DEC_BATCH_TOKENS 512

/* One pass over seqs [first, last) (whole) or over tokens [from, to) of the
 * single sequence first (last == first + 1), logits for each sequence whose
 * final token is in it. */
static rg_status one_pass(rg_decoder *d, rg_kv_cache *const *kv, const int32_t *const *ids, const size_t *n,
                          size_t first, size_t last, size_t from, size_t to, float *logits, rg_kv_cache **kvs,
                          int32_t *tok, size_t *pos, size_t *rows, rg_err *e)
{
    size_t m = 0, n_out = 0, V = d->cfg.n_vocab;
    for (size_t s = first; s < last; s++) {
        size_t lo = last - first == 1 ? from : 0, hi = last - first == 1 ? to : n[s];
        for (size_t t = lo; t < hi; t++, m++) {
            kvs[m] = kv[s];
            tok[m] = ids[s][t];
            pos[m] = kv[s]->len + t;
        }
        if (hi == n[s] && logits)
            rows[n_out++] = m - 1;
    }
    if (n_out == 0 || !logits)
        return dec_forward(d, kvs, tok, pos, m, rows, 0, NULL, e);
    /* logits of sequences first.. in order: their rows are increasing */
    return dec_forward(d, kvs, tok, pos, m, rows, n_out, logits + first * V, e);
}

rg_status decoder_prefill_batch(rg_decoder *d, rg_kv_cache *const *kv, const int32_t *const *ids, const size_t *n,
                                size_t n_seq, float *logits, rg_err *e)
{
    if (n_seq == 0)
        return rg_error(e, RG_ERR_INVALID, "prefill of no sequences");
    for (size_t s = 0; s < n_seq; s++) {
        if (n[s] == 0)
            return rg_error(e, RG_ERR_INVALID, "sequence %zu: prefill of no tokens", s);
        if (!dec_cache_matches(d, kv[s]))
            return rg_error(e, RG_ERR_INVALID, "KV cache %zu belongs to another model", s);
        if (n[s] > kv[s]->cap - kv[s]->len)
            return rg_error(e, RG_ERR_TOO_LARGE, "sequence %zu: %zu tokens do not fit the KV cache (%zu of %zu used)",
                            s, n[s], kv[s]->len, kv[s]->cap);
        for (size_t j = 0; j < s; j++)
            if (kv[j] == kv[s])
                return rg_error(e, RG_ERR_INVALID, "sequence %zu appears twice in one prefill", s);
        rg_status st = dec_check_ids(d, ids[s], n[s], e);
        if (st != RG_OK)
            return st;
    }
    rg_kv_cache **kvs = malloc(DEC_BATCH_TOKENS * sizeof *kvs);
    int32_t *tok = malloc(DEC_BATCH_TOKENS * sizeof *tok);
    size_t *pos = malloc(DEC_BATCH_TOKENS * sizeof *pos), *rows = malloc(DEC_BATCH_TOKENS * sizeof *rows);
    rg_status st = RG_OK;
    if (!kvs || !tok || !pos || !rows)
        st = rg_error(e, RG_ERR_NOMEM, "out of memory");
    for (size_t s = 0; s < n_seq && st == RG_OK;) {
        if (n[s] > DEC_BATCH_TOKENS) {
            for (size_t from = 0; from < n[s] && st == RG_OK; from += DEC_BATCH_TOKENS) {
                size_t to = n[s] - from < DEC_BATCH_TOKENS ? n[s] : from + DEC_BATCH_TOKENS;
                st = one_pass(d, kv, ids, n, s, s + 1, from, to, logits, kvs, tok, pos, rows, e);
            }
            s++;
            continue;
        }
        size_t last = s, total = 0;
        while (last < n_seq && n[last] <= DEC_BATCH_TOKENS - total)
            total += n[last++];
        st = one_pass(d, kv, ids, n, s, last, 0, n[s], logits, kvs, tok, pos, rows, e);
        s = last;
    }
    free(kvs);
    free(tok);
    free(pos);
    free(rows);
    /* the lengths move only when every pass succeeded: a failed call
     * appends nothing (positions written past a length are never read) */
    if (st == RG_OK)
        for (size_t s = 0; s < n_seq; s++)
            kv[s]->len += n[s];
    return st;
}
