/* test_decoder_batch.c - several sequences prefilled in shared forward
 * passes (decoder_prefill_batch) and a prompt prefix copied between caches
 * (kv_cache_copy_prefix), on the default generator GGUF.
 *
 * What a caller relies on: each sequence's logits are bitwise those of
 * decoder_prefill on that sequence alone (so the causal-LM reranker's
 * batched scores equal its one-at-a-time scores, and keep agreeing with
 * llama.cpp and transformers as test_lmrerank checks), whatever the mix of
 * lengths (one token, a few, more than one pass); a copied prefix continues
 * exactly as the original; bad arguments are refused before anything is
 * appended. Both arithmetics are checked: 8-bit activations with an f16
 * cache (the generator's) and f32 activations with an f32 cache (the
 * reranker's default). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "model/decoder.h"

#define MODEL_FILE "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
#define N_SEQ 6

/* Deterministic ids spread over the vocabulary. */
static void fill_ids(int32_t *ids, size_t n, size_t seed, size_t vocab)
{
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)((seed * 7919 + i * 104729 + 13) % vocab);
}

static void check_mode(const char *path, int f32)
{
    rg_err e = {0};
    rg_decoder *d = NULL;
    rg_decoder_opts o = {.threads = 2, .f32_activations = f32};
    rg_kv_type kt = f32 ? RG_KV_F32 : RG_KV_F16;
    CHECK_OK(decoder_load(path, &o, &d, &e), e);
    if (!d)
        return;
    size_t V = decoder_vocab(d);
    /* lengths: one token, a few, a prompt's worth, more than one 512-token
     * pass (alone, chunked), and two that share a pass with the others */
    static const size_t lens[N_SEQ] = {1, 3, 40, 600, 17, 2};
    static const size_t prefix_len[N_SEQ] = {0, 5, 0, 12, 30, 1};
    int32_t *ids[N_SEQ], *pre[N_SEQ];
    rg_kv_cache *alone[N_SEQ] = {0}, *batch[N_SEQ] = {0};
    float *want = malloc(N_SEQ * V * sizeof *want), *got = malloc(N_SEQ * V * sizeof *got);
    for (size_t s = 0; s < N_SEQ; s++) {
        ids[s] = malloc(lens[s] * sizeof *ids[s]);
        pre[s] = malloc((prefix_len[s] + 1) * sizeof *pre[s]);
        fill_ids(ids[s], lens[s], s + 1, V);
        fill_ids(pre[s], prefix_len[s], s + 100, V);
        CHECK_OK(kv_cache_alloc(d, 1024, kt, &alone[s], &e), e);
        CHECK_OK(kv_cache_alloc(d, 700, kt, &batch[s], &e), e);
        /* a prefix first where there is one: the batch continues it from a
         * copy, the reference from the original */
        if (prefix_len[s]) {
            CHECK_OK(decoder_prefill(d, alone[s], pre[s], prefix_len[s], NULL, &e), e);
            CHECK_OK(kv_cache_copy_prefix(d, batch[s], alone[s], prefix_len[s], &e), e);
            CHECK(kv_cache_len(batch[s]) == prefix_len[s]);
        }
        CHECK_OK(decoder_prefill(d, alone[s], ids[s], lens[s], want + s * V, &e), e);
    }
    CHECK_OK(decoder_prefill_batch(d, batch, (const int32_t *const *)ids, lens, N_SEQ, got, &e), e);
    size_t differ = 0;
    for (size_t s = 0; s < N_SEQ; s++) {
        size_t bad = 0;
        for (size_t v = 0; v < V; v++)
            bad += memcmp(&want[s * V + v], &got[s * V + v], sizeof(float)) != 0;
        CHECK_MSG(bad == 0, "%s: sequence %zu (%zu tokens after %zu): %zu of %zu logits differ from decoder_prefill",
                  f32 ? "f32" : "q8", s, lens[s], prefix_len[s], bad, V);
        CHECK(kv_cache_len(batch[s]) == prefix_len[s] + lens[s]);
        differ += bad;
    }
    /* one more step on every sequence: the caches the batch wrote hold what
     * the single prefills wrote */
    int32_t next[N_SEQ];
    for (size_t s = 0; s < N_SEQ; s++)
        next[s] = (int32_t)((s * 31 + 7) % V);
    CHECK_OK(decoder_decode(d, alone, next, N_SEQ, want, &e), e);
    CHECK_OK(decoder_decode(d, batch, next, N_SEQ, got, &e), e);
    CHECK_MSG(memcmp(want, got, N_SEQ * V * sizeof *got) == 0, "%s: a decode step after the batch differs",
              f32 ? "f32" : "q8");
    printf("test_decoder_batch: %s: %d sequences of 1-600 tokens, %zu logits differ from one-at-a-time prefill\n",
           f32 ? "f32 activations, f32 cache" : "8-bit activations, f16 cache", N_SEQ, differ);

    /* refusals leave every cache as it was */
    size_t before[N_SEQ];
    for (size_t s = 0; s < N_SEQ; s++)
        before[s] = kv_cache_len(batch[s]);
    rg_kv_cache *dup[2] = {batch[0], batch[0]};
    const int32_t *two[2] = {ids[1], ids[2]};
    size_t two_n[2] = {lens[1], lens[2]};
    CHECK(decoder_prefill_batch(d, dup, two, two_n, 2, NULL, &e) == RG_ERR_INVALID && strstr(e.msg, "twice"));
    int32_t bad_ids[3] = {1, (int32_t)V, 2};
    const int32_t *bad[2] = {ids[1], bad_ids};
    size_t bad_n[2] = {lens[1], 3};
    CHECK(decoder_prefill_batch(d, batch, bad, bad_n, 2, NULL, &e) == RG_ERR_INVALID && strstr(e.msg, "vocabulary"));
    size_t huge_n[2] = {1, 5000};
    const int32_t *huge[2] = {ids[0], ids[3]};
    CHECK(decoder_prefill_batch(d, batch, huge, huge_n, 2, NULL, &e) == RG_ERR_TOO_LARGE);
    size_t zero_n[1] = {0};
    CHECK(decoder_prefill_batch(d, batch, two, zero_n, 1, NULL, &e) == RG_ERR_INVALID);
    for (size_t s = 0; s < N_SEQ; s++)
        CHECK(kv_cache_len(batch[s]) == before[s]);
    CHECK(kv_cache_copy_prefix(d, batch[0], batch[1], kv_cache_len(batch[1]) + 1, &e) == RG_ERR_INVALID);
    rg_kv_cache *small = NULL, *other = NULL;
    CHECK_OK(kv_cache_alloc(d, 4, kt, &small, &e), e);
    CHECK(kv_cache_copy_prefix(d, small, batch[3], 5, &e) == RG_ERR_TOO_LARGE);
    CHECK_OK(kv_cache_alloc(d, 64, f32 ? RG_KV_F16 : RG_KV_F32, &other, &e), e);
    CHECK(kv_cache_copy_prefix(d, other, batch[1], 2, &e) == RG_ERR_INVALID);
    kv_cache_free(small);
    kv_cache_free(other);

    for (size_t s = 0; s < N_SEQ; s++) {
        kv_cache_free(alone[s]);
        kv_cache_free(batch[s]);
        free(ids[s]);
        free(pre[s]);
    }
    free(want);
    free(got);
    decoder_free(d);
}

int main(void)
{
    char path[1024];
    const char *explicit = getenv("RAGD_GEN_MODEL");
    const char *base = getenv("RAGD_MODELS");
    if (explicit && *explicit)
        snprintf(path, sizeof path, "%s", explicit);
    else
        snprintf(path, sizeof path, "%s/%s", base && *base ? base : "models", MODEL_FILE);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "test_decoder_batch: the generator model is not installed at %s (run `make models`)\n", path);
        CHECK_MSG(0, "model missing");
        return check_finish("test_decoder_batch");
    }
    check_mode(path, 0);
    check_mode(path, 1);
    return check_finish("test_decoder_batch");
}
