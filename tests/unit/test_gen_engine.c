/* test_gen_engine.c - the generator engine on the real SmolLM2 GGUF.
 *
 * What a user of the engine would notice:
 *   - prompts submitted together get exactly the greedy tokens each gets
 *     alone (continuous batching must not change results);
 *   - streamed pieces add up to the complete text; a stop string ends the
 *     text just before it, never emitting part of it; max_tokens ends with
 *     "length"; the same seed gives the same sampled text;
 *   - a full queue is refused at once, a cancelled sequence gives its KV
 *     cache back and the engine keeps serving; over-long prompts are refused.
 * The model is SmolLM2-135M-Instruct.Q4_1.gguf under $RAGD_MODELS or ./models
 * ($RAGD_GEN_MODEL names another); without it the test fails saying where
 * it looked (`make models` installs it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "common/fs.h"
#include "generate/engine.h"

#define N_PROMPTS 6
#define GEN_TOKENS 24

static const char *questions[N_PROMPTS] = {
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three primary colours.",
    "Explain what a CPU does in one sentence.",
    "Translate 'good morning' into Spanish.",
    "What is 12 times 12? Answer with a number, then explain why in a long paragraph about multiplication.",
};

static void model_path(char *out, size_t size)
{
    const char *env = getenv("RAGD_GEN_MODEL");
    const char *base = getenv("RAGD_MODELS");
    if (env && *env)
        snprintf(out, size, "%s", env);
    else
        snprintf(out, size, "%s/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
                 base && *base ? base : "models");
}

static void chat_prompt(rg_generator *g, const char *question, rg_bpe_ids *ids)
{
    rg_err e;
    const rg_chat_template *t = generator_chat_template(g, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    if (!t)
        return;
    rg_chat_message m = {"user", question, strlen(question)};
    rg_chat_prompt p;
    chat_prompt_init(&p);
    CHECK_OK(chat_template_apply(t, &m, 1, 1, &p, &e), e);
    CHECK_OK(chat_prompt_encode(generator_tokenizer(g), &p, ids, &e), e);
    chat_prompt_free(&p);
}

static void greedy_request(rg_gen_request *r, const rg_bpe_ids *ids, size_t max_tokens)
{
    memset(r, 0, sizeof *r);
    r->prompt = ids->ids;
    r->n_prompt = ids->n;
    r->max_tokens = max_tokens;
    sampling_params_default(&r->sampling);
    r->sampling.temperature = 0;
    r->logprobs = 1;
    r->top_logprobs = 2;
}

static void wait_until(rg_generator *g, int (*cond)(const rg_gen_stats *), const char *what)
{
    for (int i = 0; i < 3000; i++) {
        rg_gen_stats st;
        generator_stats(g, &st);
        if (cond(&st))
            return;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    CHECK_MSG(0, "timed out waiting for %s", what);
}

static int one_running(const rg_gen_stats *s)
{
    return s->running == 1;
}

static int idle(const rg_gen_stats *s)
{
    return s->running == 0 && s->queued == 0 && s->kv_used_tokens == 0;
}

int main(void)
{
    char path[4096];
    model_path(path, sizeof path);
    if (!fs_is_file(path) && !fs_is_dir(path)) {
        fprintf(stderr, "test_gen_engine: no model at %s (run `make models` or set RAGD_GEN_MODEL)\n", path);
        return 1;
    }
    rg_gen_opts o;
    generator_opts_default(&o);
    o.kv_cache_mb = 256;
    rg_generator *g = NULL;
    rg_err e;
    rg_status st = generator_start(path, &o, &g, &e);
    CHECK_OK(st, e);
    if (st)
        return check_finish("test_gen_engine");
    CHECK(generator_context(g) == 8192);
    CHECK_STR(generator_model_id(g), "SmolLM2-135M-Instruct.Q4_1");

    rg_bpe_ids ids[N_PROMPTS];
    memset(ids, 0, sizeof ids);
    for (int i = 0; i < N_PROMPTS; i++)
        chat_prompt(g, questions[i], &ids[i]);

    /* each alone */
    rg_gen_output alone[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) {
        rg_gen_request r;
        greedy_request(&r, &ids[i], GEN_TOKENS);
        gen_output_init(&alone[i]);
        CHECK_OK(generator_complete(g, &r, &alone[i], &e), e);
        CHECK(alone[i].prompt_tokens == ids[i].n);
        CHECK(alone[i].completion_tokens == alone[i].n_tokens);
        CHECK(alone[i].finish == RG_GEN_LENGTH || alone[i].finish == RG_GEN_STOP);
        printf("alone %d (%s, %zu tokens): %s\n", i, alone[i].finish == RG_GEN_LENGTH ? "length" : "stop",
               alone[i].completion_tokens, alone[i].text.data ? alone[i].text.data : "");
    }
    /* end to end against llama.cpp: the chat prompt's ids and the first 24
     * greedy tokens of llama-cpp-python on the same file
     * (tests/fixtures/llama_golden.jsonl, record "chat_capital") */
    static const int32_t ref_ids[] = {1,    9690, 198,  2683,  359,  253,  5356, 5646, 11173, 3365,
                                      3511, 308,  34519, 28,   7018, 411,  407,  19712, 8182, 2,
                                      198,  1,    4093, 198,   1780, 314,  260,  3575, 282,  4649,
                                      47,   2,    198,  1,     520,  9531, 198};
    static const int32_t ref_greedy[GEN_TOKENS] = {60,   23,   39614, 1141, 552, 28,   2618, 12693,
                                                   2756, 28,   2618,  12572, 28, 2618, 452,  2756,
                                                   39857, 28,  2618,  10256, 28, 2618, 27597, 28};
    CHECK(ids[0].n == sizeof ref_ids / sizeof ref_ids[0] && memcmp(ids[0].ids, ref_ids, sizeof ref_ids) == 0);
    /* At step 19 llama.cpp's two best logits are 1.33996 (10256) and
     * 1.25968 (27597), a near-tie the decoder resolves the other way (see
     * test_decoder); the sequences part there, so the comparison stops. */
    CHECK(alone[0].n_tokens == GEN_TOKENS);
    for (size_t k = 0; k < alone[0].n_tokens && k < 19; k++)
        CHECK_MSG(alone[0].tokens[k].id == ref_greedy[k], "token %zu: %d, llama.cpp %d", k, alone[0].tokens[k].id,
                  ref_greedy[k]);
    CHECK(alone[0].n_tokens > 19 && (alone[0].tokens[19].id == 10256 || alone[0].tokens[19].id == 27597));

    /* all at once: the same tokens, read as streams */
    rg_gen_seq *seqs[N_PROMPTS];
    rg_gen_output together[N_PROMPTS];
    size_t pieces[N_PROMPTS] = {0};
    for (int i = 0; i < N_PROMPTS; i++) {
        rg_gen_request r;
        greedy_request(&r, &ids[i], GEN_TOKENS);
        gen_output_init(&together[i]);
        CHECK_OK(generator_submit(g, &r, &seqs[i], &e), e);
    }
    for (int done = 0; done < N_PROMPTS;) {
        done = 0;
        for (int i = 0; i < N_PROMPTS; i++) {
            if (together[i].finish != RG_GEN_RUNNING) {
                done++;
                continue;
            }
            size_t before = together[i].text.len;
            if (generator_read(seqs[i], 10, &together[i]) > 0 && together[i].text.len > before)
                pieces[i]++;
        }
    }
    for (int i = 0; i < N_PROMPTS; i++) {
        generator_release(seqs[i]);
        CHECK(together[i].finish == alone[i].finish);
        CHECK(together[i].n_tokens == alone[i].n_tokens);
        size_t n = together[i].n_tokens < alone[i].n_tokens ? together[i].n_tokens : alone[i].n_tokens;
        for (size_t k = 0; k < n; k++) {
            const rg_gen_token *a = &alone[i].tokens[k], *b = &together[i].tokens[k];
            if (a->id != b->id) {
                CHECK_MSG(0, "prompt %d token %zu: alone %d (logprob %.5f, runner-up %d at %.5f), batched %d", i, k,
                          a->id, a->logprob, a->top[1].id, a->top[1].logprob, b->id);
                break;
            }
            CHECK_MSG(b->logprob > a->logprob - 1e-3f && b->logprob < a->logprob + 1e-3f,
                      "prompt %d token %zu: logprob %.5f alone, %.5f batched", i, k, a->logprob, b->logprob);
        }
        CHECK_MSG(together[i].text.data && alone[i].text.data && strcmp(together[i].text.data, alone[i].text.data) == 0,
                  "prompt %d:\n alone:   %s\n batched: %s", i, alone[i].text.data, together[i].text.data);
        CHECK_MSG(pieces[i] > 1, "prompt %d arrived in %zu piece(s)", i, pieces[i]);
        gen_output_free(&together[i]);
    }

    /* stop strings: cut just before, never partly emitted */
    const char *full = alone[5].text.data ? alone[5].text.data : "";
    size_t full_len = strlen(full);
    CHECK(full_len > 20);
    if (full_len > 20) {
        char stop[8];
        memcpy(stop, full + 12, 5);
        stop[5] = '\0';
        size_t cut = (size_t)(strstr(full, stop) - full);
        rg_gen_request r;
        greedy_request(&r, &ids[5], GEN_TOKENS);
        r.stop[0] = "never appears \x01";
        r.stop[1] = stop;
        r.n_stop = 2;
        rg_gen_seq *s = NULL;
        CHECK_OK(generator_submit(g, &r, &s, &e), e);
        rg_gen_output out;
        gen_output_init(&out);
        size_t longest_seen = 0;
        while (out.finish == RG_GEN_RUNNING) {
            generator_read(s, -1, &out);
            /* what has been emitted never runs past the cut */
            CHECK(out.text.len <= cut);
            longest_seen = out.text.len;
        }
        generator_release(s);
        CHECK(out.finish == RG_GEN_STOP);
        CHECK_MSG(out.text.len == cut && strncmp(out.text.data ? out.text.data : "", full, cut) == 0,
                  "stop '%s': got '%s'", stop, out.text.data ? out.text.data : "");
        CHECK(longest_seen == cut);
        gen_output_free(&out);
        /* a stop string that never comes changes nothing */
        r.n_stop = 1;
        gen_output_init(&out);
        CHECK_OK(generator_complete(g, &r, &out, &e), e);
        CHECK(out.text.data && strcmp(out.text.data, full) == 0);
        gen_output_free(&out);
    }

    /* max_tokens 1 */
    {
        rg_gen_request r;
        greedy_request(&r, &ids[0], 1);
        rg_gen_output out;
        gen_output_init(&out);
        CHECK_OK(generator_complete(g, &r, &out, &e), e);
        CHECK(out.finish == RG_GEN_LENGTH && out.completion_tokens == 1 && out.n_tokens == 1);
        CHECK(out.n_tokens == 1 && out.tokens[0].id == alone[0].tokens[0].id);
        gen_output_free(&out);
    }

    /* seeds */
    {
        char *texts[3];
        for (int k = 0; k < 3; k++) {
            rg_gen_request r;
            greedy_request(&r, &ids[1], GEN_TOKENS);
            r.sampling.temperature = 1.0f;
            r.sampling.seed = k == 2 ? 8 : 7;
            rg_gen_output out;
            gen_output_init(&out);
            CHECK_OK(generator_complete(g, &r, &out, &e), e);
            texts[k] = strdup(out.text.data ? out.text.data : "");
            gen_output_free(&out);
        }
        CHECK_STR(texts[0], texts[1]);
        CHECK_MSG(strcmp(texts[0], texts[2]) != 0, "seeds 7 and 8 both gave '%s'", texts[0]);
        for (int k = 0; k < 3; k++)
            free(texts[k]);
    }

    /* over-long and invalid requests */
    {
        rg_gen_request r;
        greedy_request(&r, &ids[0], 9000);
        rg_gen_seq *s = NULL;
        CHECK(generator_submit(g, &r, &s, &e) == RG_ERR_INVALID && !s && strstr(e.msg, "context"));
        int32_t bad = 1 << 30;
        r.prompt = &bad;
        r.n_prompt = 1;
        r.max_tokens = 4;
        CHECK(generator_submit(g, &r, &s, &e) == RG_ERR_INVALID && !s);
    }
    generator_stop(g);

    /* a full queue and cancellation, on an engine of one slot */
    o.max_seqs = 1;
    o.queue_capacity = 1;
    g = NULL;
    CHECK_OK(generator_start(path, &o, &g, &e), e);
    if (g) {
        rg_gen_request r;
        greedy_request(&r, &ids[5], 200);
        rg_gen_seq *a = NULL, *b = NULL, *c = NULL;
        CHECK_OK(generator_submit(g, &r, &a, &e), e);
        wait_until(g, one_running, "the first sequence to run");
        CHECK_OK(generator_submit(g, &r, &b, &e), e);
        CHECK(generator_submit(g, &r, &c, &e) == RG_ERR_BUSY && !c);
        rg_gen_stats stats;
        generator_stats(g, &stats);
        CHECK(stats.running == 1 && stats.queued == 1 && stats.kv_used_tokens > 0);
        /* both go away: the running one mid-way, the queued one before it starts */
        rg_gen_output out;
        gen_output_init(&out);
        generator_read(a, -1, &out);
        generator_release(a);
        generator_release(b);
        wait_until(g, idle, "the engine to free both sequences");
        generator_stats(g, &stats);
        CHECK_MSG(stats.cancelled == 2, "cancelled %llu", (unsigned long long)stats.cancelled);
        gen_output_free(&out);
        /* and it still answers */
        greedy_request(&r, &ids[0], GEN_TOKENS);
        gen_output_init(&out);
        CHECK_OK(generator_complete(g, &r, &out, &e), e);
        CHECK(out.text.data && alone[0].text.data && strcmp(out.text.data, alone[0].text.data) == 0);
        gen_output_free(&out);
        generator_stop(g);
    }

    for (int i = 0; i < N_PROMPTS; i++) {
        gen_output_free(&alone[i]);
        bpe_ids_free(&ids[i]);
    }
    return check_finish("test_gen_engine");
}
