/* bench_decode_device - ragd's decoder speed on a chosen device, for
 * scripts/gpu/build_and_test.sh (CUDA) and for comparing devices.
 *
 *   bench_decode_device MODEL IDS_FILE N_GEN N_SEQ cpu|cuda|auto
 *
 * IDS_FILE holds the prompt's token ids (whitespace-separated; the first
 * 4096 are used). Prints one JSON line:
 *   prompt_tps     prompt tokens/s of one prefill of the whole prompt
 *                  (median of 5, after a warm-up);
 *   ttft_ms        time to first token of that prompt alone: the prefill,
 *                  its logits on the host and the greedy pick (median of 5);
 *   gen_tps_1, step_ms_1   N_GEN greedy decode steps of one sequence;
 *   gen_tps_n, step_ms_n   N_GEN steps of N_SEQ sequences decoded together
 *                  (each after the same prompt), tokens/s summed;
 *   weight_bytes   bytes of weight matrices one step reads on this device
 *                  (on CUDA: the GGUF blocks kept there, or fp16 copies
 *                  with RAGD_CUDA_WEIGHTS=fp16; the KV cache is not
 *                  counted);
 *   weight_gbps_1, weight_gbps_n   weight_bytes / step time;
 *   copy_gbps      the peer, measured in the same run on CUDA: device-to-
 *                  device copy bandwidth (bytes read + written per second)
 *                  of a 1 GiB buffer, the practical memory-bandwidth bound;
 *   bound_ratio_1, bound_ratio_n   weight_gbps / copy_gbps: 1.0 would be a
 *                  step that only streams its weights at copy speed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/decoder.h"
#ifdef RAGD_HAVE_CUDA
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#endif

#define MAX_PROMPT 4096

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int32_t argmax(const float *x, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return (int32_t)b;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* BENCH_PROFILE=prefill|step1|stepn: only that part of the run between
 * cudaProfilerStart and cudaProfilerStop (one prefill of the prompt, or
 * the decode steps of one or of N_SEQ sequences), for a profiler started
 * with profiling off (`ncu --profile-from-start off`:
 * scripts/gpu/build_and_test.sh decode_kernels). */
static void profile_mark(const char *part, int start)
{
#ifdef RAGD_HAVE_CUDA
    const char *want = getenv("BENCH_PROFILE");
    if (want && strcmp(want, part) == 0) {
        cudaDeviceSynchronize(); /* nothing of the part before leaks in, nothing of it is left out */
        if (start)
            cudaProfilerStart();
        else
            cudaProfilerStop();
    }
#else
    (void)part, (void)start;
#endif
}

/* Device-to-device copy bandwidth in GB/s (read + write), 0 without CUDA. */
static double copy_gbps(void)
{
#ifdef RAGD_HAVE_CUDA
    size_t bytes = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    double best = 0;
    if (cudaMalloc(&a, bytes) == cudaSuccess && cudaMalloc(&b, bytes) == cudaSuccess) {
        cudaMemset(a, 1, bytes);
        cudaDeviceSynchronize();
        for (int rep = 0; rep < 6; rep++) {
            double t0 = now();
            cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
            cudaDeviceSynchronize();
            double gbps = 2.0 * (double)bytes / (now() - t0) / 1e9;
            if (rep > 0 && gbps > best) /* the first copy warms up */
                best = gbps;
        }
    }
    cudaFree(a);
    cudaFree(b);
    cudaGetLastError();
    return best;
#else
    return 0;
#endif
}

/* The weight matrices one step multiplies by, as the device holds them
 * (GGUF blocks where kept, fp16 copies otherwise: RAGD_CUDA_WEIGHTS). On
 * the CPU: 0 (not reported there). */
static double step_weight_bytes(const rg_decoder *d)
{
    return (double)decoder_device_matrix_bytes(d);
}

