/* encoder_gguf_vocab.c - the WordPiece tokenizer of a BERT GGUF file, rebuilt
 * from its tokenizer.ggml.* metadata (see encoder.h).
 *
 * llama.cpp's converter rewrites WordPiece's vocabulary into "phantom space"
 * form: a token "[...]" stays as it is, a continuation "##x" becomes "x",
 * any other token "x" becomes U+2581 "x". This file undoes exactly that rule
 * (U+2581 "x" -> "x", "[...]" kept, any other "x" -> "##x") and hands the
 * list to tokenizer_new. */
#include "model/encoder_internal.h"

#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

#define PHANTOM "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */
#define TOKEN_TYPE_CONTROL 3   /* llama.cpp's token types */
#define TOKEN_TYPE_USER_DEFINED 4

static void free_list(char **list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* The WordPiece spelling of one GGUF token s[0..len). */
static char *unphantom(const char *s, size_t len)
{
    const char *src = s;
    const char *prefix = "";
    if (len >= 3 && memcmp(s, PHANTOM, 3) == 0) {
        src += 3;
        len -= 3;
    } else if (!(len >= 2 && s[0] == '[' && s[len - 1] == ']')) {
        prefix = "##";
    }
    size_t plen = strlen(prefix);
    char *out = malloc(plen + len + 1);
    if (!out)
        return NULL;
    memcpy(out, prefix, plen);
    memcpy(out + plen, src, len);
    out[plen + len] = '\0';
    return out;
}

/* The token an id key names, or def when the key is absent; an id outside
 * the vocabulary is an error. */
static rg_status special_token(const gguf_file *g, const char *key, char **tokens, size_t n, const char *def,
                               const char **out, rg_err *e)
{
    const gguf_kv *kv = gguf_find_kv(g, key);
    *out = def;
    if (!kv)
        return RG_OK;
    uint64_t id;
    if (gguf_kv_u64(kv, &id, e) != RG_OK || id >= n)
        return rg_error(e, RG_ERR_CORRUPT, "metadata key %s must be a token id below %zu", key, n);
    *out = tokens[id];
    return RG_OK;
}

rg_status encoder_gguf_tokenizer(const gguf_file *g, rg_tokenizer **out, rg_err *e)
{
    *out = NULL;
    const gguf_kv *kv = gguf_find_kv(g, "tokenizer.ggml.model");
    const char *model = kv ? gguf_kv_string(kv, NULL) : NULL;
    if (!model)
        return rg_error(e, RG_ERR_CORRUPT, "missing metadata string tokenizer.ggml.model");
    if (strcmp(model, "bert") != 0)
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "tokenizer.ggml.model \"%.64s\" is not supported (expected \"bert\", WordPiece)", model);
    const gguf_kv *list = gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!list || gguf_kv_array_type(list) != GGUF_TYPE_STRING || gguf_kv_array_len(list) == 0)
        return rg_error(e, RG_ERR_CORRUPT, "metadata key tokenizer.ggml.tokens must be a non-empty array of strings");
    size_t n = gguf_kv_array_len(list);
    if (n > BERT_MAX_VOCAB)
        return rg_error(e, RG_ERR_CORRUPT, "tokenizer.ggml.tokens has %zu entries, more than %zu", n, BERT_MAX_VOCAB);
    const gguf_kv *types = gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (types && gguf_kv_array_len(types) != n)
        return rg_error(e, RG_ERR_CORRUPT, "tokenizer.ggml.token_type has %zu entries for %zu tokens",
                        gguf_kv_array_len(types), n);

    rg_status st = RG_OK;
    char **tokens = calloc(n, sizeof *tokens);
    const char **specials = calloc(n, sizeof *specials);
    size_t n_specials = 0;
    if (!tokens || !specials) {
        st = rg_error(e, RG_ERR_NOMEM, "out of memory for the vocabulary");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = gguf_kv_array_string(list, i, &len);
        if (!s || strlen(s) != len) {
            st = rg_error(e, RG_ERR_CORRUPT, "tokenizer.ggml.tokens[%zu] is not a string without NUL bytes", i);
            goto done;
        }
        if (!(tokens[i] = unphantom(s, len))) {
            st = rg_error(e, RG_ERR_NOMEM, "out of memory for the vocabulary");
            goto done;
        }
        int64_t type = 0;
        if (types && gguf_kv_array_i64(types, i, &type, e) != RG_OK) {
            st = rg_error(e, RG_ERR_CORRUPT, "tokenizer.ggml.token_type must be an array of integers");
            goto done;
        }
        /* Control and user-defined tokens are Hugging Face's added tokens:
         * cut out of the raw text before normalization. */
        if (type == TOKEN_TYPE_CONTROL || type == TOKEN_TYPE_USER_DEFINED)
            specials[n_specials++] = tokens[i];
    }

    rg_tokenizer_opts o;
    tokenizer_opts_default(&o);
    /* GGUF does not record do_lower_case; llama.cpp's WordPiece tokenizer
     * always lowercases (and strips accents only by NFD), so do the same:
     * lowercase with strip_accents following it, as BertNormalizer does for
     * the uncased models this covers. */
    o.lowercase = 1;
    o.strip_accents = -1;
    o.special_tokens = specials;
    o.n_special_tokens = n_specials;
    /* [CLS] is the converter's bos (older files: cls_token_id), [SEP] its
     * seperator (sic, the key's spelling) or eos. */
    if ((st = special_token(g, "tokenizer.ggml.unknown_token_id", tokens, n, "[UNK]", &o.unk_token, e)) != RG_OK ||
        (st = special_token(g, "tokenizer.ggml.bos_token_id", tokens, n, "[CLS]", &o.cls_token, e)) != RG_OK ||
        (st = special_token(g, "tokenizer.ggml.cls_token_id", tokens, n, o.cls_token, &o.cls_token, e)) != RG_OK ||
        (st = special_token(g, "tokenizer.ggml.eos_token_id", tokens, n, "[SEP]", &o.sep_token, e)) != RG_OK ||
        (st = special_token(g, "tokenizer.ggml.seperator_token_id", tokens, n, o.sep_token, &o.sep_token, e)) != RG_OK)
        goto done;
    st = tokenizer_new((const char *const *)tokens, n, &o, out, e);
    if (st != RG_OK)
        rg_error_wrap(e, "tokenizer");
done:
    free(specials);
    free_list(tokens, n);
    return st;
}
