/* fuzz_tokenizer_json.c - a tokenizer.json from outside, through both
 * loaders that read one (WordPiece for the encoders, BPE for the decoders),
 * then, when one loads, text through it: encode (single and pair, with
 * truncation), decode and streamed decode. Seeds: a WordPiece, a
 * byte-level BPE and a SentencePiece BPE file (scripts/gen_fuzz_seeds.py). */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "model/bpe.h"
#include "model/tokenizer.h"

static const char TEXT[] = "Hello, caf\xc3\xa9 na\xc3\xafve \xe4\xb8\x96\xe7\x95\x8c 12345 the thing's <s> [SEP] "
                           "\xf0\x9f\x98\x80 x\t\n  unaffable\xff";

static void try_wordpiece(const char *path)
{
    rg_tokenizer *t = NULL;
    rg_err e = {0};
    rg_status st = tokenizer_load_json(path, &t, &e);
    FUZZ_CHECK(st == RG_OK || e.msg[0], "tokenizer_load_json failed (status %d) without a message", (int)st);
    if (st != RG_OK)
        return;
    rg_encoding enc = {0};
    if (tokenizer_encode_single(t, TEXT, sizeof TEXT - 1, 16, RG_TRUNC_END, &enc, &e) == RG_OK) {
        FUZZ_CHECK(enc.n <= 16, "%zu tokens past the limit of 16", enc.n);
        for (size_t i = 0; i < enc.n; i++)
            FUZZ_CHECK(enc.ids[i] >= 0 && (size_t)enc.ids[i] < tokenizer_vocab_size(t), "id %d out of the vocabulary",
                       (int)enc.ids[i]);
    }
    if (tokenizer_encode_pair(t, "the query", 9, TEXT, sizeof TEXT - 1, 12, RG_TRUNC_END, &enc, &e) == RG_OK)
        FUZZ_CHECK(enc.n <= 12, "%zu tokens past the pair limit of 12", enc.n);
    encoding_free(&enc);
    (void)tokenizer_count(t, TEXT, sizeof TEXT - 1);
    tokenizer_free(t);
}

static void try_bpe(const char *path)
{
    rg_bpe *t = NULL;
    rg_err e = {0};
    rg_status st = bpe_load_json(path, NULL, &t, &e);
    FUZZ_CHECK(st == RG_OK || e.msg[0], "bpe_load_json failed (status %d) without a message", (int)st);
    if (st != RG_OK)
        return;
    rg_bpe_ids ids = {0};
    rg_buf out;
    rg_buf_init(&out, 0);
    if (bpe_encode(t, TEXT, sizeof TEXT - 1, RG_BPE_ADD_SPECIAL | RG_BPE_PARSE_SPECIAL, &ids, &e) == RG_OK) {
        for (size_t i = 0; i < ids.n; i++)
            FUZZ_CHECK(ids.ids[i] >= 0 && (size_t)ids.ids[i] < bpe_vocab_size(t), "id %d out of the vocabulary",
                       (int)ids.ids[i]);
        (void)bpe_decode(t, ids.ids, ids.n, 1, &out, &e);
        rg_bpe_stream s;
        bpe_stream_init(&s, 0);
        for (size_t i = 0; i < ids.n; i++)
            (void)bpe_stream_step(t, &s, ids.ids[i], &out, &e);
        (void)bpe_stream_finish(t, &s, &out, &e);
    }
    /* ids the encoder never produces: every vocabulary entry, and past it */
    int32_t probe[4] = {0, (int32_t)bpe_vocab_size(t) - 1, (int32_t)bpe_vocab_size(t), -1};
    rg_buf_reset(&out);
    (void)bpe_decode(t, probe, 4, 0, &out, &e);
    rg_buf_free(&out);
    bpe_ids_free(&ids);
    bpe_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("tokenizer.json", data, size);
    try_wordpiece(path);
    try_bpe(path);
    return 0;
}
