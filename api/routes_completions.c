/* POST /v1/completions and POST /v1/chat/completions (OpenAI-compatible)
 * on the generator engine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/completions.h"
#include "api/routes.h"
#include "api/server.h"
#include "common/fs.h"
#include "common/utf8.h"

#define CHAT_MAX_MESSAGES 1024

const char *completion_finish_reason(rg_gen_finish f)
{
    return f == RG_GEN_LENGTH ? "length" : "stop";
}

/* ---- log-probabilities ------------------------------------------------------ */

/* The token's text as valid UTF-8 (a byte-level token may hold part of a
 * character) and its raw bytes. */
static cJSON *token_text(const rg_bpe *tok, int32_t id, cJSON **bytes)
{
    size_t len = 0;
    const char *p = bpe_token_bytes(tok, id, &len);
    if (!p)
        p = "", len = 0;
    rg_buf clean;
    rg_buf_init(&clean, 0);
    rg_err e;
    cJSON *s = utf8_sanitize(p, len, &clean, NULL, &e) == RG_OK ? cJSON_CreateString(clean.data ? clean.data : "")
                                                                 : cJSON_CreateString("");
    rg_buf_free(&clean);
    if (bytes) {
        *bytes = cJSON_CreateArray();
        for (size_t i = 0; i < len; i++)
            cJSON_AddItemToArray(*bytes, cJSON_CreateNumber((unsigned char)p[i]));
    }
    return s;
}

cJSON *completion_logprobs_json(const rg_completion *c, const rg_bpe *tok, const rg_gen_output *out,
                                size_t text_base)
{
    cJSON *o = cJSON_CreateObject();
    if (c->chat) {
        cJSON *content = cJSON_AddArrayToObject(o, "content");
        for (size_t i = 0; i < out->n_tokens; i++) {
            const rg_gen_token *t = &out->tokens[i];
            cJSON *item = cJSON_CreateObject(), *bytes;
            cJSON_AddItemToObject(item, "token", token_text(tok, t->id, &bytes));
            cJSON_AddNumberToObject(item, "logprob", t->logprob);
            cJSON_AddItemToObject(item, "bytes", bytes);
            cJSON *top = cJSON_AddArrayToObject(item, "top_logprobs");
            for (size_t k = 0; k < t->n_top; k++) {
                cJSON *alt = cJSON_CreateObject(), *ab;
                cJSON_AddItemToObject(alt, "token", token_text(tok, t->top[k].id, &ab));
                cJSON_AddNumberToObject(alt, "logprob", t->top[k].logprob);
                cJSON_AddItemToObject(alt, "bytes", ab);
                cJSON_AddItemToArray(top, alt);
            }
            cJSON_AddItemToArray(content, item);
        }
        return o;
    }
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    size_t off = text_base;
    for (size_t i = 0; i < out->n_tokens; i++) {
        const rg_gen_token *t = &out->tokens[i];
        cJSON_AddItemToArray(tokens, token_text(tok, t->id, NULL));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(t->logprob));
        cJSON *top = cJSON_CreateObject();
        for (size_t k = 0; k < t->n_top; k++) {
            cJSON *name = token_text(tok, t->top[k].id, NULL);
            if (!cJSON_GetObjectItemCaseSensitive(top, name->valuestring))
                cJSON_AddNumberToObject(top, name->valuestring, t->top[k].logprob);
            cJSON_Delete(name);
        }
        cJSON_AddItemToArray(tops, top);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        size_t len = 0;
        if (!bpe_is_special(tok, t->id) && bpe_token_bytes(tok, t->id, &len))
            off += len;
    }
    return o;
}

/* ---- request parsing --------------------------------------------------------- */

/* A model name is ours when it is our id, our id after "org/", or our id
 * without its quantization suffix (".Q4_1"). Absent is fine. */
static int model_ok(const char *asked, const char *id)
{
    const char *slash = strrchr(asked, '/');
    if (slash)
        asked = slash + 1;
    if (strcmp(asked, id) == 0)
        return 1;
    const char *dot = strchr(id, '.');
    return dot && strlen(asked) == (size_t)(dot - id) && strncmp(asked, id, (size_t)(dot - id)) == 0;
}

