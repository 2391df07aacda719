/* test_safetensors.c - the safetensors reader on the real default model, on
 * malformed files (each must fail cleanly, never crash) and the F16/BF16 to
 * F32 conversions. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/err.h"
#include "model/safetensors.h"

static char tmpdir[256];

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ---- (a) the real model ------------------------------------------------- */

static void check_bits(const rg_st_tensor *t, size_t at, const uint32_t want[4])
{
    if (!t)
        return;
    CHECK(at + 4 <= t->nelem);
    const float *f = t->data;
    for (int i = 0; i < 4; i++)
        CHECK_MSG(f32_bits(f[at + i]) == want[i], "%s[%zu]: bits %08x, want %08x", t->name, at + i,
                  (unsigned)f32_bits(f[at + i]), (unsigned)want[i]);
}

static void test_real_model(void)
{
    char path[1024];
    const char *dir = getenv("RAGD_MODELS");
    snprintf(path, sizeof path, "%s/all-MiniLM-L6-v2/model.safetensors", dir && *dir ? dir : "models");
    if (access(path, R_OK) != 0) {
        CHECK_MSG(0, "%s is missing: run `make models` (make test installs it, so this is a bug)", path);
        return;
    }
    rg_err e = {0};
    rg_safetensors *st = NULL;
    rg_status s = safetensors_open(path, &st, &e);
    CHECK_OK(s, e);
    if (s != RG_OK)
        return;
    /* 6 layers x 16 tensors, 5 embedding tensors + position_ids, pooler x 2. */
    CHECK_MSG(safetensors_count(st) == 104, "count %zu", safetensors_count(st));
    CHECK(safetensors_at(st, safetensors_count(st)) == NULL);
    CHECK(safetensors_find(st, "no.such.tensor") == NULL);
    CHECK(safetensors_find(st, "__metadata__") == NULL);
    for (size_t i = 0; i < safetensors_count(st); i++) {
        const rg_st_tensor *t = safetensors_at(st, i);
        CHECK(safetensors_find(st, t->name) == t);
    }

    const rg_st_tensor *we = safetensors_find(st, "embeddings.word_embeddings.weight");
    CHECK(we != NULL);
    if (we) {
        CHECK(we->dtype == RG_ST_F32);
        CHECK(we->rank == 2 && we->shape[0] == 30522 && we->shape[1] == 384);
        CHECK(we->nelem == (size_t)30522 * 384 && we->nbytes == we->nelem * 4);
        CHECK(safetensors_aligned(we));
        static const uint32_t row0[4] = {0xbca3c000, 0xbb5f0000, 0xbc708000, 0x3c3fc000};
        static const uint32_t cls[4] = {0xbc90568e, 0xbbf90e08, 0x3d40f1be, 0xbdb20235}; /* token 101 */
        check_bits(we, 0, row0);
        check_bits(we, 101 * 384, cls);
        /* One row through the converter, as an embedding lookup does it. */
        float row[384];
        s = st_convert_f32(we->dtype, (const char *)we->data + 101 * 384 * 4, 384, row, &e);
        CHECK_OK(s, e);
        CHECK(f32_bits(row[3]) == 0xbdb20235u);
    }
    static const uint32_t bias5[4] = {0xba94ac9a, 0xbc596567, 0x3b64d73d, 0x3c65da3e};
    check_bits(safetensors_find(st, "encoder.layer.5.output.dense.bias"), 0, bias5);

    const rg_st_tensor *ln = NULL;
    size_t want384[1] = {384}, want_bad[2] = {384, 1};
    s = safetensors_expect(st, "embeddings.LayerNorm.weight", 1, want384, &ln, &e);
    CHECK_OK(s, e);
    if (ln) {
        static const uint32_t lnw[4] = {0x3f19535e, 0x3f156678, 0x3f222fbf, 0x3f1fdca7};
        float *buf = malloc(384 * sizeof *buf);
        s = tensor_to_f32(ln, buf, 384, &e);
        CHECK_OK(s, e);
        for (int i = 0; i < 4; i++)
            CHECK(f32_bits(buf[i]) == lnw[i]);
        s = tensor_to_f32(ln, buf, 383, &e);
        CHECK(s == RG_ERR_INVALID);
        free(buf);
    }
    s = safetensors_expect(st, "embeddings.LayerNorm.weight", 2, want_bad, &ln, &e);
    CHECK(s == RG_ERR_CORRUPT && ln == NULL);
    CHECK_MSG(strstr(e.msg, "[384]") && strstr(e.msg, "[384, 1]"), "%s", e.msg);
    s = safetensors_expect(st, "encoder.layer.6.output.dense.bias", 1, want384, &ln, &e);
    CHECK(s == RG_ERR_NOT_FOUND);
    CHECK_MSG(strstr(e.msg, "encoder.layer.6.output.dense.bias") != NULL, "%s", e.msg);

    /* The I64 buffer is read but not converted. */
    const rg_st_tensor *pos = safetensors_find(st, "embeddings.position_ids");
    CHECK(pos != NULL);
    if (pos) {
        CHECK(pos->dtype == RG_ST_I64 && pos->rank == 2 && pos->shape[0] == 1 && pos->shape[1] == 512);
        int64_t v[4];
        memcpy(v, pos->data, sizeof v);
        CHECK(v[0] == 0 && v[1] == 1 && v[2] == 2 && v[3] == 3);
        float f[512];
        s = tensor_to_f32(pos, f, 512, &e);
        CHECK(s == RG_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(e.msg, "I64") && strstr(e.msg, "embeddings.position_ids"), "%s", e.msg);
    }
    safetensors_close(st);
}

