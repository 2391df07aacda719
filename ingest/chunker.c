/* chunker.c - structure-aware splitting of a document into chunks.
 *
 * 1. Units. Every block that fits the target is one unit. A larger block
 *    is cut into sentences (code: lines); a sentence still too large into
 *    groups of whole words; a single word larger than the target is cut at
 *    code point boundaries. Units never straddle blocks.
 * 2. Packing. Units are packed greedily into chunks of at most
 *    target_tokens. A heading starts a new chunk whenever the current one
 *    holds anything besides headings, so a chunk never runs from one
 *    section's text into the next section, and its heading path (that of
 *    its last unit) names the section all its text belongs to; a
 *    heading with nothing yet under it stays with what follows it ("# Title"
 *    directly followed by "## Intro" share a chunk). A section that fits
 *    the target is thus exactly one chunk.
 * 3. Overlap. When a chunk ends only because it is full, the next one
 *    starts with the last words of it, up to min(overlap_tokens, target/2)
 *    tokens and never more than leaves room for the next unit, preferring
 *    to start at a sentence; overlap never reaches back past the heading
 *    of the section being continued. A chunk is a contiguous span of the
 *    document text, so its start then lies inside the previous chunk.
 *
 * Token counts of parts are added up to size a chunk (exact for counters
 * that split at white space, like WordPiece and token_count_approx); every
 * chunk is then counted whole and shrunk if the counter disagrees. */
#include "ingest/chunker.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/utf8.h"

#define NONE ((size_t)-1)
#define MAX_HEADING_IN_PATH 200

typedef struct unit {
    size_t start, end;
    size_t tokens;
    size_t block;
    int head;              /* the first unit of a heading block */
} unit;

typedef struct ctx {
    const rg_doctext *doc;
    const char *t;
    rg_token_counter count;
    void *count_ctx;
    size_t target;
    unit *u;
    size_t n, cap;
    rg_err *e;
} ctx;

static size_t count(const ctx *c, size_t a, size_t b)
{
    return b > a ? c->count(c->t + a, b - a, c->count_ctx) : 0;
}

static rg_status push_unit(ctx *c, size_t a, size_t b, size_t tokens, size_t block, int head)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        unit *nu = cap <= SIZE_MAX / sizeof *nu ? realloc(c->u, cap * sizeof *nu) : NULL;
        if (!nu)
            return rg_error(c->e, RG_ERR_NOMEM, "out of memory splitting a document");
        c->u = nu;
        c->cap = cap;
    }
    unit *x = &c->u[c->n++];
    x->start = a;
    x->end = b;
    x->tokens = tokens;
    x->block = block;
    x->head = head;
    return RG_OK;
}

static int ascii_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* A word longer than the target: pieces of as many code points as fit. */
static rg_status hard_split(ctx *c, size_t a, size_t b, size_t block, int *head)
{
    const char *t = c->t;
    while (a < b) {
        size_t good = a + 1;
        while (good < b && ((unsigned char)t[good] & 0xC0) == 0x80)
            good++;
        /* Search a window, not the rest of the word, so that a huge word
         * costs linear time: no counter gives a token more than 32 bytes
         * here (one that does just gets smaller pieces). */
        size_t window = c->target < SIZE_MAX / 64 ? 32 * c->target + 64 : SIZE_MAX / 2;
        size_t hi = b - a > window ? a + window : b;
        while (hi < b && ((unsigned char)t[hi] & 0xC0) == 0x80)
            hi++;
        size_t bad = hi, q;
        if (count(c, a, hi) <= c->target) {
            q = hi;
        } else {
            for (;;) {
                size_t mid = good + (bad - good) / 2;
                while (mid > good && ((unsigned char)t[mid] & 0xC0) == 0x80)
                    mid--;
                if (mid <= good)
                    break;
                if (count(c, a, mid) <= c->target)
                    good = mid;
                else
                    bad = mid;
            }
            q = good;
        }
        rg_status st = push_unit(c, a, q, count(c, a, q), block, *head);
        if (st)
            return st;
        *head = 0;
        a = q;
    }
    return RG_OK;
}

