/* bench_embed - ragd's encoder speed on one machine, for bench_embed.py.
 *
 *   bench_embed MODEL_DIR TEXTS_FILE BATCH SECONDS
 *
 * Embeds the lines of TEXTS_FILE in batches of BATCH, repeatedly, for about
 * SECONDS after one warm-up batch, and prints one JSON line with
 * sentences/s and tokens/s (tokens as the model counts them, with [CLS] and
 * [SEP]). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "model/encoder.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_embed MODEL_DIR TEXTS_FILE BATCH SECONDS\n");
        return 2;
    }
    size_t batch = (size_t)atoi(argv[3]);
    double seconds = atof(argv[4]);
    rg_err e;
    rg_buf file;
    rg_buf_init(&file, 0);
    rg_encoder *enc = NULL;
    if (batch == 0 || fs_read_file(argv[2], (size_t)64 << 20, &file, &e) || encoder_load(argv[1], &enc, &e)) {
        fprintf(stderr, "bench_embed: %s\n", batch ? e.msg : "BATCH must be positive");
        return 1;
    }
    encoder_set_max_batch(enc, batch);
    /* One text per line. */
    size_t n = 0, cap = 64;
    const char **texts = malloc(cap * sizeof *texts);
    for (char *p = file.data, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (!*p)
            continue;
        if (n == cap)
            texts = realloc(texts, (cap *= 2) * sizeof *texts);
        texts[n++] = p;
    }
    float *out = malloc(batch * encoder_dim(enc) * sizeof *out);
    const char **chunk = malloc(batch * sizeof *chunk);
    size_t tokens = 0, sentences = 0, t;
    for (size_t i = 0; i < batch; i++)
        chunk[i] = texts[i % n];
    encoder_embed(enc, chunk, NULL, batch, out, &t, &e); /* warm-up */
    int64_t start = clock_mono_us(), now = start;
    for (size_t round = 0; now - start < (int64_t)(seconds * 1e6); round++) {
        for (size_t i = 0; i < batch; i++)
            chunk[i] = texts[(round * batch + i) % n];
        if (encoder_embed(enc, chunk, NULL, batch, out, &t, &e)) {
            fprintf(stderr, "bench_embed: %s\n", e.msg);
            return 1;
        }
        tokens += t;
        sentences += batch;
        now = clock_mono_us();
    }
    double s = (double)(now - start) / 1e6;
    printf("{\"batch\": %zu, \"sentences_per_s\": %.2f, \"tokens_per_s\": %.1f, \"seconds\": %.2f}\n", batch,
           (double)sentences / s, (double)tokens / s, s);
    free(out);
    free(chunk);
    free(texts);
    encoder_free(enc);
    rg_buf_free(&file);
    return 0;
}
