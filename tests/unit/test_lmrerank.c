/* test_lmrerank.c - the causal-LM (yes/no) reranker against transformers
 * (its default f32 precision) and llama.cpp (its q8 precision).
 *
 * Against transformers: tests/fixtures/lmrerank_hf_golden.jsonl
 * (scripts/gen_lmrerank_hf_golden.py) holds the scores LlamaForCausalLM in
 * float32 computes for the same prompts from the GGUF's dequantized weights.
 * The reranker at RG_LM_F32 (f32 activations and cache: the default) must
 * give every score within HF_TOL = 1e-3 (the bound; transformers'
 * own float32-vs-float64 spread is 2.9e-5) and the same order per query
 * wherever transformers' scores differ by more than twice that.
 *
 * Against llama.cpp (RG_LM_Q8: 8-bit activations, f16 cache, the
 * generator's arithmetic): tests/fixtures/lmrerank_golden.jsonl (scripts/gen_lmrerank_golden.py, with
 * llama-cpp-python on the same GGUF) holds >= 100 (query, passage) pairs in
 * the reranker's prompt: the token ids llama.cpp's tokenizer gives piece by
 * piece, and llama.cpp's logits of "yes" and "no" at the last position.
 * Required here:
 *   - ragd builds exactly llama.cpp's ids for every pair (prompt pieces,
 *     leading spaces, passage-first truncation, the query cut under a small
 *     limit, special-token text in content kept as text);
 *   - score = logit(yes) - logit(no) within SCORE_TOL of llama.cpp's, and
 *     the same order per query wherever llama.cpp's scores of two passages
 *     differ by more than ORDER_MARGIN = 2 * SCORE_TOL;
 *   - the prefix computed once and continued per passage gives the score of
 *     the whole prompt prefilled at once;
 *   - over-long pairs without truncation and limits too small for the
 *     prompt are refused with the numbers.
 *
 * The bound is the issue's |logit - golden| < 1e-3 for both. At q8 the
 * decoder mirrors llama.cpp's CPU arithmetic operation for operation
 * (8-bit activation blocks, fp16 scales, ggml's SIMD exp, summation orders;
 * docs/internals/reranker.md), so the scores agree to the fixture's 5 decimals (measured
 * 2026-11-25: largest difference below 5e-6 on all 115 pairs). Before that
 * mirroring was complete they differed by up to 0.4 (the yes/no logits are
 * 22-30, and a change of rounding anywhere moved them by ~1e-2 relative). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "jsonl_lines.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/sha256.h"
#include "model/decoder.h"
#include "model/lm_reranker.h"

#define MODEL_FILE "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
#define GOLDEN "tests/fixtures/lmrerank_golden.jsonl"
#define HF_GOLDEN "tests/fixtures/lmrerank_hf_golden.jsonl"
#define HF_TOL 1e-3
/* On CUDA the f32 precision keeps fp32 weights and activations on the
 * device (model/decoder_cuda.h): the same float32 function, so the CPU's
 * bound, tighter than the 2e-2 for CUDA, holds there too. */
#define HF_TOL_CUDA HF_TOL
#define MAX_RECS 256
#define SCORE_TOL 1e-3
#define ORDER_MARGIN (2 * SCORE_TOL)

typedef struct rec {
    cJSON *j;
    int group;
    const char *query, *passage;
    size_t max_tokens, n_prefix;
    int truncated;
    double score, score_split;
} rec;

static const char *str(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int ids_equal(const cJSON *golden, const rg_bpe_ids *prefix, const rg_bpe_ids *rest)
{
    size_t n = (size_t)cJSON_GetArraySize(golden);
    if (n != prefix->n + rest->n)
        return 0;
    size_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, golden)
    {
        int32_t ours = i < prefix->n ? prefix->ids[i] : rest->ids[i - prefix->n];
        if (ours != (int32_t)v->valueint)
            return 0;
        i++;
    }
    return 1;
}

/* Scores one query's passages (recs[0..n), same group and limit) in one call
 * and compares with the fixture. */

