/* loader_common.c - binary detection, decoding and titles for the loaders. */
#include "ingest/loader_common.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/utf8.h"
#include "ingest/text_util.h"

#define NUL_SCAN_BYTES 8192
#define SAMPLE_BYTES 65536
#define MAX_TITLE_BYTES 1024

const char *loader_binary_format(const char *data, size_t len)
{
    static const struct {
        const char *magic;
        size_t n;
        const char *name;
    } sigs[] = {
        {"%PDF", 4, "PDF"},
        {"PK\x03\x04", 4, "ZIP (and DOCX, XLSX, PPTX, EPUB, ODT)"},
        {"PK\x05\x06", 4, "ZIP"},
        {"\x89PNG", 4, "PNG image"},
        {"\xFF\xD8\xFF", 3, "JPEG image"},
        {"GIF87a", 6, "GIF image"},
        {"GIF89a", 6, "GIF image"},
        {"\x7F" "ELF", 4, "ELF executable"},
        {"\x1F\x8B", 2, "gzip"},
        {"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8, "OLE2 (DOC, XLS, PPT)"},
        {"{\\rtf", 5, "RTF"},
    };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (len >= sigs[i].n && memcmp(data, sigs[i].magic, sigs[i].n) == 0)
            return sigs[i].name;
    return NULL;
}

int loader_utf16_bom(const char *data, size_t len)
{
    if (len >= 2 && (unsigned char)data[0] == 0xFF && (unsigned char)data[1] == 0xFE)
        return 1;
    if (len >= 2 && (unsigned char)data[0] == 0xFE && (unsigned char)data[1] == 0xFF)
        return 2;
    return 0;
}

/* Counts control characters (and invalid sequences when strict) in a
 * sample; returns nonzero when they exceed 10% of the code points. */
static int mostly_not_text(const char *data, size_t len, int strict_utf8, size_t *pct)
{
    size_t n = len < SAMPLE_BYTES ? len : SAMPLE_BYTES;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)data;
    size_t i = 0, total = 0, bad = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        total++;
        if (k <= 0) {
            if (strict_utf8)
                bad++;
            i++;
            continue;
        }
        if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r' && cp != '\f' && cp != '\v' && cp != 0x1B) ||
            cp == 0x7F || (cp >= 0x80 && cp < 0xA0))
            bad++;
        i += (size_t)k;
    }
    *pct = total ? bad * 100 / total : 0;
    return total && bad * 10 > total;
}

rg_status loader_check_text(const char *data, size_t len, int strict_utf8, rg_err *e)
{
    const char *fmt = loader_binary_format(data, len);
    if (fmt)
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s files are not supported yet", fmt);
    if (loader_utf16_bom(data, len))
        return RG_OK;
    size_t scan = len < NUL_SCAN_BYTES ? len : NUL_SCAN_BYTES;
    if (memchr(data, '\0', scan))
        return rg_error(e, RG_ERR_UNSUPPORTED, "the data is binary (it contains NUL bytes), not text");
    size_t pct = 0;
    if (mostly_not_text(data, len, strict_utf8, &pct))
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "the data does not look like text (%zu%% control characters or invalid UTF-8)", pct);
    return RG_OK;
}

static rg_status utf16_to_utf8(const unsigned char *p, size_t len, int big_endian, rg_buf *out, rg_err *e)
{
    size_t i = 2; /* past the byte order mark */
    rg_status st = RG_OK;
    while (i + 1 < len && !st) {
        uint32_t u = big_endian ? (uint32_t)(p[i] << 8 | p[i + 1]) : (uint32_t)(p[i + 1] << 8 | p[i]);
        i += 2;
        int32_t cp = (int32_t)u;
        if (u >= 0xD800 && u <= 0xDBFF && i + 1 < len) {
            uint32_t lo = big_endian ? (uint32_t)(p[i] << 8 | p[i + 1]) : (uint32_t)(p[i + 1] << 8 | p[i]);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = (int32_t)(0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
                i += 2;
            }
        }
        if (cp == 0)
            continue;
        st = text_append_cp(out, cp, e); /* lone surrogates become U+FFFD */
    }
    if (!st && i < len)
        st = text_append_cp(out, -1, e); /* an odd trailing byte */
    return st;
}

