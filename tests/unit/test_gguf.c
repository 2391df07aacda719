/* test_gguf.c - the GGUF reader and the block formats.
 *
 * The test writes its own GGUF files (a small writer below) with metadata of
 * every type and tensors of F32/F16/BF16/Q8_0 (plus k-quants whose sizes are
 * checked), reads them back value by value, checks Q8_0 dequantization
 * against hand-computed blocks, then feeds malformed files: each must fail
 * with a clear message, never crash. Every prefix of a valid file is opened
 * (only the complete file may succeed), and every byte is mutated.
 *
 * When tests/fixtures/gguf/pywriter.gguf exists (written by the official
 * Python `gguf` package through tests/fixtures/gguf/make_pywriter.py), the
 * reader must agree with what that writer was told to write. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/err.h"
#include "model/gguf.h"
#include "model/quant.h"

static char tmpdir[256];

/* ---- a small GGUF writer ------------------------------------------------- */

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
        unsigned char *np = realloc(w->p, cap);
        if (!np) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        w->p = np;
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

static void put_u8(wbuf *w, uint8_t v) { put_le(w, v, 1); }
static void put_u16(wbuf *w, uint16_t v) { put_le(w, v, 2); }
static void put_u32(wbuf *w, uint32_t v) { put_le(w, v, 4); }
static void put_u64(wbuf *w, uint64_t v) { put_le(w, v, 8); }

static void put_f32(wbuf *w, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(w, u);
}

static void put_f64(wbuf *w, double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    put_u64(w, u);
}

static void put_strn(wbuf *w, const char *s, size_t n)
{
    put_u64(w, n);
    put(w, s, n);
}

static void put_str(wbuf *w, const char *s)
{
    put_strn(w, s, strlen(s));
}

static void put_header(wbuf *w, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    put(w, "GGUF", 4);
    put_u32(w, version);
    put_u64(w, n_tensors);
    put_u64(w, n_kv);
}

static void put_kv_head(wbuf *w, const char *key, uint32_t type)
{
    put_str(w, key);
    put_u32(w, type);
}

static void pad_to(wbuf *w, size_t align)
{
    static const unsigned char zero[256];
    size_t pad = (align - w->n % align) % align;
    while (pad) {
        size_t k = pad < sizeof zero ? pad : sizeof zero;
        put(w, zero, k);
        pad -= k;
    }
}

static void put_tensor_info(wbuf *w, const char *name, uint32_t n_dims, const uint64_t *dims, uint32_t type,
                            uint64_t offset)
{
    put_str(w, name);
    put_u32(w, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        put_u64(w, dims[i]);
    put_u32(w, type);
    put_u64(w, offset);
}

static void wfree(wbuf *w)
{
    free(w->p);
    memset(w, 0, sizeof *w);
}

static const char *write_file(const char *name, const void *data, size_t n)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (n && fwrite(data, 1, n, f) != n) {
        perror(path);
        exit(2);
    }
    fclose(f);
    return path;
}

/* ---- the valid model ------------------------------------------------------ */

#define ARR_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const float F32_DATA[12] = {0.0f, 1.0f, -2.5f, 3.25f, 1e-30f, -1e30f, 0.1f, 65504.0f,
                                   7.0f, -0.0f, 123.456f, 1.0f / 3.0f};
/* exact in half: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), 2^-14 (smallest normal), 0.333251953125 */
static const uint16_t F16_BITS[8] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x0400, 0x3555, 0x0000};
static const float F16_VALUES[8] = {1.0f, -2.0f, 0.5f, 65504.0f, 5.9604644775390625e-08f, 6.103515625e-05f,
                                    0.333251953125f, 0.0f};
static const uint16_t BF16_BITS[4] = {0x3f80, 0xc0a0, 0x3e80, 0x4049}; /* 1, -5, 0.25, 3.140625 */
static const float BF16_VALUES[4] = {1.0f, -5.0f, 0.25f, 3.140625f};

/* Two hand-built Q8_0 blocks (34 bytes each: fp16 d, 32 int8). */
static void q8_0_blocks(unsigned char out[2 * 34], float want[64])
{
    /* block 0: d = 0.5 (0x3800), q = j - 16 */
    out[0] = 0x00;
    out[1] = 0x38;
    for (int j = 0; j < 32; j++) {
        out[2 + j] = (unsigned char)(signed char)(j - 16);
        want[j] = 0.5f * (float)(j - 16);
    }
    /* block 1: d = -0.125 (0xb000), q = 127, -128, then 3 * (j % 5) - 6 */
    out[34] = 0x00;
    out[35] = 0xb0;
    for (int j = 0; j < 32; j++) {
        int q = j == 0 ? 127 : j == 1 ? -128 : 3 * (j % 5) - 6;
        out[36 + j] = (unsigned char)(signed char)q;
        want[32 + j] = -0.125f * (float)q;
    }
}

typedef struct tspec {
    const char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t dims[4];
    size_t nbytes;
} tspec;

static const tspec TENSORS[] = {
    {"f32.weight", GGML_TYPE_F32, 2, {4, 3}, 48},
    {"f16.weight", GGML_TYPE_F16, 1, {8}, 16},
    {"bf16.weight", GGML_TYPE_BF16, 2, {2, 2}, 8},
    {"q8_0.weight", GGML_TYPE_Q8_0, 2, {32, 2}, 68},
    {"q4_0.weight", GGML_TYPE_Q4_0, 1, {64}, 36},
    {"q4_k.weight", GGML_TYPE_Q4_K, 2, {256, 2}, 288},
    {"q6_k.weight", GGML_TYPE_Q6_K, 1, {256}, 210},
    {"q8_k.weight", GGML_TYPE_Q8_K, 3, {256, 1, 2}, 584},
    {"blk.0.attn_q.weight", GGML_TYPE_F32, 4, {1, 2, 1, 2}, 16},
};

static const char *TOKENS[] = {"[PAD]", "hello", "", "w\xc3\xb6rld", "\xe4\xb8\x96\xe7\x95\x8c", "##ing"};

