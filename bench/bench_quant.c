/* bench_quant - speed of quant_matvec per weight type, against the speed at
 * which a plain read loop streams the same number of bytes from the same
 * level of the memory hierarchy (a matrix-vector product on one vector is
 * bound by reading the weights once, so this ratio is the figure of merit).
 *
 *   bench_quant [SECONDS_PER_CASE] [N_VEC]
 *
 * For each type and each shape (576 x 1536, SmolLM2-135M's MLP, which lives
 * in the L2/L3 cache; 4096 x 4096, a 7B model's attention projection, which
 * streams from DRAM), on 1 and 2 threads (rows split in halves, activations
 * prepared once per product as the decoder does): the weight bytes read per
 * second (GB/s), the read loop's GB/s on a buffer of the same size and the
 * ratio. With N_VEC > 1 it also times the batched form (N_VEC vectors per
 * pass over the weights) and prints vectors/s against N_VEC single products.
 * Weights are random bits with finite scales; speed does not depend on them. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/quant.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* ---- the peer: a plain read loop ------------------------------------------------ */

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static uint64_t read_avx2(const unsigned char *p, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(const void *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 96)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)(void *)out, s);
    return out[0] + out[1] + out[2] + out[3];
}
#endif

static uint64_t read_plain(const unsigned char *p, size_t n)
{
    uint64_t a[4] = {0};
    for (size_t i = 0; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            uint64_t v;
            memcpy(&v, p + i + 8 * k, 8);
            a[k] += v;
        }
    return a[0] + a[1] + a[2] + a[3];
}

static uint64_t read_bytes(const unsigned char *p, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2"))
        return read_avx2(p, n);
#endif
    return read_plain(p, n);
}

/* ---- two workers split the rows ---------------------------------------------------- */

typedef struct job {
    int mode; /* 0 matvec, 1 read loop */
    uint32_t type;
    const unsigned char *w;
    size_t rows, cols, n_vec, nbytes;
    const void *act;
    float *y;
    volatile uint64_t sink;
} job;

typedef struct worker {
    pthread_t th;
    pthread_barrier_t *start, *done;
    job *j;
    int part, parts;
    volatile int quit;
} worker;

static void run_part(job *j, int part, int parts)
{
    if (j->mode == 1) {
        size_t chunk = (j->nbytes / (size_t)parts + 127) & ~(size_t)127;
        size_t b = chunk * (size_t)part, e = b + chunk > j->nbytes ? j->nbytes : b + chunk;
        if (b < e)
            j->sink += read_bytes(j->w + b, e - b);
        return;
    }
    size_t b = j->rows * (size_t)part / (size_t)parts, e = j->rows * (size_t)(part + 1) / (size_t)parts;
    rg_err err;
    if (quant_matmul_prepared(j->type, j->w, j->rows, j->cols, j->act, j->n_vec, j->y, j->rows, b, e, &err)) {
        fprintf(stderr, "bench_quant: %s\n", err.msg);
        exit(1);
    }
}

static void *worker_main(void *arg)
{
    worker *wk = arg;
    for (;;) {
        pthread_barrier_wait(wk->start);
        if (wk->quit)
            return NULL;
        run_part(wk->j, wk->part, wk->parts);
        pthread_barrier_wait(wk->done);
    }
}

/* Runs j on `threads` threads (the caller is thread 0) for about `seconds`;
 * returns wall seconds per run and, in *cpu, the process's CPU seconds per
 * run divided by the threads (on a shared machine the wall clock also counts
 * time the threads waited for a core; CPU time does not). For matvec the
 * activations are prepared once per run by the caller, inside the timing. */
static double time_job(job *j, const float *x, void *act, int threads, double seconds, double *cpu)
{
    pthread_barrier_t start, done;
    worker wk = {0};
    if (threads == 2) {
        pthread_barrier_init(&start, NULL, 2);
        pthread_barrier_init(&done, NULL, 2);
        wk.start = &start;
        wk.done = &done;
        wk.j = j;
        wk.part = 1;
        wk.parts = 2;
        pthread_create(&wk.th, NULL, worker_main, &wk);
    }
    rg_err err;
    long iters = 0;
    double t0 = now(), t = t0, warm_end = 0, c0 = 0;
    for (;;) {
        if (j->mode == 0 && quant_act_prepare(j->type, x, j->cols, j->n_vec, act, &err)) {
            fprintf(stderr, "bench_quant: %s\n", err.msg);
            exit(1);
        }
        if (threads == 2)
            pthread_barrier_wait(&start);
        run_part(j, 0, threads);
        if (threads == 2)
            pthread_barrier_wait(&done);
        t = now();
        if (warm_end == 0) { /* the first run warms caches and is not counted */
            warm_end = t;
            c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            continue;
        }
        iters++;
        if (t - warm_end >= seconds && iters >= 3)
            break;
    }
    *cpu = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / (double)iters / (double)threads;
    if (threads == 2) {
        wk.quit = 1;
        pthread_barrier_wait(&start);
        pthread_join(wk.th, NULL);
        pthread_barrier_destroy(&start);
        pthread_barrier_destroy(&done);
    }
    return (t - warm_end) / (double)iters;
}