/* Reads an optional number in [lo, hi] into *out; answers 400 and returns -1
 * when present but wrong. */
static int num_field(rg_request *r, const cJSON *body, const char *name, double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        http_error(r, 400, "invalid_request", "'%s' must be a number in [%g, %g]", name, lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 1;
}

static int int_field(rg_request *r, const cJSON *body, const char *name, double lo, double hi, double *out)
{
    int got = num_field(r, body, name, lo, hi, out);
    if (got > 0 && *out != floor(*out)) {
        http_error(r, 400, "invalid_request", "'%s' must be an integer", name);
        return -1;
    }
    return got;
}

/* OpenAI's logit_bias: {"<token id>": bias in [-100, 100], ...}. Ids are
 * checked against the model's vocabulary when the request is submitted. */
static int logit_bias_field(rg_request *r, const cJSON *body, rg_sampling_params *p)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(body, "logit_bias");
    if (!o || cJSON_IsNull(o))
        return 0;
    if (!cJSON_IsObject(o)) {
        http_error(r, 400, "invalid_request", "'logit_bias' must be an object of token ids to numbers");
        return -1;
    }
    p->n_bias = 0;
    for (const cJSON *it = o->child; it; it = it->next) {
        const char *k = it->string;
        char *end = NULL;
        long id = k && *k >= '0' && *k <= '9' ? strtol(k, &end, 10) : -1;
        if (id < 0 || id > INT32_MAX || !end || *end) {
            http_error(r, 400, "invalid_request", "'logit_bias' keys must be token ids (decimal integers)");
            return -1;
        }
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < -100 || it->valuedouble > 100) {
            http_error(r, 400, "invalid_request", "'logit_bias' values must be numbers in [-100, 100]");
            return -1;
        }
        if (p->n_bias == RG_SAMPLING_MAX_BIAS) {
            http_error(r, 400, "invalid_request", "'logit_bias' has more than %d entries",
                       RG_SAMPLING_MAX_BIAS);
            return -1;
        }
        for (size_t i = 0; i < p->n_bias; i++)
            if (p->bias_id[i] == (int32_t)id) {
                http_error(r, 400, "invalid_request", "'logit_bias' names token %ld twice", id);
                return -1;
            }
        p->bias_id[p->n_bias] = (int32_t)id;
        p->bias[p->n_bias++] = (float)it->valuedouble;
    }
    return 1;
}

/* response_format: {"type": "text"} (the default), {"type": "json_object"}
 * (JSON mode: the answer is one JSON object, enforced token by token,
 * generate/json_mode.h) or {"type": "json_schema", "json_schema": {"name",
 * "schema", "strict"}} (an object the schema allows; a schema using what
 * the recognizer cannot follow is refused, naming it, rather than answered
 * with JSON that may not follow it). */
static int response_format_field(rg_request *r, const cJSON *body, rg_gen_request *req)
{
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format");
    if (!rf || cJSON_IsNull(rf))
        return 0;
    const cJSON *type = cJSON_IsObject(rf) ? cJSON_GetObjectItemCaseSensitive(rf, "type") : NULL;
    if (!cJSON_IsString(type)) {
        http_error(r, 400, "invalid_request", "'response_format' must be an object with a string 'type'");
        return -1;
    }
    if (!strcmp(type->valuestring, "text"))
        return 0;
    if (!strcmp(type->valuestring, "json_object")) {
        req->json_object = 1;
        return 0;
    }
    if (!strcmp(type->valuestring, "json_schema")) {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        if (!cJSON_IsObject(js)) {
            http_error(r, 400, "invalid_request", "'response_format.json_schema' must be an object with a 'schema'");
            return -1;
        }
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (!schema || cJSON_IsNull(schema)) {
            req->json_object = 1; /* no schema: any object */
            return 0;
        }
        rg_err e;
        if (json_schema_compile(schema, &req->json_schema, &e)) {
            http_error(r, 400, "invalid_request", "response_format: %s", e.msg);
            return -1;
        }
        return 0;
    }
    http_error(r, 400, "invalid_request", "'response_format' type must be 'text', 'json_object' or 'json_schema'");
    return -1;
}

