/* bench_embed_device - ragd's encoder speed on a chosen device, for
 * scripts/gpu/bench_gpu.py (which runs sentence-transformers beside it).
 *
 *   bench_embed_device MODEL_DIR TEXTS_FILE BATCH SECONDS cpu|cuda|auto
 *
 * Embeds the lines of TEXTS_FILE in batches of BATCH, repeatedly, for about
 * SECONDS after three warm-up batches (the GPU's buffers grow and cuBLAS
 * picks its kernels there), and prints one JSON line: the device used,
 * sentences/s, tokens/s (with [CLS] and [SEP]) and the latency of one
 * encoder_embed call (mean and median, ms), which at BATCH 1 is the
 * single-query latency a user sees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "model/encoder.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: bench_embed_device MODEL_DIR TEXTS_FILE BATCH SECONDS cpu|cuda|auto\n");
        return 2;
    }
    int batch_arg = atoi(argv[3]);
    double seconds = atof(argv[4]);
    rg_err e = {0};
    rg_encoder_opts o;
    encoder_opts_default(&o);
    if (batch_arg <= 0 || batch_arg > 4096 || !(seconds > 0 && seconds < 3600) ||
        backend_device_parse(argv[5], &o.device, &e)) {
        fprintf(stderr, "bench_embed_device: %s\n", e.msg[0] ? e.msg : "BATCH in 1..4096, SECONDS in (0, 3600)");
        return 2;
    }
    size_t batch = (size_t)batch_arg;
    rg_buf file;
    rg_buf_init(&file, 0);
    rg_encoder *enc = NULL;
    if (fs_read_file(argv[2], (size_t)64 << 20, &file, &e) || encoder_load_opts(argv[1], &o, &enc, &e)) {
        fprintf(stderr, "bench_embed_device: %s\n", e.msg);
        rg_buf_free(&file);
        return 1;
    }
    encoder_set_max_batch(enc, batch);
    size_t n = 0, cap = 64;
    const char **texts = malloc(cap * sizeof *texts);
    for (char *p = file.data, *nl; p && *p && texts; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (!*p)
            continue;
        if (n == cap) {
            const char **grown = realloc(texts, (cap *= 2) * sizeof *texts);
            if (!grown) {
                free(texts);
                texts = NULL;
                break;
            }
            texts = grown;
        }
        texts[n++] = p;
    }
    size_t max_calls = 1 << 20;
    float *out = malloc(batch * encoder_dim(enc) * sizeof *out);
    const char **chunk = malloc(batch * sizeof *chunk);
    double *lat = malloc(max_calls * sizeof *lat);
    if (!texts || n == 0 || !out || !chunk || !lat) {
        fprintf(stderr, "bench_embed_device: %s\n", n ? "out of memory" : "no texts");
        return 1;
    }
    size_t tokens = 0, sentences = 0, calls = 0, t;
    for (int w = 0; w < 3; w++) {
        for (size_t i = 0; i < batch; i++)
            chunk[i] = texts[(w * batch + i) % n];
        if (encoder_embed(enc, chunk, NULL, batch, out, &t, &e)) {
            fprintf(stderr, "bench_embed_device: %s\n", e.msg);
            return 1;
        }
    }
    int64_t start = clock_mono_us(), now = start;
    for (size_t round = 0; now - start < (int64_t)(seconds * 1e6) && calls < max_calls; round++) {
        for (size_t i = 0; i < batch; i++)
            chunk[i] = texts[(round * batch + i) % n];
        int64_t t0 = clock_mono_us();
        if (encoder_embed(enc, chunk, NULL, batch, out, &t, &e)) {
            fprintf(stderr, "bench_embed_device: %s\n", e.msg);
            return 1;
        }
        now = clock_mono_us();
        lat[calls++] = (double)(now - t0) / 1000.0;
        tokens += t;
        sentences += batch;
    }
    double s = (double)(now - start) / 1e6, sum = 0;
    for (size_t i = 0; i < calls; i++)
        sum += lat[i];
    qsort(lat, calls, sizeof *lat, cmp_double);
    printf("{\"device\": \"%s\", \"device_description\": \"%s\", \"batch\": %zu, \"sentences_per_s\": %.2f, "
           "\"tokens_per_s\": %.1f, \"latency_ms_mean\": %.3f, \"latency_ms_p50\": %.3f, \"calls\": %zu, "
           "\"seconds\": %.2f}\n",
           backend_device_name(encoder_device(enc)), encoder_device_desc(enc), batch, (double)sentences / s,
           (double)tokens / s, sum / (double)calls, lat[calls / 2], calls, s);
    free(lat);
    free(out);
    free(chunk);
    free(texts);
    encoder_free(enc);
    rg_buf_free(&file);
    return 0;
}
