/* chunker.h - structure-aware splitting of a document into chunks.
 *
 * Sections (a heading and what follows it up to the next heading of the
 * same or higher level) are kept together when they fit; larger ones are
 * split at block (paragraph, list item, row) boundaries, then at sentence
 * boundaries, and only as a last resort at word boundaries. Sizes are
 * measured in tokens through a counter function, so the embedding model's
 * own tokenizer can be plugged in without touching the chunker. */
#ifndef RAGD_INGEST_CHUNKER_H
#define RAGD_INGEST_CHUNKER_H

#include <stddef.h>

#include "ingest/doctext.h"

/* Counts the tokens in text[0..len) (UTF-8). */
typedef size_t (*rg_token_counter)(const char *text, size_t len, void *ctx);

/* The approximate counter used until the embedding tokenizer is plugged in:
 * estimates WordPiece tokens (one per punctuation mark, about one per four
 * characters of a word, at least one per word). */
size_t token_count_approx(const char *text, size_t len, void *ctx);

typedef struct rg_chunk_opts {
    size_t target_tokens;  /* a chunk holds at most this many tokens */
    size_t overlap_tokens; /* tokens repeated from the end of the previous chunk (< target/2) */
    rg_token_counter count;
    void *count_ctx;
} rg_chunk_opts;

typedef struct rg_chunk_span {
    size_t start, end;           /* byte offsets into the doctext text, end exclusive */
    size_t char_start, char_end; /* the same as code-point offsets */
    char *heading_path;          /* "Title > Section > Subsection", NULL if none */
    int page;                    /* page of the first block, 0 if unknown */
    size_t token_count;
} rg_chunk_span;

/* Splits doc into chunks; the text of chunk i is exactly
 * doc->text.data[out[i].start .. out[i].end). Chunks are in text order and
 * together cover every block. */
rg_status chunker_split(const rg_doctext *doc, const rg_chunk_opts *opts, rg_chunk_span **out, size_t *n_out,
                        rg_err *e);
void chunker_free(rg_chunk_span *chunks, size_t n);

#endif
