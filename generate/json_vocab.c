/* json_vocab.c - JSON mode's token level: which vocabulary tokens may come
 * next, one at a time or all at once through a trie of their bytes. */
#include "generate/json_mode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct json_trie_node {
    uint32_t end;       /* one past the last node of this one's subtree */
    uint32_t tok_first; /* the tokens spelled exactly by the path here: ids[tok_first .. + n_tok) */
    uint32_t n_tok;
    uint8_t byte;       /* the byte from the parent */
    uint8_t text;       /* every token under it, from this byte on, is whole string text */
};

typedef struct spelled {
    const char *b;
    size_t n;
    int32_t id;
} spelled;

static int by_bytes(const void *x, const void *y)
{
    const spelled *a = x, *b = y;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->b, b->b, n);
    if (c)
        return c;
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* A token JSON mode may emit at all: text, not an end or a control token. */
static const char *plain_bytes(const rg_json_vocab *v, int32_t id, size_t *n)
{
    if (id == v->end[0] || id == v->end[1] || bpe_is_special(v->tok, id))
        return NULL;
    const char *b = bpe_token_bytes(v->tok, id, n);
    return b && *n ? b : NULL;
}

/* bytes, read from inside a free string, are whole characters of its text
 * and leave it open: true from inside any free string, whatever the schema
 * (without a '"' the string cannot end, and nothing else in it depends on
 * where it is). */
static int is_text(const rg_json_path *in_string, const char *bytes, size_t n)
{
    rg_json_path t = *in_string;
    return !memchr(bytes, '"', n) && json_path_feed(&t, bytes, n) && json_path_in_string(&t);
}

/* Lays the sorted tokens out as a trie, depth first: a token shares the
 * nodes of the prefix it has in common with the one before it. */
static void build_trie(rg_json_vocab *v, const spelled *s, size_t n)
{
    rg_json_prefix any; /* any free string's text */
    json_prefix_init(&any, NULL);
    json_prefix_feed(&any, "{\"\":\"", 5);
    const rg_json_path *in_string = &any.path[0];
    uint32_t path[JSON_TRIE_MAX_BYTES + 1]; /* path[d]: the node at depth d + 1 */
    size_t depth = 0;
    for (size_t i = 0; i < n; i++) {
        size_t common = 0;
        if (i) {
            size_t m = s[i - 1].n < s[i].n ? s[i - 1].n : s[i].n;
            while (common < m && s[i - 1].b[common] == s[i].b[common])
                common++;
        }
        while (depth > common)
            v->nodes[path[--depth]].end = (uint32_t)v->n_nodes;
        while (depth < s[i].n) {
            json_trie_node *nd = &v->nodes[v->n_nodes];
            *nd = (json_trie_node){.byte = (uint8_t)s[i].b[depth], .tok_first = (uint32_t)i, .text = 1};
            path[depth++] = (uint32_t)v->n_nodes++;
        }
        for (size_t k = 0; k < s[i].n; k++)
            if (v->nodes[path[k]].text && !is_text(in_string, s[i].b + k, s[i].n - k))
                v->nodes[path[k]].text = 0;
        v->ids[i] = s[i].id;
        v->nodes[path[depth - 1]].n_tok++; /* sorted: a token's equals follow it */
    }
    while (depth)
        v->nodes[path[--depth]].end = (uint32_t)v->n_nodes;
    v->n_ids = n;
}

/* The tokens under node i (its own and its subtree's): ids[first .. end). */
static void subtree_tokens(const rg_json_vocab *v, uint32_t i, uint32_t *first, uint32_t *end)
{
    *first = v->nodes[i].tok_first;
    *end = v->nodes[i].end < v->n_nodes ? v->nodes[v->nodes[i].end].tok_first : (uint32_t)v->n_ids;
}

