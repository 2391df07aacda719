#define _GNU_SOURCE /* realpath, symlink */
/* test_cross_encoder.c - the BERT cross-encoder code path against reference
 * logits from sentence-transformers' CrossEncoder
 * (tests/fixtures/rerank_golden.jsonl, scripts/gen_rerank_golden.py).
 *
 * The model is a TEST fixture, not a reranker: the real all-MiniLM-L6-v2
 * encoder (installed by `make models`) under a seeded random pooler and
 * classifier (tests/fixtures/rerank_head.safetensors). It is assembled here
 * in a temporary directory as a sharded checkpoint: config.json from the
 * fixture, MiniLM's tokenizer files, and a model.safetensors.index.json
 * mapping the encoder tensors to MiniLM's model.safetensors and the head to
 * the fixture file. Requires |logit - golden| < 1e-3 for every pair and
 * the golden order within each query, one pair at a time and batched; plus
 * the refusals (ELECTRA, two labels, no pooler) and truncation rules.
 * Where a CUDA device is usable the golden pass runs again on it, within
 * 2e-2 (the bound for fp16/bf16 GPU math); without one it says so. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/buf.h"
#include "common/fs.h"
#include "model/cross_encoder.h"
#include "model/backend.h"
#include "model/safetensors.h"
#include "rerank_fixture.h"

#define TOL 1e-3
#define TOL_CUDA 2e-2

/* Same order as the reference within each query, for pairs whose golden
 * logits differ by more than twice the tolerance (closer ones may swap). */
static void check_order(const golden *g, size_t n, const float *got, double tol, const char *what)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (g[i].group == g[j].group && g[i].logit > g[j].logit + 2 * tol && !(got[i] > got[j]))
                bad++;
    CHECK_MSG(bad == 0, "%s: %zu pairs out of the reference order", what, bad);
}

static void test_golden(const char *dir, const golden *g, size_t n, rg_device device, double tol)
{
    rg_cross_encoder *ce;
    rg_err e = {0};
    rg_status st = cross_encoder_load(dir, device, &ce, &e);
    CHECK_OK(st, e);
    if (st)
        return;
    CHECK(cross_encoder_max_tokens(ce) == 512);
    float *one = calloc(n, sizeof *one), *batched = calloc(n, sizeof *batched);
    double worst1 = 0, worstb = 0;
    size_t n_trunc = 0;
    /* One pair per forward pass: no padding, like the reference. */
    for (size_t i = 0; i < n; i++) {
        rg_encoding enc = {0};
        st = cross_encoder_encode(ce, g[i].q, g[i].qlen, g[i].p, g[i].plen, 1, &enc, &e);
        CHECK_OK(st, e);
        CHECK_MSG(enc.n == g[i].tokens, "pair %zu: %zu tokens, reference %zu", i, enc.n, g[i].tokens);
        n_trunc += g[i].truncated;
        const rg_encoding *p = &enc;
        if (!st)
            st = cross_encoder_logits(ce, &p, 1, &one[i], &e);
        CHECK_OK(st, e);
        double d = fabs(one[i] - g[i].logit);
        worst1 = d > worst1 ? d : worst1;
        CHECK_MSG(d < tol, "pair %zu (group %d): logit %.6f, reference %.6f", i, g[i].group, one[i], g[i].logit);
        /* Over-long pairs are refused when truncation is off. */
        if (g[i].truncated) {
            rg_encoding full = {0};
            CHECK(cross_encoder_encode(ce, g[i].q, g[i].qlen, g[i].p, g[i].plen, 0, &full, &e) == RG_ERR_INVALID);
            CHECK(strstr(e.msg, "at most 512") != NULL);
            encoding_free(&full);
        }
        encoding_free(&enc);
    }
    CHECK(n_trunc >= 5);
    check_order(g, n, one, tol, "batch 1");
    /* Batched per query group: padded, length-sorted batches of up to 4. */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && g[j].group == g[i].group)
            j++;
        const char **ps = malloc((j - i) * sizeof *ps);
        size_t *ls = malloc((j - i) * sizeof *ls), tokens = 0, want = 0;
        for (size_t k = i; k < j; k++) {
            ps[k - i] = g[k].p;
            ls[k - i] = g[k].plen;
            want += g[k].tokens;
        }
        st = cross_encoder_score(ce, g[i].q, g[i].qlen, ps, ls, j - i, 4, batched + i, &tokens, &e);
        CHECK_OK(st, e);
        CHECK(tokens == want);
        free(ps);
        free(ls);
        i = j;
    }
    for (size_t i = 0; i < n; i++) {
        double d = fabs(batched[i] - g[i].logit);
        worstb = d > worstb ? d : worstb;
        CHECK_MSG(d < tol, "batched pair %zu: logit %.6f, reference %.6f", i, batched[i], g[i].logit);
    }
    check_order(g, n, batched, tol, "batched");
    printf("test_cross_encoder: %s (%s): %zu pairs (%zu truncated), max |logit - reference| %.2e at batch 1, "
           "%.2e batched\n",
           backend_device_name(cross_encoder_device(ce)), cross_encoder_device_desc(ce), n, n_trunc, worst1, worstb);
    free(one);
    free(batched);
    cross_encoder_free(ce);
}

