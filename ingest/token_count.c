/* token_count.c - an explicit approximation of WordPiece token counts.
 *
 * Used until the embedding model's own tokenizer is plugged into the
 * chunker. It follows BERT's pre-tokenization and then guesses how many
 * pieces each word becomes, erring on the side of more tokens so that
 * chunks sized with it rarely overflow the model's real limit:
 *
 *   - white space and control characters separate and count nothing;
 *   - each punctuation mark or symbol code point is 1 token;
 *   - each CJK ideograph, kana or Hangul syllable is 1 token (BERT splits
 *     ideographs into single characters; the others are close to that);
 *   - each other word (a run of letters, digits and combining marks) is
 *     ceil(code points / 4) tokens, at least 1 (common English words are
 *     one piece; long or rare ones split into ~4-character pieces);
 *   - an invalid UTF-8 byte is 1 token.
 *
 * The count is additive over text split at white space or punctuation,
 * which the chunker relies on to size chunks from the sizes of their parts. */
#include <utf8proc.h>

#include "ingest/chunker.h"

static int is_cjk_like(utf8proc_int32_t cp)
{
    return (cp >= 0x3040 && cp <= 0x30FF) ||   /* Hiragana, Katakana */
           (cp >= 0x3400 && cp <= 0x4DBF) ||   /* CJK Extension A */
           (cp >= 0x4E00 && cp <= 0x9FFF) ||   /* CJK Unified Ideographs */
           (cp >= 0xAC00 && cp <= 0xD7AF) ||   /* Hangul syllables */
           (cp >= 0xF900 && cp <= 0xFAFF) ||   /* CJK Compatibility Ideographs */
           (cp >= 0x20000 && cp <= 0x2FA1F);   /* Extensions B-F, compatibility supplement */
}

size_t token_count_approx(const char *text, size_t len, void *ctx)
{
    (void)ctx;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    size_t i = 0, tokens = 0, word = 0; /* code points in the current word */
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        int in_word = 0;
        if (n <= 0) {
            tokens++;
            n = 1;
        } else if (cp < 0x80) {
            if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9'))
                in_word = 1;
            else if (cp > ' ' && cp != 0x7F)
                tokens++; /* ASCII punctuation and symbols */
        } else if (is_cjk_like(cp)) {
            tokens++;
        } else {
            switch (utf8proc_category(cp)) {
            case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
            case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
            case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
            case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
                in_word = 1;
                break;
            case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
            case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF:
                break; /* separators, controls and format characters */
            default:
                tokens++; /* punctuation, symbols, private use, unassigned */
                break;
            }
        }
        if (in_word) {
            word++;
        } else if (word) {
            tokens += (word + 3) / 4;
            word = 0;
        }
        i += (size_t)n;
    }
    if (word)
        tokens += (word + 3) / 4;
    return tokens;
}
