#include "index/lexical.h"

#include <string.h>

#include <utf8proc.h>

/* A word is a run of letters, digits (and marks joining them); everything
 * else separates words. This mirrors FTS5's unicode61 tokenizer closely
 * enough that each word we quote is one or a few FTS tokens. */
static int is_word_char(utf8proc_int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        return 0;
    }
}

rg_status lexical_build_match(const char *query, rg_buf *out, rg_err *e)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)query;
    size_t len = strlen(query), i = 0, terms = 0;
    rg_status st = RG_OK;
    while (i < len && terms < LEXICAL_MAX_TERMS && !st) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) {
            i++;
            continue;
        }
        if (!is_word_char(cp)) {
            i += (size_t)n;
            continue;
        }
        size_t start = i;
        while (i < len) {
            n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
            if (n <= 0 || !is_word_char(cp))
                break;
            i += (size_t)n;
        }
        /* Word characters never include '"', so quoting needs no escaping. */
        if (terms)
            st = rg_buf_append_str(out, " OR ", e);
        if (!st)
            st = rg_buf_append_char(out, '"', e);
        if (!st)
            st = rg_buf_append(out, query + start, i - start, e);
        if (!st)
            st = rg_buf_append_char(out, '"', e);
        terms++;
    }
    if (!st && terms == 0)
        return rg_error(e, RG_ERR_INVALID, "the query has no searchable words");
    return st;
}

rg_status lexical_search(rg_store *s, int64_t collection_id, const char *query, size_t k, rg_hit **hits, size_t *n,
                         rg_err *e)
{
    rg_buf match;
    rg_buf_init(&match, 0);
    rg_status st = lexical_build_match(query, &match, e);
    if (!st)
        st = store_chunk_search_fts(s, collection_id, match.data, k, hits, n, e);
    rg_buf_free(&match);
    return st;
}
