/* tokenizer.h - BERT WordPiece tokenization, token for token the same as
 * Hugging Face `tokenizers` (BertNormalizer + BertPreTokenizer + WordPiece +
 * TemplateProcessing) for BERT-class models such as all-MiniLM-L6-v2.
 *
 * Pipeline, as in the library:
 *   1. Special (added) tokens are cut out of the raw text first ("[SEP]" in
 *      the input becomes the [SEP] id; leftmost-longest match).
 *   2. Each remaining segment is normalized: clean_text (drop NUL, U+FFFD,
 *      control and format characters; whitespace -> space), spaces around
 *      CJK ideographs, strip_accents (NFD via utf8proc, drop Mn marks),
 *      lowercase. strip_accents unset follows lowercase.
 *   3. Pre-tokenized: split on whitespace, each punctuation mark (ASCII
 *      punctuation and Unicode P*) isolated.
 *   4. WordPiece: greedy longest-match-first with the continuing-subword
 *      prefix ("##"); a word longer than max_input_chars_per_word (100) or
 *      with no complete match becomes the unknown token.
 * The character classes are the library's own (model/wordpiece_tables.c).
 * Added tokens are all matched in the raw text, which is what the library
 * does for the BERT specials (normalized: false); the normalized, lstrip,
 * rstrip and single_word flags of other added tokens are not supported (a
 * warning is logged at load).
 *
 * Input is untrusted: invalid UTF-8 is read as U+FFFD (which clean_text then
 * drops), the work is linear in the input length and bounded per word, and
 * nothing here crashes on any byte string. Offsets are byte offsets into the
 * caller's text, end exclusive; a token covers the original characters its
 * normalized characters came from (an accented letter, a whole [UNK] word).
 *
 * A loaded tokenizer is immutable: any number of threads may use it at once.
 */
#ifndef RAGD_MODEL_TOKENIZER_H
#define RAGD_MODEL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct rg_tokenizer rg_tokenizer;

/* Which end loses tokens when an input is truncated. */
typedef enum rg_trunc_side {
    RG_TRUNC_END = 0,  /* keep the beginning (Hugging Face "right") */
    RG_TRUNC_START = 1 /* keep the end (Hugging Face "left") */
} rg_trunc_side;

/* An encoded input. Arrays have n entries and are owned by the encoding. */
typedef struct rg_encoding {
    size_t n;
    int32_t *ids;
    int32_t *type_ids;       /* token type (segment) ids: 0 for A, 1 for B */
    int32_t *attention_mask; /* 1 for every token (no padding is added) */
    int8_t *seq;             /* -1 special token, 0 from text A, 1 from text B */
    size_t *start, *end;     /* byte offsets into text A or B (per seq); 0,0 for specials */
    size_t n_untruncated;    /* tokens the input had before truncation, specials included */
    size_t cap;
} rg_encoding;

/* Options of a WordPiece tokenizer built from parts (tokenizer_new). */
typedef struct rg_tokenizer_opts {
    int clean_text;           /* default 1 */
    int handle_chinese_chars; /* default 1 */
    int strip_accents;        /* -1: follow lowercase (default), 0, 1 */
    int lowercase;            /* default 1 */
    const char *unk_token;    /* default "[UNK]" */
    const char *cls_token;    /* default "[CLS]"; NULL or "" for none */
    const char *sep_token;    /* default "[SEP]"; NULL or "" for none */
    const char *const *special_tokens; /* cut out of raw text before normalization */
    size_t n_special_tokens;  /* (unk, cls, sep, pad, mask are added when in the vocab) */
    const char *continuing_subword_prefix; /* default "##" */
    size_t max_input_chars_per_word;       /* default 100 */
} rg_tokenizer_opts;

/* Fills o with the defaults above (bert-base-uncased behaviour). */
void tokenizer_opts_default(rg_tokenizer_opts *o);

