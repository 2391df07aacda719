/* wordpiece.c - BERT WordPiece tokenization matching Hugging Face
 * `tokenizers` (see tokenizer.h for the pipeline). Loading is in
 * tokenizer_load.c; this file holds the tokenizer itself.
 *
 * The text is processed in one streaming pass: each code point goes through
 * the normalizer stages, then the pre-tokenizer, which accumulates the
 * current word; a finished word goes through WordPiece. Memory is bounded
 * by the longest word WordPiece looks at (max_input_chars_per_word), not by
 * the input. */
#include "model/tokenizer_impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "model/wordpiece_tables.h"

/* ---- character classes ----------------------------------------------- */

enum {
    CC_REMOVED = 1,  /* clean_text drops it */
    CC_SPACE = 2,    /* clean_text maps it to ' ' */
    CC_DECOMP = 4,   /* NFD changes it */
    CC_MN = 8,       /* strip_accents drops it */
    CC_WS = 16,      /* pre-tokenizer whitespace */
    CC_PUNCT = 32,   /* pre-tokenizer punctuation */
    CC_LOWER = 64,   /* lowercase changes it */
    CC_CHINESE = 128, /* spaced out by handle_chinese_chars */
    CC_MARK = 256     /* non-zero canonical combining class */
};

static uint16_t bmp_class[0x10000];
static pthread_once_t bmp_once = PTHREAD_ONCE_INIT;

static int in_ranges(const rg_cp_range *r, size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid].lo)
            hi = mid;
        else if (c > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* The same ranges as Hugging Face's is_chinese_char. */
static int is_chinese(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* The canonical combining class NFD reorders by. */
static unsigned find_ccc(uint32_t c)
{
    size_t lo = 0, hi = wp_ccc_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < wp_ccc[mid].lo)
            hi = mid;
        else if (c > wp_ccc[mid].hi)
            lo = mid + 1;
        else
            return wp_ccc[mid].ccc;
    }
    return 0;
}

static const rg_cp_lower *find_lower(uint32_t c)
{
    size_t lo = 0, hi = wp_lower_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < wp_lower[mid].cp)
            hi = mid;
        else if (c > wp_lower[mid].cp)
            lo = mid + 1;
        else
            return &wp_lower[mid];
    }
    return NULL;
}

static unsigned class_slow(uint32_t c)
{
    unsigned k = 0;
    if (in_ranges(wp_removed, wp_removed_n, c))
        k |= CC_REMOVED;
    if (in_ranges(wp_space, wp_space_n, c))
        k |= CC_SPACE;
    if (in_ranges(wp_decomposable, wp_decomposable_n, c))
        k |= CC_DECOMP;
    if (in_ranges(wp_nonspacing, wp_nonspacing_n, c))
        k |= CC_MN;
    if (in_ranges(wp_whitespace, wp_whitespace_n, c))
        k |= CC_WS;
    if (in_ranges(wp_punct, wp_punct_n, c))
        k |= CC_PUNCT;
    if (find_lower(c))
        k |= CC_LOWER;
    if (is_chinese(c))
        k |= CC_CHINESE;
    if (find_ccc(c))
        k |= CC_MARK;
    return k;
}

static void bmp_init(void)
{
    for (uint32_t c = 0; c < 0x10000; c++)
        bmp_class[c] = (uint16_t)class_slow(c);
}

void wp_tables_init(void) { pthread_once(&bmp_once, bmp_init); }

static inline unsigned cclass(uint32_t c) { return c < 0x10000 ? bmp_class[c] : class_slow(c); }

unsigned wp_char_class(uint32_t c)
{
    wp_tables_init();
    return cclass(c);
}

/* ---- the streaming state ---------------------------------------------- */

/* Combining marks reordered together after NFD; a longer run (no real
 * text has one) is reordered in pieces. */
#define PEND_MAX 128

typedef struct span {
    size_t start, end;
} span;

/* A decomposed code point waiting for canonical ordering. */
typedef struct pchar {
    uint32_t cp;
    uint8_t ccc;
    uint8_t inserted; /* not the first code point of its decomposition */
} pchar;

typedef struct piece {
    int32_t id;
    uint32_t c0, c1; /* chars [c0, c1) of the word */
} piece;

