/* model_runs.c - loading a model from a fuzzed file or directory and, when
 * it loads, running it once: shared by fuzz_gguf and fuzz_hf_dir, whose
 * inputs reach the same loaders by two routes (fuzz.h). */
#include "tests/fuzz/fuzz.h"

#include "model/bpe.h"
#include "model/cross_encoder.h"
#include "model/decoder.h"
#include "model/encoder.h"
#include "model/lm_reranker.h"

void fuzz_outcome(const char *who, rg_status st, const rg_err *e)
{
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "  %s: %s\n", who, st == RG_OK ? "ok" : e->msg);
    FUZZ_CHECK(st == RG_OK || e->msg[0], "%s failed (status %d) without a message", who, (int)st);
}

void fuzz_run_decoder(const char *path, int f32_activations, int f32_cache)
{
    rg_decoder_opts o = {0};
    o.threads = 1;
    o.f32_activations = f32_activations;
    o.device = RG_DEVICE_CPU;
    o.device_set = 1;
    rg_decoder *d = NULL;
    rg_err e = {0};
    rg_status st = decoder_load(path, &o, &d, &e);
    fuzz_outcome("decoder_load", st, &e);
    if (st != RG_OK)
        return;
    size_t V = decoder_vocab(d);
    rg_kv_cache *kv = NULL;
    float *logits = decoder_logits_alloc(d, 1);
    if (logits && kv_cache_alloc(d, 8, f32_cache ? RG_KV_F32 : RG_KV_F16, &kv, &e) == RG_OK) {
        int32_t ids[3] = {0, (int32_t)(1 % V), (int32_t)(V - 1)};
        if (decoder_prefill(d, kv, ids, 3, logits, &e) == RG_OK) {
            int32_t next = (int32_t)(2 % V);
            rg_kv_cache *kvs[1] = {kv};
            fuzz_outcome("decoder_decode", decoder_decode(d, kvs, &next, 1, logits, &e), &e);
        }
        int32_t bad = (int32_t)V; /* out of the vocabulary: refused, not read */
        FUZZ_CHECK(decoder_prefill(d, kv, &bad, 1, logits, &e) != RG_OK, "token id %zu accepted", V);
    }
    kv_cache_free(kv);
    decoder_logits_free(d, logits);
    decoder_free(d);
}

void fuzz_run_lm_reranker(const char *path)
{
    rg_lm_reranker *lr = NULL;
    rg_err e = {0};
    rg_status st = lm_reranker_load(path, 1, RG_DEVICE_CPU, RG_LM_Q8, &lr, &e);
    fuzz_outcome("lm_reranker_load", st, &e);
    if (st != RG_OK)
        return;
    rg_bpe_ids prefix = {0}, rest = {0};
    size_t ctx = lm_reranker_context(lr);
    if (lm_reranker_encode_query(lr, "what is it", 10, ctx, 1, &prefix, NULL, &e) == RG_OK &&
        lm_reranker_encode_passage(lr, prefix.n, "a passage", 9, ctx, 1, &rest, NULL, &e) == RG_OK) {
        float score;
        fuzz_outcome("lm_reranker_score", lm_reranker_score(lr, prefix.ids, prefix.n, &rest, 1, &score, &e), &e);
    }
    bpe_ids_free(&prefix);
    bpe_ids_free(&rest);
    lm_reranker_free(lr);
}

void fuzz_run_encoders(const char *path)
{
    rg_encoder_opts eo;
    encoder_opts_default(&eo);
    rg_encoder *enc = NULL;
    rg_err e = {0};
    rg_status st = encoder_load_opts(path, &eo, &enc, &e);
    fuzz_outcome("encoder_load", st, &e);
    if (st == RG_OK) {
        const char *texts[2] = {"hello world, the caf\xc3\xa9 thing", "unaffable"};
        float *out = malloc(2 * encoder_dim(enc) * sizeof *out);
        if (out)
            fuzz_outcome("encoder_embed", encoder_embed(enc, texts, NULL, 2, out, NULL, &e), &e);
        free(out);
        encoder_free(enc);
    }
    rg_cross_encoder *ce = NULL;
    st = cross_encoder_load(path, RG_DEVICE_CPU, &ce, &e);
    fuzz_outcome("cross_encoder_load", st, &e);
    if (st == RG_OK) {
        const char *passages[2] = {"hello world", "the world is a s t e"};
        float logits[2];
        fuzz_outcome("cross_encoder_score", cross_encoder_score(ce, "hello", 5, passages, NULL, 2, 2, logits, NULL, &e),
                     &e);
        cross_encoder_free(ce);
    }
}
