/* bpe_load_json.c - a BPE tokenizer from a Hugging Face tokenizer.json (and
 * tokenizer_config.json for the chat template and the BOS/EOS names).
 *
 * Supported shapes, the ones the generator families ship:
 *   byte-level: normalizer null or NFC; pre_tokenizer ByteLevel, Split
 *     (Regex, Isolated), Digits, or a Sequence of them; decoder ByteLevel.
 *   SentencePiece (model BPE with byte_fallback), in either of the two ways
 *     transformers exports it:
 *     legacy: normalizer Sequence[Prepend("▁"), Replace(" ", "▁")], no
 *       pre-tokenizer (every segment between added tokens gets the prefix);
 *     Metaspace (non-legacy Llama, Mistral v0.3, newer re-exports):
 *       normalizer null, pre_tokenizer Metaspace(replacement "▁",
 *       prepend_scheme first|always|never, split). As in the library: only
 *       ' ' becomes ▁; the prefix goes in front unless the segment already
 *       begins with ▁ (so " Hi" is "▁Hi", not "▁▁Hi"); "first" means only
 *       the segment at the very start of the text, so text after a special
 *       token gets none; split cuts before every ▁. The old spelling
 *       add_prefix_space (true: "always"; false: "never") is read too.
 *     decoder: a Sequence of Replace("▁", " ") or Metaspace (exactly one of
 *       them, before Fuse), ByteFallback, Fuse, Strip(" ", 1, 0) after Fuse.
 *       The Metaspace decoder (prepend_scheme other than never) drops every
 *       ▁ of the first token instead of making it a space.
 *   post_processor TemplateProcessing (its special tokens around $A become
 *     what RG_BPE_ADD_SPECIAL adds), ByteLevel, or a Sequence of them.
 * Anything else is refused with RG_ERR_UNSUPPORTED naming it, and a file
 * the library itself would refuse (a Metaspace without a replacement, an
 * unknown prepend_scheme, add_prefix_space false with a scheme other than
 * never) with RG_ERR_CORRUPT.
 *
 * Known difference: ids that spell U+2581 in byte tokens (<0xE2><0x96><0x81>,
 * never produced by encoding, since "▁" is in every such vocabulary) decode
 * to the character itself; the library makes it a space when its decoder
 * runs ByteFallback before Replace/Metaspace. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "model/bpe_impl.h"

#define TOKENIZER_FILE_MAX ((size_t)256 << 20)
#define CONFIG_FILE_MAX ((size_t)16 << 20)

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jtrue(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static int is_type(const cJSON *o, const char *type)
{
    const char *t = jstr(o, "type");
    return t && !strcmp(t, type);
}

#define META "\xE2\x96\x81" /* U+2581 */

/* A Metaspace pre-tokenizer or decoder: its prepend scheme and split flag,
 * with the library's defaults (always, split) and its checks. */
static rg_status parse_metaspace(const cJSON *m, int *prepend, int *split, rg_err *e)
{
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(m, "replacement");
    if (!cJSON_IsString(rep))
        return rg_error(e, RG_ERR_CORRUPT, "Metaspace without a replacement character");
    if (strcmp(rep->valuestring, META))
        return rg_error(e, RG_ERR_UNSUPPORTED, "Metaspace replacement other than U+2581");
    *prepend = BPE_PREPEND_ALWAYS;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(m, "prepend_scheme");
    if (ps && !cJSON_IsNull(ps)) {
        const char *v = cJSON_IsString(ps) ? ps->valuestring : "";
        if (!strcmp(v, "first"))
            *prepend = BPE_PREPEND_FIRST;
        else if (!strcmp(v, "never"))
            *prepend = BPE_PREPEND_NEVER;
        else if (strcmp(v, "always"))
            return rg_error(e, RG_ERR_CORRUPT, "Metaspace prepend_scheme %.20s is not first, always or never", v);
    }
    /* the library refuses add_prefix_space false unless the scheme is never */
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(m, "add_prefix_space")) && *prepend != BPE_PREPEND_NEVER)
        return rg_error(e, RG_ERR_CORRUPT, "Metaspace add_prefix_space false contradicts its prepend_scheme");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(m, "split");
    if (sp && !cJSON_IsNull(sp) && !cJSON_IsBool(sp))
        return rg_error(e, RG_ERR_CORRUPT, "Metaspace split is not true or false");
    *split = !cJSON_IsFalse(sp);
    return RG_OK;
}

