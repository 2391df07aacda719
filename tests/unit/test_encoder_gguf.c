/* test_encoder_gguf.c - loading a BERT encoder from a GGUF file in llama.cpp's
 * converter layout (model/encoder_gguf.c): a tiny model written here loads,
 * tokenizes through the undone "phantom space" vocabulary, embeds, follows
 * bert.pooling_type; malformed files (missing or misshapen tensor, bad
 * pooling type, wrong architecture or tokenizer, bad ids, truncation at any
 * point) are refused with a clear error and no crash. Real weights are
 * checked against the directory model in tests/integration/test_embed_gguf.py. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model/encoder.h"
#include "model/quant.h"
#include "model/tokenizer.h"

#define H 8
#define HEADS 2
#define FF 16
#define CTX 16
#define NTYPES 2

/* ---- a small GGUF writer -------------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} obuf;

static void emit(obuf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n)
            c *= 2;
        b->p = realloc(b->p, c);
        if (!b->p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->cap = c;
    }
    if (n) /* an empty buffer's p is NULL, which memcpy may not see */
        memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void emit_u32(obuf *b, uint32_t v) { emit(b, &v, 4); } /* x86-64 and arm64 are little-endian */
static void emit_u64(obuf *b, uint64_t v) { emit(b, &v, 8); }
static void emit_str(obuf *b, const char *s)
{
    emit_u64(b, strlen(s));
    emit(b, s, strlen(s));
}
static void emit_pad(obuf *b)
{
    static const unsigned char z[32];
    emit(b, z, (32 - b->n % 32) % 32);
}

/* What a test changes in the otherwise valid model. */
typedef struct {
    const char *arch;          /* general.architecture */
    const char *tok_model;     /* tokenizer.ggml.model */
    int pooling;               /* bert.pooling_type; -1 absent */
    const char *drop_kv;       /* a metadata key left out */
    const char *drop_tensor;   /* a tensor left out */
    const char *bad_tensor;    /* a tensor written with one dimension halved */
    uint32_t unk_id;           /* tokenizer.ggml.unknown_token_id */
    int f16;                   /* 2-D weights as F16 */
} spec;

static void spec_default(spec *s)
{
    memset(s, 0, sizeof *s);
    s->arch = "bert";
    s->tok_model = "bert";
    s->pooling = 1;
    s->unk_id = 1;
}

/* The vocabulary as the converter writes it: specials kept, words with a
 * leading U+2581, continuations without "##". */
static const char *TOKENS[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "\xe2\x96\x81hello",
                               "\xe2\x96\x81world", "ing", "\xe2\x96\x81the", "[unused0]"};
static const int32_t TOKTYPES[] = {3, 3, 3, 3, 3, 1, 1, 1, 1, 1};
#define NTOK (sizeof TOKENS / sizeof *TOKENS)

typedef struct {
    char name[64];
    uint64_t d0, d1; /* GGUF order; d1 0 for a vector */
} tinfo;

static size_t list_tensors(tinfo *t)
{
    size_t n = 0;
#define ADD(nm, a, b) (snprintf(t[n].name, sizeof t[n].name, "%s", nm), t[n].d0 = (a), t[n].d1 = (b), n++)
    ADD("token_embd_norm.bias", H, 0);
    ADD("token_embd_norm.weight", H, 0);
    ADD("position_embd.weight", H, CTX);
    ADD("token_types.weight", H, NTYPES);
    ADD("token_embd.weight", H, NTOK);
    static const struct {
        const char *s;
        uint64_t a, b;
    } L[] = {{"attn_output_norm.bias", H, 0}, {"attn_output_norm.weight", H, 0}, {"attn_output.bias", H, 0},
             {"attn_output.weight", H, H},    {"attn_k.bias", H, 0},             {"attn_k.weight", H, H},
             {"attn_q.bias", H, 0},           {"attn_q.weight", H, H},           {"attn_v.bias", H, 0},
             {"attn_v.weight", H, H},         {"ffn_up.bias", FF, 0},            {"ffn_up.weight", H, FF},
             {"layer_output_norm.bias", H, 0}, {"layer_output_norm.weight", H, 0}, {"ffn_down.bias", H, 0},
             {"ffn_down.weight", FF, H}};
    for (size_t i = 0; i < sizeof L / sizeof *L; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "blk.0.%s", L[i].s);
        ADD(nm, L[i].a, L[i].b);
    }
#undef ADD
    return n;
}

static void kv_head(obuf *b, const char *key, uint32_t type)
{
    emit_str(b, key);
    emit_u32(b, type);
}

