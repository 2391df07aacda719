/* bpe.c - BPE encoding (byte-level and SentencePiece), the tokenizer's
 * construction helpers and accessors. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "model/bpe_impl.h"

#define EMPTY_KEY UINT64_MAX

/* ---- construction ---------------------------------------------------------- */

rg_status bpe_alloc(rg_bpe_kind kind, size_t n_ids, rg_bpe **out, rg_err *e)
{
    *out = NULL;
    if (n_ids == 0 || n_ids > (size_t)RG_VOCAB_MAX_ID)
        return rg_error(e, RG_ERR_CORRUPT, "vocabulary size %zu is out of range (1..%d)", n_ids, RG_VOCAB_MAX_ID);
    rg_bpe *t = calloc(1, sizeof *t);
    if (!t)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a tokenizer");
    t->kind = kind;
    t->n_ids = n_ids;
    t->bos = t->eos = t->eot = t->pad = t->unk = -1;
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    t->special = calloc(n_ids, 1);
    rg_status st = t->special ? vocab_new(n_ids, &t->vocab, e) : rg_error(e, RG_ERR_NOMEM, "out of memory");
    if (st) {
        bpe_free(t);
        return st;
    }
    *out = t;
    return RG_OK;
}

void bpe_free(rg_bpe *t)
{
    if (!t)
        return;
    vocab_free(t->vocab);
    free(t->merges);
    free(t->scores);
    free(t->special);
    for (size_t i = 0; i < t->n_splits; i++)
        pcre2_code_free(t->splits[i]);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].text);
    free(t->added);
    free(t->chat_template);
    free(t->dec);
    free(t->dec_off);
    free(t);
}

static uint64_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

rg_status bpe_merges_reserve(rg_bpe *t, size_t n, rg_err *e)
{
    if (n > (size_t)RG_VOCAB_MAX_ID)
        return rg_error(e, RG_ERR_CORRUPT, "%zu merges is more than any vocabulary needs", n);
    size_t cap = 16;
    while (cap < 2 * n + 16)
        cap <<= 1;
    bpe_merge *m = malloc(cap * sizeof *m);
    if (!m)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for %zu merges", n);
    for (size_t i = 0; i < cap; i++)
        m[i].key = EMPTY_KEY;
    free(t->merges);
    t->merges = m;
    t->merges_cap = cap;
    t->n_merges = 0;
    return RG_OK;
}

static const bpe_merge *merge_find(const rg_bpe *t, int32_t left, int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t mask = t->merges_cap - 1;
    for (size_t i = hash64(key) & mask;; i = (i + 1) & mask) {
        if (t->merges[i].key == key)
            return &t->merges[i];
        if (t->merges[i].key == EMPTY_KEY)
            return NULL;
    }
}

rg_status bpe_add_merge(rg_bpe *t, const char *left, size_t left_len, const char *right, size_t right_len,
                        size_t index, rg_err *e)
{
    if (!t->merges || 2 * (t->n_merges + 1) > t->merges_cap)
        return rg_error(e, RG_ERR_INTERNAL, "merge table not reserved");
    int32_t a = vocab_get(t->vocab, left, left_len), b = vocab_get(t->vocab, right, right_len);
    if (a < 0 || b < 0)
        return rg_error(e, RG_ERR_CORRUPT, "merge %zu: \"%.*s\" is not in the vocabulary", index,
                        (int)(a < 0 ? (left_len > 64 ? 64 : left_len) : (right_len > 64 ? 64 : right_len)),
                        a < 0 ? left : right);
    if (left_len + right_len > RG_VOCAB_MAX_KEY)
        return rg_error(e, RG_ERR_CORRUPT, "merge %zu: merged token is too long", index);
    char buf[RG_VOCAB_MAX_KEY];
    memcpy(buf, left, left_len);
    memcpy(buf + left_len, right, right_len);
    int32_t m = vocab_get(t->vocab, buf, left_len + right_len);
    if (m < 0)
        return rg_error(e, RG_ERR_CORRUPT, "merge %zu: \"%.*s\" is not in the vocabulary", index,
                        (int)(left_len + right_len > 64 ? 64 : left_len + right_len), buf);
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = t->merges_cap - 1;
    for (size_t i = hash64(key) & mask;; i = (i + 1) & mask) {
        if (t->merges[i].key == key)
            return RG_OK; /* a repeated merge keeps its first (best) rank, as the library does */
        if (t->merges[i].key == EMPTY_KEY) {
            t->merges[i].key = key;
            t->merges[i].merged = m;
            t->merges[i].rank = (int32_t)index;
            t->n_merges++;
            return RG_OK;
        }
    }
}