typedef struct run_state {
    const rg_tokenizer *t;
    /* where tokens go: an encoding, an id array, or just the count */
    rg_encoding *enc;
    int32_t *ids;
    size_t max_ids;
    size_t count;
    rg_status st;
    rg_err *e;
    /* NFD: the run of combining marks being reordered, and the original
     * spans of the characters whose first code point is not out yet (the
     * library hands spans out by position, not by character) */
    pchar pend[PEND_MAX];
    size_t n_pend;
    span fifo[PEND_MAX + 2];
    size_t fifo_head, fifo_n;
    span last;
    /* the current word: its first max_chars + 1 characters are kept */
    char *wbytes;    /* UTF-8 */
    uint32_t *wpos;  /* byte offset of each kept char in wbytes, plus the end */
    size_t *wstart, *wend;
    size_t wchars;   /* characters in the word (kept or not) */
    size_t w_first, w_last_end;
    piece *pieces;
    char *key; /* prefix + candidate */
} run_state;

static void emit(run_state *s, int32_t id, size_t start, size_t end)
{
    if (s->st)
        return;
    if (s->enc) {
        rg_status st = wp_encoding_push(s->enc, id, 0, 0, start, end, s->e);
        if (st)
            s->st = st;
    } else if (s->ids && s->count < s->max_ids) {
        s->ids[s->count] = id;
    }
    s->count++;
}

static void word_flush(run_state *s)
{
    const rg_tokenizer *t = s->t;
    size_t n = s->wchars;
    if (n == 0)
        return;
    s->wchars = 0;
    if (n > t->max_chars) {
        emit(s, t->unk_id, s->w_first, s->w_last_end);
        return;
    }
    const uint32_t *pos = s->wpos;
    size_t max_key = t->max_key;
    size_t np = 0;
    size_t i = 0;
    while (i < n) {
        size_t plen = i > 0 ? t->prefix_len : 0;
        int32_t found = -1;
        size_t j = n;
        if (max_key >= plen) {
            size_t room = max_key - plen;
            while (j > i && pos[j] - pos[i] > room)
                j--;
            if (plen)
                memcpy(s->key, t->prefix, plen);
            for (; j > i; j--) {
                size_t blen = pos[j] - pos[i];
                memcpy(s->key + plen, s->wbytes + pos[i], blen);
                found = vocab_get(t->vocab, s->key, plen + blen);
                if (found >= 0)
                    break;
            }
        }
        if (found < 0) {
            emit(s, t->unk_id, s->w_first, s->w_last_end);
            return;
        }
        s->pieces[np].id = found;
        s->pieces[np].c0 = (uint32_t)i;
        s->pieces[np].c1 = (uint32_t)j;
        np++;
        i = j;
    }
    for (size_t k = 0; k < np; k++)
        emit(s, s->pieces[k].id, s->wstart[s->pieces[k].c0], s->wend[s->pieces[k].c1 - 1]);
}

static void word_add(run_state *s, uint32_t cp, size_t start, size_t end)
{
    if (s->wchars == 0) {
        s->w_first = start;
        s->wpos[0] = 0;
    }
    s->w_last_end = end;
    if (s->wchars <= s->t->max_chars) {
        size_t k = s->wchars;
        utf8proc_ssize_t nb = utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)s->wbytes + s->wpos[k]);
        s->wpos[k + 1] = s->wpos[k] + (uint32_t)nb;
        s->wstart[k] = start;
        s->wend[k] = end;
    }
    s->wchars++;
}

/* Pre-tokenizer: whitespace ends a word, punctuation is a word of its own. */
static void pretok(run_state *s, uint32_t cp, size_t start, size_t end)
{
    unsigned k = cclass(cp);
    if (k & CC_WS) {
        word_flush(s);
    } else if (k & CC_PUNCT) {
        word_flush(s);
        word_add(s, cp, start, end);
        word_flush(s);
    } else {
        word_add(s, cp, start, end);
    }
}

/* After NFD: drop non-spacing marks, lowercase. */
static void post_nfd(run_state *s, uint32_t cp, size_t start, size_t end)
{
    const rg_tokenizer *t = s->t;
    unsigned k = cclass(cp);
    if (t->strip_accents && (k & CC_MN))
        return;
    if (t->lowercase && (k & CC_LOWER)) {
        const rg_cp_lower *l = find_lower(cp);
        if (l) {
            pretok(s, l->lo0, start, end);
            if (l->lo1)
                pretok(s, l->lo1, start, end);
            return;
        }
    }
    pretok(s, cp, start, end);
}