/* Writes the valid model; alignment 0 leaves general.alignment out (32). */
static void build_model(wbuf *w, uint32_t version, uint32_t alignment)
{
    size_t align = alignment ? alignment : 32;
    uint64_t n_kv = 26 + (alignment ? 1 : 0);
    put_header(w, version, ARR_LEN(TENSORS), n_kv);

    put_kv_head(w, "general.architecture", GGUF_TYPE_STRING);
    put_str(w, "llama");
    if (alignment) {
        put_kv_head(w, "general.alignment", GGUF_TYPE_UINT32);
        put_u32(w, alignment);
    }
    put_kv_head(w, "test.u8", GGUF_TYPE_UINT8);
    put_u8(w, 200);
    put_kv_head(w, "test.i8", GGUF_TYPE_INT8);
    put_u8(w, (uint8_t)-100);
    put_kv_head(w, "test.u16", GGUF_TYPE_UINT16);
    put_u16(w, 60000);
    put_kv_head(w, "test.i16", GGUF_TYPE_INT16);
    put_u16(w, (uint16_t)-30000);
    put_kv_head(w, "test.u32", GGUF_TYPE_UINT32);
    put_u32(w, 4000000000u);
    put_kv_head(w, "test.i32", GGUF_TYPE_INT32);
    put_u32(w, (uint32_t)-2000000000);
    put_kv_head(w, "test.f32", GGUF_TYPE_FLOAT32);
    put_f32(w, 3.5f);
    put_kv_head(w, "test.bool_true", GGUF_TYPE_BOOL);
    put_u8(w, 1);
    put_kv_head(w, "test.bool_false", GGUF_TYPE_BOOL);
    put_u8(w, 0);
    put_kv_head(w, "test.u64", GGUF_TYPE_UINT64);
    put_u64(w, 9223372036854775813ull); /* 2^63 + 5 */
    put_kv_head(w, "test.i64", GGUF_TYPE_INT64);
    put_u64(w, (uint64_t)-1099511627776ll); /* -2^40 */
    put_kv_head(w, "test.f64", GGUF_TYPE_FLOAT64);
    put_f64(w, -1e300);
    put_kv_head(w, "test.empty", GGUF_TYPE_STRING);
    put_str(w, "");
    put_kv_head(w, "test.nul_inside", GGUF_TYPE_STRING);
    put_strn(w, "a\0b", 3);
    put_kv_head(w, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_STRING);
    put_u64(w, ARR_LEN(TOKENS));
    for (size_t i = 0; i < ARR_LEN(TOKENS); i++)
        put_str(w, TOKENS[i]);
    put_kv_head(w, "test.arr_i32", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_INT32);
    put_u64(w, 3);
    put_u32(w, 1);
    put_u32(w, (uint32_t)-2);
    put_u32(w, 2147483647u);
    put_kv_head(w, "test.arr_f32", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_FLOAT32);
    put_u64(w, 2);
    put_f32(w, -0.5f);
    put_f32(w, 1e10f);
    put_kv_head(w, "test.arr_f64", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_FLOAT64);
    put_u64(w, 1);
    put_f64(w, 2.718281828459045);
    put_kv_head(w, "test.arr_bool", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_BOOL);
    put_u64(w, 3);
    put_u8(w, 1);
    put_u8(w, 0);
    put_u8(w, 1);
    put_kv_head(w, "test.arr_u64", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_UINT64);
    put_u64(w, 2);
    put_u64(w, 18446744073709551615ull);
    put_u64(w, 42);
    put_kv_head(w, "test.arr_u8_empty", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_UINT8);
    put_u64(w, 0);
    /* [[1, 2], [3]] of uint16 */
    put_kv_head(w, "test.nested", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_ARRAY);
    put_u64(w, 2);
    put_u32(w, GGUF_TYPE_UINT16);
    put_u64(w, 2);
    put_u16(w, 1);
    put_u16(w, 2);
    put_u32(w, GGUF_TYPE_UINT16);
    put_u64(w, 1);
    put_u16(w, 3);
    /* [[["x"]], []] : arrays of arrays of strings */
    put_kv_head(w, "test.nested_str", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_ARRAY);
    put_u64(w, 2);
    put_u32(w, GGUF_TYPE_ARRAY);
    put_u64(w, 1);
    put_u32(w, GGUF_TYPE_STRING);
    put_u64(w, 1);
    put_str(w, "x");
    put_u32(w, GGUF_TYPE_STRING);
    put_u64(w, 0);
    put_kv_head(w, "test.arr_i8", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_INT8);
    put_u64(w, 2);
    put_u8(w, (uint8_t)-128);
    put_u8(w, 127);
    put_kv_head(w, "test.arr_i16", GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_INT16);
    put_u64(w, 1);
    put_u16(w, (uint16_t)-32768);

    /* tensor infos: data laid out in order, each at an aligned offset */
    uint64_t off = 0;
    for (size_t i = 0; i < ARR_LEN(TENSORS); i++) {
        const tspec *t = &TENSORS[i];
        put_tensor_info(w, t->name, t->n_dims, t->dims, t->type, off);
        off += t->nbytes;
        off = (off + align - 1) / align * align;
    }
    pad_to(w, align);
    unsigned char q8[68];
    float q8_want[64];
    q8_0_blocks(q8, q8_want);
    for (size_t i = 0; i < ARR_LEN(TENSORS); i++) {
        const tspec *t = &TENSORS[i];
        if (i)
            pad_to(w, align);
        switch (i) {
        case 0:
            for (int k = 0; k < 12; k++)
                put_f32(w, F32_DATA[k]);
            break;
        case 1:
            for (int k = 0; k < 8; k++)
                put_u16(w, F16_BITS[k]);
            break;
        case 2:
            for (int k = 0; k < 4; k++)
                put_u16(w, BF16_BITS[k]);
            break;
        case 3: put(w, q8, sizeof q8); break;
        default:
            for (size_t k = 0; k < t->nbytes; k++)
                put_u8(w, (uint8_t)(k * 7 + i));
        }
    }
    /* no padding after the last tensor: every strict prefix is incomplete */
}

/* ---- reading it back ------------------------------------------------------ */