/* Rewrites config.json in dir with one field replaced. */
static void set_config(const char *dir, const char *field, cJSON *value)
{
    rg_buf b;
    rg_err e;
    rg_buf_init(&b, 0);
    fs_read_file(CONFIG, 1 << 20, &b, &e);
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    rg_buf_free(&b);
    if (value)
        cJSON_ReplaceItemInObject(j, field, value);
    else
        cJSON_DeleteItemFromObject(j, field);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    char *text = cJSON_Print(j);
    write_text(path, text);
    free(text);
    cJSON_Delete(j);
}

static void test_refusals(const char *dir)
{
    rg_cross_encoder *ce = NULL;
    rg_err e = {0};
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString("ElectraForSequenceClassification"));
    set_config(dir, "architectures", arch);
    CHECK(cross_encoder_load(dir, RG_DEVICE_CPU, &ce, &e) == RG_ERR_UNSUPPORTED);
    CHECK(strstr(e.msg, "ElectraForSequenceClassification") != NULL);

    cJSON *labels = cJSON_CreateObject();
    cJSON_AddStringToObject(labels, "0", "no");
    cJSON_AddStringToObject(labels, "1", "yes");
    set_config(dir, "id2label", labels);
    CHECK(cross_encoder_load(dir, RG_DEVICE_CPU, &ce, &e) == RG_ERR_UNSUPPORTED);
    CHECK(strstr(e.msg, "2 labels") != NULL);
    set_config(dir, "id2label", NULL); /* transformers' default: two labels */
    CHECK(cross_encoder_load(dir, RG_DEVICE_CPU, &ce, &e) == RG_ERR_UNSUPPORTED);
    CHECK(ce == NULL);

    /* An index naming a shard outside the directory is refused. */
    char path[4200];
    set_config(dir, "architectures", NULL);
    cJSON *one = cJSON_CreateObject();
    cJSON_AddStringToObject(one, "0", "LABEL_0");
    set_config(dir, "id2label", one);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    unlink(path);
    write_text(path, "{\"weight_map\": {\"classifier.weight\": \"../head.safetensors\"}}");
    CHECK(cross_encoder_load(dir, RG_DEVICE_CPU, &ce, &e) == RG_ERR_CORRUPT);
    CHECK(strstr(e.msg, "plain file name") != NULL);
    /* Malformed indexes: clear errors, never a crash. */
    static const char *bad[] = {"not json", "{\"weight_map\": {}}", "{\"weight_map\": [1]}",
                                "{\"weight_map\": {\"a\": 3}}", "{\"weight_map\": {\"a\": \"missing.safetensors\"}}",
                                "{\"weight_map\": {\"a\": \".hidden\"}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unlink(path);
        write_text(path, bad[i]);
        rg_status st = cross_encoder_load(dir, RG_DEVICE_CPU, &ce, &e);
        CHECK_MSG(st == RG_ERR_CORRUPT || st == RG_ERR_NOT_FOUND, "index %zu: status %d", i, (int)st);
        CHECK(ce == NULL && e.msg[0]);
    }
    /* The encoder without the head: refused naming the pooler, not run
     * without one. */
    unlink(path);
    rg_safetensors *enc;
    char enc_path[4200];
    snprintf(enc_path, sizeof enc_path, "%s/encoder.safetensors", dir);
    CHECK(safetensors_open(enc_path, &enc, &e) == RG_OK);
    cJSON *idx = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(idx, "weight_map");
    for (size_t i = 0; enc && i < safetensors_count(enc); i++)
        if (strncmp(safetensors_at(enc, i)->name, "pooler.", 7) != 0)
            cJSON_AddStringToObject(map, safetensors_at(enc, i)->name, "encoder.safetensors");
    safetensors_close(enc);
    char *text = cJSON_Print(idx);
    write_text(path, text);
    free(text);
    cJSON_Delete(idx);
    CHECK(cross_encoder_load(dir, RG_DEVICE_CPU, &ce, &e) == RG_ERR_CORRUPT);
    CHECK(strstr(e.msg, "no pooler") != NULL);
    /* No weights at all. */
    unlink(path);
    CHECK(cross_encoder_load(dir, RG_DEVICE_CPU, &ce, &e) == RG_ERR_NOT_FOUND);
}

int main(void)
{
    char minilm[4096];
    minilm_dir(minilm, sizeof minilm);
    if (!fs_is_file(GOLDEN) || !fs_is_dir(minilm)) {
        fprintf(stderr, "test_cross_encoder: needs %s and the model at %s (make models)\n", GOLDEN, minilm);
        return 1;
    }
    golden *g = NULL;
    size_t n = load_golden(&g);
    CHECK(n >= 100);
    char dir[] = "/tmp/ragd-test-ce-XXXXXX";
    if (!mkdtemp(dir) || assemble(minilm, dir) != 0) {
        fprintf(stderr, "test_cross_encoder: cannot assemble the test model in %s\n", dir);
        return 1;
    }
    test_golden(dir, g, n, RG_DEVICE_CPU, TOL);
    char gpu[256];
    if (backend_cuda_devices(gpu, sizeof gpu) > 0)
        test_golden(dir, g, n, RG_DEVICE_CUDA, TOL_CUDA);
    else
        printf("test_cross_encoder: CUDA pass not run: %s\n", gpu);
    test_refusals(dir);
    rm_dir(dir);
    for (size_t i = 0; i < n; i++)
        free(g[i].q), free(g[i].p);
    free(g);
    return check_finish("test_cross_encoder");
}
