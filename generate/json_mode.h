/* json_mode.h - JSON mode: generated text constrained to one JSON object
 * (OpenAI's response_format {"type": "json_object"}).
 *
 * Two levels:
 *   - rg_json_prefix, a byte-level recognizer of JSON (RFC 8259) that
 *     answers "is this still the beginning of one JSON object?" one byte
 *     at a time, in a few bytes of state, so a token's bytes can be tried
 *     on a copy;
 *   - the token level: whether a vocabulary token may come next, and a
 *     mask that sets every other token's logit to -inf.
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
 * whitespace: the only token left is the end of the sequence. */
#ifndef RAGD_GENERATE_JSON_MODE_H
#define RAGD_GENERATE_JSON_MODE_H

#include <stddef.h>
#include <stdint.h>

#include "model/bpe.h"

#define JSON_MODE_MAX_WS 16
#define JSON_MODE_MAX_DEPTH 32

typedef struct rg_json_prefix {
    uint32_t nest;  /* bit i: container at depth i + 1 is an object (1) or an array (0) */
    uint8_t depth;  /* open containers */
    uint8_t state;  /* what may come next (json_mode.c) */
    uint8_t ws;     /* whitespace bytes in a row */
    uint8_t aux;    /* literal: its index; \u: hex digits left; UTF-8: continuation bytes left */
    uint8_t lo, hi; /* UTF-8: the range of the next continuation byte */
    uint8_t lit;    /* which literal (true, false, null) */
    uint8_t key;    /* the string being read is an object's key */
} rg_json_prefix;

void json_prefix_init(rg_json_prefix *p);
/* Feeds n bytes. 1 when they keep the text a prefix of one JSON object;
 * 0 when a byte cannot come next (p is then left somewhere undefined: feed
 * a copy to try). */
int json_prefix_feed(rg_json_prefix *p, const char *bytes, size_t n);
/* 1 once the top-level object is closed. */
int json_prefix_done(const rg_json_prefix *p);

/* The end-of-sequence tokens (eos, eot; -1 for none) end a JSON-mode
 * sequence, allowed only once the object is complete. */
typedef struct rg_json_vocab {
    const rg_bpe *tok;
    size_t n_vocab;
    int32_t end[2];
} rg_json_vocab;

/* 1 when token id may follow the text recognized by p: its bytes keep it
 * a prefix of one JSON object, or it ends the sequence after a complete
 * one. Special tokens other than the ends never may. */
int json_token_allowed(const rg_json_vocab *v, const rg_json_prefix *p, int32_t id);
/* Sets logits[id] to -INFINITY for every token that may not follow p.
 * Returns how many may (never 0 for a vocabulary that holds every ASCII
 * byte, as byte-level BPE and SentencePiece with byte fallback do). */
size_t json_mask_logits(const rg_json_vocab *v, const rg_json_prefix *p, float *logits);

#endif
