/* reranker.c - the reranker engine (see reranker.h). */
#include "rerank/reranker.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "model/cross_encoder.h"
#include "model/gguf.h"
#include "model/lm_reranker.h"

/* One caller's request, living on the caller's stack while it waits. */
typedef struct rerank_request {
    rg_encoding *pairs; /* cross-encoder: the encoded pairs */
    rg_bpe_ids prefix;  /* causal-lm: the query's prompt prefix ... */
    rg_bpe_ids *rests;  /* ... and each passage's rest of the prompt */
    size_t n;
    float *logits;
    size_t cost; /* tokens of all its pairs */
    rg_status status;
    rg_err err;
    int done;
    struct rerank_request *next;
} rerank_request;

struct rg_reranker {
    rg_reranker_kind kind;
    rg_cross_encoder *ce; /* one of these two */
    rg_lm_reranker *lm;
    rg_reranker_opts opts;
    size_t max_tokens;
    char model_id[256];
    char model_name[256]; /* causal-lm: the id without "-rerank" */
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
    o->max_tokens = 0;
    o->threads = 0;
    o->precision = RG_LM_F32;
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

/* Causal-LM: each request's passages continue its own prefix; requests of
 * a few passages share forward passes (lm_reranker_score_groups). */
static void run_lm_job(rg_reranker *rr, rerank_request **reqs, size_t nr)
{
    rg_lm_group g[RERANK_MAX_REQUESTS_PER_JOB];
    for (size_t i = 0; i < nr; i++)
        g[i] = (rg_lm_group){reqs[i]->prefix.ids, reqs[i]->prefix.n, reqs[i]->rests, reqs[i]->n, reqs[i]->logits,
                             RG_OK, {0}};
    lm_reranker_score_groups(rr->lm, g, nr);
    for (size_t i = 0; i < nr; i++) {
        reqs[i]->status = g[i].status;
        reqs[i]->err = g[i].err;
    }
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
        if (rr->kind == RG_RERANKER_CAUSAL_LM)
            run_lm_job(rr, job, nj);
        else
            run_job(rr, job, nj);
        pthread_mutex_lock(&rr->mu);
        for (size_t i = 0; i < nj; i++)
            job[i]->done = 1;
        pthread_cond_broadcast(&rr->ready);
    }
    pthread_mutex_unlock(&rr->mu);
    return NULL;
}

/* A GGUF file of architecture "bert" is a cross-encoder (model/cross_encoder.h
 * says which such files it takes); any other file is a causal LM, whose
 * loader reports what is wrong with it. */
static rg_reranker_kind kind_of_file(const char *path)
{
    gguf_file *g = NULL;
    rg_err e;
    if (gguf_open(path, &g, &e) != RG_OK)
        return RG_RERANKER_CAUSAL_LM;
    const gguf_kv *kv = gguf_find_kv(g, "general.architecture");
    const char *arch = kv ? gguf_kv_string(kv, NULL) : NULL;
    rg_reranker_kind k = arch && strcmp(arch, "bert") == 0 ? RG_RERANKER_CROSS_ENCODER : RG_RERANKER_CAUSAL_LM;
    gguf_close(g);
    return k;
}

/* A directory holds a causal LM when its config.json names a *ForCausalLM
 * architecture (Hugging Face's name for decoder checkpoints); a cross-encoder
 * names *ForSequenceClassification. A file: kind_of_file. */
static rg_reranker_kind kind_of(const char *path)
{
    if (!fs_is_dir(path))
        return fs_is_file(path) ? kind_of_file(path) : RG_RERANKER_CAUSAL_LM;
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", path);
    rg_buf b;
    rg_buf_init(&b, (size_t)1 << 20);
    rg_err e;
    rg_reranker_kind k = RG_RERANKER_CROSS_ENCODER;
    if (fs_read_file(cfg, (size_t)1 << 20, &b, &e) == RG_OK && b.data && strstr(b.data, "ForCausalLM\""))
        k = RG_RERANKER_CAUSAL_LM;
    rg_buf_free(&b);
    return k;
}

static void name_from_path(char *out, size_t size, const char *path)
{
    snprintf(out, size, "%s", path);
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/')
        out[--len] = '\0';
    memmove(out, fs_basename(out), strlen(fs_basename(out)) + 1);
    len = strlen(out);
    if (len > 5 && strcmp(out + len - 5, ".gguf") == 0)
        out[len - 5] = '\0';
}

