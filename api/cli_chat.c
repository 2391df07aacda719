/* ragd chat: the generation model from the terminal, without a server.
 * One-shot with a question as argument (or on stdin when it is not a
 * terminal); on a terminal without a question, a conversation: each line
 * is a user turn, the answer streams as it is generated, /exit or end of
 * input (Ctrl-D) ends it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/cli.h"
#include "common/fs.h"
#include "common/log.h"
#include "generate/engine.h"

#define CHAT_MAX_INPUT ((size_t)1 << 20)
#define CHAT_MAX_TURNS 256

static const char chat_help[] =
    "usage: ragd chat [\"question\"] [options]\n\n"
    "Asks the generation model and streams its answer. Without a question, reads\n"
    "one from stdin, or on a terminal holds a conversation (/exit or Ctrl-D ends it).\n\n"
    "  --gen-model PATH    GGUF file or Hugging Face directory (default\n"
    "                      $RAGD_MODELS/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf\n"
    "                      or under ./models)\n"
    "  --system TEXT       system message (default: the model's own, if its template has one)\n"
    "  --max-tokens N      most tokens per answer (default 512)\n"
    "  --temperature T     0 for greedy decoding (default 0.7)\n"
    "  --top-p P           nucleus sampling (default 0.9)\n"
    "  --seed N            same seed, same answer (default: random)\n"
    "  --chat-template T   chatml, llama3, llama2 or mistral, for a model whose own\n"
    "                      template ragd does not recognise\n"
    "  --threads N         decoder threads (default: the online CPUs)\n"
    "  --device D          where the model runs: cpu, cuda or auto (default $RAGD_DEVICE,\n"
    "                      else auto: the GPU when one is usable)\n";

void cli_default_gen_model(char *out, size_t size)
{
    const char *models = getenv("RAGD_MODELS");
    snprintf(out, size, "%s/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
             models && *models ? models : "./models");
}

int cli_gen_model(const rg_cli_opt *opts, size_t n, char *buf, size_t size, int warn, const char **path)
{
    const rg_cli_opt *o = cli_opt(opts, n, "--gen-model");
    *path = NULL;
    if (o) {
        if (strcmp(o->value, "none") == 0)
            return 0;
        if (!fs_is_file(o->value) && !fs_is_dir(o->value)) {
            fprintf(stderr, "ragd: --gen-model %s: no such file or directory\n", o->value);
            return -1;
        }
        *path = o->value;
        return 0;
    }
    cli_default_gen_model(buf, size);
    if (fs_is_file(buf))
        *path = buf;
    else if (warn)
        LOG_WARN("no generation model at %s (run `make models`); /v1/chat/completions is off", buf);
    return 0;
}

int cli_gen_opts(const rg_cli_opt *opts, size_t n, rg_gen_opts *o)
{
    const rg_cli_opt *t = cli_opt(opts, n, "--chat-template");
    if (t) {
        rg_chat_template probe;
        rg_err e;
        if (chat_template_named(t->value, NULL, NULL, &probe, &e)) {
            fprintf(stderr, "ragd: --chat-template: %s\n", e.msg);
            return -1;
        }
        o->chat_template = t->value;
    }
    if (cli_size(cli_opt(opts, n, "--kv-cache-mb"), 1, (size_t)1 << 20, &o->kv_cache_mb) ||
        cli_size(cli_opt(opts, n, "--gen-max-seqs"), 1, 1024, &o->max_seqs) ||
        cli_size(cli_opt(opts, n, "--gen-queue"), 1, 100000, &o->queue_capacity) ||
        cli_size(cli_opt(opts, n, "--gen-prefill-tokens"), 16, 1 << 20, &o->prefill_tokens) ||
        cli_size(cli_opt(opts, n, "--default-max-tokens"), 1, 1 << 20, &o->default_max_tokens) ||
        cli_device(opts, n, &o->device))
        return -1;
    return 0;
}

static int parse_float(const rg_cli_opt *o, double lo, double hi, float *out)
{
    if (!o)
        return 0;
    char *end;
    double v = strtod(o->value, &end);
    if (end == o->value || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "ragd: %s must be a number in [%g, %g]\n", o->long_name, lo, hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}

/* One answer to the conversation so far, streamed to stdout; its text is
 * appended to reply. Returns 0 or -1 after printing an error. */
