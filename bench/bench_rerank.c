/* bench_rerank - ragd's cross-encoder speed on one machine, for
 * bench_rerank.py.
 *
 *   bench_rerank MODEL_DIR PAIRS_FILE N_PAIRS BATCH SECONDS [cpu|cuda|auto]
 *
 * PAIRS_FILE holds one "query<TAB>passage" per line. Each round scores
 * N_PAIRS pairs (cycling through the file) with cross_encoder_score in
 * length-sorted batches of BATCH, repeatedly for about SECONDS after one
 * warm-up round, and prints one JSON line with pairs/s and tokens/s
 * (tokens after truncation, specials included). One query per round: the
 * pairs of a round share the first line's query, as a rerank request does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "model/cross_encoder.h"

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: bench_rerank MODEL_DIR PAIRS_FILE N_PAIRS BATCH SECONDS [cpu|cuda|auto]\n");
        return 2;
    }
    size_t n_pairs = (size_t)atoi(argv[3]), batch = (size_t)atoi(argv[4]);
    double seconds = atof(argv[5]);
    rg_err e;
    rg_buf file;
    rg_buf_init(&file, 0);
    rg_cross_encoder *ce = NULL;
    rg_device device = RG_DEVICE_CPU;
    if (argc == 7 && backend_device_parse(argv[6], &device, &e)) {
        fprintf(stderr, "bench_rerank: %s\n", e.msg);
        return 2;
    }
    if (!n_pairs || !batch) {
        fprintf(stderr, "bench_rerank: N_PAIRS and BATCH must be positive\n");
        return 2;
    }
    if (fs_read_file(argv[2], (size_t)64 << 20, &file, &e) || cross_encoder_load(argv[1], device, &ce, &e)) {
        fprintf(stderr, "bench_rerank: %s\n", e.msg);
        return 1;
    }
    size_t n = 0, cap = 64;
    const char **passages = malloc(cap * sizeof *passages);
    const char *query = NULL;
    for (char *p = file.data, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        char *tab = strchr(p, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        if (!query)
            query = p;
        if (n == cap)
            passages = realloc(passages, (cap *= 2) * sizeof *passages);
        passages[n++] = tab + 1;
    }
    if (!n) {
        fprintf(stderr, "bench_rerank: no pairs in %s\n", argv[2]);
        return 1;
    }
    const char **round_p = malloc(n_pairs * sizeof *round_p);
    float *logits = malloc(n_pairs * sizeof *logits);
    size_t tokens = 0, pairs = 0, t;
    for (size_t i = 0; i < n_pairs; i++)
        round_p[i] = passages[i % n];
    if (cross_encoder_score(ce, query, strlen(query), round_p, NULL, n_pairs, batch, logits, &t, &e)) {
        fprintf(stderr, "bench_rerank: %s\n", e.msg);
        return 1;
    }
    int64_t start = clock_mono_us(), now = start;
    for (size_t round = 0; now - start < (int64_t)(seconds * 1e6); round++) {
        for (size_t i = 0; i < n_pairs; i++)
            round_p[i] = passages[(round * n_pairs + i) % n];
        if (cross_encoder_score(ce, query, strlen(query), round_p, NULL, n_pairs, batch, logits, &t, &e)) {
            fprintf(stderr, "bench_rerank: %s\n", e.msg);
            return 1;
        }
        tokens += t;
        pairs += n_pairs;
        now = clock_mono_us();
    }
    double s = (double)(now - start) / 1e6;
    printf("{\"pairs_per_s\": %.3f, \"tokens_per_s\": %.1f, \"pairs\": %zu, \"seconds\": %.3f, \"device\": \"%s\"}\n",
           (double)pairs / s, (double)tokens / s, pairs, s, cross_encoder_device_desc(ce));
    cross_encoder_free(ce);
    free(round_p);
    free(logits);
    free(passages);
    rg_buf_free(&file);
    return 0;
}