static void check_model(const gguf_file *g, uint32_t version, size_t align)
{
    rg_err e = {0};
    CHECK(gguf_version(g) == version);
    CHECK_MSG(gguf_alignment(g) == align, "alignment %zu", gguf_alignment(g));
    CHECK(gguf_data_offset(g) % align == 0);
    CHECK_MSG(gguf_kv_count(g) == (align == 32 ? 26u : 27u), "%zu pairs", gguf_kv_count(g));

    size_t len = 99;
    const gguf_kv *kv = gguf_find_kv(g, "general.architecture");
    CHECK(kv && gguf_value_type(kv) == GGUF_TYPE_STRING);
    CHECK(kv && strcmp(gguf_kv_key(kv), "general.architecture") == 0);
    const char *s = gguf_kv_string(kv, &len);
    CHECK(s && strcmp(s, "llama") == 0 && len == 5);
    CHECK(gguf_kv_at(g, 0) == kv);
    CHECK(gguf_kv_at(g, gguf_kv_count(g)) == NULL);
    CHECK(gguf_find_kv(g, "no.such.key") == NULL);
    CHECK(gguf_find_kv(g, "general") == NULL);
    for (size_t i = 0; i < gguf_kv_count(g); i++)
        CHECK(gguf_find_kv(g, gguf_kv_key(gguf_kv_at(g, i))) == gguf_kv_at(g, i));

    uint32_t u32 = 0;
    uint64_t u64 = 0;
    int32_t i32 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    double f64 = 0;
    int b = -1;

    CHECK_OK(gguf_kv_u32(gguf_find_kv(g, "test.u8"), &u32, &e), e);
    CHECK(u32 == 200);
    CHECK_OK(gguf_kv_i32(gguf_find_kv(g, "test.i8"), &i32, &e), e);
    CHECK(i32 == -100);
    CHECK(gguf_kv_u32(gguf_find_kv(g, "test.i8"), &u32, &e) == RG_ERR_INVALID); /* negative */
    CHECK_OK(gguf_kv_u32(gguf_find_kv(g, "test.u16"), &u32, &e), e);
    CHECK(u32 == 60000);
    CHECK_OK(gguf_kv_i64(gguf_find_kv(g, "test.i16"), &i64, &e), e);
    CHECK(i64 == -30000);
    CHECK_OK(gguf_kv_u32(gguf_find_kv(g, "test.u32"), &u32, &e), e);
    CHECK(u32 == 4000000000u);
    CHECK(gguf_kv_i32(gguf_find_kv(g, "test.u32"), &i32, &e) == RG_ERR_INVALID);
    CHECK(strstr(e.msg, "test.u32") && strstr(e.msg, "int32"));
    CHECK_OK(gguf_kv_i32(gguf_find_kv(g, "test.i32"), &i32, &e), e);
    CHECK(i32 == -2000000000);
    CHECK_OK(gguf_kv_f32(gguf_find_kv(g, "test.f32"), &f32, &e), e);
    CHECK(f32 == 3.5f);
    CHECK_OK(gguf_kv_bool(gguf_find_kv(g, "test.bool_true"), &b, &e), e);
    CHECK(b == 1);
    CHECK_OK(gguf_kv_bool(gguf_find_kv(g, "test.bool_false"), &b, &e), e);
    CHECK(b == 0);
    CHECK_OK(gguf_kv_u64(gguf_find_kv(g, "test.u64"), &u64, &e), e);
    CHECK(u64 == 9223372036854775813ull);
    CHECK(gguf_kv_i64(gguf_find_kv(g, "test.u64"), &i64, &e) == RG_ERR_INVALID);
    CHECK(gguf_kv_u32(gguf_find_kv(g, "test.u64"), &u32, &e) == RG_ERR_INVALID);
    CHECK_OK(gguf_kv_i64(gguf_find_kv(g, "test.i64"), &i64, &e), e);
    CHECK(i64 == -1099511627776ll);
    CHECK_OK(gguf_kv_f64(gguf_find_kv(g, "test.f64"), &f64, &e), e);
    CHECK(f64 == -1e300);
    s = gguf_kv_string(gguf_find_kv(g, "test.empty"), &len);
    CHECK(s && *s == '\0' && len == 0);
    s = gguf_kv_string(gguf_find_kv(g, "test.nul_inside"), &len);
    CHECK(s && len == 3 && memcmp(s, "a\0b", 4) == 0);

    /* type mismatches name the key and both types */
    CHECK(gguf_kv_u32(kv, &u32, &e) == RG_ERR_INVALID);
    CHECK_MSG(strstr(e.msg, "general.architecture") && strstr(e.msg, "string"), "%s", e.msg);
    CHECK(gguf_kv_f32(gguf_find_kv(g, "test.u32"), &f32, &e) == RG_ERR_INVALID);
    CHECK(gguf_kv_bool(gguf_find_kv(g, "test.u8"), &b, &e) == RG_ERR_INVALID);
    CHECK(gguf_kv_string(gguf_find_kv(g, "test.u8"), &len) == NULL);
    CHECK(gguf_kv_u32(NULL, &u32, &e) == RG_ERR_NOT_FOUND);
    CHECK(gguf_kv_array_len(kv) == 0 && gguf_kv_array_type(kv) == GGUF_TYPE_COUNT);

    /* arrays */
    const gguf_kv *tok = gguf_find_kv(g, "tokenizer.ggml.tokens");
    CHECK(gguf_value_type(tok) == GGUF_TYPE_ARRAY && gguf_kv_array_type(tok) == GGUF_TYPE_STRING);
    CHECK(gguf_kv_array_len(tok) == ARR_LEN(TOKENS));
    for (size_t i = 0; i < ARR_LEN(TOKENS); i++) {
        s = gguf_kv_array_string(tok, i, &len);
        CHECK_MSG(s && strcmp(s, TOKENS[i]) == 0 && len == strlen(TOKENS[i]), "token %zu", i);
    }
    CHECK(gguf_kv_array_string(tok, ARR_LEN(TOKENS), &len) == NULL);
    CHECK(gguf_kv_array_i64(tok, 0, &i64, &e) == RG_ERR_INVALID);
    CHECK(gguf_kv_array_data(tok, NULL) == NULL);

    const gguf_kv *ai = gguf_find_kv(g, "test.arr_i32");
    CHECK(gguf_kv_array_len(ai) == 3 && gguf_kv_array_type(ai) == GGUF_TYPE_INT32);
    CHECK_OK(gguf_kv_array_i64(ai, 0, &i64, &e), e);
    CHECK(i64 == 1);
    CHECK_OK(gguf_kv_array_i64(ai, 1, &i64, &e), e);
    CHECK(i64 == -2);
    CHECK_OK(gguf_kv_array_i64(ai, 2, &i64, &e), e);
    CHECK(i64 == 2147483647);
    CHECK(gguf_kv_array_u64(ai, 1, &u64, &e) == RG_ERR_INVALID); /* -2 */
    CHECK(gguf_kv_array_i64(ai, 3, &i64, &e) == RG_ERR_INVALID);
    CHECK(strstr(e.msg, "index 3"));
    CHECK(gguf_kv_array_f64(ai, 0, &f64, &e) == RG_ERR_INVALID);
    CHECK(gguf_kv_array_string(ai, 0, &len) == NULL);
    size_t es = 0;
    const unsigned char *raw = gguf_kv_array_data(ai, &es);
    CHECK(raw && es == 4 && raw[4] == 0xfe && raw[5] == 0xff);

    const gguf_kv *af = gguf_find_kv(g, "test.arr_f32");
    CHECK_OK(gguf_kv_array_f64(af, 0, &f64, &e), e);
    CHECK(f64 == -0.5);
    CHECK_OK(gguf_kv_array_f64(af, 1, &f64, &e), e);
    CHECK(f64 == (double)1e10f);
    CHECK_OK(gguf_kv_array_f64(gguf_find_kv(g, "test.arr_f64"), 0, &f64, &e), e);
    CHECK(f64 == 2.718281828459045);
    const gguf_kv *ab = gguf_find_kv(g, "test.arr_bool");
    int bools[3] = {-1, -1, -1};
    for (int i = 0; i < 3; i++)
        CHECK_OK(gguf_kv_array_bool(ab, (size_t)i, &bools[i], &e), e);
    CHECK(bools[0] == 1 && bools[1] == 0 && bools[2] == 1);
    const gguf_kv *au = gguf_find_kv(g, "test.arr_u64");
    CHECK_OK(gguf_kv_array_u64(au, 0, &u64, &e), e);
    CHECK(u64 == 18446744073709551615ull);
    CHECK(gguf_kv_array_i64(au, 0, &i64, &e) == RG_ERR_INVALID);
    CHECK_OK(gguf_kv_array_u64(au, 1, &u64, &e), e);
    CHECK(u64 == 42);
    const gguf_kv *ae = gguf_find_kv(g, "test.arr_u8_empty");
    CHECK(gguf_value_type(ae) == GGUF_TYPE_ARRAY && gguf_kv_array_len(ae) == 0 &&
          gguf_kv_array_type(ae) == GGUF_TYPE_UINT8);
    CHECK(gguf_kv_array_u64(ae, 0, &u64, &e) == RG_ERR_INVALID);
    CHECK_OK(gguf_kv_array_i64(gguf_find_kv(g, "test.arr_i8"), 0, &i64, &e), e);
    CHECK(i64 == -128);
    CHECK_OK(gguf_kv_array_i64(gguf_find_kv(g, "test.arr_i8"), 1, &i64, &e), e);
    CHECK(i64 == 127);
    CHECK_OK(gguf_kv_array_i64(gguf_find_kv(g, "test.arr_i16"), 0, &i64, &e), e);
    CHECK(i64 == -32768);

    const gguf_kv *nest = gguf_find_kv(g, "test.nested");
    CHECK(gguf_kv_array_type(nest) == GGUF_TYPE_ARRAY && gguf_kv_array_len(nest) == 2);
    const gguf_value *n0 = gguf_kv_array_at(nest, 0), *n1 = gguf_kv_array_at(nest, 1);
    CHECK(gguf_kv_array_at(nest, 2) == NULL);
    CHECK(n0 && gguf_kv_array_len(n0) == 2 && gguf_kv_array_type(n0) == GGUF_TYPE_UINT16);
    CHECK(n1 && gguf_kv_array_len(n1) == 1);
    CHECK_OK(gguf_kv_array_u64(n0, 0, &u64, &e), e);
    CHECK(u64 == 1);
    CHECK_OK(gguf_kv_array_u64(n0, 1, &u64, &e), e);
    CHECK(u64 == 2);
    CHECK_OK(gguf_kv_array_u64(n1, 0, &u64, &e), e);
    CHECK(u64 == 3);
    const gguf_kv *ns = gguf_find_kv(g, "test.nested_str");
    const gguf_value *ns0 = gguf_kv_array_at(ns, 0);
    const gguf_value *ns00 = gguf_kv_array_at(ns0, 0);
    s = gguf_kv_array_string(ns00, 0, &len);
    CHECK(s && strcmp(s, "x") == 0 && len == 1);
    CHECK(gguf_kv_array_len(gguf_kv_array_at(ns, 1)) == 0);
    CHECK(gguf_kv_array_type(gguf_kv_array_at(ns, 1)) == GGUF_TYPE_STRING);

    /* tensors */
    CHECK(gguf_tensor_count(g) == ARR_LEN(TENSORS));
    CHECK(gguf_tensor_at(g, ARR_LEN(TENSORS)) == NULL);
    CHECK(gguf_tensor_find(g, "nope") == NULL);
    for (size_t i = 0; i < ARR_LEN(TENSORS); i++) {
        const tspec *want = &TENSORS[i];
        const gguf_tensor *t = gguf_tensor_at(g, i);
        CHECK(gguf_tensor_find(g, want->name) == t);
        CHECK_STR(t->name, want->name);
        CHECK(t->type == want->type);
        CHECK(t->n_dims == want->n_dims);
        int64_t n = 1;
        for (uint32_t d = 0; d < 4; d++) {
            int64_t wd = d < want->n_dims ? (int64_t)want->dims[d] : 1;
            CHECK(t->dims[d] == wd);
            n *= wd;
        }
        CHECK(t->n_elems == n);
        CHECK_MSG(t->nbytes == want->nbytes, "%s: nbytes %zu, want %zu", t->name, t->nbytes, want->nbytes);
        CHECK(t->offset % align == 0);
        CHECK(((uintptr_t)t->data - (uintptr_t)gguf_tensor_at(g, 0)->data) == t->offset);
        CHECK((size_t)((const unsigned char *)t->data - (const unsigned char *)gguf_tensor_at(g, 0)->data) +
                  gguf_data_offset(g) + t->nbytes <=
              gguf_file_size(g));
    }
    float out[64];
    const gguf_tensor *t = gguf_tensor_find(g, "f32.weight");
    CHECK_OK(gguf_tensor_to_f32(t, out, &e), e);
    for (int k = 0; k < 12; k++)
        CHECK(memcmp(&out[k], &F32_DATA[k], 4) == 0);
    t = gguf_tensor_find(g, "f16.weight");
    CHECK_OK(gguf_tensor_to_f32(t, out, &e), e);
    for (int k = 0; k < 8; k++)
        CHECK_MSG(out[k] == F16_VALUES[k], "f16[%d] = %g", k, (double)out[k]);
    t = gguf_tensor_find(g, "bf16.weight");
    CHECK_OK(gguf_tensor_to_f32(t, out, &e), e);
    for (int k = 0; k < 4; k++)
        CHECK(out[k] == BF16_VALUES[k]);
    t = gguf_tensor_find(g, "q8_0.weight");
    unsigned char q8[68];
    float q8_want[64];
    q8_0_blocks(q8, q8_want);
    CHECK(t && memcmp(t->data, q8, sizeof q8) == 0);
    CHECK_OK(gguf_tensor_to_f32(t, out, &e), e);
    for (int k = 0; k < 64; k++)
        CHECK_MSG(out[k] == q8_want[k], "q8_0[%d] = %g, want %g", k, (double)out[k], (double)q8_want[k]);
    /* k-quants: sizes are known and checked; dequantized as dequantize_row
     * does (whose values test_quant.c checks against the gguf package) */
    t = gguf_tensor_find(g, "q4_k.weight");
    float big[512], big_want[512];
    CHECK_OK(gguf_tensor_to_f32(t, big, &e), e);
    CHECK_OK(dequantize_row(GGML_TYPE_Q4_K, t->data, big_want, 512, &e), e);
    CHECK(memcmp(big, big_want, sizeof big) == 0);
    /* a type whose layout is known but that is not dequantized is refused,
     * naming the tensor */
    gguf_tensor q3 = *t;
    q3.type = GGML_TYPE_Q3_K;
    CHECK(gguf_tensor_to_f32(&q3, big, &e) == RG_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(e.msg, "unsupported tensor type 11") && strstr(e.msg, "q4_k.weight"), "%s", e.msg);
}

