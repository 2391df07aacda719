/* bpe_impl.h - the inside of rg_bpe, shared by bpe.c (encoding), bpe_pretok.c
 * (splitting and spelling), bpe_decode.c and the two loaders. Not for use
 * outside model/bpe*.c. */
#ifndef RAGD_MODEL_BPE_IMPL_H
#define RAGD_MODEL_BPE_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "model/bpe.h"
#include "model/vocab.h"

/* Most split regexes a pre-tokenizer may chain (Sequence of Split/Digits/ByteLevel). */
#define BPE_MAX_SPLITS 8

/* Metaspace prepend_scheme: where the U+2581 prefix goes. */
enum { BPE_PREPEND_NEVER = 0, BPE_PREPEND_ALWAYS = 1, BPE_PREPEND_FIRST = 2 /* the text's first segment only */ };

typedef struct bpe_added {
    char *text;
    size_t len;
    int32_t id;
    uint8_t special; /* matched only with RG_BPE_PARSE_SPECIAL; skipped by decode(skip_special) */
    uint8_t lstrip;  /* the match takes the whitespace on its left */
    uint8_t rstrip;  /* ... and on its right */
} bpe_added;

/* Merge table entry: (left, right) -> merged id with its rank. */
typedef struct bpe_merge {
    uint64_t key; /* (uint64)left << 32 | right; UINT64_MAX = empty slot */
    int32_t merged;
    int32_t rank;
} bpe_merge;

struct rg_bpe {
    rg_bpe_kind kind;
    rg_vocab *vocab; /* spelled token -> id (added tokens included) */
    size_t n_ids;    /* one past the largest id */

    /* merges by rank (byte-level; SentencePiece from tokenizer.json) */
    bpe_merge *merges;
    size_t merges_cap; /* power of two, 0 when merging by score */
    size_t n_merges;
    /* merging by score (SentencePiece GGUF): score of each id */
    float *scores;

    uint8_t *special;       /* per id: 1 for special tokens */
    int32_t byte_id[256];   /* byte-level: id of the token spelling byte b;
                               SentencePiece: id of <0xXX>; -1 when absent */
    int byte_fallback;      /* SentencePiece: unknown characters become byte tokens */
    int fuse_unk;           /* consecutive unknowns become one <unk> */
    int drop_unknown;       /* characters missing from the vocabulary are dropped even
                               where an unknown token is named (GGUF byte-level, as
                               llama.cpp: SmolLM2's file names <|endoftext|>) */
    int ignore_merges;      /* a word found whole in the vocabulary is one token */
    int add_dummy_prefix;   /* SentencePiece: U+2581 in front of each segment */
    /* tokenizer.json's Metaspace pre-tokenizer (newer Llama/Mistral exports,
     * in place of the Prepend+Replace normalizer): spaces become U+2581 and
     * the prefix is put in front per meta_prepend, only where the segment
     * does not already begin with one */
    int metaspace;
    int meta_prepend; /* BPE_PREPEND_* */
    int meta_split;   /* each U+2581 starts a new word (the library's MergedWithNext) */
    /* SentencePiece decoders: what happens to the first space */
    int dec_strip_space; /* one leading space of the whole text is dropped (Strip after Fuse) */
    int dec_meta_first;  /* decoder Metaspace: every U+2581 of the first token is dropped */
    int nfc;                /* NFC-normalize segments first (Qwen2's tokenizer.json) */

    pcre2_code *splits[BPE_MAX_SPLITS];
    size_t n_splits;
    char pre_name[32];

    bpe_added *added; /* sorted by text, for the leftmost-longest scan */
    size_t n_added;

    int32_t bos, eos, eot, pad, unk;
    int32_t prefix[4], suffix[4]; /* ids RG_BPE_ADD_SPECIAL adds */
    size_t n_prefix, n_suffix;
    char *chat_template;

    /* decoded bytes of every id: dec + dec_off[id] .. dec_off[id+1] */
    char *dec;
    uint32_t *dec_off;
};

/* The GPT-2 regexes the loaders choose from (HF's spellings). */
extern const char BPE_RE_GPT2[];
extern const char BPE_RE_LLAMA3[];
extern const char BPE_RE_QWEN2[];
extern const char BPE_RE_DIGIT[];
extern const char BPE_RE_DIGITS[];

/* Allocates an empty tokenizer with room for n_ids ids (all ids -1). */
rg_status bpe_alloc(rg_bpe_kind kind, size_t n_ids, rg_bpe **out, rg_err *e);
/* Compiles a split regex and appends it to the pre-tokenizer. */
rg_status bpe_add_split(rg_bpe *t, const char *pattern, rg_err *e);
/* Adds a merge "left right" (spelled tokens); RG_ERR_CORRUPT naming index
 * when a part or the merged token is not in the vocabulary. */
rg_status bpe_add_merge(rg_bpe *t, const char *left, size_t left_len, const char *right, size_t right_len,
                        size_t index, rg_err *e);
/* Prepares the merge table for n merges. */
rg_status bpe_merges_reserve(rg_bpe *t, size_t n, rg_err *e);
/* Registers an added token (its id must already be in the vocabulary). */
rg_status bpe_add_added(rg_bpe *t, const char *text, size_t len, int32_t id, int special, int lstrip, int rstrip,
                        rg_err *e);
/* After the vocabulary, merges and added tokens are in: sorts the added
 * tokens, finds the byte tokens, builds the decode table, checks the
 * special ids. */
rg_status bpe_finish(rg_bpe *t, rg_err *e);

/* GPT-2's byte-to-unicode spelling: the UTF-8 of byte b's character
 * (1 or 2 bytes) into out, returning its length. */
size_t bpe_byte_spelling(unsigned b, char out[2]);
/* The byte a code point spells, or -1 when it is outside the alphabet. */
int bpe_spelled_byte(uint32_t cp);

/* Calls fn for every piece the pre-tokenizer cuts s[0..len) into. */
typedef rg_status (*bpe_piece_fn)(const char *piece, size_t len, void *ctx, rg_err *e);
rg_status bpe_pretokenize(const rg_bpe *t, pcre2_match_data *md, const char *s, size_t len, bpe_piece_fn fn,
                          void *ctx, rg_err *e);

/* Decodes one UTF-8 character at s[0..len): its length (1..4) and code
 * point, or 0 when the bytes there are not valid UTF-8 (then *bad is the
 * length of the maximal invalid subpart, at least 1). */
size_t bpe_utf8_next(const unsigned char *s, size_t len, uint32_t *cp, size_t *bad);

#endif
