/* bench_decode.c - ragd's decoder speed on the CPU, for bench/bench_decode.py.
 *
 *   bench_decode MODEL IDS_FILE N_GEN THREADS [N_SEQ]
 *
 * IDS_FILE holds the prompt's token ids (whitespace-separated). Prints one
 * JSON line: prompt tokens/s (one prefill of the whole prompt, best of 3),
 * generated tokens/s at batch 1 (N_GEN greedy decode steps after the
 * prompt) and, with N_SEQ > 1, generated tokens/s summed over N_SEQ
 * sequences decoded together (each after the same prompt). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model/decoder.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int32_t argmax(const float *x, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return (int32_t)b;
}

static int fail(const rg_err *e)
{
    fprintf(stderr, "bench_decode: %s\n", e->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_decode MODEL IDS_FILE N_GEN THREADS [N_SEQ]\n");
        return 2;
    }
    size_t n_gen = (size_t)atol(argv[3]), n_seq = argc > 5 ? (size_t)atol(argv[5]) : 1;
    rg_decoder_opts o = {.threads = (size_t)atol(argv[4])};
    rg_err e = {0};
    FILE *f = fopen(argv[2], "r");
    if (!f || n_gen == 0 || n_seq == 0 || n_seq > 256) {
        fprintf(stderr, "bench_decode: bad arguments\n");
        return 2;
    }
    int32_t ids[8192];
    size_t n = 0;
    while (n < 8192 && fscanf(f, "%d", &ids[n]) == 1)
        n++;
    fclose(f);
    rg_decoder *d;
    if (decoder_load(argv[1], &o, &d, &e) != RG_OK)
        return fail(&e);
    size_t V = decoder_vocab(d);
    float *logits = malloc(V * n_seq * sizeof(float));
    rg_kv_cache **kv = calloc(n_seq, sizeof *kv);
    for (size_t s = 0; s < n_seq; s++)
        if (kv_cache_alloc(d, n + n_gen + 1, RG_KV_F16, &kv[s], &e) != RG_OK)
            return fail(&e);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        kv_cache_reset(kv[0]);
        double t0 = now();
        if (decoder_prefill(d, kv[0], ids, n, logits, &e) != RG_OK)
            return fail(&e);
        double t = now() - t0;
        if (t < best)
            best = t;
    }
    int32_t tok = argmax(logits, V);
    double t0 = now();
    for (size_t i = 0; i < n_gen; i++) {
        if (decoder_decode(d, kv, &tok, 1, logits, &e) != RG_OK)
            return fail(&e);
        tok = argmax(logits, V);
    }
    double gen1 = now() - t0;
    double genb = 0;
    if (n_seq > 1) {
        int32_t *toks = malloc(n_seq * sizeof *toks);
        for (size_t s = 0; s < n_seq; s++) {
            kv_cache_reset(kv[s]);
            if (decoder_prefill(d, kv[s], ids, n, logits, &e) != RG_OK)
                return fail(&e);
            toks[s] = argmax(logits, V);
        }
        t0 = now();
        for (size_t i = 0; i < n_gen; i++) {
            if (decoder_decode(d, kv, toks, n_seq, logits, &e) != RG_OK)
                return fail(&e);
            for (size_t s = 0; s < n_seq; s++)
                toks[s] = argmax(logits + s * V, V);
        }
        genb = now() - t0;
        free(toks);
    }
    printf("{\"prompt_tokens\": %zu, \"prompt_tps\": %.2f, \"gen_tokens\": %zu, \"gen_tps\": %.2f, \"n_seq\": %zu, "
           "\"gen_tps_batch\": %.2f, \"threads\": %zu}\n",
           n, n / best, n_gen, n_gen / gen1, n_seq, genb > 0 ? n_gen * n_seq / genb : 0.0, decoder_threads(d));
    for (size_t s = 0; s < n_seq; s++)
        kv_cache_free(kv[s]);
    free(kv);
    free(logits);
    decoder_free(d);
    return 0;
}
