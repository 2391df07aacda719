#include "index/embedder.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "model/encoder.h"

/* One caller's request, living on the caller's stack while it waits. */
typedef struct embed_request {
    const char *const *texts;
    const size_t *lens;
    size_t n;
    rg_trunc_side side;
    float *out;
    size_t tokens;
    size_t cost; /* estimated tokens */
    rg_status status;
    rg_err err;
    int done;
    struct embed_request *next;
} embed_request;

typedef struct request_fifo {
    embed_request *head, *tail;
    size_t count;
} request_fifo;

struct rg_embedder {
    rg_encoder *enc;
    rg_embedder_opts opts;
    char model_id[256];
    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t work;  /* the worker waits here for requests */
    pthread_cond_t ready; /* callers wait here for their results */
    request_fifo queues[2]; /* [1] interactive, [0] bulk */
    int stopping;
};

void embedder_opts_default(rg_embedder_opts *o)
{
    o->queue_capacity = 256;
    o->batch_tokens = 8192;
    o->device = RG_DEVICE_CPU;
}

static void fifo_push(request_fifo *q, embed_request *r)
{
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->count++;
}

static embed_request *fifo_pop(request_fifo *q)
{
    embed_request *r = q->head;
    if (r) {
        q->head = r->next;
        if (!q->head)
            q->tail = NULL;
        q->count--;
    }
    return r;
}

/* Tokens a text will cost, estimated without tokenizing: about one per four
 * bytes, plus the two special tokens, never more than the model takes. */
static size_t estimate_tokens(const rg_embedder *em, const embed_request *r)
{
    size_t max = encoder_max_tokens(em->enc), total = 0;
    for (size_t i = 0; i < r->n; i++) {
        size_t len = r->lens ? r->lens[i] : strlen(r->texts[i]);
        size_t t = len / 4 + 2;
        total += t < max ? t : max;
    }
    return total;
}

/* Runs one encoder call for a batch of requests (all of one side). */
static void run_batch(rg_embedder *em, embed_request **batch, size_t nb)
{
    size_t n = 0;
    for (size_t i = 0; i < nb; i++)
        n += batch[i]->n;
    const char **texts = malloc(n * sizeof *texts);
    size_t *lens = malloc(n * sizeof *lens);
    size_t dim = encoder_dim(em->enc);
    float *out = malloc(n * dim * sizeof *out);
    rg_err e;
    rg_err_clear(&e);
    rg_status st = texts && lens && out ? RG_OK : rg_error(&e, RG_ERR_NOMEM, "out of memory for %zu texts", n);
    size_t k = 0;
    for (size_t i = 0; i < nb && !st; i++)
        for (size_t j = 0; j < batch[i]->n; j++, k++) {
            texts[k] = batch[i]->texts[j];
            lens[k] = batch[i]->lens ? batch[i]->lens[j] : strlen(batch[i]->texts[j]);
        }
    if (!st)
        st = encoder_embed_side(em->enc, texts, lens, n, batch[0]->side, out, NULL, &e);
    /* Each request learns its own token count from the tokenizer, which is
     * cheap next to the forward pass and exact. */
    k = 0;
    for (size_t i = 0; i < nb; i++) {
        embed_request *r = batch[i];
        r->status = st;
        if (st) {
            r->err = e;
        } else {
            memcpy(r->out, out + k * dim, r->n * dim * sizeof *out);
            r->tokens = 0;
            for (size_t j = 0; j < r->n; j++) {
                size_t t = tokenizer_count(encoder_tokenizer(em->enc), texts[k + j], lens[k + j]) + 2;
                r->tokens += t < encoder_max_tokens(em->enc) ? t : encoder_max_tokens(em->enc);
            }
        }
        k += r->n;
    }
    free(texts);
    free(lens);
    free(out);
}

static void *worker_main(void *arg)
{
    rg_embedder *em = arg;
    embed_request *batch[64];
    pthread_mutex_lock(&em->mu);
    for (;;) {
        while (!em->stopping && !em->queues[0].count && !em->queues[1].count)
            pthread_cond_wait(&em->work, &em->mu);
        request_fifo *q = em->queues[1].count ? &em->queues[1] : &em->queues[0];
        if (!q->count)
            break; /* stopping and drained */
        size_t nb = 0, budget = 0;
        batch[nb++] = fifo_pop(q);
        budget = batch[0]->cost;
        while (nb < 64 && q->head && q->head->side == batch[0]->side &&
               budget + q->head->cost <= em->opts.batch_tokens) {
            budget += q->head->cost;
            batch[nb++] = fifo_pop(q);
        }
        pthread_mutex_unlock(&em->mu);
        run_batch(em, batch, nb);
        pthread_mutex_lock(&em->mu);
        for (size_t i = 0; i < nb; i++)
            batch[i]->done = 1;
        pthread_cond_broadcast(&em->ready);
    }
    pthread_mutex_unlock(&em->mu);
    return NULL;
}

