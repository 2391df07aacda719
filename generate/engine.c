#include "generate/engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fs.h"
#include "generate/json_mode.h"

/* One sequence, shared by the worker and the caller's handle; freed by
 * whichever of the two lets go last (refs). Fields marked (worker) are only
 * touched by the worker thread; the rest under g->mu. */
struct rg_gen_seq {
    rg_generator *g;
    int refs;
    pthread_cond_t changed; /* new output or finished */
    atomic_int cancel;

    /* request (copied) */
    int32_t *prompt;
    size_t n_prompt, max_tokens;
    rg_sampling_params sampling;
    char *stop[GEN_MAX_STOP];
    size_t stop_len[GEN_MAX_STOP], n_stop, max_stop_len;
    int logprobs;
    size_t top_logprobs;
    int json;        /* JSON mode: the text is one JSON object */
    rg_json_schema *schema; /* ... that this schema allows (owned), or NULL: any object */
    void (*on_finish)(void *ctx); /* (under g->mu) cleared once called or released */
    void *on_finish_ctx;
    void (*on_output)(void *ctx); /* (under g->mu) cleared when released */
    void *on_output_ctx;

    /* worker state (worker) */
    rg_kv_cache *kv; /* allocated at the first prefill chunk */
    size_t kv_reserved;
    size_t prefilled; /* prompt tokens in the cache; < n_prompt while prefilling */
    rg_sampler *sampler;
    rg_bpe_stream stream;
    rg_buf held;     /* decoded text not yet emitted (may start a stop string) */
    int32_t next_id; /* sampled, not yet in the cache */
    rg_gen_token pick; /* this step's choice (pick_tokens), logprobs when asked */
    int hit_stop;    /* a stop string ended it: nothing more is emitted */
    rg_json_prefix json_at; /* JSON mode: the text so far, as far as the grammar goes */
    size_t generated;

    /* channel (under g->mu) */
    rg_buf out;           /* final text not yet read */
    rg_gen_token *tokens; /* token records not yet read */
    size_t n_tokens, cap_tokens;
    rg_gen_finish finish;
    rg_err err;
    int oom; /* the channel could not grow: the sequence ended in error */

    struct rg_gen_seq *next; /* queue / running list link */
};

struct rg_generator {
    rg_decoder *dec;
    rg_bpe *tok;
    rg_gen_opts opts;
    char model_id[256];
    rg_chat_template chat;
    rg_err chat_err;
    int chat_ok;
    size_t n_vocab, n_ctx;
    size_t kv_budget; /* tokens */
    int32_t eos, eot;

    pthread_t worker;
    int started; /* the worker runs; mu and work are initialised */
    pthread_mutex_t mu;
    pthread_cond_t work;
    rg_gen_seq *queue_head, *queue_tail;
    size_t queued;
    int stopping;

    /* (worker) */
    rg_gen_seq **running; /* admitted, oldest first: prefilling and decoding */
    size_t n_running;
    float *logits;  /* max_seqs * n_vocab */
    /* 2 n_vocab per decoder host thread: raw logits kept for logprobs, and
     * for a JSON-mode sequence's second draw */
    float *scratch;
    rg_json_vocab json_vocab;

    /* stats (under mu) */
    size_t kv_used, n_running_shared, n_prefilling_shared;
    uint64_t finished, cancelled, tokens_generated, steps;
};

void generator_opts_default(rg_gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->queue_capacity = 64;
    o->max_seqs = 16;
    o->kv_cache_mb = 2048;
    o->prefill_tokens = 512;
    /* Enough for any answer a chat user waits for, small enough that 16
     * sequences of a small model fit the default KV budget together. */
    o->default_max_tokens = 2048;
    o->kv_type = RG_KV_F16;
    o->device = RG_DEVICE_CPU;
}

/* ---- output channel ------------------------------------------------------- */

void gen_output_init(rg_gen_output *o)
{
    memset(o, 0, sizeof *o);
    rg_buf_init(&o->text, 0);
}

void gen_output_free(rg_gen_output *o)
{
    rg_buf_free(&o->text);
    free(o->tokens);
    memset(o, 0, sizeof *o);
}

void gen_output_clear(rg_gen_output *o)
{
    rg_buf_reset(&o->text);
    o->n_tokens = 0;
}

static int tokens_push(rg_gen_token **arr, size_t *n, size_t *cap, const rg_gen_token *t, size_t count)
{
    if (*n + count > *cap) {
        size_t c = *cap ? *cap : 16;
        while (c < *n + count)
            c *= 2;
        rg_gen_token *na = realloc(*arr, c * sizeof *na);
        if (!na)
            return -1;
        *arr = na;
        *cap = c;
    }
    memcpy(*arr + *n, t, count * sizeof *t);
    *n += count;
    return 0;
}