/* One pre-tokenizer step (not a Sequence). */
static rg_status pre_step(rg_bpe *t, const cJSON *p, int *byte_level, rg_err *e)
{
    if (is_type(p, "ByteLevel")) {
        *byte_level = 1;
        if (jtrue(p, "add_prefix_space"))
            return rg_error(e, RG_ERR_UNSUPPORTED, "ByteLevel pre-tokenizer with add_prefix_space");
        return cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "use_regex")) ? RG_OK
                                                                               : bpe_add_split(t, BPE_RE_GPT2, e);
    }
    if (is_type(p, "Digits"))
        return bpe_add_split(t, jtrue(p, "individual_digits") ? BPE_RE_DIGIT : BPE_RE_DIGITS, e);
    if (is_type(p, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = jstr(pat, "Regex");
        const char *behavior = jstr(p, "behavior");
        if (!re || !behavior || strcmp(behavior, "Isolated") || jtrue(p, "invert"))
            return rg_error(e, RG_ERR_UNSUPPORTED, "Split pre-tokenizer other than an isolated regex");
        return bpe_add_split(t, re, e);
    }
    const char *type = jstr(p, "type");
    return rg_error(e, RG_ERR_UNSUPPORTED, "pre-tokenizer %.40s is not supported", type ? type : "(untyped)");
}

static rg_status set_pre_tokenizer(rg_bpe *t, const cJSON *p, int *byte_level, rg_err *e)
{
    if (!p || cJSON_IsNull(p))
        return RG_OK;
    if (is_type(p, "Metaspace")) {
        t->metaspace = 1;
        return parse_metaspace(p, &t->meta_prepend, &t->meta_split, e);
    }
    if (is_type(p, "Sequence")) {
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"))
        {
            rg_status st = pre_step(t, s, byte_level, e);
            if (st)
                return st;
        }
        return RG_OK;
    }
    return pre_step(t, p, byte_level, e);
}

/* normalizer: null, NFC, or SentencePiece's Prepend("▁") + Replace(" ", "▁"). */
static rg_status set_normalizer(rg_bpe *t, const cJSON *n, int *spm, rg_err *e)
{
    if (!n || cJSON_IsNull(n))
        return RG_OK;
    if (is_type(n, "NFC")) {
        t->nfc = 1;
        return RG_OK;
    }
    int prepend = 0, replace = 0, other = 0;
    const cJSON *s;
    const cJSON *list = is_type(n, "Sequence") ? cJSON_GetObjectItemCaseSensitive(n, "normalizers") : NULL;
    cJSON_ArrayForEach(s, list)
    {
        const char *content = jstr(s, "content");
        const char *pat = jstr(cJSON_GetObjectItemCaseSensitive(s, "pattern"), "String");
        const char *pre = jstr(s, "prepend");
        if (is_type(s, "Prepend") && pre && !strcmp(pre, "\xE2\x96\x81"))
            prepend = 1;
        else if (is_type(s, "Replace") && pat && content && !strcmp(pat, " ") && !strcmp(content, "\xE2\x96\x81"))
            replace = 1;
        else
            other = 1;
    }
    if (!replace || other)
        return rg_error(e, RG_ERR_UNSUPPORTED, "normalizer %.40s is not supported",
                        jstr(n, "type") ? jstr(n, "type") : "(untyped)");
    *spm = 1;
    t->add_dummy_prefix = prepend;
    return RG_OK;
}

/* A SentencePiece decoder: ▁ to space once (Replace or Metaspace, before
 * Fuse), ByteFallback, Fuse, and Strip(" ", 1, 0) after Fuse. */
