/* tokenizer_impl.h - the inside of rg_tokenizer, shared by wordpiece.c (the
 * tokenizer) and tokenizer_load.c (its loaders). Not for other floors. */
#ifndef RAGD_MODEL_TOKENIZER_IMPL_H
#define RAGD_MODEL_TOKENIZER_IMPL_H

#include "model/tokenizer.h"
#include "model/vocab.h"

/* A token cut out of the raw text before normalization. */
typedef struct wp_added {
    char *text;
    size_t len;
    int32_t id;
} wp_added;

/* One item of a post-processing template. */
typedef struct wp_tpl_item {
    int seq;        /* -1: special token ids, 0: sequence A, 1: sequence B */
    int32_t *ids;   /* the special token's ids */
    size_t n_ids;
    int32_t type_id;
} wp_tpl_item;

typedef struct wp_template {
    wp_tpl_item *items;
    size_t n;
    size_t n_special; /* ids the template adds */
} wp_template;

struct rg_tokenizer {
    rg_vocab *vocab;
    size_t max_key; /* longest vocabulary entry, bytes */
    int clean_text, chinese, strip_accents, lowercase;
    int32_t unk_id, cls_id, sep_id, pad_id;
    char *prefix; /* continuing-subword prefix */
    size_t prefix_len;
    size_t max_chars; /* max_input_chars_per_word */
    wp_added *added;  /* sorted longest first */
    size_t n_added;
    unsigned char added_first[32]; /* bitmap of the added tokens' first bytes */
    wp_template single, pair;
};

/* Ceiling on max_input_chars_per_word (bounds the per-call word buffers). */
#define WP_MAX_CHARS_LIMIT 100000

rg_status wp_encoding_push(rg_encoding *enc, int32_t id, int32_t type_id, int8_t seq, size_t start, size_t end,
                           rg_err *e);

/* Builds the character class tables (idempotent, thread-safe). */
void wp_tables_init(void);
/* The class bits of a code point (for tests and tools). */
unsigned wp_char_class(uint32_t c);

#endif
