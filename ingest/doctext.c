/* doctext.c - building a document's text block by block. */
#include "ingest/doctext.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "ingest/text_util.h"

#define DEFAULT_MAX_TEXT_BYTES ((size_t)64 << 20)
#define DEFAULT_MAX_BLOCKS ((size_t)1 << 20)
#define DEFAULT_MAX_DEPTH 256

static const char replacement_char[] = "\xEF\xBF\xBD";

void doctext_init(rg_doctext *d, const rg_load_limits *limits)
{
    memset(d, 0, sizeof *d);
    if (limits)
        d->limits = *limits;
    if (d->limits.max_text_bytes == 0)
        d->limits.max_text_bytes = DEFAULT_MAX_TEXT_BYTES;
    if (d->limits.max_blocks == 0)
        d->limits.max_blocks = DEFAULT_MAX_BLOCKS;
    if (d->limits.max_depth <= 0)
        d->limits.max_depth = DEFAULT_MAX_DEPTH;
    rg_buf_init(&d->text, d->limits.max_text_bytes);
}

void doctext_free(rg_doctext *d)
{
    if (!d)
        return;
    rg_buf_free(&d->text);
    free(d->blocks);
    free(d->title);
    d->blocks = NULL;
    d->title = NULL;
    d->n_blocks = d->cap_blocks = 0;
}

/* Code is kept verbatim except: line ends become "\n", control characters
 * other than tab and newline are dropped, invalid UTF-8 becomes U+FFFD,
 * leading blank lines and trailing white space are trimmed. */
static rg_status append_code(rg_buf *out, const char *s, size_t len, rg_err *e)
{
    size_t a = 0, b = len, i;
    for (i = 0; i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'); i++)
        if (s[i] == '\n' || s[i] == '\r')
            a = i + 1;
    if (i == len)
        return RG_OK; /* all white space */
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r' || s[b - 1] == '\n'))
        b--;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t run = a;
    rg_status st = RG_OK;
    i = a;
    while (i < b && !st) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(b - i), &cp);
        if (n > 0 && cp != '\r' && (cp == '\t' || cp == '\n' || utf8proc_category(cp) != UTF8PROC_CATEGORY_CC)) {
            i += (size_t)n;
            continue;
        }
        st = rg_buf_append(out, s + run, i - run, e);
        if (st)
            break;
        if (n <= 0) {
            st = rg_buf_append(out, replacement_char, 3, e);
            i++;
        } else {
            if (cp == '\r' && !(i + 1 < b && s[i + 1] == '\n'))
                st = rg_buf_append_char(out, '\n', e);
            i += (size_t)n;
        }
        run = i;
    }
    if (!st)
        st = rg_buf_append(out, s + run, i - run, e);
    return st;
}

rg_status doctext_add_block(rg_doctext *d, rg_block_kind kind, int level, int page, const char *text, size_t len,
                            rg_err *e)
{
    if (!d || (!text && len))
        return rg_error(e, RG_ERR_INTERNAL, "doctext_add_block: bad arguments");
    if (d->n_blocks >= d->limits.max_blocks)
        return rg_error(e, RG_ERR_TOO_LARGE, "the document has more than %zu blocks of text", d->limits.max_blocks);
    size_t save = d->text.len;
    rg_status st = RG_OK;
    if (d->n_blocks > 0)
        st = rg_buf_append(&d->text, "\n\n", 2, e);
    size_t start = d->text.len;
    if (!st) {
        if (kind == BLOCK_CODE)
            st = append_code(&d->text, text, len, e);
        else
            st = text_collapse_append(&d->text, text, len, NULL, e);
    }
    if (st || d->text.len == start) {
        d->text.len = save;
        if (d->text.data)
            d->text.data[save] = '\0';
        if (st == RG_ERR_TOO_LARGE)
            return rg_error(e, st, "the extracted text exceeds the limit of %zu bytes", d->limits.max_text_bytes);
        return st;
    }
    if (d->n_blocks == d->cap_blocks) {
        size_t cap = d->cap_blocks ? d->cap_blocks * 2 : 64;
        if (cap > d->limits.max_blocks)
            cap = d->limits.max_blocks;
        rg_block *nb = cap <= SIZE_MAX / sizeof *nb ? realloc(d->blocks, cap * sizeof *nb) : NULL;
        if (!nb) {
            d->text.len = save;
            d->text.data[save] = '\0';
            return rg_error(e, RG_ERR_NOMEM, "out of memory recording text blocks");
        }
        d->blocks = nb;
        d->cap_blocks = cap;
    }
    if (kind == BLOCK_HEADING) {
        if (level < 1)
            level = 1;
        if (level > 6)
            level = 6;
    } else if (level < 0) {
        level = 0;
    }
    rg_block *b = &d->blocks[d->n_blocks++];
    b->kind = kind;
    b->level = level;
    b->start = start;
    b->end = d->text.len;
    b->page = page;
    return RG_OK;
}
