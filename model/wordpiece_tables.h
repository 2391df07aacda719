/* wordpiece_tables.h - character classes of the BERT normalizer and
 * pre-tokenizer as Hugging Face tokenizers applies them (generated data in
 * wordpiece_tables.c; see scripts/gen_wordpiece_tables.py). Every range
 * array is sorted and non-overlapping. */
#ifndef RAGD_MODEL_WORDPIECE_TABLES_H
#define RAGD_MODEL_WORDPIECE_TABLES_H

#include <stddef.h>
#include <stdint.h>

typedef struct rg_cp_range {
    uint32_t lo, hi; /* inclusive */
} rg_cp_range;

typedef struct rg_cp_class {
    uint32_t lo, hi, ccc; /* inclusive range, canonical combining class */
} rg_cp_class;

typedef struct rg_cp_lower {
    uint32_t cp, lo0, lo1; /* lo1 == 0 when the lowercase is one code point */
} rg_cp_lower;

extern const char wp_tables_source[];
extern const rg_cp_range wp_removed[], wp_space[], wp_decomposable[], wp_nonspacing[], wp_whitespace[], wp_punct[];
extern const size_t wp_removed_n, wp_space_n, wp_decomposable_n, wp_nonspacing_n, wp_whitespace_n, wp_punct_n;
extern const rg_cp_class wp_ccc[]; /* sorted; code points absent have class 0 */
extern const size_t wp_ccc_n;
extern const rg_cp_lower wp_lower[]; /* sorted by cp */
extern const size_t wp_lower_n;

#endif
