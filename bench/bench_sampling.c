/* bench_sampling - the time of one sampler_sample at a given temperature
 * on a real model's logits: what a sequence's token choice costs the
 * generator engine between two decode steps.
 *
 *   bench_sampling MODEL [STEPS] [TEMPERATURE]
 *
 * Prefills a fixed chat prompt on the CPU decoder, then for STEPS (100)
 * steps samples the next token from a copy of the logits (the sampler
 * changes them in place) with seed 7 and the defaults otherwise (no top_k,
 * top_p 1, min_p 0), timing sampler_sample alone, and decodes the drawn
 * token. Prints the mean and the worst draw in ms: a generator step of 16
 * sequences waits for the slowest of its draws. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/decoder.h"
#include "model/sampling.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const rg_err *e)
{
    fprintf(stderr, "bench_sampling: %s\n", e->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: bench_sampling MODEL [STEPS] [TEMPERATURE]\n");
        return 2;
    }
    long steps = argc > 2 ? atol(argv[2]) : 100;
    double temp = argc > 3 ? atof(argv[3]) : 1.0;
    if (steps < 1 || steps > 100000 || !(temp > 0 && temp <= 100)) {
        fprintf(stderr, "bench_sampling: STEPS in 1..100000, TEMPERATURE in (0, 100]\n");
        return 2;
    }
    rg_err e = {0};
    rg_decoder_opts o = {0};
    rg_decoder *d;
    if (decoder_load(argv[1], &o, &d, &e) != RG_OK)
        return fail(&e);
    size_t V = decoder_vocab(d);
    /* a short chat prompt in SmolLM2's ids (any model's ids below its vocabulary work) */
    int32_t ids[] = {1,    9690, 198,  2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 2,   198, 1,    4093, 198,
                     18553, 314, 253,  2822, 1050, 563, 260, 1771, 30,    2,    198,  1,   520, 9531, 198};
    size_t n = sizeof ids / sizeof ids[0];
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)((size_t)ids[i] % V);
    rg_kv_cache *kv;
    float *logits = malloc(V * sizeof(float)), *work = malloc(V * sizeof(float));
    if (!logits || !work)
        return 1;
    if (kv_cache_alloc(d, n + (size_t)steps + 1, RG_KV_F16, &kv, &e) != RG_OK ||
        decoder_prefill(d, kv, ids, n, logits, &e) != RG_OK)
        return fail(&e);
    rg_sampling_params p;
    sampling_params_default(&p);
    p.temperature = (float)temp;
    p.seed = 7;
    rg_sampler *s;
    if (sampler_new(&p, V, &s, &e) != RG_OK)
        return fail(&e);
    double total = 0, worst = 0;
    for (long i = 0; i < steps; i++) {
        memcpy(work, logits, V * sizeof(float));
        double t0 = now();
        int32_t id = sampler_sample(s, work);
        double dt = now() - t0;
        total += dt;
        worst = dt > worst ? dt : worst;
        sampler_accept(s, id);
        rg_kv_cache *one[1] = {kv};
        if (decoder_decode(d, one, &id, 1, logits, &e) != RG_OK)
            return fail(&e);
    }
    printf("{\"vocab\": %zu, \"temperature\": %g, \"steps\": %ld, \"mean_ms\": %.3f, \"worst_ms\": %.3f}\n", V, temp,
           steps, total / (double)steps * 1e3, worst * 1e3);
    sampler_free(s);
    kv_cache_free(kv);
    decoder_free(d);
    free(logits);
    free(work);
    return 0;
}