static void seq_free(rg_gen_seq *s)
{
    free(s->prompt);
    for (size_t i = 0; i < s->n_stop; i++)
        free(s->stop[i]);
    kv_cache_free(s->kv);
    sampler_free(s->sampler);
    json_schema_free(s->schema);
    rg_buf_free(&s->held);
    rg_buf_free(&s->out);
    free(s->tokens);
    pthread_cond_destroy(&s->changed);
    free(s);
}

/* The channel has something new for generator_read (under g->mu). */
static void seq_changed(rg_gen_seq *s)
{
    pthread_cond_broadcast(&s->changed);
    if (s->on_output)
        s->on_output(s->on_output_ctx);
}

/* The sequence has its finish reason (under g->mu): wakes its reader and
 * tells its owner, once. */
static void seq_finished(rg_gen_seq *s)
{
    seq_changed(s);
    if (s->on_finish) {
        void (*fn)(void *) = s->on_finish;
        s->on_finish = NULL;
        fn(s->on_finish_ctx);
    }
}

/* Drops one reference (under g->mu). */
static void seq_unref(rg_gen_seq *s)
{
    if (--s->refs == 0)
        seq_free(s);
}

/* Emits final text to the channel (worker, takes g->mu). */
static void channel_text(rg_generator *g, rg_gen_seq *s, const char *text, size_t n)
{
    if (!n)
        return;
    pthread_mutex_lock(&g->mu);
    rg_err e;
    if (rg_buf_append(&s->out, text, n, &e) != RG_OK)
        s->oom = 1;
    seq_changed(s);
    pthread_mutex_unlock(&g->mu);
}

static void channel_token(rg_generator *g, rg_gen_seq *s, const rg_gen_token *t)
{
    pthread_mutex_lock(&g->mu);
    if (tokens_push(&s->tokens, &s->n_tokens, &s->cap_tokens, t, 1))
        s->oom = 1;
    pthread_mutex_unlock(&g->mu);
}

/* ---- stop strings ---------------------------------------------------------- */

