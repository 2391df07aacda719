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

/* Answers r with a streamed text/event-stream response reading seq (which
 * it takes over: released when the stream ends or the client goes away). */
void completion_stream(rg_request *r, rg_generator *g, rg_gen_seq *seq, const rg_completion *c);

#endif
