/* vocab.h - a token vocabulary: string -> id through an open-addressing hash
 * table, and id -> string. Keys are byte strings (not NUL-terminated). */
#ifndef RAGD_MODEL_VOCAB_H
#define RAGD_MODEL_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Ids are dense in practice; anything this large is refused so that a
 * hostile model file cannot make us allocate a huge id table. */
#define RG_VOCAB_MAX_ID ((int32_t)(1 << 24))
/* Longest token accepted (bytes). */
#define RG_VOCAB_MAX_KEY 1024

typedef struct rg_vocab rg_vocab;

/* An empty vocabulary sized for about `expected` entries. */
rg_status vocab_new(size_t expected, rg_vocab **out, rg_err *e);
void vocab_free(rg_vocab *v);

/* Maps key to id; an existing key is remapped (the last mapping wins, as in
 * Hugging Face's vocab.txt loading). RG_ERR_INVALID for an id outside
 * [0, RG_VOCAB_MAX_ID) or a key longer than RG_VOCAB_MAX_KEY. */
rg_status vocab_put(rg_vocab *v, const char *key, size_t len, int32_t id, rg_err *e);

/* The id of key, or -1. */
int32_t vocab_get(const rg_vocab *v, const char *key, size_t len);

/* Number of distinct keys. */
size_t vocab_size(const rg_vocab *v);
/* One past the largest id mapped. */
int32_t vocab_id_limit(const rg_vocab *v);
/* Length in bytes of the longest key. */
size_t vocab_max_key_len(const rg_vocab *v);

/* The key mapped to id (NUL-terminated, *len its length when len is not
 * NULL), or NULL when no key has that id. When several keys share an id the
 * last one put wins. */
const char *vocab_token(const rg_vocab *v, int32_t id, size_t *len);

#endif
