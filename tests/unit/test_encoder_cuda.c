/* test_encoder_cuda.c - the CUDA encoder: each kernel against its CPU
 * counterpart (model/ops_cpu.h) on random inputs, the whole model against
 * the CPU encoder's hidden states and against the sentence-transformers
 * golden vectors (cosine >= 0.999 for every text at batch 1 and 32, mixed
 * lengths), concurrent callers; and, on any machine, the device choice:
 * cuda without a GPU is a clear error, auto falls back to the CPU.
 *
 * Exits 77 (ctest: skipped) when no CUDA device is usable, after the
 * device-choice checks (a failure there still fails the test). Needs the
 * default model (RAGD_MODELS or ./models). */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "embedding_golden.h"
#include "common/buf.h"
#include "common/fs.h"
#include "model/backend.h"
#include "model/encoder.h"
#include "model/ops_cpu.h"
#include "model/ops_cuda.h"
#include "model/quant.h"

#define MODEL_NAME "all-MiniLM-L6-v2"
#define MIN_COS_GPU 0.999

/* ---- helpers (for the GPU checks; a build without CUDA has none) ---------------- */

#ifdef RAGD_HAVE_CUDA

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(float lo, float hi) /* xorshift64*: reproducible across runs */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 2685821657736338717ull;
    return lo + (hi - lo) * (float)((r >> 40) / (double)(1u << 24));
}

static float *rand_array(size_t n, float lo, float hi)
{
    float *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = frand(lo, hi);
    return a;
}

/* What the GPU path feeds to cuBLAS: the value rounded to fp16. */
static void f16_round_all(float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = fp16_to_f32(f32_to_fp16(a[i]));
}

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

/* Largest |got - want| / (abs_tol + rel_tol * |want|); <= 1 passes. */
static double worst(const float *got, const float *want, size_t n, double abs_tol, double rel_tol, size_t *at)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - want[i]) / (abs_tol + rel_tol * fabs(want[i]));
        if (!(r <= w)) { /* NaN counts as the worst */
            w = isnan(r) ? INFINITY : r;
            *at = i;
        }
    }
    return w;
}

#define EXPECT_CLOSE(name, got, want, n, abs_tol, rel_tol)                                                    \
    do {                                                                                                      \
        size_t at_ = 0;                                                                                       \
        double w_ = worst(got, want, n, abs_tol, rel_tol, &at_);                                              \
        CHECK_MSG(w_ <= 1.0, "%s: element %zu: gpu %.7g, cpu %.7g (%.2fx the tolerance)", name, at_,          \
                  (double)(got)[at_], (double)(want)[at_], w_);                                               \
        printf("test_encoder_cuda: %-28s worst error %.3f of the tolerance\n", name, w_);                    \
    } while (0)
#endif /* RAGD_HAVE_CUDA */

/* ---- device choice (any machine) ------------------------------------------------ */