rg_status bpe_add_added(rg_bpe *t, const char *text, size_t len, int32_t id, int special, int lstrip, int rstrip,
                        rg_err *e)
{
    if (len == 0)
        return rg_error(e, RG_ERR_CORRUPT, "added token %d is empty", id);
    if (id < 0 || (size_t)id >= t->n_ids)
        return rg_error(e, RG_ERR_CORRUPT, "added token id %d is out of range", id);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id || (t->added[i].len == len && !memcmp(t->added[i].text, text, len))) {
            t->added[i].special |= (uint8_t)(special != 0);
            t->special[id] |= (uint8_t)(special != 0);
            return RG_OK;
        }
    if ((t->n_added & (t->n_added + 1)) == 0 || t->n_added == 0) {
        size_t cap = t->n_added ? 2 * (t->n_added + 1) : 8;
        bpe_added *a = realloc(t->added, cap * sizeof *a);
        if (!a)
            return rg_error(e, RG_ERR_NOMEM, "out of memory for added tokens");
        t->added = a;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for added tokens");
    memcpy(copy, text, len);
    copy[len] = 0;
    t->added[t->n_added++] = (bpe_added){copy, len, id, (uint8_t)(special != 0), (uint8_t)(lstrip != 0),
                                         (uint8_t)(rstrip != 0)};
    if (special)
        t->special[id] = 1;
    return RG_OK;
}

static int added_cmp(const void *a, const void *b)
{
    const bpe_added *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);
    return c ? c : (x->len < y->len ? -1 : x->len > y->len);
}

/* The bytes token id stands for in decoded text, appended to b. */
static rg_status token_decoded(const rg_bpe *t, int32_t id, rg_buf *b, rg_err *e)
{
    size_t len;
    const char *s = vocab_token(t->vocab, id, &len);
    if (!s)
        return RG_OK;
    int added = 0;
    for (size_t i = 0; i < t->n_added && !added; i++)
        added = t->added[i].id == id;
    /* byte-level: added tokens are their own text. SentencePiece: the
     * library's decoders (Replace or Metaspace) turn U+2581 into a space in
     * added tokens too ("▁<PRE>" decodes to " <PRE>"). */
    if (added && t->kind == RG_BPE_BYTE_LEVEL)
        return rg_buf_append(b, s, len, e);
    if (t->kind == RG_BPE_BYTE_LEVEL) {
        /* every character back to its byte; a token with a character outside
         * the alphabet stands for its own UTF-8 (the library's fallback) */
        size_t start = b->len, i = 0;
        while (i < len) {
            uint32_t cp;
            size_t bad, n = bpe_utf8_next((const unsigned char *)s + i, len - i, &cp, &bad);
            int byte = n ? bpe_spelled_byte(cp) : -1;
            if (byte < 0) {
                b->len = start;
                return rg_buf_append(b, s, len, e);
            }
            rg_status st = rg_buf_append_char(b, (char)byte, e);
            if (st)
                return st;
            i += n;
        }
        return RG_OK;
    }
    unsigned hex;
    char tail;
    if (len == 6 && sscanf(s, "<0x%2X%c", &hex, &tail) == 2 && tail == '>')
        return rg_buf_append_char(b, (char)hex, e);
    /* U+2581 (E2 96 81) is a space */
    for (size_t i = 0; i < len;) {
        rg_status st;
        if (i + 3 <= len && !memcmp(s + i, "\xE2\x96\x81", 3)) {
            st = rg_buf_append_char(b, ' ', e);
            i += 3;
        } else {
            st = rg_buf_append_char(b, s[i], e);
            i++;
        }
        if (st)
            return st;
    }
    return RG_OK;
}