static int fail(const rg_err *e)
{
    fprintf(stderr, "bench_decode_device: %s\n", e->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: bench_decode_device MODEL IDS_FILE N_GEN N_SEQ cpu|cuda|auto\n");
        return 2;
    }
    long gen_arg = atol(argv[3]), seq_arg = atol(argv[4]);
    rg_err e = {0};
    rg_decoder_opts o = {.device_set = 1};
    if (gen_arg < 1 || gen_arg > 4096 || seq_arg < 1 || seq_arg > 256 || backend_device_parse(argv[5], &o.device, &e)) {
        fprintf(stderr, "bench_decode_device: %s\n", e.msg[0] ? e.msg : "N_GEN in 1..4096, N_SEQ in 1..256");
        return 2;
    }
    size_t n_gen = (size_t)gen_arg, n_seq = (size_t)seq_arg;
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        fprintf(stderr, "bench_decode_device: cannot open %s\n", argv[2]);
        return 1;
    }
    int32_t ids[MAX_PROMPT];
    size_t n = 0;
    while (n < MAX_PROMPT && fscanf(f, "%d", &ids[n]) == 1)
        n++;
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "bench_decode_device: no token ids in %s\n", argv[2]);
        return 1;
    }
    rg_decoder *d;
    if (decoder_load(argv[1], &o, &d, &e) != RG_OK)
        return fail(&e);
    size_t V = decoder_vocab(d);
    float *logits = decoder_logits_alloc(d, n_seq); /* pinned on a GPU, as the engine's */
    rg_kv_cache **kv = calloc(n_seq, sizeof *kv);
    int32_t *toks = malloc(n_seq * sizeof *toks);
    if (!logits || !kv || !toks)
        return 1;
    for (size_t s = 0; s < n_seq; s++)
        if (kv_cache_alloc(d, n + n_gen + 1, RG_KV_F16, &kv[s], &e) != RG_OK)
            return fail(&e);
    /* warm-up: buffers grow to their largest, cuBLAS picks its kernels */
    if (decoder_prefill(d, kv[0], ids, n, logits, &e) != RG_OK)
        return fail(&e);
    toks[0] = argmax(logits, V);
    if (decoder_decode(d, kv, toks, 1, logits, &e) != RG_OK)
        return fail(&e);

    enum { REPS = 5 };
    double prefill[REPS], ttft[REPS];
    for (int rep = 0; rep < REPS; rep++) {
        kv_cache_reset(kv[0]);
        if (rep == 0)
            profile_mark("prefill", 1);
        double t0 = now();
        if (decoder_prefill(d, kv[0], ids, n, logits, &e) != RG_OK)
            return fail(&e);
        double t1 = now();
        if (rep == 0)
            profile_mark("prefill", 0);
        toks[0] = argmax(logits, V);
        ttft[rep] = (now() - t0) * 1e3;
        prefill[rep] = t1 - t0;
    }
    double t_prefill = median(prefill, REPS), t_ttft = median(ttft, REPS);

    double gen1 = 0;
    profile_mark("step1", 1);
    for (size_t i = 0; i < n_gen; i++) {
        double t0 = now();
        if (decoder_decode(d, kv, toks, 1, logits, &e) != RG_OK)
            return fail(&e);
        gen1 += now() - t0;
        toks[0] = argmax(logits, V);
    }
    profile_mark("step1", 0);
    double genn = 0;
    for (size_t s = 0; s < n_seq; s++) {
        kv_cache_reset(kv[s]);
        if (decoder_prefill(d, kv[s], ids, n, logits, &e) != RG_OK)
            return fail(&e);
        toks[s] = argmax(logits, V);
    }
    profile_mark("stepn", 1);
    for (size_t i = 0; i < n_gen; i++) {
        double t0 = now();
        if (decoder_decode(d, kv, toks, n_seq, logits, &e) != RG_OK)
            return fail(&e);
        genn += now() - t0;
        for (size_t s = 0; s < n_seq; s++)
            toks[s] = argmax(logits + s * V, V);
    }
    profile_mark("stepn", 0);
    double wb = step_weight_bytes(d), cg = decoder_device(d) == RG_DEVICE_CUDA ? copy_gbps() : 0;
    double step1 = gen1 / (double)n_gen, stepn = genn / (double)n_gen;
    double g1 = wb / step1 / 1e9, gn = wb / stepn / 1e9;
    printf("{\"device\": \"%s\", \"device_description\": \"%s\", \"prompt_tokens\": %zu, \"prompt_tps\": %.1f, "
           "\"ttft_ms\": %.2f, \"gen_tokens\": %zu, \"gen_tps_1\": %.1f, \"step_ms_1\": %.3f, \"n_seq\": %zu, "
           "\"gen_tps_n\": %.1f, \"step_ms_n\": %.3f, \"weight_bytes\": %.0f, \"weight_gbps_1\": %.1f, "
           "\"weight_gbps_n\": %.1f, \"copy_gbps\": %.1f, \"bound_ratio_1\": %.3f, \"bound_ratio_n\": %.3f}\n",
           backend_device_name(decoder_device(d)), decoder_device_desc(d), n, (double)n / t_prefill, t_ttft, n_gen,
           (double)n_gen / gen1, step1 * 1e3, n_seq, (double)(n_gen * n_seq) / genn, stepn * 1e3, wb, g1, gn, cg,
           cg > 0 ? g1 / cg : 0.0, cg > 0 ? gn / cg : 0.0);
    for (size_t s = 0; s < n_seq; s++)
        kv_cache_free(kv[s]);
    free(kv);
    free(toks);
    decoder_logits_free(d, logits);
    decoder_free(d);
    return 0;
}