static int answer(rg_generator *g, const rg_chat_message *msgs, size_t n, const rg_gen_request *base, rg_buf *reply)
{
    rg_err e;
    const rg_chat_template *t = generator_chat_template(g, &e);
    if (!t) {
        fprintf(stderr, "ragd: %s\n", e.msg);
        return -1;
    }
    rg_chat_prompt p;
    chat_prompt_init(&p);
    rg_bpe_ids ids = {0};
    rg_status st = chat_template_apply(t, msgs, n, 1, &p, &e);
    if (!st)
        st = chat_prompt_encode(generator_tokenizer(g), &p, &ids, &e);
    chat_prompt_free(&p);
    rg_gen_request req = *base;
    req.prompt = ids.ids;
    req.n_prompt = ids.n;
    rg_gen_seq *seq = NULL;
    if (!st)
        st = generator_submit(g, &req, &seq, &e);
    bpe_ids_free(&ids);
    if (st) {
        fprintf(stderr, "ragd: %s\n", e.msg);
        return -1;
    }
    rg_gen_output out;
    gen_output_init(&out);
    int rc = 0;
    while (out.finish == RG_GEN_RUNNING) {
        if (generator_read(seq, -1, &out) < 0) {
            rc = -1;
            break;
        }
        if (out.text.len) {
            fwrite(out.text.data, 1, out.text.len, stdout);
            fflush(stdout);
            if (rg_buf_append(reply, out.text.data, out.text.len, &e))
                rc = -1;
            gen_output_clear(&out);
        }
    }
    generator_release(seq);
    if (out.finish == RG_GEN_ERROR) {
        fprintf(stderr, "\nragd: %s\n", out.err.msg);
        rc = -1;
    }
    fputc('\n', stdout);
    gen_output_free(&out);
    return rc;
}

static int read_stdin(rg_buf *b)
{
    char chunk[65536];
    size_t n;
    rg_err e;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (rg_buf_append(b, chunk, n, &e)) {
            fprintf(stderr, "ragd: the question on stdin exceeds %zu bytes\n", CHAT_MAX_INPUT);
            return -1;
        }
    while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == '\r'))
        b->data[--b->len] = '\0';
    return 0;
}

/* The conversation on a terminal: alternating turns kept in bufs. */
static int converse(rg_generator *g, const char *system, const rg_gen_request *req)
{
    rg_chat_message msgs[2 * CHAT_MAX_TURNS + 1];
    rg_buf bufs[2 * CHAT_MAX_TURNS];
    size_t n = 0, nb = 0;
    if (system)
        msgs[n++] = (rg_chat_message){"system", system, strlen(system)};
    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (nb + 2 > 2 * CHAT_MAX_TURNS) {
            fprintf(stderr, "ragd: the conversation reached %d turns; start a new one\n", CHAT_MAX_TURNS);
            break;
        }
        fputs("> ", stdout);
        fflush(stdout);
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0)
            break;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strcmp(line, "/exit") == 0 || strcmp(line, "/quit") == 0)
            break;
        if (!len)
            continue;
        rg_err e;
        rg_buf_init(&bufs[nb], CHAT_MAX_INPUT);
        if (rg_buf_append(&bufs[nb], line, (size_t)len, &e)) {
            fprintf(stderr, "ragd: %s\n", e.msg);
            rg_buf_free(&bufs[nb]);
            continue;
        }
        msgs[n++] = (rg_chat_message){"user", bufs[nb].data, bufs[nb].len};
        nb++;
        rg_buf_init(&bufs[nb], 0);
        if (answer(g, msgs, n, req, &bufs[nb])) {
            /* the turn is dropped; the conversation goes on without it */
            rg_buf_free(&bufs[nb]);
            rg_buf_free(&bufs[--nb]);
            n--;
            rc = 1;
            continue;
        }
        msgs[n++] = (rg_chat_message){"assistant", bufs[nb].data ? bufs[nb].data : "", bufs[nb].len};
        nb++;
        rc = 0;
    }
    free(line);
    for (size_t i = 0; i < nb; i++)
        rg_buf_free(&bufs[i]);
    return rc;
}