static void test_roundtrip(void)
{
    static const struct {
        uint32_t version, alignment;
    } cases[] = {{3, 0}, {2, 0}, {3, 64}, {3, 8}, {2, 128}};
    for (size_t c = 0; c < ARR_LEN(cases); c++) {
        wbuf w = {0};
        build_model(&w, cases[c].version, cases[c].alignment);
        const char *path = write_file("model.gguf", w.p, w.n);
        gguf_file *g = NULL;
        rg_err e = {0};
        rg_status s = gguf_open(path, &g, &e);
        CHECK_OK(s, e);
        if (s == RG_OK)
            check_model(g, cases[c].version, cases[c].alignment ? cases[c].alignment : 32);
        gguf_close(g);
        /* the same through the in-memory entry point */
        s = gguf_open_memory(w.p, w.n, &g, &e);
        CHECK_OK(s, e);
        gguf_close(g);
        wfree(&w);
    }
}

/* ---- block formats ------------------------------------------------------------ */

static void test_quant(void)
{
    rg_err e = {0};
    uint32_t be = 0, bb = 0;
    /* layouts from the GGUF spec / ggml-common.h */
    CHECK(ggml_type_layout(GGML_TYPE_Q8_0, &be, &bb) && be == 32 && bb == 34);
    CHECK(ggml_type_layout(GGML_TYPE_Q4_0, &be, &bb) && be == 32 && bb == 18);
    CHECK(ggml_type_layout(GGML_TYPE_Q4_K, &be, &bb) && be == 256 && bb == 144);
    CHECK(ggml_type_layout(GGML_TYPE_Q6_K, &be, &bb) && be == 256 && bb == 210);
    CHECK(ggml_type_layout(GGML_TYPE_Q8_K, &be, &bb) && be == 256 && bb == 292);
    CHECK(ggml_type_layout(GGML_TYPE_Q2_K, &be, &bb) && bb == 84);
    CHECK(ggml_type_layout(GGML_TYPE_Q3_K, &be, &bb) && bb == 110);
    CHECK(ggml_type_layout(GGML_TYPE_Q5_K, &be, &bb) && bb == 176);
    CHECK(ggml_type_layout(GGML_TYPE_BF16, &be, &bb) && be == 1 && bb == 2);
    CHECK(!ggml_type_layout(4, &be, &bb) && !ggml_type_layout(31, NULL, NULL) && !ggml_type_layout(40, NULL, NULL));
    CHECK_STR(ggml_type_name(GGML_TYPE_Q8_0), "Q8_0");
    CHECK(ggml_type_name(5) == NULL);
    size_t nb = 0;
    CHECK_OK(ggml_row_bytes(GGML_TYPE_Q8_0, 96, &nb, &e), e);
    CHECK(nb == 3 * 34);
    CHECK(ggml_row_bytes(GGML_TYPE_Q8_0, 33, &nb, &e) == RG_ERR_INVALID);
    CHECK(ggml_row_bytes(GGML_TYPE_F32, UINT64_MAX, &nb, &e) == RG_ERR_INVALID);
    CHECK(ggml_row_bytes(77, 1, &nb, &e) == RG_ERR_UNSUPPORTED);

    /* Q8_0 by hand: value = d * q */
    unsigned char blk[68];
    float want[64], got[64];
    q8_0_blocks(blk, want);
    CHECK_OK(dequantize_row(GGML_TYPE_Q8_0, blk, got, 64, &e), e);
    for (int i = 0; i < 64; i++)
        CHECK_MSG(got[i] == want[i], "[%d] %g != %g", i, (double)got[i], (double)want[i]);
    CHECK(got[0] == -8.0f && got[31] == 7.5f && got[32] == -15.875f && got[33] == 16.0f);
    /* unaligned source */
    unsigned char shifted[69];
    memcpy(shifted + 1, blk, 68);
    CHECK_OK(dequantize_row(GGML_TYPE_Q8_0, shifted + 1, got, 64, &e), e);
    CHECK(memcmp(got, want, sizeof want) == 0);
    CHECK(dequantize_row(GGML_TYPE_Q8_0, blk, got, 40, &e) == RG_ERR_INVALID);
    CHECK(dequantize_row(GGML_TYPE_Q3_K, blk, got, 256, &e) == RG_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(e.msg, "unsupported tensor type 11"), "%s", e.msg);
    CHECK(dequantize_row(4, blk, got, 32, &e) == RG_ERR_UNSUPPORTED);
    CHECK(strstr(e.msg, "unsupported tensor type 4"));

    /* quantize then dequantize: within half a step of the input */
    float x[64], y[64];
    for (int i = 0; i < 64; i++)
        x[i] = (float)sin(i * 0.37) * (i < 32 ? 3.0f : 0.01f);
    unsigned char q[68];
    CHECK_OK(quantize_row_q8_0(x, q, 64, &e), e);
    CHECK_OK(dequantize_row(GGML_TYPE_Q8_0, q, y, 64, &e), e);
    for (int b = 0; b < 2; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++)
            amax = fmaxf(amax, fabsf(x[32 * b + i]));
        float d = fp16_to_f32((uint16_t)(q[34 * b] | q[34 * b + 1] << 8));
        CHECK(fabsf(d - amax / 127.0f) <= amax / 127.0f * 1e-3f);
        /* half a step, plus d's rounding to fp16 (2^-11 relative) times |q| <= 127 */
        for (int i = 0; i < 32; i++)
            CHECK_MSG(fabsf(y[32 * b + i] - x[32 * b + i]) <= 0.5f * d + 127.0f * d / 2048.0f, "[%d]", 32 * b + i);
    }
    float zeros[32] = {0};
    CHECK_OK(quantize_row_q8_0(zeros, q, 32, &e), e);
    CHECK_OK(dequantize_row(GGML_TYPE_Q8_0, q, y, 32, &e), e);
    for (int i = 0; i < 32; i++)
        CHECK(y[i] == 0.0f);

    /* fp16: every half round-trips exactly through float */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fp16_to_f32((uint16_t)h);
        uint16_t back = f32_to_fp16(f);
        if (isnan(f)) {
            if ((back & 0x7c00) != 0x7c00 || (back & 0x3ff) == 0)
                bad++;
        } else if (back != h) {
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d halves do not round-trip", bad);
    CHECK(fp16_to_f32(0x3c00) == 1.0f && fp16_to_f32(0xc000) == -2.0f && fp16_to_f32(0x7bff) == 65504.0f);
    CHECK(isinf(fp16_to_f32(0x7c00)) && fp16_to_f32(0xfc00) < 0 && isnan(fp16_to_f32(0x7e00)));
    CHECK(fp16_to_f32(0x0001) == 5.9604644775390625e-08f);
    CHECK(f32_to_fp16(65520.0f) == 0x7c00 && f32_to_fp16(65519.0f) == 0x7bff);
    CHECK(f32_to_fp16(1.0f + 1.0f / 2048.0f) == 0x3c00);         /* tie to even */
    CHECK(f32_to_fp16(1.0f + 3.0f / 2048.0f) == 0x3c02);         /* tie to even, up */
    CHECK(f32_to_fp16(2.9802322387695312e-08f) == 0x0000);      /* 2^-25: tie to even 0 */
    CHECK(f32_to_fp16(4.4703483581542969e-08f) == 0x0001);      /* 1.5 * 2^-25 */
    CHECK(bf16_to_f32(0x3f80) == 1.0f && f32_to_bf16(1.0f) == 0x3f80);
    CHECK(f32_to_bf16(1.00390625f) == 0x3f80); /* 1 + 2^-8: tie to even */
    CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))));
    CHECK(dequantize_supported(GGML_TYPE_F32) && dequantize_supported(GGML_TYPE_Q8_0) &&
          dequantize_supported(GGML_TYPE_Q4_K) && !dequantize_supported(GGML_TYPE_Q3_K));
}

