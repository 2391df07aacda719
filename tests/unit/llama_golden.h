/* llama_golden.h - tests/fixtures/llama_golden.jsonl (written by
 * scripts/gen_llama_golden.py with llama.cpp) read for test_decoder and
 * test_decoder_cuda, with the measures both compare by. Each test keeps its
 * own bounds. Include after check.h. */
#ifndef RAGD_TESTS_LLAMA_GOLDEN_H
#define RAGD_TESTS_LLAMA_GOLDEN_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "jsonl_lines.h"
#include "model/quant.h"

#define LLAMA_GOLDEN "tests/fixtures/llama_golden.jsonl"

/* 1 where the decoder's kernels mirror llama.cpp's CPU arithmetic (x86-64
 * with AVX2, FMA and F16C), so its logits equal llama.cpp's to float
 * rounding at most; elsewhere the portable C kernels sum in other orders */
static inline int mirrors_llama_cpp(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

/* The prompt records (at most cap) into recs; the record holding "meta",
 * when meta is not NULL, into *meta (else deleted). The caller deletes
 * them. */
static inline size_t llama_golden_read(cJSON **recs, size_t cap, cJSON **meta)
{
    rg_buf b;
    rg_err e = {0};
    rg_buf_init(&b, 0);
    if (meta)
        *meta = NULL;
    CHECK_OK(fs_read_file(LLAMA_GOLDEN, 64u << 20, &b, &e), e);
    size_t n = 0;
    char *p = b.data;
    cJSON *j;
    while (n < cap && (j = jsonl_next(&p))) {
        if (cJSON_GetObjectItemCaseSensitive(j, "meta")) {
            if (meta && !*meta)
                *meta = j;
            else
                cJSON_Delete(j);
            continue;
        }
        recs[n++] = j;
    }
    rg_buf_free(&b);
    return n;
}

/* llama.cpp's own spread on a prompt (self_noise.KEY); 0 and a failure
 * when the fixture lacks it */
static inline double noise(const cJSON *rec, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rec, "self_noise"), key);
    CHECK_MSG(cJSON_IsNumber(v), "fixture lacks self_noise.%s (regenerate it)", key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

/* relative error over the reference's top ids (where the probability is) */
static inline double rel_err_top(const float *ours, const cJSON *top)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(top, "ids"), *vals = cJSON_GetObjectItemCaseSensitive(top, "vals");
    double num = 0, den = 0;
    int n = cJSON_GetArraySize(ids);
    for (int i = 0; i < n; i++) {
        double ref = cJSON_GetArrayItem(vals, i)->valuedouble;
        double d = ours[cJSON_GetArrayItem(ids, i)->valueint] - ref;
        num += d * d;
        den += ref * ref;
    }
    return n ? sqrt(num / den) : INFINITY;
}

/* relative error with each vector's mean removed: a uniform shift of the
 * logits changes no probability */
static inline double rel_err_centered(const float *a, const float *b, size_t n)
{
    double ma = 0, mb = 0, num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        ma += a[i], mb += b[i];
    ma /= (double)n;
    mb /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = (a[i] - ma) - (b[i] - mb);
        num += d * d;
        den += (b[i] - mb) * (b[i] - mb);
    }
    return sqrt(num / den);
}

static inline int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* base64 of little-endian halves into n floats; 0 on a size mismatch */
static inline int decode_f16_b64(const char *s, float *out, size_t n)
{
    size_t len = strlen(s), o = 0;
    unsigned char *bytes = malloc(len / 4 * 3 + 3);
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len && s[i] != '='; i++) {
        int v = b64val(s[i]);
        if (v < 0)
            break;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes[o++] = (unsigned char)(acc >> bits);
        }
    }
    int ok = o == n * 2;
    for (size_t i = 0; ok && i < n; i++)
        out[i] = fp16_to_f32((uint16_t)(bytes[2 * i] | bytes[2 * i + 1] << 8));
    free(bytes);
    return ok;
}

static inline int32_t *json_ids(const cJSON *a, size_t *n)
{
    *n = (size_t)cJSON_GetArraySize(a);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++)
        ids[i] = cJSON_GetArrayItem(a, (int)i)->valueint;
    return ids;
}

static inline int32_t argmax(const float *x, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

#endif
