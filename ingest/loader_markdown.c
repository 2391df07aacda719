/* loader_markdown.c - Markdown (CommonMark/GFM subset) into text blocks.
 *
 * A line-oriented reader, not a full CommonMark parser: it recognises ATX
 * and setext headings, paragraphs, list items (-, *, +, 1., 1)) with their
 * nesting depth, fenced and indented code (kept verbatim), block quotes,
 * GFM pipe tables (one block per row, cells joined by " | "), thematic
 * breaks, link reference definitions and YAML front matter (whose title:
 * becomes the document title). Inline markup is stripped lightly: emphasis
 * markers, code span backticks, [text](url) and ![alt](url) -> text/alt,
 * <autolinks>, backslash escapes and character references. Every scan is
 * bounded, so hostile input costs linear time. */
#include <string.h>

#include "ingest/loader.h"
#include "ingest/loader_common.h"
#include "ingest/text_util.h"

#define NONE ((size_t)-1)
#define MD_MAX_LIST 16
#define MD_MAX_LINK_TEXT 4096
#define MD_MAX_LINK_DEST 2048
#define MD_MAX_TICKS 16
#define MD_FRONT_MATTER_LINES 200

typedef struct md_state {
    rg_doctext *d;
    rg_err *e;
    rg_buf para;       /* raw text of the open paragraph-like block */
    rg_buf tmp;        /* inline-stripped text */
    rg_buf code;       /* lines of a code block */
    rg_block_kind kind;
    int level;
    int open;          /* a paragraph, list item or quote is open */
    int in_list;       /* the last block was a list item */
    int list_indent[MD_MAX_LIST];
    int n_list;
    int list_level;
} md_state;

static int is_sp(char c)
{
    return c == ' ' || c == '\t';
}

static int is_ascii_punct(unsigned char c)
{
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

static int is_blank_line(const char *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_sp(l[i]) && l[i] != '\v' && l[i] != '\f')
            return 0;
    return 1;
}

/* The next line at *pos: [*ls, *le) without its terminator. */
static int next_line(const char *s, size_t n, size_t *pos, size_t *ls, size_t *le)
{
    size_t i = *pos;
    if (i >= n)
        return 0;
    size_t j = i;
    while (j < n && s[j] != '\n' && s[j] != '\r')
        j++;
    *ls = i;
    *le = j;
    if (j < n && s[j] == '\r' && j + 1 < n && s[j + 1] == '\n')
        j++;
    *pos = j < n ? j + 1 : n;
    return 1;
}

/* Indentation in columns (tabs to the next multiple of 4) and in bytes. */
static int line_indent(const char *l, size_t n, size_t *bytes)
{
    int col = 0;
    size_t i = 0;
    while (i < n && is_sp(l[i])) {
        col = l[i] == '\t' ? (col / 4 + 1) * 4 : col + 1;
        i++;
        if (col > 1000)
            break;
    }
    *bytes = i;
    return col;
}

static void trim(const char **t, size_t *n)
{
    while (*n && is_sp(**t)) {
        (*t)++;
        (*n)--;
    }
    while (*n && is_sp((*t)[*n - 1]))
        (*n)--;
}

/* ---- inline markup --------------------------------------------------- */

/* The end of "(dest)" starting at s[p] == '(', or NONE; bounded. */
static size_t md_link_dest_end(const char *s, size_t n, size_t p)
{
    if (p >= n || s[p] != '(')
        return NONE;
    int depth = 0;
    size_t lim = p + 1 + MD_MAX_LINK_DEST < n ? p + 1 + MD_MAX_LINK_DEST : n;
    for (size_t q = p + 1; q < lim && s[q] != '\n'; q++) {
        if (s[q] == '(')
            depth++;
        else if (s[q] == ')' && depth-- == 0)
            return q + 1;
    }
    return NONE;
}

/* "[![alt](image)](url)" at s[i]: returns its end and sets *alt_end to
 * the end of alt, or NONE. */
