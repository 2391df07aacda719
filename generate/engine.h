/* engine.h - the generator engine: one worker thread owns the decoder and
 * schedules every sequence continuously; callers on any thread submit a
 * prompt and read its text as it is produced.
 *
 * Each step the worker
 *   1. drops cancelled sequences (their KV caches are freed at once),
 *   2. admits queued prompts, oldest first, while there is a free sequence
 *      slot and room in the KV budget for the prompt plus its max_tokens,
 *   3. prefills admitted prompts in chunks, oldest first, up to
 *      prefill_tokens prompt tokens in all this step: a long prompt is
 *      spread over several steps instead of stalling the running sequences
 *      for its whole length; a prompt whose last chunk is in samples its
 *      first token and decodes from this step on,
 *   4. decodes one token for all decoding sequences in a single
 *      decoder_decode call, and samples each sequence's next token.
 * Neither batching nor chunking changes a sequence's tokens: each row of a
 * step is computed as it would be alone, and a prompt's positions attend
 * over the same cache whether they arrive in one call or several.
 *
 * Output goes through a per-sequence channel: text that is final (complete
 * UTF-8 characters, never part of a possible stop string), the token
 * log-probabilities when asked, and at the end the finish reason and token
 * counts. A stop string ends the sequence and is not emitted; text that
 * could be the start of one is held back until it is known not to be. The
 * end-of-sequence and end-of-turn tokens end it too, unemitted.
 *
 * KV memory is reserved at admission for the prompt plus max_tokens (the
 * caches cannot grow), so admission is honest: an admitted sequence always
 * has the room to finish. A request without max_tokens gets
 * default_max_tokens (capped by the context left after its prompt) rather
 * than the whole context, so that many such requests fit the budget at once.
 *
 * Bounds: a full request queue is RG_ERR_BUSY at once (the API answers 503
 * with Retry-After); a prompt plus max_tokens beyond the model's context or
 * the whole KV budget is RG_ERR_INVALID. */
#ifndef RAGD_GENERATE_ENGINE_H
#define RAGD_GENERATE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "generate/chat_template.h"
#include "generate/json_mode.h"
#include "model/bpe.h"
#include "model/decoder.h"
#include "model/sampling.h"

#define GEN_MAX_STOP 4
#define GEN_MAX_STOP_BYTES 256
#define GEN_MAX_TOP_LOGPROBS 20

typedef struct rg_generator rg_generator;
typedef struct rg_gen_seq rg_gen_seq;

typedef struct rg_gen_opts {
    size_t queue_capacity; /* prompts waiting for a slot */
    size_t max_seqs;       /* sequences decoded together */
    size_t kv_cache_mb;    /* KV memory of all sequences together */
    size_t prefill_tokens; /* prompt tokens prefilled per step, all prompts together (chunk bound) */
    size_t default_max_tokens; /* max_tokens of a request that sets none (0: the rest of the context) */
    size_t threads;        /* decoder threads (0: the online CPUs) */
    rg_device device;      /* where the decoder runs (generator_opts_default: cpu; --device) */
    rg_kv_type kv_type;
    const char *chat_template; /* NULL: recognise the model's; else a chat_template_named name */
} rg_gen_opts;

void generator_opts_default(rg_gen_opts *o);

/* Loads the model (a .gguf file or a Hugging Face directory) and its
 * tokenizer and starts the worker. A chat template that cannot be
 * recognised is not an error here: completions still work, chat requests
 * get generator_chat_template's error. */
rg_status generator_start(const char *model_path, const rg_gen_opts *o, rg_generator **out, rg_err *e);
/* Cancels what is running or queued, stops the worker and frees the model. */
void generator_stop(rg_generator *g); /* NULL is fine */

/* The model's name: its file name without ".gguf", or its directory's name. */
const char *generator_model_id(const rg_generator *g);
size_t generator_context(const rg_generator *g);
/* Where the decoder runs (cpu or cuda) and a one-line description. */
rg_device generator_device(const rg_generator *g);
const char *generator_device_desc(const rg_generator *g);
const rg_bpe *generator_tokenizer(const rg_generator *g);
/* The chat template, or NULL with *e saying why (and naming the fallback). */
const rg_chat_template *generator_chat_template(const rg_generator *g, rg_err *e);

