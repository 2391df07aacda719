#include "common/utf8.h"

#include <utf8proc.h>

int utf8_is_valid(const char *s, size_t len)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0 || cp == 0)
            return 0;
        i += (size_t)n;
    }
    return 1;
}

rg_status utf8_sanitize(const char *s, size_t len, rg_buf *out, size_t *n_invalid, rg_err *e)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t i = 0, bad = 0, run = 0;
    rg_status st = RG_OK;
    while (i < len && !st) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) {
            /* Flush the valid run, then one replacement for the bad byte. */
            st = rg_buf_append(out, s + i - run, run, e);
            if (!st)
                st = rg_buf_append(out, replacement, 3, e);
            run = 0;
            bad++;
            i++;
        } else if (cp == 0) {
            st = rg_buf_append(out, s + i - run, run, e);
            run = 0;
            i++;
        } else {
            run += (size_t)n;
            i += (size_t)n;
        }
    }
    if (!st)
        st = rg_buf_append(out, s + i - run, run, e);
    if (n_invalid)
        *n_invalid = bad;
    return st;
}

size_t utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

size_t utf8_truncate(const char *s, size_t len, size_t max_bytes)
{
    if (len <= max_bytes)
        return len;
    size_t n = max_bytes;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}