/* ---- malformed files --------------------------------------------------------- */

/* Opens buf from a file and from memory; both must fail with want (0: any
 * error) and a message containing needle (NULL: any non-empty message). */
static void expect_fail(const char *what, const wbuf *w, rg_status want, const char *needle)
{
    for (int via_file = 0; via_file < 2; via_file++) {
        gguf_file *g = (gguf_file *)&g; /* must be reset to NULL */
        rg_err e = {0};
        rg_status s;
        if (via_file)
            s = gguf_open(write_file("bad.gguf", w->p, w->n), &g, &e);
        else
            s = gguf_open_memory(w->p, w->n, &g, &e);
        CHECK_MSG(s != RG_OK, "%s: opened", what);
        CHECK_MSG(g == NULL, "%s: handle not NULL on failure", what);
        if (want)
            CHECK_MSG(s == want, "%s: status %d (%s), want %d", what, (int)s, e.msg, (int)want);
        CHECK_MSG(e.msg[0] != '\0', "%s: empty message", what);
        if (!via_file && getenv("RAGD_TEST_VERBOSE"))
            printf("%-28s -> %s\n", what, e.msg);
        if (needle)
            CHECK_MSG(strstr(e.msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, e.msg, needle);
        if (via_file)
            CHECK_MSG(strstr(e.msg, "bad.gguf") != NULL, "%s: message \"%s\" lacks the path", what, e.msg);
        if (s == RG_OK)
            gguf_close(g);
    }
}

/* A small file: header + the given kvs, then one F32 tensor [8] at offset 0. */
typedef void (*kv_writer)(wbuf *);

static void one_tensor_file(wbuf *w, uint64_t n_kv, kv_writer kvs, uint32_t align, uint32_t n_dims,
                            const uint64_t *dims, uint32_t type, uint64_t offset, size_t data_bytes)
{
    static const uint64_t def_dims[1] = {8};
    put_header(w, 3, 1, n_kv);
    if (kvs)
        kvs(w);
    put_tensor_info(w, "t", dims ? n_dims : 1, dims ? dims : def_dims, type, offset);
    pad_to(w, align);
    for (size_t i = 0; i < data_bytes; i++)
        put_u8(w, (uint8_t)i);
}

static void kvs_align48(wbuf *w)
{
    put_kv_head(w, "general.alignment", GGUF_TYPE_UINT32);
    put_u32(w, 48);
}

static void kvs_align0(wbuf *w)
{
    put_kv_head(w, "general.alignment", GGUF_TYPE_UINT32);
    put_u32(w, 0);
}

static void kvs_align_2p63(wbuf *w)
{
    put_kv_head(w, "general.alignment", GGUF_TYPE_UINT64);
    put_u64(w, (uint64_t)1 << 63);
}

static void kvs_align_str(wbuf *w)
{
    put_kv_head(w, "general.alignment", GGUF_TYPE_STRING);
    put_str(w, "32");
}

static void test_malformed(void)
{
    wbuf w = {0};

    /* empty and tiny files */
    expect_fail("empty file", &w, RG_ERR_CORRUPT, NULL);
    put(&w, "GGU", 3);
    expect_fail("3 bytes", &w, RG_ERR_CORRUPT, "too short");
    wfree(&w);

    /* bad magic */
    build_model(&w, 3, 0);
    memcpy(w.p, "GGML", 4);
    expect_fail("bad magic", &w, RG_ERR_CORRUPT, "not a GGUF file");
    wfree(&w);

    /* version 1, 4, 0 and a big-endian file */
    build_model(&w, 1, 0);
    expect_fail("version 1", &w, RG_ERR_UNSUPPORTED, "version 1");
    wfree(&w);
    build_model(&w, 4, 0);
    expect_fail("version 4", &w, RG_ERR_UNSUPPORTED, "version 4");
    wfree(&w);
    build_model(&w, 0, 0);
    expect_fail("version 0", &w, RG_ERR_UNSUPPORTED, "version 0");
    wfree(&w);
    build_model(&w, 0x03000000u, 0);
    expect_fail("big-endian", &w, RG_ERR_UNSUPPORTED, "big-endian");
    wfree(&w);

    /* impossible header counts */
    put_header(&w, 3, 0, UINT64_MAX);
    expect_fail("kv count 2^64-1", &w, RG_ERR_CORRUPT, "metadata count");
    wfree(&w);
    put_header(&w, 3, (uint64_t)1 << 60, 0);
    expect_fail("tensor count 2^60", &w, RG_ERR_CORRUPT, "tensor count");
    wfree(&w);

    /* huge string lengths: key, value, tensor name */
    put_header(&w, 3, 0, 1);
    put_u64(&w, UINT64_MAX);
    put(&w, "abcdefgh", 8);
    expect_fail("huge key length", &w, RG_ERR_CORRUPT, "exceeds");
    wfree(&w);
    put_header(&w, 3, 0, 1);
    put_kv_head(&w, "k", GGUF_TYPE_STRING);
    put_u64(&w, (uint64_t)1 << 62);
    put(&w, "abcdefgh", 8);
    expect_fail("huge string length", &w, RG_ERR_CORRUPT, "exceeds");
    wfree(&w);
    put_header(&w, 3, 0, 1);
    put_kv_head(&w, "k", GGUF_TYPE_STRING);
    put_u64(&w, 9); /* one byte more than there is */
    put(&w, "abcdefgh", 8);
    expect_fail("string one byte short", &w, RG_ERR_CORRUPT, "exceeds");
    wfree(&w);

    /* huge array lengths of every element kind */
    static const uint32_t elem_types[] = {GGUF_TYPE_UINT8, GGUF_TYPE_UINT32, GGUF_TYPE_FLOAT64, GGUF_TYPE_BOOL,
                                          GGUF_TYPE_STRING, GGUF_TYPE_ARRAY};
    for (size_t i = 0; i < ARR_LEN(elem_types); i++) {
        static const uint64_t lens[] = {UINT64_MAX, (uint64_t)1 << 61, 1000};
        for (size_t j = 0; j < ARR_LEN(lens); j++) {
            put_header(&w, 3, 0, 1);
            put_kv_head(&w, "arr", GGUF_TYPE_ARRAY);
            put_u32(&w, elem_types[i]);
            put_u64(&w, lens[j]);
            for (int k = 0; k < 4; k++)
                put_u64(&w, 0);
            char what[64];
            snprintf(what, sizeof what, "array of %llu %s", (unsigned long long)lens[j],
                     gguf_type_name((gguf_type)elem_types[i]));
            expect_fail(what, &w, RG_ERR_CORRUPT, "arr");
            wfree(&w);
        }
    }

    /* bad value types, bools, nesting */
    put_header(&w, 3, 0, 1);
    put_kv_head(&w, "k", 13);
    put_u64(&w, 0);
    expect_fail("value type 13", &w, RG_ERR_CORRUPT, "value type 13");
    wfree(&w);
    put_header(&w, 3, 0, 1);
    put_kv_head(&w, "k", GGUF_TYPE_ARRAY);
    put_u32(&w, 99);
    put_u64(&w, 0);
    expect_fail("array element type 99", &w, RG_ERR_CORRUPT, "element type 99");
    wfree(&w);
    put_header(&w, 3, 0, 1);
    put_kv_head(&w, "k", GGUF_TYPE_BOOL);
    put_u8(&w, 2);
    expect_fail("bool 2", &w, RG_ERR_CORRUPT, "bool");
    wfree(&w);
    put_header(&w, 3, 0, 1);
    put_kv_head(&w, "k", GGUF_TYPE_ARRAY);
    put_u32(&w, GGUF_TYPE_BOOL);
    put_u64(&w, 2);
    put_u8(&w, 0);
    put_u8(&w, 7);
    expect_fail("bool array with 7", &w, RG_ERR_CORRUPT, "bool");
    wfree(&w);
    put_header(&w, 3, 0, 1);
    put_kv_head(&w, "deep", GGUF_TYPE_ARRAY);
    for (int d = 0; d < 100; d++) {
        put_u32(&w, GGUF_TYPE_ARRAY);
        put_u64(&w, 1);
    }
    put_u32(&w, GGUF_TYPE_UINT8);
    put_u64(&w, 0);
    expect_fail("arrays nested 100 deep", &w, RG_ERR_CORRUPT, "nested");
    wfree(&w);

    /* keys */
    put_header(&w, 3, 0, 2);
    put_kv_head(&w, "dup.key", GGUF_TYPE_UINT8);
    put_u8(&w, 1);
    put_kv_head(&w, "dup.key", GGUF_TYPE_UINT8);
    put_u8(&w, 2);
    expect_fail("duplicate key", &w, RG_ERR_CORRUPT, "dup.key");
    wfree(&w);
    put_header(&w, 3, 0, 1);
    put_kv_head(&w, "", GGUF_TYPE_UINT8);
    put_u8(&w, 1);
    expect_fail("empty key", &w, RG_ERR_CORRUPT, "key #0 is empty");
    wfree(&w);
    put_header(&w, 3, 0, 1);
    put_strn(&w, "a\0b", 3);
    put_u32(&w, GGUF_TYPE_UINT8);
    put_u8(&w, 1);
    expect_fail("key with NUL", &w, RG_ERR_CORRUPT, "contains a NUL byte");
    wfree(&w);

    /* alignment */
    one_tensor_file(&w, 1, kvs_align48, 48, 0, NULL, GGML_TYPE_F32, 0, 32);
    expect_fail("alignment 48", &w, RG_ERR_CORRUPT, "power of two");
    wfree(&w);
    one_tensor_file(&w, 1, kvs_align0, 32, 0, NULL, GGML_TYPE_F32, 0, 32);
    expect_fail("alignment 0", &w, RG_ERR_CORRUPT, "power of two");
    wfree(&w);
    one_tensor_file(&w, 1, kvs_align_2p63, 32, 0, NULL, GGML_TYPE_F32, 0, 32);
    expect_fail("alignment 2^63", &w, RG_ERR_CORRUPT, "general.alignment");
    wfree(&w);
    one_tensor_file(&w, 1, kvs_align_str, 32, 0, NULL, GGML_TYPE_F32, 0, 32);
    expect_fail("alignment as a string", &w, RG_ERR_CORRUPT, "general.alignment");
    wfree(&w);

    /* the control: the same one-tensor file is valid */
    one_tensor_file(&w, 0, NULL, 32, 0, NULL, GGML_TYPE_F32, 0, 32);
    {
        gguf_file *g = NULL;
        rg_err e = {0};
        CHECK_OK(gguf_open_memory(w.p, w.n, &g, &e), e);
        CHECK(g && gguf_tensor_count(g) == 1 && gguf_tensor_at(g, 0)->nbytes == 32);
        gguf_close(g);
    }
    wfree(&w);

    /* tensor infos */
    uint64_t dims5[5] = {8, 1, 1, 1, 1};
    one_tensor_file(&w, 0, NULL, 32, 5, dims5, GGML_TYPE_F32, 0, 32);
    expect_fail("n_dims 5", &w, RG_ERR_CORRUPT, "5 dimensions");
    wfree(&w);
    one_tensor_file(&w, 0, NULL, 32, 0, NULL, GGML_TYPE_F32, 0, 31);
    expect_fail("data one byte short", &w, RG_ERR_CORRUPT, "past the end");
    wfree(&w);
    one_tensor_file(&w, 0, NULL, 32, 0, NULL, GGML_TYPE_F32, 64, 32);
    expect_fail("offset past the data", &w, RG_ERR_CORRUPT, "past the end");
    wfree(&w);
    one_tensor_file(&w, 0, NULL, 32, 0, NULL, GGML_TYPE_F32, UINT64_MAX - 31, 32);
    expect_fail("offset near 2^64", &w, RG_ERR_CORRUPT, "past the end");
    wfree(&w);
    one_tensor_file(&w, 0, NULL, 32, 0, NULL, GGML_TYPE_F32, 16, 64);
    expect_fail("misaligned offset", &w, RG_ERR_CORRUPT, "not a multiple of the alignment");
    wfree(&w);
    uint64_t huge_dims[2] = {(uint64_t)1 << 40, (uint64_t)1 << 40};
    one_tensor_file(&w, 0, NULL, 32, 2, huge_dims, GGML_TYPE_F32, 0, 32);
    expect_fail("element count overflow", &w, RG_ERR_CORRUPT, "overflow");
    wfree(&w);
    uint64_t big_dims[2] = {(uint64_t)1 << 31, (uint64_t)1 << 31}; /* 2^62 elements x 4 bytes */
    one_tensor_file(&w, 0, NULL, 32, 2, big_dims, GGML_TYPE_F32, 0, 32);
    expect_fail("byte size overflow", &w, RG_ERR_CORRUPT, NULL);
    wfree(&w);
    uint64_t neg_dim[1] = {UINT64_MAX};
    one_tensor_file(&w, 0, NULL, 32, 1, neg_dim, GGML_TYPE_F32, 0, 32);
    expect_fail("dimension 2^64-1", &w, RG_ERR_CORRUPT, "dimension");
    wfree(&w);
    one_tensor_file(&w, 0, NULL, 32, 0, NULL, 4, 0, 32);
    expect_fail("removed type 4", &w, RG_ERR_UNSUPPORTED, "unsupported tensor type 4");
    wfree(&w);
    one_tensor_file(&w, 0, NULL, 32, 0, NULL, 1000, 0, 32);
    expect_fail("type 1000", &w, RG_ERR_UNSUPPORTED, "unsupported tensor type 1000");
    wfree(&w);
    uint64_t q8_30[1] = {30};
    one_tensor_file(&w, 0, NULL, 32, 1, q8_30, GGML_TYPE_Q8_0, 0, 64);
    expect_fail("Q8_0 row of 30", &w, RG_ERR_CORRUPT, "block size");
    wfree(&w);

    /* tensor names: duplicate, empty, too long */
    {
        uint64_t d[1] = {8};
        put_header(&w, 3, 2, 0);
        put_tensor_info(&w, "same", 1, d, GGML_TYPE_F32, 0);
        put_tensor_info(&w, "same", 1, d, GGML_TYPE_F32, 32);
        pad_to(&w, 32);
        for (int i = 0; i < 64; i++)
            put_u8(&w, 0);
        expect_fail("duplicate tensor names", &w, RG_ERR_CORRUPT, "'same' appears twice");
        wfree(&w);

        put_header(&w, 3, 2, 0);
        put_tensor_info(&w, "a", 1, d, GGML_TYPE_F32, 0);
        put_tensor_info(&w, "b", 1, d, GGML_TYPE_F32, 0);
        pad_to(&w, 32);
        for (int i = 0; i < 64; i++)
            put_u8(&w, 0);
        expect_fail("overlapping tensors", &w, RG_ERR_CORRUPT, "overlap");
        wfree(&w);

        put_header(&w, 3, 1, 0);
        put_tensor_info(&w, "", 1, d, GGML_TYPE_F32, 0);
        pad_to(&w, 32);
        for (int i = 0; i < 32; i++)
            put_u8(&w, 0);
        expect_fail("empty tensor name", &w, RG_ERR_CORRUPT, "name is empty");
        wfree(&w);

        char longname[66];
        memset(longname, 'n', 65);
        longname[65] = '\0';
        put_header(&w, 3, 1, 0);
        put_tensor_info(&w, longname, 1, d, GGML_TYPE_F32, 0);
        pad_to(&w, 32);
        for (int i = 0; i < 32; i++)
            put_u8(&w, 0);
        expect_fail("65-byte tensor name", &w, RG_ERR_CORRUPT, "64 bytes");
        wfree(&w);
    }

    /* a missing file and a directory */
    {
        gguf_file *g = NULL;
        rg_err e = {0};
        char path[512];
        snprintf(path, sizeof path, "%s/does-not-exist.gguf", tmpdir);
        CHECK(gguf_open(path, &g, &e) == RG_ERR_NOT_FOUND && g == NULL);
        CHECK(strstr(e.msg, "does-not-exist.gguf") != NULL);
        CHECK(gguf_open(tmpdir, &g, &e) != RG_OK && g == NULL);
    }
}

/* Touches everything a successful open exposes (valgrind sees bad reads). */
static unsigned touch_all(const gguf_file *g)
{
    unsigned acc = 0;
    for (size_t i = 0; i < gguf_kv_count(g); i++) {
        const gguf_kv *kv = gguf_kv_at(g, i);
        acc += (unsigned)strlen(gguf_kv_key(kv));
        size_t len;
        const char *s = gguf_kv_string(kv, &len);
        if (s)
            for (size_t k = 0; k <= len; k++)
                acc += (unsigned char)s[k];
        for (size_t k = 0; k < gguf_kv_array_len(kv); k++) {
            if ((s = gguf_kv_array_string(kv, k, &len)))
                for (size_t j = 0; j <= len; j++)
                    acc += (unsigned char)s[j];
            int64_t v;
            if (gguf_kv_array_i64(kv, k, &v, NULL) == RG_OK)
                acc += (unsigned)v;
        }
    }
    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        const unsigned char *p = t->data;
        for (size_t k = 0; k < t->nbytes; k++)
            acc += p[k];
    }
    return acc;
}

