/* reranker.c - the reranker engine (see reranker.h). */
#include "rerank/reranker.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "model/cross_encoder.h"

/* One caller's request, living on the caller's stack while it waits. */
typedef struct rerank_request {
    rg_encoding *pairs;
    size_t n;
    float *logits;
    size_t cost; /* tokens of all its pairs */
    rg_status status;
    rg_err err;
    int done;
    struct rerank_request *next;
} rerank_request;

struct rg_reranker {
    rg_cross_encoder *ce;
    rg_reranker_opts opts;
    char model_id[256];
    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t work;
    pthread_cond_t ready;
    rerank_request *head, *tail;
    size_t queued;
    int stopping;
};

/* A pair of a job and where its logit goes. */
typedef struct job_pair {
    const rg_encoding *enc;
    float *out;
} job_pair;

#define RERANK_MAX_REQUESTS_PER_JOB 64

void reranker_opts_default(rg_reranker_opts *o)
{
    o->queue_capacity = 64;
    o->batch_tokens = 16384;
    o->max_batch = 64;
    o->device = RG_DEVICE_CPU;
}

double reranker_relevance(double logit)
{
    return 1.0 / (1.0 + exp(-logit));
}

static int by_len_desc(const void *a, const void *b)
{
    const job_pair *x = a, *y = b;
    return x->enc->n != y->enc->n ? (x->enc->n < y->enc->n ? 1 : -1) : 0;
}

/* Runs every pair of the job's requests in length-sorted padded batches. */
static void run_job(rg_reranker *rr, rerank_request **reqs, size_t nr)
{
    size_t n = 0;
    for (size_t i = 0; i < nr; i++)
        n += reqs[i]->n;
    job_pair *pairs = malloc(n * sizeof *pairs);
    const rg_encoding **batch = malloc((rr->opts.max_batch < n ? rr->opts.max_batch : n) * sizeof *batch);
    float *out = malloc((rr->opts.max_batch < n ? rr->opts.max_batch : n) * sizeof *out);
    rg_err e;
    rg_err_clear(&e);
    rg_status st = pairs && batch && out ? RG_OK : rg_error(&e, RG_ERR_NOMEM, "out of memory for %zu pairs", n);
    size_t k = 0;
    for (size_t i = 0; i < nr && !st; i++)
        for (size_t j = 0; j < reqs[i]->n; j++, k++)
            pairs[k] = (job_pair){&reqs[i]->pairs[j], &reqs[i]->logits[j]};
    if (!st)
        qsort(pairs, n, sizeof *pairs, by_len_desc);
    for (size_t i = 0; i < n && !st;) {
        /* Sorted longest first, so the first pair sets the padded length. */
        size_t T = pairs[i].enc->n, m = 0;
        while (i + m < n && m < rr->opts.max_batch && (m == 0 || (m + 1) * T <= rr->opts.batch_tokens)) {
            batch[m] = pairs[i + m].enc;
            m++;
        }
        st = cross_encoder_logits(rr->ce, batch, m, out, &e);
        for (size_t j = 0; j < m && !st; j++)
            *pairs[i + j].out = out[j];
        i += m;
    }
    for (size_t i = 0; i < nr; i++) {
        reqs[i]->status = st;
        if (st)
            reqs[i]->err = e;
    }
    free(pairs);
    free(batch);
    free(out);
}

static void *worker_main(void *arg)
{
    rg_reranker *rr = arg;
    rerank_request *job[RERANK_MAX_REQUESTS_PER_JOB];
    pthread_mutex_lock(&rr->mu);
    for (;;) {
        while (!rr->stopping && !rr->head)
            pthread_cond_wait(&rr->work, &rr->mu);
        if (!rr->head)
            break; /* stopping and drained */
        size_t nj = 0, budget = 0;
        do {
            rerank_request *r = rr->head;
            rr->head = r->next;
            if (!rr->head)
                rr->tail = NULL;
            rr->queued--;
            job[nj++] = r;
            budget += r->cost;
        } while (nj < RERANK_MAX_REQUESTS_PER_JOB && rr->head && budget + rr->head->cost <= rr->opts.batch_tokens);
        pthread_mutex_unlock(&rr->mu);
        run_job(rr, job, nj);
        pthread_mutex_lock(&rr->mu);
        for (size_t i = 0; i < nj; i++)
            job[i]->done = 1;
        pthread_cond_broadcast(&rr->ready);
    }
    pthread_mutex_unlock(&rr->mu);
    return NULL;
}

