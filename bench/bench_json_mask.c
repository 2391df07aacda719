/* bench_json_mask - the time of JSON mode's mask (json_mask_logits: the
 * vocabulary's trie walked from the recognizer's state) against feeding
 * every token's bytes to a copy of the state one token after another, the
 * way the mask was made before the trie, at every byte of a JSON answer.
 *
 *   bench_json_mask GGUF [ROUNDS]
 *
 * GGUF: any model or vocabulary file (only its tokenizer is read). The
 * states are split by where the text stands: inside a string (nearly the
 * whole vocabulary fits) or between values and in numbers (a few hundred
 * tokens fit). Prints the mean ms of each way per state and their ratio;
 * both masks are compared on every state. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate/json_mode.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The mask as it was made before the trie (session 16): every token's
 * bytes fed to a copy of the state, one token after another (one path:
 * the document below has no schema, so no union forks). */
static size_t one_by_one(const rg_json_vocab *v, const rg_json_prefix *p, const float *logits, float *masked)
{
    size_t allowed = 0;
    for (size_t id = 0; id < v->n_vocab; id++) {
        size_t n;
        const char *b = bpe_token_bytes(v->tok, (int32_t)id, &n);
        int ok;
        if ((int32_t)id == v->end[0] || (int32_t)id == v->end[1] || bpe_is_special(v->tok, (int32_t)id) || !b || !n) {
            ok = json_token_allowed(v, p, (int32_t)id);
        } else {
            rg_json_path t = p->path[0];
            ok = json_path_feed(&t, b, n);
        }
        masked[id] = ok ? logits[id] : -INFINITY;
        allowed += (size_t)ok;
    }
    return allowed;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_json_mask GGUF [ROUNDS]\n");
        return 2;
    }
    long rounds = argc > 2 ? atol(argv[2]) : 3;
    if (rounds < 1 || rounds > 1000) {
        fprintf(stderr, "bench_json_mask: ROUNDS in 1..1000\n");
        return 2;
    }
    rg_err e = {0};
    rg_bpe *t;
    rg_json_vocab v;
    if (bpe_load_gguf_path(argv[1], &t, &e) != RG_OK) {
        fprintf(stderr, "bench_json_mask: %s\n", e.msg);
        return 1;
    }
    double t0 = now();
    if (json_vocab_init(&v, t, bpe_vocab_size(t), bpe_eos_id(t), bpe_eot_id(t), &e) != RG_OK) {
        fprintf(stderr, "bench_json_mask: %s\n", e.msg);
        return 1;
    }
    double t_init = now() - t0;
    static const char doc[] = "{\"title\": \"The quick brown fox jumps over the lazy dog\", \"year\": 2024,\n"
                              "  \"rating\": -4.75e2, \"tags\": [\"caf\\u00e9\", \"na\xc3\xafve\", true, null],\n"
                              "  \"nested\": {\"a\": [1, 2, {\"b\": \"\\\"quoted\\\"\"}]}}";
    float *logits = malloc(v.n_vocab * sizeof *logits), *m1 = malloc(v.n_vocab * sizeof *m1),
          *m2 = malloc(v.n_vocab * sizeof *m2);
    if (!logits || !m1 || !m2)
        return 1;
    for (size_t i = 0; i < v.n_vocab; i++)
        logits[i] = (float)(i % 97) * 0.01f;
    double sum[2][2] = {{0}}; /* [inside a string][trie, one by one] */
    size_t states[2] = {0}, kept[2] = {0}, mismatched = 0;
    for (long r = 0; r < rounds; r++) {
        rg_json_prefix p;
        json_prefix_init(&p, NULL);
        int in_string = 0, escaped = 0;
        for (size_t at = 0; at < sizeof doc - 1; at++) {
            double a = now();
            size_t n1 = json_mask_logits(&v, &p, logits, m1);
            double b = now();
            size_t n2 = one_by_one(&v, &p, logits, m2);
            double c = now();
            mismatched += n1 != n2 || memcmp(m1, m2, v.n_vocab * sizeof *m1) != 0;
            sum[in_string][0] += b - a;
            sum[in_string][1] += c - b;
            states[in_string]++;
            kept[in_string] += n1;
            unsigned char ch = (unsigned char)doc[at];
            if (!json_prefix_feed(&p, doc + at, 1)) {
                fprintf(stderr, "bench_json_mask: the document stops at byte %zu\n", at);
                return 1;
            }
            if (!in_string) {
                in_string = ch == '"';
            } else {
                in_string = escaped || ch != '"';
                escaped = !escaped && ch == '\\';
            }
        }
    }
    printf("vocabulary %zu tokens, trie %zu nodes (%zu tokens longer than %d bytes tried alone), built in %.1f ms\n",
           v.n_vocab, v.n_nodes, v.n_long, JSON_TRIE_MAX_BYTES, t_init * 1e3);
    printf("%-22s%8s%14s%12s%16s%8s\n", "state", "masks", "tokens kept", "trie ms", "one-by-one ms", "ratio");
    static const char *const names[2] = {"between values", "inside a string"};
    for (int k = 0; k < 2; k++) {
        double n = (double)(states[k] ? states[k] : 1);
        printf("%-22s%8zu%14.0f%12.3f%16.3f%8.1f\n", names[k], states[k], (double)kept[k] / n, sum[k][0] / n * 1e3,
               sum[k][1] / n * 1e3, sum[k][1] / (sum[k][0] > 0 ? sum[k][0] : 1e-9));
    }
    printf("masks that differ: %zu\n", mismatched);
    free(logits);
    free(m1);
    free(m2);
    json_vocab_free(&v);
    bpe_free(t);
    return mismatched ? 1 : 0;
}