rg_status bpe_finish(rg_bpe *t, rg_err *e)
{
    if (t->n_added) /* qsort's array may not be NULL, even empty */
        qsort(t->added, t->n_added, sizeof *t->added, added_cmp);
    /* byte tokens */
    for (unsigned b = 0; b < 256; b++) {
        char s[8];
        size_t n;
        if (t->kind == RG_BPE_BYTE_LEVEL) {
            n = bpe_byte_spelling(b, s);
        } else {
            snprintf(s, sizeof s, "<0x%02X>", b);
            n = 6;
        }
        t->byte_id[b] = vocab_get(t->vocab, s, n);
    }
    int32_t *ids[] = {&t->bos, &t->eos, &t->eot, &t->pad, &t->unk};
    static const char *const names[] = {"bos", "eos", "eot", "padding", "unknown"};
    for (size_t i = 0; i < 5; i++)
        if (*ids[i] >= 0 && ((size_t)*ids[i] >= t->n_ids || !vocab_token(t->vocab, *ids[i], NULL)))
            return rg_error(e, RG_ERR_CORRUPT, "%s token id %d is not in the vocabulary", names[i], *ids[i]);
    if (t->eot < 0) {
        /* the chat families' end-of-turn markers; else the EOS */
        static const char *const eot_names[] = {"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"};
        for (size_t i = 0; i < 4 && t->eot < 0; i++)
            t->eot = vocab_get(t->vocab, eot_names[i], strlen(eot_names[i]));
        if (t->eot < 0)
            t->eot = t->eos;
    }
    /* decode table */
    t->dec_off = malloc((t->n_ids + 1) * sizeof *t->dec_off);
    if (!t->dec_off)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for the decode table");
    rg_buf b;
    rg_buf_init(&b, (size_t)UINT32_MAX);
    for (size_t id = 0; id < t->n_ids; id++) {
        t->dec_off[id] = (uint32_t)b.len;
        rg_status st = token_decoded(t, (int32_t)id, &b, e);
        if (st) {
            rg_buf_free(&b);
            return st;
        }
    }
    t->dec_off[t->n_ids] = (uint32_t)b.len;
    t->dec = b.data ? rg_buf_take(&b) : calloc(1, 1);
    if (!t->dec)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for the decode table");
    return RG_OK;
}

/* ---- accessors ------------------------------------------------------------- */

rg_bpe_kind bpe_kind(const rg_bpe *t) { return t->kind; }
size_t bpe_vocab_size(const rg_bpe *t) { return t->n_ids; }
int32_t bpe_bos_id(const rg_bpe *t) { return t->bos; }
int32_t bpe_eos_id(const rg_bpe *t) { return t->eos; }
int32_t bpe_eot_id(const rg_bpe *t) { return t->eot; }
int32_t bpe_pad_id(const rg_bpe *t) { return t->pad; }
int32_t bpe_unk_id(const rg_bpe *t) { return t->unk; }
const char *bpe_chat_template(const rg_bpe *t) { return t->chat_template; }
const char *bpe_pre_name(const rg_bpe *t) { return t->pre_name; }

int bpe_adds_bos(const rg_bpe *t)
{
    return t->n_prefix > 0 && t->prefix[0] == t->bos && t->bos >= 0;
}

int bpe_adds_eos(const rg_bpe *t)
{
    return t->n_suffix > 0 && t->suffix[t->n_suffix - 1] == t->eos && t->eos >= 0;
}

const char *bpe_token_piece(const rg_bpe *t, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= t->n_ids)
        return NULL;
    return vocab_token(t->vocab, id, len);
}

int32_t bpe_piece_id(const rg_bpe *t, const char *piece, size_t len)
{
    return vocab_get(t->vocab, piece, len);
}

const char *bpe_token_bytes(const rg_bpe *t, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= t->n_ids || !vocab_token(t->vocab, id, NULL))
        return NULL;
    *len = t->dec_off[id + 1] - t->dec_off[id];
    return t->dec + t->dec_off[id];
}

