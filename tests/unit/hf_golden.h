/* hf_golden.h - comparing the decoder with a reference's recorded float32
 * logits: transformers' in tests/fixtures/hf_decoder_golden.jsonl
 * (test_decoder: the default GGUF rewritten as a Hugging Face directory)
 * and tests/fixtures/arch_golden.jsonl (test_decoder_arch: small
 * random-weight directories, one per architecture feature), llama.cpp's in
 * tests/fixtures/gguf_arch_golden.jsonl (test_decoder_arch: the random GGUF
 * seeds). Each fixture stores, per prompt, the token ids, the last
 * position's float32 logits in base64, greedy tokens and each step's two
 * best [id, logit, id, logit] (the transformers ones also how far float64
 * moves the logits, f64_rel). Include after check.h and llama_golden.h. */
#ifndef RAGD_TESTS_HF_GOLDEN_H
#define RAGD_TESTS_HF_GOLDEN_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sha256.h"
#include "model/decoder.h"

/* ||a - b|| / ||b|| over the whole vector */
static inline double rel_err_full(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

/* SHA-256 of a file in hex, streamed (a safetensors file may be ~540 MB) */
static inline int file_sha256(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    rg_sha256 s;
    sha256_init(&s);
    size_t n;
    while (buf && (n = fread(buf, 1, CHUNK, f)) > 0)
        sha256_update(&s, buf, n);
    int ok = buf && !ferror(f);
    fclose(f);
    free(buf);
    uint8_t d[32];
    sha256_final(&s, d);
    sha256_to_hex(d, hex);
    return ok;
}

/* base64 of n little-endian float32 into out; 0 on a size mismatch */
static inline int decode_f32_b64(const char *s, float *out, size_t n)
{
    size_t o = 0, want = n * 4;
    unsigned char *bytes = (unsigned char *)out;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; s[i] && s[i] != '='; i++) {
        int v = b64val(s[i]);
        if (v < 0 || o == want)
            return 0;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (o != want)
        return 0;
    for (size_t i = 0; i < n; i++) { /* the fixture is little-endian; so is every host this builds for */
        uint32_t u = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 | (uint32_t)bytes[4 * i + 2] << 16 |
                     (uint32_t)bytes[4 * i + 3] << 24;
        memcpy(&out[i], &u, 4);
    }
    return 1;
}

/* How closely one comparison must agree. */
typedef struct {
    const char *label;   /* printed before each prompt's line */
    const char *ref;     /* the reference's name in messages */
    rg_kv_type kv;       /* the cache the reference used (or the nearest) */
    size_t n_greedy;     /* greedy tokens the record must hold */
    double max_rel;      /* the prompt's logits, relative to the whole vector */
    double max_step_abs; /* each decode step: ours at the reference's two best ids */
    double near_tie;     /* a greedy mismatch is excused only below this margin */
} hf_golden_bounds;

/* One prompt record: its logits, then greedy decoding through the KV cache
 * (of type b->kv); returns the prompt's relative error and raises *step_abs to the
 * largest decode-step difference seen. A greedy mismatch is excused only
 * where the reference's margin is under near_tie and ours took its
 * runner-up; the comparison of that prompt stops there. */
static inline double hf_golden_prompt(rg_decoder *d, const cJSON *rec, size_t V, const hf_golden_bounds *b,
                                      double *step_abs)
{
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(rec, "name");
    if (!cJSON_IsString(nm))
        nm = cJSON_GetObjectItemCaseSensitive(rec, "model");
    const char *name = cJSON_IsString(nm) ? nm->valuestring : "?";
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(rec, "logits_f32");
    const cJSON *top2 = cJSON_GetObjectItemCaseSensitive(rec, "step_top2");
    const cJSON *f64 = cJSON_GetObjectItemCaseSensitive(rec, "f64_rel");
    size_t n_ids, n_greedy;
    int32_t *ids = json_ids(cJSON_GetObjectItemCaseSensitive(rec, "ids"), &n_ids);
    int32_t *ref = json_ids(cJSON_GetObjectItemCaseSensitive(rec, "greedy"), &n_greedy);
    float *ours = malloc(V * sizeof(float)), *want = malloc(V * sizeof(float));
    double r = INFINITY;
    rg_err e = {0};
    rg_kv_cache *kv = NULL;
    CHECK_MSG(cJSON_IsString(b64) && decode_f32_b64(b64->valuestring, want, V), "%s: bad logits_f32", name);
    CHECK_MSG(n_greedy == b->n_greedy && cJSON_GetArraySize(top2) == (int)n_greedy, "%s: %zu greedy tokens", name,
              n_greedy);
    CHECK_OK(kv_cache_alloc(d, n_ids + n_greedy, b->kv, &kv, &e), e);
    if (!kv || decoder_prefill(d, kv, ids, n_ids, ours, &e) != RG_OK) {
        CHECK_MSG(0, "%s: prefill failed: %s", name, e.msg);
        goto out;
    }
    r = rel_err_full(ours, want, V);
    size_t s = 0;
    double mine = 0; /* this prompt's worst decode-step difference */
    for (; s < n_greedy && s < (size_t)cJSON_GetArraySize(top2); s++) {
        const cJSON *t = cJSON_GetArrayItem(top2, (int)s);
        int first = cJSON_GetArrayItem(t, 0)->valueint, second = cJSON_GetArrayItem(t, 2)->valueint;
        double v1 = cJSON_GetArrayItem(t, 1)->valuedouble, v2 = cJSON_GetArrayItem(t, 3)->valuedouble;
        double da = fabs(ours[first] - v1), db = fabs(ours[second] - v2);
        if (da > mine || db > mine)
            mine = da > db ? da : db;
        CHECK_MSG(da < b->max_step_abs && db < b->max_step_abs,
                  "%s: step %zu: logits of ids %d, %d are %.6f, %.6f; %s %.6f, %.6f", name, s, first, second,
                  ours[first], ours[second], b->ref, v1, v2);
        int32_t tok = argmax(ours, V);
        if (tok != ref[s]) {
            int excused = v1 - v2 < b->near_tie && tok == second;
            fprintf(stderr, "%s: step %zu: ours %d, %s %d (margin %.6f to its runner-up %d) -> %s\n", name, s, tok,
                    b->ref, ref[s], v1 - v2, second, excused ? "near-tie, excused" : "MISMATCH");
            CHECK_MSG(excused, "%s: greedy token %zu differs from %s's", name, s, b->ref);
            break;
        }
        if (s + 1 < n_greedy) {
            rg_kv_cache *one[1] = {kv};
            if (decoder_decode(d, one, &tok, 1, ours, &e) != RG_OK) {
                CHECK_MSG(0, "%s: decode failed: %s", name, e.msg);
                break;
            }
        }
    }
    if (mine > *step_abs)
        *step_abs = mine;
    if (cJSON_IsNumber(f64))
        printf("%s: %s (%zu tokens): logits relative error %.3g (%s float32 vs float64: %.3g), %zu/%zu greedy tokens "
               "equal, decode steps within %.3g\n", b->label, name, n_ids, r, b->ref, f64->valuedouble, s, n_greedy,
               mine);
    else
        printf("%s: %s (%zu tokens): logits relative error %.3g, %zu/%zu greedy tokens equal, decode steps within "
               "%.3g\n", b->label, name, n_ids, r, s, n_greedy, mine);
    CHECK_MSG(r < b->max_rel, "%s: logits relative error %.3g against %s (bound %.3g)", name, r, b->ref, b->max_rel);
out:
    kv_cache_free(kv);
    free(ours);
    free(want);
    free(ids);
    free(ref);
    return r;
}

#endif
