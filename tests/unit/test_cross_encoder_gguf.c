/* test_cross_encoder_gguf.c - BERT cross-encoders from GGUF files
 * (model/cross_encoder_gguf.h): a tiny cross-encoder written here loads,
 * encodes pairs as [CLS] q [SEP] p [SEP] with token types 0 then 1, takes
 * bert.context_length as its limit and gives the logit of its head
 * (classifier(tanh(pooler([CLS] state)))) computed here from the encoder's
 * hidden states; malformed heads are refused with a clear error naming the
 * file; the reranker engine takes a "bert" GGUF as a cross-encoder and any
 * other GGUF as a causal LM; an embedder refuses a RANK file. Golden logits
 * on real weights: tests/integration/test_rerank_gguf.py. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model/cross_encoder.h"
#include "model/encoder.h"
#include "model/quant.h"
#include "model/tokenizer.h"
#include "rerank/reranker.h"

#define H 8
#define FF 16
#define CTX 16

/* ---- a GGUF writer for this test ------------------------------------------ */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} gbuf;

static void put(gbuf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t c = b->cap ? 2 * b->cap : 4096;
        while (c < b->n + n)
            c *= 2;
        unsigned char *p = realloc(b->p, c);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->p = p, b->cap = c;
    }
    if (n) /* an empty buffer's p is NULL, which memcpy may not see */
        memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put32(gbuf *b, uint32_t v) { put(b, &v, 4); } /* little-endian hosts */
static void put64(gbuf *b, uint64_t v) { put(b, &v, 8); }
static void putstr(gbuf *b, const char *s)
{
    put64(b, strlen(s));
    put(b, s, strlen(s));
}
static void align32(gbuf *b)
{
    static const unsigned char zero[32];
    put(b, zero, (32 - b->n % 32) % 32);
}

/* What a file looks like; the defaults make a valid cross-encoder. */
typedef struct {
    const char *arch;
    int pooling;        /* -1: no bert.pooling_type */
    int n_labels;       /* entries of bert.classifier.output_labels; -1: none */
    int out_rows;       /* cls.output.weight [H, out_rows] */
    int no_pooler;      /* no cls.weight / cls.bias (as llama.cpp's converter) */
    int no_classifier;  /* no cls.output.* */
    int pooler_cols;    /* cls.weight [H, pooler_cols] */
    int bias_len;       /* cls.bias [bias_len] */
} spec;

static void spec_default(spec *s)
{
    *s = (spec){"bert", 4, 1, 1, 0, 0, H, H};
}

static const char *TOKENS[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "\xe2\x96\x81what", "\xe2\x96\x81is",
                               "\xe2\x96\x81tea", "\xe2\x96\x81green", "\xe2\x96\x81leaves", "s"};
#define NTOK (sizeof TOKENS / sizeof *TOKENS)

typedef struct {
    char name[64];
    uint64_t d0, d1; /* GGUF order (d0 fastest); d1 0 for a vector */
} tdesc;

static size_t tensor_list(const spec *s, tdesc *t)
{
    size_t n = 0;
#define T(nm, a, b) (snprintf(t[n].name, sizeof t[n].name, "%s", nm), t[n].d0 = (a), t[n].d1 = (b), n++)
    if (!s->no_pooler) {
        T("cls.bias", (uint64_t)s->bias_len, 0);
        T("cls.weight", H, (uint64_t)s->pooler_cols);
    }
    if (!s->no_classifier) {
        T("cls.output.bias", (uint64_t)s->out_rows, 0);
        T("cls.output.weight", H, (uint64_t)s->out_rows);
    }
    T("token_embd_norm.bias", H, 0);
    T("token_embd_norm.weight", H, 0);
    T("position_embd.weight", H, CTX);
    T("token_types.weight", H, 2);
    T("token_embd.weight", H, NTOK);
    static const struct {
        const char *s;
        uint64_t a, b;
    } L[] = {{"attn_output_norm.bias", H, 0}, {"attn_output_norm.weight", H, 0}, {"attn_output.bias", H, 0},
             {"attn_output.weight", H, H}, {"attn_k.bias", H, 0}, {"attn_k.weight", H, H}, {"attn_q.bias", H, 0},
             {"attn_q.weight", H, H}, {"attn_v.bias", H, 0}, {"attn_v.weight", H, H}, {"ffn_up.bias", FF, 0},
             {"ffn_up.weight", H, FF}, {"layer_output_norm.bias", H, 0}, {"layer_output_norm.weight", H, 0},
             {"ffn_down.bias", H, 0}, {"ffn_down.weight", FF, H}};
    for (size_t i = 0; i < sizeof L / sizeof *L; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "blk.0.%s", L[i].s);
        T(nm, L[i].a, L[i].b);
    }