int bpe_is_special(const rg_bpe *t, int32_t id)
{
    return id >= 0 && (size_t)id < t->n_ids && t->special[id];
}

rg_status bpe_ids_push(rg_bpe_ids *ids, int32_t id, rg_err *e)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 64;
        int32_t *p = realloc(ids->ids, cap * sizeof *p);
        if (!p)
            return rg_error(e, RG_ERR_NOMEM, "out of memory for token ids");
        ids->ids = p;
        ids->cap = cap;
    }
    ids->ids[ids->n++] = id;
    return RG_OK;
}

void bpe_ids_free(rg_bpe_ids *ids)
{
    free(ids->ids);
    memset(ids, 0, sizeof *ids);
}

/* ---- merging ----------------------------------------------------------------- */

typedef struct sym {
    int32_t id;         /* -1 once merged into its left neighbour */
    int32_t prev, next; /* -1 at the ends */
    uint32_t off, len;  /* its span of the word's spelling (score lookup) */
    int fixed;          /* a byte-fallback or unknown symbol: never merges */
} sym;

typedef struct cand {
    double key;     /* rank, or minus the score: lower merges first */
    int32_t left;   /* symbol index; ties go to the leftmost */
    int32_t right;
    int32_t left_id, right_id, merged;
} cand;

typedef struct work {
    const rg_bpe *t;
    rg_bpe_ids *out;
    pcre2_match_data *md;
    rg_buf word;   /* the piece in the vocabulary's spelling */
    rg_buf spelled; /* SentencePiece: the whole segment spelled, before any split */
    sym *syms;
    size_t syms_cap;
    cand *heap;
    size_t heap_n, heap_cap;
} work;