rg_status embedder_start(const char *model_dir, const rg_embedder_opts *o, rg_embedder **out, rg_err *e)
{
    rg_embedder *em = calloc(1, sizeof *em);
    if (!em)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    em->opts = *o;
    if (!em->opts.queue_capacity || !em->opts.batch_tokens) {
        free(em);
        return rg_error(e, RG_ERR_INVALID, "embedder queue capacity and batch budget must be positive");
    }
    rg_encoder_opts eo;
    encoder_opts_default(&eo);
    eo.device = o->device;
    rg_status st = encoder_load_opts(model_dir, &eo, &em->enc, e);
    if (st) {
        free(em);
        return st;
    }
    /* Name the model by its directory, without a trailing slash. */
    snprintf(em->model_id, sizeof em->model_id, "%s", model_dir);
    size_t len = strlen(em->model_id);
    while (len > 1 && em->model_id[len - 1] == '/')
        em->model_id[--len] = '\0';
    memmove(em->model_id, fs_basename(em->model_id), strlen(fs_basename(em->model_id)) + 1);
    /* a GGUF file is named without its extension, as the generator's */
    len = strlen(em->model_id);
    if (len > 5 && strcmp(em->model_id + len - 5, ".gguf") == 0)
        em->model_id[len - 5] = '\0';
    pthread_mutex_init(&em->mu, NULL);
    pthread_cond_init(&em->work, NULL);
    pthread_cond_init(&em->ready, NULL);
    if (pthread_create(&em->worker, NULL, worker_main, em) != 0) {
        encoder_free(em->enc);
        free(em);
        return rg_error(e, RG_ERR_INTERNAL, "cannot start the embedder thread");
    }
    *out = em;
    return RG_OK;
}

void embedder_stop(rg_embedder *em)
{
    if (!em)
        return;
    pthread_mutex_lock(&em->mu);
    em->stopping = 1;
    pthread_cond_broadcast(&em->work);
    pthread_mutex_unlock(&em->mu);
    pthread_join(em->worker, NULL);
    pthread_mutex_destroy(&em->mu);
    pthread_cond_destroy(&em->work);
    pthread_cond_destroy(&em->ready);
    encoder_free(em->enc);
    free(em);
}

rg_status embedder_embed(rg_embedder *em, const char *const *texts, const size_t *lens, size_t n, rg_trunc_side side,
                         int interactive, float *out, size_t *tokens, rg_err *e)
{
    if (tokens)
        *tokens = 0;
    if (n == 0)
        return RG_OK;
    embed_request r = {.texts = texts, .lens = lens, .n = n, .side = side, .out = out};
    r.cost = estimate_tokens(em, &r);
    request_fifo *q = &em->queues[interactive ? 1 : 0];
    pthread_mutex_lock(&em->mu);
    if (em->stopping) {
        pthread_mutex_unlock(&em->mu);
        return rg_error(e, RG_ERR_BUSY, "the embedder is shutting down");
    }
    if (q->count >= em->opts.queue_capacity) {
        pthread_mutex_unlock(&em->mu);
        return rg_error(e, RG_ERR_BUSY, "the embedding queue is full (%zu requests); retry later", q->count);
    }
    fifo_push(q, &r);
    pthread_cond_signal(&em->work);
    while (!r.done)
        pthread_cond_wait(&em->ready, &em->mu);
    pthread_mutex_unlock(&em->mu);
    if (r.status) {
        if (e)
            *e = r.err;
        return r.status;
    }
    if (tokens)
        *tokens = r.tokens;
    return RG_OK;
}

size_t embedder_dim(const rg_embedder *em)
{
    return encoder_dim(em->enc);
}

size_t embedder_max_tokens(const rg_embedder *em)
{
    return encoder_max_tokens(em->enc);
}

const rg_tokenizer *embedder_tokenizer(const rg_embedder *em)
{
    return encoder_tokenizer(em->enc);
}

const char *embedder_model_id(const rg_embedder *em)
{
    return em->model_id;
}

rg_device embedder_device(const rg_embedder *em) { return encoder_device(em->enc); }
const char *embedder_device_desc(const rg_embedder *em) { return encoder_device_desc(em->enc); }