static void test_truncated_and_mutated(void)
{
    wbuf w = {0};
    build_model(&w, 3, 64);
    size_t n = w.n;
    /* every strict prefix fails cleanly, through a real file */
    int opened = 0, silent = 0;
    for (size_t len = 0; len < n; len++) {
        gguf_file *g = NULL;
        rg_err e = {0};
        rg_status s = gguf_open(write_file("prefix.gguf", w.p, len), &g, &e);
        if (s == RG_OK) {
            opened++;
            gguf_close(g);
        } else if (e.msg[0] == '\0' || g != NULL) {
            silent++;
        }
    }
    CHECK_MSG(opened == 0, "%d truncated prefixes opened", opened);
    CHECK_MSG(silent == 0, "%d truncated prefixes failed without a message", silent);
    {
        gguf_file *g = NULL;
        rg_err e = {0};
        CHECK_OK(gguf_open(write_file("prefix.gguf", w.p, n), &g, &e), e);
        gguf_close(g);
    }

    /* every byte set to 0x00, 0xff and a pseudo-random value: no crash; what
     * opens must be self-consistent */
    unsigned char *m = malloc(n);
    uint32_t rng = 12345;
    unsigned sink = 0;
    int ok_count = 0;
    for (size_t pos = 0; pos < n; pos++) {
        for (int v = 0; v < 3; v++) {
            memcpy(m, w.p, n);
            rng = rng * 1664525u + 1013904223u;
            m[pos] = v == 0 ? 0x00 : v == 1 ? 0xff : (unsigned char)(rng >> 24);
            gguf_file *g = NULL;
            rg_err e = {0};
            if (gguf_open_memory(m, n, &g, &e) == RG_OK) {
                ok_count++;
                sink += touch_all(g);
                gguf_close(g);
            } else if (e.msg[0] == '\0') {
                CHECK_MSG(0, "mutation at %zu failed without a message", pos);
            }
        }
    }
    CHECK(ok_count > 0); /* changing tensor data bytes keeps the file valid */
    (void)sink;
    free(m);
    wfree(&w);
}

