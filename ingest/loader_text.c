/* loader_text.c - plain text: paragraphs are separated by blank lines.
 *
 * A form feed (as pdftotext and old line printers write between pages)
 * starts a new page: when the text has any, blocks carry 1-based page
 * numbers, otherwise page 0. */
#include <string.h>

#include "ingest/loader.h"
#include "ingest/loader_common.h"

/* Nonzero when s[a..b) holds only spaces and tabs (and other ASCII blanks). */
static int is_blank(const char *s, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\v' && s[i] != '\r' && s[i] != '\f')
            return 0;
    return 1;
}

rg_status loader_text(const char *data, size_t len, rg_doctext *out, rg_err *e)
{
    rg_buf buf;
    rg_buf_init(&buf, 0);
    rg_status st = loader_decode_text(data, len, &buf, e);
    if (st) {
        rg_buf_free(&buf);
        return st;
    }
    const char *s = buf.data ? buf.data : "";
    size_t n = buf.len;
    int paged = memchr(s, '\f', n) != NULL;
    int page = paged ? 1 : 0, para_page = page;
    size_t para = 0, i = 0;
    int in_para = 0;
    /* Walk the lines; a blank line or a form feed ends a paragraph. */
    while (i <= n && !st) {
        size_t ls = i, le = i;
        while (le < n && s[le] != '\n' && s[le] != '\r' && s[le] != '\f')
            le++;
        char term = le < n ? s[le] : '\0';
        if (is_blank(s, ls, le)) {
            if (in_para)
                st = doctext_add_block(out, BLOCK_PARAGRAPH, 0, para_page, s + para, ls - para, e);
            in_para = 0;
        } else if (!in_para) {
            in_para = 1;
            para = ls;
            para_page = page;
        }
        if (term == '\f') {
            if (in_para && !st)
                st = doctext_add_block(out, BLOCK_PARAGRAPH, 0, para_page, s + para, le - para, e);
            in_para = 0;
            page++;
        }
        if (le >= n) {
            if (in_para && !st)
                st = doctext_add_block(out, BLOCK_PARAGRAPH, 0, para_page, s + para, le - para, e);
            break;
        }
        i = le + 1;
        if (term == '\r' && i < n && s[i] == '\n')
            i++;
    }
    rg_buf_free(&buf);
    if (st)
        return st;
    return loader_finish(out, 0, e);
}