/* Longest suffix of text that is a proper prefix of some stop string. */
static size_t stop_prefix_suffix(const rg_gen_seq *s, const char *text, size_t n)
{
    size_t best = 0;
    for (size_t i = 0; i < s->n_stop; i++) {
        size_t L = s->stop_len[i];
        size_t k = L - 1 < n ? L - 1 : n;
        for (; k > best; k--)
            if (memcmp(text + n - k, s->stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Earliest occurrence of any stop string in text[0..n), or n. */
static size_t stop_find(const rg_gen_seq *s, const char *text, size_t n)
{
    size_t first = n;
    for (size_t i = 0; i < s->n_stop; i++) {
        size_t L = s->stop_len[i];
        for (size_t p = 0; p + L <= n && p < first; p++)
            if (memcmp(text + p, s->stop[i], L) == 0) {
                first = p;
                break;
            }
    }
    return first;
}

/* Moves what is safe to emit from held to the channel. Returns 1 when a
 * stop string was found (the sequence ends; nothing from it on is emitted). */
static int flush_held(rg_generator *g, rg_gen_seq *s, int final)
{
    size_t n = s->held.len;
    if (!n)
        return 0;
    size_t stop = s->n_stop ? stop_find(s, s->held.data, n) : n;
    if (stop < n) {
        channel_text(g, s, s->held.data, stop);
        rg_buf_reset(&s->held);
        return 1;
    }
    size_t keep = final ? 0 : stop_prefix_suffix(s, s->held.data, n);
    channel_text(g, s, s->held.data, n - keep);
    memmove(s->held.data, s->held.data + n - keep, keep);
    s->held.len = keep;
    s->held.data[keep] = '\0';
    return 0;
}

/* ---- the worker ------------------------------------------------------------ */

static size_t seq_need(const rg_generator *g, const rg_gen_seq *s)
{
    return s->n_prompt + s->max_tokens;
}

/* Ends a running sequence (worker): frees its cache, reports, unrefs. */
static void retire(rg_generator *g, rg_gen_seq *s, rg_gen_finish why, const rg_err *err)
{
    if (why == RG_GEN_STOP || why == RG_GEN_LENGTH) {
        /* the rest of the text: a held tail that did not become a stop
         * string, and an incomplete character (as U+FFFD) */
        rg_err e;
        if (!s->hit_stop) {
            if (bpe_stream_finish(g->tok, &s->stream, &s->held, &e) != RG_OK)
                s->oom = 1;
            flush_held(g, s, 1);
        }
    }
    kv_cache_free(s->kv);
    s->kv = NULL;
    pthread_mutex_lock(&g->mu);
    g->kv_used -= s->kv_reserved;
    s->kv_reserved = 0;
    /* the counts stay consistent with kv_used for anyone reading stats
     * before the step ends (publish_counts recounts then) */
    if (g->n_running_shared)
        g->n_running_shared--;
    if (s->oom && why != RG_GEN_CANCELLED) {
        why = RG_GEN_ERROR;
        rg_error(&s->err, RG_ERR_NOMEM, "out of memory for the generated text");
    } else if (err) {
        s->err = *err;
    }
    s->finish = why;
    if (why == RG_GEN_CANCELLED)
        g->cancelled++;
    else
        g->finished++;
    seq_finished(s);
    seq_unref(s);
    pthread_mutex_unlock(&g->mu);
}

/* JSON mode's draw, as llama.cpp samples with a grammar: the token drawn
 * from the whole distribution is kept when the grammar allows it (most
 * steps: one check of one token); otherwise the raw logits (raw, a copy
 * taken before the sampler used row as scratch) are masked into row, every
 * token the grammar forbids at -inf, and the draw is made again. For a
 * greedy request that is the best allowed token; for a sampled one, a
 * token the grammar allows with its share of the allowed mass (drawn, then
 * redrawn from the rest: P(t) = p(t) + (1 - p(allowed)) p(t) / p(allowed)
 * = p(t) / p(allowed), exact without top_k / top_p / min_p, whose first
 * cut is over all tokens). */
static int32_t pick_json(rg_generator *g, rg_gen_seq *s, int32_t id, float *row, const float *raw)
{
    if (json_token_allowed(&g->json_vocab, &s->json_at, id))
        return id;
    if (!json_mask_logits(&g->json_vocab, &s->json_at, raw, row))
        return -1; /* the schema cannot be completed (take_token says why) */
    id = sampler_sample(s->sampler, row);
    if (json_token_allowed(&g->json_vocab, &s->json_at, id))
        return id;
    /* the draw's rounding fell past the last allowed token's share (it
     * walks zero-probability candidates last): the best allowed instead
     * (the sampler's bias, penalties and temperature leave -inf as -inf,
     * so row still holds the mask) */
    int32_t best = -1;
    for (size_t i = 0; i < g->n_vocab; i++)
        if (row[i] != -INFINITY && (best < 0 || row[i] > row[best]))
            best = (int32_t)i;
    return best >= 0 ? best : id;
}

/* Chooses s's next token from its logits row (used as scratch by the
 * sampler) into s->pick, with its log-probabilities when asked (from a copy
 * of the raw row in scratch[0..n_vocab)). Touches nothing but s, so the
 * running sequences are picked in parallel. */
static void pick_token(rg_generator *g, rg_gen_seq *s, float *row, float *scratch)
{
    float *raw = scratch + g->n_vocab;
    if (s->logprobs)
        memcpy(scratch, row, g->n_vocab * sizeof *row);
    if (s->json)
        memcpy(raw, row, g->n_vocab * sizeof *row);
    s->pick.id = sampler_sample(s->sampler, row);
    if (s->json)
        s->pick.id = pick_json(g, s, s->pick.id, row, raw);
    if (s->logprobs) {
        s->pick.n_top = s->top_logprobs;
        sampling_logprobs(scratch, g->n_vocab, s->pick.id, &s->pick.logprob, s->pick.top, s->pick.n_top);
    }
}

typedef struct pick_job {
    rg_generator *g;
    rg_gen_seq **seq;
    const size_t *row; /* seq[k]'s logits are g->logits row row[k] */
    size_t n;
    atomic_size_t next; /* the next k to pick */
} pick_job;

static void pick_job_fn(void *ctx, size_t worker, size_t n_workers)
{
    (void)n_workers;
    pick_job *j = ctx;
    rg_generator *g = j->g;
    size_t k;
    while ((k = atomic_fetch_add(&j->next, 1)) < j->n)
        pick_token(g, j->seq[k], g->logits + j->row[k] * g->n_vocab, g->scratch + 2 * worker * g->n_vocab);
}

/* Picks the next token of n sequences. A draw at the default temperature
 * costs ~0.6 ms over a 49K vocabulary (a softmax and a partial sort; up to
 * ~2.3 ms when it walks into the tail, model/sampling.c draw), ~10 ms for
 * 16 sequences in a row: more than a GPU's whole decode step, so the
 * sequences are spread over the decoder's host threads. Each sequence's
 * result depends only on its own row and sampler, not on the thread that
 * picks it. */
static void pick_tokens(rg_generator *g, rg_gen_seq **seq, const size_t *row, size_t n)
{
    pick_job j = {.g = g, .seq = seq, .row = row, .n = n};
    atomic_init(&j.next, 0);
    if (n > 1)
        decoder_host_parallel(g->dec, pick_job_fn, &j);
    else
        pick_job_fn(&j, 0, 1);
}

/* Records s's picked token, detokenizes it and decides whether the
 * sequence goes on. Returns the finish reason, RG_GEN_RUNNING to
 * continue. */
static rg_gen_finish take_token(rg_generator *g, rg_gen_seq *s)
{
    int32_t id = s->pick.id;
    if (id < 0) {
        rg_error(&s->err, RG_ERR_INVALID,
                 "no token can continue the JSON schema's object (a required property nested past %d levels?)",
                 JSON_MODE_MAX_DEPTH);
        return RG_GEN_ERROR;
    }
    sampler_accept(s->sampler, id);
    s->generated++;
    s->next_id = id;
    if (s->logprobs)
        channel_token(g, s, &s->pick);
    pthread_mutex_lock(&g->mu);
    g->tokens_generated++;
    pthread_mutex_unlock(&g->mu);
    if (id == g->eos || id == g->eot)
        return RG_GEN_STOP;
    if (s->json) {
        size_t n;
        const char *b = bpe_token_bytes(g->tok, id, &n);
        /* pick_json allowed it, so this cannot fail; if it ever did, the
         * state would no longer be the text's: end rather than go on */
        if (!json_prefix_feed(&s->json_at, b, b ? n : 0)) {
            rg_error(&s->err, RG_ERR_INTERNAL, "JSON mode lost track of the answer after token %d", (int)id);
            return RG_GEN_ERROR;
        }
    }
    rg_err e;
    if (bpe_stream_step(g->tok, &s->stream, id, &s->held, &e) != RG_OK)
        s->oom = 1;
    if (flush_held(g, s, 0)) {
        s->hit_stop = 1;
        return RG_GEN_STOP;
    }
    if (s->json && json_prefix_done(&s->json_at))
        return RG_GEN_STOP; /* the object is closed: only an end token could follow */
    if (s->generated >= s->max_tokens)
        return RG_GEN_LENGTH;
    return RG_GEN_RUNNING;
}

/* Takes the next admissible queued sequence (under mu), or NULL. Strictly
 * in order: a large request at the head is not overtaken by small ones
 * behind it, so it cannot be starved. */
static rg_gen_seq *admit_one(rg_generator *g)
{
    rg_gen_seq *s = g->queue_head;
    if (!s || g->n_running >= g->opts.max_seqs)
        return NULL;
    if (g->kv_used + seq_need(g, s) > g->kv_budget)
        return NULL; /* waits until running sequences free their caches */
    g->queue_head = s->next;
    if (!g->queue_head)
        g->queue_tail = NULL;
    g->queued--;
    s->next = NULL;
    s->kv_reserved = seq_need(g, s);
    g->kv_used += s->kv_reserved;
    return s;
}

/* Removes cancelled sequences still waiting in the queue (under mu). */
static void drop_cancelled_queued(rg_generator *g)
{
    rg_gen_seq **pp = &g->queue_head, *last = NULL;
    while (*pp) {
        rg_gen_seq *s = *pp;
        if (atomic_load(&s->cancel)) {
            *pp = s->next;
            g->queued--;
            s->finish = RG_GEN_CANCELLED;
            g->cancelled++;
            seq_finished(s);
            seq_unref(s);
        } else {
            last = s;
            pp = &s->next;
        }
    }
    g->queue_tail = last;
}

/* A sequence's cache and sampler, made at its first prefill chunk. 0 on
 * failure (s is retired then). */
static int ready_to_prefill(rg_generator *g, rg_gen_seq *s)
{
    if (s->kv)
        return 1;
    rg_err e;
    rg_err_clear(&e);
    rg_status st = kv_cache_alloc(g->dec, s->kv_reserved, g->opts.kv_type, &s->kv, &e);
    if (!st)
        st = sampler_new(&s->sampling, g->n_vocab, &s->sampler, &e);
    if (st) {
        retire(g, s, RG_GEN_ERROR, &e);
        return 0;
    }
    return 1;
}

/* Spends this step's prefill budget on the admitted prompts, oldest first:
 * the next chunk of each, all in one decoder_prefill_batch call (the
 * weights read once for every prompt of the step; each token's results are
 * those of a prefill of its own, so chunking and batching change no output).
 * A prompt whose last chunk is in takes its first token from that chunk's
 * logits. */
static void prefill_step(rg_generator *g)
{
    size_t budget = g->opts.prefill_tokens, n = 0, n_all = g->n_running;
    rg_kv_cache *kvs[n_all ? n_all : 1];
    const int32_t *ids[n_all ? n_all : 1];
    size_t lens[n_all ? n_all : 1], at[n_all ? n_all : 1];
    for (size_t i = 0; i < n_all && budget > 0; i++) {
        rg_gen_seq *s = g->running[i];
        if (s->prefilled >= s->n_prompt)
            continue;
        if (!ready_to_prefill(g, s)) {
            g->running[i] = NULL;
            continue;
        }
        size_t m = s->n_prompt - s->prefilled;
        m = m < budget ? m : budget;
        kvs[n] = s->kv;
        ids[n] = s->prompt + s->prefilled;
        lens[n] = m;
        at[n++] = i;
        budget -= m;
    }
    rg_err e;
    rg_err_clear(&e);
    /* g->logits is free until this step's decode */
    rg_status st = n ? decoder_prefill_batch(g->dec, kvs, ids, lens, n, g->logits, &e) : RG_OK;
    rg_gen_seq *done[n ? n : 1];
    size_t row[n ? n : 1], done_at[n ? n : 1], n_done = 0;
    for (size_t k = 0; k < n; k++) {
        rg_gen_seq *s = g->running[at[k]];
        if (st) {
            retire(g, s, RG_GEN_ERROR, &e);
            g->running[at[k]] = NULL;
            continue;
        }
        s->prefilled += lens[k];
        if (s->prefilled < s->n_prompt)
            continue;
        sampler_add_prompt(s->sampler, s->prompt, s->n_prompt);
        done[n_done] = s;
        row[n_done] = k;
        done_at[n_done++] = at[k];
    }
    pick_tokens(g, done, row, n_done);
    for (size_t k = 0; k < n_done; k++) {
        rg_gen_finish f = take_token(g, done[k]);
        if (f != RG_GEN_RUNNING) {
            retire(g, done[k], f, NULL);
            g->running[done_at[k]] = NULL;
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < n_all; i++)
        if (g->running[i])
            g->running[kept++] = g->running[i];
    g->n_running = kept;
}

/* One token for every sequence whose prompt is all in. */
static void decode_step(rg_generator *g)
{
    size_t n_all = g->n_running, n = 0;
    rg_kv_cache *kvs[n_all ? n_all : 1];
    int32_t ids[n_all ? n_all : 1];
    size_t at[n_all ? n_all : 1];
    for (size_t i = 0; i < n_all; i++) {
        rg_gen_seq *s = g->running[i];
        if (s->prefilled < s->n_prompt)
            continue;
        kvs[n] = s->kv;
        ids[n] = s->next_id;
        at[n++] = i;
    }
    if (!n)
        return;
    rg_err e;
    rg_err_clear(&e);
    rg_status st = decoder_decode(g->dec, kvs, ids, n, g->logits, &e);
    rg_gen_seq *seq[n];
    size_t row[n];
    for (size_t k = 0; k < n; k++) {
        seq[k] = g->running[at[k]];
        row[k] = k;
    }
    if (!st)
        pick_tokens(g, seq, row, n);
    for (size_t k = 0; k < n; k++) {
        rg_gen_seq *s = seq[k];
        rg_gen_finish f = st ? RG_GEN_ERROR : take_token(g, s);
        if (f != RG_GEN_RUNNING) {
            retire(g, s, f, st ? &e : NULL);
            g->running[at[k]] = NULL;
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < n_all; i++)
        if (g->running[i])
            g->running[kept++] = g->running[i];
    g->n_running = kept;
    pthread_mutex_lock(&g->mu);
    g->steps++;
    pthread_mutex_unlock(&g->mu);
}

static void publish_counts(rg_generator *g)
{
    size_t prefilling = 0;
    for (size_t i = 0; i < g->n_running; i++)
        prefilling += g->running[i]->prefilled < g->running[i]->n_prompt;
    pthread_mutex_lock(&g->mu);
    g->n_running_shared = g->n_running;
    g->n_prefilling_shared = prefilling;
    pthread_mutex_unlock(&g->mu);
}

static void *worker_main(void *arg)
{
    rg_generator *g = arg;
    for (;;) {
        pthread_mutex_lock(&g->mu);
        drop_cancelled_queued(g);
        while (!g->stopping && !g->n_running && !g->queue_head) {
            pthread_cond_wait(&g->work, &g->mu);
            drop_cancelled_queued(g);
        }
        if (g->stopping) {
            pthread_mutex_unlock(&g->mu);
            break;
        }
        /* admissions reserve a slot and KV room; the prompt is prefilled
         * below, outside the lock, in chunks */
        rg_gen_seq *s;
        while ((s = admit_one(g)) != NULL) {
            s->prefilled = 0;
            g->running[g->n_running++] = s;
        }
        g->n_running_shared = g->n_running;
        pthread_mutex_unlock(&g->mu);

        /* cancelled running sequences give their caches back now */
        size_t kept = 0;
        for (size_t i = 0; i < g->n_running; i++) {
            rg_gen_seq *r = g->running[i];
            if (atomic_load(&r->cancel))
                retire(g, r, RG_GEN_CANCELLED, NULL);
            else
                g->running[kept++] = r;
        }
        g->n_running = kept;
        prefill_step(g);
        decode_step(g);
        publish_counts(g);
    }
    /* stopping: everything still here is cancelled */
    for (size_t i = 0; i < g->n_running; i++)
        retire(g, g->running[i], RG_GEN_CANCELLED, NULL);
    g->n_running = 0;
    pthread_mutex_lock(&g->mu);
    while (g->queue_head) {
        rg_gen_seq *s = g->queue_head;
        g->queue_head = s->next;
        s->finish = RG_GEN_CANCELLED;
        g->cancelled++;
        seq_finished(s);
        seq_unref(s);
    }
    g->queue_tail = NULL;
    g->queued = 0;
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------- */

static void model_id_from_path(char *out, size_t size, const char *path)
{
    snprintf(out, size, "%s", path);
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/')
        out[--len] = '\0';
    const char *base = fs_basename(out);
    memmove(out, base, strlen(base) + 1);
    len = strlen(out);
    if (len > 5 && strcmp(out + len - 5, ".gguf") == 0)
        out[len - 5] = '\0';
}

/* On a GPU the sequences' caches are allocated as requests come: a budget
 * the device cannot hold would fail requests later, so it is refused at
 * start. What the decoder allocates later besides the caches: the logits
 * of up to max_seqs rows, counted here, and activations for a prefill
 * chunk and cuBLAS's workspace, for which a tenth of the free memory is
 * left. */
static rg_status check_device_memory(const rg_generator *g, rg_err *e)
{
    if (decoder_device(g->dec) != RG_DEVICE_CUDA)
        return RG_OK;
    size_t free_b = 0, total_b = 0;
    rg_status st = decoder_device_memory(g->dec, &free_b, &total_b, e);
    if (st)
        return st;
    size_t room = free_b / 10 * 9, logits = g->opts.max_seqs * g->n_vocab * sizeof(float);
    size_t cache_room = room > logits ? room - logits : 0;
    if (g->opts.kv_cache_mb <= cache_room >> 20)
        return RG_OK;
    return rg_error(e, RG_ERR_INVALID,
                    "a KV cache of %zu MiB does not fit on the GPU: %zu of its %zu MiB are free after the weights, "
                    "%zu MiB at most for the cache (--kv-cache-mb)",
                    g->opts.kv_cache_mb, free_b >> 20, total_b >> 20, cache_room >> 20);
}

rg_status generator_start(const char *model_path, const rg_gen_opts *o, rg_generator **out, rg_err *e)
{
    if (!o->queue_capacity || !o->max_seqs || !o->kv_cache_mb || !o->prefill_tokens)
        return rg_error(e, RG_ERR_INVALID, "generator queue, sequences, KV cache and prefill budget must be positive");
    if (o->max_seqs > 1024)
        return rg_error(e, RG_ERR_INVALID, "at most 1024 sequences at once");
    rg_generator *g = calloc(1, sizeof *g);
    if (!g)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    g->opts = *o;
    rg_decoder_opts dopts = {.threads = o->threads, .device = o->device, .device_set = 1};
    rg_status st = decoder_load(model_path, &dopts, &g->dec, e);
    if (!st)
        st = fs_is_dir(model_path) ? bpe_load_dir(model_path, &g->tok, e) : bpe_load_gguf_path(model_path, &g->tok, e);
    if (st) {
        generator_stop(g);
        return st;
    }
    g->n_vocab = decoder_vocab(g->dec);
    g->n_ctx = decoder_config(g->dec)->n_ctx_train;
    if (bpe_vocab_size(g->tok) > g->n_vocab) {
        generator_stop(g);
        return rg_error(e, RG_ERR_CORRUPT, "%s: the tokenizer has %zu tokens, the model %zu", model_path,
                        bpe_vocab_size(g->tok), g->n_vocab);
    }
    g->eos = bpe_eos_id(g->tok);
    g->eot = bpe_eot_id(g->tok);
    size_t per_token = kv_cache_bytes(g->dec, 1, o->kv_type);
    g->kv_budget = per_token ? (o->kv_cache_mb << 20) / per_token : 0;
    if (g->kv_budget < 16) {
        generator_stop(g);
        return rg_error(e, RG_ERR_INVALID, "a KV cache of %zu MiB holds fewer than 16 tokens of this model",
                        o->kv_cache_mb);
    }
    if ((st = check_device_memory(g, e))) {
        generator_stop(g);
        return st;
    }
    model_id_from_path(g->model_id, sizeof g->model_id, model_path);
    /* the chat template: named, or recognised from the model's */
    size_t bl = 0, el = 0;
    const char *bos = bpe_bos_id(g->tok) >= 0 ? bpe_token_piece(g->tok, bpe_bos_id(g->tok), &bl) : NULL;
    const char *eos = g->eos >= 0 ? bpe_token_piece(g->tok, g->eos, &el) : NULL;
    rg_err ce;
    rg_err_clear(&ce);
    rg_status cst = o->chat_template ? chat_template_named(o->chat_template, bos, eos, &g->chat, &ce)
                                     : chat_template_detect(bpe_chat_template(g->tok), bos, eos, &g->chat, &ce);
    if (cst && o->chat_template) {
        generator_stop(g);
        *e = ce;
        return cst;
    }
    g->chat_ok = cst == RG_OK;
    g->chat_err = ce;
    g->opts.chat_template = NULL; /* not kept: the caller's string */
    g->running = calloc(o->max_seqs, sizeof *g->running);
    g->logits = decoder_logits_alloc(g->dec, o->max_seqs); /* pinned on a GPU */
    g->scratch = malloc(2 * decoder_threads(g->dec) * g->n_vocab * sizeof *g->scratch); /* pick_tokens */
    if (!g->running || !g->logits || !g->scratch) {
        generator_stop(g);
        return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu sequences' logits", o->max_seqs);
    }
    rg_status vst = json_vocab_init(&g->json_vocab, g->tok, g->n_vocab, g->eos, g->eot, e);
    if (vst) {
        generator_stop(g);
        return vst;
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->work, NULL);
    if (pthread_create(&g->worker, NULL, worker_main, g) != 0) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->work);
        generator_stop(g);
        return rg_error(e, RG_ERR_INTERNAL, "cannot start the generator thread");
    }
    g->started = 1;
    *out = g;
    return RG_OK;
}

void generator_stop(rg_generator *g)
{
    if (!g)
        return;
    if (g->started) {
        pthread_mutex_lock(&g->mu);
        g->stopping = 1;
        pthread_cond_broadcast(&g->work);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->worker, NULL);
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->work);
    }
    if (g->dec)
        decoder_logits_free(g->dec, g->logits);
    decoder_free(g->dec);
    json_vocab_free(&g->json_vocab);
    bpe_free(g->tok);
    free(g->running);
    free(g->scratch);
    free(g);
}

const char *generator_model_id(const rg_generator *g)
{
    return g->model_id;
}

size_t generator_context(const rg_generator *g)
{
    return g->n_ctx;
}

rg_device generator_device(const rg_generator *g)
{
    return decoder_device(g->dec);
}

const char *generator_device_desc(const rg_generator *g)
{
    return decoder_device_desc(g->dec);
}

const rg_bpe *generator_tokenizer(const rg_generator *g)
{
    return g->tok;
}

const rg_chat_template *generator_chat_template(const rg_generator *g, rg_err *e)
{
    if (g->chat_ok)
        return &g->chat;
    if (e)
        *e = g->chat_err;
    return NULL;
}

void generator_stats(rg_generator *g, rg_gen_stats *out)
{
    pthread_mutex_lock(&g->mu);
    out->running = g->n_running_shared;
    out->prefilling = g->n_prefilling_shared;
    out->queued = g->queued;
    out->kv_used_tokens = g->kv_used;
    out->kv_budget_tokens = g->kv_budget;
    out->finished = g->finished;
    out->cancelled = g->cancelled;
    out->tokens_generated = g->tokens_generated;
    out->steps = g->steps;
    pthread_mutex_unlock(&g->mu);
}

/* ---- callers ---------------------------------------------------------------- */

rg_status generator_submit(rg_generator *g, const rg_gen_request *req, rg_gen_seq **out, rg_err *e)
{
    *out = NULL;
    if (!req->n_prompt)
        return rg_error(e, RG_ERR_INVALID, "the prompt has no tokens");
    for (size_t i = 0; i < req->n_prompt; i++)
        if (req->prompt[i] < 0 || (size_t)req->prompt[i] >= g->n_vocab)
            return rg_error(e, RG_ERR_INVALID, "prompt token %zu (id %d) is outside the vocabulary", i,
                            (int)req->prompt[i]);
    size_t limit = g->n_ctx < g->kv_budget ? g->n_ctx : g->kv_budget;
    if (req->n_prompt >= limit)
        return rg_error(e, RG_ERR_INVALID,
                        "the prompt has %zu tokens; this model takes at most %zu, prompt and completion together",
                        req->n_prompt, limit);
    size_t max_tokens = req->max_tokens;
    if (!max_tokens) {
        max_tokens = limit - req->n_prompt;
        if (g->opts.default_max_tokens && g->opts.default_max_tokens < max_tokens)
            max_tokens = g->opts.default_max_tokens;
    }
    if (req->n_prompt + max_tokens > limit)
        return rg_error(e, RG_ERR_INVALID,
                        "the prompt (%zu tokens) and max_tokens (%zu) exceed the model's %zu tokens of context",
                        req->n_prompt, max_tokens, limit);
    if (req->n_stop > GEN_MAX_STOP)
        return rg_error(e, RG_ERR_INVALID, "at most %d stop strings", GEN_MAX_STOP);
    if (req->logprobs && req->top_logprobs > GEN_MAX_TOP_LOGPROBS)
        return rg_error(e, RG_ERR_INVALID, "top_logprobs must be at most %d", GEN_MAX_TOP_LOGPROBS);
    rg_status st = sampling_params_check(&req->sampling, e);
    if (!st)
        st = sampling_bias_check(&req->sampling, g->n_vocab, e);
    if (st)
        return st;
    rg_gen_seq *s = calloc(1, sizeof *s);
    if (!s)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    pthread_cond_init(&s->changed, NULL);
    rg_buf_init(&s->held, 0);
    rg_buf_init(&s->out, 0);
    s->g = g;
    s->refs = 2; /* the caller's handle and the engine */
    s->prompt = malloc(req->n_prompt * sizeof *s->prompt);
    if (!s->prompt) {
        seq_free(s);
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a %zu-token prompt", req->n_prompt);
    }
    memcpy(s->prompt, req->prompt, req->n_prompt * sizeof *s->prompt);
    s->n_prompt = req->n_prompt;
    s->max_tokens = max_tokens;
    s->sampling = req->sampling;
    s->logprobs = req->logprobs;
    s->on_finish = req->on_finish;
    s->on_finish_ctx = req->on_finish_ctx;
    s->on_output = req->on_output;
    s->on_output_ctx = req->on_output_ctx;
    s->top_logprobs = req->logprobs ? req->top_logprobs : 0;
    s->json = req->json_object || req->json_schema;
    json_prefix_init(&s->json_at, req->json_schema);
    for (size_t i = 0; i < req->n_stop; i++) {
        if (!req->stop[i] || !req->stop[i][0])
            continue;
        size_t len = strlen(req->stop[i]);
        if (len > GEN_MAX_STOP_BYTES) {
            seq_free(s);
            return rg_error(e, RG_ERR_INVALID, "stop strings may be at most %d bytes", GEN_MAX_STOP_BYTES);
        }
        if (!(s->stop[s->n_stop] = strdup(req->stop[i]))) {
            seq_free(s);
            return rg_error(e, RG_ERR_NOMEM, "out of memory");
        }
        s->stop_len[s->n_stop++] = len;
    }
    bpe_stream_init(&s->stream, 1);
    pthread_mutex_lock(&g->mu);
    if (g->stopping || g->queued >= g->opts.queue_capacity) {
        size_t q = g->queued;
        int stopping = g->stopping;
        pthread_mutex_unlock(&g->mu);
        seq_free(s); /* not s->schema: still the caller's */
        return stopping ? rg_error(e, RG_ERR_BUSY, "the generator is shutting down")
                        : rg_error(e, RG_ERR_BUSY, "the generator is busy (%zu requests waiting); retry later", q);
    }
    if (g->queue_tail)
        g->queue_tail->next = s;
    else
        g->queue_head = s;
    g->queue_tail = s;
    g->queued++;
    s->schema = req->json_schema; /* taken over: submitted */
    pthread_cond_signal(&g->work);
    pthread_mutex_unlock(&g->mu);
    *out = s;
    return RG_OK;
}

/* Moves what the channel holds into out (under mu). */
static int drain(rg_gen_seq *s, rg_gen_output *out)
{
    rg_err e;
    if (s->out.len) {
        if (rg_buf_append(&out->text, s->out.data, s->out.len, &e) != RG_OK)
            return -1;
        rg_buf_reset(&s->out);
    }
    if (s->n_tokens) {
        if (tokens_push(&out->tokens, &out->n_tokens, &out->cap_tokens, s->tokens, s->n_tokens))
            return -1;
        s->n_tokens = 0;
    }
    out->prompt_tokens = s->n_prompt;
    out->completion_tokens = s->generated;
    if (s->finish != RG_GEN_RUNNING) {
        out->finish = s->finish;
        out->err = s->err;
    }
    return 0;
}

int generator_read(rg_gen_seq *s, int timeout_ms, rg_gen_output *out)
{
    rg_generator *g = s->g;
    pthread_mutex_lock(&g->mu);
    struct timespec deadline;
    if (timeout_ms > 0) { /* 0: only what is there (a parked stream's look) */
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    while (timeout_ms != 0 && !s->out.len && !s->n_tokens && s->finish == RG_GEN_RUNNING) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->changed, &g->mu);
        } else if (pthread_cond_timedwait(&s->changed, &g->mu, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    int got = s->out.len || s->n_tokens || s->finish != RG_GEN_RUNNING;
    if (got && drain(s, out))
        got = -1;
    pthread_mutex_unlock(&g->mu);
    return got;
}

void generator_cancel(rg_gen_seq *s)
{
    rg_generator *g = s->g;
    atomic_store(&s->cancel, 1);
    pthread_mutex_lock(&g->mu);
    pthread_cond_signal(&g->work);
    pthread_mutex_unlock(&g->mu);
}

void generator_release(rg_gen_seq *s)
{
    if (!s)
        return;
    rg_generator *g = s->g;
    generator_cancel(s);
    pthread_mutex_lock(&g->mu);
    s->on_finish = NULL;
    s->on_output = NULL;
    seq_unref(s);
    pthread_mutex_unlock(&g->mu);
}

rg_status generator_complete(rg_generator *g, const rg_gen_request *req, rg_gen_output *out, rg_err *e)
{
    rg_gen_seq *s = NULL;
    rg_status st = generator_submit(g, req, &s, e);
    if (st)
        return st;
    while (out->finish == RG_GEN_RUNNING) {
        if (generator_read(s, -1, out) < 0) {
            generator_release(s);
            return rg_error(e, RG_ERR_NOMEM, "out of memory for the generated text");
        }
    }
    generator_release(s);
    if (out->finish == RG_GEN_ERROR) {
        *e = out->err;
        return e->status ? e->status : RG_ERR_INTERNAL;
    }
    return RG_OK;
}
