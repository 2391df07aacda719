/* Streaming completions: server-sent events in OpenAI's chunk format, read
 * from a sequence's token channel by libmicrohttpd's content callback.
 *
 * Chat: a first chunk with delta {"role":"assistant","content":""}, one
 * chunk per piece of text with delta {"content":...}, a last chunk with an
 * empty delta and the finish_reason, with stream_options.include_usage a
 * chunk with "choices": [] and the usage, then "data: [DONE]". Completions:
 * chunks with choices[0].text, the last with finish_reason.
 *
 * When the sequence has nothing new the callback parks the connection
 * (completions_wait.c) and returns 0; the engine's on_output resumes it and
 * libmicrohttpd calls again. So a waiting stream holds no HTTP thread: with
 * a blocking wait instead, every stream queued behind a full batch stalled
 * the running streams that share its thread. When the client goes away
 * libmicrohttpd destroys the response, and stream_free cancels the
 * sequence: the engine frees its cache at the next step.
 *
 * A sequence may wait long for its first token (queued behind a full
 * batch, a long prompt's prefill, a slow CPU). A stream quiet for a quarter
 * of --idle-timeout (at most 15 s) sends an SSE comment (": keep-alive"),
 * which clients skip: proxies keep the stream, and libmicrohttpd's idle
 * timeout, which runs whenever the connection is not parked, never fires. */
#include <stdlib.h>
#include <string.h>

#include "api/completions.h"
#include "api/server.h"
#include "common/fs.h"

#define STREAM_WAIT_MS 200 /* a blocking read's wait, when nothing can be parked (shutdown) */
#define STREAM_KEEPALIVE_MAX_MS 15000

typedef struct completion_stream_state {
    rg_generator *g;
    rg_gen_seq *seq;
    rg_completion_wait *cw; /* owns seq */
    struct MHD_Connection *conn;
    rg_completion c;
    rg_gen_output out;
    rg_buf pending; /* SSE bytes not yet handed to libmicrohttpd */
    size_t sent;
    int64_t quiet_since_us; /* when bytes were last handed to libmicrohttpd */
    int64_t keepalive_us;   /* send a comment after this long without bytes */
    size_t text_sent; /* completion text streamed so far (logprobs text_offset) */
    int started;      /* the chat role chunk is out */
    int done;         /* [DONE] is queued */
} completion_stream_state;

static cJSON *chunk_base(const completion_stream_state *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->c.id);
    cJSON_AddStringToObject(o, "object", s->c.chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)s->c.created);
    cJSON_AddStringToObject(o, "model", s->c.model);
    return o;
}

/* Queues "data: JSON\n\n" (takes o). Returns -1 when out of memory. */
static int emit(completion_stream_state *s, cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    rg_err e;
    int rc = text && !rg_buf_append_str(&s->pending, "data: ", &e) && !rg_buf_append_str(&s->pending, text, &e) &&
                     !rg_buf_append_str(&s->pending, "\n\n", &e)
                 ? 0
                 : -1;
    free(text);
    return rc;
}

/* One chunk: text (may be empty), the finish reason or NULL, the role on
 * the first chat chunk. */
static int emit_choice(completion_stream_state *s, const char *text, const char *finish, int role)
{
    cJSON *o = chunk_base(s);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    if (s->c.chat) {
        cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
        if (role)
            cJSON_AddStringToObject(delta, "role", "assistant");
        if (text)
            cJSON_AddStringToObject(delta, "content", text);
    } else {
        cJSON_AddStringToObject(ch, "text", text ? text : "");
    }
    if (s->c.logprobs && s->out.n_tokens) {
        cJSON_AddItemToObject(ch, "logprobs",
                              completion_logprobs_json(&s->c, generator_tokenizer(s->g), &s->out, s->text_sent));
    } else {
        cJSON_AddNullToObject(ch, "logprobs");
    }
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    if (s->c.include_usage)
        cJSON_AddNullToObject(o, "usage");
    return emit(s, o);
}