/* ---- (b) malformed files ------------------------------------------------ */

/* Writes an 8-byte length (hlen), the header text and data_len zero bytes. */
static void write_raw(const char *path, uint64_t hlen, const char *header, size_t data_len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        CHECK_MSG(0, "cannot write %s", path);
        return;
    }
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++)
        fputc(0, f);
    fclose(f);
}

static void write_st(const char *path, const char *header, size_t data_len)
{
    write_raw(path, strlen(header), header, data_len);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        CHECK_MSG(0, "cannot write %s", path);
        return;
    }
    fwrite(p, 1, n, f);
    fclose(f);
}

/* Opens path expecting status want and a message containing needle. */
static void expect_fail(const char *what, const char *path, rg_status want, const char *needle)
{
    rg_err e = {0};
    rg_safetensors *st = (rg_safetensors *)&e; /* must be reset to NULL */
    rg_status s = safetensors_open(path, &st, &e);
    CHECK_MSG(s == want, "%s: status %s, want %s (%s)", what, rg_status_name(s), rg_status_name(want), e.msg);
    CHECK_MSG(st == NULL, "%s: *out not NULL", what);
    CHECK_MSG(e.status == want, "%s: e.status", what);
    CHECK_MSG(strstr(e.msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, e.msg, needle);
    printf("  %-28s -> %s: %s\n", what, rg_status_name(s), e.msg);
    if (s == RG_OK)
        safetensors_close(st);
}

static void test_malformed(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/bad.safetensors", tmpdir);

    write_bytes(p, "", 0);
    expect_fail("empty file", p, RG_ERR_CORRUPT, "too short");
    write_bytes(p, "\x10\0\0\0", 4);
    expect_fail("truncated length", p, RG_ERR_CORRUPT, "too short");
    write_raw(p, 100, "{\"a\":", 0);
    expect_fail("header past end of file", p, RG_ERR_CORRUPT, "larger than");
    write_raw(p, UINT64_MAX, "{}", 0);
    expect_fail("header length 2^64-1", p, RG_ERR_CORRUPT, "exceeds the limit");
    write_raw(p, RG_ST_MAX_HEADER + 1, "{}", 0);
    expect_fail("header length over limit", p, RG_ERR_CORRUPT, "exceeds the limit");
    write_raw(p, 0, "", 16);
    expect_fail("header length 0", p, RG_ERR_CORRUPT, "JSON object");
    write_st(p, "{not json at all", 0);
    expect_fail("non-JSON", p, RG_ERR_CORRUPT, "not valid JSON");
    write_st(p, "[1, 2, 3]", 0);
    expect_fail("JSON array", p, RG_ERR_CORRUPT, "JSON object");
    write_st(p, "{}  x", 0);
    expect_fail("bytes after the JSON", p, RG_ERR_CORRUPT, "after the header");
    write_bytes(p, "\4\0\0\0\0\0\0\0{}\0 ", 12);
    expect_fail("NUL in the header", p, RG_ERR_CORRUPT, "after the header");
    write_st(p, "{\"t\": 5}", 0);
    expect_fail("entry not an object", p, RG_ERR_CORRUPT, "'t'");
    write_st(p, "{\"t\": {\"dtype\": \"Q4_K\", \"shape\": [4], \"data_offsets\": [0, 4]}}", 4);
    expect_fail("unknown dtype", p, RG_ERR_UNSUPPORTED, "Q4_K");
    write_st(p, "{\"t\": {\"dtype\": 32, \"shape\": [4], \"data_offsets\": [0, 16]}}", 16);
    expect_fail("non-string dtype", p, RG_ERR_CORRUPT, "dtype");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"data_offsets\": [0, 16]}}", 16);
    expect_fail("missing shape", p, RG_ERR_CORRUPT, "shape");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [4]}}", 16);
    expect_fail("missing data_offsets", p, RG_ERR_CORRUPT, "data_offsets");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16, 32]}}", 32);
    expect_fail("three offsets", p, RG_ERR_CORRUPT, "data_offsets");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [-4], \"data_offsets\": [0, 16]}}", 16);
    expect_fail("negative dimension", p, RG_ERR_CORRUPT, "shape[0]");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [4, 1.5], \"data_offsets\": [0, 16]}}", 16);
    expect_fail("fractional dimension", p, RG_ERR_CORRUPT, "shape[1]");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [1e300], \"data_offsets\": [0, 16]}}", 16);
    expect_fail("huge dimension", p, RG_ERR_CORRUPT, "shape[0]");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [9007199254740993], \"data_offsets\": [0, 16]}}", 16);
    expect_fail("dimension past 2^53", p, RG_ERR_CORRUPT, "shape[0]");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [\"4\"], \"data_offsets\": [0, 16]}}", 16);
    expect_fail("string dimension", p, RG_ERR_CORRUPT, "shape[0]");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4);
    expect_fail("rank 9", p, RG_ERR_CORRUPT, "rank 9");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 4]}}", 4);
    expect_fail("element count overflow", p, RG_ERR_CORRUPT, "overflows");
    write_st(p, "{\"t\": {\"dtype\": \"F64\", \"shape\": [4503599627370496, 1024], \"data_offsets\": [0, 8]}}", 8);
    expect_fail("byte count overflow", p, RG_ERR_CORRUPT, "overflows");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 100]}}", 16);
    expect_fail("offsets past the data", p, RG_ERR_CORRUPT, "outside the data region");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [12, 8]}}", 16);
    expect_fail("begin after end", p, RG_ERR_CORRUPT, "outside the data region");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 1e20]}}", 16);
    expect_fail("offset not exact", p, RG_ERR_CORRUPT, "data_offsets");
    write_st(p, "{\"t\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}", 16);
    expect_fail("size mismatch", p, RG_ERR_CORRUPT, "needs 4 x 4 = 16");
    write_st(p,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
             16);
    expect_fail("overlapping tensors", p, RG_ERR_CORRUPT, "overlap");
    write_st(p,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}",
             16);
    expect_fail("duplicate name", p, RG_ERR_CORRUPT, "twice");
    write_st(p, "{\"__metadata__\": [1]}", 0);
    expect_fail("__metadata__ not an object", p, RG_ERR_CORRUPT, "__metadata__");

    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.safetensors", tmpdir);
    expect_fail("missing file", missing, RG_ERR_NOT_FOUND, "none.safetensors");
    expect_fail("a directory", tmpdir, RG_ERR_INVALID, "not a regular file");
    unlink(p);
}

