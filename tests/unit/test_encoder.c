/* test_encoder.c - the BERT encoder against golden vectors from
 * sentence-transformers (tests/fixtures/embedding_golden.jsonl, written by
 * scripts/gen_embedding_golden.py), at batch size 1 and 32, plus config
 * validation. Needs the default model (RAGD_MODELS or ./models). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "embedding_golden.h"
#include "common/buf.h"
#include "common/fs.h"
#include "model/bert_config.h"
#include "model/encoder.h"

#define MODEL_NAME "all-MiniLM-L6-v2"
#define MIN_COS 0.9999
#define MIN_COS_BATCH 0.99999

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / (sqrt(aa) * sqrt(bb) + 1e-30);
}

static double norm(const float *a, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * a[i];
    return sqrt(s);
}

static void test_golden(const char *model_dir)
{
    rg_err e = {0};
    rg_encoder *enc = NULL;
    int64_t t0 = clock_mono_us();
    rg_status st = encoder_load(model_dir, &enc, &e);
    CHECK_OK(st, e);
    if (st != RG_OK)
        return;
    printf("test_encoder: load %.0f ms\n", (clock_mono_us() - t0) / 1000.0);
    size_t dim = encoder_dim(enc);
    CHECK(dim == 384);
    CHECK(encoder_max_tokens(enc) == 256);
    CHECK(encoder_pooling(enc) == RG_POOL_MEAN);
    CHECK(encoder_normalizes(enc));
    CHECK(encoder_tokenizer(enc) != NULL);

    golden *g = NULL;
    size_t n = load_golden(&g, dim);
    CHECK_MSG(n >= 100, "only %zu golden records", n);
    if (n == 0) {
        encoder_free(enc);
        return;
    }
    /* Mix lengths: the fixture lists long texts together, so visit it in a
     * strided order that puts long and short texts in the same batch. */
    size_t *perm = malloc(n * sizeof *perm);
    size_t stride = 37;
    while (n % stride == 0)
        stride++;
    for (size_t i = 0; i < n; i++)
        perm[i] = (i * stride) % n;
    const char **texts = malloc(n * sizeof *texts);
    size_t *lens = malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        texts[i] = g[perm[i]].text;
        lens[i] = g[perm[i]].len;
    }
    float *single = malloc(n * dim * sizeof *single);
    float *batch = malloc(n * dim * sizeof *batch);

    /* Batch size 1. */
    t0 = clock_mono_us();
    size_t total_single = 0;
    for (size_t i = 0; i < n; i++) {
        size_t used = 0;
        st = encoder_embed(enc, &texts[i], &lens[i], 1, single + i * dim, &used, &e);
        CHECK_OK(st, e);
        CHECK_MSG(used == g[perm[i]].tokens, "text %zu: %zu tokens, reference %zu", perm[i], used,
                  g[perm[i]].tokens);
        total_single += used;
    }
    double ms1 = (clock_mono_us() - t0) / 1000.0;

    /* Batch size 32 (the last batch is smaller). */
    encoder_set_max_batch(enc, 32);
    t0 = clock_mono_us();
    size_t total_batch = 0;
    st = encoder_embed(enc, texts, lens, n, batch, &total_batch, &e);
    CHECK_OK(st, e);
    CHECK(total_batch == total_single);
    double ms32 = (clock_mono_us() - t0) / 1000.0;

    double min1 = 2, min32 = 2, sum1 = 0, sum32 = 0, min_sb = 2, max_dn = 0;
    for (size_t i = 0; i < n; i++) {
        const float *ref = g[perm[i]].vec;
        double c1 = cosine(single + i * dim, ref, dim);
        double c32 = cosine(batch + i * dim, ref, dim);
        double csb = cosine(single + i * dim, batch + i * dim, dim);
        double dn = fabs(norm(single + i * dim, dim) - 1.0);
        CHECK_MSG(c1 >= MIN_COS, "batch 1, text %zu: cosine %.7f", perm[i], c1);
        CHECK_MSG(c32 >= MIN_COS, "batch 32, text %zu: cosine %.7f", perm[i], c32);
        CHECK_MSG(csb >= MIN_COS_BATCH, "text %zu: batch 32 vs batch 1 cosine %.8f", perm[i], csb);
        CHECK_MSG(dn < 1e-4, "text %zu: norm off by %g", perm[i], dn);
        CHECK(fabs(norm(batch + i * dim, dim) - 1.0) < 1e-4);
        min1 = c1 < min1 ? c1 : min1;
        min32 = c32 < min32 ? c32 : min32;
        min_sb = csb < min_sb ? csb : min_sb;
        max_dn = dn > max_dn ? dn : max_dn;
        sum1 += c1;
        sum32 += c32;
    }
    printf("test_encoder: %zu texts, %zu tokens; batch 1: 1-cos max %.1e mean %.1e (%.0f ms); "
           "batch 32: 1-cos max %.1e mean %.1e (%.0f ms); batch vs single 1-cos max %.1e; max |norm-1| %.1e\n",
           n, total_single, 1 - min1, 1 - sum1 / n, ms1, 1 - min32, 1 - sum32 / n, ms32, 1 - min_sb, max_dn);

    /* Deterministic: the same call gives the same bits. */
    float *again = malloc(8 * dim * sizeof *again);
    st = encoder_embed(enc, texts, lens, 8, again, NULL, &e);
    CHECK_OK(st, e);
    CHECK(memcmp(again, batch, 8 * dim * sizeof *again) == 0);
    for (size_t i = 0; i < 3; i++) {
        st = encoder_embed(enc, &texts[i], &lens[i], 1, again, NULL, &e);
        CHECK_OK(st, e);
        CHECK(memcmp(again, single + i * dim, dim * sizeof *again) == 0);
    }
    /* NUL-terminated texts (lens NULL), and n = 0. */
    const char *plain[2] = {"Hello, world!", "The quick brown fox jumps over the lazy dog."};
    st = encoder_embed(enc, plain, NULL, 2, again, NULL, &e);
    CHECK_OK(st, e);
    for (size_t i = 0; i < n; i++)
        if (strcmp(g[i].text, plain[0]) == 0)
            CHECK(cosine(again, g[i].vec, dim) >= MIN_COS);
    size_t used = 99;
    CHECK(encoder_embed(enc, plain, NULL, 0, again, &used, &e) == RG_OK && used == 0);
    /* Out-of-range ids are refused by the raw forward pass. */
    int32_t ids[2] = {101, 1 << 30}, mask[2] = {1, 1};
    st = encoder_forward(enc, ids, NULL, mask, 1, 2, again, &e);
    CHECK(st == RG_ERR_INVALID);

    free(again);
    free(single);
    free(batch);
    free(texts);
    free(lens);
    free(perm);
    for (size_t i = 0; i < n; i++) {
        free(g[i].text);
        free(g[i].vec);
    }
    free(g);
    encoder_free(enc);
}