static rg_status set_spm_decoder(rg_bpe *t, const cJSON *d, rg_err *e)
{
    if (!d || cJSON_IsNull(d))
        return rg_error(e, RG_ERR_UNSUPPORTED, "SentencePiece tokenizer without a decoder");
    const cJSON *list = is_type(d, "Sequence") ? cJSON_GetObjectItemCaseSensitive(d, "decoders") : NULL;
    int spaces = 0, bytes = 0, fused = 0, n = 0;
    const cJSON *s = list ? list->child : d;
    for (; s && n < 16; s = list ? s->next : NULL, n++) {
        const char *pat = jstr(cJSON_GetObjectItemCaseSensitive(s, "pattern"), "String");
        const char *content = jstr(s, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(s, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(s, "stop");
        if (is_type(s, "Replace") && pat && content && !strcmp(pat, META) && !strcmp(content, " ") && !fused) {
            spaces++;
        } else if (is_type(s, "Metaspace") && !fused) {
            int prepend, split;
            rg_status st = parse_metaspace(s, &prepend, &split, e);
            if (st)
                return rg_error_wrap(e, "decoder");
            t->dec_meta_first = prepend != BPE_PREPEND_NEVER;
            spaces++;
        } else if (is_type(s, "ByteFallback")) {
            bytes = 1;
        } else if (is_type(s, "Fuse")) {
            fused = 1;
        } else if (is_type(s, "Strip") && fused && content && !strcmp(content, " ") && cJSON_IsNumber(start) &&
                   start->valuedouble == 1 && cJSON_IsNumber(stop) && stop->valuedouble == 0) {
            t->dec_strip_space = 1;
        } else {
            const char *type = jstr(s, "type");
            return rg_error(e, RG_ERR_UNSUPPORTED,
                            "SentencePiece decoder step %.40s (in this place or with these settings) is not supported",
                            type ? type : "(untyped)");
        }
    }
    if (s)
        return rg_error(e, RG_ERR_UNSUPPORTED, "SentencePiece decoder of more than 16 steps");
    if (spaces != 1 || !bytes)
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "SentencePiece decoder must turn U+2581 into a space once (Replace or Metaspace) and "
                        "have ByteFallback");
    return RG_OK;
}

/* Special tokens of a TemplateProcessing's "single" template around $A. */
static rg_status set_post(rg_bpe *t, const cJSON *p, rg_err *e)
{
    if (!p || cJSON_IsNull(p) || is_type(p, "ByteLevel"))
        return RG_OK;
    if (is_type(p, "Sequence")) {
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(p, "processors"))
        {
            rg_status st = set_post(t, s, e);
            if (st)
                return st;
        }
        return RG_OK;
    }
    if (!is_type(p, "TemplateProcessing"))
        return rg_error(e, RG_ERR_UNSUPPORTED, "post-processor %.40s is not supported",
                        jstr(p, "type") ? jstr(p, "type") : "(untyped)");
    int seen_a = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(p, "single"))
    {
        if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) {
            seen_a = 1;
            continue;
        }
        const char *name = jstr(cJSON_GetObjectItemCaseSensitive(item, "SpecialToken"), "id");
        int32_t id = name ? vocab_get(t->vocab, name, strlen(name)) : -1;
        if (id < 0)
            return rg_error(e, RG_ERR_CORRUPT, "post-processor token %.60s is not in the vocabulary",
                            name ? name : "(unnamed)");
        size_t *n = seen_a ? &t->n_suffix : &t->n_prefix;
        if (*n >= 4)
            return rg_error(e, RG_ERR_UNSUPPORTED, "post-processor adds more than 4 tokens on one side");
        (seen_a ? t->suffix : t->prefix)[(*n)++] = id;
    }
    return RG_OK;
}

/* A token name in tokenizer_config.json: a string or {"content": ...}. */
static int32_t config_token(const rg_bpe *t, const cJSON *cfg, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : jstr(v, "content");
    return s ? vocab_get(t->vocab, s, strlen(s)) : -1;
}