static size_t md_badge(const char *s, size_t n, size_t i, size_t *alt_end)
{
    size_t lim = i + 3 + MD_MAX_LINK_TEXT < n ? i + 3 + MD_MAX_LINK_TEXT : n;
    const char *r = i + 3 < lim ? memchr(s + i + 3, ']', lim - i - 3) : NULL;
    if (!r)
        return NONE;
    size_t r1 = (size_t)(r - s);
    size_t p1 = md_link_dest_end(s, n, r1 + 1);
    if (p1 == NONE || p1 >= n || s[p1] != ']')
        return NONE;
    size_t p2 = md_link_dest_end(s, n, p1 + 1);
    if (p2 == NONE)
        return NONE;
    *alt_end = r1;
    return p2;
}

/* Strips inline markup from s[0..n) into out. */
static rg_status md_inline(const char *s, size_t n, rg_buf *out, rg_err *e)
{
    size_t i = 0, lit = 0;
    size_t close_at = NONE;       /* the first ']' at or after close_from */
    size_t close_from = 0;
    int no_close = 0;             /* no ']' after close_from at all */
    size_t link_r = NONE;         /* cache: the ']' last checked for a link */
    size_t link_to = NONE;        /* its link's end, NONE if it is not one */
    size_t skip_from = NONE, skip_to = 0;
    size_t badge_end = NONE, alt_end = NONE;
    unsigned char tick_fail[MD_MAX_TICKS + 1] = {0};
    rg_status st = RG_OK;

#define FLUSH_TO(x)                                                  \
    do {                                                             \
        if ((x) > lit && (st = rg_buf_append(out, s + lit, (x) - lit, e)) != RG_OK) \
            return st;                                               \
    } while (0)

    while (i < n) {
        char c = s[i];
        if (skip_from != NONE && i >= skip_from) {
            /* The "](...)" of a link whose text we kept; something that
             * jumped past it (a code span) cancels it. */
            if (i == skip_from) {
                FLUSH_TO(i);
                i = lit = skip_to;
            }
            skip_from = NONE;
            continue;
        }
        if (c == '\\' && i + 1 < n && is_ascii_punct((unsigned char)s[i + 1])) {
            FLUSH_TO(i);
            lit = i + 1;
            i += 2;
        } else if (c == '`') {
            size_t k = 1;
            while (i + k < n && s[i + k] == '`')
                k++;
            size_t j = NONE;
            if (k <= MD_MAX_TICKS && !tick_fail[k]) {
                size_t p = i + k;
                while (p < n) {
                    if (s[p] != '`') {
                        p++;
                        continue;
                    }
                    size_t q = p;
                    while (q < n && s[q] == '`')
                        q++;
                    if (q - p == k) {
                        j = p;
                        break;
                    }
                    p = q;
                }
                if (j == NONE)
                    tick_fail[k] = 1;
            }
            if (j == NONE) {
                i += k;
                continue;
            }
            FLUSH_TO(i);
            size_t a = i + k, b = j;
            if (b - a >= 2 && s[a] == ' ' && s[b - 1] == ' ') {
                a++;
                b--;
            }
            if ((st = rg_buf_append(out, s + a, b - a, e)) != RG_OK)
                return st;
            i = lit = j + k;
        } else if (c == '[' && skip_from == NONE && i + 2 < n && s[i + 1] == '!' && s[i + 2] == '[' &&
                   (badge_end = md_badge(s, n, i, &alt_end)) != NONE) {
            /* [![alt](image)](url), as in badges: keep the alt text. */
            FLUSH_TO(i);
            if ((st = rg_buf_append(out, s + i + 3, alt_end - i - 3, e)) != RG_OK)
                return st;
            i = lit = badge_end;
        } else if (c == '[' && skip_from == NONE) {
            if (!no_close && (close_at == NONE || close_at <= i)) {
                size_t p = i + 1 > close_from ? i + 1 : close_from;
                const char *q = p < n ? memchr(s + p, ']', n - p) : NULL;
                if (q) {
                    close_at = (size_t)(q - s);
                    close_from = close_at + 1;
                } else {
                    no_close = 1;
                }
            }
            size_t r = (!no_close && close_at != NONE && close_at > i) ? close_at : NONE;
            if (r != NONE && r - i <= MD_MAX_LINK_TEXT && r + 1 < n && r != link_r) {
                link_r = r;
                link_to = NONE;
                if (s[r + 1] == '(') {
                    link_to = md_link_dest_end(s, n, r + 1);
                } else if (s[r + 1] == '[') {
                    size_t lim = r + 2 + 256 < n ? r + 2 + 256 : n;
                    for (size_t p = r + 2; p < lim && s[p] != '\n' && s[p] != '['; p++)
                        if (s[p] == ']') {
                            link_to = p + 1;
                            break;
                        }
                }
            }
            if (r != NONE && r == link_r && link_to != NONE) {
                /* A link or image: keep its text, drop "[", "](...)" and a leading "!". */
                FLUSH_TO(i > lit && s[i - 1] == '!' ? i - 1 : i);
                skip_from = r;
                skip_to = link_to;
                i = lit = i + 1;
            } else {
                i++;
            }
        } else if (c == '*' || c == '_' || c == '~') {
            size_t k = 1;
            while (i + k < n && s[i + k] == c)
                k++;
            unsigned char pv = i > 0 ? (unsigned char)s[i - 1] : ' ';
            unsigned char nx = i + k < n ? (unsigned char)s[i + k] : ' ';
            int psp = pv == ' ' || pv == '\t' || pv == '\n', nsp = nx == ' ' || nx == '\t' || nx == '\n';
            int ppu = is_ascii_punct(pv), npu = is_ascii_punct(nx);
            int left = !nsp && (!npu || psp || ppu);
            int right = !psp && (!ppu || nsp || npu);
            int both_word = !psp && !ppu && !nsp && !npu;
            int strip = (left || right) && !both_word && !(c == '~' && k < 2);
            if (strip) {
                FLUSH_TO(i);
                lit = i + k;
            }
            i += k;
        } else if (c == '<' && i + 1 < n &&
                   (text_starts_ci(s + i + 1, n - i - 1, "http://") ||
                    text_starts_ci(s + i + 1, n - i - 1, "https://") ||
                    text_starts_ci(s + i + 1, n - i - 1, "mailto:") ||
                    text_starts_ci(s + i + 1, n - i - 1, "ftp://"))) {
            size_t lim = i + 1 + MD_MAX_LINK_DEST < n ? i + 1 + MD_MAX_LINK_DEST : n, p;
            for (p = i + 1; p < lim && s[p] != '>' && s[p] != '<' && s[p] != ' ' && s[p] != '\n'; p++)
                ;
            if (p < lim && s[p] == '>') {
                FLUSH_TO(i);
                if ((st = rg_buf_append(out, s + i + 1, p - i - 1, e)) != RG_OK)
                    return st;
                i = lit = p + 1;
            } else {
                i++;
            }
        } else if (c == '&') {
            size_t used = 0;
            FLUSH_TO(i);
            lit = i;
            if ((st = text_append_char_ref(s + i, n - i < 40 ? n - i : 40, &used, out, e)) != RG_OK)
                return st;
            if (used) {
                i += used;
                lit = i;
            } else {
                i++;
            }
        } else {
            i++;
        }
    }
    FLUSH_TO(n);
#undef FLUSH_TO
    return RG_OK;
}

