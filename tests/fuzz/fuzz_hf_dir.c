/* fuzz_hf_dir.c - a Hugging Face model directory from outside: config.json,
 * safetensors (one file, or shards through model.safetensors.index.json),
 * tokenizer files and the sentence-transformers module files, through the
 * decoder, the embedder, the cross-encoder and both tokenizer loaders (and a
 * forward pass of whichever loads).
 *
 * Input: records [u8 file][u32 little-endian size][size bytes]; the file
 * byte picks a name from FILES below (mod its count), so a mutation changes
 * contents and which files exist, never a path. Seeds: a BERT embedder, a
 * BERT cross-encoder, a Llama decoder and a sharded one
 * (scripts/gen_fuzz_seeds.py). */
#include "tests/fuzz/fuzz.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/bpe.h"
#include "model/cross_encoder.h"
#include "model/decoder.h"
#include "model/encoder.h"
#include "model/tokenizer.h"

static const char *const FILES[] = {"config.json",
                                    "model.safetensors",
                                    "tokenizer.json",
                                    "tokenizer_config.json",
                                    "vocab.txt",
                                    "modules.json",
                                    "sentence_bert_config.json",
                                    "1_Pooling/config.json",
                                    "model.safetensors.index.json",
                                    "model-00001-of-00002.safetensors",
                                    "model-00002-of-00002.safetensors",
                                    "special_tokens_map.json",
                                    "config_sentence_transformers.json"};
#define N_FILES (sizeof FILES / sizeof *FILES)

static char dir[600];

static void clear_dir(void)
{
    char p[700];
    for (size_t i = 0; i < N_FILES; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, FILES[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/1_Pooling", dir);
    rmdir(p);
}

static void remove_all(void)
{
    clear_dir();
    rmdir(dir);
}

static int write_records(const uint8_t *data, size_t size)
{
    clear_dir();
    char p[700];
    snprintf(p, sizeof p, "%s/1_Pooling", dir);
    mkdir(p, 0700);
    size_t off = 0;
    int files = 0;
    while (size - off >= 5) {
        uint32_t len;
        unsigned which = data[off] % N_FILES;
        memcpy(&len, data + off + 1, 4); /* little-endian hosts only (x86-64, arm64) */
        off += 5;
        if (len > size - off)
            len = (uint32_t)(size - off);
        snprintf(p, sizeof p, "%s/%s", dir, FILES[which]);
        FILE *f = fopen(p, "wb");
        if (!f || (len && fwrite(data + off, 1, len, f) != len) || fclose(f) != 0) {
            perror("fuzz_hf_dir: writing a file");
            exit(2);
        }
        off += len;
        files++;
    }
    return files;
}

static void check_failure(const char *who, rg_status st, const rg_err *e)
{
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "  %s: %s\n", who, st == RG_OK ? "ok" : e->msg);
    FUZZ_CHECK(st == RG_OK || e->msg[0], "%s failed (status %d) without a message", who, (int)st);
}

static void try_decoder(void)
{
    rg_decoder_opts o = {0};
    o.threads = 1;
    o.device = RG_DEVICE_CPU;
    o.device_set = 1;
    rg_decoder *d = NULL;
    rg_err e = {0};
    rg_status st = decoder_load(dir, &o, &d, &e);
    check_failure("decoder_load", st, &e);
    if (st != RG_OK)
        return;
    size_t V = decoder_vocab(d);
    rg_kv_cache *kv = NULL;
    float *logits = decoder_logits_alloc(d, 1);
    if (logits && kv_cache_alloc(d, 6, RG_KV_F32, &kv, &e) == RG_OK) {
        int32_t ids[3] = {0, (int32_t)(1 % V), (int32_t)(V - 1)};
        if (decoder_prefill(d, kv, ids, 3, logits, &e) == RG_OK) {
            rg_kv_cache *kvs[1] = {kv};
            int32_t next = 0;
            check_failure("decoder_decode", decoder_decode(d, kvs, &next, 1, logits, &e), &e);
        }
    }
    kv_cache_free(kv);
    decoder_logits_free(d, logits);
    decoder_free(d);
}

static void try_encoders(void)
{
    rg_encoder *enc = NULL;
    rg_err e = {0};
    rg_status st = encoder_load(dir, &enc, &e);
    check_failure("encoder_load", st, &e);
    if (st == RG_OK) {
        const char *texts[2] = {"hello world, the caf\xc3\xa9", "unaffable"};
        float *out = malloc(2 * encoder_dim(enc) * sizeof *out);
        if (out)
            check_failure("encoder_embed", encoder_embed(enc, texts, NULL, 2, out, NULL, &e), &e);
        free(out);
        encoder_free(enc);
    }
    rg_cross_encoder *ce = NULL;
    st = cross_encoder_load(dir, RG_DEVICE_CPU, &ce, &e);
    check_failure("cross_encoder_load", st, &e);
    if (st == RG_OK) {
        const char *passages[2] = {"hello world", "the world is"};
        float logits[2];
        check_failure("cross_encoder_score", cross_encoder_score(ce, "hello", 5, passages, NULL, 2, 2, logits, NULL, &e),
                      &e);
        cross_encoder_free(ce);
    }
}

static void try_tokenizers(void)
{
    rg_err e = {0};
    rg_bpe *b = NULL;
    rg_status st = bpe_load_dir(dir, &b, &e);
    check_failure("bpe_load_dir", st, &e);
    if (st == RG_OK) {
        rg_bpe_ids ids = {0};
        (void)bpe_encode(b, "Hello <|im_start|> 12", 21, RG_BPE_ADD_SPECIAL | RG_BPE_PARSE_SPECIAL, &ids, &e);
        bpe_ids_free(&ids);
        bpe_free(b);
    }
    rg_tokenizer *t = NULL;
    st = tokenizer_load(dir, &t, &e);
    check_failure("tokenizer_load", st, &e);
    if (st == RG_OK)
        tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/hf", fuzz_dir());
        if (mkdir(dir, 0700) != 0) {
            perror(dir);
            exit(2);
        }
        atexit(remove_all); /* runs before fuzz_dir's own clean-up */
    }
    if (!write_records(data, size))
        return 0;
    try_tokenizers();
    try_decoder();
    try_encoders();
    return 0;
}