static void build(const spec *s, obuf *b)
{
    tinfo t[64];
    size_t nt = list_tensors(t), keep = 0;
    for (size_t i = 0; i < nt; i++)
        if (!s->drop_tensor || strcmp(t[i].name, s->drop_tensor) != 0)
            t[keep++] = t[i];
    nt = keep;
    for (size_t i = 0; i < nt; i++)
        if (s->bad_tensor && strcmp(t[i].name, s->bad_tensor) == 0)
            t[i].d0 /= 2;

    /* metadata, in a scratch buffer to count the pairs */
    obuf kv = {0};
    uint64_t nkv = 0;
#define KEEP(k) (!s->drop_kv || strcmp(s->drop_kv, (k)) != 0)
#define KV_STR(k, v) if (KEEP(k)) { kv_head(&kv, k, 8); emit_str(&kv, v); nkv++; }
#define KV_U32(k, v) if (KEEP(k)) { kv_head(&kv, k, 4); emit_u32(&kv, v); nkv++; }
    KV_STR("general.architecture", s->arch);
    KV_U32("bert.block_count", 1);
    KV_U32("bert.context_length", CTX);
    KV_U32("bert.embedding_length", H);
    KV_U32("bert.feed_forward_length", FF);
    KV_U32("bert.attention.head_count", HEADS);
    if (KEEP("bert.attention.layer_norm_epsilon")) {
        kv_head(&kv, "bert.attention.layer_norm_epsilon", 6);
        float eps = 1e-12f;
        emit(&kv, &eps, 4);
        nkv++;
    }
    if (s->pooling >= 0)
        KV_U32("bert.pooling_type", (uint32_t)s->pooling);
    KV_U32("tokenizer.ggml.token_type_count", NTYPES);
    KV_STR("tokenizer.ggml.model", s->tok_model);
    if (KEEP("tokenizer.ggml.tokens")) {
        kv_head(&kv, "tokenizer.ggml.tokens", 9);
        emit_u32(&kv, 8);
        emit_u64(&kv, NTOK);
        for (size_t i = 0; i < NTOK; i++)
            emit_str(&kv, TOKENS[i]);
        nkv++;
    }
    kv_head(&kv, "tokenizer.ggml.token_type", 9);
    emit_u32(&kv, 5);
    emit_u64(&kv, NTOK);
    emit(&kv, TOKTYPES, sizeof TOKTYPES);
    nkv++;
    KV_U32("tokenizer.ggml.bos_token_id", 2);
    KV_U32("tokenizer.ggml.eos_token_id", 3);
    KV_U32("tokenizer.ggml.unknown_token_id", s->unk_id);
    KV_U32("tokenizer.ggml.seperator_token_id", 3);
    KV_U32("tokenizer.ggml.padding_token_id", 0);
#undef KV_STR
#undef KV_U32
#undef KEEP

    /* tensor data: deterministic values; layer norms near 1 */
    obuf data = {0};
    uint64_t offs[64];
    uint32_t types[64];
    uint32_t rng = 12345;
    for (size_t i = 0; i < nt; i++) {
        emit_pad(&data);
        offs[i] = data.n;
        uint64_t n = t[i].d0 * (t[i].d1 ? t[i].d1 : 1);
        int is_norm_w = strstr(t[i].name, "norm.weight") != NULL;
        types[i] = s->f16 && t[i].d1 ? GGML_TYPE_F16 : GGML_TYPE_F32;
        for (uint64_t j = 0; j < n; j++) {
            rng = rng * 1103515245u + 12345u;
            float v = ((float)((rng >> 8) & 0xffff) / 65535.0f - 0.5f) * 0.5f;
            if (is_norm_w)
                v += 1.0f;
            if (types[i] == GGML_TYPE_F16) {
                uint16_t h = f32_to_fp16(v);
                emit(&data, &h, 2);
            } else {
                emit(&data, &v, 4);
            }
        }
    }

    emit(b, "GGUF", 4);
    emit_u32(b, 3);
    emit_u64(b, nt);
    emit_u64(b, nkv);
    emit(b, kv.p, kv.n);
    for (size_t i = 0; i < nt; i++) {
        emit_str(b, t[i].name);
        emit_u32(b, t[i].d1 ? 2 : 1);
        emit_u64(b, t[i].d0);
        if (t[i].d1)
            emit_u64(b, t[i].d1);
        emit_u32(b, types[i]);
        emit_u64(b, offs[i]);
    }
    emit_pad(b);
    emit(b, data.p, data.n);
    free(kv.p);
    free(data.p);
}

/* ---- helpers ---------------------------------------------------------------- */

