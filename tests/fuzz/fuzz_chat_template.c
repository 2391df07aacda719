/* fuzz_chat_template.c - a chat template from a model file and a
 * conversation from a client: template detection (generate/chat_template.c),
 * rendering and the prompt's encoding, where a message must never forge a
 * turn marker. Input: the template's text, a NUL byte, then messages
 * "ROLE\x1fCONTENT" separated by \x1e (scripts/gen_fuzz_seeds.py). The
 * tokenizer is the byte-level seed model's (tests/fuzz/seeds/gguf), whose
 * vocabulary has ChatML's markers. */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "generate/chat_template.h"
#include "model/bpe.h"

#define MAX_MSGS 16

static rg_bpe *tok;

static size_t split_messages(const char *s, size_t len, rg_chat_message *m, char roles[MAX_MSGS][16])
{
    size_t n = 0;
    while (len && n < MAX_MSGS) {
        const char *end = memchr(s, '\x1e', len);
        size_t one = end ? (size_t)(end - s) : len;
        const char *sep = memchr(s, '\x1f', one);
        size_t rl = sep ? (size_t)(sep - s) : 0;
        if (rl >= sizeof roles[n])
            rl = sizeof roles[n] - 1;
        memcpy(roles[n], s, rl);
        roles[n][rl] = '\0';
        m[n].role = roles[n];
        m[n].content = sep ? sep + 1 : s;
        m[n].content_len = sep ? one - (size_t)(sep + 1 - s) : one;
        n++;
        if (!end)
            break;
        len -= one + 1;
        s = end + 1;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rg_err e = {0};
    if (!tok && bpe_load_gguf_path("tests/fuzz/seeds/gguf/llama_bpe.gguf", &tok, &e) != RG_OK) {
        fprintf(stderr, "fuzz_chat_template: %s (run from the repository root)\n", e.msg);
        exit(2);
    }
    const char *nul = memchr(data, '\0', size);
    if (!nul)
        return 0;
    const char *jinja = (const char *)data; /* NUL-terminated at nul */
    rg_chat_message m[MAX_MSGS];
    char roles[MAX_MSGS][16];
    size_t n = split_messages(nul + 1, size - (size_t)(nul + 1 - jinja), m, roles);

    rg_chat_template t;
    rg_status st = chat_template_detect(jinja, "<s>", "</s>", &t, &e);
    FUZZ_CHECK(st == RG_OK || e.msg[0], "chat_template_detect failed without a message");
    if (st != RG_OK && chat_template_named("chatml", NULL, NULL, &t, &e) != RG_OK)
        return 0;
    rg_chat_prompt p;
    chat_prompt_init(&p);
    if (chat_template_apply(&t, m, n, 1, &p, &e) == RG_OK) {
        for (size_t i = 0; i < p.n_pieces; i++)
            FUZZ_CHECK(p.pieces[i].off <= p.text.len && p.pieces[i].len <= p.text.len - p.pieces[i].off,
                       "piece %zu at %zu+%zu of a %zu-byte prompt", i, p.pieces[i].off, p.pieces[i].len, p.text.len);
        rg_bpe_ids ids = {0};
        if (chat_prompt_encode(tok, &p, &ids, &e) == RG_OK) {
            /* a message may spell a marker, but only markup turns into one */
            size_t markers = 0, markup_markers = 0;
            int32_t start = bpe_piece_id(tok, "<|im_start|>", 12);
            for (size_t i = 0; i < ids.n; i++)
                markers += ids.ids[i] == start;
            for (size_t i = 0; i < p.n_pieces; i++) {
                if (!p.pieces[i].markup)
                    continue;
                const char *s = p.text.data + p.pieces[i].off;
                for (size_t k = 0; k + 12 <= p.pieces[i].len; k++)
                    markup_markers += !memcmp(s + k, "<|im_start|>", 12);
            }
            FUZZ_CHECK(start < 0 || markers == markup_markers, "%zu <|im_start|> tokens from %zu in the markup",
                       markers, markup_markers);
        }
        bpe_ids_free(&ids);
    }
    chat_prompt_free(&p);
    return 0;
}