static void test_device_choice(const char *model_dir, int have_gpu)
{
    rg_err e = {0};
    rg_device d;
    CHECK(backend_device_parse("cpu", &d, &e) == RG_OK && d == RG_DEVICE_CPU);
    CHECK(backend_device_parse("cuda", &d, &e) == RG_OK && d == RG_DEVICE_CUDA);
    CHECK(backend_device_parse("auto", &d, &e) == RG_OK && d == RG_DEVICE_AUTO);
    CHECK(backend_device_parse("gpu", &d, &e) == RG_ERR_INVALID && strstr(e.msg, "cpu, cuda or auto"));
    CHECK_STR(backend_device_name(RG_DEVICE_CUDA), "cuda");

    rg_encoder_opts o;
    encoder_opts_default(&o);
    CHECK(o.device == RG_DEVICE_CPU);
    rg_encoder *enc = NULL;
    o.device = RG_DEVICE_CUDA;
    rg_status st = encoder_load_opts(model_dir, &o, &enc, &e);
    if (have_gpu) {
        CHECK_OK(st, e);
        CHECK(enc && encoder_device(enc) == RG_DEVICE_CUDA);
    } else {
        /* A clear refusal that names the device and why, never a CPU fallback. */
        CHECK_MSG(st == RG_ERR_UNSUPPORTED && enc == NULL, "status %d: %s", (int)st, e.msg);
        CHECK_MSG(strstr(e.msg, "cuda") && (strstr(e.msg, "no CUDA device") || strstr(e.msg, "not compiled in")),
                  "unclear message: %s", e.msg);
    }
    encoder_free(enc);
    enc = NULL;

    o.device = RG_DEVICE_AUTO;
    st = encoder_load_opts(model_dir, &o, &enc, &e);
    CHECK_OK(st, e);
    if (enc) {
        CHECK(encoder_device(enc) == (have_gpu ? RG_DEVICE_CUDA : RG_DEVICE_CPU));
        CHECK(strlen(encoder_device_desc(enc)) > 0);
        /* Whatever device auto picked, it embeds. */
        float v[384];
        const char *t = "The quick brown fox jumps over the lazy dog.";
        CHECK_OK((st = encoder_embed(enc, &t, NULL, 1, v, NULL, &e)), e);
        double nn = 0;
        for (size_t i = 0; i < 384; i++)
            nn += (double)v[i] * v[i];
        CHECK(fabs(sqrt(nn) - 1.0) < 1e-3);
    }
    encoder_free(enc);

    /* encoder_load keeps its meaning for existing callers: the CPU. */
    enc = NULL;
    st = encoder_load(model_dir, &enc, &e);
    CHECK_OK(st, e);
    CHECK(enc && encoder_device(enc) == RG_DEVICE_CPU);
    encoder_free(enc);
}

#ifdef RAGD_HAVE_CUDA

/* ---- kernels against the CPU ops ---------------------------------------------------- */

static void test_linear(size_t rows, size_t in, size_t out)
{
    rg_err e = {0};
    float *x = rand_array(rows * in, -1, 1), *w = rand_array(out * in, -0.1f, 0.1f);
    f16_round_all(x, rows * in); /* both sides multiply the same fp16 values */
    f16_round_all(w, out * in);
    float *want = malloc(rows * out * sizeof *want), *got = malloc(rows * out * sizeof *got);
    ops_linear(x, rows, in, w, NULL, out, want);
    rg_status st = ops_cuda_linear(x, rows, in, w, out, got, &e);
    CHECK_OK(st, e);
    char name[64];
    snprintf(name, sizeof name, "linear %zux%zu->%zu", rows, in, out);
    /* Same products, fp32 accumulation in another order. */
    if (!st)
        EXPECT_CLOSE(name, got, want, rows * out, 1e-4, 1e-4);
    free(x), free(w), free(want), free(got);
}

static void test_add_layernorm(size_t rows, size_t n, int with_res)
{
    rg_err e = {0};
    float *x = rand_array(rows * n, -3, 3), *y = rand_array(rows * n, -2, 2), *bias = rand_array(n, -1, 1);
    float *g = rand_array(n, 0.5f, 1.5f), *b = rand_array(n, -0.5f, 0.5f);
    float *want = malloc(rows * n * sizeof *want), *res = malloc(rows * n * sizeof *res);
    memcpy(want, x, rows * n * sizeof *want);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < n; i++)
            res[r * n + i] = y[r * n + i] + bias[i];
    ops_add_layernorm(want, with_res ? res : NULL, rows, n, g, b, 1e-12f);
    rg_status st = ops_cuda_add_layernorm(x, with_res ? y : NULL, with_res ? bias : NULL, rows, n, g, b, 1e-12f, &e);
    CHECK_OK(st, e);
    char name[64];
    snprintf(name, sizeof name, "add+layernorm %zux%zu%s", rows, n, with_res ? "" : " (no res)");
    if (!st)
        EXPECT_CLOSE(name, x, want, rows * n, 2e-5, 2e-5);
    free(x), free(y), free(bias), free(g), free(b), free(want), free(res);
}