static rg_status read_config(rg_bpe *t, const char *path, rg_err *e)
{
    rg_buf b;
    rg_buf_init(&b, 0);
    rg_status st = fs_read_file(path, CONFIG_FILE_MAX, &b, e);
    if (st) {
        rg_buf_free(&b);
        return st == RG_ERR_NOT_FOUND ? RG_OK : st;
    }
    cJSON *cfg = cJSON_ParseWithLength(b.data, b.len);
    rg_buf_free(&b);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return rg_error(e, RG_ERR_CORRUPT, "%s is not a JSON object", path);
    }
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    const char *src = cJSON_IsString(tpl) ? tpl->valuestring : NULL;
    const cJSON *named;
    const cJSON *list = cJSON_IsArray(tpl) ? tpl : NULL;
    cJSON_ArrayForEach(named, list)
    {
        /* a list of {name, template}: the "default" one */
        const char *name = jstr(named, "name");
        if (name && !strcmp(name, "default"))
            src = jstr(named, "template");
    }
    if (src && !(t->chat_template = strdup(src)))
        st = rg_error(e, RG_ERR_NOMEM, "out of memory");
    int32_t id;
    if ((id = config_token(t, cfg, "bos_token")) >= 0)
        t->bos = id;
    if ((id = config_token(t, cfg, "eos_token")) >= 0)
        t->eos = id;
    if ((id = config_token(t, cfg, "pad_token")) >= 0)
        t->pad = id;
    cJSON_Delete(cfg);
    return st;
}

/* merges: ["a b", ...] (older files) or [["a", "b"], ...]. */
static rg_status add_merges(rg_bpe *t, const cJSON *merges, rg_err *e)
{
    size_t n = (size_t)cJSON_GetArraySize(merges);
    rg_status st = bpe_merges_reserve(t, n, e);
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges)
    {
        if (st)
            break;
        if (cJSON_IsString(m)) {
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp)
                st = rg_error(e, RG_ERR_CORRUPT, "merge %zu is not \"left right\"", i);
            else
                st = bpe_add_merge(t, m->valuestring, (size_t)(sp - m->valuestring), sp + 1, strlen(sp + 1), i, e);
        } else if (cJSON_GetArraySize(m) == 2 && cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            const char *a = cJSON_GetArrayItem(m, 0)->valuestring, *b = cJSON_GetArrayItem(m, 1)->valuestring;
            st = bpe_add_merge(t, a, strlen(a), b, strlen(b), i, e);
        } else {
            st = rg_error(e, RG_ERR_CORRUPT, "merge %zu is neither \"left right\" nor [left, right]", i);
        }
        i++;
    }
    return st;
}

