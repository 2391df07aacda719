/* fuzz_tokenize.c - text from outside (a document, a query, a chat
 * message) through the default models' real tokenizers: WordPiece
 * (all-MiniLM-L6-v2), byte-level BPE (SmolLM2's GGUF, Llama 3.2's
 * tokenizer.json, Qwen2's GGUF vocabulary) and SentencePiece BPE (Llama 2's
 * vocabulary). The first input byte chooses options, the rest is the text.
 * Checked beside "no crash": ids inside the vocabulary, offsets inside the
 * text, streamed decoding equal to whole decoding, and byte-level BPE's
 * exact round trip of valid UTF-8. Needs the models (`make models`; the
 * directory is $RAGD_MODELS or ./models, run from the repository root). */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "common/utf8.h"
#include "model/bpe.h"
#include "model/bpe_impl.h" /* bpe_byte_spelling */
#include "model/tokenizer.h"

typedef struct {
    const char *name;
    rg_bpe *tok;
    int round_trip; /* byte-level: decode(encode(text)) == text for valid UTF-8 */
    uint8_t has_byte[256]; /* the vocabulary spells byte b (else encoding drops it) */
} named_bpe;

static rg_tokenizer *wordpiece;
static named_bpe bpes[4];

static void load_all(void)
{
    const char *models = getenv("RAGD_MODELS");
    if (!models || !*models)
        models = "models";
    char p[1024];
    rg_err e = {0};
    snprintf(p, sizeof p, "%s/all-MiniLM-L6-v2", models);
    if (tokenizer_load(p, &wordpiece, &e) != RG_OK)
        goto fail;
    snprintf(p, sizeof p, "%s/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf", models);
    bpes[0].name = "smollm2";
    bpes[0].round_trip = 1;
    if (bpe_load_gguf_path(p, &bpes[0].tok, &e) != RG_OK)
        goto fail;
    snprintf(p, sizeof p, "%s/llama-3.2-tokenizer", models);
    bpes[1].name = "llama3";
    bpes[1].round_trip = 1;
    if (bpe_load_dir(p, &bpes[1].tok, &e) != RG_OK)
        goto fail;
    bpes[2].name = "qwen2";
    if (bpe_load_gguf_path("tests/fixtures/bpe/ggml-vocab-qwen2.gguf", &bpes[2].tok, &e) != RG_OK)
        goto fail;
    bpes[3].name = "llama-spm";
    if (bpe_load_gguf_path("tests/fixtures/bpe/ggml-vocab-llama-spm.gguf", &bpes[3].tok, &e) != RG_OK)
        goto fail;
    for (size_t i = 0; i < sizeof bpes / sizeof *bpes; i++) {
        for (unsigned b = 0; b < 256; b++) {
            char s[8];
            size_t n = bpe_byte_spelling(b, s); /* GPT-2's character for byte b */
            bpes[i].has_byte[b] = bpe_piece_id(bpes[i].tok, s, n) >= 0;
        }
    }
    return;
fail:
    fprintf(stderr, "fuzz_tokenize: %s (run from the repository root after `make models`)\n", e.msg);
    exit(2);
}

static void check_wordpiece(const char *text, size_t len)
{
    rg_encoding enc = {0};
    rg_err e = {0};
    if (tokenizer_tokenize(wordpiece, text, len, &enc, &e) == RG_OK) {
        for (size_t i = 0; i < enc.n; i++) {
            FUZZ_CHECK(enc.ids[i] >= 0 && (size_t)enc.ids[i] < tokenizer_vocab_size(wordpiece), "id %d",
                       (int)enc.ids[i]);
            FUZZ_CHECK(enc.start[i] <= enc.end[i] && enc.end[i] <= len, "token %zu at [%zu, %zu) of %zu bytes", i,
                       enc.start[i], enc.end[i], len);
        }
        FUZZ_CHECK(tokenizer_count(wordpiece, text, len) == enc.n, "count %zu, tokens %zu",
                   tokenizer_count(wordpiece, text, len), enc.n);
    }
    if (tokenizer_encode_pair(wordpiece, text, len, text, len / 2, 32, RG_TRUNC_END, &enc, &e) == RG_OK)
        FUZZ_CHECK(enc.n <= 32, "pair of %zu tokens past 32", enc.n);
    encoding_free(&enc);
}

static void check_bpe(const named_bpe *b, const char *text, size_t len, unsigned flags, int valid_utf8)
{
    rg_bpe_ids ids = {0};
    rg_err e = {0};
    if (bpe_encode(b->tok, text, len, flags, &ids, &e) != RG_OK) {
        FUZZ_CHECK(e.msg[0], "%s: bpe_encode failed without a message", b->name);
        return;
    }
    for (size_t i = 0; i < ids.n; i++)
        FUZZ_CHECK(ids.ids[i] >= 0 && (size_t)ids.ids[i] < bpe_vocab_size(b->tok), "%s: id %d", b->name,
                   (int)ids.ids[i]);
    rg_buf whole, streamed;
    rg_buf_init(&whole, 0);
    rg_buf_init(&streamed, 0);
    FUZZ_CHECK(bpe_decode(b->tok, ids.ids, ids.n, 0, &whole, &e) == RG_OK, "%s: decode: %s", b->name, e.msg);
    rg_bpe_stream s;
    bpe_stream_init(&s, 0);
    for (size_t i = 0; i < ids.n; i++)
        FUZZ_CHECK(bpe_stream_step(b->tok, &s, ids.ids[i], &streamed, &e) == RG_OK, "%s: stream: %s", b->name,
                   e.msg);
    FUZZ_CHECK(bpe_stream_finish(b->tok, &s, &streamed, &e) == RG_OK, "%s: stream end: %s", b->name, e.msg);
    FUZZ_CHECK(whole.len == streamed.len && (!whole.len || !memcmp(whole.data, streamed.data, whole.len)),
               "%s: streamed decoding (%zu bytes) differs from whole decoding (%zu bytes)", b->name, streamed.len,
               whole.len);
    /* the text comes back exactly when the vocabulary spells all its bytes
     * (a dropped byte can leave the rest invalid UTF-8, decoded as U+FFFD) */
    int spellable = 1;
    for (size_t i = 0; i < len && spellable; i++)
        spellable = b->has_byte[(uint8_t)text[i]];
    if (b->round_trip && valid_utf8 && spellable && flags == 0)
        FUZZ_CHECK(whole.len == len && (!len || !memcmp(whole.data, text, len)),
                   "%s: decode(encode(text)) is %zu bytes, the text %zu", b->name, whole.len, len);
    rg_buf_free(&whole);
    rg_buf_free(&streamed);
    bpe_ids_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!wordpiece)
        load_all();
    if (size == 0 || size > 4096)
        return 0;
    unsigned flags = data[0] & (RG_BPE_ADD_SPECIAL | RG_BPE_PARSE_SPECIAL);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int valid = utf8_is_valid(text, len);
    check_wordpiece(text, len);
    for (size_t i = 0; i < sizeof bpes / sizeof *bpes; i++)
        check_bpe(&bpes[i], text, len, flags, valid);
    return 0;
}
