/* bpe_load_gguf.c - a BPE tokenizer from a GGUF file's tokenizer.ggml.*
 * metadata (llama.cpp's keys; what transformers reads to rebuild the
 * tokenizer from a GGUF file):
 *   model            "gpt2" (byte-level) or "llama" (SentencePiece BPE)
 *   pre              the byte-level pre-tokenizer's name (llama.cpp's)
 *   tokens           the vocabulary, id = index
 *   merges           "left right", best first (required for gpt2)
 *   scores           SentencePiece piece scores (merge order when no merges)
 *   token_type       1 normal, 2 unknown, 3 control, 4 user-defined,
 *                    5 unused, 6 byte: control tokens become special added
 *                    tokens, user-defined ones plain added tokens
 *   bos/eos/unknown/padding/eot_token_id, add_bos_token, add_eos_token,
 *   add_space_prefix, and tokenizer.chat_template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/bpe_impl.h"

#define MAX_TEMPLATE ((size_t)1 << 20)

enum { TT_CONTROL = 3, TT_USER_DEFINED = 4 };

/* Which split regexes a byte-level vocabulary's "pre" name means. */
static rg_status set_pre(rg_bpe *t, const char *pre, rg_err *e)
{
    rg_status st;
    if (!pre || !strcmp(pre, "default") || !strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2")) {
        st = bpe_add_split(t, BPE_RE_GPT2, e);
        pre = "gpt2";
    } else if (!strcmp(pre, "smollm")) {
        /* HF: Digits(individual_digits) then ByteLevel's GPT-2 split */
        if (!(st = bpe_add_split(t, BPE_RE_DIGIT, e)))
            st = bpe_add_split(t, BPE_RE_GPT2, e);
    } else if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3")) {
        st = bpe_add_split(t, BPE_RE_LLAMA3, e);
    } else if (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen")) {
        st = bpe_add_split(t, BPE_RE_QWEN2, e);
    } else {
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "byte-level pre-tokenizer \"%.40s\" is not supported (supported: gpt2, smollm, "
                        "llama-bpe, qwen2)",
                        pre);
    }
    if (!st)
        snprintf(t->pre_name, sizeof t->pre_name, "%s", pre);
    return st;
}

/* An optional id key: -1 when absent, an error when not an id in range. */
static rg_status get_id(const gguf_file *g, const char *key, size_t n_tokens, int32_t *out, rg_err *e)
{
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        return RG_OK;
    int64_t v;
    rg_status st = gguf_kv_i64(kv, &v, e);
    if (st)
        return st;
    if (v < 0 || (uint64_t)v >= n_tokens)
        return rg_error(e, RG_ERR_CORRUPT, "%s = %lld is outside the vocabulary of %zu tokens", key, (long long)v,
                        n_tokens);
    *out = (int32_t)v;
    return RG_OK;
}

static rg_status get_bool(const gguf_file *g, const char *key, int *out, rg_err *e)
{
    const gguf_kv *kv = gguf_find_kv(g, key);
    return kv ? gguf_kv_bool(kv, out, e) : RG_OK;
}

/* An array key of n elements of the given kind (strings, ints or floats). */
static const gguf_kv *get_array(const gguf_file *g, const char *key, int required, size_t n, int kind, rg_err *e,
                                rg_status *st)
{
    *st = RG_OK;
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) {
        if (required)
            *st = rg_error(e, RG_ERR_CORRUPT, "%s is missing", key);
        return NULL;
    }
    gguf_type at = gguf_kv_array_type(kv);
    int ok = at != GGUF_TYPE_COUNT;
    if (ok && kind == 's')
        ok = at == GGUF_TYPE_STRING;
    else if (ok && kind == 'f')
        ok = at == GGUF_TYPE_FLOAT32 || at == GGUF_TYPE_FLOAT64;
    else if (ok && kind == 'i')
        ok = at != GGUF_TYPE_STRING && at != GGUF_TYPE_ARRAY && at != GGUF_TYPE_FLOAT32 && at != GGUF_TYPE_FLOAT64 &&
             at != GGUF_TYPE_BOOL;
    if (!ok) {
        *st = rg_error(e, RG_ERR_CORRUPT, "%s is not an array of %s", key,
                       kind == 's' ? "strings" : kind == 'f' ? "floats" : "integers");
        return NULL;
    }
    if (n && gguf_kv_array_len(kv) != n) {
        *st = rg_error(e, RG_ERR_CORRUPT, "%s has %zu entries for %zu tokens", key, gguf_kv_array_len(kv), n);
        return NULL;
    }
    return kv;
}

