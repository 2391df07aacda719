/* test_tokenizer.c - the WordPiece tokenizer against Hugging Face
 * `tokenizers`: every record of tests/fixtures/wordpiece_golden.jsonl
 * (written by scripts/gen_tokenizer_golden.py) must come out token for
 * token, loading the default model's tokenizer.json and, separately, its
 * vocab.txt. Plus hostile input, truncation, loaders and the vocabulary. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/buf.h"
#include "common/fs.h"
#include "model/tokenizer.h"
#include "model/vocab.h"

#define GOLDEN "tests/fixtures/wordpiece_golden.jsonl"
#define MODEL_NAME "all-MiniLM-L6-v2"

static char model_dir[4096];

static int find_model(void)
{
    const char *base = getenv("RAGD_MODELS");
    snprintf(model_dir, sizeof model_dir, "%s/%s", base && *base ? base : "models", MODEL_NAME);
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.json", model_dir);
    return fs_is_file(p);
}

static char *unhex(const char *h, size_t *len)
{
    size_t n = strlen(h) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; out && i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    *len = n;
    return out;
}

static int int_array_eq(const cJSON *arr, const int32_t *v, size_t n)
{
    if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != n)
        return 0;
    size_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        if (!cJSON_IsNumber(x) || (int32_t)x->valuedouble != v[i])
            return 0;
        i++;
    }
    return 1;
}

/* Checks one golden record; returns 1 when it matched. */
static int check_record(const rg_tokenizer *tok, const cJSON *r, const char *which)
{
    const char *kind = cJSON_GetObjectItem(r, "kind")->valuestring;
    size_t alen, blen = 0;
    char *a = unhex(cJSON_GetObjectItem(r, "text_hex")->valuestring, &alen);
    const cJSON *ph = cJSON_GetObjectItem(r, "pair_hex");
    char *b = ph ? unhex(ph->valuestring, &blen) : NULL;
    size_t max_len = (size_t)cJSON_GetObjectItem(r, "max_len")->valuedouble;
    rg_trunc_side side = strcmp(cJSON_GetObjectItem(r, "side")->valuestring, "start") == 0 ? RG_TRUNC_START
                                                                                           : RG_TRUNC_END;
    rg_encoding enc;
    memset(&enc, 0, sizeof enc);
    rg_err err;
    rg_status st = strcmp(kind, "pair") == 0
                       ? tokenizer_encode_pair(tok, a, alen, b, blen, max_len, side, &enc, &err)
                       : tokenizer_encode_single(tok, a, alen, max_len, side, &enc, &err);
    int ok = st == RG_OK;
    const cJSON *offs = cJSON_GetObjectItem(r, "offsets");
    if (ok)
        ok = int_array_eq(cJSON_GetObjectItem(r, "ids"), enc.ids, enc.n) &&
             int_array_eq(cJSON_GetObjectItem(r, "type_ids"), enc.type_ids, enc.n) &&
             (size_t)cJSON_GetArraySize(offs) == enc.n;
    for (size_t i = 0; ok && i < enc.n; i++) {
        const cJSON *o = cJSON_GetArrayItem(offs, (int)i);
        const cJSON *sq = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "seq"), (int)i);
        ok = (size_t)cJSON_GetArrayItem(o, 0)->valuedouble == enc.start[i] &&
             (size_t)cJSON_GetArrayItem(o, 1)->valuedouble == enc.end[i] && (int)sq->valuedouble == enc.seq[i] &&
             enc.attention_mask[i] == 1;
    }
    if (!ok) {
        char *txt = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "text"));
        fprintf(stderr, "[%s] mismatch on %.200s\n  got ids:", which, txt);
        for (size_t i = 0; i < enc.n; i++)
            fprintf(stderr, " %d(%zu,%zu)", (int)enc.ids[i], enc.start[i], enc.end[i]);
        char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "ids"));
        char *wo = cJSON_PrintUnformatted(offs);
        fprintf(stderr, "\n  want ids: %s\n  want offsets: %.2000s\n", want, wo);
        free(txt);
        free(want);
        free(wo);
    }
    /* single, untruncated: count, encode and tokenize agree with it */
    if (ok && !b && max_len == 0) {
        size_t n = enc.n - tokenizer_num_special(tok, 0);
        size_t cnt = tokenizer_count(tok, a, alen);
        CHECK_MSG(cnt == n, "count %zu != %zu", cnt, n);
        int32_t ids[1024];
        size_t got = 0;
        CHECK(tokenizer_encode(tok, a, alen, ids, 1024, &got, &err) == RG_OK);
        CHECK(got == n);
        for (size_t i = 0; i < n && i < 1024; i++)
            CHECK(ids[i] == enc.ids[i + 1]);
    }
    encoding_free(&enc);
    free(a);
    free(b);
    return ok;
}