/* A well-formed small file: every float dtype, metadata, padding, a scalar,
 * an empty tensor, unaligned data. */
static void test_small_file(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/ok.safetensors", tmpdir);
    /* Header of 8*k bytes after padding keeps data aligned; this one has an
     * odd length so that the F32 tensor starting at offset 0 is unaligned. */
    const char *hdr = "{\"__metadata__\": {\"format\": \"pt\"},"
                      " \"h\": {\"dtype\": \"F16\", \"shape\": [2, 2], \"data_offsets\": [4, 12]},"
                      " \"f\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                      " \"b\": {\"dtype\": \"BF16\", \"shape\": [3], \"data_offsets\": [12, 18]},"
                      " \"s\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [18, 22]},"
                      " \"z\": {\"dtype\": \"F16\", \"shape\": [0, 7], \"data_offsets\": [22, 22]}}   ";
    size_t hlen = strlen(hdr) | 1;
    unsigned char buf[8 + 1024];
    CHECK(hlen + 8 + 22 <= sizeof buf);
    memset(buf, ' ', sizeof buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, hdr, strlen(hdr));
    unsigned char *d = buf + 8 + hlen;
    float one_half = 0.5f, pi = 3.14159274f;
    memcpy(d, &one_half, 4);
    static const unsigned char h[8] = {0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x7c}; /* 1, -2, 2^-24, inf */
    memcpy(d + 4, h, 8);
    static const unsigned char b[6] = {0x80, 0x3f, 0x49, 0x40, 0x80, 0xff}; /* 1, 3.140625, -inf */
    memcpy(d + 12, b, 6);
    memcpy(d + 18, &pi, 4);
    write_bytes(p, buf, 8 + hlen + 22);

    rg_err e = {0};
    rg_safetensors *st = NULL;
    rg_status s = safetensors_open(p, &st, &e);
    CHECK_OK(s, e);
    if (s != RG_OK)
        return;
    CHECK(safetensors_count(st) == 5);
    const char *order[5] = {"h", "f", "b", "s", "z"};
    for (size_t i = 0; i < 5 && i < safetensors_count(st); i++)
        CHECK_STR(safetensors_at(st, i)->name, order[i]);
    float out[4];
    const rg_st_tensor *t = safetensors_find(st, "f");
    CHECK(t && !safetensors_aligned(t));
    if (t) {
        CHECK_OK(tensor_to_f32(t, out, 1, &e), e);
        CHECK(out[0] == 0.5f);
    }
    t = safetensors_find(st, "h");
    CHECK(t && t->dtype == RG_ST_F16 && t->rank == 2 && t->nbytes == 8);
    if (t) {
        CHECK_OK(tensor_to_f32(t, out, 4, &e), e);
        CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1.0f, -24) && isinf(out[3]) && out[3] > 0);
    }
    t = safetensors_find(st, "b");
    CHECK(t && t->dtype == RG_ST_BF16);
    if (t) {
        CHECK_OK(tensor_to_f32(t, out, 3, &e), e);
        CHECK(out[0] == 1.0f && out[1] == 3.140625f && isinf(out[2]) && out[2] < 0);
    }
    t = safetensors_find(st, "s");
    CHECK(t && t->rank == 0 && t->nelem == 1);
    if (t) {
        CHECK_OK(tensor_to_f32(t, out, 1, &e), e);
        CHECK(out[0] == pi);
    }
    t = safetensors_find(st, "z");
    CHECK(t && t->nelem == 0 && t->nbytes == 0 && t->shape[1] == 7);
    if (t)
        CHECK_OK(tensor_to_f32(t, out, 0, &e), e);
    safetensors_close(st);

    write_st(p, "{}", 0);
    s = safetensors_open(p, &st, &e);
    CHECK_OK(s, e);
    if (s == RG_OK) {
        CHECK(safetensors_count(st) == 0 && safetensors_find(st, "x") == NULL);
        safetensors_close(st);
    }
    unlink(p);
    safetensors_close(NULL);
}

