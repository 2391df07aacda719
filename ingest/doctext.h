/* doctext.h - a document's extracted text with its structure.
 *
 * Every loader turns raw bytes into one rg_doctext: valid UTF-8 text
 * (blocks separated by blank lines) plus a list of blocks that say what
 * each span of the text is. The chunker works only from this, so it never
 * needs to know which format the text came from. */
#ifndef RAGD_INGEST_DOCTEXT_H
#define RAGD_INGEST_DOCTEXT_H

#include <stddef.h>

#include "common/buf.h"

typedef enum rg_block_kind {
    BLOCK_HEADING,   /* level 1..6 */
    BLOCK_PARAGRAPH,
    BLOCK_LIST_ITEM,
    BLOCK_TABLE_ROW, /* cells joined by " | " */
    BLOCK_CODE,      /* preformatted text, kept verbatim */
    BLOCK_QUOTE
} rg_block_kind;

typedef struct rg_block {
    rg_block_kind kind;
    int level;    /* heading level, list nesting depth; 0 otherwise */
    size_t start; /* byte offsets into rg_doctext.text, end exclusive */
    size_t end;
    int page;     /* 1-based where the format has pages, else 0 */
} rg_block;

/* Limits that bound what a loader may produce from untrusted input. */
typedef struct rg_load_limits {
    size_t max_text_bytes; /* extracted text larger than this -> RG_ERR_TOO_LARGE */
    size_t max_blocks;     /* more blocks than this -> RG_ERR_TOO_LARGE */
    int max_depth;         /* markup nesting deeper than this is flattened, not an error */
} rg_load_limits;

typedef struct rg_doctext {
    rg_buf text;      /* NUL-terminated, valid UTF-8 */
    rg_block *blocks; /* in text order, non-overlapping */
    size_t n_blocks;
    size_t cap_blocks;
    char *title;      /* NULL if the document has none */
    rg_load_limits limits; /* copied by doctext_init; zero fields take defaults */
} rg_doctext;

/* limits may be NULL; a zero field means that limit's default. */
void doctext_init(rg_doctext *d, const rg_load_limits *limits);
void doctext_free(rg_doctext *d);
/* Appends a block of text: separates it from the previous block with a
 * blank line, collapses runs of whitespace (except for BLOCK_CODE), and
 * records the block. Empty (all-whitespace) blocks are skipped. The text
 * must be valid UTF-8. */
rg_status doctext_add_block(rg_doctext *d, rg_block_kind kind, int level, int page, const char *text, size_t len,
                            rg_err *e);

#endif