/* ---- cases --------------------------------------------------------------------------- */

static unsigned char *random_weights(uint32_t type, size_t rows, size_t cols, size_t *nbytes)
{
    rg_err e;
    size_t row_bytes;
    if (ggml_row_bytes(type, cols, &row_bytes, &e))
        return NULL;
    *nbytes = rows * row_bytes;
    unsigned char *w = malloc(*nbytes);
    if (!w)
        return NULL;
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < *nbytes; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        w[i] = (unsigned char)(s >> 24);
    }
    /* finite scales: set every fp16 scale field to a small value; for float
     * types keep the values finite by clearing the exponent's top bit */
    uint32_t be, bb;
    ggml_type_layout(type, &be, &bb);
    size_t nblocks = *nbytes / bb;
    for (size_t b = 0; b < nblocks; b++) {
        unsigned char *blk = w + b * bb;
        switch (type) {
        case GGML_TYPE_F32: blk[3] &= 0xbf; break;
        case GGML_TYPE_F16: case GGML_TYPE_BF16: blk[1] &= 0xbf; break;
        case GGML_TYPE_Q6_K: blk[208] = 0x00; blk[209] = 0x20; break;
        case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
            blk[2] = 0x00; /* the min, then d below */
            blk[3] = 0x20;
            /* FALLTHROUGH */
        default: blk[0] = 0x00; blk[1] = 0x20; break;
        }
    }
    return w;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.3;
    size_t batch = argc > 2 ? (size_t)atoi(argv[2]) : 16;
    if (seconds <= 0 || batch == 0) {
        fprintf(stderr, "usage: bench_quant [SECONDS_PER_CASE] [N_VEC]\n");
        return 2;
    }
    static const uint32_t types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                     GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                                     GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    static const size_t shapes[][2] = {{576, 1536}, {4096, 4096}};
    printf("kernels: %s; %.2f s per case; read loop = the same bytes streamed by a plain %s loop\n",
           quant_isa_name(quant_isa_best()), seconds, quant_isa_best() == QUANT_ISA_AVX2 ? "AVX2" : "C");
    printf("GB/s = weight bytes / time; wall = elapsed, cpu = CPU time per thread; ratio = cpu GB/s over the "
           "read loop's cpu GB/s\n");
    printf("%-5s %-11s %3s %10s %9s %9s %9s %9s %7s\n", "type", "rows x cols", "thr", "us/matvec", "GB/s wall",
           "GB/s cpu", "read wall", "read cpu", "ratio");
    for (size_t si = 0; si < 2; si++) {
        size_t rows = shapes[si][0], cols = shapes[si][1];
        float *x = malloc(batch * cols * sizeof(float));
        float *y = malloc(batch * rows * sizeof(float));
        for (size_t i = 0; i < batch * cols; i++)
            x[i] = (float)((int)(i * 2654435761u % 2001) - 1000) / 700.0f;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            uint32_t type = types[ti];
            size_t nbytes;
            unsigned char *w = random_weights(type, rows, cols, &nbytes);
            void *act = malloc(batch * quant_act_bytes(type, cols));
            if (!w || !act) {
                fprintf(stderr, "bench_quant: out of memory\n");
                return 1;
            }
            for (int threads = 1; threads <= 2; threads++) {
                job mv = {.mode = 0, .type = type, .w = w, .rows = rows, .cols = cols, .n_vec = 1, .act = act, .y = y};
                double c, cr;
                double t = time_job(&mv, x, act, threads, seconds, &c);
                job rd = {.mode = 1, .w = w, .nbytes = nbytes};
                double tr = time_job(&rd, NULL, NULL, threads, seconds, &cr);
                double gb = (double)nbytes * 1e-9;
                char shape[32];
                snprintf(shape, sizeof shape, "%zux%zu", rows, cols);
                printf("%-5s %-11s %3d %10.1f %9.2f %9.2f %9.2f %9.2f %7.2f\n", ggml_type_name(type), shape, threads,
                       t * 1e6, gb / t, gb / c, gb / tr, gb / cr, cr / c);
                if (batch > 1 && threads == 2 && (type == GGML_TYPE_Q4_1 || type == GGML_TYPE_Q4_K ||
                                                  type == GGML_TYPE_Q8_0)) {
                    job mb = {.mode = 0, .type = type, .w = w, .rows = rows, .cols = cols, .n_vec = batch,
                              .act = act, .y = y};
                    double cb;
                    time_job(&mb, x, act, threads, seconds, &cb);
                    printf("      batch of %zu, 2 threads: %.0f vectors per cpu-second vs %.0f one at a time "
                           "(%.2fx)\n",
                           batch, (double)batch / cb, 1.0 / c, c * (double)batch / cb);
                }
                fflush(stdout);
            }
            free(w);
            free(act);
        }
        free(x);
        free(y);
    }
    return 0;
}