#undef T
    return n;
}

/* The value of element j of tensor i: deterministic, norms near 1. */
static float value(const char *name, uint64_t j)
{
    uint32_t h = 2166136261u;
    for (const char *c = name; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    h ^= (uint32_t)j * 2654435761u;
    h = (h ^ (h >> 15)) * 2246822519u;
    float v = ((float)(h >> 8) / 16777216.0f - 0.5f) * 0.6f;
    return strstr(name, "norm.weight") ? v + 1.0f : v;
}

static void kv(gbuf *b, const char *key, uint32_t type)
{
    putstr(b, key);
    put32(b, type);
}

static void build(const spec *s, gbuf *out)
{
    tdesc t[64];
    size_t nt = tensor_list(s, t);
    gbuf m = {0};
    uint64_t nkv = 0;
    kv(&m, "general.architecture", 8), putstr(&m, s->arch), nkv++;
    kv(&m, "bert.block_count", 4), put32(&m, 1), nkv++;
    kv(&m, "bert.context_length", 4), put32(&m, CTX), nkv++;
    kv(&m, "bert.embedding_length", 4), put32(&m, H), nkv++;
    kv(&m, "bert.feed_forward_length", 4), put32(&m, FF), nkv++;
    kv(&m, "bert.attention.head_count", 4), put32(&m, 2), nkv++;
    float eps = 1e-12f;
    kv(&m, "bert.attention.layer_norm_epsilon", 6), put(&m, &eps, 4), nkv++;
    if (s->pooling >= 0)
        kv(&m, "bert.pooling_type", 4), put32(&m, (uint32_t)s->pooling), nkv++;
    if (s->n_labels >= 0) {
        kv(&m, "bert.classifier.output_labels", 9), put32(&m, 8), put64(&m, (uint64_t)s->n_labels);
        for (int i = 0; i < s->n_labels; i++)
            putstr(&m, i ? "LABEL_1" : "LABEL_0");
        nkv++;
    }
    kv(&m, "tokenizer.ggml.token_type_count", 4), put32(&m, 2), nkv++;
    kv(&m, "tokenizer.ggml.model", 8), putstr(&m, "bert"), nkv++;
    kv(&m, "tokenizer.ggml.tokens", 9), put32(&m, 8), put64(&m, NTOK);
    for (size_t i = 0; i < NTOK; i++)
        putstr(&m, TOKENS[i]);
    nkv++;
    kv(&m, "tokenizer.ggml.token_type", 9), put32(&m, 5), put64(&m, NTOK);
    for (size_t i = 0; i < NTOK; i++)
        put32(&m, i < 5 ? 3 : 1);
    nkv++;
    kv(&m, "tokenizer.ggml.bos_token_id", 4), put32(&m, 2), nkv++;
    kv(&m, "tokenizer.ggml.eos_token_id", 4), put32(&m, 3), nkv++;
    kv(&m, "tokenizer.ggml.unknown_token_id", 4), put32(&m, 1), nkv++;
    kv(&m, "tokenizer.ggml.seperator_token_id", 4), put32(&m, 3), nkv++;
    kv(&m, "tokenizer.ggml.padding_token_id", 4), put32(&m, 0), nkv++;

    gbuf d = {0};
    uint64_t off[64];
    for (size_t i = 0; i < nt; i++) {
        align32(&d);
        off[i] = d.n;
        uint64_t n = t[i].d0 * (t[i].d1 ? t[i].d1 : 1);
        for (uint64_t j = 0; j < n; j++) {
            float v = value(t[i].name, j);
            put(&d, &v, 4);
        }
    }
    put(out, "GGUF", 4);
    put32(out, 3);
    put64(out, nt);
    put64(out, nkv);
    put(out, m.p, m.n);
    for (size_t i = 0; i < nt; i++) {
        putstr(out, t[i].name);
        put32(out, t[i].d1 ? 2 : 1);
        put64(out, t[i].d0);
        if (t[i].d1)
            put64(out, t[i].d1);
        put32(out, GGML_TYPE_F32);
        put64(out, off[i]);
    }
    align32(out);
    put(out, d.p, d.n);
    free(m.p);
    free(d.p);
}

static char tmpdir[] = "/tmp/ragd-test-cegguf-XXXXXX";
static char path[512];

static void write_spec(const spec *s)
{
    gbuf b = {0};
    build(s, &b);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b.p, 1, b.n, f) != b.n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
    free(b.p);
}