/* Tool (function) calling is not served: a request that offers tools is
 * refused rather than answered with text the client would not expect.
 * Empty lists and tool_choice "none" or "auto" (with no tools: answer in
 * text) ask for nothing and pass. */
static int no_tools(rg_request *r, const cJSON *body)
{
    static const char *const lists[] = {"tools", "functions"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, lists[i]);
        if (t && !cJSON_IsNull(t) && !(cJSON_IsArray(t) && cJSON_GetArraySize(t) == 0)) {
            http_error(r, 400, "invalid_request", "'%s': tool calling is not supported by this server", lists[i]);
            return -1;
        }
    }
    static const char *const choices[] = {"tool_choice", "function_call"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, choices[i]);
        int asks_none = cJSON_IsString(t) && (!strcmp(t->valuestring, "none") || !strcmp(t->valuestring, "auto"));
        if (t && !cJSON_IsNull(t) && !asks_none) {
            http_error(r, 400, "invalid_request", "'%s': tool calling is not supported by this server", choices[i]);
            return -1;
        }
    }
    return 0;
}

/* The request fields both endpoints share: sampling, limits, stop,
 * logprobs, stream. Returns 0, or -1 after answering 400. */
static int parse_common(rg_request *r, const cJSON *body, rg_gen_request *req, rg_completion *c, int *stream)
{
    double v;
    sampling_params_default(&req->sampling);
    /* Without a seed every request draws its own. */
    rg_rng rng;
    rng_seed(&rng, (uint64_t)clock_mono_us() ^ (uint64_t)(uintptr_t)r);
    req->sampling.seed = rng_next(&rng);
    int got;
    if ((got = num_field(r, body, "temperature", 0, 2, &v)) < 0)
        return -1;
    if (got)
        req->sampling.temperature = (float)v;
    if ((got = num_field(r, body, "top_p", 0, 1, &v)) < 0)
        return -1;
    if (got) {
        if (v <= 0) {
            http_error(r, 400, "invalid_request", "'top_p' must be greater than 0");
            return -1;
        }
        req->sampling.top_p = (float)v;
    }
    if ((got = num_field(r, body, "presence_penalty", -2, 2, &v)) < 0)
        return -1;
    if (got)
        req->sampling.presence_penalty = (float)v;
    if ((got = num_field(r, body, "frequency_penalty", -2, 2, &v)) < 0)
        return -1;
    if (got)
        req->sampling.frequency_penalty = (float)v;
    /* extensions many servers accept (vLLM, llama.cpp) */
    if ((got = int_field(r, body, "top_k", 0, 1e6, &v)) < 0)
        return -1;
    if (got)
        req->sampling.top_k = (size_t)v;
    if ((got = num_field(r, body, "min_p", 0, 0.999999, &v)) < 0)
        return -1;
    if (got)
        req->sampling.min_p = (float)v;
    if ((got = num_field(r, body, "repetition_penalty", 0.01, 10, &v)) < 0)
        return -1;
    if (got)
        req->sampling.repetition_penalty = (float)v;
    if (logit_bias_field(r, body, &req->sampling) < 0)
        return -1;
    if ((got = int_field(r, body, "seed", -9.2e18, 9.2e18, &v)) < 0)
        return -1;
    if (got)
        req->sampling.seed = (uint64_t)(int64_t)v;
    if ((got = int_field(r, body, "n", 1, 1e6, &v)) < 0)
        return -1;
    if (got && v != 1) {
        http_error(r, 400, "invalid_request", "only n=1 is supported");
        return -1;
    }
    if ((got = int_field(r, body, "max_completion_tokens", 1, 1e9, &v)) < 0)
        return -1;
    if (!got && (got = int_field(r, body, "max_tokens", 1, 1e9, &v)) < 0)
        return -1;
    if (got)
        req->max_tokens = (size_t)v;

    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (stop && !cJSON_IsNull(stop)) {
        if (cJSON_IsString(stop)) {
            req->stop[req->n_stop++] = stop->valuestring;
        } else if (cJSON_IsArray(stop) && cJSON_GetArraySize(stop) <= GEN_MAX_STOP) {
            const cJSON *it;
            cJSON_ArrayForEach(it, stop)
            {
                if (!cJSON_IsString(it)) {
                    http_error(r, 400, "invalid_request", "'stop' entries must be strings");
                    return -1;
                }
                req->stop[req->n_stop++] = it->valuestring;
            }
        } else {
            http_error(r, 400, "invalid_request", "'stop' must be a string or an array of up to %d strings",
                       GEN_MAX_STOP);
            return -1;
        }
        for (size_t i = 0; i < req->n_stop; i++)
            if (strlen(req->stop[i]) > GEN_MAX_STOP_BYTES) {
                http_error(r, 400, "invalid_request", "stop strings may be at most %d bytes",
                           GEN_MAX_STOP_BYTES);
                return -1;
            }
    }

    /* chat: logprobs true + top_logprobs 0..20; completions: logprobs 0..5 */
    if (c->chat) {
        if (http_json_bool(r, body, "logprobs", &c->logprobs) < 0)
            return -1;
        if ((got = int_field(r, body, "top_logprobs", 0, GEN_MAX_TOP_LOGPROBS, &v)) < 0)
            return -1;
        if (got && !c->logprobs) {
            http_error(r, 400, "invalid_request", "'top_logprobs' needs 'logprobs': true");
            return -1;
        }
        c->top_logprobs = got ? (size_t)v : 0;
    } else {
        if ((got = int_field(r, body, "logprobs", 0, 5, &v)) < 0)
            return -1;
        c->logprobs = got;
        c->top_logprobs = got ? (size_t)v : 0;
    }
    req->logprobs = c->logprobs;
    req->top_logprobs = c->top_logprobs;

    if (response_format_field(r, body, req) < 0 || no_tools(r, body) < 0)
        return -1;

    *stream = 0;
    if (http_json_bool(r, body, "stream", stream) < 0)
        return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            http_error(r, 400, "invalid_request", "'stream_options' must be an object");
            return -1;
        }
        if (!*stream) {
            http_error(r, 400, "invalid_request", "'stream_options' is only allowed with 'stream': true");
            return -1;
        }
        if (http_json_bool(r, so, "include_usage", &c->include_usage) < 0)
            return -1;
    }
    return 0;
}