static void check_group(rg_lm_reranker *lr, rec *recs, size_t n, double *worst, double *worst_split, int *id_ok,
                        int *order_checked)
{
    rg_err e = {0};
    rg_bpe_ids prefix = {0};
    rg_bpe_ids *rests = calloc(n, sizeof *rests);
    float *scores = calloc(n, sizeof *scores);
    size_t qtok = 0;
    rg_status st = lm_reranker_encode_query(lr, recs[0].query, strlen(recs[0].query), recs[0].max_tokens, 1,
                                            &prefix, &qtok, &e);
    CHECK_OK(st, e);
    CHECK_MSG(prefix.n == recs[0].n_prefix, "group %d: prefix %zu ids, llama.cpp %zu", recs[0].group, prefix.n,
              recs[0].n_prefix);
    for (size_t i = 0; i < n && !st; i++) {
        int cut = 0;
        st = lm_reranker_encode_passage(lr, prefix.n, recs[i].passage, strlen(recs[i].passage), recs[i].max_tokens, 1,
                                        &rests[i], &cut, &e);
        CHECK_OK(st, e);
        int same = ids_equal(cJSON_GetObjectItemCaseSensitive(recs[i].j, "ids"), &prefix, &rests[i]);
        *id_ok += same;
        CHECK_MSG(same, "group %d passage %zu: ids differ from llama.cpp's", recs[i].group, i);
        CHECK_MSG(cut == recs[i].truncated || (recs[i].truncated && prefix.n + 2 >= recs[i].max_tokens),
                  "group %d passage %zu: cut %d, llama.cpp %d", recs[i].group, i, cut, recs[i].truncated);
    }
    if (!st)
        st = lm_reranker_score(lr, prefix.ids, prefix.n, rests, n, scores, &e);
    CHECK_OK(st, e);
    for (size_t i = 0; i < n && !st; i++) {
        double d = fabs(scores[i] - recs[i].score);
        if (d > *worst)
            *worst = d;
        double s = fabs(recs[i].score_split - recs[i].score);
        if (s > *worst_split)
            *worst_split = s;
        CHECK_MSG(d < SCORE_TOL, "group %d passage %zu: score %.5f, llama.cpp %.5f (|diff| %.5f)", recs[i].group, i,
                  scores[i], recs[i].score, d);
    }
    /* The order: every two passages llama.cpp separates by more than the
     * tolerance allows either side to move. */
    for (size_t a = 0; a < n && !st; a++)
        for (size_t b = 0; b < n; b++) {
            if (recs[a].score > recs[b].score + ORDER_MARGIN) {
                (*order_checked)++;
                CHECK_MSG(scores[a] > scores[b], "group %d: passages %zu and %zu in the wrong order (%.4f vs %.4f; "
                          "llama.cpp %.4f vs %.4f)", recs[a].group, a, b, scores[a], scores[b], recs[a].score,
                          recs[b].score);
            }
        }
    for (size_t i = 0; i < n; i++)
        bpe_ids_free(&rests[i]);
    bpe_ids_free(&prefix);
    free(rests);
    free(scores);
}

/* The prefix reused across passages equals the whole prompt in one prefill. */
static void check_prefix_reuse(const char *path, rg_lm_reranker *lr, const rec *r)
{
    rg_err e = {0};
    rg_decoder *d = NULL;
    rg_kv_cache *kv = NULL;
    CHECK_OK(decoder_load(path, NULL, &d, &e), e);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(r->j, "ids");
    size_t n = (size_t)cJSON_GetArraySize(ids), V = decoder_vocab(d), i = 0;
    int32_t *all = malloc(n * sizeof *all);
    float *logits = malloc(V * sizeof *logits);
    const cJSON *v;
    cJSON_ArrayForEach(v, ids) all[i++] = (int32_t)v->valueint;
    CHECK_OK(kv_cache_alloc(d, n, RG_KV_F16, &kv, &e), e);
    CHECK_OK(decoder_prefill(d, kv, all, n, logits, &e), e);
    double whole = (double)logits[lm_reranker_yes_id(lr)] - logits[lm_reranker_no_id(lr)];
    rg_bpe_ids rest = {0};
    for (size_t j = r->n_prefix; j < n; j++)
        bpe_ids_push(&rest, all[j], &e);
    float split = NAN;
    CHECK_OK(lm_reranker_score(lr, all, r->n_prefix, &rest, 1, &split, &e), e);
    printf("test_lmrerank: one prefill %.6f, prefix + rest %.6f\n", whole, (double)split);
    CHECK_MSG(fabs(whole - split) < 1e-3, "one prefill %.6f vs prefix + rest %.6f", whole, (double)split);
    bpe_ids_free(&rest);
    kv_cache_free(kv);
    decoder_free(d);
    free(all);
    free(logits);
}