/* ---- the official Python writer's output (if the fixture exists) ------------ */

static void test_python_fixture(void)
{
    const char *path = "tests/fixtures/gguf/pywriter.gguf";
    if (access(path, R_OK) != 0) {
        printf("test_gguf: %s absent, cross-check skipped\n", path);
        return;
    }
    gguf_file *g = NULL;
    rg_err e = {0};
    rg_status s = gguf_open(path, &g, &e);
    CHECK_OK(s, e);
    if (s)
        return;
    /* what tests/fixtures/gguf/make_pywriter.py tells the writer */
    CHECK(gguf_version(g) == 3);
    CHECK(gguf_alignment(g) == 32);
    const char *str = gguf_kv_string(gguf_find_kv(g, "general.architecture"), NULL);
    CHECK(str && strcmp(str, "llama") == 0);
    str = gguf_kv_string(gguf_find_kv(g, "general.name"), NULL);
    CHECK(str && strcmp(str, "ragd-crosscheck") == 0);
    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    double f64 = 0;
    int b = 0;
    CHECK(gguf_value_type(gguf_find_kv(g, "llama.context_length")) == GGUF_TYPE_UINT32);
    CHECK_OK(gguf_kv_u32(gguf_find_kv(g, "llama.context_length"), &u32, &e), e);
    CHECK(u32 == 2048);
    CHECK_OK(gguf_kv_u32(gguf_find_kv(g, "x.u8"), &u32, &e), e);
    CHECK(u32 == 250 && gguf_value_type(gguf_find_kv(g, "x.u8")) == GGUF_TYPE_UINT8);
    CHECK_OK(gguf_kv_i32(gguf_find_kv(g, "x.i8"), &i32, &e), e);
    CHECK(i32 == -7);
    CHECK_OK(gguf_kv_u32(gguf_find_kv(g, "x.u16"), &u32, &e), e);
    CHECK(u32 == 65535);
    CHECK_OK(gguf_kv_i32(gguf_find_kv(g, "x.i16"), &i32, &e), e);
    CHECK(i32 == -32768);
    CHECK_OK(gguf_kv_i32(gguf_find_kv(g, "x.i32"), &i32, &e), e);
    CHECK(i32 == -123456789);
    CHECK_OK(gguf_kv_u64(gguf_find_kv(g, "x.u64"), &u64, &e), e);
    CHECK(u64 == 18000000000000000000ull);
    CHECK_OK(gguf_kv_i64(gguf_find_kv(g, "x.i64"), &i64, &e), e);
    CHECK(i64 == -9000000000000000000ll);
    CHECK_OK(gguf_kv_f32(gguf_find_kv(g, "x.f32"), &f32, &e), e);
    CHECK(f32 == 0.125f);
    CHECK_OK(gguf_kv_f64(gguf_find_kv(g, "x.f64"), &f64, &e), e);
    CHECK(f64 == 1.0 / 3.0);
    CHECK_OK(gguf_kv_bool(gguf_find_kv(g, "x.bool"), &b, &e), e);
    CHECK(b == 1);
    const gguf_kv *tok = gguf_find_kv(g, "tokenizer.ggml.tokens");
    static const char *want_tok[] = {"<s>", "</s>", "h\xc3\xa9llo", "\xe4\xb8\x96\xe7\x95\x8c", ""};
    CHECK(gguf_kv_array_len(tok) == 5);
    for (size_t i = 0; i < 5 && i < gguf_kv_array_len(tok); i++) {
        const char *t = gguf_kv_array_string(tok, i, NULL);
        CHECK_MSG(t && strcmp(t, want_tok[i]) == 0, "token %zu", i);
    }
    const gguf_kv *scores = gguf_find_kv(g, "tokenizer.ggml.scores");
    CHECK(gguf_kv_array_type(scores) == GGUF_TYPE_FLOAT32 && gguf_kv_array_len(scores) == 5);
    CHECK_OK(gguf_kv_array_f64(scores, 4, &f64, &e), e);
    CHECK(f64 == -4.0);
    const gguf_kv *types = gguf_find_kv(g, "tokenizer.ggml.token_type");
    CHECK(gguf_kv_array_type(types) == GGUF_TYPE_INT32 && gguf_kv_array_len(types) == 5);
    CHECK_OK(gguf_kv_array_i64(types, 0, &i64, &e), e);
    CHECK(i64 == 3);

    /* tensors: numpy shape (rows, cols) is stored as dims {cols, rows} */
    CHECK(gguf_tensor_count(g) == 4);
    float out[256];
    const gguf_tensor *t = gguf_tensor_find(g, "f32.weight");
    CHECK(t && t->type == GGML_TYPE_F32 && t->n_dims == 2 && t->dims[0] == 4 && t->dims[1] == 3);
    if (t) {
        CHECK_OK(gguf_tensor_to_f32(t, out, &e), e);
        for (int i = 0; i < 12; i++)
            CHECK_MSG(out[i] == (float)i * 0.5f - 1.0f, "f32[%d] = %g", i, (double)out[i]);
    }
    t = gguf_tensor_find(g, "f16.weight");
    CHECK(t && t->type == GGML_TYPE_F16 && t->n_dims == 1 && t->dims[0] == 8);
    if (t) {
        CHECK_OK(gguf_tensor_to_f32(t, out, &e), e);
        for (int i = 0; i < 8; i++)
            CHECK(out[i] == (float)(i - 4) * 0.25f);
    }
    t = gguf_tensor_find(g, "bf16.weight");
    CHECK(t && t->type == GGML_TYPE_BF16 && t->dims[0] == 4 && t->dims[1] == 2);
    if (t) {
        CHECK_OK(gguf_tensor_to_f32(t, out, &e), e);
        for (int i = 0; i < 8; i++)
            CHECK(out[i] == (float)(i + 1) * -2.0f);
    }
    /* Q8_0 quantized by gguf.quants (the reference quantizer): 2 rows of 64 */
    t = gguf_tensor_find(g, "q8_0.weight");
    CHECK(t && t->type == GGML_TYPE_Q8_0 && t->dims[0] == 64 && t->dims[1] == 2 && t->nbytes == 4 * 34);
    if (t) {
        CHECK_OK(gguf_tensor_to_f32(t, out, &e), e);
        float mine[128];
        unsigned char q[4 * 34];
        float src[128];
        for (int i = 0; i < 128; i++)
            src[i] = (float)sin(i * 0.1) * (float)(1 + i / 32);
        CHECK_OK(quantize_row_q8_0(src, q, 128, &e), e);
        CHECK_MSG(memcmp(q, t->data, sizeof q) == 0, "Q8_0 blocks differ from gguf.quants'");
        CHECK_OK(dequantize_row(GGML_TYPE_Q8_0, q, mine, 128, &e), e);
        for (int i = 0; i < 128; i++)
            CHECK_MSG(fabsf(out[i] - src[i]) <= 0.57f * (float)(1 + i / 32) / 127.0f, "q8_0[%d]", i);
    }
    gguf_close(g);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ragd-test-gguf-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_quant();
    test_roundtrip();
    test_malformed();
    test_truncated_and_mutated();
    test_python_fixture();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_finish("test_gguf");
}