/* A sentence longer than the target: groups of whole words. */
static rg_status split_words(ctx *c, size_t a, size_t b, size_t block, int *head)
{
    const char *t = c->t;
    size_t gs = NONE, ge = 0, acc = 0, i = a;
    rg_status st = RG_OK;
    while (i < b && !st) {
        while (i < b && ascii_space(t[i]))
            i++;
        if (i >= b)
            break;
        size_t ws = i;
        while (i < b && !ascii_space(t[i]))
            i++;
        size_t we = i, wt = count(c, ws, we);
        if (wt > c->target) {
            if (gs != NONE)
                st = push_unit(c, gs, ge, count(c, gs, ge), block, *head);
            if (gs != NONE)
                *head = 0;
            gs = NONE;
            acc = 0;
            if (!st)
                st = hard_split(c, ws, we, block, head);
            continue;
        }
        if (gs != NONE && acc + wt > c->target) {
            st = push_unit(c, gs, ge, count(c, gs, ge), block, *head);
            *head = 0;
            gs = NONE;
            acc = 0;
        }
        if (gs == NONE)
            gs = ws;
        acc += wt;
        ge = we;
    }
    if (!st && gs != NONE) {
        st = push_unit(c, gs, ge, count(c, gs, ge), block, *head);
        *head = 0;
    }
    return st;
}

static int is_lower(const char *t, size_t i, size_t b)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)t + i, (utf8proc_ssize_t)(b - i), &cp);
    return n > 0 && utf8proc_category(cp) == UTF8PROC_CATEGORY_LL;
}

/* Where the sentence starting at a ends (exclusive, before trailing white
 * space) and where the next one may start. Sentences end at a newline, at
 * . ! or ? (and closing quotes or brackets) followed by white space and a
 * character that is not a lower-case letter, and after 。！？. */
static void sentence_end(const ctx *c, size_t a, size_t b, int code, size_t *se, size_t *next)
{
    const char *t = c->t;
    size_t i = a;
    while (i < b) {
        char ch = t[i];
        if (ch == '\n') {
            *se = i;
            *next = i + 1;
            return;
        }
        if (!code && (ch == '.' || ch == '!' || ch == '?')) {
            size_t k = i + 1;
            while (k < b && (t[k] == '"' || t[k] == '\'' || t[k] == ')' || t[k] == ']'))
                k++;
            if (k < b && ascii_space(t[k])) {
                size_t m = k;
                while (m < b && ascii_space(t[m]))
                    m++;
                if (m >= b || !is_lower(t, m, b)) {
                    *se = k;
                    *next = k;
                    return;
                }
            }
            i = k;
            continue;
        }
        if (!code && (unsigned char)ch == 0xE3 && i + 2 < b && (unsigned char)t[i + 1] == 0x80 &&
            (unsigned char)t[i + 2] == 0x82) { /* 。 */
            *se = *next = i + 3;
            return;
        }
        if (!code && (unsigned char)ch == 0xEF && i + 2 < b && (unsigned char)t[i + 1] == 0xBC &&
            ((unsigned char)t[i + 2] == 0x81 || (unsigned char)t[i + 2] == 0x9F)) { /* ！？ */
            *se = *next = i + 3;
            return;
        }
        i++;
    }
    *se = b;
    *next = b;
}

static rg_status split_block(ctx *c, size_t bi)
{
    const rg_block *bl = &c->doc->blocks[bi];
    int code = bl->kind == BLOCK_CODE;
    int head = bl->kind == BLOCK_HEADING;
    const char *t = c->t;
    size_t pos = bl->start, b = bl->end;
    rg_status st = RG_OK;
    while (pos < b && !st) {
        size_t ss = pos;
        if (code) {
            while (ss < b && t[ss] == '\n')
                ss++;
        } else {
            while (ss < b && ascii_space(t[ss]))
                ss++;
        }
        if (ss >= b)
            break;
        size_t se, next;
        sentence_end(c, ss, b, code, &se, &next);
        size_t e2 = se;
        while (e2 > ss && ascii_space(t[e2 - 1]))
            e2--;
        if (e2 > ss) {
            size_t tk = count(c, ss, e2);
            if (tk <= c->target) {
                st = push_unit(c, ss, e2, tk, bi, head);
                head = 0;
            } else {
                st = split_words(c, ss, e2, bi, &head);
            }
        }
        pos = next > pos ? next : pos + 1;
    }
    return st;
}

/* Start of the overlap taken from the end of [lo, end): the earliest word
 * start such that the words from it to end count at most budget tokens;
 * a sentence start instead when that keeps at least half as much. */