static rg_status md_emit(md_state *m, rg_block_kind kind, int level, const char *t, size_t n)
{
    rg_buf_reset(&m->tmp);
    rg_status st = md_inline(t, n, &m->tmp, m->e);
    if (st)
        return st;
    return doctext_add_block(m->d, kind, level, 0, m->tmp.data ? m->tmp.data : "", m->tmp.len, m->e);
}

static rg_status md_flush(md_state *m)
{
    if (!m->open)
        return RG_OK;
    m->open = 0;
    rg_status st = md_emit(m, m->kind, m->level, m->para.data ? m->para.data : "", m->para.len);
    rg_buf_reset(&m->para);
    return st;
}

static rg_status md_open(md_state *m, rg_block_kind kind, int level, const char *t, size_t n)
{
    m->open = 1;
    m->kind = kind;
    m->level = level;
    rg_buf_reset(&m->para);
    return rg_buf_append(&m->para, t, n, m->e);
}

static rg_status md_continue(md_state *m, const char *t, size_t n)
{
    rg_status st = rg_buf_append_char(&m->para, '\n', m->e);
    return st ? st : rg_buf_append(&m->para, t, n, m->e);
}

/* ---- block recognisers (t is the line after its indentation) -------- */

static int md_atx(const char *t, size_t n, const char **cs, size_t *cn)
{
    size_t k = 0;
    while (k < n && t[k] == '#')
        k++;
    if (k < 1 || k > 6 || (k < n && !is_sp(t[k])))
        return 0;
    const char *c = t + k;
    size_t l = n - k;
    trim(&c, &l);
    /* An optional closing sequence of '#' preceded by a space. */
    size_t j = l;
    while (j > 0 && c[j - 1] == '#')
        j--;
    if (j < l && (j == 0 || is_sp(c[j - 1]))) {
        l = j;
        trim(&c, &l);
    }
    *cs = c;
    *cn = l;
    return (int)k;
}