/* The text of a message's content: a string, or an array of text parts
 * joined with newlines (as OpenAI's own chat templates do). */
static int message_text(rg_request *r, size_t i, const cJSON *content, rg_buf *out)
{
    rg_err e;
    if (cJSON_IsString(content))
        return rg_buf_append_str(out, content->valuestring, &e) == RG_OK ? 0 : -1;
    if (cJSON_IsNull(content) || !content)
        return 0;
    if (!cJSON_IsArray(content)) {
        http_error(r, 400, "invalid_request", "messages[%zu].content must be a string or an array of parts", i);
        return -1;
    }
    const cJSON *part;
    int first = 1;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text)) {
            http_error(r, 400, "invalid_request",
                       "messages[%zu].content: only text parts ({\"type\":\"text\",\"text\":...}) are supported", i);
            return -1;
        }
        if ((!first && rg_buf_append_char(out, '\n', &e)) || rg_buf_append_str(out, text->valuestring, &e))
            return -1;
        first = 0;
    }
    return 0;
}

/* Builds the chat prompt's tokens. Returns 0, or -1 after answering. */
static int chat_prompt_ids(rg_request *r, rg_generator *g, const cJSON *body, rg_bpe_ids *ids)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    int n = cJSON_IsArray(msgs) ? cJSON_GetArraySize(msgs) : -1;
    if (n <= 0 || n > CHAT_MAX_MESSAGES) {
        http_error(r, 400, "invalid_request", "'messages' must be an array of 1 to %d messages",
                   CHAT_MAX_MESSAGES);
        return -1;
    }
    rg_err e;
    const rg_chat_template *t = generator_chat_template(g, &e);
    if (!t) {
        http_error(r, 400, "invalid_request", "%s", e.msg);
        return -1;
    }
    rg_chat_message *m = calloc((size_t)n, sizeof *m);
    rg_buf *texts = calloc((size_t)n, sizeof *texts);
    int rc = m && texts ? 0 : -1;
    if (rc)
        http_error(r, 500, "internal_error", "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *msg = cJSON_GetArrayItem(msgs, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        rg_buf_init(&texts[i], 0);
        if (!cJSON_IsObject(msg) || !cJSON_IsString(role)) {
            http_error(r, 400, "invalid_request", "messages[%d] needs a 'role'", i);
            rc = -1;
            break;
        }
        const char *rn = role->valuestring;
        if (strcmp(rn, "developer") == 0) /* OpenAI's newer name for system */
            rn = "system";
        if (strcmp(rn, "system") != 0 && strcmp(rn, "user") != 0 && strcmp(rn, "assistant") != 0) {
            http_error(r, 400, "invalid_request",
                       "messages[%d].role '%s' is not supported (system, developer, user, assistant)", i,
                       role->valuestring);
            rc = -1;
            break;
        }
        if (message_text(r, (size_t)i, cJSON_GetObjectItemCaseSensitive(msg, "content"), &texts[i])) {
            if (!r->res.status)
                http_error(r, 500, "internal_error", "out of memory");
            rc = -1;
            break;
        }
        m[i].role = rn;
        m[i].content = texts[i].data ? texts[i].data : "";
        m[i].content_len = texts[i].len;
    }
    if (!rc) {
        rg_chat_prompt p;
        chat_prompt_init(&p);
        rg_status st = chat_template_apply(t, m, (size_t)n, 1, &p, &e);
        if (!st)
            st = chat_prompt_encode(generator_tokenizer(g), &p, ids, &e);
        chat_prompt_free(&p);
        if (st) {
            http_fail(r, &e);
            rc = -1;
        }
    }
    for (int i = 0; texts && i < n; i++)
        rg_buf_free(&texts[i]);
    free(texts);
    free(m);
    return rc;
}