static size_t overlap_start(const ctx *c, size_t lo, size_t end, size_t budget, size_t *tokens)
{
    const char *t = c->t;
    size_t q = end, acc = 0, best_w = NONE, best_w_acc = 0, best_s = NONE, best_s_acc = 0;
    while (q > lo) {
        while (q > lo && ascii_space(t[q - 1]))
            q--;
        if (q <= lo)
            break;
        size_t ws = q;
        while (ws > lo && !ascii_space(t[ws - 1]))
            ws--;
        if (ws == lo && lo > 0 && !ascii_space(t[lo - 1]))
            break; /* the word begins before lo */
        size_t wt = count(c, ws, q);
        if (acc + wt > budget)
            break;
        acc += wt;
        q = ws;
        best_w = ws;
        best_w_acc = acc;
        /* A sentence start: preceded by a newline, the text start, or . ! ? */
        size_t k = ws;
        int nl = 0;
        while (k > 0 && ascii_space(t[k - 1])) {
            nl |= t[k - 1] == '\n';
            k--;
        }
        while (k > 0 && (t[k - 1] == '"' || t[k - 1] == '\'' || t[k - 1] == ')' || t[k - 1] == ']') && k + 4 > ws)
            k--;
        if (nl || k == 0 || t[k - 1] == '.' || t[k - 1] == '!' || t[k - 1] == '?') {
            best_s = ws;
            best_s_acc = acc;
        }
    }
    if (best_w == NONE) {
        *tokens = 0;
        return NONE;
    }
    if (best_s != NONE && best_s_acc * 2 >= best_w_acc) {
        *tokens = best_s_acc;
        return best_s;
    }
    *tokens = best_w_acc;
    return best_w;
}

static int heading_level(const rg_block *b)
{
    return b->level < 1 ? 1 : b->level > 6 ? 6 : b->level;
}

static char *heading_path(const rg_doctext *doc, const size_t *parent, size_t h, rg_err *e, rg_status *st)
{
    size_t chain[8], n = 0;
    for (; h != NONE && n < 8; h = parent[h])
        chain[n++] = h;
    if (n == 0)
        return NULL;
    rg_buf b;
    rg_buf_init(&b, 0);
    while (n-- > 0 && !*st) {
        const rg_block *bl = &doc->blocks[chain[n]];
        size_t len = utf8_truncate(doc->text.data + bl->start, bl->end - bl->start, MAX_HEADING_IN_PATH);
        if (b.len)
            *st = rg_buf_append(&b, " > ", 3, e);
        if (!*st)
            *st = rg_buf_append(&b, doc->text.data + bl->start, len, e);
    }
    if (*st) {
        rg_buf_free(&b);
        return NULL;
    }
    return rg_buf_take(&b);
}

