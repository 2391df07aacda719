/* bpe_pretok.c - the byte-level pre-tokenizer: the families' split regexes
 * through PCRE2 (UTF + UCP, so \p{L}, \s and friends follow Unicode as the
 * Oniguruma engine of Hugging Face `tokenizers` does), GPT-2's byte-to-unicode
 * spelling, and a lossless UTF-8 reader. */
#include <string.h>

#include "model/bpe_impl.h"

/* ByteLevel(use_regex) in `tokenizers`: GPT-2's pattern. */
const char BPE_RE_GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/* Llama 3 (llama.cpp pre "llama-bpe"): digits in groups of three. */
const char BPE_RE_LLAMA3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
                             "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* Qwen2: as Llama 3 but every digit alone. */
const char BPE_RE_QWEN2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
                            "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* Digits(individual_digits=true) and Digits(false): Rust's char::is_numeric is \p{N}. */
const char BPE_RE_DIGIT[] = "\\p{N}";
const char BPE_RE_DIGITS[] = "\\p{N}+";

/* Bytes GPT-2 spells as themselves: printable Latin-1 minus the soft hyphen. */
static int byte_is_self(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

static uint32_t byte_code_point(unsigned b)
{
    if (byte_is_self(b))
        return b;
    /* the others take 256, 257, ... in byte order */
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++)
        n += !byte_is_self(c);
    return 256 + n;
}

size_t bpe_byte_spelling(unsigned b, char out[2])
{
    uint32_t cp = byte_code_point(b & 0xFF);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

int bpe_spelled_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_is_self(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) /* 68 bytes are not spelled as themselves */
        return -1;
    uint32_t n = cp - 256;
    for (unsigned b = 0; b < 256; b++)
        if (!byte_is_self(b) && n-- == 0)
            return (int)b;
    return -1;
}

size_t bpe_utf8_next(const unsigned char *s, size_t len, uint32_t *cp, size_t *bad)
{
    unsigned c = s[0];
    size_t need;
    uint32_t v, lo = 0x80, hi = 0xBF;
    *bad = 1;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= len)
            return 0; /* truncated: the bytes so far are the invalid subpart */
        unsigned d = s[i];
        if (d < lo || d > hi)
            return 0;
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (d & 0x3F);
        *bad = i + 1;
    }
    *cp = v;
    return need + 1;
}

rg_status bpe_add_split(rg_bpe *t, const char *pattern, rg_err *e)
{
    if (t->n_splits >= BPE_MAX_SPLITS)
        return rg_error(e, RG_ERR_UNSUPPORTED, "pre-tokenizer: more than %d split steps", BPE_MAX_SPLITS);
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return rg_error(e, RG_ERR_UNSUPPORTED, "pre-tokenizer regex at offset %zu: %s", (size_t)off, (char *)msg);
    }
    /* JIT is an optimisation only; the interpreter gives the same matches. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    t->splits[t->n_splits++] = re;
    return RG_OK;
}

/* Splits s by regex number level, matches and the gaps between them each a
 * piece ("isolated"), and passes every piece down to the next level. */
static rg_status split_level(const rg_bpe *t, pcre2_match_data *md, size_t level, const char *s, size_t len,
                             bpe_piece_fn fn, void *ctx, rg_err *e)
{
    if (len == 0)
        return RG_OK;
    if (level == t->n_splits)
        return fn(s, len, ctx, e);
    const pcre2_code *re = t->splits[level];
    size_t pos = 0, last = 0;
    rg_status st;
    while (pos < len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return rg_error(e, RG_ERR_INTERNAL, "pre-tokenizer match failed: %s", (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {
            /* an empty match splits nothing; step over one character */
            uint32_t cp;
            size_t bad, n = bpe_utf8_next((const unsigned char *)s + ms, len - ms, &cp, &bad);
            pos = ms + (n ? n : bad);
            continue;
        }
        if (ms > last && (st = split_level(t, md, level + 1, s + last, ms - last, fn, ctx, e)))
            return st;
        if ((st = split_level(t, md, level + 1, s + ms, me - ms, fn, ctx, e)))
            return st;
        last = pos = me;
    }
    if (last < len)
        return split_level(t, md, level + 1, s + last, len - last, fn, ctx, e);
    return RG_OK;
}

rg_status bpe_pretokenize(const rg_bpe *t, pcre2_match_data *md, const char *s, size_t len, bpe_piece_fn fn,
                          void *ctx, rg_err *e)
{
    return split_level(t, md, 0, s, len, fn, ctx, e);
}
