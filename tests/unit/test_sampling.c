/* test_sampling.c - model/sampling against distributions worked out by hand.
 *
 * Sampling tests draw many tokens from a small vocabulary and compare the
 * observed frequencies with the probabilities the parameters must produce
 * (tolerance 0.01 at 200000 draws, about 4.5 standard deviations of the
 * worst case). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/decoder_math.h"
#include "model/sampling.h"

#define DRAWS 200000

/* Frequencies of each token over DRAWS samples of the same logits. */
static void frequencies(const rg_sampling_params *p, const float *logits, size_t n, double *freq)
{
    rg_sampler *s = NULL;
    rg_err e;
    rg_status st = sampler_new(p, n, &s, &e);
    CHECK_OK(st, e);
    if (st)
        return;
    float work[16];
    memset(freq, 0, n * sizeof *freq);
    for (int i = 0; i < DRAWS; i++) {
        memcpy(work, logits, n * sizeof *logits);
        int32_t id = sampler_sample(s, work);
        CHECK(id >= 0 && (size_t)id < n);
        if (id >= 0 && (size_t)id < n)
            freq[id] += 1.0 / DRAWS;
    }
    sampler_free(s);
}

static void check_freq(const double *got, const double *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(fabs(got[i] - want[i]) < 0.01, "%s: token %zu drawn %.4f, expected %.4f", what, i, got[i], want[i]);
}

static void test_rng(void)
{
    rg_rng a, b, c;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    rng_seed(&c, 43);
    int same = 1, differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = rng_next(&a), y = rng_next(&b), z = rng_next(&c);
        same &= x == y;
        differ |= x != z;
    }
    CHECK(same);
    CHECK(differ);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = rng_uniform(&a);
        CHECK(u >= 0 && u < 1);
        sum += u;
    }
    CHECK_MSG(fabs(sum / 100000 - 0.5) < 0.01, "mean %f", sum / 100000);
}

static int32_t greedy(const rg_sampling_params *p, const float *logits, size_t n, const int32_t *prompt, size_t np,
                      const int32_t *gen, size_t ng)
{
    rg_sampler *s = NULL;
    rg_err e;
    if (sampler_new(p, n, &s, &e) != RG_OK)
        return -1;
    sampler_add_prompt(s, prompt, np);
    for (size_t i = 0; i < ng; i++)
        sampler_accept(s, gen[i]);
    float work[16];
    memcpy(work, logits, n * sizeof *logits);
    int32_t id = sampler_sample(s, work);
    sampler_free(s);
    return id;
}

