/* json_mode.h - JSON mode: generated text constrained to one JSON object
 * (OpenAI's response_format {"type": "json_object"}), or to one that a JSON
 * schema describes ({"type": "json_schema"}).
 *
 * Three parts:
 *   - rg_json_schema, a JSON schema compiled into nodes (json_schema.c),
 *     or none for "any object";
 *   - rg_json_prefix, a byte-level recognizer that answers "is this still
 *     the beginning of a JSON object the schema allows?" one byte at a
 *     time, in a small fixed state (one rg_json_path, or a few where a
 *     union's alternatives start alike), so a token's bytes can be tried
 *     on a copy;
 *   - the token level (json_vocab.c): whether a vocabulary token may come
 *     next, and a mask that sets every other token's logit to -inf, walked
 *     over a trie of the vocabulary's bytes.
 *
 * What the recognizer accepts is JSON as a strict parser reads it (cJSON,
 * Python's json): one object at the top, strings of valid UTF-8 without
 * raw control characters, escapes \" \\ \/ \b \f \n \r \t \uXXXX, numbers
 * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, true, false, null. Two
 * bounds keep a weak model from running on forever inside the grammar,
 * as llama.cpp's JSON grammar bounds its whitespace:
 *   - at most JSON_MODE_MAX_WS whitespace bytes in a row between tokens
 *     (strings may hold anything);
 *   - at most JSON_MODE_MAX_DEPTH nested objects and arrays.
 * Once the top-level object closes nothing more is accepted, not even
 * whitespace: the only token left is the end of the sequence.
 *
 * With a schema, an object's properties come in the schema's order, each
 * required one present, the optional ones free to be left out, and no
 * other keys; keys and enum/const values are spelled as cJSON prints them
 * (the same values, one spelling). The schema subset is that of OpenAI's
 * structured outputs: type (one or a list), properties, required,
 * additionalProperties (false, or a schema for map-like objects without
 * properties), items, minItems, maxItems, enum, const, anyOf / oneOf
 * (up to 8 alternatives that can start with one byte, followed side by
 * side; oneOf is read as anyOf, which alternatives that differ in a
 * required key or a const, as Pydantic's unions do, make the same), allOf
 * of one schema, $ref into $defs / definitions (recursion included),
 * nullable; annotations (title, description,
 * default, examples, ...) are ignored. Any other keyword (pattern, format,
 * minimum, minLength, ...) is refused by name: the answer could not be
 * made to follow it. */
#ifndef RAGD_GENERATE_JSON_MODE_H
#define RAGD_GENERATE_JSON_MODE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "model/bpe.h"

#define JSON_MODE_MAX_WS 16
#define JSON_MODE_MAX_DEPTH 32

typedef struct rg_json_schema rg_json_schema;

/* Compiles a JSON schema whose root describes an object. RG_ERR_INVALID
 * naming what is not supported, or what is malformed. */
rg_status json_schema_compile(const cJSON *schema, rg_json_schema **out, rg_err *e);
void json_schema_free(rg_json_schema *s); /* NULL is fine */

/* One reading of the text so far: a deterministic parse. */
typedef struct rg_json_path {
    const rg_json_schema *schema;
    uint64_t cand;  /* a key or enum value being matched: the candidates left (bit i: the i-th) */
    uint16_t pos;   /* ... and the bytes of them matched */
    uint16_t want;  /* the node of the value that comes next */
    uint16_t lits;  /* the node whose keys or literals are being matched */
    uint8_t depth;  /* open containers */
    uint8_t state;  /* what may come next (json_mode.c) */
    uint8_t ws;     /* whitespace bytes in a row */
    uint8_t aux;    /* \u: hex digits left; UTF-8: continuation bytes left */
    uint8_t lo, hi; /* UTF-8: the range of the next continuation byte */
    uint8_t key;    /* the string being read is an object's key */
    uint8_t integer; /* the number being read must be an integer */
    uint8_t low;     /* a \uD800-\uDBFF was read: a \uDC00-\uDFFF must follow */
    uint8_t fork;    /* the next byte that starts a union takes its fork-th alternative that can */
    uint8_t more;    /* the last byte started a union where a later alternative could start too */
    uint16_t code;   /* the \uXXXX being read, so far */
    uint16_t frame_node[JSON_MODE_MAX_DEPTH]; /* each open container's node */
    uint16_t frame_next[JSON_MODE_MAX_DEPTH]; /* object: its next property; array: items so far */
} rg_json_path;