static int emit_end(completion_stream_state *s)
{
    rg_err e;
    if (s->out.finish == RG_GEN_ERROR || s->out.finish == RG_GEN_CANCELLED) {
        /* mid-stream failures are told as an error event, as OpenAI does */
        rg_err err = s->out.err;
        const char *type = NULL;
        unsigned code = 0;
        if (s->out.finish == RG_GEN_CANCELLED && completion_wait_client_gone(s->cw)) {
            /* the waiter saw the socket hang up (or half-close) while the
             * stream was parked: 499 as nginx logs it, if anyone reads it */
            rg_error(&err, RG_ERR_INVALID, "the client closed the connection");
            type = "client_closed_request";
            code = 499;
        } else if (s->out.finish == RG_GEN_CANCELLED) {
            rg_error(&err, RG_ERR_BUSY, "the server is shutting down");
        }
        if (!type) {
            type = rg_status_name(err.status);
            code = http_status_for(err.status);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON *eo = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(eo, "message", err.msg);
        cJSON_AddStringToObject(eo, "type", type);
        cJSON_AddNumberToObject(eo, "code", code);
        if (emit(s, o))
            return -1;
    } else {
        if (emit_choice(s, s->c.chat ? NULL : "", completion_finish_reason(s->out.finish), 0))
            return -1;
        if (s->c.include_usage) {
            cJSON *o = chunk_base(s);
            cJSON_AddArrayToObject(o, "choices");
            cJSON *u = cJSON_AddObjectToObject(o, "usage");
            cJSON_AddNumberToObject(u, "prompt_tokens", (double)s->out.prompt_tokens);
            cJSON_AddNumberToObject(u, "completion_tokens", (double)s->out.completion_tokens);
            cJSON_AddNumberToObject(u, "total_tokens", (double)(s->out.prompt_tokens + s->out.completion_tokens));
            if (emit(s, o))
                return -1;
        }
    }
    s->done = 1;
    return rg_buf_append_str(&s->pending, "data: [DONE]\n\n", &e) ? -1 : 0;
}

static ssize_t stream_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    completion_stream_state *s = ctx;
    (void)pos;
    for (;;) {
        if (s->sent < s->pending.len) {
            size_t n = s->pending.len - s->sent;
            if (n > max)
                n = max;
            memcpy(buf, s->pending.data + s->sent, n);
            s->sent += n;
            if (s->sent == s->pending.len) {
                rg_buf_reset(&s->pending);
                s->sent = 0;
            }
            s->quiet_since_us = clock_mono_us();
            return (ssize_t)n;
        }
        if (s->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (s->c.chat && !s->started) {
            s->started = 1;
            if (emit_choice(s, "", NULL, 1))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        completion_wait_arm(s->cw); /* before looking: output after this resumes a park */
        int got = generator_read(s->seq, 0, &s->out);
        if (got < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (got == 0) {
            int64_t keepalive_at = s->quiet_since_us + s->keepalive_us;
            if (clock_mono_us() >= keepalive_at) {
                rg_err e;
                if (rg_buf_append_str(&s->pending, ": keep-alive\n\n", &e))
                    return MHD_CONTENT_READER_END_WITH_ERROR;
                continue;
            }
            if (completion_wait_suspend(s->cw, s->conn, keepalive_at) == 0)
                return 0; /* parked: libmicrohttpd calls again once resumed */
            /* shutting down, nothing can be parked: end the sequence as
             * the parked ones are ended, and wait here for that */
            generator_cancel(s->seq);
            if ((got = generator_read(s->seq, STREAM_WAIT_MS, &s->out)) <= 0)
                return got < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : 0;
        }
        if (s->out.text.len || s->out.n_tokens) {
            if (emit_choice(s, s->out.text.data ? s->out.text.data : "", NULL, 0))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            s->text_sent += s->out.text.len;
            gen_output_clear(&s->out);
        }
        if (s->out.finish != RG_GEN_RUNNING && emit_end(s))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void stream_free(void *ctx)
{
    completion_stream_state *s = ctx;
    completion_wait_free(s->cw); /* cancels the sequence when the client left early */
    gen_output_free(&s->out);
    rg_buf_free(&s->pending);
    free(s);
}

void completion_stream(rg_request *r, rg_completion_wait *cw, const rg_completion *c)
{
    completion_stream_state *s = calloc(1, sizeof *s);
    if (!s) {
        completion_wait_free(cw);
        http_error(r, 500, "internal_error", "out of memory");
        return;
    }
    s->g = r->server->generator;
    s->seq = completion_wait_seq(cw);
    s->cw = cw;
    s->conn = r->conn;
    s->c = *c;
    s->quiet_since_us = clock_mono_us();
    s->keepalive_us = (int64_t)r->server->cfg.idle_timeout_s * 250000;
    if (s->keepalive_us > (int64_t)STREAM_KEEPALIVE_MAX_MS * 1000)
        s->keepalive_us = (int64_t)STREAM_KEEPALIVE_MAX_MS * 1000;
    gen_output_init(&s->out);
    rg_buf_init(&s->pending, 0);
    r->res.status = 200;
    r->res.content_type = "text/event-stream";
    r->res.stream_read = stream_read;
    r->res.stream_free = stream_free;
    r->res.stream_ctx = s;
}