static void test_greedy_and_penalties(void)
{
    rg_sampling_params p;
    sampling_params_default(&p);
    p.temperature = 0;
    const float l1[] = {1.0f, 3.0f, 3.0f, -2.0f};
    CHECK(greedy(&p, l1, 4, NULL, 0, NULL, 0) == 1); /* tie: lowest id */

    /* repetition 2 over the prompt: {3, 2, -1} with 0 seen -> {1.5, 2, -1} */
    const float l2[] = {3.0f, 2.0f, -1.0f};
    const int32_t prompt0[] = {0, 0, 0};
    CHECK(greedy(&p, l2, 3, prompt0, 3, NULL, 0) == 0); /* no penalty */
    p.repetition_penalty = 2.0f;
    CHECK(greedy(&p, l2, 3, prompt0, 3, NULL, 0) == 1);
    /* a negative logit is multiplied: {-1, -1.5} with 1 seen -> {-1, -3}: 0 */
    const float l3[] = {-1.2f, -1.0f};
    const int32_t prompt1[] = {1};
    CHECK(greedy(&p, l3, 2, prompt1, 1, NULL, 0) == 0);
    /* a penalty below 1 favours seen tokens: {2, 1.5} with 1 seen, 0.5 -> {2, 3} */
    p.repetition_penalty = 0.5f;
    const float l4[] = {2.0f, 1.5f};
    CHECK(greedy(&p, l4, 2, prompt1, 1, NULL, 0) == 1);
    p.repetition_penalty = 1.0f;

    /* frequency 0.3 on token 0 generated twice: 3 - 0.6 = 2.4 < 2.5 */
    const float l5[] = {3.0f, 2.5f};
    const int32_t gen00[] = {0, 0};
    p.frequency_penalty = 0.3f;
    CHECK(greedy(&p, l5, 2, NULL, 0, gen00, 2) == 1);
    /* once only: 3 - 0.3 = 2.7 > 2.5 */
    CHECK(greedy(&p, l5, 2, NULL, 0, gen00, 1) == 0);
    p.frequency_penalty = 0;
    /* presence 0.6: counted once however often: 3 - 0.6 = 2.4 */
    p.presence_penalty = 0.6f;
    CHECK(greedy(&p, l5, 2, NULL, 0, gen00, 2) == 1);
    p.presence_penalty = 0.4f;
    CHECK(greedy(&p, l5, 2, NULL, 0, gen00, 2) == 0);
    /* presence and frequency look at generated tokens only, not the prompt */
    p.presence_penalty = 2.0f;
    CHECK(greedy(&p, l5, 2, prompt0, 3, NULL, 0) == 0);
    /* negative penalties encourage repetition */
    p.presence_penalty = -1.0f;
    const int32_t gen1[] = {1};
    CHECK(greedy(&p, l5, 2, NULL, 0, gen1, 1) == 1);
}

static void test_distributions(void)
{
    /* p = (0.5, 0.3, 0.2) */
    const float l[] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    double f[3];
    rg_sampling_params p;
    sampling_params_default(&p);
    p.seed = 7;
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){0.5, 0.3, 0.2}, 3, "temperature 1");

    /* temperature 2: p_i^(1/2) normalised */
    p.temperature = 2.0f;
    double s = sqrt(0.5) + sqrt(0.3) + sqrt(0.2);
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){sqrt(0.5) / s, sqrt(0.3) / s, sqrt(0.2) / s}, 3, "temperature 2");
    /* temperature 0.5: p_i^2 normalised */
    p.temperature = 0.5f;
    s = 0.25 + 0.09 + 0.04;
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){0.25 / s, 0.09 / s, 0.04 / s}, 3, "temperature 0.5");
    p.temperature = 1.0f;

    /* top_k 2 keeps 0.5 and 0.3 -> 0.625, 0.375 */
    p.top_k = 2;
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){0.625, 0.375, 0}, 3, "top_k 2");
    p.top_k = 1;
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){1, 0, 0}, 3, "top_k 1");
    p.top_k = 0;

    /* top_p 0.7: 0.5 < 0.7 <= 0.8 keeps two */
    p.top_p = 0.7f;
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){0.625, 0.375, 0}, 3, "top_p 0.7");
    p.top_p = 0.45f;
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){1, 0, 0}, 3, "top_p 0.45");
    p.top_p = 0.9f;
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){0.5, 0.3, 0.2}, 3, "top_p 0.9");
    p.top_p = 1.0f;

    /* min_p 0.5: floor 0.25 keeps 0.5 and 0.3 */
    p.min_p = 0.5f;
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){0.625, 0.375, 0}, 3, "min_p 0.5");
    p.min_p = 0.3f; /* floor 0.15 keeps all */
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){0.5, 0.3, 0.2}, 3, "min_p 0.3");
    p.min_p = 0;

    /* temperature before top_p (transformers' order): at temperature 0.5
     * the probabilities are (0.658, 0.237, 0.105); top_p 0.85 keeps two */
    p.temperature = 0.5f;
    p.top_p = 0.85f;
    frequencies(&p, l, 3, f);
    check_freq(f, (const double[]){0.25 / 0.34, 0.09 / 0.34, 0}, 3, "temperature 0.5 + top_p 0.85");
}

/* A larger vocabulary: the nucleus search must agree with the plain
 * definition when most of the mass is in a long tail. */