typedef struct rg_gen_stats {
    size_t running, queued; /* running: admitted (prefilling or decoding) */
    size_t prefilling;      /* admitted, prompt not yet all in the cache */
    size_t kv_used_tokens, kv_budget_tokens;
    uint64_t finished, cancelled, tokens_generated, steps;
} rg_gen_stats;
void generator_stats(rg_generator *g, rg_gen_stats *out);

typedef struct rg_gen_request {
    const int32_t *prompt; /* copied */
    size_t n_prompt;
    size_t max_tokens; /* 0: the engine's default_max_tokens, at most the rest of the context */
    rg_sampling_params sampling;
    const char *stop[GEN_MAX_STOP]; /* copied; NULL or "" entries are ignored */
    size_t n_stop;
    int logprobs;       /* report each token's log-probability */
    size_t top_logprobs; /* and this many alternatives (<= GEN_MAX_TOP_LOGPROBS) */
    /* JSON mode (generate/json_mode.h): every token keeps the text the
     * beginning of one JSON object, and the sequence ends when the object
     * closes (or at max_tokens / a stop string, cut short). Log-probabilities
     * still report the model's own distribution. */
    int json_object;
    /* JSON mode with a schema (json_schema_compile): the object is one the
     * schema allows. generator_submit takes it over when it succeeds (the
     * caller frees it otherwise). */
    rg_json_schema *json_schema;
    /* Optional: called once when the sequence finishes, for whatever reason
     * (so a caller need not block in generator_read to learn it). It runs on
     * the engine's worker (or generator_stop's thread) with the engine's lock
     * held: it must be quick and must not call any generator_* function.
     * Never called after generator_release has returned. */
    void (*on_finish)(void *ctx);
    void *on_finish_ctx;
    /* Optional: called whenever generator_read has new text or the finish
     * (a token whose text is held back, part of a character or of a
     * possible stop string, comes with the next text), so a streaming
     * caller can sleep without a thread blocked in generator_read. Same
     * rules as on_finish: under the engine's lock, quick, no generator_*
     * calls, never after generator_release returned. */
    void (*on_output)(void *ctx);
    void *on_output_ctx;
} rg_gen_request;

/* Queues a request. *out is the caller's handle until generator_release.
 * RG_ERR_BUSY when the queue is full or the engine stopping. */
rg_status generator_submit(rg_generator *g, const rg_gen_request *req, rg_gen_seq **out, rg_err *e);

typedef enum rg_gen_finish {
    RG_GEN_RUNNING = 0,
    RG_GEN_STOP,      /* EOS/EOT or a stop string */
    RG_GEN_LENGTH,    /* max_tokens or the context */
    RG_GEN_CANCELLED,
    RG_GEN_ERROR
} rg_gen_finish;

typedef struct rg_gen_token {
    int32_t id;
    float logprob;
    size_t n_top;
    rg_token_logprob top[GEN_MAX_TOP_LOGPROBS];
} rg_gen_token;

/* What a read returns: everything produced since the previous read. */
typedef struct rg_gen_output {
    rg_buf text;          /* appended */
    rg_gen_token *tokens; /* appended when logprobs were asked */
    size_t n_tokens, cap_tokens;
    rg_gen_finish finish; /* set once everything has been read */
    size_t prompt_tokens, completion_tokens;
    rg_err err; /* when finish is RG_GEN_ERROR */
} rg_gen_output;

void gen_output_init(rg_gen_output *o);
void gen_output_free(rg_gen_output *o);
/* Forgets text and tokens read so far (keeps finish and counts). */
void gen_output_clear(rg_gen_output *o);

/* Waits up to timeout_ms (negative: forever) for output, then appends what
 * there is to out. Returns 1 when something new arrived or the sequence
 * has finished (out->finish != RG_GEN_RUNNING), 0 on timeout, -1 when out of
 * memory. */
int generator_read(rg_gen_seq *s, int timeout_ms, rg_gen_output *out);
/* Asks the worker to stop the sequence; its cache is freed at the next step. */
void generator_cancel(rg_gen_seq *s);
/* Gives up the handle (cancelling the sequence if it still runs). */
void generator_release(rg_gen_seq *s); /* NULL is fine */

/* Runs req to the end and collects everything into out (the non-streaming
 * API and the tests). */
rg_status generator_complete(rg_generator *g, const rg_gen_request *req, rg_gen_output *out, rg_err *e);

#endif