static void check_refusals(rg_lm_reranker *lr)
{
    rg_err e = {0};
    rg_bpe_ids prefix = {0}, rest = {0};
    const char *q = "what is a cat";
    CHECK_OK(lm_reranker_encode_query(lr, q, strlen(q), 80, 0, &prefix, NULL, &e), e);
    char *longp = malloc(4001);
    for (int i = 0; i < 4000; i++)
        longp[i] = i % 5 == 4 ? ' ' : 'a' + i % 7;
    longp[4000] = '\0';
    rg_status st = lm_reranker_encode_passage(lr, prefix.n, longp, 4000, 80, 0, &rest, NULL, &e);
    CHECK(st == RG_ERR_INVALID && strstr(e.msg, "at most 80"));
    bpe_ids_free(&rest);
    int cut = 0;
    CHECK_OK(lm_reranker_encode_passage(lr, prefix.n, longp, 4000, 80, 1, &rest, &cut, &e), e);
    CHECK(cut == 1 && prefix.n + rest.n == 80);
    bpe_ids_free(&rest);
    bpe_ids_free(&prefix);
    st = lm_reranker_encode_query(lr, q, strlen(q), 10, 1, &prefix, NULL, &e);
    CHECK(st == RG_ERR_INVALID && strstr(e.msg, "limit of 10"));
    bpe_ids_free(&prefix);
    st = lm_reranker_encode_query(lr, longp, 4000, 80, 0, &prefix, NULL, &e);
    CHECK(st == RG_ERR_INVALID && strstr(e.msg, "query"));
    bpe_ids_free(&prefix);
    free(longp);
    float s;
    rg_bpe_ids empty = {0};
    int32_t one = 1;
    CHECK(lm_reranker_score(lr, &one, 1, &empty, 1, &s, &e) == RG_ERR_INVALID);
}

/* Requests scored together (lm_reranker_score_groups, as the engine runs a
 * job) give each request exactly what lm_reranker_score gives it alone:
 * small groups share passes, a large one (9 passages) runs its own, an
 * invalid one (an empty prompt) fails alone, an empty one is a no-op. */