static void test_embed_layernorm(size_t B, size_t T, size_t H, int with_types)
{
    rg_err e = {0};
    size_t vocab = 97, n_pos = T + 5, n_types = 2;
    float *word = rand_array(vocab * H, -1, 1), *pos = rand_array(n_pos * H, -1, 1);
    float *type = rand_array(n_types * H, -1, 1), *g = rand_array(H, 0.5f, 1.5f), *b = rand_array(H, -0.5f, 0.5f);
    int32_t *ids = malloc(B * T * sizeof *ids), *types = malloc(B * T * sizeof *types);
    for (size_t r = 0; r < B * T; r++) {
        ids[r] = (int32_t)(frand(0, 1) * (float)vocab) % (int32_t)vocab;
        types[r] = (int32_t)(r % 3 == 0);
    }
    float *want = malloc(B * T * H * sizeof *want), *got = malloc(B * T * H * sizeof *got);
    for (size_t r = 0; r < B * T; r++)
        for (size_t i = 0; i < H; i++)
            want[r * H + i] = word[(size_t)ids[r] * H + i] + pos[(r % T) * H + i] +
                              type[(size_t)(with_types ? types[r] : 0) * H + i];
    ops_add_layernorm(want, NULL, B * T, H, g, b, 1e-12f);
    rg_status st = ops_cuda_embed_layernorm(ids, with_types ? types : NULL, B, T, H, word, vocab, pos, n_pos, type,
                                            n_types, g, b, 1e-12f, got, &e);
    CHECK_OK(st, e);
    char name[64];
    snprintf(name, sizeof name, "embed+layernorm %zux%zux%zu", B, T, H);
    if (!st)
        EXPECT_CLOSE(name, got, want, B * T * H, 2e-5, 2e-5);
    free(word), free(pos), free(type), free(g), free(b), free(ids), free(types), free(want), free(got);
}

static void test_bias_gelu(size_t rows, size_t n)
{
    rg_err e = {0};
    float *y = rand_array(rows * n, -6, 6), *bias = rand_array(n, -1, 1);
    float *want = malloc(rows * n * sizeof *want), *got = malloc(rows * n * sizeof *got);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < n; i++)
            want[r * n + i] = y[r * n + i] + bias[i];
    ops_gelu(want, rows * n);
    rg_status st = ops_cuda_bias_gelu(y, bias, rows, n, got, &e);
    CHECK_OK(st, e);
    /* The result is stored in fp16: half an ulp is 2^-11 relative (values
     * under 6e-5 are subnormal there: an absolute 3e-8 at most). */
    if (!st)
        EXPECT_CLOSE("bias+gelu", got, want, rows * n, 1e-6, 1.0 / 1024);
    free(y), free(bias), free(want), free(got);
}

static void test_attention(size_t B, size_t T, size_t H, size_t heads)
{
    rg_err e = {0};
    size_t R = B * T;
    float *q = rand_array(R * H, -2, 2), *k = rand_array(R * H, -2, 2), *v = rand_array(R * H, -1, 1);
    f16_round_all(q, R * H); /* the GPU splits heads into fp16 */
    f16_round_all(k, R * H);
    f16_round_all(v, R * H);
    int32_t *mask = malloc(R * sizeof *mask);
    for (size_t b = 0; b < B; b++) {
        /* full, one token, none (zero context), and padding in between */
        size_t len = b % 4 == 0 ? T : b % 4 == 1 ? 1 : b % 4 == 2 ? 0 : T / 2 + 1;
        for (size_t t = 0; t < T; t++)
            mask[b * T + t] = t < len;
        if (b % 4 == 3)
            mask[b * T + 1] = 0; /* a masked key before real ones */
    }
    float *want = malloc(R * H * sizeof *want), *got = malloc(R * H * sizeof *got);
    float *scores = malloc(T * T * sizeof *scores);
    ops_attention(q, k, v, mask, B, T, H, heads, want, scores);
    rg_status st = ops_cuda_attention(q, k, v, mask, B, T, H, heads, got, &e);
    CHECK_OK(st, e);
    char name[64];
    snprintf(name, sizeof name, "attention %zux%zux%zu/%zu", B, T, H, heads);
    /* Probabilities and the context are rounded to fp16 (2^-11 relative
     * each); values are O(1). */
    if (!st) {
        EXPECT_CLOSE(name, got, want, R * H, 4e-3, 4e-3);
        for (size_t b = 0; b < B; b++)
            if (b % 4 == 2)
                for (size_t i = 0; i < T * H; i++)
                    if (got[b * T * H + i] != 0.0f) {
                        CHECK_MSG(0, "attention: a sequence without keys has a non-zero context");
                        break;
                    }
    }
    free(q), free(k), free(v), free(mask), free(want), free(got), free(scores);
}