static void test_top_p_long_tail(void)
{
    enum { N = 1000 };
    static float l[N];
    /* token 0 has probability 0.3; the other 999 share 0.7 equally */
    l[0] = logf(0.3f);
    for (int i = 1; i < N; i++)
        l[i] = logf(0.7f / 999);
    rg_sampling_params p;
    sampling_params_default(&p);
    p.top_p = 0.65f; /* 0.3 + k * 0.7/999 >= 0.65 -> k = 500 tail tokens */
    rg_sampler *s = NULL;
    rg_err e;
    CHECK_OK(sampler_new(&p, N, &s, &e), e);
    static float work[N];
    int max_id = 0, zero = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(work, l, sizeof l);
        int32_t id = sampler_sample(s, work);
        if (id > max_id)
            max_id = id;
        zero += id == 0;
    }
    sampler_free(s);
    /* ties break by lower id, so the kept tail is ids 1..500 */
    CHECK_MSG(max_id <= 502 && max_id > 450, "largest id drawn %d", max_id);
    CHECK_MSG(fabs(zero / 20000.0 - 0.3 / 0.65) < 0.02, "token 0 drawn %.4f", zero / 20000.0);
}

static void test_seeded(void)
{
    enum { N = 4096 };
    static float l[N], w[N];
    rg_rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < N; i++)
        l[i] = (float)(rng_uniform(&r) * 8.0);
    rg_sampling_params p;
    sampling_params_default(&p);
    p.top_p = 0.95f;
    p.seed = 1234;
    int32_t a[50], b[50], c[50];
    rg_err e;
    for (int run = 0; run < 3; run++) {
        p.seed = run == 2 ? 999 : 1234;
        rg_sampler *s = NULL;
        CHECK_OK(sampler_new(&p, N, &s, &e), e);
        if (!s)
            return;
        int32_t *out = run == 0 ? a : run == 1 ? b : c;
        for (int i = 0; i < 50; i++) {
            memcpy(w, l, sizeof l);
            out[i] = sampler_sample(s, w);
            sampler_accept(s, out[i]);
        }
        sampler_free(s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

static void test_logprobs(void)
{
    const float l[] = {1.0f, 2.0f, 3.0f, 2.0f};
    /* lse = 3 + log(1 + 2e^-1 + e^-2) */
    double lse = 3.0 + log(1.0 + 2.0 * exp(-1.0) + exp(-2.0));
    float lp;
    rg_token_logprob top[3];
    sampling_logprobs(l, 4, 0, &lp, top, 3);
    CHECK(fabs(lp - (1.0 - lse)) < 1e-6);
    CHECK(top[0].id == 2 && fabs(top[0].logprob - (3.0 - lse)) < 1e-6);
    CHECK(top[1].id == 1 && fabs(top[1].logprob - (2.0 - lse)) < 1e-6); /* tie: lower id first */
    CHECK(top[2].id == 3 && fabs(top[2].logprob - (2.0 - lse)) < 1e-6);
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        sampling_logprobs(l, 4, i, &lp, NULL, 0);
        sum += exp(lp);
    }
    CHECK(fabs(sum - 1.0) < 1e-6);
    /* large logits do not overflow */
    const float big[] = {1000.0f, 999.0f};
    sampling_logprobs(big, 2, 1, &lp, top, 1);
    CHECK(fabs(lp - (-1.0 - log(1.0 + exp(-1.0)))) < 1e-5);
    CHECK(top[0].id == 0);
}

static void test_params_check(void)
{
    rg_sampling_params p;
    rg_err e;
    sampling_params_default(&p);
    CHECK(sampling_params_check(&p, &e) == RG_OK);
    p.temperature = -0.1f;
    CHECK(sampling_params_check(&p, &e) == RG_ERR_INVALID && strstr(e.msg, "temperature"));
    p.temperature = NAN;
    CHECK(sampling_params_check(&p, &e) == RG_ERR_INVALID);
    sampling_params_default(&p);
    p.top_p = 0;
    CHECK(sampling_params_check(&p, &e) == RG_ERR_INVALID && strstr(e.msg, "top_p"));
    sampling_params_default(&p);
    p.presence_penalty = 2.5f;
    CHECK(sampling_params_check(&p, &e) == RG_ERR_INVALID && strstr(e.msg, "presence"));
    sampling_params_default(&p);
    p.repetition_penalty = 0;
    CHECK(sampling_params_check(&p, &e) == RG_ERR_INVALID);
    rg_sampler *s = NULL;
    CHECK(sampler_new(&p, 10, &s, &e) == RG_ERR_INVALID && !s);
}

/* logit_bias: added before everything else; -100 bans the greedy choice,
 * +100 forces a token even under sampling; bad entries are refused. */
static void test_logit_bias(void)
{
    rg_sampling_params p;
    rg_err e;
    rg_sampler *s = NULL;
    float x[5];
    sampling_params_default(&p);
    p.temperature = 0;
    p.n_bias = 1;
    p.bias_id[0] = 3;
    p.bias[0] = -100;
    CHECK_OK(sampler_new(&p, 5, &s, &e), e);
    float base[5] = {1.0f, 2.0f, 0.5f, 9.0f, 3.0f};
    memcpy(x, base, sizeof x);
    CHECK(sampler_sample(s, x) == 4); /* 3 would win unbiased */
    sampler_free(s);
    p.temperature = 1.0f;
    p.seed = 7;
    p.bias_id[0] = 2;
    p.bias[0] = 100;
    CHECK_OK(sampler_new(&p, 5, &s, &e), e);
    int forced = 1;
    for (int i = 0; i < 200; i++) {
        memcpy(x, base, sizeof x);
        forced &= sampler_sample(s, x) == 2;
    }
    CHECK_MSG(forced, "a +100 bias did not force its token");
    sampler_free(s);
    s = NULL;
    p.bias_id[0] = 5; /* outside a 5-token vocabulary */
    CHECK(sampler_new(&p, 5, &s, &e) == RG_ERR_INVALID && !s && strstr(e.msg, "outside the vocabulary"));
    CHECK(sampling_bias_check(&p, 6, &e) == RG_OK);
    p.bias_id[0] = -1;
    CHECK(sampling_params_check(&p, &e) == RG_ERR_INVALID && strstr(e.msg, "logit_bias"));
    p.bias_id[0] = 1;
    p.bias[0] = 101;
    CHECK(sampling_params_check(&p, &e) == RG_ERR_INVALID && strstr(e.msg, "logit_bias"));
    p.bias[0] = NAN;
    CHECK(sampling_params_check(&p, &e) == RG_ERR_INVALID);
    p.bias[0] = 0;
    p.n_bias = RG_SAMPLING_MAX_BIAS + 1;
    CHECK(sampling_params_check(&p, &e) == RG_ERR_INVALID && strstr(e.msg, "at most"));
}

/* The draw walks the candidates by probability then id, band by band, each
 * band a heap popped in order (model/sampling.c, draw): its tokens must be
 * exactly those of a walk over the fully sorted vocabulary, tail draws
 * included. The reference below repeats the sampler's arithmetic at
 * temperature 1 (dec_math_exp(l - max), the double total in id order, one
 * uniform per draw) and sorts everything. */
static const float *ref_prob;
static int ref_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (ref_prob[x] != ref_prob[y])
        return ref_prob[x] > ref_prob[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void test_draw_order(void)
{
    enum { V = 5000, SEEDS = 1500 };
    static float logits[V], work[V], prob[V];
    static int32_t order[V];
    size_t in_tail[2] = {0, 0};
    for (int shape = 0; shape < 2; shape++) {
        rg_rng r;
        rng_seed(&r, 77 + (uint64_t)shape);
        /* shape 0: one token far above a flat tail holding most of the mass;
         * shape 1: a spread of logits; the half below 0 is in the tail but
         * holds ~0.1% of the mass, so the draws end in the head */
        for (size_t i = 0; i < V; i++)
            logits[i] = shape == 0 ? (float)(rng_uniform(&r) - 0.5) : (float)(rng_uniform(&r) * 14.0 - 7.0);
        logits[1234] = shape == 0 ? 10.0f : 9.0f;
        float max = -INFINITY;
        for (size_t i = 0; i < V; i++)
            max = logits[i] > max ? logits[i] : max;
        double total = 0;
        for (size_t i = 0; i < V; i++) {
            prob[i] = logits[i] - max;
            order[i] = (int32_t)i;
        }
        dec_math_exp(prob, prob, V);
        for (size_t i = 0; i < V; i++)
            total += prob[i];
        ref_prob = prob;
        qsort(order, V, sizeof *order, ref_cmp);
        size_t head = 0;
        while (head < V && prob[order[head]] >= prob[order[0]] * 0x1p-13f)
            head++;
        size_t mismatches = 0;
        for (uint64_t seed = 1; seed <= SEEDS; seed++) {
            rg_sampling_params p;
            sampling_params_default(&p);
            p.seed = seed;
            rg_sampler *s = NULL;
            rg_err e;
            CHECK_OK(sampler_new(&p, V, &s, &e), e);
            if (!s)
                return;
            memcpy(work, logits, sizeof logits);
            int32_t got = sampler_sample(s, work);
            sampler_free(s);
            rg_rng u_rng;
            rng_seed(&u_rng, seed);
            double u = rng_uniform(&u_rng) * total, cum = 0;
            size_t k = 0;
            for (; k < V - 1; k++) {
                cum += prob[order[k]];
                if (u < cum)
                    break;
            }
            in_tail[shape] += k >= head;
            if (got != order[k] && mismatches++ < 5)
                CHECK_MSG(0, "shape %d seed %llu: drew %d, the fully sorted walk %d (position %zu)", shape,
                          (unsigned long long)seed, got, order[k], k);
        }
        CHECK_MSG(mismatches == 0, "shape %d: %zu of %d draws differ from the fully sorted walk", shape, mismatches,
                  SEEDS);
    }
    /* shape 0 drew from the tail about a fifth of the time (its mass,
     * 4999 tokens near e^-10 of the head's), shape 1 from the head */
    CHECK_MSG(in_tail[0] > SEEDS / 10 && in_tail[1] < SEEDS / 10, "tail draws: %zu and %zu of %d", in_tail[0],
              in_tail[1], SEEDS);
}

/* A model whose logits are all NaN (an overflow somewhere) still gets a
 * token id inside its vocabulary from every warper, never a read before the
 * candidate array (min_p and top_p used to leave no candidate at all). */
static void test_nan_logits(void)
{
    enum { V = 300 };
    float l[V];
    for (int k = 0; k < 4; k++) {
        rg_sampling_params p;
        sampling_params_default(&p);
        p.min_p = k == 1 || k == 3 ? 0.1f : 0.0f;
        p.top_p = k >= 2 ? 0.9f : 1.0f;
        rg_sampler *s = NULL;
        rg_err e;
        CHECK_OK(sampler_new(&p, V, &s, &e), e);
        if (!s)
            return;
        for (int i = 0; i < V; i++)
            l[i] = NAN;
        int32_t id = sampler_sample(s, l);
        CHECK_MSG(id >= 0 && id < V, "min_p %.1f top_p %.1f: token %d from all-NaN logits", p.min_p, p.top_p, id);
        sampler_free(s);
    }
}

int main(void)
{
    test_rng();
    test_greedy_and_penalties();
    test_distributions();
    test_top_p_long_tail();
    test_seeded();
    test_logprobs();
    test_params_check();
    test_logit_bias();
    test_draw_order();
    test_nan_logits();
    return check_finish("test_sampling");
}
