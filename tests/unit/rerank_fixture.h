/* rerank_fixture.h - the TEST cross-encoder of scripts/gen_rerank_golden.py
 * for the unit tests: its golden logits, and the model assembled in a
 * temporary directory as a sharded checkpoint (config.json from the
 * fixture, MiniLM's tokenizer files, a model.safetensors.index.json mapping
 * the encoder tensors to MiniLM's model.safetensors and the head to
 * tests/fixtures/rerank_head.safetensors). A fixture for checking the code
 * path, never a reranker. Include after check.h, with _GNU_SOURCE defined. */
#ifndef RAGD_TESTS_RERANK_FIXTURE_H
#define RAGD_TESTS_RERANK_FIXTURE_H

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "jsonl_lines.h"
#include "model/safetensors.h"

#define GOLDEN "tests/fixtures/rerank_golden.jsonl"
#define HEAD "tests/fixtures/rerank_head.safetensors"
#define CONFIG "tests/fixtures/rerank_config.json"

typedef struct golden {
    int group;
    char *q, *p;
    size_t qlen, plen, tokens;
    int truncated;
    double logit;
} golden;

static inline char *unhex(const char *h, size_t *len)
{
    size_t n = strlen(h) / 2;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        s[i] = (char)v;
    }
    s[n] = 0;
    *len = n;
    return s;
}

static inline size_t load_golden(golden **out)
{
    rg_buf b;
    rg_err e = {0};
    rg_buf_init(&b, 0);
    if (fs_read_file(GOLDEN, 16u << 20, &b, &e) != RG_OK) {
        CHECK_MSG(0, "%s", e.msg);
        return 0;
    }
    size_t n = 0;
    golden *g = calloc(1024, sizeof *g);
    *out = g;
    char *p = b.data;
    cJSON *j;
    while (n < 1024 && (j = jsonl_next(&p))) {
        golden *r = &g[n++];
        r->group = cJSON_GetObjectItem(j, "group")->valueint;
        r->q = unhex(cJSON_GetObjectItem(j, "query_hex")->valuestring, &r->qlen);
        r->p = unhex(cJSON_GetObjectItem(j, "passage_hex")->valuestring, &r->plen);
        r->tokens = (size_t)cJSON_GetObjectItem(j, "tokens")->valuedouble;
        r->truncated = cJSON_IsTrue(cJSON_GetObjectItem(j, "truncated"));
        r->logit = cJSON_GetObjectItem(j, "logit")->valuedouble;
        cJSON_Delete(j);
    }
    rg_buf_free(&b);
    *out = g;
    return n;
}

static inline int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static inline int link_abs(const char *target, const char *dir, const char *name)
{
    char abs[PATH_MAX], link[4200];
    if (!realpath(target, abs))
        return -1;
    snprintf(link, sizeof link, "%s/%s", dir, name);
    return symlink(abs, link);
}

/* The sharded test model: encoder tensors -> encoder.safetensors (MiniLM's
 * file), head tensors -> head.safetensors (the fixture). */
static inline int assemble(const char *minilm, const char *dir)
{
    static const char *tok_files[] = {"tokenizer.json", "vocab.txt", "tokenizer_config.json",
                                      "special_tokens_map.json"};
    char path[4200], src[4200];
    for (size_t i = 0; i < 4; i++) {
        snprintf(src, sizeof src, "%s/%s", minilm, tok_files[i]);
        if (link_abs(src, dir, tok_files[i]))
            return -1;
    }
    snprintf(src, sizeof src, "%s/model.safetensors", minilm);
    if (link_abs(src, dir, "encoder.safetensors") || link_abs(HEAD, dir, "head.safetensors") ||
        link_abs(CONFIG, dir, "config.json"))
        return -1;
    rg_safetensors *enc, *head;
    rg_err e;
    if (safetensors_open(src, &enc, &e) || safetensors_open(HEAD, &head, &e))
        return -1;
    cJSON *idx = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(idx, "weight_map");
    for (size_t i = 0; i < safetensors_count(enc); i++) {
        const char *name = safetensors_at(enc, i)->name;
        if (strncmp(name, "pooler.", 7) != 0) /* MiniLM's own pooler is not this model's */
            cJSON_AddStringToObject(map, name, "encoder.safetensors");
    }
    for (size_t i = 0; i < safetensors_count(head); i++)
        cJSON_AddStringToObject(map, safetensors_at(head, i)->name, "head.safetensors");
    safetensors_close(enc);
    safetensors_close(head);
    char *text = cJSON_Print(idx);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    int rc = write_text(path, text);
    free(text);
    cJSON_Delete(idx);
    return rc;
}

static inline void rm_dir(const char *dir)
{
    static const char *names[] = {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                                  "encoder.safetensors", "head.safetensors", "config.json",
                                  "model.safetensors.index.json"};
    char path[4200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* The installed MiniLM ($RAGD_MODELS or ./models). */
static inline void minilm_dir(char *out, size_t size)
{
    const char *models = getenv("RAGD_MODELS");
    snprintf(out, size, "%s/all-MiniLM-L6-v2", models && *models ? models : "models");
}

#endif
