/* vocab.c - open-addressing (linear probing) hash table of byte strings. */
#include "model/vocab.h"

#include <stdlib.h>
#include <string.h>

typedef struct vocab_slot {
    uint64_t hash;   /* 0 = empty */
    uint32_t key;    /* offset of the key in the arena */
    uint32_t len;
    int32_t id;
} vocab_slot;

struct rg_vocab {
    vocab_slot *slots;
    size_t cap; /* power of two */
    size_t n;
    char *arena; /* keys, each followed by a NUL */
    size_t arena_len, arena_cap;
    int64_t *by_id; /* id -> (offset << 32 | len), -1 if none */
    int32_t id_cap, id_limit;
    size_t max_key;
};

static uint64_t vocab_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    return h ? h : 1;
}

rg_status vocab_new(size_t expected, rg_vocab **out, rg_err *e)
{
    *out = NULL;
    rg_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a vocabulary");
    size_t cap = 64;
    while (cap < expected * 2 && cap < ((size_t)1 << 30))
        cap <<= 1;
    v->slots = calloc(cap, sizeof *v->slots);
    if (!v->slots) {
        free(v);
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a vocabulary");
    }
    v->cap = cap;
    *out = v;
    return RG_OK;
}

void vocab_free(rg_vocab *v)
{
    if (!v)
        return;
    free(v->slots);
    free(v->arena);
    free(v->by_id);
    free(v);
}

static vocab_slot *vocab_find(const rg_vocab *v, const char *key, size_t len, uint64_t h)
{
    size_t mask = v->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        vocab_slot *s = &v->slots[i];
        if (s->hash == 0)
            return s;
        if (s->hash == h && s->len == len && memcmp(v->arena + s->key, key, len) == 0)
            return s;
    }
}

static rg_status vocab_grow(rg_vocab *v, rg_err *e)
{
    size_t ncap = v->cap * 2;
    vocab_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a vocabulary");
    for (size_t i = 0; i < v->cap; i++) {
        vocab_slot *s = &v->slots[i];
        if (!s->hash)
            continue;
        size_t j = (size_t)s->hash & (ncap - 1);
        while (ns[j].hash)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(v->slots);
    v->slots = ns;
    v->cap = ncap;
    return RG_OK;
}

rg_status vocab_put(rg_vocab *v, const char *key, size_t len, int32_t id, rg_err *e)
{
    if (id < 0 || id >= RG_VOCAB_MAX_ID)
        return rg_error(e, RG_ERR_INVALID, "token id %ld out of range", (long)id);
    if (len > RG_VOCAB_MAX_KEY)
        return rg_error(e, RG_ERR_INVALID, "token of %zu bytes is too long", len);
    if ((v->n + 1) * 4 > v->cap * 3) {
        rg_status st = vocab_grow(v, e);
        if (st)
            return st;
    }
    uint64_t h = vocab_hash(key, len);
    vocab_slot *s = vocab_find(v, key, len, h);
    if (!s->hash) {
        if (v->arena_len + len + 1 > UINT32_MAX)
            return rg_error(e, RG_ERR_TOO_LARGE, "vocabulary too large");
        if (v->arena_len + len + 1 > v->arena_cap) {
            size_t ncap = v->arena_cap ? v->arena_cap * 2 : 4096;
            while (ncap < v->arena_len + len + 1)
                ncap *= 2;
            char *na = realloc(v->arena, ncap);
            if (!na)
                return rg_error(e, RG_ERR_NOMEM, "out of memory for a vocabulary");
            v->arena = na;
            v->arena_cap = ncap;
        }
        memcpy(v->arena + v->arena_len, key, len);
        v->arena[v->arena_len + len] = '\0';
        s->hash = h;
        s->key = (uint32_t)v->arena_len;
        s->len = (uint32_t)len;
        v->arena_len += len + 1;
        v->n++;
        if (len > v->max_key)
            v->max_key = len;
    }
    else if (s->id != id && v->by_id[s->id] == (((int64_t)s->key << 32) | s->len))
        v->by_id[s->id] = -1; /* the old id loses its token */
    s->id = id;
    if (id >= v->id_cap) {
        int32_t ncap = v->id_cap ? v->id_cap : 1024;
        while (ncap <= id)
            ncap = ncap > RG_VOCAB_MAX_ID / 2 ? RG_VOCAB_MAX_ID : ncap * 2;
        int64_t *nb = realloc(v->by_id, (size_t)ncap * sizeof *nb);
        if (!nb)
            return rg_error(e, RG_ERR_NOMEM, "out of memory for a vocabulary");
        for (int32_t i = v->id_cap; i < ncap; i++)
            nb[i] = -1;
        v->by_id = nb;
        v->id_cap = ncap;
    }
    v->by_id[id] = ((int64_t)s->key << 32) | s->len;
    if (id >= v->id_limit)
        v->id_limit = id + 1;
    return RG_OK;
}

int32_t vocab_get(const rg_vocab *v, const char *key, size_t len)
{
    if (len > v->max_key)
        return -1;
    const vocab_slot *s = vocab_find(v, key, len, vocab_hash(key, len));
    return s->hash ? s->id : -1;
}

size_t vocab_size(const rg_vocab *v) { return v->n; }
int32_t vocab_id_limit(const rg_vocab *v) { return v->id_limit; }
size_t vocab_max_key_len(const rg_vocab *v) { return v->max_key; }

const char *vocab_token(const rg_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || id >= v->id_limit || v->by_id[id] < 0)
        return NULL;
    int64_t x = v->by_id[id];
    if (len)
        *len = (size_t)(x & 0xffffffff);
    return v->arena + (x >> 32);
}