static void test_pool(size_t B, size_t T, size_t H)
{
    rg_err e = {0};
    float *hidden = rand_array(B * T * H, -2, 2);
    int32_t *mask = malloc(B * T * sizeof *mask);
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++)
            mask[b * T + t] = t < (b * 5) % (T + 1);
    float *want = malloc(B * H * sizeof *want), *got = malloc(B * H * sizeof *got);
    for (int cls = 0; cls <= 1; cls++)
        for (int norm = 0; norm <= 1; norm++) {
            for (size_t b = 0; b < B; b++) {
                if (cls)
                    memcpy(want + b * H, hidden + b * T * H, H * sizeof *want);
                else
                    ops_mean_pool(hidden + b * T * H, mask + b * T, T, H, want + b * H);
                if (norm)
                    ops_l2_normalize(want + b * H, H);
            }
            rg_status st = ops_cuda_pool(hidden, mask, B, T, H, cls, norm, got, &e);
            CHECK_OK(st, e);
            char name[64];
            snprintf(name, sizeof name, "pool %s%s", cls ? "cls" : "mean", norm ? " + l2" : "");
            if (!st)
                EXPECT_CLOSE(name, got, want, B * H, 1e-5, 1e-5);
        }
    free(hidden), free(mask), free(want), free(got);
}

static void test_kernels(void)
{
    test_linear(37, 384, 1152);
    test_linear(5, 1536, 384);
    test_add_layernorm(29, 384, 1);
    test_add_layernorm(7, 1000, 1);
    test_add_layernorm(3, 1536, 0);
    /* The longest row the row kernels accept (CU_MAX_ROW in ops_cuda.cuh):
     * its shared-memory row plus the static reduction array must stay
     * within 48 KiB, or the launch fails; one more is refused up front. */
    test_add_layernorm(2, 12160, 1);
    {
        rg_err e = {0};
        float *x = rand_array(12161, -1, 1), *g = rand_array(12161, 0.5f, 1.5f), *b = rand_array(12161, -0.5f, 0.5f);
        CHECK(ops_cuda_add_layernorm(x, NULL, NULL, 1, 12161, g, b, 1e-12f, &e) == RG_ERR_UNSUPPORTED);
        free(x), free(g), free(b);
    }
    test_embed_layernorm(3, 11, 384, 1);
    test_embed_layernorm(2, 40, 100, 0);
    test_bias_gelu(13, 1536);
    test_attention(4, 19, 384, 12);
    test_attention(5, 45, 64, 2);
    test_attention(2, 128, 256, 4);
    test_pool(6, 13, 384);
}

/* ---- the whole model ---------------------------------------------------------------- */

/* Hidden states of the CUDA encoder against the CPU encoder's on random
 * ids with padding (what the reranker will read through encoder_forward). */