rg_status loader_decode_text(const char *data, size_t len, rg_buf *out, rg_err *e)
{
    rg_status st = loader_check_text(data, len, 1, e);
    if (st)
        return st;
    int bom = loader_utf16_bom(data, len);
    if (bom) {
        st = utf16_to_utf8((const unsigned char *)data, len, bom == 2, out, e);
        if (st)
            return st;
        size_t pct = 0;
        if (mostly_not_text(out->data ? out->data : "", out->len, 1, &pct))
            return rg_error(e, RG_ERR_UNSUPPORTED,
                            "the data does not look like text (%zu%% control characters)", pct);
        return RG_OK;
    }
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        data += 3;
        len -= 3;
    }
    st = rg_buf_reserve(out, len, e);
    if (st)
        return st;
    return utf8_sanitize(data, len, out, NULL, e);
}

static void read_enc_value(const char *s, size_t len, char *enc, size_t enc_size)
{
    size_t i = 0, k = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    if (i < len && s[i] == '=')
        i++;
    else {
        enc[0] = '\0';
        return;
    }
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '"' || s[i] == '\''))
        i++;
    while (i < len && k + 1 < enc_size) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.' || c == ':'))
            break;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        enc[k++] = c;
        i++;
    }
    enc[k] = '\0';
}

int loader_declared_charset(const char *data, size_t len, int html, char *enc, size_t enc_size)
{
    if (enc_size == 0)
        return 0;
    enc[0] = '\0';
    size_t n = len < 4096 ? len : 4096;
    size_t i = 0;
    if (n >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < n && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    if (text_starts_ci(data + i, n - i, "<?xml")) {
        const char *decl = data + i;
        size_t dl = n - i;
        const char *end = memchr(decl, '>', dl);
        if (end)
            dl = (size_t)(end - decl);
        size_t at = text_find_ci(decl, dl, "encoding");
        if (at != (size_t)-1) {
            read_enc_value(decl + at + 8, dl - at - 8, enc, enc_size);
            if (enc[0])
                return 1;
        }
    }
    if (html) {
        size_t off = 0;
        for (int tries = 0; tries < 16 && off < n; tries++) {
            size_t at = text_find_ci(data + off, n - off, "charset");
            if (at == (size_t)-1)
                break;
            /* Only inside a <meta ...> tag, not in running text. */
            size_t lt = off + at;
            while (lt > 0 && data[lt - 1] != '<' && data[lt - 1] != '>')
                lt--;
            off += at + 7;
            if (lt == 0 || data[lt - 1] != '<' || !text_starts_ci(data + lt, n - lt, "meta"))
                continue;
            read_enc_value(data + off, n - off, enc, enc_size);
            if (enc[0])
                return 1;
        }
    }
    return 0;
}

int loader_charset_is_utf8(const char *enc)
{
    return strcmp(enc, "utf-8") == 0 || strcmp(enc, "utf8") == 0 || strcmp(enc, "us-ascii") == 0 ||
           strcmp(enc, "ascii") == 0;
}

rg_status loader_set_title(rg_doctext *d, const char *s, size_t len, rg_err *e)
{
    rg_buf b;
    rg_buf_init(&b, 0);
    rg_status st = rg_buf_reserve(&b, len < MAX_TITLE_BYTES ? len : MAX_TITLE_BYTES, e);
    if (!st)
        st = text_collapse_append(&b, s, utf8_truncate(s, len, 4 * MAX_TITLE_BYTES), NULL, e);
    if (st) {
        rg_buf_free(&b);
        return st;
    }
    if (b.len == 0) {
        rg_buf_free(&b);
        return RG_OK;
    }
    b.len = utf8_truncate(b.data, b.len, MAX_TITLE_BYTES);
    b.data[b.len] = '\0';
    free(d->title);
    d->title = rg_buf_take(&b);
    return RG_OK;
}

rg_status loader_finish(rg_doctext *d, int title_from_heading, rg_err *e)
{
    if (d->n_blocks == 0)
        return rg_error(e, RG_ERR_INVALID, "no text: the document is empty or contains only white space");
    if (title_from_heading && !d->title) {
        for (size_t i = 0; i < d->n_blocks; i++) {
            const rg_block *b = &d->blocks[i];
            if (b->kind == BLOCK_HEADING && b->level == 1)
                return loader_set_title(d, d->text.data + b->start, b->end - b->start, e);
        }
    }
    return RG_OK;
}