static int md_hr(const char *t, size_t n)
{
    char ch = 0;
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_sp(t[i]))
            continue;
        if (t[i] != '-' && t[i] != '*' && t[i] != '_')
            return 0;
        if (ch && t[i] != ch)
            return 0;
        ch = t[i];
        count++;
    }
    return count >= 3;
}

static int md_setext(const char *t, size_t n)
{
    size_t k = 0;
    char ch = n ? t[0] : 0;
    if (ch != '=' && ch != '-')
        return 0;
    while (k < n && t[k] == ch)
        k++;
    size_t run = k;
    while (k < n && is_sp(t[k]))
        k++;
    if (k != n || (ch == '-' && run < 2))
        return 0;
    return ch == '=' ? 1 : 2;
}

static int md_fence_open(const char *t, size_t n, char *fc, size_t *fl)
{
    if (n < 3 || (t[0] != '`' && t[0] != '~'))
        return 0;
    size_t k = 0;
    while (k < n && t[k] == t[0])
        k++;
    if (k < 3)
        return 0;
    if (t[0] == '`' && memchr(t + k, '`', n - k))
        return 0;
    *fc = t[0];
    *fl = k;
    return 1;
}

static int md_fence_close(const char *t, size_t n, char fc, size_t fl)
{
    size_t k = 0;
    while (k < n && t[k] == fc)
        k++;
    if (k < fl)
        return 0;
    while (k < n && is_sp(t[k]))
        k++;
    return k == n;
}

/* A list marker: returns the offset of the item's text, or 0. */
static size_t md_list_marker(const char *t, size_t n)
{
    size_t k = 0;
    if (n >= 1 && (t[0] == '-' || t[0] == '*' || t[0] == '+')) {
        k = 1;
    } else {
        while (k < n && k < 9 && t[k] >= '0' && t[k] <= '9')
            k++;
        if (k == 0 || k >= n || (t[k] != '.' && t[k] != ')'))
            return 0;
        k++;
    }
    if (k < n && !is_sp(t[k]))
        return 0;
    while (k < n && is_sp(t[k]))
        k++;
    return k;
}

static int md_has_pipe(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i] == '|' && (i == 0 || t[i - 1] != '\\'))
            return 1;
    return 0;
}