static void test_forward(rg_encoder *gpu, rg_encoder *cpu)
{
    rg_err e = {0};
    size_t B = 5, T = 70, H = encoder_dim(cpu), R = B * T;
    int32_t *ids = malloc(R * sizeof *ids), *types = malloc(R * sizeof *types), *mask = malloc(R * sizeof *mask);
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            size_t len = T - b * 13, r = b * T + t;
            ids[r] = t == 0 ? 101 : t + 1 == len ? 102 : t < len ? 1000 + (int32_t)(frand(0, 1) * 28000) : 0;
            types[r] = t > len / 2 && t < len;
            mask[r] = t < len;
        }
    float *hc = malloc(R * H * sizeof *hc), *hg = malloc(R * H * sizeof *hg);
    CHECK_OK(encoder_forward(cpu, ids, types, mask, B, T, hc, &e), e);
    rg_status st = encoder_forward(gpu, ids, types, mask, B, T, hg, &e);
    CHECK_OK(st, e);
    double minc = 2;
    for (size_t r = 0; r < R && !st; r++)
        if (mask[r]) {
            double c = cosine(hg + r * H, hc + r * H, H);
            minc = c < minc ? c : minc;
        }
    CHECK_MSG(minc >= MIN_COS_GPU, "hidden states: min cosine %.6f", minc);
    printf("test_encoder_cuda: forward %zux%zu hidden states, min cosine to the CPU %.6f\n", B, T, minc);
    /* Range checks still apply on the GPU path. */
    ids[3] = 1 << 30;
    CHECK(encoder_forward(gpu, ids, types, mask, B, T, hg, &e) == RG_ERR_INVALID);
    free(ids), free(types), free(mask), free(hc), free(hg);
}

typedef struct worker {
    rg_encoder *enc;
    const char **texts;
    size_t *lens, n;
    float *out;
    rg_status st;
    rg_err e;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    w->st = encoder_embed(w->enc, w->texts, w->lens, w->n, w->out, NULL, &w->e);
    return NULL;
}

static void test_golden(rg_encoder *enc)
{
    rg_err e = {0};
    size_t dim = encoder_dim(enc);
    golden *g = NULL;
    size_t n = load_golden(&g, dim);
    CHECK_MSG(n >= 100, "only %zu golden records", n);
    if (n == 0)
        return;
    size_t n_all = n; /* cudasim: a quarter of them, in the strided order's mix of lengths */
    /* Mixed lengths in every batch: visit the fixture in a strided order. */
    size_t stride = 37;
    while (n % stride == 0)
        stride++;
    const char **texts = malloc(n * sizeof *texts);
    size_t *lens = malloc(n * sizeof *lens), *perm = malloc(n * sizeof *perm);
    for (size_t i = 0; i < n; i++) {
        perm[i] = (i * stride) % n;
        texts[i] = g[perm[i]].text;
        lens[i] = g[perm[i]].len;
    }
    n = (n_all + cudasim_stride(4) - 1) / cudasim_stride(4);
    float *single = malloc(n * dim * sizeof *single), *batch = malloc(n * dim * sizeof *batch);
    int64_t t0 = clock_mono_us();
    for (size_t i = 0; i < n; i++) {
        size_t used = 0;
        rg_status st = encoder_embed(enc, &texts[i], &lens[i], 1, single + i * dim, &used, &e);
        CHECK_OK(st, e);
        CHECK(used == g[perm[i]].tokens);
    }
    double ms1 = (clock_mono_us() - t0) / 1000.0;
    encoder_set_max_batch(enc, 32);
    t0 = clock_mono_us();
    rg_status st = encoder_embed(enc, texts, lens, n, batch, NULL, &e);
    CHECK_OK(st, e);
    double ms32 = (clock_mono_us() - t0) / 1000.0;
    double min1 = 2, min32 = 2, max_dn = 0;
    for (size_t i = 0; i < n; i++) {
        const float *ref = g[perm[i]].vec;
        double c1 = cosine(single + i * dim, ref, dim), c32 = cosine(batch + i * dim, ref, dim);
        CHECK_MSG(c1 >= MIN_COS_GPU, "batch 1, text %zu: cosine %.6f", perm[i], c1);
        CHECK_MSG(c32 >= MIN_COS_GPU, "batch 32, text %zu: cosine %.6f", perm[i], c32);
        double nn = 0;
        for (size_t k = 0; k < dim; k++)
            nn += (double)batch[i * dim + k] * batch[i * dim + k];
        double dn = fabs(sqrt(nn) - 1.0);
        CHECK_MSG(dn < 1e-4, "text %zu: norm off by %g", perm[i], dn);
        min1 = c1 < min1 ? c1 : min1;
        min32 = c32 < min32 ? c32 : min32;
        max_dn = dn > max_dn ? dn : max_dn;
    }
    printf("test_encoder_cuda: %zu golden texts; batch 1: 1-cos max %.1e (%.0f ms); batch 32: 1-cos max %.1e "
           "(%.0f ms); max |norm-1| %.1e\n",
           n, 1 - min1, ms1, 1 - min32, ms32, max_dn);

    /* Four threads at once on the one encoder: serialized inside, each gets
     * the vectors a lone call gets. */
    enum { NW = 4 };
    worker w[NW];
    pthread_t th[NW];
    size_t per = n / NW;
    for (int i = 0; i < NW; i++) {
        w[i] = (worker){enc, texts + i * per, lens + i * per, per, malloc(per * dim * sizeof(float)), RG_OK, {0}};
        CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < NW; i++) {
        pthread_join(th[i], NULL);
        CHECK_OK(w[i].st, w[i].e);
        for (size_t j = 0; j < per && !w[i].st; j++)
            CHECK_MSG(cosine(w[i].out + j * dim, g[perm[i * per + j]].vec, dim) >= MIN_COS_GPU,
                      "thread %d text %zu", i, j);
        free(w[i].out);
    }
    free(single), free(batch), free(texts), free(lens), free(perm);
    for (size_t i = 0; i < n_all; i++)
        free(g[i].text), free(g[i].vec);
    free(g);
}