static void test_golden(const rg_tokenizer *tok, const char *which)
{
    rg_buf buf;
    rg_buf_init(&buf, 0);
    rg_err err;
    rg_status st = fs_read_file(GOLDEN, 64 << 20, &buf, &err);
    CHECK_OK(st, err);
    if (st)
        return;
    size_t n = 0, matched = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(line);
        CHECK(r != NULL);
        if (!r)
            continue;
        n++;
        matched += (size_t)check_record(tok, r, which);
        cJSON_Delete(r);
    }
    printf("%s: %zu of %zu golden records match\n", which, matched, n);
    CHECK(n >= 150);
    CHECK_MSG(matched == n, "%zu of %zu golden records differ (%s)", n - matched, n, which);
    rg_buf_free(&buf);
}

static size_t count_s(const rg_tokenizer *t, const char *s) { return tokenizer_count(t, s, strlen(s)); }

/* Offsets are inside the text, ordered, and non-empty. */
static void check_offsets(const rg_encoding *enc, size_t len)
{
    size_t prev = 0;
    for (size_t i = 0; i < enc->n; i++) {
        if (enc->seq[i] < 0)
            continue;
        CHECK(enc->start[i] < enc->end[i]);
        CHECK(enc->end[i] <= len);
        CHECK(enc->start[i] >= prev);
        prev = enc->start[i];
    }
}

static void test_hostile(const rg_tokenizer *t)
{
    rg_err err;
    rg_encoding enc;
    memset(&enc, 0, sizeof enc);
    /* invalid UTF-8 is read as U+FFFD, which clean_text drops */
    const char bad[] = "caf\xC3 ok \xFF\xFE\xC0\x80 \xED\xA0\x80 \xF4\x90\x80\x80 \xE2\x82 end";
    CHECK(tokenizer_tokenize(t, bad, sizeof bad - 1, &enc, &err) == RG_OK);
    CHECK(enc.n > 0);
    check_offsets(&enc, sizeof bad - 1);
    CHECK(enc.n == count_s(t, "caf ok end"));
    /* the valid parts keep their offsets */
    CHECK(enc.start[enc.n - 1] == sizeof bad - 4 && enc.end[enc.n - 1] == sizeof bad - 1);
    /* a truncated sequence at the very end */
    CHECK(tokenizer_tokenize(t, "abc\xE4\xB8", 5, &enc, &err) == RG_OK);
    CHECK(enc.n == count_s(t, "abc") && enc.n > 0 && enc.end[enc.n - 1] == 3);
    /* NUL bytes inside */
    CHECK(tokenizer_tokenize(t, "a\0b", 3, &enc, &err) == RG_OK);
    CHECK(enc.n == 1 && enc.start[0] == 0 && enc.end[0] == 3);
    /* empty */
    CHECK(tokenizer_tokenize(t, "", 0, &enc, &err) == RG_OK && enc.n == 0);
    CHECK(tokenizer_encode_single(t, "", 0, 0, RG_TRUNC_END, &enc, &err) == RG_OK && enc.n == 2);

    /* random bytes: no crash, sane offsets, count agrees */
    uint64_t x = 88172645463325252ULL;
    char rnd[512];
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = (size_t)(iter % 97) * 5 + 1;
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned v = (unsigned)(x >> 24);
            /* bias towards UTF-8 lead and continuation bytes, brackets, spaces */
            unsigned char c;
            if (v % 4 == 0)
                c = (unsigned char)(0x80 + (v >> 8) % 0x40);
            else if (v % 4 == 1)
                c = (unsigned char)(0xC0 + (v >> 8) % 0x38);
            else if (v % 4 == 2)
                c = (unsigned char)"[SEP] a#\xC3\xA9"[(v >> 8) % 10];
            else
                c = (unsigned char)((v >> 8) & 0xff);
            rnd[i] = (char)c;
        }
        rg_status st = tokenizer_tokenize(t, rnd, len, &enc, &err);
        CHECK(st == RG_OK);
        check_offsets(&enc, len);
        CHECK(tokenizer_count(t, rnd, len) == enc.n);
    }

    /* a 1 MiB word is one [UNK] spanning it; 1 MiB of words is linear */
    size_t big = 1 << 20;
    char *s = malloc(big);
    memset(s, 'a', big);
    CHECK(tokenizer_tokenize(t, s, big, &enc, &err) == RG_OK);
    CHECK(enc.n == 1 && enc.ids[0] == tokenizer_unk_id(t) && enc.start[0] == 0 && enc.end[0] == big);
    for (size_t i = 0; i < big; i++)
        s[i] = "the cat sat on the mat. "[i % 24];
    CHECK(tokenizer_count(t, s, big) == big / 24 * 7 + 5); /* 7 per sentence; the cut one: the cat sat on t */
    /* combining marks piling up on one letter */
    s[0] = 'e';
    for (size_t i = 1; i + 1 < big; i += 2) {
        s[i] = (char)0xCC;
        s[i + 1] = (char)0x81;
    }
    CHECK(tokenizer_count(t, s, big - 1) == 1);
    free(s);
    encoding_free(&enc);
}