/* ---- config validation --------------------------------------------------- */

static const char *GOOD_CONFIG =
    "{\"model_type\": \"bert\", \"hidden_act\": \"gelu\", \"hidden_size\": 384, \"num_hidden_layers\": 6,"
    " \"num_attention_heads\": 12, \"intermediate_size\": 1536, \"max_position_embeddings\": 512,"
    " \"type_vocab_size\": 2, \"vocab_size\": 30522, \"layer_norm_eps\": 1e-12,"
    " \"position_embedding_type\": \"absolute\"}";

/* GOOD_CONFIG with the text from..to replaced by repl. */
static char *edit(const char *from, const char *repl)
{
    const char *p = strstr(GOOD_CONFIG, from);
    size_t n = strlen(GOOD_CONFIG) - strlen(from) + strlen(repl) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(p - GOOD_CONFIG), GOOD_CONFIG, repl, p + strlen(from));
    return s;
}

static void expect_bad(const char *from, const char *repl, rg_status want, const char *needle)
{
    char *s = edit(from, repl);
    rg_bert_config c;
    rg_err e = {0};
    rg_status st = bert_config_parse(s, strlen(s), "cfg.json", &c, &e);
    CHECK_MSG(st == want, "%s -> %s: status %d, want %d (%s)", from, repl, (int)st, (int)want, e.msg);
    CHECK_MSG(strstr(e.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", e.msg, needle);
    CHECK(strstr(e.msg, "cfg.json") != NULL);
    free(s);
}

static void test_config(void)
{
    rg_bert_config c;
    rg_err e = {0};
    rg_status st = bert_config_parse(GOOD_CONFIG, strlen(GOOD_CONFIG), "cfg.json", &c, &e);
    CHECK_OK(st, e);
    CHECK(c.hidden_size == 384 && c.num_hidden_layers == 6 && c.num_attention_heads == 12);
    CHECK(c.intermediate_size == 1536 && c.max_position_embeddings == 512 && c.type_vocab_size == 2);
    CHECK(c.vocab_size == 30522 && c.layer_norm_eps > 0 && c.layer_norm_eps < 1e-11);

    expect_bad("\"hidden_size\": 384, ", "", RG_ERR_CORRUPT, "missing field \"hidden_size\"");
    expect_bad("\"vocab_size\": 30522, ", "", RG_ERR_CORRUPT, "missing field \"vocab_size\"");
    expect_bad("\"layer_norm_eps\": 1e-12,", "", RG_ERR_CORRUPT, "layer_norm_eps");
    expect_bad("\"num_attention_heads\": 12", "\"num_attention_heads\": 7", RG_ERR_CORRUPT, "not divisible");
    expect_bad("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"relu\"", RG_ERR_UNSUPPORTED, "hidden_act \"relu\"");
    expect_bad("\"model_type\": \"bert\"", "\"model_type\": \"llama\"", RG_ERR_UNSUPPORTED, "model_type");
    expect_bad("\"hidden_act\": \"gelu\", ", "", RG_ERR_CORRUPT, "missing field \"hidden_act\"");
    expect_bad("\"num_hidden_layers\": 6", "\"num_hidden_layers\": \"6\"", RG_ERR_CORRUPT, "must be a number");
    expect_bad("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 0", RG_ERR_CORRUPT, "num_hidden_layers");
    expect_bad("\"intermediate_size\": 1536", "\"intermediate_size\": 1.5", RG_ERR_CORRUPT, "intermediate_size");
    expect_bad("\"hidden_size\": 384", "\"hidden_size\": -384", RG_ERR_CORRUPT, "hidden_size");
    expect_bad("\"layer_norm_eps\": 1e-12", "\"layer_norm_eps\": 0", RG_ERR_CORRUPT, "layer_norm_eps");
    expect_bad("\"absolute\"", "\"relative_key\"", RG_ERR_UNSUPPORTED, "position_embedding_type");

    st = bert_config_parse("{not json", 9, "cfg.json", &c, &e);
    CHECK(st == RG_ERR_CORRUPT && strstr(e.msg, "not valid JSON"));
    st = bert_config_parse("[1,2]", 5, "cfg.json", &c, &e);
    CHECK(st == RG_ERR_CORRUPT);

    /* encoder_load names the file when config.json is wrong or missing. */
    char dir[] = "/tmp/ragd-test-encoder-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    rg_encoder *enc = NULL;
    st = encoder_load(dir, &enc, &e);
    CHECK(st == RG_ERR_NOT_FOUND && enc == NULL);
    char *bad = edit("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"swish\"");
    CHECK(fs_write_atomic(path, bad, strlen(bad), &e) == RG_OK);
    free(bad);
    st = encoder_load(dir, &enc, &e);
    CHECK_MSG(st == RG_ERR_UNSUPPORTED && strstr(e.msg, "config.json") && strstr(e.msg, "swish"), "%s", e.msg);
    CHECK(enc == NULL);
    fs_remove(path, &e);
    rmdir(dir);
    st = encoder_load("/nonexistent/ragd/model", &enc, &e);
    CHECK(st == RG_ERR_NOT_FOUND && enc == NULL);
}

int main(void)
{
    test_config();
    char model_dir[1024];
    const char *base = getenv("RAGD_MODELS");
    snprintf(model_dir, sizeof model_dir, "%s/%s", base && *base ? base : "models", MODEL_NAME);
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/config.json", model_dir);
    if (!fs_is_file(cfg)) {
        fprintf(stderr,
                "test_encoder: the default model is not installed at %s (set RAGD_MODELS or run `make models`)\n",
                model_dir);
        return 1;
    }
    test_golden(model_dir);
    return check_finish("test_encoder");
}