/* ---- (c) conversions ---------------------------------------------------- */

static void test_f16(void)
{
    static const struct {
        uint16_t h;
        float f;
    } known[] = {
        {0x0000, 0.0f},
        {0x3c00, 1.0f},
        {0xc000, -2.0f},
        {0x3555, 0.333251953125f},
        {0x7bff, 65504.0f},
        {0xfbff, -65504.0f},
        {0x0400, 6.103515625e-05f},   /* smallest normal 2^-14 */
        {0x03ff, 6.097555160522461e-05f}, /* largest subnormal */
        {0x0200, 3.0517578125e-05f},  /* 2^-15 */
        {0x0001, 5.960464477539063e-08f}, /* smallest subnormal 2^-24 */
        {0x8001, -5.960464477539063e-08f},
        {0x3bff, 0.99951171875f},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        float f = st_f16_to_f32(known[i].h);
        CHECK_MSG(f32_bits(f) == f32_bits(known[i].f), "f16 %04x -> %.9g, want %.9g", known[i].h, f, known[i].f);
    }
    CHECK(f32_bits(st_f16_to_f32(0x8000)) == 0x80000000u); /* -0 */
    CHECK(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(st_f16_to_f32(0x7e00)));
    CHECK(isnan(st_f16_to_f32(0x7c01))); /* signalling payload stays a NaN */
    CHECK(isnan(st_f16_to_f32(0xfe00)) && signbit(st_f16_to_f32(0xfe00)));

    /* Every finite half against the definition. */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint32_t ex = (h >> 10) & 0x1f, m = h & 0x3ff;
        if (ex == 0x1f)
            continue;
        float want = ex ? ldexpf((float)(1024 + m), (int)ex - 25) : ldexpf((float)m, -24);
        if (h & 0x8000)
            want = -want;
        if (f32_bits(st_f16_to_f32((uint16_t)h)) != f32_bits(want) && bad++ < 5)
            fprintf(stderr, "f16 %04x -> %.9g, want %.9g\n", (unsigned)h, st_f16_to_f32((uint16_t)h), want);
    }
    CHECK_MSG(bad == 0, "%d halves converted wrongly", bad);
}