/* The completion prompt: a string, an array of one string, or an array of
 * token ids. */
static int text_prompt_ids(rg_request *r, rg_generator *g, const cJSON *body, rg_bpe_ids *ids)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    rg_err e;
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0);
    if (cJSON_IsString(p)) {
        /* as transformers and llama.cpp's server: the model's BOS when it
         * wants one; special tokens written in the prompt are read as such */
        if (bpe_encode(generator_tokenizer(g), p->valuestring, strlen(p->valuestring),
                       RG_BPE_ADD_SPECIAL | RG_BPE_PARSE_SPECIAL, ids, &e)) {
            http_fail(r, &e);
            return -1;
        }
        if (!ids->n) {
            http_error(r, 400, "invalid_request", "'prompt' is empty");
            return -1;
        }
        return 0;
    }
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) > 0 && cJSON_IsNumber(cJSON_GetArrayItem(p, 0))) {
        const cJSON *it;
        cJSON_ArrayForEach(it, p)
        {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= 2147483647.0 ||
                it->valuedouble != floor(it->valuedouble)) {
                http_error(r, 400, "invalid_request", "'prompt' token ids must be non-negative integers");
                return -1;
            }
            if (bpe_ids_push(ids, (int32_t)it->valuedouble, &e)) {
                http_fail(r, &e);
                return -1;
            }
        }
        return 0;
    }
    http_error(r, 400, "invalid_request",
               "'prompt' must be a string, an array of one string, or an array of token ids (one prompt per request)");
    return -1;
}

/* ---- the handlers -------------------------------------------------------------- */