rg_status reranker_start(const char *model_dir, const rg_reranker_opts *o, rg_reranker **out, rg_err *e)
{
    *out = NULL;
    if (!o->queue_capacity || !o->batch_tokens || !o->max_batch)
        return rg_error(e, RG_ERR_INVALID, "reranker queue capacity and batch limits must be positive");
    rg_reranker *rr = calloc(1, sizeof *rr);
    if (!rr)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    rr->opts = *o;
    rg_status st = cross_encoder_load(model_dir, o->device, &rr->ce, e);
    if (st) {
        free(rr);
        return st;
    }
    snprintf(rr->model_id, sizeof rr->model_id, "%s", model_dir);
    size_t len = strlen(rr->model_id);
    while (len > 1 && rr->model_id[len - 1] == '/')
        rr->model_id[--len] = '\0';
    memmove(rr->model_id, fs_basename(rr->model_id), strlen(fs_basename(rr->model_id)) + 1);
    pthread_mutex_init(&rr->mu, NULL);
    pthread_cond_init(&rr->work, NULL);
    pthread_cond_init(&rr->ready, NULL);
    if (pthread_create(&rr->worker, NULL, worker_main, rr) != 0) {
        cross_encoder_free(rr->ce);
        free(rr);
        return rg_error(e, RG_ERR_INTERNAL, "cannot start the reranker thread");
    }
    *out = rr;
    return RG_OK;
}

void reranker_stop(rg_reranker *rr)
{
    if (!rr)
        return;
    pthread_mutex_lock(&rr->mu);
    rr->stopping = 1;
    pthread_cond_broadcast(&rr->work);
    pthread_mutex_unlock(&rr->mu);
    pthread_join(rr->worker, NULL);
    pthread_mutex_destroy(&rr->mu);
    pthread_cond_destroy(&rr->work);
    pthread_cond_destroy(&rr->ready);
    cross_encoder_free(rr->ce);
    free(rr);
}

static void free_pairs(rg_encoding *pairs, size_t n)
{
    for (size_t i = 0; pairs && i < n; i++)
        encoding_free(&pairs[i]);
    free(pairs);
}

rg_status reranker_score(rg_reranker *rr, const char *query, const char *const *passages, const size_t *lens,
                         size_t n, int truncate, float *logits, size_t *tokens, rg_err *e)
{
    if (tokens)
        *tokens = 0;
    if (n == 0)
        return RG_OK;
    rerank_request r = {.n = n, .logits = logits};
    r.pairs = calloc(n, sizeof *r.pairs);
    if (!r.pairs)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu passages", n);
    size_t qlen = strlen(query);
    for (size_t i = 0; i < n; i++) {
        const char *p = passages[i] ? passages[i] : "";
        rg_status st = cross_encoder_encode(rr->ce, query, qlen, p, lens ? lens[i] : strlen(p), truncate,
                                            &r.pairs[i], e);
        if (st) {
            free_pairs(r.pairs, n);
            if (st == RG_ERR_INVALID)
                rg_error_wrap(e, "passage %zu", i);
            return st;
        }
        r.cost += r.pairs[i].n;
    }
    pthread_mutex_lock(&rr->mu);
    if (rr->stopping || rr->queued >= rr->opts.queue_capacity) {
        size_t q = rr->queued;
        int stopping = rr->stopping;
        pthread_mutex_unlock(&rr->mu);
        free_pairs(r.pairs, n);
        return stopping ? rg_error(e, RG_ERR_BUSY, "the reranker is shutting down")
                        : rg_error(e, RG_ERR_BUSY, "the reranking queue is full (%zu requests); retry later", q);
    }
    r.next = NULL;
    if (rr->tail)
        rr->tail->next = &r;
    else
        rr->head = &r;
    rr->tail = &r;
    rr->queued++;
    pthread_cond_signal(&rr->work);
    while (!r.done)
        pthread_cond_wait(&rr->ready, &rr->mu);
    pthread_mutex_unlock(&rr->mu);
    free_pairs(r.pairs, n);
    if (r.status) {
        if (e)
            *e = r.err;
        return r.status;
    }
    if (tokens)
        *tokens = r.cost;
    return RG_OK;
}

size_t reranker_max_tokens(const rg_reranker *rr) { return cross_encoder_max_tokens(rr->ce); }
const char *reranker_model_id(const rg_reranker *rr) { return rr->model_id; }
rg_device reranker_device(const rg_reranker *rr) { return cross_encoder_device(rr->ce); }
const char *reranker_device_desc(const rg_reranker *rr) { return cross_encoder_device_desc(rr->ce); }