rg_status json_vocab_init(rg_json_vocab *v, const rg_bpe *tok, size_t n_vocab, int32_t eos, int32_t eot, rg_err *e)
{
    *v = (rg_json_vocab){.tok = tok, .n_vocab = n_vocab, .end = {eos, eot}};
    if (v->n_vocab > UINT32_MAX / JSON_TRIE_MAX_BYTES)
        return rg_error(e, RG_ERR_INVALID, "a vocabulary of %zu tokens is too large for JSON mode", v->n_vocab);
    spelled *s = malloc((v->n_vocab ? v->n_vocab : 1) * sizeof *s);
    size_t n = 0, bytes = 0;
    if (!s)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for JSON mode's vocabulary");
    for (size_t id = 0; id < v->n_vocab; id++) {
        size_t len;
        const char *b = plain_bytes(v, (int32_t)id, &len);
        if (!b)
            continue;
        if (len > JSON_TRIE_MAX_BYTES) {
            v->n_long++;
            continue;
        }
        s[n++] = (spelled){b, len, (int32_t)id};
        bytes += len;
    }
    qsort(s, n, sizeof *s, by_bytes);
    v->nodes = malloc((bytes ? bytes : 1) * sizeof *v->nodes); /* at most a node a byte */
    v->ids = malloc((n ? n : 1) * sizeof *v->ids);
    v->long_ids = malloc((v->n_long ? v->n_long : 1) * sizeof *v->long_ids);
    if (!v->nodes || !v->ids || !v->long_ids) {
        free(s);
        json_vocab_free(v);
        return rg_error(e, RG_ERR_NOMEM, "out of memory for JSON mode's vocabulary");
    }
    build_trie(v, s, n);
    free(s);
    v->n_long = 0;
    for (size_t id = 0; id < v->n_vocab; id++) {
        size_t len;
        if (plain_bytes(v, (int32_t)id, &len) && len > JSON_TRIE_MAX_BYTES)
            v->long_ids[v->n_long++] = (int32_t)id;
    }
    /* the trie is a tenth of the spelled bytes or so: give the rest back */
    json_trie_node *fit = realloc(v->nodes, (v->n_nodes ? v->n_nodes : 1) * sizeof *v->nodes);
    if (fit)
        v->nodes = fit;
    return RG_OK;
}

void json_vocab_free(rg_json_vocab *v)
{
    free(v->nodes);
    free(v->ids);
    free(v->long_ids);
    v->nodes = NULL;
    v->ids = v->long_ids = NULL;
    v->n_nodes = v->n_ids = v->n_long = 0;
}

int json_token_allowed(const rg_json_vocab *v, const rg_json_prefix *p, int32_t id)
{
    if (id < 0 || (size_t)id >= v->n_vocab)
        return 0;
    if (id == v->end[0] || id == v->end[1])
        return json_prefix_done(p);
    size_t n;
    const char *b = plain_bytes(v, id, &n);
    if (!b)
        return 0;
    return json_prefix_accepts(p, b, n);
}

/* The allowed tokens are marked in a bitmap that lives in the first bytes
 * of the masked row (a row of floats holds 32 tokens' bits per float), so
 * the walk's scattered marks stay in L1 instead of scattering logits over
 * the row, and one pass fills the row from it top down: masked[i] takes
 * bytes 4i..4i+3, bits of tokens 32i.. and up, all done by then, and token
 * i's bit, at byte i / 8, is read before anything below 4i is written. */
static size_t mark(unsigned char *bits, int32_t id)
{
    unsigned char m = (unsigned char)(1u << (id & 7));
    if (bits[id >> 3] & m)
        return 0;
    bits[id >> 3] |= m;
    return 1;
}

static void fill_from_bits(const float *logits, float *masked, size_t n)
{
    const unsigned char *bits = (const unsigned char *)masked;
    for (size_t i = n; i-- > 0;) {
        int on = bits[i >> 3] >> (i & 7) & 1;
        masked[i] = on ? logits[i] : -INFINITY;
    }
}

/* The tokens under node i, each fed to a copy of the whole prefix p, every
 * alternative of the unions they start followed and cut as feeding them
 * would cut them. */
typedef struct forked {
    uint32_t node[JSON_MODE_MAX_PATHS]; /* subtrees already tried on the whole prefix */
    size_t n;
} forked;