static rg_status load(const gguf_file *g, rg_bpe **out, rg_err *e)
{
    const gguf_kv *kv = gguf_find_kv(g, "tokenizer.ggml.model");
    const char *model = kv ? gguf_kv_string(kv, NULL) : NULL;
    if (!model)
        return rg_error(e, RG_ERR_UNSUPPORTED, "no tokenizer.ggml.model string: the file has no tokenizer");
    rg_bpe_kind kind;
    if (!strcmp(model, "gpt2"))
        kind = RG_BPE_BYTE_LEVEL;
    else if (!strcmp(model, "llama"))
        kind = RG_BPE_SPM;
    else
        return rg_error(e, RG_ERR_UNSUPPORTED, "tokenizer model \"%.40s\" is not BPE (gpt2 or llama)", model);

    rg_status st;
    const gguf_kv *tokens = get_array(g, "tokenizer.ggml.tokens", 1, 0, 's', e, &st);
    if (st)
        return st;
    size_t n = gguf_kv_array_len(tokens);
    const gguf_kv *types = get_array(g, "tokenizer.ggml.token_type", 0, n, 'i', e, &st);
    if (st)
        return st;
    const gguf_kv *scores = get_array(g, "tokenizer.ggml.scores", 0, n, 'f', e, &st);
    if (st)
        return st;
    const gguf_kv *merges = get_array(g, "tokenizer.ggml.merges", kind == RG_BPE_BYTE_LEVEL, 0, 's', e, &st);
    if (st)
        return st;
    if (kind == RG_BPE_SPM && !merges && !scores)
        return rg_error(e, RG_ERR_CORRUPT, "a SentencePiece vocabulary needs tokenizer.ggml.scores or merges");

    rg_bpe *t;
    if ((st = bpe_alloc(kind, n, &t, e)))
        return st;
    for (size_t i = 0; i < n && !st; i++) {
        size_t len;
        const char *s = gguf_kv_array_string(tokens, i, &len);
        if (!s)
            st = rg_error(e, RG_ERR_CORRUPT, "tokenizer.ggml.tokens[%zu] is unreadable", i);
        else
            st = vocab_put(t->vocab, s, len, (int32_t)i, e);
    }
    if (!st && merges) {
        size_t nm = gguf_kv_array_len(merges);
        st = bpe_merges_reserve(t, nm, e);
        for (size_t i = 0; i < nm && !st; i++) {
            size_t len;
            const char *s = gguf_kv_array_string(merges, i, &len);
            const char *sp = s ? memchr(s, ' ', len) : NULL;
            if (!sp)
                st = rg_error(e, RG_ERR_CORRUPT, "tokenizer.ggml.merges[%zu] is not \"left right\"", i);
            else
                st = bpe_add_merge(t, s, (size_t)(sp - s), sp + 1, len - (size_t)(sp - s) - 1, i, e);
        }
    } else if (!st) {
        if (!(t->scores = malloc(n * sizeof *t->scores)))
            st = rg_error(e, RG_ERR_NOMEM, "out of memory for scores");
        for (size_t i = 0; i < n && !st; i++) {
            double v;
            if (!(st = gguf_kv_array_f64(scores, i, &v, e)))
                t->scores[i] = (float)v;
        }
    }
    for (size_t i = 0; types && i < n && !st; i++) {
        int64_t ty;
        if ((st = gguf_kv_array_i64(types, i, &ty, e)))
            break;
        if (ty != TT_CONTROL && ty != TT_USER_DEFINED)
            continue;
        size_t len;
        const char *s = gguf_kv_array_string(tokens, i, &len);
        if (kind == RG_BPE_BYTE_LEVEL && ty == TT_CONTROL) {
            /* a control token spelled outside the byte alphabet is a
             * mislabel in the file; transformers leaves it out, so do we */
            int spelled = 1;
            for (size_t k = 0; k < len && spelled;) {
                uint32_t cp;
                size_t bad, cl = bpe_utf8_next((const unsigned char *)s + k, len - k, &cp, &bad);
                spelled = cl && bpe_spelled_byte(cp) >= 0;
                k += cl ? cl : bad;
            }
            if (!spelled)
                continue;
        }
        if (len && vocab_get(t->vocab, s, len) == (int32_t)i)
            st = bpe_add_added(t, s, len, (int32_t)i, ty == TT_CONTROL, 0, 0, e);
    }
    if (!st)
        st = get_id(g, "tokenizer.ggml.bos_token_id", n, &t->bos, e);
    if (!st)
        st = get_id(g, "tokenizer.ggml.eos_token_id", n, &t->eos, e);
    if (!st)
        st = get_id(g, "tokenizer.ggml.unknown_token_id", n, &t->unk, e);
    if (!st)
        st = get_id(g, "tokenizer.ggml.padding_token_id", n, &t->pad, e);
    if (!st)
        st = get_id(g, "tokenizer.ggml.eot_token_id", n, &t->eot, e);
    /* llama.cpp adds BOS to a SentencePiece vocabulary unless told not to */
    int add_bos = kind == RG_BPE_SPM, add_eos = 0, add_prefix = kind == RG_BPE_SPM;
    if (!st)
        st = get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, e);
    if (!st)
        st = get_bool(g, "tokenizer.ggml.add_eos_token", &add_eos, e);
    if (!st)
        st = get_bool(g, "tokenizer.ggml.add_space_prefix", &add_prefix, e);
    if (!st && add_bos && t->bos >= 0)
        t->prefix[t->n_prefix++] = t->bos;
    if (!st && add_eos && t->eos >= 0)
        t->suffix[t->n_suffix++] = t->eos;
    if (!st && kind == RG_BPE_SPM) {
        t->add_dummy_prefix = add_prefix;
        t->dec_strip_space = add_prefix; /* llama.cpp drops the prefix's space again */
        t->byte_fallback = 1;
        t->fuse_unk = 1;
        snprintf(t->pre_name, sizeof t->pre_name, "spm");
    } else if (!st) {
        /* A byte missing from a byte-level vocabulary (SmolLM2 lacks 0x14,
         * ...) is dropped by llama.cpp, and by the library with the
         * tokenizer.json these files come from (no unk_token there). The
         * unknown_token_id the converter writes (<|endoftext|> for SmolLM2)
         * is not used: it would put an end of text into a user's prompt. */
        t->drop_unknown = 1;
        const gguf_kv *pre = gguf_find_kv(g, "tokenizer.ggml.pre");
        st = set_pre(t, pre ? gguf_kv_string(pre, NULL) : NULL, e);
    }
    const gguf_kv *tpl = gguf_find_kv(g, "tokenizer.chat_template");
    if (!st && tpl) {
        size_t len;
        const char *s = gguf_kv_string(tpl, &len);
        if (!s || len > MAX_TEMPLATE)
            st = rg_error(e, RG_ERR_CORRUPT, "tokenizer.chat_template is not a string of at most %zu bytes",
                          MAX_TEMPLATE);
        else if (!(t->chat_template = strndup(s, len)))
            st = rg_error(e, RG_ERR_NOMEM, "out of memory");
    }
    if (!st)
        st = bpe_finish(t, e);
    if (st) {
        bpe_free(t);
        return st;
    }
    *out = t;
    return RG_OK;
}

rg_status bpe_load_gguf(const gguf_file *g, rg_bpe **out, rg_err *e)
{
    *out = NULL;
    rg_status st = load(g, out, e);
    return st ? rg_error_wrap(e, "GGUF tokenizer") : RG_OK;
}

rg_status bpe_load_gguf_path(const char *path, rg_bpe **out, rg_err *e)
{
    *out = NULL;
    gguf_file *g;
    rg_status st = gguf_open(path, &g, e);
    if (st)
        return st;
    st = load(g, out, e);
    gguf_close(g);
    return st ? rg_error_wrap(e, "%s", path) : RG_OK;
}