static void test_groups(rg_lm_reranker *lr, const rec *recs, size_t n)
{
    enum { NG = 9, INVALID = 4, EMPTY = 6 };
    const size_t want_n[NG] = {1, 3, 2, 9, 1, 4, 0, 1, 2};
    rg_err e = {0};
    rg_lm_group g[NG];
    rg_bpe_ids prefix[NG] = {{0}}, *rests[NG] = {0}, bad = {0};
    float *alone[NG] = {0};
    size_t at = 0, total = 0, took[NG] = {0};
    memset(g, 0, sizeof g);
    for (size_t k = 0; k < NG; k++) {
        while (at < n && k && at > 0 && recs[at].group == recs[at - 1].group)
            at++; /* the next query */
        if (at >= n)
            break;
        /* the query of this group, passages from it and the next ones */
        size_t take = took[k] = want_n[k];
        CHECK_OK(lm_reranker_encode_query(lr, recs[at].query, strlen(recs[at].query), recs[at].max_tokens, 1,
                                          &prefix[k], NULL, &e), e);
        rests[k] = calloc(take + 1, sizeof *rests[k]);
        alone[k] = calloc(take + 1, sizeof *alone[k]);
        for (size_t i = 0; i < take; i++) {
            const char *text = recs[(at + i) % n].passage;
            CHECK_OK(lm_reranker_encode_passage(lr, prefix[k].n, text, strlen(text), recs[at].max_tokens, 1,
                                                &rests[k][i], NULL, &e), e);
        }
        g[k] = (rg_lm_group){prefix[k].ids, prefix[k].n, k == INVALID ? &bad : rests[k], k == INVALID ? 1 : take,
                             calloc(take + 1, sizeof(float)), RG_ERR_INTERNAL, {0}};
        if (k != INVALID && k != EMPTY)
            CHECK_OK(lm_reranker_score(lr, prefix[k].ids, prefix[k].n, rests[k], take, alone[k], &e), e);
        total += g[k].n;
        at++;
    }
    CHECK_MSG(g[NG - 1].prefix != NULL, "the fixture has fewer than %d query groups", NG);
    if (g[NG - 1].prefix) {
        int failures = check_failures;
        lm_reranker_score_groups(lr, g, NG);
        for (size_t k = 0; k < NG; k++) {
            if (k == INVALID) {
                CHECK_MSG(g[k].status == RG_ERR_INVALID && strstr(g[k].err.msg, "empty"), "group %zu: %d %s", k,
                          (int)g[k].status, g[k].err.msg);
                continue;
            }
            CHECK_MSG(g[k].status == RG_OK, "group %zu: %s", k, g[k].err.msg);
            CHECK_MSG(memcmp(g[k].scores, alone[k], g[k].n * sizeof(float)) == 0,
                      "group %zu (%zu passages): scores together differ from alone (first %.7f vs %.7f)", k, g[k].n,
                      g[k].n ? g[k].scores[0] : 0.0, g[k].n ? alone[k][0] : 0.0);
        }
        if (check_failures == failures)
            printf("test_lmrerank: %d requests (%zu prompts) scored together equal each alone, bit for bit\n", NG,
                   total);
    }
    for (size_t k = 0; k < NG; k++) {
        for (size_t i = 0; i < took[k]; i++)
            bpe_ids_free(&rests[k][i]);
        bpe_ids_free(&prefix[k]);
        free(rests[k]);
        free(alone[k]);
        free(g[k].scores);
    }
}

static void test_golden(const char *path)
{
    rg_err e = {0};
    rg_lm_reranker *lr = NULL;
    rg_status st = lm_reranker_load(path, 0, RG_DEVICE_CPU, RG_LM_Q8, &lr, &e);
    CHECK_OK(st, e);
    if (st)
        return;
    rg_buf b;
    rg_buf_init(&b, 0);
    CHECK_OK(fs_read_file(GOLDEN, 16u << 20, &b, &e), e);
    rec *recs = calloc(MAX_RECS, sizeof *recs);
    size_t n = 0;
    char *p = b.data;
    cJSON *j;
    while (n < MAX_RECS && (j = jsonl_next(&p))) {
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(j, "meta");
        if (meta) {
            struct stat sb;
            CHECK(stat(path, &sb) == 0 && (double)sb.st_size == num(meta, "model_bytes"));
            CHECK((int)num(meta, "yes_id") == lm_reranker_yes_id(lr));
            CHECK((int)num(meta, "no_id") == lm_reranker_no_id(lr));
            CHECK((size_t)num(meta, "default_max_tokens") == LM_RERANKER_DEFAULT_MAX_TOKENS);
            cJSON_Delete(j);
            continue;
        }
        recs[n] = (rec){j, (int)num(j, "group"), str(j, "query"), str(j, "passage"), (size_t)num(j, "max_tokens"),
                        (size_t)num(j, "n_prefix"), cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "truncated")),
                        num(j, "score"), num(j, "score_split")};
        n++;
    }
    rg_buf_free(&b);
    CHECK_MSG(n >= 100, "only %zu golden pairs", n);
    double worst = 0, worst_split = 0;
    int id_ok = 0, order_checked = 0;
    for (size_t i = 0; i < n;) {
        size_t m = 1;
        while (i + m < n && recs[i + m].group == recs[i].group)
            m++;
        check_group(lr, recs + i, m, &worst, &worst_split, &id_ok, &order_checked);
        i += m;
    }
    printf("test_lmrerank: q8 precision, %zu pairs, ids equal llama.cpp's for %d; largest |score - llama.cpp| %.2e "
           "(tolerance %.0e; the fixture has 5 decimals); llama.cpp against itself (one batch vs two) %.5f; %d "
           "ordered pairs checked\n",
           n, id_ok, worst, SCORE_TOL, worst_split, order_checked);
    if (n > 0)
        check_prefix_reuse(path, lr, &recs[0]);
    test_groups(lr, recs, n);
    check_refusals(lr);
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(recs[i].j);
    free(recs);
    lm_reranker_free(lr);
}