static char tmpdir[] = "/tmp/ragd-test-encgguf-XXXXXX";
static char path[512];

static void write_file(const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static rg_status load_spec(const spec *s, rg_encoder **enc, rg_err *e)
{
    obuf b = {0};
    build(s, &b);
    write_file(b.p, b.n);
    free(b.p);
    return encoder_load(path, enc, e);
}

/* The model is refused with status want and a message containing needle. */
static void expect_refused(const char *what, const spec *s, rg_status want, const char *needle)
{
    rg_encoder *enc = NULL;
    rg_err e = {0};
    rg_status st = load_spec(s, &enc, &e);
    CHECK_MSG(st == want, "%s: status %d (want %d): %s", what, (int)st, (int)want, e.msg);
    CHECK_MSG(enc == NULL, "%s: an encoder came back", what);
    CHECK_MSG(strstr(e.msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, e.msg, needle);
    CHECK_MSG(strstr(e.msg, path) != NULL, "%s: message \"%s\" does not name the file", what, e.msg);
    encoder_free(enc);
}

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++)
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_valid(float emb_f32[3 * H])
{
    spec s;
    spec_default(&s);
    rg_encoder *enc = NULL;
    rg_err e = {0};
    rg_status st = load_spec(&s, &enc, &e);
    CHECK_OK(st, e);
    if (st != RG_OK)
        return;
    CHECK(encoder_dim(enc) == H);
    CHECK(encoder_max_tokens(enc) == CTX);
    CHECK(encoder_pooling(enc) == RG_POOL_MEAN);
    CHECK(encoder_normalizes(enc));
    const rg_tokenizer *tok = encoder_tokenizer(enc);
    /* The phantom-space vocabulary is WordPiece's again. */
    CHECK(tokenizer_token_id(tok, "hello") == 5);
    CHECK(tokenizer_token_id(tok, "##ing") == 7);
    CHECK(tokenizer_token_id(tok, "[unused0]") == 9);
    CHECK(tokenizer_token_id(tok, "\xe2\x96\x81hello") == -1);
    rg_encoding en = {0};
    const char *text = "Hello worlding [SEP] zebra";
    st = tokenizer_encode_single(tok, text, strlen(text), 0, RG_TRUNC_END, &en, &e);
    CHECK_OK(st, e);
    /* [CLS] hello world ##ing [SEP] [UNK] [SEP]: lowercased, the special
     * token in the text cut out, an unknown word [UNK] */
    static const int32_t want[] = {2, 5, 6, 7, 3, 1, 3};
    CHECK_MSG(en.n == 7 && memcmp(en.ids, want, sizeof want) == 0, "%zu tokens", en.n);
    encoding_free(&en);

    const char *texts[3] = {"hello", "the world", "hello the worlding"};
    size_t used = 0;
    st = encoder_embed(enc, texts, NULL, 3, emb_f32, &used, &e);
    CHECK_OK(st, e);
    CHECK(used == 3 + 4 + 6);
    for (int i = 0; i < 3; i++) {
        double n2 = 0;
        for (int j = 0; j < H; j++)
            n2 += (double)emb_f32[i * H + j] * emb_f32[i * H + j];
        CHECK_MSG(fabs(sqrt(n2) - 1.0) < 1e-5, "text %d: norm %g", i, sqrt(n2));
    }
    CHECK(cosine(emb_f32, emb_f32 + H, H) < 0.999); /* different texts, different vectors */
    encoder_free(enc);

    /* CLS pooling is followed: a different vector for the same text */
    s.pooling = 2;
    st = load_spec(&s, &enc, &e);
    CHECK_OK(st, e);
    if (st == RG_OK) {
        float cls[H];
        CHECK(encoder_pooling(enc) == RG_POOL_CLS);
        CHECK_OK(encoder_embed(enc, texts + 2, NULL, 1, cls, NULL, &e), e);
        CHECK(cosine(cls, emb_f32 + 2 * H, H) < 0.9999);
        encoder_free(enc);
    }
    /* without bert.pooling_type: mean */
    s.pooling = -1;
    st = load_spec(&s, &enc, &e);
    CHECK_OK(st, e);
    if (st == RG_OK) {
        CHECK(encoder_pooling(enc) == RG_POOL_MEAN);
        encoder_free(enc);
    }
}

static void test_f16(const float emb_f32[3 * H])
{
    spec s;
    spec_default(&s);
    s.f16 = 1;
    rg_encoder *enc = NULL;
    rg_err e = {0};
    rg_status st = load_spec(&s, &enc, &e);
    CHECK_OK(st, e);
    if (st != RG_OK)
        return;
    const char *texts[3] = {"hello", "the world", "hello the worlding"};
    float out[3 * H];
    CHECK_OK(encoder_embed(enc, texts, NULL, 3, out, NULL, &e), e);
    for (int i = 0; i < 3; i++) {
        double c = cosine(out + i * H, emb_f32 + i * H, H);
        CHECK_MSG(c > 0.999 && c < 1.0 + 1e-9, "text %d: F16 vs F32 cosine %.7f", i, c);
    }
    encoder_free(enc);
}

static void test_malformed(void)
{
    spec s;
    spec_default(&s);
    s.drop_tensor = "blk.0.ffn_down.bias";
    expect_refused("missing tensor", &s, RG_ERR_CORRUPT, "blk.0.ffn_down.bias is missing");
    spec_default(&s);
    s.drop_tensor = "token_types.weight";
    expect_refused("missing token types", &s, RG_ERR_CORRUPT, "token_types.weight is missing");
    spec_default(&s);
    s.bad_tensor = "blk.0.attn_q.weight";
    expect_refused("wrong shape", &s, RG_ERR_CORRUPT, "blk.0.attn_q.weight has shape [4, 8");
    spec_default(&s);
    s.bad_tensor = "position_embd.weight";
    expect_refused("wrong position table", &s, RG_ERR_CORRUPT, "position_embd.weight has shape");
    spec_default(&s);
    s.bad_tensor = "token_embd.weight";
    expect_refused("wrong word table", &s, RG_ERR_CORRUPT, "token_embd.weight must be [8, vocab]");
    spec_default(&s);
    s.pooling = 3;
    expect_refused("last-token pooling", &s, RG_ERR_UNSUPPORTED, "bert.pooling_type 3 (last) is not supported");
    spec_default(&s);
    s.pooling = 0;
    expect_refused("no pooling", &s, RG_ERR_UNSUPPORTED, "bert.pooling_type 0 (none)");
    spec_default(&s);
    s.pooling = 77;
    expect_refused("unknown pooling", &s, RG_ERR_UNSUPPORTED, "bert.pooling_type 77 (unknown)");
    spec_default(&s);
    s.arch = "nomic-bert";
    expect_refused("architecture", &s, RG_ERR_UNSUPPORTED, "architecture \"nomic-bert\" is not supported");
    spec_default(&s);
    s.tok_model = "gpt2";
    expect_refused("tokenizer model", &s, RG_ERR_UNSUPPORTED, "tokenizer.ggml.model \"gpt2\" is not supported");
    spec_default(&s);
    s.drop_kv = "bert.block_count";
    expect_refused("missing block count", &s, RG_ERR_CORRUPT, "missing metadata key bert.block_count");
    spec_default(&s);
    s.drop_kv = "bert.attention.layer_norm_epsilon";
    expect_refused("missing epsilon", &s, RG_ERR_CORRUPT, "bert.attention.layer_norm_epsilon");
    spec_default(&s);
    s.drop_kv = "tokenizer.ggml.tokens";
    expect_refused("missing tokens", &s, RG_ERR_CORRUPT, "tokenizer.ggml.tokens");
    spec_default(&s);
    s.unk_id = 99;
    expect_refused("unk id out of range", &s, RG_ERR_CORRUPT, "tokenizer.ggml.unknown_token_id");

    rg_encoder *enc = NULL;
    rg_err e = {0};
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope.gguf", tmpdir);
    CHECK(encoder_load(missing, &enc, &e) == RG_ERR_NOT_FOUND && enc == NULL);
}

static void test_truncated(void)
{
    spec s;
    spec_default(&s);
    obuf b = {0};
    build(&s, &b);
    size_t refused = 0, tried = 0;
    for (size_t cut = 0; cut < b.n; cut += (cut < 64 || b.n - cut < 64) ? 1 : 7) {
        write_file(b.p, cut);
        rg_encoder *enc = NULL;
        rg_err e = {0};
        rg_status st = encoder_load(path, &enc, &e);
        tried++;
        if (st != RG_OK && enc == NULL && e.msg[0] != '\0')
            refused++;
        else
            CHECK_MSG(0, "truncated to %zu of %zu bytes: status %d", cut, b.n, (int)st);
        encoder_free(enc);
    }
    CHECK(refused == tried);
    free(b.p);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/tiny-bert.gguf", tmpdir);
    float emb[3 * H];
    test_valid(emb);
    test_f16(emb);
    test_malformed();
    test_truncated();
    unlink(path);
    rmdir(tmpdir);
    return check_finish("test_encoder_gguf");
}