/* The text so far as the grammar reads it: one path, or several where a
 * union's alternatives start alike (anyOf of two objects: each is followed
 * until the bytes tell them apart). Paths that become the same after a
 * value are merged; past JSON_MODE_MAX_PATHS at once (nested unions),
 * the later alternatives are let go (what is written still follows the
 * schema; some of its choices are no longer offered). */
#define JSON_MODE_MAX_PATHS 8
typedef struct rg_json_prefix {
    uint8_t n;
    rg_json_path path[JSON_MODE_MAX_PATHS];
} rg_json_prefix;

/* schema NULL: any JSON object. The schema must outlive p. */
void json_prefix_init(rg_json_prefix *p, const rg_json_schema *schema);
/* Feeds n bytes. 1 when they keep the text a prefix of an allowed object;
 * 0 when a byte cannot come next (p is then left somewhere undefined: feed
 * a copy to try). */
int json_prefix_feed(rg_json_prefix *p, const char *bytes, size_t n);
/* json_prefix_feed on a copy: the token level's one test of a token, so
 * that what it allows is exactly what feeding it then takes (paths past
 * JSON_MODE_MAX_PATHS let go alike). */
int json_prefix_accepts(const rg_json_prefix *p, const char *bytes, size_t n);
/* 1 once the top-level object is closed. */
int json_prefix_done(const rg_json_prefix *p);

/* One path, for the trie's walk (json_vocab.c): json_path_feed follows a
 * union's first alternative that fits and leaves p->more set where another
 * could have been taken (the walk then tests that subtree's tokens with
 * json_prefix_accepts). */
int json_path_feed(rg_json_path *p, const char *bytes, size_t n);
int json_path_done(const rg_json_path *p);
/* 1 when byte c would be accepted and leave p exactly as it is (plain
 * ASCII inside a string, a digit inside a number's digits): a mask's walk
 * then shares the state instead of copying it. 0 says nothing. */
int json_path_keeps(const rg_json_path *p, unsigned char c);
/* A byte that is itself inside a JSON string: ASCII, not a control
 * character, not '"' or '\\'. */
static inline int json_string_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}
/* 1 inside a free string's text (a value or a map's key; no escape or
 * UTF-8 sequence begun; not a property name or an enum value being
 * matched): every json_string_plain byte keeps p. */
int json_path_in_string(const rg_json_path *p);

/* A vocabulary as JSON mode walks it (json_vocab.c): the end-of-sequence
 * tokens (eos, eot; -1 for none), which end a JSON-mode sequence only once
 * the object is complete, and every other token's bytes in a trie, so that
 * a mask tries each shared prefix once and gives up on a whole branch at
 * the first byte that cannot come (most of the vocabulary, between values).
 * Built once per model; read-only after, so sequences mask in parallel. */
typedef struct json_trie_node json_trie_node;
typedef struct rg_json_vocab {
    const rg_bpe *tok;
    size_t n_vocab;
    int32_t end[2];
    json_trie_node *nodes; /* depth first: a node's subtree is nodes[i .. nodes[i].end) */
    size_t n_nodes;
    int32_t *ids;          /* the trie's tokens, in the order of their bytes */
    size_t n_ids;
    int32_t *long_ids;     /* tokens too long for the trie, tried one by one */
    size_t n_long;
} rg_json_vocab;

/* Tokens of more bytes than this are left out of the trie (a mask's walk
 * keeps one recognizer state per byte of depth, on the stack). */
#define JSON_TRIE_MAX_BYTES 64

/* n_vocab: the width of the model's logits rows (ids the tokenizer does
 * not spell are never allowed). */
rg_status json_vocab_init(rg_json_vocab *v, const rg_bpe *tok, size_t n_vocab, int32_t eos, int32_t eot, rg_err *e);
void json_vocab_free(rg_json_vocab *v); /* zeroed one is fine */

/* 1 when token id may follow the text recognized by p: its bytes keep it
 * a prefix of an allowed object, or it ends the sequence after a complete
 * one. Special tokens other than the ends never may. */
int json_token_allowed(const rg_json_vocab *v, const rg_json_prefix *p, int32_t id);
/* masked[id] = logits[id] for every token that may follow p, -INFINITY for
 * the others (the two rows must not overlap). Returns how many may: 0 only
 * where a schema cannot be completed (a required property that recurses
 * past JSON_MODE_MAX_DEPTH); a vocabulary that holds every ASCII byte, as
 * byte-level BPE and SentencePiece with byte fallback do, always has a
 * next token otherwise. */
size_t json_mask_logits(const rg_json_vocab *v, const rg_json_prefix *p, const float *logits, float *masked);

#endif