static int md_delim_row(const char *t, size_t n)
{
    trim(&t, &n);
    if (n && t[0] == '|') {
        t++;
        n--;
    }
    if (n && t[n - 1] == '|')
        n--;
    if (n == 0)
        return 0;
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && t[j] != '|')
            j++;
        const char *c = t + i;
        size_t cl = j - i;
        trim(&c, &cl);
        size_t a = 0, b = cl;
        if (a < b && c[a] == ':')
            a++;
        if (b > a && c[b - 1] == ':')
            b--;
        if (a >= b)
            return 0;
        for (size_t k = a; k < b; k++)
            if (c[k] != '-')
                return 0;
        i = j + 1;
    }
    return 1;
}

static rg_status md_table_row(md_state *m, const char *t, size_t n)
{
    trim(&t, &n);
    if (n && t[0] == '|') {
        t++;
        n--;
    }
    if (n && t[n - 1] == '|' && (n < 2 || t[n - 2] != '\\'))
        n--;
    rg_buf_reset(&m->tmp);
    size_t i = 0;
    rg_status st = RG_OK;
    int first = 1;
    while (i <= n && !st) {
        size_t j = i;
        while (j < n && !(t[j] == '|' && (j == 0 || t[j - 1] != '\\')))
            j++;
        const char *c = t + i;
        size_t cl = j - i;
        trim(&c, &cl);
        if (!first)
            st = rg_buf_append(&m->tmp, " | ", 3, m->e);
        if (!st)
            st = md_inline(c, cl, &m->tmp, m->e);
        first = 0;
        i = j + 1;
    }
    if (st)
        return st;
    return doctext_add_block(m->d, BLOCK_TABLE_ROW, 0, 0, m->tmp.data ? m->tmp.data : "", m->tmp.len, m->e);
}

static int md_refdef(const char *t, size_t n)
{
    if (n < 4 || t[0] != '[')
        return 0;
    size_t k = 1;
    while (k < n && k < 1000 && t[k] != ']')
        k++;
    if (k >= n - 1 || k == 1 || t[k + 1] != ':')
        return 0;
    k += 2;
    while (k < n && is_sp(t[k]))
        k++;
    return k < n;
}

static int md_list_level(md_state *m, int indent)
{
    while (m->n_list > 0 && m->list_indent[m->n_list - 1] > indent)
        m->n_list--;
    if (m->n_list > 0 && m->list_indent[m->n_list - 1] == indent)
        return m->n_list;
    if (m->n_list < MD_MAX_LIST)
        m->list_indent[m->n_list++] = indent;
    return m->n_list;
}

/* YAML front matter: "---" on the first line up to "---" or "...". */
static rg_status md_front_matter(md_state *m, const char *s, size_t n, size_t *pos)
{
    size_t p = 0, ls, le;
    if (!next_line(s, n, &p, &ls, &le))
        return RG_OK;
    const char *t = s + ls;
    size_t tl = le - ls;
    trim(&t, &tl);
    if (ls != 0 || tl != 3 || memcmp(t, "---", 3) != 0)
        return RG_OK;
    size_t title_at = NONE, title_len = 0;
    for (int lines = 0; lines < MD_FRONT_MATTER_LINES && next_line(s, n, &p, &ls, &le); lines++) {
        t = s + ls;
        tl = le - ls;
        if (tl >= 6 && memcmp(t, "title:", 6) == 0 && title_at == NONE) {
            const char *v = t + 6;
            size_t vl = tl - 6;
            trim(&v, &vl);
            if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
                v++;
                vl -= 2;
            }
            title_at = (size_t)(v - s);
            title_len = vl;
        }
        trim(&t, &tl);
        if (tl == 3 && (memcmp(t, "---", 3) == 0 || memcmp(t, "...", 3) == 0)) {
            *pos = p;
            if (title_at != NONE && title_len)
                return loader_set_title(m->d, s + title_at, title_len, m->e);
            return RG_OK;
        }
    }
    return RG_OK; /* no closing line: not front matter */
}

