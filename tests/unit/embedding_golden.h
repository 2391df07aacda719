/* embedding_golden.h - tests/fixtures/embedding_golden.jsonl (written by
 * scripts/gen_embedding_golden.py with sentence-transformers) read for
 * test_encoder and test_encoder_cuda: per record the text, its token count
 * and the reference embedding. Include after check.h. */
#ifndef RAGD_TESTS_EMBEDDING_GOLDEN_H
#define RAGD_TESTS_EMBEDDING_GOLDEN_H

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "jsonl_lines.h"

#define EMBEDDING_GOLDEN "tests/fixtures/embedding_golden.jsonl"

typedef struct golden {
    char *text;
    size_t len, tokens;
    float *vec;
} golden;

static inline int golden_hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
}

/* The records whose embedding has dim values; a malformed one fails a CHECK. */
static inline size_t load_golden(golden **out, size_t dim)
{
    rg_buf b;
    rg_err e = {0};
    rg_buf_init(&b, 0);
    *out = NULL;
    if (fs_read_file(EMBEDDING_GOLDEN, 64u << 20, &b, &e) != RG_OK) {
        CHECK_MSG(0, "%s", e.msg);
        return 0;
    }
    size_t n = 0, cap = 0;
    golden *g = NULL;
    char *p = b.data;
    cJSON *j;
    while ((j = jsonl_next(&p))) {
        const cJSON *hex = cJSON_GetObjectItemCaseSensitive(j, "text_hex");
        const cJSON *emb = cJSON_GetObjectItemCaseSensitive(j, "embedding");
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "tokens");
        if (!cJSON_IsString(hex) || !cJSON_IsArray(emb) || !cJSON_IsNumber(tok) ||
            (size_t)cJSON_GetArraySize(emb) != dim) {
            CHECK_MSG(0, "bad golden record %zu", n);
            cJSON_Delete(j);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            g = realloc(g, cap * sizeof *g);
        }
        golden *r = &g[n++];
        r->len = strlen(hex->valuestring) / 2;
        r->text = malloc(r->len + 1);
        for (size_t i = 0; i < r->len; i++)
            r->text[i] =
                (char)(golden_hexval(hex->valuestring[2 * i]) * 16 + golden_hexval(hex->valuestring[2 * i + 1]));
        r->text[r->len] = 0;
        r->tokens = (size_t)tok->valuedouble;
        r->vec = malloc(dim * sizeof *r->vec);
        size_t i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, emb) r->vec[i++] = (float)x->valuedouble;
        cJSON_Delete(j);
    }
    rg_buf_free(&b);
    *out = g;
    return n;
}

#endif