rg_status reranker_start(const char *model_path, const rg_reranker_opts *o, rg_reranker **out, rg_err *e)
{
    *out = NULL;
    if (!o->queue_capacity || !o->batch_tokens || !o->max_batch)
        return rg_error(e, RG_ERR_INVALID, "reranker queue capacity and batch limits must be positive");
    if (!fs_is_dir(model_path) && !fs_is_file(model_path))
        return rg_error(e, RG_ERR_NOT_FOUND, "%s: no such file or directory", model_path);
    rg_reranker *rr = calloc(1, sizeof *rr);
    if (!rr)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    rr->opts = *o;
    rr->kind = kind_of(model_path);
    rg_status st;
    if (rr->kind == RG_RERANKER_CAUSAL_LM) {
        st = lm_reranker_load(model_path, o->threads, o->device, o->precision, &rr->lm, e);
        if (!st) {
            size_t ctx = lm_reranker_context(rr->lm);
            rr->max_tokens = o->max_tokens ? o->max_tokens : LM_RERANKER_DEFAULT_MAX_TOKENS;
            if (rr->max_tokens > ctx)
                rr->max_tokens = ctx;
        }
    } else {
        st = cross_encoder_load(model_path, o->device, &rr->ce, e);
        if (!st)
            rr->max_tokens = cross_encoder_max_tokens(rr->ce);
    }
    if (st) {
        free(rr);
        return st;
    }
    name_from_path(rr->model_name, sizeof rr->model_name, model_path);
    snprintf(rr->model_id, sizeof rr->model_id, "%.240s%s", rr->model_name,
             rr->kind == RG_RERANKER_CAUSAL_LM ? "-rerank" : "");
    pthread_mutex_init(&rr->mu, NULL);
    pthread_cond_init(&rr->work, NULL);
    pthread_cond_init(&rr->ready, NULL);
    if (pthread_create(&rr->worker, NULL, worker_main, rr) != 0) {
        cross_encoder_free(rr->ce);
        lm_reranker_free(rr->lm);
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
    lm_reranker_free(rr->lm);
    free(rr);
}

static void free_request(rerank_request *r)
{
    for (size_t i = 0; r->pairs && i < r->n; i++)
        encoding_free(&r->pairs[i]);
    free(r->pairs);
    for (size_t i = 0; r->rests && i < r->n; i++)
        bpe_ids_free(&r->rests[i]);
    free(r->rests);
    bpe_ids_free(&r->prefix);
}

/* Tokenizes every pair on the caller's thread; r->cost gets their tokens. */
static rg_status encode_request(rg_reranker *rr, rerank_request *r, const char *query, const char *const *passages,
                                const size_t *lens, int truncate, rg_err *e)
{
    size_t n = r->n, qlen = strlen(query);
    rg_status st = RG_OK;
    if (rr->kind == RG_RERANKER_CAUSAL_LM) {
        if (!(r->rests = calloc(n, sizeof *r->rests)))
            return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu passages", n);
        st = lm_reranker_encode_query(rr->lm, query, qlen, rr->max_tokens, truncate, &r->prefix, NULL, e);
    } else if (!(r->pairs = calloc(n, sizeof *r->pairs))) {
        return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu passages", n);
    }
    for (size_t i = 0; i < n && !st; i++) {
        const char *p = passages[i] ? passages[i] : "";
        size_t plen = lens ? lens[i] : strlen(p);
        if (rr->kind == RG_RERANKER_CAUSAL_LM) {
            st = lm_reranker_encode_passage(rr->lm, r->prefix.n, p, plen, rr->max_tokens, truncate, &r->rests[i],
                                            NULL, e);
            r->cost += r->prefix.n + r->rests[i].n;
        } else {
            st = cross_encoder_encode(rr->ce, query, qlen, p, plen, truncate, &r->pairs[i], e);
            r->cost += r->pairs[i].n;
        }
        if (st == RG_ERR_INVALID)
            rg_error_wrap(e, "passage %zu", i);
    }
    return st;
}

rg_status reranker_score(rg_reranker *rr, const char *query, const char *const *passages, const size_t *lens,
                         size_t n, int truncate, float *logits, size_t *tokens, rg_err *e)
{
    if (tokens)
        *tokens = 0;
    if (n == 0)
        return RG_OK;
    rerank_request r = {.n = n, .logits = logits};
    rg_status st = encode_request(rr, &r, query, passages, lens, truncate, e);
    if (st) {
        free_request(&r);
        return st;
    }
    pthread_mutex_lock(&rr->mu);
    if (rr->stopping || rr->queued >= rr->opts.queue_capacity) {
        size_t q = rr->queued;
        int stopping = rr->stopping;
        pthread_mutex_unlock(&rr->mu);
        free_request(&r);
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
    free_request(&r);
    if (r.status) {
        if (e)
            *e = r.err;
        return r.status;
    }
    if (tokens)
        *tokens = r.cost;
    return RG_OK;
}

size_t reranker_max_tokens(const rg_reranker *rr) { return rr->max_tokens; }
const char *reranker_model_id(const rg_reranker *rr) { return rr->model_id; }
rg_reranker_kind reranker_kind(const rg_reranker *rr) { return rr->kind; }

const char *reranker_method(const rg_reranker *rr)
{
    return rr->kind == RG_RERANKER_CAUSAL_LM ? "causal-lm" : "cross-encoder";
}

int reranker_model_matches(const rg_reranker *rr, const char *name)
{
    return strcmp(name, rr->model_id) == 0 || (rr->kind == RG_RERANKER_CAUSAL_LM && strcmp(name, rr->model_name) == 0);
}

/* The decoder runs on the CPU only (model/decoder.h). */
rg_device reranker_device(const rg_reranker *rr)
{
    return rr->ce ? cross_encoder_device(rr->ce) : lm_reranker_device(rr->lm);
}

const char *reranker_precision(const rg_reranker *rr)
{
    return rr->lm ? lm_precision_name(lm_reranker_precision(rr->lm)) : NULL;
}

const char *reranker_device_desc(const rg_reranker *rr)
{
    return rr->ce ? cross_encoder_device_desc(rr->ce) : lm_reranker_device_desc(rr->lm);
}