static rg_status md_parse(md_state *m, const char *s, size_t n)
{
    size_t pos = 0, ls, le;
    rg_status st = md_front_matter(m, s, n, &pos);
    int in_fence = 0;
    char fence_ch = 0;
    size_t fence_len = 0;
    int fence_indent = 0;

    while (!st && next_line(s, n, &pos, &ls, &le)) {
        const char *l = s + ls;
        size_t ln = le - ls, ib;
        if (in_fence) {
            int ind = line_indent(l, ln, &ib);
            if ((ind <= 3 || m->in_list) && md_fence_close(l + ib, ln - ib, fence_ch, fence_len)) {
                in_fence = 0;
                st = doctext_add_block(m->d, BLOCK_CODE, 0, 0, m->code.data ? m->code.data : "", m->code.len, m->e);
                continue;
            }
            /* Remove up to the fence's own indentation. */
            size_t k = 0;
            while (k < ln && (int)k < fence_indent && l[k] == ' ')
                k++;
            st = rg_buf_append(&m->code, l + k, ln - k, m->e);
            if (!st)
                st = rg_buf_append_char(&m->code, '\n', m->e);
            continue;
        }
        if (is_blank_line(l, ln)) {
            st = md_flush(m);
            continue;
        }
        int indent = line_indent(l, ln, &ib);
        const char *t = l + ib;
        size_t tl = ln - ib;
        const char *cs;
        size_t cn;
        int lvl;

        if (indent >= 4 && !m->open && !m->in_list) {
            /* Indented code: runs to the first non-blank line indented less. */
            rg_buf_reset(&m->code);
            for (;;) {
                size_t k = 0;
                int col = 0;
                while (k < ln && col < 4 && is_sp(l[k])) {
                    col = l[k] == '\t' ? (col / 4 + 1) * 4 : col + 1;
                    k++;
                }
                if ((st = rg_buf_append(&m->code, l + k, ln - k, m->e)) != RG_OK ||
                    (st = rg_buf_append_char(&m->code, '\n', m->e)) != RG_OK)
                    break;
                size_t p2 = pos, ls2, le2, ib2;
                if (!next_line(s, n, &p2, &ls2, &le2))
                    break;
                if (!is_blank_line(s + ls2, le2 - ls2) && line_indent(s + ls2, le2 - ls2, &ib2) < 4)
                    break;
                pos = p2;
                l = s + ls2;
                ln = le2 - ls2;
            }
            if (!st)
                st = doctext_add_block(m->d, BLOCK_CODE, 0, 0, m->code.data ? m->code.data : "", m->code.len, m->e);
            continue;
        }
        if ((indent <= 3 || m->in_list) && md_fence_open(t, tl, &fence_ch, &fence_len)) {
            st = md_flush(m);
            in_fence = 1;
            fence_indent = indent;
            rg_buf_reset(&m->code);
            continue;
        }
        if (indent <= 3) {
            if ((lvl = md_atx(t, tl, &cs, &cn)) > 0) {
                if (!(st = md_flush(m)))
                    st = md_emit(m, BLOCK_HEADING, lvl, cs, cn);
                m->in_list = 0;
                m->n_list = 0;
                continue;
            }
            if (m->open && m->kind == BLOCK_PARAGRAPH && (lvl = md_setext(t, tl)) > 0) {
                m->open = 0;
                st = md_emit(m, BLOCK_HEADING, lvl, m->para.data, m->para.len);
                rg_buf_reset(&m->para);
                continue;
            }
            if (md_hr(t, tl)) {
                st = md_flush(m);
                m->in_list = 0;
                m->n_list = 0;
                continue;
            }
            if (t[0] == '>') {
                const char *c = t;
                size_t cl = tl;
                for (int q = 0; q < 64 && cl && c[0] == '>'; q++) {
                    c++;
                    cl--;
                    while (cl && is_sp(c[0])) {
                        c++;
                        cl--;
                    }
                }
                if (is_blank_line(c, cl)) {
                    st = md_flush(m);
                    continue;
                }
                size_t off;
                if (md_atx(c, cl, &cs, &cn) > 0) {
                    c = cs;
                    cl = cn;
                } else if ((off = md_list_marker(c, cl)) > 0) {
                    c += off;
                    cl -= off;
                }
                if (m->open && m->kind != BLOCK_QUOTE)
                    st = md_flush(m);
                if (!st)
                    st = m->open ? md_continue(m, c, cl) : md_open(m, BLOCK_QUOTE, 0, c, cl);
                m->in_list = 0;
                continue;
            }
        }
        size_t off = md_list_marker(t, tl);
        if (off > 0) {
            if ((st = md_flush(m)) != RG_OK)
                break;
            m->list_level = md_list_level(m, indent);
            m->in_list = 1;
            st = md_open(m, BLOCK_LIST_ITEM, m->list_level, t + off, tl - off);
            continue;
        }
        if (indent <= 3 && md_has_pipe(t, tl)) {
            size_t p2 = pos, ls2, le2;
            if (next_line(s, n, &p2, &ls2, &le2) && md_delim_row(s + ls2, le2 - ls2)) {
                if ((st = md_flush(m)) != RG_OK || (st = md_table_row(m, t, tl)) != RG_OK)
                    break;
                pos = p2;
                for (;;) {
                    p2 = pos;
                    if (!next_line(s, n, &p2, &ls2, &le2) || is_blank_line(s + ls2, le2 - ls2) ||
                        !md_has_pipe(s + ls2, le2 - ls2))
                        break;
                    if ((st = md_table_row(m, s + ls2, le2 - ls2)) != RG_OK)
                        break;
                    pos = p2;
                }
                m->in_list = 0;
                m->n_list = 0;
                continue;
            }
        }
        if (!m->open && indent <= 3 && md_refdef(t, tl))
            continue;
        if (m->open) {
            st = md_continue(m, t, tl);
        } else if (m->in_list && indent >= 2) {
            st = md_open(m, BLOCK_LIST_ITEM, m->list_level, t, tl);
        } else {
            m->in_list = 0;
            m->n_list = 0;
            st = md_open(m, BLOCK_PARAGRAPH, 0, t, tl);
        }
    }
    if (!st && in_fence) /* an unclosed fence runs to the end */
        st = doctext_add_block(m->d, BLOCK_CODE, 0, 0, m->code.data ? m->code.data : "", m->code.len, m->e);
    if (!st)
        st = md_flush(m);
    return st;
}

rg_status loader_markdown(const char *data, size_t len, rg_doctext *out, rg_err *e)
{
    rg_buf buf;
    rg_buf_init(&buf, 0);
    rg_status st = loader_decode_text(data, len, &buf, e);
    if (st) {
        rg_buf_free(&buf);
        return st;
    }
    md_state m;
    memset(&m, 0, sizeof m);
    m.d = out;
    m.e = e;
    rg_buf_init(&m.para, out->limits.max_text_bytes);
    rg_buf_init(&m.tmp, 0);
    rg_buf_init(&m.code, out->limits.max_text_bytes);
    st = md_parse(&m, buf.data ? buf.data : "", buf.len);
    rg_buf_free(&m.para);
    rg_buf_free(&m.tmp);
    rg_buf_free(&m.code);
    rg_buf_free(&buf);
    if (st == RG_ERR_TOO_LARGE && !strstr(e ? e->msg : "", "extracted"))
        st = rg_error(e, RG_ERR_TOO_LARGE, "the extracted text exceeds the limit of %zu bytes",
                      out->limits.max_text_bytes);
    if (st)
        return st;
    return loader_finish(out, 1, e);
}
