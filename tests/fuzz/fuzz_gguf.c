/* fuzz_gguf.c - a GGUF model file from outside, through every reader ragd
 * has for one: the container (from memory and mapped), the BPE tokenizer
 * and chat template in its metadata, the Llama-family decoder (and, when it
 * loads, a prefill and a decode step), the BERT embedder, the BERT
 * cross-encoder's head and the causal-LM reranker. Seeds: tiny models of
 * each kind (scripts/gen_fuzz_seeds.py). */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "generate/chat_template.h"
#include "model/bpe.h"
#include "model/gguf.h"

static void walk_metadata(const gguf_file *g)
{
    size_t n = gguf_kv_count(g);
    for (size_t i = 0; i < n; i++) {
        const gguf_kv *kv = gguf_kv_at(g, i);
        FUZZ_CHECK(kv && gguf_kv_key(kv), "kv %zu of %zu missing", i, n);
        const gguf_value *v = kv;
        size_t len = 0;
        const char *s;
        switch (gguf_value_type(v)) {
        case GGUF_TYPE_STRING:
            s = gguf_kv_string(v, &len);
            FUZZ_CHECK(s && strlen(s) <= len, "string value longer than its length");
            break;
        case GGUF_TYPE_ARRAY: {
            size_t m = gguf_kv_array_len(v);
            for (size_t j = 0; j < m && j < 64; j++) {
                rg_err e = {0};
                int64_t i64;
                double f64;
                if (gguf_kv_array_type(v) == GGUF_TYPE_STRING)
                    (void)gguf_kv_array_string(v, j, &len);
                else if (gguf_kv_array_i64(v, j, &i64, &e) != RG_OK)
                    (void)gguf_kv_array_f64(v, j, &f64, &e);
            }
            (void)gguf_kv_array_at(v, m); /* one past the end: NULL, not a read */
            break;
        }
        default: {
            rg_err e = {0};
            double f;
            int64_t i64;
            uint64_t u64;
            (void)gguf_kv_f64(v, &f, &e);
            (void)gguf_kv_i64(v, &i64, &e);
            (void)gguf_kv_u64(v, &u64, &e);
        }
        }
    }
}

static void walk_tensors(const gguf_file *g, const uint8_t *base, size_t size)
{
    size_t n = gguf_tensor_count(g);
    for (size_t i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        FUZZ_CHECK(t && t->data, "tensor %zu of %zu missing", i, n);
        FUZZ_CHECK((const uint8_t *)t->data >= base && t->nbytes <= size &&
                       (size_t)((const uint8_t *)t->data - base) <= size - t->nbytes,
                   "tensor %s's %zu bytes are not inside the %zu-byte file", t->name, t->nbytes, size);
        if (t->n_elems > 0 && t->n_elems <= (1 << 16)) {
            float *f = malloc((size_t)t->n_elems * sizeof *f);
            rg_err e = {0};
            if (f && gguf_tensor_to_f32(t, f, &e) != RG_OK)
                FUZZ_CHECK(e.msg[0], "gguf_tensor_to_f32(%s) failed without a message", t->name);
            free(f);
        }
    }
}

static void try_tokenizer(const gguf_file *g)
{
    rg_bpe *tok = NULL;
    rg_err e = {0};
    rg_status st = bpe_load_gguf(g, &tok, &e);
    fuzz_outcome("bpe_load_gguf", st, &e);
    if (st != RG_OK)
        return;
    static const char text[] = "<|im_start|>user\nHello, caf\xc3\xa9 \xe4\xb8\x96 12345  \t\n x<s></s>\xff";
    rg_bpe_ids ids = {0};
    if (bpe_encode(tok, text, sizeof text - 1, RG_BPE_ADD_SPECIAL | RG_BPE_PARSE_SPECIAL, &ids, &e) == RG_OK) {
        rg_buf out;
        rg_buf_init(&out, 0);
        (void)bpe_decode(tok, ids.ids, ids.n, 0, &out, &e);
        rg_bpe_stream s;
        bpe_stream_init(&s, 1);
        for (size_t i = 0; i < ids.n; i++)
            (void)bpe_stream_step(tok, &s, ids.ids[i], &out, &e);
        (void)bpe_stream_finish(tok, &s, &out, &e);
        rg_buf_free(&out);
    }
    bpe_ids_free(&ids);
    /* every id of the vocabulary has bytes (or is refused) */
    size_t V = bpe_vocab_size(tok);
    for (size_t i = 0; i < V && i < 4096; i++) {
        size_t len = 0;
        (void)bpe_token_bytes(tok, (int32_t)i, &len);
        (void)bpe_token_piece(tok, (int32_t)i, &len);
    }
    rg_chat_template tpl;
    if (chat_template_detect(bpe_chat_template(tok), NULL, NULL, &tpl, &e) == RG_OK) {
        rg_chat_message m[2] = {{"system", "be brief", 8}, {"user", "hi <|im_end|>", 13}};
        rg_chat_prompt p;
        chat_prompt_init(&p);
        if (chat_template_apply(&tpl, m, 2, 1, &p, &e) == RG_OK && chat_prompt_encode(tok, &p, &ids, &e) == RG_OK)
            bpe_ids_free(&ids);
        chat_prompt_free(&p);
    }
    bpe_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *g = NULL;
    rg_err e = {0};
    rg_status mem = gguf_open_memory(data, size, &g, &e);
    fuzz_outcome("gguf_open_memory", mem, &e);
    if (mem == RG_OK) {
        walk_metadata(g);
        walk_tensors(g, data, size);
        try_tokenizer(g);
        gguf_close(g);
    }
    const char *path = fuzz_file("model.gguf", data, size);
    rg_status mapped = gguf_open(path, &g, &e);
    FUZZ_CHECK((mapped == RG_OK) == (mem == RG_OK), "gguf_open %d but gguf_open_memory %d", (int)mapped, (int)mem);
    if (mapped == RG_OK)
        gguf_close(g);
    if (mem != RG_OK)
        return 0; /* the model loaders open it the same way */
    fuzz_run_decoder(path, size & 1, size & 2);
    fuzz_run_lm_reranker(path);
    fuzz_run_encoders(path);
    return 0;
}
