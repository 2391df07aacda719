/* test_bpe_malformed.c - malformed GGUF tokenizer metadata gives a clear
 * error, never a crash: merges naming unknown tokens or no pair, ids out of
 * range, arrays of the wrong type or length, absurd counts, unknown models
 * and pre-tokenizers. A well-formed tiny vocabulary built the same way must
 * load and merge, so the failures are the metadata's fault. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/bpe.h"

typedef struct wbuf {
    unsigned char *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *w, const void *src, size_t n)
{
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->n + n)
            cap *= 2;
        w->p = realloc(w->p, cap);
        if (!w->p)
            exit(2);
        w->cap = cap;
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}

static void put_le(wbuf *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put(w, b, (size_t)bytes);
}

static void put_str(wbuf *w, const char *s)
{
    put_le(w, strlen(s), 8);
    put(w, s, strlen(s));
}

static void kv_head(wbuf *w, const char *key, uint32_t type)
{
    put_str(w, key);
    put_le(w, type, 4);
}

static void kv_string(wbuf *w, const char *key, const char *v)
{
    kv_head(w, key, GGUF_TYPE_STRING);
    put_str(w, v);
}

static void kv_u32(wbuf *w, const char *key, uint32_t v)
{
    kv_head(w, key, GGUF_TYPE_UINT32);
    put_le(w, v, 4);
}

static void kv_strings(wbuf *w, const char *key, const char *const *v, size_t n)
{
    kv_head(w, key, GGUF_TYPE_ARRAY);
    put_le(w, GGUF_TYPE_STRING, 4);
    put_le(w, n, 8);
    for (size_t i = 0; i < n; i++)
        put_str(w, v[i]);
}

static void kv_i32s(wbuf *w, const char *key, const int32_t *v, size_t n)
{
    kv_head(w, key, GGUF_TYPE_ARRAY);
    put_le(w, GGUF_TYPE_INT32, 4);
    put_le(w, n, 8);
    for (size_t i = 0; i < n; i++)
        put_le(w, (uint32_t)v[i], 4);
}

/* GPT-2's byte-to-unicode spelling of byte b (written out again here so the
 * test does not lean on the code under test). */
static size_t byte_spelling(unsigned b, char *out)
{
    unsigned cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        unsigned n = 0;
        for (unsigned c = 0; c < b; c++)
            n += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255));
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* What to break in the file. */
typedef struct spec {
    const char *model;       /* tokenizer.ggml.model */
    const char *pre;         /* NULL: absent */
    const char *merge;       /* the one merge */
    uint32_t bos;            /* bos id */
    size_t n_types;          /* token_type entries (0: the right number) */
    int tokens_as_ints;      /* tokens stored as integers */
    uint64_t claimed_tokens; /* a count that does not match the data (0: honest) */
    int no_merges;
} spec;

#define N_TOKENS 259

static void build(const spec *s, wbuf *w)
{
    /* the 256 byte spellings, "ab", "<|end|>", "xyz" */
    static char spell[256][3];
    const char *tokens[N_TOKENS];
    for (unsigned b = 0; b < 256; b++) {
        size_t n = byte_spelling(b, spell[b]);
        spell[b][n] = 0;
        tokens[b] = spell[b];
    }
    tokens[256] = "ab";
    tokens[257] = "<|end|>";
    tokens[258] = "xyz";
    int32_t types[N_TOKENS];
    for (size_t i = 0; i < N_TOKENS; i++)
        types[i] = i == 257 ? 3 : 1;
    uint64_t n_kv = 5 + (s->pre != NULL) - (s->no_merges != 0);
    put(w, "GGUF", 4);
    put_le(w, 3, 4);
    put_le(w, 0, 8);
    put_le(w, n_kv, 8);
    kv_string(w, "tokenizer.ggml.model", s->model);
    if (s->pre)
        kv_string(w, "tokenizer.ggml.pre", s->pre);
    if (s->tokens_as_ints) {
        kv_i32s(w, "tokenizer.ggml.tokens", types, N_TOKENS);
    } else if (s->claimed_tokens) {
        kv_head(w, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY);
        put_le(w, GGUF_TYPE_STRING, 4);
        put_le(w, s->claimed_tokens, 8);
        put_str(w, "a");
    } else {
        kv_strings(w, "tokenizer.ggml.tokens", tokens, N_TOKENS);
    }
    kv_i32s(w, "tokenizer.ggml.token_type", types, s->n_types ? s->n_types : N_TOKENS);
    if (!s->no_merges)
        kv_strings(w, "tokenizer.ggml.merges", &s->merge, 1);
    kv_u32(w, "tokenizer.ggml.bos_token_id", s->bos);
    /* tensor data starts aligned even with no tensors */
    while (w->n % 32)
        put(w, "", 1);
}