static void test_truncation(const rg_tokenizer *t)
{
    rg_err err;
    rg_encoding enc;
    memset(&enc, 0, sizeof enc);
    const char *txt = "one two three four five six";
    CHECK(tokenizer_encode_single(t, txt, strlen(txt), 1, RG_TRUNC_END, &enc, &err) == RG_ERR_INVALID);
    CHECK(tokenizer_encode_single(t, txt, strlen(txt), 2, RG_TRUNC_END, &enc, &err) == RG_OK);
    CHECK(enc.n == 2 && enc.n_untruncated == 8);
    CHECK(tokenizer_encode_single(t, txt, strlen(txt), 4, RG_TRUNC_START, &enc, &err) == RG_OK);
    CHECK(enc.n == 4 && enc.ids[0] == tokenizer_cls_id(t) && enc.ids[3] == tokenizer_sep_id(t));
    CHECK(enc.ids[1] == tokenizer_token_id(t, "five") && enc.ids[2] == tokenizer_token_id(t, "six"));
    CHECK(enc.start[2] == strlen(txt) - 3 && enc.end[2] == strlen(txt));
    CHECK(tokenizer_encode_pair(t, "a", 1, "b", 1, 2, RG_TRUNC_END, &enc, &err) == RG_ERR_INVALID);
    CHECK(tokenizer_encode_pair(t, "a b", 3, "c d", 3, 3, RG_TRUNC_END, &enc, &err) == RG_OK);
    CHECK(enc.n == 3 && enc.n_untruncated == 7);
    CHECK(tokenizer_num_special(t, 0) == 2 && tokenizer_num_special(t, 1) == 3);
    encoding_free(&enc);

    /* tokenizer_encode reports the full count past its buffer */
    int32_t ids[2];
    size_t n = 0;
    CHECK(tokenizer_encode(t, txt, strlen(txt), ids, 2, &n, &err) == RG_OK && n == 6);
    CHECK(ids[0] == tokenizer_token_id(t, "one") && ids[1] == tokenizer_token_id(t, "two"));
    CHECK(tokenizer_encode(t, txt, strlen(txt), NULL, 0, &n, &err) == RG_OK && n == 6);
    CHECK(tokenizer_count_fn(txt, strlen(txt), (void *)t) == 6);
}

