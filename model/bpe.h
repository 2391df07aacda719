/* bpe.h - the generators' tokenizers: byte-level BPE (GPT-2 style, used by
 * SmolLM2, Llama 3, Qwen2) and SentencePiece BPE with byte fallback (Llama 2,
 * Mistral, TinyLlama), token for token the same as Hugging Face `tokenizers`
 * on the same vocabulary.
 *
 * Pipeline, as in the library:
 *   1. Added tokens (the model's special tokens such as <|im_start|>, and
 *      user-defined ones) are cut out of the raw text first, leftmost-longest.
 *      Special ones only when the caller passes RG_BPE_PARSE_SPECIAL (what
 *      `tokenizers` does unless `encode_special_tokens` is set; a server
 *      leaves it off for user text so nobody can inject a turn marker).
 *   2. Each remaining segment is pre-tokenized:
 *      byte-level: the family's split regexes (PCRE2, UTF + UCP), applied in
 *      sequence, matches isolated; each piece's bytes are spelled in GPT-2's
 *      byte-to-unicode alphabet.
 *      SentencePiece: spaces become U+2581 and one U+2581 is put in front
 *      (add_dummy_prefix); the segment is one word. A tokenizer.json with a
 *      Metaspace pre-tokenizer puts the U+2581 in front only where the
 *      segment does not begin with one, and with prepend_scheme "first"
 *      only at the start of the text; with split, every U+2581 starts a
 *      new word.
 *   3. BPE merges, lowest rank first (byte-level and tokenizer.json), or
 *      highest score of the merged piece first (SentencePiece GGUF files,
 *      which carry scores, not merges); ties go to the leftmost pair. A
 *      SentencePiece character outside the vocabulary becomes its <0xXX>
 *      byte tokens.
 *   4. With RG_BPE_ADD_SPECIAL the model's template tokens are added (BOS
 *      where the model asks for it, EOS where it asks for it).
 * Decoding reverses the spelling: byte-level tokens back to their bytes,
 * U+2581 back to a space, <0xXX> to its byte, the dummy-prefix space
 * dropped as the model's decoder says (Strip: one leading space of the
 * text; Metaspace: every U+2581 of the first token). A valid UTF-8 text
 * comes back exactly (decode(encode(x)) == x) wherever the library's own
 * decoder gives it back; SentencePiece loses a leading space or a space
 * after a special token the same way the library does.
 *
 * Input is untrusted: invalid UTF-8 is read as U+FFFD (one per maximal
 * invalid sequence, as Rust's from_utf8_lossy), every size from a model file
 * is checked before use, and merging is O(n log n) in the word length, so a
 * 1 MB word without spaces costs milliseconds, never minutes.
 *
 * A loaded tokenizer is immutable: any number of threads may use it at once.
 */
#ifndef RAGD_MODEL_BPE_H
#define RAGD_MODEL_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "model/gguf.h"

typedef struct rg_bpe rg_bpe;

typedef enum rg_bpe_kind {
    RG_BPE_BYTE_LEVEL = 0, /* GPT-2 byte-level BPE */
    RG_BPE_SPM = 1         /* SentencePiece BPE with byte fallback */
} rg_bpe_kind;

/* Encode flags. */
#define RG_BPE_ADD_SPECIAL 1u   /* add the model's BOS/EOS (HF add_special_tokens) */
#define RG_BPE_PARSE_SPECIAL 2u /* special tokens written in the text become their ids */

/* Largest text bpe_encode accepts in one call. */
#define RG_BPE_MAX_TEXT ((size_t)256 << 20)

/* A growable list of token ids; start it zeroed, release it with
 * bpe_ids_free. bpe_encode appends, so a prompt can be built piece by piece. */
typedef struct rg_bpe_ids {
    int32_t *ids;
    size_t n, cap;
} rg_bpe_ids;

/* From the tokenizer.ggml.* metadata of an opened GGUF file (model "gpt2" or
 * "llama"; pre-tokenizers default/gpt2, smollm, llama-bpe/llama3, qwen2).
 * The tokenizer copies what it needs: g may be closed afterwards.
 * RG_ERR_UNSUPPORTED for other tokenizer models or pre-tokenizers,
 * RG_ERR_CORRUPT for malformed metadata (bad merges, ids out of range,
 * arrays of the wrong type or length). */