/* Hands a code point on after NFD with the original span Hugging Face
 * gives it: the first code point of a decomposition takes the span of the
 * next character not yet consumed, the others the span of the last one
 * consumed. With canonical reordering that is by position, so a mark moved
 * ahead of another takes that one's span. */
static void nfd_release(run_state *s, uint32_t cp, int inserted)
{
    if (!inserted && s->fifo_n) {
        s->last = s->fifo[s->fifo_head];
        s->fifo_head = (s->fifo_head + 1) % (PEND_MAX + 2);
        s->fifo_n--;
    }
    post_nfd(s, cp, s->last.start, s->last.end);
}

static void pend_flush(run_state *s)
{
    size_t n = s->n_pend;
    for (size_t i = 1; i < n; i++) { /* stable insertion sort by class */
        pchar x = s->pend[i];
        size_t j = i;
        while (j > 0 && s->pend[j - 1].ccc > x.ccc) {
            s->pend[j] = s->pend[j - 1];
            j--;
        }
        s->pend[j] = x;
    }
    s->n_pend = 0;
    for (size_t i = 0; i < n; i++)
        nfd_release(s, s->pend[i].cp, s->pend[i].inserted);
}

static void nfd_out(run_state *s, uint32_t cp, int inserted)
{
    if (!(cclass(cp) & CC_MARK)) {
        if (s->n_pend)
            pend_flush(s);
        nfd_release(s, cp, inserted);
        return;
    }
    if (s->n_pend == PEND_MAX)
        pend_flush(s);
    s->pend[s->n_pend].cp = cp;
    s->pend[s->n_pend].ccc = (uint8_t)find_ccc(cp);
    s->pend[s->n_pend].inserted = (uint8_t)inserted;
    s->n_pend++;
}

/* strip_accents: canonical decomposition, then canonical ordering. */
static void nfd(run_state *s, uint32_t cp, size_t start, size_t end)
{
    if (!s->t->strip_accents) {
        post_nfd(s, cp, start, end);
        return;
    }
    /* the queue holds at most the characters with a code point pending */
    if (s->fifo_n == PEND_MAX + 2)
        pend_flush(s);
    size_t tail = (s->fifo_head + s->fifo_n) % (PEND_MAX + 2);
    s->fifo[tail].start = start;
    s->fifo[tail].end = end;
    s->fifo_n++;
    if (cclass(cp) & CC_DECOMP) {
        utf8proc_int32_t buf[8];
        int boundclass = 0;
        utf8proc_ssize_t n =
            utf8proc_decompose_char((utf8proc_int32_t)cp, buf, 8, UTF8PROC_DECOMPOSE, &boundclass);
        if (n > 0 && n <= 8) {
            for (utf8proc_ssize_t i = 0; i < n; i++)
                nfd_out(s, (uint32_t)buf[i], i > 0);
            return;
        }
    }
    nfd_out(s, cp, 0);
}

/* clean_text and handle_chinese_chars. */
static void raw_char(run_state *s, uint32_t cp, size_t start, size_t end)
{
    const rg_tokenizer *t = s->t;
    unsigned k = cclass(cp);
    if (t->clean_text) {
        if (k & CC_REMOVED)
            return;
        if (k & CC_SPACE) {
            cp = ' ';
            k = cclass(cp);
        }
    }
    if (t->chinese && (k & CC_CHINESE)) {
        nfd(s, ' ', start, end);
        nfd(s, cp, start, end);
        nfd(s, ' ', start, end);
        return;
    }
    nfd(s, cp, start, end);
}

static void segment_end(run_state *s)
{
    if (s->n_pend)
        pend_flush(s);
    word_flush(s);
}

/* The added token that starts at text[p], longest first; NULL if none. */
static const wp_added *added_at(const rg_tokenizer *t, const char *text, size_t len, size_t p)
{
    unsigned char b = (unsigned char)text[p];
    if (!(t->added_first[b >> 3] & (1u << (b & 7))))
        return NULL;
    for (size_t i = 0; i < t->n_added; i++) { /* sorted longest first */
        const wp_added *a = &t->added[i];
        if (a->len <= len - p && memcmp(text + p, a->text, a->len) == 0)
            return a;
    }
    return NULL;
}