static size_t mark_subtree_alone(const rg_json_vocab *v, const rg_json_prefix *p, uint32_t i, unsigned char *bits,
                                 forked *done)
{
    for (size_t k = 0; k < done->n; k++)
        if (done->node[k] == i)
            return 0; /* another path forked at this node: the same test on the same prefix */
    if (done->n < JSON_MODE_MAX_PATHS)
        done->node[done->n++] = i;
    uint32_t first, end;
    size_t allowed = 0;
    subtree_tokens(v, i, &first, &end);
    for (uint32_t k = first; k < end; k++) {
        size_t n;
        const char *b = bpe_token_bytes(v->tok, v->ids[k], &n);
        if (json_prefix_accepts(p, b, n))
            allowed += mark(bits, v->ids[k]);
    }
    return allowed;
}

/* Walks the trie depth first from path p, one recognizer state per depth:
 * a byte that cannot come ends its whole subtree (between values, all but
 * a few dozen of the first bytes); inside a string, a subtree whose tokens
 * are whole text from there on is taken whole, and a byte that leaves the
 * state as it was shares its parent's state instead of copying it; a byte
 * that starts a union value several alternatives may start with has its
 * subtree's tokens tried one by one on the whole prefix. Without a fork a
 * token keeps one path per path, so no cut applies and a token one path
 * takes is one the whole prefix takes. */
static size_t walk(const rg_json_vocab *v, const rg_json_prefix *whole, const rg_json_path *p, unsigned char *bits,
                   forked *done)
{
    rg_json_path st[JSON_TRIE_MAX_BYTES + 1];
    const rg_json_path *at[JSON_TRIE_MAX_BYTES + 1]; /* the state after depth d's bytes */
    uint32_t end_at[JSON_TRIE_MAX_BYTES + 1];
    size_t d = 0, allowed = 0;
    at[0] = p;
    end_at[0] = (uint32_t)v->n_nodes;
    for (uint32_t i = 0; i < v->n_nodes;) {
        while (i >= end_at[d])
            d--;
        const json_trie_node *nd = &v->nodes[i];
        if (nd->text && json_path_in_string(at[d])) {
            uint32_t first, end;
            subtree_tokens(v, i, &first, &end);
            for (uint32_t k = first; k < end; k++)
                allowed += mark(bits, v->ids[k]);
            i = nd->end;
            continue;
        }
        if (json_path_keeps(at[d], nd->byte)) {
            at[d + 1] = at[d];
        } else {
            st[d + 1] = *at[d];
            char c = (char)nd->byte;
            int ok = json_path_feed(&st[d + 1], &c, 1);
            if (st[d + 1].more) {
                allowed += mark_subtree_alone(v, whole, i, bits, done);
                i = nd->end;
                continue;
            }
            if (!ok) {
                i = nd->end;
                continue;
            }
            at[d + 1] = &st[d + 1];
        }
        for (uint32_t k = 0; k < nd->n_tok; k++)
            allowed += mark(bits, v->ids[nd->tok_first + k]);
        end_at[++d] = nd->end;
        i++;
    }
    return allowed;
}

size_t json_mask_logits(const rg_json_vocab *v, const rg_json_prefix *p, const float *logits, float *masked)
{
    unsigned char *bits = (unsigned char *)masked;
    memset(bits, 0, (v->n_vocab + 7) / 8);
    size_t allowed = 0;
    if (json_prefix_done(p)) { /* nothing but an end follows a closed object */
        for (int k = 0; k < 2; k++)
            if (v->end[k] >= 0 && (size_t)v->end[k] < v->n_vocab)
                allowed += mark(bits, v->end[k]);
    } else {
        forked done = {.n = 0};
        for (uint8_t k = 0; k < p->n; k++)
            allowed += walk(v, p, &p->path[k], bits, &done);
        for (size_t k = 0; k < v->n_long; k++)
            if (json_token_allowed(v, p, v->long_ids[k]))
                allowed += mark(bits, v->long_ids[k]);
    }
    fill_from_bits(logits, masked, v->n_vocab);
    return allowed;
}