/* Index of the block holding byte pos (or the last one before it). */
static size_t block_at(const rg_doctext *doc, size_t pos)
{
    size_t lo = 0, hi = doc->n_blocks;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (doc->blocks[mid].start <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

void chunker_free(rg_chunk_span *chunks, size_t n)
{
    if (!chunks)
        return;
    for (size_t i = 0; i < n; i++)
        free(chunks[i].heading_path);
    free(chunks);
}

rg_status chunker_split(const rg_doctext *doc, const rg_chunk_opts *opts, rg_chunk_span **out, size_t *n_out,
                        rg_err *e)
{
    if (!doc || !opts || !out || !n_out)
        return rg_error(e, RG_ERR_INTERNAL, "chunker_split: bad arguments");
    *out = NULL;
    *n_out = 0;
    if (opts->target_tokens == 0)
        return rg_error(e, RG_ERR_INVALID, "the chunk size must be at least one token");
    if (doc->n_blocks == 0)
        return RG_OK;
    if (!doc->text.data)
        return rg_error(e, RG_ERR_INTERNAL, "chunker_split: document without text");
    size_t prev_end = 0;
    for (size_t i = 0; i < doc->n_blocks; i++) {
        const rg_block *b = &doc->blocks[i];
        if (b->start < prev_end || b->end < b->start || b->end > doc->text.len)
            return rg_error(e, RG_ERR_INTERNAL, "chunker_split: block %zu is out of order or out of range", i);
        prev_end = b->end;
    }

    ctx c;
    memset(&c, 0, sizeof c);
    c.doc = doc;
    c.t = doc->text.data;
    c.count = opts->count ? opts->count : token_count_approx;
    c.count_ctx = opts->count_ctx;
    c.target = opts->target_tokens;
    c.e = e;
    size_t ov_cap = opts->overlap_tokens < c.target / 2 ? opts->overlap_tokens : c.target / 2;

    rg_status st = RG_OK;
    rg_chunk_span *chunks = NULL;
    size_t n_chunks = 0, cap_chunks = 0;
    size_t *sec = malloc(doc->n_blocks * sizeof *sec);    /* innermost heading block of each block */
    size_t *parent = malloc(doc->n_blocks * sizeof *parent); /* enclosing heading of each heading */
    if (!sec || !parent) {
        st = rg_error(e, RG_ERR_NOMEM, "out of memory splitting a document");
        goto done;
    }

    /* Sections: a stack of open headings by level. */
    {
        size_t stack[6];
        int sn = 0;
        for (size_t i = 0; i < doc->n_blocks; i++) {
            const rg_block *b = &doc->blocks[i];
            parent[i] = NONE;
            if (b->kind == BLOCK_HEADING) {
                int lv = heading_level(b);
                while (sn > 0 && heading_level(&doc->blocks[stack[sn - 1]]) >= lv)
                    sn--;
                parent[i] = sn > 0 ? stack[sn - 1] : NONE;
                stack[sn++] = i;
            }
            sec[i] = sn > 0 ? stack[sn - 1] : NONE;
        }
    }

    /* Units. */
    for (size_t i = 0; i < doc->n_blocks && !st; i++) {
        const rg_block *b = &doc->blocks[i];
        if (b->end == b->start)
            continue;
        size_t tk = count(&c, b->start, b->end);
        if (tk <= c.target)
            st = push_unit(&c, b->start, b->end, tk, i, b->kind == BLOCK_HEADING);
        else
            st = split_block(&c, i);
    }
    if (st || c.n == 0)
        goto done;

    /* Packing. */
    size_t i = 0, ov_start = NONE, ov_tokens = 0;
    size_t cs_byte = 0, cs_char = 0, ce_byte = 0, ce_char = 0;
    while (i < c.n && !st) {
        size_t first = i;
        const unit *u0 = &c.u[i];
        size_t start = ov_start != NONE ? ov_start : u0->start;
        size_t sum = ov_tokens + u0->tokens;
        const rg_block *b0 = &doc->blocks[u0->block];
        int has_content = b0->kind != BLOCK_HEADING;
        int full = 0;
        size_t j = i + 1;
        for (; j < c.n; j++) {
            const unit *u = &c.u[j];
            if (u->head && has_content)
                break; /* a new section */
            if (sum + u->tokens > c.target) {
                full = 1;
                break;
            }
            sum += u->tokens;
            if (doc->blocks[u->block].kind != BLOCK_HEADING)
                has_content = 1;
        }
        size_t end = c.u[j - 1].end;
        size_t tc = count(&c, start, end);
        while (tc > c.target) { /* the counter is not additive: shrink */
            if (start < u0->start)
                start = u0->start;
            else if (j - 1 > first) {
                j--;
                end = c.u[j - 1].end;
                full = 1;
            } else
                break;
            tc = count(&c, start, end);
        }

        if (n_chunks == cap_chunks) {
            size_t cap = cap_chunks ? cap_chunks * 2 : 64;
            rg_chunk_span *nc = cap <= SIZE_MAX / sizeof *nc ? realloc(chunks, cap * sizeof *nc) : NULL;
            if (!nc) {
                st = rg_error(e, RG_ERR_NOMEM, "out of memory splitting a document");
                break;
            }
            chunks = nc;
            cap_chunks = cap;
        }
        rg_chunk_span *ch = &chunks[n_chunks];
        memset(ch, 0, sizeof *ch);
        ch->start = start;
        ch->end = end;
        cs_char += utf8_length(c.t + cs_byte, start - cs_byte);
        cs_byte = start;
        ce_char += utf8_length(c.t + ce_byte, end - ce_byte);
        ce_byte = end;
        ch->char_start = cs_char;
        ch->char_end = ce_char;
        ch->token_count = tc;
        ch->page = doc->blocks[block_at(doc, start)].page;
        /* Text only ever follows the chunk's last heading, so the last
         * unit's section is the one its text belongs to. */
        ch->heading_path = heading_path(doc, parent, sec[c.u[j - 1].block], e, &st);
        n_chunks++;
        if (st)
            break;

        /* Overlap into the next chunk when this one ended only for size. */
        ov_start = NONE;
        ov_tokens = 0;
        if (j < c.n && full && ov_cap > 0 && !c.u[j].head && c.u[j].tokens < c.target) {
            size_t budget = c.target - c.u[j].tokens;
            if (budget > ov_cap)
                budget = ov_cap;
            size_t s = sec[c.u[j].block];
            size_t floor = s != NONE ? doc->blocks[s].start : 0;
            size_t lo = floor > start + 1 ? floor : start + 1;
            if (lo < end)
                ov_start = overlap_start(&c, lo, end, budget, &ov_tokens);
            if (ov_start == NONE)
                ov_tokens = 0;
        }
        i = j;
    }

done:
    free(sec);
    free(parent);
    free(c.u);
    if (st) {
        chunker_free(chunks, n_chunks);
        return st;
    }
    *out = chunks;
    *n_out = n_chunks;
    return RG_OK;
}
