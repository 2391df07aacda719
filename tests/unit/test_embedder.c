/* index/embedder: concurrent callers of both classes get exactly the
 * vectors the encoder computes alone, and a full queue says busy. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "index/embedder.h"
#include "model/encoder.h"

#define THREADS 6
#define PER_THREAD 5

static const char *texts[THREADS][PER_THREAD];
static char storage[THREADS][PER_THREAD][160];

typedef struct job {
    rg_embedder *em;
    int t;
    float out[PER_THREAD * 384];
    rg_status st;
    size_t tokens;
} job;

static void *run(void *arg)
{
    job *j = arg;
    rg_err e;
    j->st = embedder_embed(j->em, texts[j->t], NULL, PER_THREAD, RG_TRUNC_END, j->t % 2, j->out, &j->tokens, &e);
    if (j->st)
        fprintf(stderr, "thread %d: %s\n", j->t, e.msg);
    return NULL;
}

int main(void)
{
    char dir[1024];
    const char *base = getenv("RAGD_MODELS");
    snprintf(dir, sizeof dir, "%s/all-MiniLM-L6-v2", base && *base ? base : "models");
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            snprintf(storage[t][i], sizeof storage[t][i], "Thread %d asks question %d about %s.", t, i,
                     (t + i) % 2 ? "vector indexes and chunking" : "SQLite write-ahead logging");
            texts[t][i] = storage[t][i];
        }

    rg_err e = {0};
    rg_encoder *enc = NULL;
    rg_status st = encoder_load(dir, &enc, &e);
    CHECK_MSG(st == RG_OK, "%s (run `make models`)", e.msg);
    if (st)
        return check_finish("test_embedder");
    static float want[THREADS][PER_THREAD * 384];
    for (int t = 0; t < THREADS; t++)
        CHECK_OK(encoder_embed(enc, texts[t], NULL, PER_THREAD, want[t], NULL, &e), e);
    encoder_free(enc);

    rg_embedder_opts o;
    embedder_opts_default(&o);
    o.batch_tokens = 64; /* small, so requests are batched together and apart */
    rg_embedder *em = NULL;
    CHECK_OK(embedder_start(dir, &o, &em, &e), e);
    if (!em)
        return check_finish("test_embedder");
    CHECK(embedder_dim(em) == 384);
    CHECK(embedder_max_tokens(em) == 256);
    CHECK_STR(embedder_model_id(em), "all-MiniLM-L6-v2");

    static job jobs[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (job){.em = em, .t = t};
        pthread_create(&th[t], NULL, run, &jobs[t]);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < THREADS; t++) {
        CHECK(jobs[t].st == RG_OK);
        CHECK(jobs[t].tokens > PER_THREAD * 5);
        double worst = 1;
        for (int i = 0; i < PER_THREAD; i++) {
            double dot = 0;
            for (int d = 0; d < 384; d++)
                dot += (double)jobs[t].out[i * 384 + d] * want[t][i * 384 + d];
            if (dot < worst)
                worst = dot;
        }
        CHECK_MSG(worst > 0.99999, "thread %d: cosine %.7f against the encoder alone", t, worst);
    }
    CHECK(embedder_embed(em, texts[0], NULL, 0, RG_TRUNC_END, 1, jobs[0].out, NULL, &e) == RG_OK);
    embedder_stop(em);

    /* Queue capacity 1: of many simultaneous callers, some are refused at
     * once with BUSY and every one accepted gets the right vectors. */
    o.queue_capacity = 1;
    CHECK_OK(embedder_start(dir, &o, &em, &e), e);
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (job){.em = em, .t = t};
        pthread_create(&th[t], NULL, run, &jobs[t]);
    }
    int ok = 0, busy = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        ok += jobs[t].st == RG_OK;
        busy += jobs[t].st == RG_ERR_BUSY;
        if (jobs[t].st == RG_OK)
            CHECK(fabs(jobs[t].out[0] - want[t][0]) < 1e-5);
    }
    CHECK(ok + busy == THREADS && ok >= 1);
    embedder_stop(em);
    return check_finish("test_embedder");
}
