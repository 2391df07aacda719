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
 * pairs of a round share the first line's query, as a rerank request does.
 *
 * A MODEL that is a file is a causal-LM reranker (model/lm_reranker.h): each
 * round encodes the query's prompt prefix and every passage (limit 1024
 * tokens) and scores them, the prefix computed once; BATCH is unused and
 * tokens are the prompts' (prefix counted per pair); the optional last
 * argument is then the device (cpu, cuda or auto) or, as a number, the CPU
 * decoder's threads (default: the online CPUs), and $RAGD_RERANK_PRECISION
 * f32 (default) or q8 its arithmetic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "model/cross_encoder.h"
#include "model/lm_reranker.h"

/* One round of the causal-LM reranker: what a request costs, encoding included. */
static rg_status lm_round(rg_lm_reranker *lr, const char *query, const char **passages, size_t n, float *scores,
                          size_t *tokens, rg_err *e)
{
    rg_bpe_ids prefix = {0};
    rg_bpe_ids *rests = calloc(n, sizeof *rests);
    if (!rests)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    rg_status st = lm_reranker_encode_query(lr, query, strlen(query), LM_RERANKER_DEFAULT_MAX_TOKENS, 1, &prefix,
                                            NULL, e);
    *tokens = 0;
    for (size_t i = 0; i < n && !st; i++) {
        st = lm_reranker_encode_passage(lr, prefix.n, passages[i], strlen(passages[i]), LM_RERANKER_DEFAULT_MAX_TOKENS,
                                        1, &rests[i], NULL, e);
        *tokens += prefix.n + rests[i].n;
    }
    if (!st)
        st = lm_reranker_score(lr, prefix.ids, prefix.n, rests, n, scores, e);
    for (size_t i = 0; i < n; i++)
        bpe_ids_free(&rests[i]);
    free(rests);
    bpe_ids_free(&prefix);
    return st;
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: bench_rerank MODEL PAIRS_FILE N_PAIRS BATCH SECONDS [cpu|cuda|auto|THREADS]\n");
        return 2;
    }
    size_t n_pairs = (size_t)atoi(argv[3]), batch = (size_t)atoi(argv[4]);
    double seconds = atof(argv[5]);
    rg_err e;
    rg_buf file;
    rg_buf_init(&file, 0);
    rg_cross_encoder *ce = NULL;
    rg_device device = RG_DEVICE_CPU;
    int lm = fs_is_file(argv[1]);
    int threads_arg = lm && argc == 7 && argv[6][0] >= '0' && argv[6][0] <= '9';
    size_t lm_threads = threads_arg ? (size_t)atoi(argv[6]) : 0;
    if (argc == 7 && !threads_arg && backend_device_parse(argv[6], &device, &e)) {
        fprintf(stderr, "bench_rerank: %s\n", e.msg);
        return 2;
    }
    if (!n_pairs || !batch) {
        fprintf(stderr, "bench_rerank: N_PAIRS and BATCH must be positive\n");
        return 2;
    }
    rg_lm_reranker *lr = NULL;
    const char *prec_name = getenv("RAGD_RERANK_PRECISION");
    int prec = prec_name && *prec_name ? lm_precision_parse(prec_name) : RG_LM_F32;
    if (prec < 0) {
        fprintf(stderr, "bench_rerank: RAGD_RERANK_PRECISION is f32 or q8\n");
        return 2;
    }
    if (fs_read_file(argv[2], (size_t)64 << 20, &file, &e) ||
        (lm ? lm_reranker_load(argv[1], lm_threads, device, (rg_lm_precision)prec, &lr, &e) : cross_encoder_load(argv[1], device, &ce, &e))) {
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
    if (lm ? lm_round(lr, query, round_p, n_pairs, logits, &t, &e)
           : cross_encoder_score(ce, query, strlen(query), round_p, NULL, n_pairs, batch, logits, &t, &e)) {
        fprintf(stderr, "bench_rerank: %s\n", e.msg);
        return 1;
    }
    int64_t start = clock_mono_us(), now = start;
    for (size_t round = 0; now - start < (int64_t)(seconds * 1e6); round++) {
        for (size_t i = 0; i < n_pairs; i++)
            round_p[i] = passages[(round * n_pairs + i) % n];
        if (lm ? lm_round(lr, query, round_p, n_pairs, logits, &t, &e)
               : cross_encoder_score(ce, query, strlen(query), round_p, NULL, n_pairs, batch, logits, &t, &e)) {
            fprintf(stderr, "bench_rerank: %s\n", e.msg);
            return 1;
        }
        tokens += t;
        pairs += n_pairs;
        now = clock_mono_us();
    }
    double s = (double)(now - start) / 1e6;
    printf("{\"pairs_per_s\": %.3f, \"tokens_per_s\": %.1f, \"pairs\": %zu, \"seconds\": %.3f, \"device\": \"%s\"}\n",
           (double)pairs / s, (double)tokens / s, pairs, s, lm ? lm_reranker_device_desc(lr) : cross_encoder_device_desc(ce));
    cross_encoder_free(ce);
    lm_reranker_free(lr);
    free(round_p);
    free(logits);
    free(passages);
    rg_buf_free(&file);
    return 0;
}