void completion_answer(rg_request *r, rg_generator *g, const rg_completion *c, const rg_gen_output *out)
{
    if (out->finish == RG_GEN_ERROR) {
        http_fail(r, &out->err);
        return;
    }
    if (out->finish == RG_GEN_CANCELLED || out->finish == RG_GEN_RUNNING) {
        http_error(r, 503, "unavailable", "the server is shutting down");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", c->id);
    cJSON_AddStringToObject(o, "object", c->chat ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)c->created);
    cJSON_AddStringToObject(o, "model", c->model);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    const char *text = out->text.data ? out->text.data : "";
    if (c->chat) {
        cJSON *msg = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "content", text);
    } else {
        cJSON_AddStringToObject(ch, "text", text);
    }
    if (c->logprobs)
        cJSON_AddItemToObject(ch, "logprobs", completion_logprobs_json(c, generator_tokenizer(g), out, 0));
    else
        cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", completion_finish_reason(out->finish));
    cJSON_AddItemToArray(choices, ch);
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)out->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)out->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(out->prompt_tokens + out->completion_tokens));
    http_json(r, 200, o);
}

static void completion_id(rg_completion *c, const rg_request *r)
{
    rg_rng rng;
    rng_seed(&rng, (uint64_t)clock_mono_us() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)r);
    snprintf(c->id, sizeof c->id, "%s-%016llx%08llx", c->chat ? "chatcmpl" : "cmpl",
             (unsigned long long)rng_next(&rng), (unsigned long long)(rng_next(&rng) & 0xffffffffull));
    c->created = (long long)time(NULL);
}

static void route_generate(rg_request *r, int chat)
{
    rg_generator *g = r->server->generator;
    if (!g) {
        http_error(r, 404, "not_found", "no generation model is loaded (start ragd serve with --gen-model)");
        return;
    }
    cJSON *body = http_body_json(r);
    if (!body)
        return;
    rg_completion c;
    memset(&c, 0, sizeof c);
    c.chat = chat;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (model && !cJSON_IsNull(model) &&
        (!cJSON_IsString(model) || !model_ok(model->valuestring, generator_model_id(g)))) {
        http_error(r, 404, "model_not_found", "model '%s' is not served here (GET /v1/models lists %s)",
                   cJSON_IsString(model) ? model->valuestring : "?", generator_model_id(g));
        cJSON_Delete(body);
        return;
    }
    snprintf(c.model, sizeof c.model, "%s", generator_model_id(g));
    rg_gen_request req;
    memset(&req, 0, sizeof req);
    int stream = 0;
    rg_bpe_ids ids = {0};
    if (parse_common(r, body, &req, &c, &stream) ||
        (chat ? chat_prompt_ids(r, g, body, &ids) : text_prompt_ids(r, g, body, &ids))) {
        json_schema_free(req.json_schema);
        bpe_ids_free(&ids);
        cJSON_Delete(body);
        return;
    }
    req.prompt = ids.ids;
    req.n_prompt = ids.n;
    completion_id(&c, r);
    /* the connection is parked while there is nothing to send (until the
     * sequence ends, or a stream's next output), so the HTTP thread serves
     * others meanwhile (completions_wait.c) */
    rg_completion_wait *cw = completion_wait_new(r->server->gen_waiter, &req, &c, stream);
    if (!cw) {
        json_schema_free(req.json_schema);
        bpe_ids_free(&ids);
        cJSON_Delete(body);
        http_error(r, 500, "internal_error", "out of memory");
        return;
    }
    rg_err e;
    rg_gen_seq *seq = NULL;
    rg_status st = generator_submit(g, &req, &seq, &e); /* copies prompt and stop strings */
    bpe_ids_free(&ids);
    cJSON_Delete(body);
    if (st) {
        json_schema_free(req.json_schema); /* not taken over */
        completion_wait_free(cw);
        http_fail(r, &e);
        return;
    }
    completion_wait_bind(cw, g, seq);
    if (stream)
        completion_stream(r, cw, &c);
    else
        completion_wait_park(r, cw);
}

void route_completions(rg_request *r)
{
    route_generate(r, 0);
}

void route_chat_completions(rg_request *r)
{
    route_generate(r, 1);
}