static int cand_less(const cand *a, const cand *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static rg_status heap_push(work *w, cand c, rg_err *e)
{
    if (w->heap_n == w->heap_cap) {
        size_t cap = w->heap_cap ? 2 * w->heap_cap : 64;
        cand *h = realloc(w->heap, cap * sizeof *h);
        if (!h)
            return rg_error(e, RG_ERR_NOMEM, "out of memory while merging");
        w->heap = h;
        w->heap_cap = cap;
    }
    size_t i = w->heap_n++;
    while (i > 0 && cand_less(&c, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = c;
    return RG_OK;
}

static cand heap_pop(work *w)
{
    cand top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *mc = &last;
        if (l < w->heap_n && cand_less(&w->heap[l], mc)) {
            m = l;
            mc = &w->heap[l];
        }
        if (r < w->heap_n && cand_less(&w->heap[r], mc))
            m = r;
        if (m == i)
            break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->heap_n)
        w->heap[i] = last;
    return top;
}

/* The merge of symbols a and b (adjacent), if the model has one. */
static rg_status try_pair(work *w, int32_t a, int32_t b, rg_err *e)
{
    if (a < 0 || b < 0)
        return RG_OK;
    const rg_bpe *t = w->t;
    const sym *sa = &w->syms[a], *sb = &w->syms[b];
    if (sa->fixed || sb->fixed)
        return RG_OK;
    cand c = {0, a, b, sa->id, sb->id, -1};
    if (t->merges_cap) {
        const bpe_merge *m = merge_find(t, sa->id, sb->id);
        if (!m)
            return RG_OK;
        c.key = m->rank;
        c.merged = m->merged;
    } else {
        /* SentencePiece by score: the concatenated piece must be a token */
        size_t n = (size_t)sa->len + sb->len;
        if (n > RG_VOCAB_MAX_KEY)
            return RG_OK;
        int32_t m = vocab_get(t->vocab, w->word.data + sa->off, n);
        if (m < 0)
            return RG_OK;
        c.key = -(double)t->scores[m];
        c.merged = m;
    }
    return heap_push(w, c, e);
}

static rg_status emit(work *w, int32_t id, rg_err *e)
{
    return bpe_ids_push(w->out, id, e);
}

/* An unknown character at word offset off: its byte tokens, or <unk>
 * (fused with a preceding one when asked). */
static void add_unknown(work *w, size_t *n, size_t off, size_t len)
{
    const rg_bpe *t = w->t;
    const unsigned char *s = (const unsigned char *)w->word.data + off;
    int all = t->byte_fallback;
    for (size_t i = 0; all && i < len; i++)
        all = t->byte_id[s[i]] >= 0;
    if (all) {
        for (size_t i = 0; i < len; i++)
            w->syms[(*n)++] = (sym){t->byte_id[s[i]], 0, 0, (uint32_t)(off + i), 1, 1};
        return;
    }
    if (t->unk < 0 || t->drop_unknown)
        return; /* no unknown token: the character is dropped, as in the library */
    if (t->fuse_unk && *n > 0 && w->syms[*n - 1].id == t->unk && w->syms[*n - 1].fixed)
        return;
    w->syms[(*n)++] = (sym){t->unk, 0, 0, (uint32_t)off, (uint32_t)len, 1};
}

/* BPE over w->word (already spelled). */
static rg_status merge_word(work *w, rg_err *e)
{
    const rg_bpe *t = w->t;
    const char *s = w->word.data;
    size_t len = w->word.len;
    if (len == 0)
        return RG_OK;
    if (t->ignore_merges) {
        int32_t id = len <= RG_VOCAB_MAX_KEY ? vocab_get(t->vocab, s, len) : -1;
        if (id >= 0)
            return emit(w, id, e);
    }
    /* at most one symbol per byte (a byte-fallback character gives one per byte) */
    if (len > w->syms_cap) {
        sym *p = realloc(w->syms, len * sizeof *p);
        if (!p)
            return rg_error(e, RG_ERR_NOMEM, "out of memory while merging");
        w->syms = p;
        w->syms_cap = len;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t bad, cl = bpe_utf8_next((const unsigned char *)s + i, len - i, &cp, &bad);
        if (!cl)
            cl = bad; /* cannot happen: the input was made valid */
        int32_t id = vocab_get(t->vocab, s + i, cl);
        if (id >= 0)
            w->syms[n++] = (sym){id, 0, 0, (uint32_t)i, (uint32_t)cl, 0};
        else
            add_unknown(w, &n, i, cl);
        i += cl;
    }
    for (size_t k = 0; k < n; k++) {
        w->syms[k].prev = (int32_t)k - 1;
        w->syms[k].next = k + 1 < n ? (int32_t)k + 1 : -1;
    }
    w->heap_n = 0;
    for (size_t k = 0; k + 1 < n; k++) {
        rg_status st = try_pair(w, (int32_t)k, (int32_t)k + 1, e);
        if (st)
            return st;
    }
    while (w->heap_n) {
        cand c = heap_pop(w);
        sym *a = &w->syms[c.left];
        /* stale: either side has changed since the candidate was made */
        if (a->id != c.left_id || a->next != c.right || w->syms[c.right].id != c.right_id)
            continue;
        sym *b = &w->syms[c.right];
        a->id = c.merged;
        a->len += b->len;
        a->next = b->next;
        if (b->next >= 0)
            w->syms[b->next].prev = c.left;
        b->id = -1;
        b->prev = b->next = -1;
        rg_status st = try_pair(w, a->prev, c.left, e);
        if (!st)
            st = try_pair(w, c.left, a->next, e);
        if (st)
            return st;
    }
    for (int32_t k = n ? 0 : -1; k >= 0; k = w->syms[k].next) {
        rg_status st = emit(w, w->syms[k].id, e);
        if (st)
            return st;
    }
    return RG_OK;
}

/* A byte-level piece: spell its bytes, then merge. */
static rg_status byte_level_piece(const char *piece, size_t len, void *ctx, rg_err *e)
{
    work *w = ctx;
    rg_buf_reset(&w->word);
    rg_status st = rg_buf_reserve(&w->word, 2 * len, e);
    if (st)
        return st;
    for (size_t i = 0; i < len; i++) {
        char sp[2];
        size_t n = bpe_byte_spelling((unsigned char)piece[i], sp);
        memcpy(w->word.data + w->word.len, sp, n);
        w->word.len += n;
    }
    w->word.data[w->word.len] = 0;
    return merge_word(w, e);
}

/* NFC of s into *out (malloc'ed), for tokenizers that normalize so. */
static rg_status nfc(const char *s, size_t len, char **out, size_t *out_len, rg_err *e)
{
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &r,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0)
        return rg_error(e, RG_ERR_INVALID, "NFC normalization failed: %s", utf8proc_errmsg(n));
    *out = (char *)r;
    *out_len = (size_t)n;
    return RG_OK;
}

/* U+2581, SentencePiece's spelling of a space. */
static const char META[] = "\xE2\x96\x81";

/* Whether s begins with what Metaspace spells as U+2581: a space, or the
 * character itself written in the text. */
static int begins_with_meta(const char *s, size_t len)
{
    return len && (s[0] == ' ' || (len >= 3 && !memcmp(s, META, 3)));
}

/* SentencePiece: the segment with spaces spelled U+2581 and the prefix in
 * front where the pipeline asks for it, merged as one word or, with a
 * splitting Metaspace, as one word per U+2581 (each starts a new word).
 * first: the segment starts the text (offset 0), what prepend_scheme
 * "first" looks at; a segment after an added token is not first. */
static rg_status spm_segment(work *w, const char *s, size_t len, int first, rg_err *e)
{
    const rg_bpe *t = w->t;
    int prefix = t->add_dummy_prefix; /* the legacy Prepend normalizer: always */
    if (t->metaspace)
        prefix = (t->meta_prepend == BPE_PREPEND_ALWAYS || (t->meta_prepend == BPE_PREPEND_FIRST && first)) &&
                 !begins_with_meta(s, len);
    rg_buf_reset(&w->spelled);
    rg_status st = rg_buf_reserve(&w->spelled, 3 * len + 3, e);
    if (st)
        return st;
    char *p = w->spelled.data;
    if (prefix) {
        memcpy(p, META, 3);
        p += 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') {
            memcpy(p, META, 3);
            p += 3;
        } else {
            *p++ = s[i];
        }
    }
    w->spelled.len = (size_t)(p - w->spelled.data);
    *p = 0;
    const char *sp = w->spelled.data;
    size_t n = w->spelled.len, start = 0;
    while (start < n) {
        size_t end = n;
        if (t->metaspace && t->meta_split)
            for (size_t k = start + 1; k + 3 <= n; k++)
                if (!memcmp(sp + k, META, 3)) {
                    end = k;
                    break;
                }
        rg_buf_reset(&w->word);
        if ((st = rg_buf_append(&w->word, sp + start, end - start, e)) || (st = merge_word(w, e)))
            return st;
        start = end;
    }
    return RG_OK;
}