int cli_chat(int argc, char **argv)
{
    rg_cli_opt opts[] = {
        {"--gen-model", NULL, 1, NULL, 0},   {"--system", NULL, 1, NULL, 0},      {"--max-tokens", NULL, 1, NULL, 0},
        {"--temperature", NULL, 1, NULL, 0}, {"--top-p", NULL, 1, NULL, 0},       {"--seed", NULL, 1, NULL, 0},
        {"--chat-template", NULL, 1, NULL, 0}, {"--threads", NULL, 1, NULL, 0}, {"--device", NULL, 1, NULL, 0},
    };
    size_t n = sizeof opts / sizeof opts[0], npos;
    const char *pos[1];
    int parsed = cli_parse(argc, argv, 2, opts, n, pos, 1, &npos, chat_help);
    if (parsed)
        return parsed < 0 ? 2 : 0;
    char buf[4096];
    const char *model = NULL;
    rg_gen_opts go;
    generator_opts_default(&go);
    go.max_seqs = 1;
    go.kv_cache_mb = 1024;
    if (cli_gen_model(opts, n, buf, sizeof buf, 0, &model) || cli_gen_opts(opts, n, &go) ||
        cli_size(cli_opt(opts, n, "--threads"), 1, 256, &go.threads))
        return 2;
    if (!model) {
        fprintf(stderr, "ragd: no generation model at %s (run `make models`, or name one with --gen-model)\n", buf);
        return 1;
    }
    rg_gen_request req;
    memset(&req, 0, sizeof req);
    sampling_params_default(&req.sampling);
    req.sampling.temperature = 0.7f;
    req.sampling.top_p = 0.9f;
    req.max_tokens = 512;
    size_t seed = 0;
    if (parse_float(cli_opt(opts, n, "--temperature"), 0, 2, &req.sampling.temperature) ||
        parse_float(cli_opt(opts, n, "--top-p"), 1e-6, 1, &req.sampling.top_p) ||
        cli_size(cli_opt(opts, n, "--max-tokens"), 1, 1000000, &req.max_tokens) ||
        cli_size(cli_opt(opts, n, "--seed"), 0, (size_t)-1, &seed))
        return 2;
    req.sampling.seed = cli_opt(opts, n, "--seed") ? (uint64_t)seed
                                                   : (uint64_t)clock_mono_us() ^ ((uint64_t)time(NULL) << 20);
    const rg_cli_opt *so = cli_opt(opts, n, "--system");
    const char *system = so ? so->value : NULL;

    /* a question from the argument or a non-terminal stdin: one answer */
    rg_buf question;
    rg_buf_init(&question, CHAT_MAX_INPUT);
    int interactive = !npos && isatty(STDIN_FILENO);
    if (!npos && !interactive && read_stdin(&question)) {
        rg_buf_free(&question);
        return 1;
    }
    if (!interactive && !npos && !question.len) {
        fprintf(stderr, "ragd: no question (give one as an argument or on stdin)\n");
        rg_buf_free(&question);
        return 2;
    }
    rg_generator *g = NULL;
    rg_err e;
    if (generator_start(model, &go, &g, &e)) {
        fprintf(stderr, "ragd: %s: %s\n", model, e.msg);
        rg_buf_free(&question);
        return 1;
    }
    int rc;
    if (interactive) {
        rc = converse(g, system, &req);
    } else {
        const char *q = npos ? pos[0] : question.data;
        rg_chat_message msgs[2];
        size_t nm = 0;
        if (system)
            msgs[nm++] = (rg_chat_message){"system", system, strlen(system)};
        msgs[nm++] = (rg_chat_message){"user", q, strlen(q)};
        rg_buf reply;
        rg_buf_init(&reply, 0);
        rc = answer(g, msgs, nm, &req, &reply) ? 1 : 0;
        rg_buf_free(&reply);
    }
    generator_stop(g);
    rg_buf_free(&question);
    return rc;
}
