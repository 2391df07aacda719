#define _GNU_SOURCE /* realpath, symlink (rerank_fixture.h) */
/* test_reranker.c - the reranker engine (rerank/reranker.h) on the TEST
 * cross-encoder (rerank_fixture.h): requests from many threads at once are
 * batched together and each still gets the reference logits of its own
 * pairs; over-long pairs without truncation fail naming the passage; a full
 * queue answers RG_ERR_BUSY at once instead of waiting. */
#include <math.h>
#include <pthread.h>

#include "check.h"
#include "rerank/reranker.h"
#include "rerank_fixture.h"

#define TOL 1e-3
#define THREADS 8

typedef struct job {
    rg_reranker *rr;
    const golden *g; /* one query group */
    size_t n;
    int rounds;
    int ok, busy, wrong, failed;
} job;

static void *client(void *arg)
{
    job *j = arg;
    const char *ps[16];
    float logits[16];
    for (size_t i = 0; i < j->n; i++)
        ps[i] = j->g[i].p;
    for (int r = 0; r < j->rounds; r++) {
        rg_err e;
        size_t tokens = 0;
        rg_status st = reranker_score(j->rr, j->g[0].q, ps, NULL, j->n, 1, logits, &tokens, &e);
        if (st == RG_ERR_BUSY) {
            j->busy++;
            continue;
        }
        if (st) {
            fprintf(stderr, "test_reranker: %s\n", e.msg);
            j->failed++;
            continue;
        }
        j->ok++;
        size_t want = 0;
        for (size_t i = 0; i < j->n; i++) {
            want += j->g[i].tokens;
            if (fabs(logits[i] - j->g[i].logit) >= TOL)
                j->wrong++;
        }
        if (tokens != want)
            j->wrong++;
    }
    return NULL;
}

/* The query groups of the golden set (each up to 16 pairs). */
static size_t groups(const golden *g, size_t n, size_t *start, size_t *len, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < max;) {
        size_t j = i;
        while (j < n && g[j].group == g[i].group && j - i < 16)
            j++;
        start[k] = i;
        len[k++] = j - i;
        i = j;
    }
    return k;
}

static void run_clients(rg_reranker *rr, const golden *g, const size_t *start, const size_t *len, size_t ng,
                        int rounds, job *jobs)
{
    pthread_t th[THREADS];
    for (size_t t = 0; t < THREADS; t++) {
        size_t k = t % ng;
        jobs[t] = (job){.rr = rr, .g = g + start[k], .n = len[k], .rounds = rounds};
        pthread_create(&th[t], NULL, client, &jobs[t]);
    }
    for (size_t t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
}

int main(void)
{
    char minilm[4096];
    minilm_dir(minilm, sizeof minilm);
    if (!fs_is_file(GOLDEN) || !fs_is_dir(minilm)) {
        fprintf(stderr, "test_reranker: needs %s and the model at %s (make models)\n", GOLDEN, minilm);
        return 1;
    }
    golden *g = NULL;
    size_t n = load_golden(&g);
    char dir[] = "/tmp/ragd-test-rr-XXXXXX";
    if (!mkdtemp(dir) || assemble(minilm, dir) != 0) {
        fprintf(stderr, "test_reranker: cannot assemble the test model in %s\n", dir);
        return 1;
    }
    size_t start[32], len[32];
    size_t ng = groups(g, n, start, len, 32);
    CHECK(ng >= THREADS);

    /* Many clients at once, a queue long enough for all: every answer right. */
    rg_reranker_opts o;
    reranker_opts_default(&o);
    o.batch_tokens = 4096; /* several requests per job, several batches per job */
    rg_reranker *rr = NULL;
    rg_err e = {0};
    rg_status st = reranker_start(dir, &o, &rr, &e);
    CHECK_OK(st, e);
    if (!st) {
        CHECK(reranker_max_tokens(rr) == 512);
        CHECK_STR(reranker_model_id(rr), fs_basename(dir));
        job jobs[THREADS];
        run_clients(rr, g, start, len, ng, 2, jobs);
        for (size_t t = 0; t < THREADS; t++) {
            CHECK_MSG(jobs[t].ok == 2 && !jobs[t].busy && !jobs[t].failed, "client %zu: ok %d busy %d failed %d",
                      t, jobs[t].ok, jobs[t].busy, jobs[t].failed);
            CHECK_MSG(jobs[t].wrong == 0, "client %zu: %d answers differ from the reference", t, jobs[t].wrong);
        }
        /* Without truncation an over-long pair fails, naming it. */
        size_t long_i = 0;
        while (long_i < n && !g[long_i].truncated)
            long_i++;
        const char *ps[2] = {"a short passage", g[long_i].p};
        float logits[2];
        st = reranker_score(rr, g[long_i].q, ps, NULL, 2, 0, logits, NULL, &e);
        CHECK(st == RG_ERR_INVALID && strstr(e.msg, "passage 1") && strstr(e.msg, "512"));
        CHECK(reranker_score(rr, g[long_i].q, ps, NULL, 2, 1, logits, NULL, &e) == RG_OK);
        CHECK(fabs(logits[1] - g[long_i].logit) < TOL);
        reranker_stop(rr);
    }

    /* A queue of one: while the worker runs one request and one waits, the
     * others are told BUSY at once; what is answered is still right. */
    o.queue_capacity = 1;
    rr = NULL;
    st = reranker_start(dir, &o, &rr, &e);
    CHECK_OK(st, e);
    if (!st) {
        job jobs[THREADS];
        run_clients(rr, g, start, len, ng, 3, jobs);
        int ok = 0, busy = 0, wrong = 0, failed = 0;
        for (size_t t = 0; t < THREADS; t++)
            ok += jobs[t].ok, busy += jobs[t].busy, wrong += jobs[t].wrong, failed += jobs[t].failed;
        CHECK_MSG(busy > 0 && ok > 0 && !failed && !wrong, "ok %d busy %d failed %d wrong %d", ok, busy, failed,
                  wrong);
        printf("test_reranker: queue of 1, %d clients x 3 requests: %d answered, %d BUSY\n", THREADS, ok, busy);
        reranker_stop(rr);
    }
    CHECK(reranker_start("/nonexistent", &o, &rr, &e) != RG_OK);
    rm_dir(dir);
    for (size_t i = 0; i < n; i++)
        free(g[i].q), free(g[i].p);
    free(g);
    return check_finish("test_reranker");
}
