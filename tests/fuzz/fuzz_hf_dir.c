/* fuzz_hf_dir.c - a Hugging Face model directory from outside: config.json,
 * safetensors (one file, or shards through model.safetensors.index.json),
 * tokenizer files and the sentence-transformers module files, through the
 * decoder, the causal-LM reranker, the embedder, the cross-encoder and both
 * tokenizer loaders (and a forward pass of whichever loads).
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

static void try_tokenizers(void)
{
    rg_err e = {0};
    rg_bpe *b = NULL;
    rg_status st = bpe_load_dir(dir, &b, &e);
    fuzz_outcome("bpe_load_dir", st, &e);
    if (st == RG_OK) {
        rg_bpe_ids ids = {0};
        (void)bpe_encode(b, "Hello <|im_start|> 12", 21, RG_BPE_ADD_SPECIAL | RG_BPE_PARSE_SPECIAL, &ids, &e);
        bpe_ids_free(&ids);
        bpe_free(b);
    }
    rg_tokenizer *t = NULL;
    st = tokenizer_load(dir, &t, &e);
    fuzz_outcome("tokenizer_load", st, &e);
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
    fuzz_run_decoder(dir, size & 1, size & 2);
    fuzz_run_lm_reranker(dir);
    fuzz_run_encoders(dir);
    return 0;
}
