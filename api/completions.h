/* completions.h - what the two OpenAI generation routes share between the
 * request parser (routes_completions.c) and the server-sent-events stream
 * (completions_stream.c). */
#ifndef RAGD_API_COMPLETIONS_H
#define RAGD_API_COMPLETIONS_H

#include <cjson/cJSON.h>

#include "api/http.h"
#include "generate/engine.h"

/* One generation request as the wire shapes need it. */
typedef struct rg_completion {
    int chat;          /* /v1/chat/completions (else /v1/completions) */
    char id[48];       /* "chatcmpl-..." / "cmpl-..." */
    long long created; /* seconds since the epoch */
    char model[256];
    int include_usage; /* stream_options.include_usage */
    int logprobs;      /* report log-probabilities */
    size_t top_logprobs;
} rg_completion;

/* The OpenAI finish_reason of a finished sequence ("stop", "length"). */
const char *completion_finish_reason(rg_gen_finish f);

/* Log-probabilities of out's tokens in the endpoint's shape: chat
 * {"content":[{token, logprob, bytes, top_logprobs}]}, completions
 * {tokens, token_logprobs, top_logprobs, text_offset}. text_offset counts
 * from text_base. */
cJSON *completion_logprobs_json(const rg_completion *c, const rg_bpe *tok, const rg_gen_output *out,
                                size_t text_base);

typedef struct rg_completion_wait rg_completion_wait;

/* Answers r with a streamed text/event-stream response reading cw's
 * sequence (cw made with stream = 1 and bound; taken over: freed when the
 * stream ends or the client goes away). */
void completion_stream(rg_request *r, rg_completion_wait *cw, const rg_completion *c);

/* Answers r with the whole non-streamed response for a finished sequence's
 * output (out->finish set): 200 with the completion, or the error. */
void completion_answer(rg_request *r, rg_generator *g, const rg_completion *c, const rg_gen_output *out);

/* ---- completions without a blocked HTTP thread ---------------------------------
 *
 * A non-streaming request parks its connection (libmicrohttpd suspend) while
 * its sequence runs, and a stream parks its connection whenever it has
 * nothing to send, so any number of them can be in the engine at once, and
 * a waiting stream never holds up the others served by its HTTP thread. One
 * waiter thread per server resumes a connection when its sequence finishes
 * or (a stream) has new output or a keep-alive due (the engine's on_finish /
 * on_output wake it), and watches every parked socket for the client
 * hanging up (poll POLLRDHUP), which cancels the sequence: libmicrohttpd
 * itself does not watch suspended connections. */
typedef struct rg_completion_waiter rg_completion_waiter;

rg_status completion_waiter_start(rg_completion_waiter **out, rg_err *e);
/* Stops the thread and resumes every parked connection (their sequences
 * cancelled): call before MHD_stop_daemon. NULL is fine. */
void completion_waiter_stop(rg_completion_waiter *w);
/* Frees it: after the generator is stopped. NULL is fine. */
void completion_waiter_free(rg_completion_waiter *w);

/* A wait for one request, made before generator_submit: it fills
 * req->on_finish (non-streaming) or req->on_output (stream). NULL when out
 * of memory. */
rg_completion_wait *completion_wait_new(rg_completion_waiter *w, rg_gen_request *req, const rg_completion *c,
                                        int stream);
/* The submitted sequence, which the wait then owns (released by
 * completion_wait_free). */
void completion_wait_bind(rg_completion_wait *cw, rg_generator *g, rg_gen_seq *seq);
rg_gen_seq *completion_wait_seq(const rg_completion_wait *cw);
/* The waiter saw the client hang up (or half-close its socket) while the
 * connection was parked, and cancelled the sequence. */
int completion_wait_client_gone(const rg_completion_wait *cw);
/* Releases the sequence (cancelling it if it still runs) and frees the
 * wait. NULL is fine. */
void completion_wait_free(rg_completion_wait *cw);
/* Answers r once its sequence has finished, parking the connection until
 * then; takes cw over. */
void completion_wait_park(rg_request *r, rg_completion_wait *cw);

/* For a stream's content reader. completion_wait_arm before looking for
 * output; when there was none, completion_wait_suspend parks the connection
 * until there is (or until wake_at_us on clock_mono_us's clock, 0 = no
 * deadline): the reader then returns 0, and libmicrohttpd calls it again
 * once resumed. -1 when the waiter is stopping: nothing is parked. */
void completion_wait_arm(rg_completion_wait *cw);
int completion_wait_suspend(rg_completion_wait *cw, struct MHD_Connection *conn, int64_t wake_at_us);

#endif