static rg_status run(const rg_tokenizer *t, const char *text, size_t len, run_state *s, rg_err *e)
{
    wp_tables_init();
    s->t = t;
    s->st = RG_OK;
    s->e = e;
    s->count = 0;
    s->n_pend = 0;
    s->fifo_head = s->fifo_n = 0;
    s->last.start = s->last.end = 0;
    s->wchars = 0;
    size_t kept = t->max_chars + 1;
    /* one allocation for the word buffers */
    size_t sz_bytes = kept * 4, sz_pos = (kept + 1) * sizeof(uint32_t), sz_off = kept * sizeof(size_t),
           sz_pieces = kept * sizeof(piece), sz_key = t->prefix_len + t->max_key + 4;
    char *mem = malloc(sz_off * 2 + sz_pieces + sz_pos + sz_bytes + sz_key);
    if (!mem)
        return rg_error(e, RG_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
    s->wstart = (size_t *)(void *)mem;
    s->wend = (size_t *)(void *)(mem + sz_off);
    s->pieces = (piece *)(void *)(mem + sz_off * 2);
    s->wpos = (uint32_t *)(void *)(mem + sz_off * 2 + sz_pieces);
    s->wbytes = mem + sz_off * 2 + sz_pieces + sz_pos;
    s->key = s->wbytes + sz_bytes;

    size_t p = 0;
    while (p < len && !s->st) {
        if (t->n_added) {
            const wp_added *a = added_at(t, text, len, p);
            if (a) {
                segment_end(s);
                emit(s, a->id, p, p + a->len);
                p += a->len;
                continue;
            }
        }
        unsigned char b = (unsigned char)text[p];
        utf8proc_int32_t cp;
        size_t n;
        if (b < 0x80) {
            cp = b;
            n = 1;
        } else {
            size_t avail = len - p < 4 ? len - p : 4;
            utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)text + p, (utf8proc_ssize_t)avail, &cp);
            if (r <= 0) { /* invalid: U+FFFD for this byte */
                cp = 0xFFFD;
                n = 1;
            } else {
                n = (size_t)r;
            }
        }
        raw_char(s, (uint32_t)cp, p, p + n);
        p += n;
    }
    if (!s->st)
        segment_end(s);
    free(mem);
    return s->st;
}

/* ---- encodings -------------------------------------------------------- */

rg_status wp_encoding_push(rg_encoding *enc, int32_t id, int32_t type_id, int8_t seq, size_t start, size_t end,
                           rg_err *e)
{
    if (enc->n == enc->cap) {
        size_t ncap = enc->cap ? enc->cap * 2 : 64;
        int32_t *ids = realloc(enc->ids, ncap * sizeof *ids);
        if (ids)
            enc->ids = ids;
        int32_t *ty = realloc(enc->type_ids, ncap * sizeof *ty);
        if (ty)
            enc->type_ids = ty;
        int32_t *am = realloc(enc->attention_mask, ncap * sizeof *am);
        if (am)
            enc->attention_mask = am;
        int8_t *sq = realloc(enc->seq, ncap * sizeof *sq);
        if (sq)
            enc->seq = sq;
        size_t *st = realloc(enc->start, ncap * sizeof *st);
        if (st)
            enc->start = st;
        size_t *en = realloc(enc->end, ncap * sizeof *en);
        if (en)
            enc->end = en;
        if (!ids || !ty || !am || !sq || !st || !en)
            return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu tokens", ncap);
        enc->cap = ncap;
    }
    size_t i = enc->n++;
    enc->ids[i] = id;
    enc->type_ids[i] = type_id;
    enc->attention_mask[i] = 1;
    enc->seq[i] = seq;
    enc->start[i] = start;
    enc->end[i] = end;
    enc->n_untruncated = enc->n;
    return RG_OK;
}

void encoding_free(rg_encoding *enc)
{
    if (!enc)
        return;
    free(enc->ids);
    free(enc->type_ids);
    free(enc->attention_mask);
    free(enc->seq);
    free(enc->start);
    free(enc->end);
    memset(enc, 0, sizeof *enc);
}

rg_status tokenizer_tokenize(const rg_tokenizer *t, const char *text, size_t len, rg_encoding *out, rg_err *e)
{
    out->n = 0;
    out->n_untruncated = 0;
    run_state s;
    memset(&s, 0, sizeof s);
    s.enc = out;
    return run(t, text, len, &s, e);
}

rg_status tokenizer_encode(const rg_tokenizer *t, const char *text, size_t len, int32_t *ids, size_t max_ids,
                           size_t *n_ids, rg_err *e)
{
    run_state s;
    memset(&s, 0, sizeof s);
    s.ids = ids;
    s.max_ids = ids ? max_ids : 0;
    rg_status st = run(t, text, len, &s, e);
    *n_ids = st ? 0 : s.count;
    return st;
}