static void expect_refused(const char *what, const spec *s, rg_status want, const char *needle)
{
    write_spec(s);
    rg_cross_encoder *ce = NULL;
    rg_err e = {0};
    rg_status st = cross_encoder_load(path, RG_DEVICE_CPU, &ce, &e);
    CHECK_MSG(st == want, "%s: status %d (want %d): %s", what, (int)st, (int)want, e.msg);
    CHECK_MSG(ce == NULL, "%s: a cross-encoder came back", what);
    CHECK_MSG(strstr(e.msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, e.msg, needle);
    CHECK_MSG(strstr(e.msg, path) != NULL, "%s: message \"%s\" does not name the file", what, e.msg);
    cross_encoder_free(ce);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_valid(void)
{
    spec s;
    spec_default(&s);
    write_spec(&s);
    rg_cross_encoder *ce = NULL;
    rg_err e = {0};
    rg_status st = cross_encoder_load(path, RG_DEVICE_CPU, &ce, &e);
    CHECK_OK(st, e);
    if (st != RG_OK)
        return;
    CHECK(cross_encoder_max_tokens(ce) == CTX);

    /* "What is tea" / "green leavess" -> [CLS] what is tea [SEP] green leaves ##s [SEP] */
    rg_encoding enc = {0};
    const char *q = "What is tea", *p = "green leavess";
    CHECK_OK(cross_encoder_encode(ce, q, strlen(q), p, strlen(p), 1, &enc, &e), e);
    static const int32_t ids[] = {2, 5, 6, 7, 3, 8, 9, 10, 3};
    static const int32_t types[] = {0, 0, 0, 0, 0, 1, 1, 1, 1};
    CHECK(enc.n == 9);
    for (size_t i = 0; i < enc.n && i < 9; i++)
        CHECK_MSG(enc.ids[i] == ids[i] && enc.type_ids[i] == types[i], "token %zu: id %d type %d", i, enc.ids[i],
                  enc.type_ids[i]);

    /* The logit is the head applied to the encoder's [CLS] state. */
    rg_encoder_opts o;
    encoder_opts_default(&o);
    o.gguf_rank = 1;
    rg_encoder *en = NULL;
    CHECK_OK(encoder_load_opts(path, &o, &en, &e), e);
    float logit = NAN;
    const rg_encoding *one = &enc;
    CHECK_OK(cross_encoder_logits(ce, &one, 1, &logit, &e), e);
    if (en) {
        int32_t mask[9];
        for (int i = 0; i < 9; i++)
            mask[i] = 1;
        float hidden[9 * H];
        CHECK_OK(encoder_forward(en, enc.ids, enc.type_ids, mask, 1, 9, hidden, &e), e);
        /* HF pooler row o = GGUF cls.weight elements [o * H, o * H + H) */
        double want = value("cls.output.bias", 0);
        for (size_t r = 0; r < H; r++) {
            double acc = value("cls.bias", r);
            for (size_t c = 0; c < H; c++)
                acc += value("cls.weight", r * H + c) * hidden[c];
            want += value("cls.output.weight", r) * tanh(acc);
        }
        CHECK_MSG(fabs(logit - want) < 1e-5, "logit %.7f, head by hand %.7f", logit, want);
    }
    encoder_free(en);

    /* truncation to bert.context_length, longest first */
    char longp[400] = "";
    for (int i = 0; i < 40; i++)
        strcat(longp, "green ");
    encoding_free(&enc);
    CHECK_OK(cross_encoder_encode(ce, q, strlen(q), longp, strlen(longp), 1, &enc, &e), e);
    CHECK(enc.n == CTX && enc.ids[4] == 3 && enc.ids[CTX - 1] == 3);
    encoding_free(&enc);
    CHECK(cross_encoder_encode(ce, q, strlen(q), longp, strlen(longp), 0, &enc, &e) == RG_ERR_INVALID);
    encoding_free(&enc);
    float scores[2];
    const char *ps[2] = {p, longp};
    CHECK_OK(cross_encoder_score(ce, q, strlen(q), ps, NULL, 2, 8, scores, NULL, &e), e);
    CHECK(fabsf(scores[0] - logit) < 1e-5f);
    cross_encoder_free(ce);

    /* An embedder does not take a RANK file. */
    rg_encoder *emb = NULL;
    st = encoder_load(path, &emb, &e);
    CHECK_MSG(st == RG_ERR_UNSUPPORTED && strstr(e.msg, "pooling_type 4"), "embedder: %d %s", (int)st, e.msg);
    encoder_free(emb);
}

static void test_refusals(void)
{
    spec s;
    spec_default(&s);
    s.no_pooler = 1, s.pooling = -1; /* what llama.cpp's converter writes */
    expect_refused("converter file (no pooler)", &s, RG_ERR_UNSUPPORTED, "no pooler (tensor cls.weight)");
    spec_default(&s);
    s.no_classifier = 1, s.pooling = 1, s.n_labels = -1; /* an embedding model */
    expect_refused("no classifier", &s, RG_ERR_UNSUPPORTED, "no classifier (tensor cls.output.weight)");
    spec_default(&s);
    s.n_labels = 2, s.out_rows = 2;
    expect_refused("two labels", &s, RG_ERR_UNSUPPORTED, "2 outputs; a reranker needs one label");
    spec_default(&s);
    s.n_labels = 2;
    expect_refused("two label names", &s, RG_ERR_UNSUPPORTED, "output_labels has 2 labels");
    spec_default(&s);
    s.pooling = 2;
    expect_refused("cls pooling", &s, RG_ERR_UNSUPPORTED, "bert.pooling_type is 2; a cross-encoder needs 4");
    spec_default(&s);
    s.pooling = -1;
    expect_refused("no pooling type", &s, RG_ERR_UNSUPPORTED, "no bert.pooling_type");
    spec_default(&s);
    s.pooler_cols = H / 2;
    expect_refused("pooler shape", &s, RG_ERR_CORRUPT, "tensor cls.weight has shape [8, 4, 1, 1]");
    spec_default(&s);
    s.bias_len = H + 1;
    expect_refused("pooler bias shape", &s, RG_ERR_CORRUPT, "tensor cls.bias has shape [9, 1, 1, 1], expected [8]");
    spec_default(&s);
    s.arch = "llama";
    expect_refused("architecture", &s, RG_ERR_UNSUPPORTED, "architecture \"llama\" is not supported as a cross-encoder");
    /* truncated files: never a crash */
    spec_default(&s);
    gbuf b = {0};
    build(&s, &b);
    for (size_t cut = 0; cut < b.n; cut += b.n / 97 + 1) {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(b.p, 1, cut, f) != cut)
            exit(1);
        fclose(f);
        rg_cross_encoder *ce = NULL;
        rg_err e = {0};
        CHECK_MSG(cross_encoder_load(path, RG_DEVICE_CPU, &ce, &e) != RG_OK && !ce, "cut at %zu loaded", cut);
        cross_encoder_free(ce);
    }
    free(b.p);
}

/* The engine: a "bert" GGUF is a cross-encoder, another GGUF a causal LM. */
static void test_reranker_kind(void)
{
    spec s;
    spec_default(&s);
    write_spec(&s);
    rg_reranker_opts o;
    reranker_opts_default(&o);
    rg_reranker *rr = NULL;
    rg_err e = {0};
    rg_status st = reranker_start(path, &o, &rr, &e);
    CHECK_OK(st, e);
    if (rr) {
        CHECK(reranker_kind(rr) == RG_RERANKER_CROSS_ENCODER);
        CHECK_STR(reranker_method(rr), "cross-encoder");
        CHECK_STR(reranker_model_id(rr), "tiny-ce");
        CHECK(reranker_max_tokens(rr) == CTX);
        const char *ps[1] = {"green leaves"};
        float logit;
        CHECK_OK(reranker_score(rr, "What is tea", ps, NULL, 1, 1, &logit, NULL, &e), e);
        CHECK(isfinite(logit));
        reranker_stop(rr);
    }
    s.no_pooler = 1;
    write_spec(&s);
    rr = NULL;
    st = reranker_start(path, &o, &rr, &e);
    CHECK_MSG(st != RG_OK && strstr(e.msg, "no pooler"), "converter file: %d %s", (int)st, e.msg);
    reranker_stop(rr);
    spec_default(&s);
    s.arch = "llama";
    write_spec(&s);
    rr = NULL;
    st = reranker_start(path, &o, &rr, &e);
    CHECK_MSG(st != RG_OK && !strstr(e.msg, "cross-encoder"), "llama file went to the cross-encoder: %s", e.msg);
    reranker_stop(rr);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/tiny-ce.gguf", tmpdir);
    test_valid();
    test_refusals();
    test_reranker_kind();
    unlink(path);
    rmdir(tmpdir);
    return check_finish("test_cross_encoder_gguf");
}