static void test_vocab(void)
{
    rg_vocab *v;
    rg_err err;
    CHECK(vocab_new(4, &v, &err) == RG_OK);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "tok%d", i);
        CHECK(vocab_put(v, key, strlen(key), i, &err) == RG_OK);
    }
    CHECK(vocab_size(v) == 5000 && vocab_id_limit(v) == 5000);
    int ok = 1;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "tok%d", i);
        ok &= vocab_get(v, key, strlen(key)) == i;
        size_t len;
        const char *s = vocab_token(v, i, &len);
        ok &= s && len == strlen(key) && strcmp(s, key) == 0;
    }
    CHECK(ok);
    CHECK(vocab_get(v, "tok5000", 7) == -1 && vocab_get(v, "", 0) == -1);
    CHECK(vocab_put(v, "tok1", 4, 7000, &err) == RG_OK); /* remapped: last wins */
    CHECK(vocab_get(v, "tok1", 4) == 7000 && vocab_token(v, 1, NULL) == NULL);
    CHECK(vocab_put(v, "x", 1, -1, &err) == RG_ERR_INVALID);
    CHECK(vocab_put(v, "x", 1, RG_VOCAB_MAX_ID, &err) == RG_ERR_INVALID);
    CHECK(vocab_max_key_len(v) == 7);
    vocab_free(v);
}

static void test_new_from_tokens(void)
{
    const char *toks[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "hello", ",", "!"};
    rg_tokenizer *t;
    rg_err err;
    CHECK_OK(tokenizer_new(toks, sizeof toks / sizeof *toks, NULL, &t, &err), err);
    int32_t ids[16];
    size_t n;
    const char *s = "Unaffable, HELLO! xyz";
    CHECK(tokenizer_encode(t, s, strlen(s), ids, 16, &n, &err) == RG_OK);
    int32_t want[] = {5, 6, 7, 9, 8, 10, 1};
    CHECK(n == 7 && memcmp(ids, want, sizeof want) == 0);
    CHECK(tokenizer_cls_id(t) == 2 && tokenizer_sep_id(t) == 3 && tokenizer_pad_id(t) == 0);
    CHECK(strcmp(tokenizer_id_token(t, 6), "##aff") == 0);
    tokenizer_free(t);

    /* no [UNK] in the vocabulary */
    const char *bad[] = {"a", "b"};
    CHECK(tokenizer_new(bad, 2, NULL, &t, &err) == RG_ERR_CORRUPT);
    /* cased, no accent stripping */
    rg_tokenizer_opts o;
    tokenizer_opts_default(&o);
    o.lowercase = 0;
    const char *cased[] = {"[UNK]", "Café", "café", "Cafe"};
    CHECK_OK(tokenizer_new(cased, 4, &o, &t, &err), err);
    CHECK(tokenizer_encode(t, "Café café", strlen("Café café"), ids, 16, &n, &err) == RG_OK);
    CHECK(n == 2 && ids[0] == 1 && ids[1] == 2);
    tokenizer_free(t);
    o.strip_accents = 1;
    CHECK_OK(tokenizer_new(cased, 4, &o, &t, &err), err);
    CHECK(tokenizer_encode(t, "Café", 5, ids, 16, &n, &err) == RG_OK && n == 1 && ids[0] == 3);
    tokenizer_free(t);
}

static void write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