/* One segment of text between added tokens; first as spm_segment's. */
static rg_status encode_segment(work *w, const char *s, size_t len, int first, rg_err *e)
{
    const rg_bpe *t = w->t;
    if (len == 0)
        return RG_OK;
    char *norm = NULL;
    rg_status st = RG_OK;
    if (t->nfc) {
        if ((st = nfc(s, len, &norm, &len, e)))
            return st;
        s = norm;
    }
    if (t->kind == RG_BPE_BYTE_LEVEL)
        st = bpe_pretokenize(t, w->md, s, len, byte_level_piece, w, e);
    else
        st = spm_segment(w, s, len, first, e);
    free(norm);
    return st;
}

/* The added token matching at s[0..len), longest first; NULL if none. */
static const bpe_added *added_at(const rg_bpe *t, const char *s, size_t len, int parse_special)
{
    /* binary search for the first token >= the byte at s, then scan the
     * tokens sharing that first byte, keeping the longest that matches */
    size_t lo = 0, hi = t->n_added;
    unsigned char c = (unsigned char)s[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((unsigned char)t->added[mid].text[0] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    const bpe_added *best = NULL;
    for (size_t i = lo; i < t->n_added && (unsigned char)t->added[i].text[0] == c; i++) {
        const bpe_added *a = &t->added[i];
        if (a->len <= len && (!best || a->len > best->len) && (parse_special || !a->special) &&
            !memcmp(a->text, s, a->len))
            best = a;
    }
    return best;
}

static int is_space_byte(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Splits text at added tokens and encodes the rest. */
static rg_status encode_text(work *w, const char *s, size_t len, int parse_special, rg_err *e)
{
    const rg_bpe *t = w->t;
    size_t seg = 0, i = 0;
    rg_status st;
    while (i < len) {
        const bpe_added *a = t->n_added ? added_at(t, s + i, len - i, parse_special) : NULL;
        if (!a) {
            i++;
            continue;
        }
        size_t end = i + a->len, start = i;
        if (a->lstrip)
            while (start > seg && is_space_byte((unsigned char)s[start - 1]))
                start--;
        if (a->rstrip)
            while (end < len && is_space_byte((unsigned char)s[end]))
                end++;
        if ((st = encode_segment(w, s + seg, start - seg, seg == 0, e)) || (st = emit(w, a->id, e)))
            return st;
        seg = i = end;
    }
    return encode_segment(w, s + seg, len - seg, seg == 0, e);
}

/* s with every invalid UTF-8 sequence replaced by U+FFFD (NUL kept). */
static rg_status make_valid(const char *s, size_t len, rg_buf *out, int *changed, rg_err *e)
{
    *changed = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t bad, n = bpe_utf8_next((const unsigned char *)s + i, len - i, &cp, &bad);
        if (n) {
            i += n;
            continue;
        }
        if (!*changed) {
            rg_buf_reset(out);
            rg_status st = rg_buf_append(out, s, i, e);
            if (st)
                return st;
        }
        *changed = 1;
        (void)bad;
        break;
    }
    if (!*changed)
        return RG_OK;
    rg_buf_reset(out);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t bad, n = bpe_utf8_next((const unsigned char *)s + i, len - i, &cp, &bad);
        rg_status st = n ? rg_buf_append(out, s + i, n, e) : rg_buf_append(out, "\xEF\xBF\xBD", 3, e);
        if (st)
            return st;
        i += n ? n : bad;
    }
    return RG_OK;
}

rg_status bpe_encode(const rg_bpe *t, const char *text, size_t len, unsigned flags, rg_bpe_ids *out, rg_err *e)
{
    if (len > RG_BPE_MAX_TEXT)
        return rg_error(e, RG_ERR_TOO_LARGE, "text of %zu bytes is over the tokenizer's limit of %zu", len,
                        RG_BPE_MAX_TEXT);
    if (!text && len)
        return rg_error(e, RG_ERR_INVALID, "no text");
    work w = {.t = t, .out = out};
    rg_buf valid;
    rg_buf_init(&valid, 0);
    rg_buf_init(&w.word, 0);
    rg_buf_init(&w.spelled, 0);
    size_t n0 = out->n;
    int changed = 0;
    rg_status st = make_valid(text ? text : "", len, &valid, &changed, e);
    if (!st && changed) {
        text = valid.data;
        len = valid.len;
    }
    if (!st && t->n_splits && !(w.md = pcre2_match_data_create(4, NULL)))
        st = rg_error(e, RG_ERR_NOMEM, "out of memory for regex matching");
    if (!st && (flags & RG_BPE_ADD_SPECIAL))
        for (size_t i = 0; i < t->n_prefix && !st; i++)
            st = emit(&w, t->prefix[i], e);
    if (!st)
        st = encode_text(&w, text, len, (flags & RG_BPE_PARSE_SPECIAL) != 0, e);
    if (!st && (flags & RG_BPE_ADD_SPECIAL))
        for (size_t i = 0; i < t->n_suffix && !st; i++)
            st = emit(&w, t->suffix[i], e);
    if (st)
        out->n = n0;
    pcre2_match_data_free(w.md);
    rg_buf_free(&valid);
    rg_buf_free(&w.word);
    rg_buf_free(&w.spelled);
    free(w.syms);
    free(w.heap);
    return st;
}