static rg_status build(const cJSON *root, const char *config_json, rg_bpe **out, rg_err *e)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!is_type(model, "BPE"))
        return rg_error(e, RG_ERR_UNSUPPORTED, "model type %.40s is not BPE",
                        jstr(model, "type") ? jstr(model, "type") : "(none)");
    const char *csp = jstr(model, "continuing_subword_prefix"), *eow = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return rg_error(e, RG_ERR_UNSUPPORTED, "BPE with subword prefixes or suffixes is not supported");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return rg_error(e, RG_ERR_CORRUPT, "model.vocab or model.merges is missing");

    /* ids: the vocabulary's and the added tokens' */
    double max_id = -1;
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= RG_VOCAB_MAX_ID)
            return rg_error(e, RG_ERR_CORRUPT, "vocab entry %.60s has no valid id", v->string);
        if (v->valuedouble > max_id)
            max_id = v->valuedouble;
    }
    cJSON_ArrayForEach(v, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= RG_VOCAB_MAX_ID || !jstr(v, "content"))
            return rg_error(e, RG_ERR_CORRUPT, "an added token has no valid id or content");
        if (id->valuedouble > max_id)
            max_id = id->valuedouble;
    }
    rg_bpe *t;
    int spm = 0, byte_level = 0;
    rg_status st = bpe_alloc(RG_BPE_BYTE_LEVEL, (size_t)max_id + 1, &t, e);
    if (st)
        return st;
    cJSON_ArrayForEach(v, vocab)
    {
        if ((st = vocab_put(t->vocab, v->string, strlen(v->string), (int32_t)v->valuedouble, e)))
            break;
    }
    cJSON_ArrayForEach(v, added)
    {
        if (st)
            break;
        const char *content = jstr(v, "content");
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(v, "id")->valuedouble;
        if (vocab_get(t->vocab, content, strlen(content)) != id)
            st = vocab_put(t->vocab, content, strlen(content), id, e);
        if (!st)
            st = bpe_add_added(t, content, strlen(content), id, jtrue(v, "special"), jtrue(v, "lstrip"),
                               jtrue(v, "rstrip"), e);
    }
    if (!st)
        st = add_merges(t, merges, e);
    if (!st)
        st = set_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), &spm, e);
    if (!st)
        st = set_pre_tokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &byte_level, e);
    if (!st && t->metaspace && (spm || t->nfc))
        st = rg_error(e, RG_ERR_UNSUPPORTED, "a Metaspace pre-tokenizer with a normalizer");
    if (!st && t->metaspace)
        spm = 1;
    if (!st && spm == byte_level)
        st = rg_error(e, RG_ERR_UNSUPPORTED,
                      spm ? "a tokenizer both byte-level and SentencePiece" : "neither a ByteLevel pre-tokenizer "
                                                                              "nor SentencePiece's normalizer");
    if (!st) {
        t->kind = spm ? RG_BPE_SPM : RG_BPE_BYTE_LEVEL;
        t->byte_fallback = jtrue(model, "byte_fallback");
        t->fuse_unk = jtrue(model, "fuse_unk");
        t->ignore_merges = jtrue(model, "ignore_merges");
        const char *unk = jstr(model, "unk_token");
        if (unk)
            t->unk = vocab_get(t->vocab, unk, strlen(unk));
        snprintf(t->pre_name, sizeof t->pre_name, "%s", spm ? "spm" : "tokenizer.json");
        st = set_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), e);
    }
    if (!st && spm) {
        if (!t->byte_fallback)
            st = rg_error(e, RG_ERR_UNSUPPORTED, "SentencePiece BPE without byte_fallback");
        else
            st = set_spm_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), e);
    }
    if (!st && config_json)
        st = read_config(t, config_json, e);
    if (!st && t->bos < 0 && t->n_prefix)
        t->bos = t->prefix[0];
    if (!st)
        st = bpe_finish(t, e);
    if (st) {
        bpe_free(t);
        return st;
    }
    *out = t;
    return RG_OK;
}

rg_status bpe_load_json(const char *tokenizer_json, const char *config_json, rg_bpe **out, rg_err *e)
{
    *out = NULL;
    rg_buf b;
    rg_buf_init(&b, 0);
    rg_status st = fs_read_file(tokenizer_json, TOKENIZER_FILE_MAX, &b, e);
    if (st) {
        rg_buf_free(&b);
        return st;
    }
    cJSON *root = cJSON_ParseWithLength(b.data, b.len);
    rg_buf_free(&b);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rg_error(e, RG_ERR_CORRUPT, "%s is not a JSON object", tokenizer_json);
    }
    st = build(root, config_json, out, e);
    cJSON_Delete(root);
    return st ? rg_error_wrap(e, "%s", tokenizer_json) : RG_OK;
}

rg_status bpe_load_dir(const char *dir, rg_bpe **out, rg_err *e)
{
    char tok[4096], cfg[4096];
    if ((size_t)snprintf(tok, sizeof tok, "%s/tokenizer.json", dir) >= sizeof tok ||
        (size_t)snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir) >= sizeof cfg)
        return rg_error(e, RG_ERR_INVALID, "model path is too long");
    return bpe_load_json(tok, cfg, out, e);
}