static void test_bad_files(void)
{
    char dir[] = "/tmp/ragd_tok_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    char p[256];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    rg_tokenizer *t = NULL;
    rg_err err;
    const struct {
        const char *json;
        rg_status want;
    } cases[] = {
        {"", RG_ERR_CORRUPT},
        {"{", RG_ERR_CORRUPT},
        {"[]", RG_ERR_CORRUPT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", RG_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": []}}", RG_ERR_CORRUPT},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": -1}}}", RG_ERR_CORRUPT},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 1.5}}}", RG_ERR_CORRUPT},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 99999999}}}", RG_ERR_CORRUPT},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": "
         "{\"type\": \"BertPreTokenizer\"}}",
         RG_ERR_CORRUPT}, /* no [UNK] */
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0}}, \"normalizer\": {\"type\": \"NFC\"}, "
         "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
         RG_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0}}, \"pre_tokenizer\": "
         "{\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
         "[{\"SpecialToken\": {\"id\": \"[X]\", \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {}}}",
         RG_ERR_CORRUPT},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0, \"a\": 1}}, \"pre_tokenizer\": "
         "{\"type\": \"BertPreTokenizer\"}, \"added_tokens\": [{\"id\": 0, \"content\": \"[UNK]\"}]}",
         RG_OK},
        /* an added token past the vocabulary (its id would index past the
         * model's embedding table; found by fuzz_tokenizer_json) */
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0, \"a\": 1}}, \"pre_tokenizer\": "
         "{\"type\": \"BertPreTokenizer\"}, \"added_tokens\": [{\"id\": 2, \"content\": \"<x>\"}]}",
         RG_ERR_CORRUPT},
        /* text A twice in the pair template: truncation budgets for it once,
         * so pairs came out past the limit (found by fuzz_tokenizer_json) */
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0, \"[S]\": 1}}, \"pre_tokenizer\": "
         "{\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
         "[{\"Sequence\": {\"id\": \"A\"}}], \"pair\": [{\"Sequence\": {\"id\": \"A\"}}, {\"SpecialToken\": "
         "{\"id\": \"[S]\"}}, {\"Sequence\": {\"id\": \"A\"}}, {\"Sequence\": {\"id\": \"B\"}}], "
         "\"special_tokens\": {\"[S]\": {\"id\": \"[S]\", \"ids\": [1]}}}}",
         RG_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_file(p, cases[i].json);
        rg_status st = tokenizer_load(dir, &t, &err);
        CHECK_MSG(st == cases[i].want, "case %zu: status %d (%s)", i, (int)st, st ? err.msg : "ok");
        if (!st) {
            /* no post_processor: no special tokens */
            rg_encoding enc;
            memset(&enc, 0, sizeof enc);
            CHECK(tokenizer_encode_single(t, "a [UNK] b", 9, 0, RG_TRUNC_END, &enc, &err) == RG_OK);
            CHECK(enc.n == 3 && enc.ids[0] == 1 && enc.ids[1] == 0 && enc.ids[2] == 0);
            encoding_free(&enc);
            tokenizer_free(t);
        }
    }
    unlink(p);
    /* vocab.txt with CRLF line ends, no config */
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    write_file(p, "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhello\r\n##s\r\n");
    CHECK_OK(tokenizer_load(dir, &t, &err), err);
    if (t) {
        int32_t ids[4];
        size_t n;
        CHECK(tokenizer_encode(t, "Hellos", 6, ids, 4, &n, &err) == RG_OK && n == 2 && ids[0] == 4 && ids[1] == 5);
        tokenizer_free(t);
    }
    unlink(p);
    CHECK(tokenizer_load(dir, &t, &err) == RG_ERR_NOT_FOUND);
    rmdir(dir);
}

int main(void)
{
    test_vocab();
    test_new_from_tokens();
    test_bad_files();
    if (!find_model()) {
        fprintf(stderr,
                "test_tokenizer: the default model is not installed at %s (set RAGD_MODELS or run `make models`)\n",
                model_dir);
        CHECK(0);
        return check_finish("test_tokenizer");
    }
    rg_tokenizer *tj = NULL, *tv = NULL;
    rg_err err;
    CHECK_OK(tokenizer_load(model_dir, &tj, &err), err);
    char vp[4200], cp[4200];
    snprintf(vp, sizeof vp, "%s/vocab.txt", model_dir);
    snprintf(cp, sizeof cp, "%s/tokenizer_config.json", model_dir);
    CHECK_OK(tokenizer_load_vocab(vp, cp, &tv, &err), err);
    if (tj && tv) {
        CHECK(tokenizer_vocab_size(tj) == 30522 && tokenizer_vocab_size(tv) == 30522);
        CHECK(tokenizer_cls_id(tj) == 101 && tokenizer_sep_id(tj) == 102 && tokenizer_unk_id(tj) == 100);
        CHECK(tokenizer_cls_id(tv) == 101 && tokenizer_sep_id(tv) == 102 && tokenizer_pad_id(tv) == 0);
        test_golden(tj, "tokenizer.json");
        test_golden(tv, "vocab.txt");
        test_hostile(tj);
        test_truncation(tj);
    }
    tokenizer_free(tj);
    tokenizer_free(tv);
    return check_finish("test_tokenizer");
}