static rg_status load(const spec *s, rg_bpe **t, rg_err *e)
{
    wbuf w = {0};
    build(s, &w);
    gguf_file *g = NULL;
    rg_status st = gguf_open_memory(w.p, w.n, &g, e);
    *t = NULL;
    if (!st)
        st = bpe_load_gguf(g, t, e);
    gguf_close(g);
    free(w.p);
    return st;
}

static void expect_error(const spec *s, rg_status want, const char *words, const char *what)
{
    rg_err e = {0};
    rg_bpe *t;
    rg_status st = load(s, &t, &e);
    CHECK_MSG(st == want, "%s: status %d (want %d): %s", what, (int)st, (int)want, e.msg);
    CHECK_MSG(strstr(e.msg, words) != NULL, "%s: message \"%s\" lacks \"%s\"", what, e.msg, words);
    CHECK(t == NULL);
    bpe_free(t);
}

int main(void)
{
    const spec good = {"gpt2", "smollm", "a b", 257, 0, 0, 0, 0};
    rg_err e = {0};
    rg_bpe *t;
    rg_status st = load(&good, &t, &e);
    CHECK_OK(st, e);
    if (t) {
        rg_bpe_ids ids = {0};
        CHECK_OK(bpe_encode(t, "ab<|end|>ab", 11, RG_BPE_PARSE_SPECIAL, &ids, &e), e);
        CHECK(ids.n == 3 && ids.ids[0] == 256 && ids.ids[1] == 257 && ids.ids[2] == 256);
        rg_buf out;
        rg_buf_init(&out, 0);
        int32_t bad = N_TOKENS + 5;
        CHECK(bpe_decode(t, &bad, 1, 0, &out, &e) == RG_ERR_INVALID);
        rg_bpe_stream s;
        bpe_stream_init(&s, 0);
        CHECK(bpe_stream_step(t, &s, -1, &out, &e) == RG_ERR_INVALID);
        rg_buf_free(&out);
        bpe_ids_free(&ids);
        bpe_free(t);
    }

    spec s = good;
    s.merge = "a zz";
    expect_error(&s, RG_ERR_CORRUPT, "merge 0", "merge naming an unknown token");
    s = good;
    s.merge = "b a";
    expect_error(&s, RG_ERR_CORRUPT, "\"ba\" is not in the vocabulary", "merge making an unknown token");
    s = good;
    s.merge = "ab";
    expect_error(&s, RG_ERR_CORRUPT, "not \"left right\"", "merge without a pair");
    s = good;
    s.bos = 100000;
    expect_error(&s, RG_ERR_CORRUPT, "outside the vocabulary", "bos id out of range");
    s = good;
    s.n_types = 3;
    expect_error(&s, RG_ERR_CORRUPT, "token_type has 3 entries", "token_type of the wrong length");
    s = good;
    s.tokens_as_ints = 1;
    expect_error(&s, RG_ERR_CORRUPT, "not an array of strings", "tokens that are not strings");
    s = good;
    s.claimed_tokens = (uint64_t)1 << 40;
    {
        rg_bpe *u;
        rg_err e2 = {0};
        CHECK(load(&s, &u, &e2) != RG_OK && u == NULL && e2.msg[0]);
    }
    s = good;
    s.pre = "no-such-pre";
    expect_error(&s, RG_ERR_UNSUPPORTED, "no-such-pre", "unknown pre-tokenizer");
    s = good;
    s.model = "bert";
    expect_error(&s, RG_ERR_UNSUPPORTED, "not BPE", "WordPiece vocabulary");
    s = good;
    s.model = "llama";
    s.no_merges = 1;
    expect_error(&s, RG_ERR_CORRUPT, "scores or merges", "SentencePiece without scores");
    s = good;
    s.no_merges = 1;
    expect_error(&s, RG_ERR_CORRUPT, "merges is missing", "byte-level without merges");
    return check_finish("test_bpe_malformed");
}
