/* text_util.c - small UTF-8 text helpers shared inside ingest/. */
#include "ingest/text_util.h"

#include <libxml/HTMLparser.h>
#include <string.h>
#include <utf8proc.h>

static const char replacement_char[] = "\xEF\xBF\xBD";

int text_is_space(int32_t cp)
{
    if (cp < 0x80)
        return cp <= 0x20 || cp == 0x7F;
    if (cp == 0x85 || cp == 0xA0 || cp == 0xFEFF)
        return 1;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_CC:
        return 1;
    default:
        return 0;
    }
}

rg_status text_append_cp(rg_buf *out, int32_t cp, rg_err *e)
{
    utf8proc_uint8_t tmp[4];
    if (cp <= 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return rg_buf_append(out, replacement_char, 3, e);
    utf8proc_ssize_t n = utf8proc_encode_char(cp, tmp);
    return rg_buf_append(out, tmp, (size_t)n, e);
}

rg_status text_collapse_append(rg_buf *out, const char *s, size_t len, size_t *wrote, rg_err *e)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t before = out->len, i = 0;
    int pending_space = 0;
    rg_status st = RG_OK;
    while (i < len && !st) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n > 0 && text_is_space(cp)) {
            pending_space = out->len > before;
            i += (size_t)n;
            continue;
        }
        if (pending_space) {
            st = rg_buf_append_char(out, ' ', e);
            pending_space = 0;
            if (st)
                break;
        }
        if (n <= 0) {
            st = rg_buf_append(out, replacement_char, 3, e);
            i++;
            continue;
        }
        /* A run of valid, non-space code points is copied in one go. */
        size_t ws = i;
        i += (size_t)n;
        while (i < len) {
            n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
            if (n <= 0 || text_is_space(cp))
                break;
            i += (size_t)n;
        }
        st = rg_buf_append(out, s + ws, i - ws, e);
    }
    if (wrote)
        *wrote = out->len - before;
    return st;
}

size_t text_find_ci(const char *hay, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl == 0)
        return 0;
    if (nl > len)
        return (size_t)-1;
    for (size_t i = 0; i + nl <= len; i++) {
        size_t k = 0;
        while (k < nl) {
            unsigned char a = (unsigned char)hay[i + k], b = (unsigned char)needle[k];
            if (a >= 'A' && a <= 'Z')
                a = (unsigned char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z')
                b = (unsigned char)(b - 'A' + 'a');
            if (a != b)
                break;
            k++;
        }
        if (k == nl)
            return i;
    }
    return (size_t)-1;
}

int text_starts_ci(const char *s, size_t len, const char *prefix)
{
    size_t nl = strlen(prefix);
    return nl <= len && text_find_ci(s, nl, prefix) == 0;
}

rg_status text_append_char_ref(const char *s, size_t n, size_t *used, rg_buf *out, rg_err *e)
{
    size_t i = 1;
    *used = 0;
    if (n < 3 || s[0] != '&')
        return RG_OK;
    if (s[i] == '#') {
        int hex = i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X');
        i += hex ? 2 : 1;
        long v = 0;
        size_t digits = 0;
        while (i < n && digits < 8) {
            char c = s[i];
            int d;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if (hex && c >= 'a' && c <= 'f')
                d = c - 'a' + 10;
            else if (hex && c >= 'A' && c <= 'F')
                d = c - 'A' + 10;
            else
                break;
            v = v * (hex ? 16 : 10) + d;
            digits++;
            i++;
        }
        if (digits == 0 || i >= n || s[i] != ';')
            return RG_OK;
        *used = i + 1;
        return text_append_cp(out, v > 0x10FFFF ? -1 : (int32_t)v, e);
    }
    char name[33];
    size_t k = 0;
    while (i < n && k < sizeof name - 1 &&
           ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
        name[k++] = s[i++];
    name[k] = '\0';
    if (k == 0 || i >= n || s[i] != ';')
        return RG_OK;
    const htmlEntityDesc *ent = htmlEntityLookup((const xmlChar *)name);
    if (!ent)
        return RG_OK;
    *used = i + 1;
    return text_append_cp(out, (int32_t)ent->value, e);
}