static void test_bf16(void)
{
    CHECK(st_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(st_bf16_to_f32(0xc000) == -2.0f);
    CHECK(st_bf16_to_f32(0x4049) == 3.140625f);
    CHECK(f32_bits(st_bf16_to_f32(0x0001)) == 0x00010000u); /* subnormal */
    CHECK(f32_bits(st_bf16_to_f32(0x8000)) == 0x80000000u);
    CHECK(isinf(st_bf16_to_f32(0x7f80)) && st_bf16_to_f32(0x7f80) > 0);
    CHECK(isinf(st_bf16_to_f32(0xff80)) && st_bf16_to_f32(0xff80) < 0);
    CHECK(isnan(st_bf16_to_f32(0x7fc0)));
    for (uint32_t b = 0; b < 0x10000; b++)
        if (f32_bits(st_bf16_to_f32((uint16_t)b)) != b << 16) {
            CHECK_MSG(0, "bf16 %04x", (unsigned)b);
            break;
        }

    /* The array converter: little-endian bytes, any alignment. */
    unsigned char raw[1 + 6] = {0, 0x00, 0x3c, 0x00, 0xbc, 0xff, 0x7b};
    float out[3];
    rg_err e = {0};
    CHECK_OK(st_convert_f32(RG_ST_F16, raw + 1, 3, out, &e), e);
    CHECK(out[0] == 1.0f && out[1] == -1.0f && out[2] == 65504.0f);
    CHECK(st_convert_f32(RG_ST_I32, raw, 1, out, &e) == RG_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(e.msg, "I32") != NULL, "%s", e.msg);
    CHECK_STR(safetensors_dtype_name(RG_ST_BF16), "BF16");
    CHECK(safetensors_dtype_size(RG_ST_F8_E4M3) == 1 && safetensors_dtype_size(RG_ST_U64) == 8);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/ragd_st_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_real_model();
    test_malformed();
    test_small_file();
    test_f16();
    test_bf16();
    rmdir(tmpdir);
    return check_finish("test_safetensors");
}