rg_status bpe_load_gguf(const gguf_file *g, rg_bpe **out, rg_err *e);
/* Opens path, loads its tokenizer and closes it. */
rg_status bpe_load_gguf_path(const char *path, rg_bpe **out, rg_err *e);
/* From a Hugging Face tokenizer.json (model BPE) and, when config_json is
 * not NULL and exists, tokenizer_config.json (chat template, BOS/EOS names). */
rg_status bpe_load_json(const char *tokenizer_json, const char *config_json, rg_bpe **out, rg_err *e);
/* dir/tokenizer.json + dir/tokenizer_config.json. */
rg_status bpe_load_dir(const char *dir, rg_bpe **out, rg_err *e);
void bpe_free(rg_bpe *t);

rg_bpe_kind bpe_kind(const rg_bpe *t);
/* One past the largest token id. */
size_t bpe_vocab_size(const rg_bpe *t);
/* -1 where the model has none. eot is the end-of-turn token chat models
 * stop on (<|im_end|>, <|eot_id|>, ...; the EOS when the model names none). */
int32_t bpe_bos_id(const rg_bpe *t);
int32_t bpe_eos_id(const rg_bpe *t);
int32_t bpe_eot_id(const rg_bpe *t);
int32_t bpe_pad_id(const rg_bpe *t);
int32_t bpe_unk_id(const rg_bpe *t);
/* Nonzero when RG_BPE_ADD_SPECIAL puts a BOS in front / an EOS behind. */
int bpe_adds_bos(const rg_bpe *t);
int bpe_adds_eos(const rg_bpe *t);
/* The chat template (Jinja source) from the model, or NULL. */
const char *bpe_chat_template(const rg_bpe *t);
/* The pre-tokenizer's name ("smollm", "llama-bpe", "qwen2", "gpt2",
 * "tokenizer.json", "spm"). */
const char *bpe_pre_name(const rg_bpe *t);

/* The token as the vocabulary spells it ("Ġthe", "▁the", "<0x0A>",
 * "<|im_end|>"), NUL-terminated; NULL for an id outside the vocabulary. */
const char *bpe_token_piece(const rg_bpe *t, int32_t id, size_t *len);
/* The id of a token spelled as in the vocabulary, or -1. */
int32_t bpe_piece_id(const rg_bpe *t, const char *piece, size_t len);
/* The bytes a token stands for in decoded text (" the", "\n"; a
 * SentencePiece byte token is one byte, which may be part of a character).
 * NULL for an id outside the vocabulary. Not NUL-terminated. */
const char *bpe_token_bytes(const rg_bpe *t, int32_t id, size_t *len);
/* Nonzero for special (control) tokens: BOS, EOS, <|im_start|>, ... */
int bpe_is_special(const rg_bpe *t, int32_t id);

/* Appends the tokens of text[0..len) to out. */
rg_status bpe_encode(const rg_bpe *t, const char *text, size_t len, unsigned flags, rg_bpe_ids *out, rg_err *e);
rg_status bpe_ids_push(rg_bpe_ids *ids, int32_t id, rg_err *e);
void bpe_ids_free(rg_bpe_ids *ids);

/* Appends the text of ids to out, as the library's decode does: special
 * tokens left out when skip_special, invalid UTF-8 read as U+FFFD.
 * RG_ERR_INVALID for an id outside the vocabulary. */
rg_status bpe_decode(const rg_bpe *t, const int32_t *ids, size_t n, int skip_special, rg_buf *out, rg_err *e);

/* Incremental decoding for streaming: feed one id at a time; only complete
 * UTF-8 characters are ever appended, an incomplete tail is held until the
 * next token completes it (or bpe_stream_finish turns it into U+FFFD). The
 * concatenation of everything appended equals bpe_decode of all the ids.
 * Zero the struct (or call bpe_stream_init) to start a sequence. */
typedef struct rg_bpe_stream {
    unsigned char pending[4]; /* bytes of a character not yet complete */
    uint8_t n_pending;
    uint8_t started;     /* something was emitted (SentencePiece drops the first space) */
    uint8_t fed;         /* a token reached the decoder (Metaspace treats the first apart) */
    uint8_t skip_special;
} rg_bpe_stream;

void bpe_stream_init(rg_bpe_stream *s, int skip_special);
rg_status bpe_stream_step(const rg_bpe *t, rg_bpe_stream *s, int32_t id, rg_buf *out, rg_err *e);
rg_status bpe_stream_finish(const rg_bpe *t, rg_bpe_stream *s, rg_buf *out, rg_err *e);

#endif