size_t tokenizer_count(const rg_tokenizer *t, const char *text, size_t len)
{
    run_state s;
    memset(&s, 0, sizeof s);
    rg_err e;
    if (run(t, text, len, &s, &e))
        return len;
    return s.count;
}

size_t tokenizer_count_fn(const char *text, size_t len, void *ctx)
{
    return tokenizer_count((const rg_tokenizer *)ctx, text, len);
}

/* ---- templates and truncation ----------------------------------------- */

/* Keeps n tokens of enc from the side truncation does not touch. */
static void truncate_to(rg_encoding *enc, size_t n, rg_trunc_side side)
{
    if (enc->n <= n)
        return;
    if (side == RG_TRUNC_START) {
        size_t off = enc->n - n;
        memmove(enc->ids, enc->ids + off, n * sizeof *enc->ids);
        memmove(enc->start, enc->start + off, n * sizeof *enc->start);
        memmove(enc->end, enc->end + off, n * sizeof *enc->end);
    }
    enc->n = n;
}

static rg_status apply_template(const rg_tokenizer *t, const wp_template *tpl, rg_encoding *a, rg_encoding *b,
                                rg_encoding *out, rg_err *e)
{
    out->n = 0;
    for (size_t i = 0; i < tpl->n; i++) {
        const wp_tpl_item *it = &tpl->items[i];
        rg_status st = RG_OK;
        if (it->seq < 0) {
            for (size_t k = 0; k < it->n_ids && !st; k++)
                st = wp_encoding_push(out, it->ids[k], it->type_id, -1, 0, 0, e);
        } else {
            rg_encoding *src = it->seq == 0 ? a : b;
            for (size_t k = 0; src && k < src->n && !st; k++)
                st = wp_encoding_push(out, src->ids[k], it->type_id, (int8_t)it->seq, src->start[k], src->end[k], e);
        }
        if (st)
            return st;
    }
    (void)t;
    return RG_OK;
}

rg_status tokenizer_encode_single(const rg_tokenizer *t, const char *text, size_t len, size_t max_len,
                                  rg_trunc_side side, rg_encoding *out, rg_err *e)
{
    size_t added = t->single.n_special;
    if (max_len && max_len < added)
        return rg_error(e, RG_ERR_INVALID, "max length %zu is below the %zu special tokens", max_len, added);
    rg_encoding a;
    memset(&a, 0, sizeof a);
    rg_status st = tokenizer_tokenize(t, text, len, &a, e);
    if (!st) {
        size_t total = a.n + added;
        if (max_len && total > max_len)
            truncate_to(&a, max_len - added, side);
        st = apply_template(t, &t->single, &a, NULL, out, e);
        out->n_untruncated = total;
    }
    encoding_free(&a);
    return st;
}

rg_status tokenizer_encode_pair(const rg_tokenizer *t, const char *ta, size_t a_len, const char *tb, size_t b_len,
                                size_t max_len, rg_trunc_side side, rg_encoding *out, rg_err *e)
{
    size_t added = t->pair.n_special;
    if (max_len && max_len < added)
        return rg_error(e, RG_ERR_INVALID, "max length %zu is below the %zu special tokens", max_len, added);
    rg_encoding a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    rg_status st = tokenizer_tokenize(t, ta, a_len, &a, e);
    if (!st)
        st = tokenizer_tokenize(t, tb, b_len, &b, e);
    if (!st) {
        size_t total = a.n + b.n + added;
        if (max_len && total > max_len) {
            /* Hugging Face's LongestFirst (utils/truncation.rs) */
            size_t m = max_len - added;
            size_t n1 = a.n, n2 = b.n;
            int swap = 0;
            if (n1 > n2) {
                size_t x = n1;
                n1 = n2;
                n2 = x;
                swap = 1;
            }
            if (n1 > m)
                n2 = n1;
            else
                n2 = n1 > m - n1 ? n1 : m - n1;
            if (n1 + n2 > m) {
                n1 = m / 2;
                n2 = n1 + m % 2;
            }
            if (swap) {
                size_t x = n1;
                n1 = n2;
                n2 = x;
            }
            truncate_to(&a, n1, side);
            truncate_to(&b, n2, side);
        }
        st = apply_template(t, &t->pair, &a, &b, out, e);
        out->n_untruncated = total;
    }
    encoding_free(&a);
    encoding_free(&b);
    return st;
}