/* Loads model_dir/tokenizer.json when present, else model_dir/vocab.txt
 * with model_dir/tokenizer_config.json (and special_tokens_map.json) when
 * present. RG_ERR_NOT_FOUND when neither exists, RG_ERR_UNSUPPORTED for a
 * tokenizer that is not BERT WordPiece, RG_ERR_CORRUPT for malformed files. */
rg_status tokenizer_load(const char *model_dir, rg_tokenizer **out, rg_err *e);
/* The two loaders tokenizer_load chooses between. config_json may be NULL. */
rg_status tokenizer_load_json(const char *tokenizer_json, rg_tokenizer **out, rg_err *e);
rg_status tokenizer_load_vocab(const char *vocab_txt, const char *config_json, rg_tokenizer **out, rg_err *e);
/* From a token list (id = index), e.g. GGUF metadata. opts may be NULL. The
 * specials are [CLS] A [SEP] and [CLS] A [SEP] B [SEP] (B's type id 1). */
rg_status tokenizer_new(const char *const *tokens, size_t n_tokens, const rg_tokenizer_opts *opts,
                        rg_tokenizer **out, rg_err *e);
void tokenizer_free(rg_tokenizer *t);

/* Vocabulary size (one past the largest id), the id of a token (-1 if
 * absent), the token of an id (NULL if none). */
size_t tokenizer_vocab_size(const rg_tokenizer *t);
int32_t tokenizer_token_id(const rg_tokenizer *t, const char *token);
const char *tokenizer_id_token(const rg_tokenizer *t, int32_t id);
int32_t tokenizer_cls_id(const rg_tokenizer *t); /* -1 if none */
int32_t tokenizer_sep_id(const rg_tokenizer *t);
int32_t tokenizer_pad_id(const rg_tokenizer *t); /* 0 when the model names none */
int32_t tokenizer_unk_id(const rg_tokenizer *t);
/* Special tokens the templates add: for a single text, for a pair. */
size_t tokenizer_num_special(const rg_tokenizer *t, int pair);

/* Token ids of text[0..len) without special tokens added. Writes at most
 * max_ids ids (ids may be NULL when max_ids is 0) and sets *n_ids to the
 * total number of tokens, which may exceed max_ids (like snprintf). */
rg_status tokenizer_encode(const rg_tokenizer *t, const char *text, size_t len, int32_t *ids, size_t max_ids,
                           size_t *n_ids, rg_err *e);

/* All tokens of text[0..len) with offsets, no special tokens added, no
 * truncation. out is (re)filled; start it zeroed and release it with
 * encoding_free. */
rg_status tokenizer_tokenize(const rg_tokenizer *t, const char *text, size_t len, rg_encoding *out, rg_err *e);

/* [CLS] A [SEP] with A truncated so that the whole fits max_len tokens
 * (0 = no truncation). RG_ERR_INVALID when max_len is non-zero but below the
 * number of special tokens. */
rg_status tokenizer_encode_single(const rg_tokenizer *t, const char *text, size_t len, size_t max_len,
                                  rg_trunc_side side, rg_encoding *out, rg_err *e);

/* [CLS] A [SEP] B [SEP], truncated longest-first (the longer text loses
 * tokens first; both are cut to half when both are long) to max_len. */
rg_status tokenizer_encode_pair(const rg_tokenizer *t, const char *a, size_t a_len, const char *b, size_t b_len,
                                size_t max_len, rg_trunc_side side, rg_encoding *out, rg_err *e);

void encoding_free(rg_encoding *enc);

/* Number of tokens in text[0..len) without special tokens. On an
 * allocation failure it returns len (an upper bound for any text). */
size_t tokenizer_count(const rg_tokenizer *t, const char *text, size_t len);

/* tokenizer_count with the chunker's counter signature (ctx is the
 * rg_tokenizer): plug it in as rg_chunk_opts.count with count_ctx = t. */
size_t tokenizer_count_fn(const char *text, size_t len, void *ctx);

#endif