/* SHA-256 of a prompt's ids as little-endian int32, as the HF fixture
 * records it. */
static void ids_hash(const int32_t *ids, size_t n, char hex[65])
{
    rg_sha256 h;
    sha256_init(&h);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)ids[i];
        uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        sha256_update(&h, b, 4);
    }
    uint8_t d[32];
    sha256_final(&h, d);
    sha256_to_hex(d, hex);
}

/* The default precision against transformers: the golden pairs of every
 * group_stride-th group (all of them but under cudasim), scored group by
 * group as a request would be (prefix once, passages after it). */
static void test_hf_golden(const char *path, rg_device device, double tol, size_t group_stride)
{
    rg_err e = {0};
    rg_lm_reranker *lr = NULL;
    rg_status st = lm_reranker_load(path, 0, device, RG_LM_F32, &lr, &e);
    CHECK_OK(st, e);
    if (st)
        return;
    CHECK(lm_reranker_precision(lr) == RG_LM_F32);
    rg_buf src, hf;
    rg_buf_init(&src, 0);
    rg_buf_init(&hf, 0);
    CHECK_OK(fs_read_file(GOLDEN, 16u << 20, &src, &e), e);
    CHECK_OK(fs_read_file(HF_GOLDEN, 16u << 20, &hf, &e), e);
    char *ps = src.data, *ph = hf.data;
    cJSON *meta_s = jsonl_next(&ps), *meta_h = jsonl_next(&ph);
    CHECK(meta_s && meta_h && cJSON_GetObjectItemCaseSensitive(meta_h, "meta"));
    cJSON_Delete(meta_s);
    cJSON_Delete(meta_h);
    rec *recs = calloc(MAX_RECS, sizeof *recs);
    double *want = calloc(MAX_RECS, sizeof *want);
    size_t n = 0;
    cJSON *j, *h;
    while (n < MAX_RECS && (j = jsonl_next(&ps))) {
        h = jsonl_next(&ph);
        CHECK_MSG(h != NULL, "%s has fewer lines than %s", HF_GOLDEN, GOLDEN);
        if (!h) {
            cJSON_Delete(j);
            break;
        }
        recs[n] = (rec){j, (int)num(j, "group"), str(j, "query"), str(j, "passage"), (size_t)num(j, "max_tokens"),
                        (size_t)num(j, "n_prefix"), 0, num(j, "score"), NAN};
        want[n] = num(h, "score");
        /* the two fixtures describe the same prompt on the same line */
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "ids");
        size_t m = (size_t)cJSON_GetArraySize(ids), i = 0;
        int32_t *buf = malloc((m ? m : 1) * sizeof *buf);
        const cJSON *v;
        cJSON_ArrayForEach(v, ids) buf[i++] = (int32_t)v->valueint;
        char hex[65];
        ids_hash(buf, m, hex);
        free(buf);
        CHECK_MSG(strcmp(hex, str(h, "ids_sha256")) == 0 && (int)num(h, "group") == recs[n].group,
                  "pair %zu: the HF fixture's prompt is not the llama.cpp fixture's", n);
        cJSON_Delete(h);
        n++;
    }
    CHECK_MSG(n >= 100, "only %zu golden pairs", n);
    double worst = 0;
    int ordered = 0, near = 0;
    size_t scored = 0;
    for (size_t i = 0, gi = 0; i < n; gi++) {
        size_t m = 1;
        while (i + m < n && recs[i + m].group == recs[i].group)
            m++;
        if (gi % group_stride != 0) {
            i += m;
            continue;
        }
        scored += m;
        rg_bpe_ids prefix = {0};
        rg_bpe_ids *rests = calloc(m, sizeof *rests);
        float *scores = calloc(m, sizeof *scores);
        st = lm_reranker_encode_query(lr, recs[i].query, strlen(recs[i].query), recs[i].max_tokens, 1, &prefix, NULL,
                                      &e);
        for (size_t k = 0; k < m && !st; k++)
            st = lm_reranker_encode_passage(lr, prefix.n, recs[i + k].passage, strlen(recs[i + k].passage),
                                            recs[i + k].max_tokens, 1, &rests[k], NULL, &e);
        if (!st)
            st = lm_reranker_score(lr, prefix.ids, prefix.n, rests, m, scores, &e);
        CHECK_OK(st, e);
        for (size_t k = 0; k < m && !st; k++) {
            double d = fabs(scores[k] - want[i + k]);
            if (d > worst)
                worst = d;
            CHECK_MSG(d < tol, "group %d passage %zu: score %.6f, transformers %.6f (|diff| %.2e)", recs[i].group,
                      k, scores[k], want[i + k], d);
        }
        for (size_t a = 0; a < m && !st; a++)
            for (size_t b = 0; b < m; b++) {
                if (want[i + a] <= want[i + b])
                    continue;
                if (want[i + a] > want[i + b] + 2 * tol) {
                    ordered++;
                    CHECK_MSG(scores[a] > scores[b], "group %d: passages %zu and %zu in the wrong order (%.6f vs "
                              "%.6f; transformers %.6f vs %.6f)", recs[i].group, a, b, scores[a], scores[b],
                              want[i + a], want[i + b]);
                } else {
                    near++;
                }
            }
        for (size_t k = 0; k < m; k++)
            bpe_ids_free(&rests[k]);
        bpe_ids_free(&prefix);
        free(rests);
        free(scores);
        i += m;
    }
    printf("test_lmrerank: f32 precision on %s, %zu of %zu pairs: largest |score - transformers| %.2e (tolerance "
           "%.0e); %d ordered pairs checked, %d closer than %.0e not required\n",
           lm_reranker_device_desc(lr), scored, n, worst, tol, ordered, near, 2 * tol);
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(recs[i].j);
    free(recs);
    free(want);
    rg_buf_free(&src);
    rg_buf_free(&hf);
    lm_reranker_free(lr);
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
        fprintf(stderr, "test_lmrerank: the generator model is not installed at %s (run `make models`)\n", path);
        CHECK_MSG(0, "model missing");
        return check_finish("test_lmrerank");
    }
    char cuda[256];
    if (cudasim_stride(2) > 1) {
        /* test_lmrerank_sim: the CUDA decoder emulated on the CPU
         * (tests/cudasim), every 3rd group: 7 groups of short prompts
         * (the long ones would take minutes each); the CPU checks are
         * test_lmrerank's own */
        CHECK(backend_cuda_devices(cuda, sizeof cuda) > 0);
        test_hf_golden(path, RG_DEVICE_CUDA, HF_TOL_CUDA, cudasim_stride(3));
        return check_finish("test_lmrerank (cudasim)");
    }
    test_hf_golden(path, RG_DEVICE_CPU, HF_TOL, 1);
    /* on a GPU (none here so far): the same pairs on the CUDA decoder */
    if (backend_cuda_devices(cuda, sizeof cuda) > 0)
        test_hf_golden(path, RG_DEVICE_CUDA, HF_TOL_CUDA, 1);
    else
        printf("test_lmrerank: no CUDA device (%s): the CUDA reranker is not checked\n", cuda);
    test_golden(path);
    return check_finish("test_lmrerank");
}