static void test_model(const char *model_dir)
{
    rg_err e = {0};
    rg_encoder_opts o;
    encoder_opts_default(&o);
    o.device = RG_DEVICE_CUDA;
    rg_encoder *gpu = NULL, *cpu = NULL;
    int64_t t0 = clock_mono_us();
    rg_status st = encoder_load_opts(model_dir, &o, &gpu, &e);
    CHECK_OK(st, e);
    if (st)
        return;
    printf("test_encoder_cuda: load on %s in %.0f ms\n", encoder_device_desc(gpu), (clock_mono_us() - t0) / 1000.0);
    CHECK_OK((st = encoder_load(model_dir, &cpu, &e)), e);
    if (!st)
        test_forward(gpu, cpu);
    test_golden(gpu);
    encoder_free(cpu);
    encoder_free(gpu);
}

#endif /* RAGD_HAVE_CUDA */

int main(void)
{
    char model_dir[1024], cfg[1100], desc[256];
    const char *base = getenv("RAGD_MODELS");
    snprintf(model_dir, sizeof model_dir, "%s/%s", base && *base ? base : "models", MODEL_NAME);
    snprintf(cfg, sizeof cfg, "%s/config.json", model_dir);
    /* Without the model the kernels are still checked, and the test fails. */
    int have_model = fs_is_file(cfg);
    if (!have_model)
        fprintf(stderr, "test_encoder_cuda: the default model is not installed at %s (run `make models`)\n",
                model_dir);
    int have_gpu = backend_cuda_devices(desc, sizeof desc) > 0;
    if (have_model)
        test_device_choice(model_dir, have_gpu);
    if (!have_gpu) {
        printf("test_encoder_cuda: GPU tests skipped: %s\n", desc);
        if (!have_model || check_failures)
            return check_finish("test_encoder_cuda") | 1;
        return 77;
    }
#ifdef RAGD_HAVE_CUDA
    printf("test_encoder_cuda: %s\n", desc);
    test_kernels();
    if (have_model)
        test_model(model_dir);
#endif
    return check_finish("test_encoder_cuda") | !have_model;
}
