/* tokenizer_load.c - building a WordPiece tokenizer from tokenizer.json,
 * from vocab.txt + tokenizer_config.json, or from a token list. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/utf8.h"
#include "model/tokenizer_impl.h"

#define TOKENIZER_FILE_MAX ((size_t)256 << 20)
#define CONFIG_FILE_MAX ((size_t)16 << 20)

void tokenizer_opts_default(rg_tokenizer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->clean_text = 1;
    o->handle_chinese_chars = 1;
    o->strip_accents = -1;
    o->lowercase = 1;
    o->unk_token = "[UNK]";
    o->cls_token = "[CLS]";
    o->sep_token = "[SEP]";
    o->continuing_subword_prefix = "##";
    o->max_input_chars_per_word = 100;
}

static void template_free(wp_template *tpl)
{
    for (size_t i = 0; i < tpl->n; i++)
        free(tpl->items[i].ids);
    free(tpl->items);
    memset(tpl, 0, sizeof *tpl);
}

void tokenizer_free(rg_tokenizer *t)
{
    if (!t)
        return;
    vocab_free(t->vocab);
    free(t->prefix);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].text);
    free(t->added);
    template_free(&t->single);
    template_free(&t->pair);
    free(t);
}

static rg_status tok_alloc(size_t expected, rg_tokenizer **out, rg_err *e)
{
    rg_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a tokenizer");
    rg_status st = vocab_new(expected, &t->vocab, e);
    if (st) {
        free(t);
        return st;
    }
    t->clean_text = t->chinese = t->lowercase = 1;
    t->strip_accents = 1;
    t->unk_id = t->cls_id = t->sep_id = -1;
    t->pad_id = 0;
    t->max_chars = 100;
    *out = t;
    return RG_OK;
}

static rg_status set_prefix(rg_tokenizer *t, const char *p, rg_err *e)
{
    free(t->prefix);
    t->prefix = strdup(p ? p : "");
    if (!t->prefix)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a tokenizer");
    t->prefix_len = strlen(t->prefix);
    return RG_OK;
}

/* Registers a token matched in the raw text (duplicates are ignored). */
static rg_status add_added(rg_tokenizer *t, const char *text, int32_t id, rg_err *e)
{
    size_t len = strlen(text);
    if (len == 0 || id < 0)
        return RG_OK;
    if (!utf8_is_valid(text, len))
        return rg_error(e, RG_ERR_CORRUPT, "special token is not valid UTF-8");
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].text, text, len) == 0)
            return RG_OK;
    wp_added *na = realloc(t->added, (t->n_added + 1) * sizeof *na);
    if (!na)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a tokenizer");
    t->added = na;
    char *copy = strdup(text);
    if (!copy)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a tokenizer");
    t->added[t->n_added].text = copy;
    t->added[t->n_added].len = len;
    t->added[t->n_added].id = id;
    t->n_added++;
    return RG_OK;
}

static int added_cmp(const void *pa, const void *pb)
{
    const wp_added *a = pa, *b = pb;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return memcmp(a->text, b->text, a->len);
}

static rg_status tpl_push(wp_template *tpl, int seq, const int32_t *ids, size_t n_ids, int32_t type_id, rg_err *e)
{
    wp_tpl_item *ni = realloc(tpl->items, (tpl->n + 1) * sizeof *ni);
    if (!ni)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a tokenizer");
    tpl->items = ni;
    wp_tpl_item *it = &tpl->items[tpl->n];
    memset(it, 0, sizeof *it);
    it->seq = seq;
    it->type_id = type_id;
    if (n_ids) {
        it->ids = malloc(n_ids * sizeof *it->ids);
        if (!it->ids)
            return rg_error(e, RG_ERR_NOMEM, "out of memory for a tokenizer");
        memcpy(it->ids, ids, n_ids * sizeof *ids);
        it->n_ids = n_ids;
        tpl->n_special += n_ids;
    }
    tpl->n++;
    return RG_OK;
}

/* [CLS] A [SEP] and [CLS] A [SEP] B [SEP]; missing specials are left out. */
static rg_status tpl_bert(rg_tokenizer *t, rg_err *e)
{
    template_free(&t->single);
    template_free(&t->pair);
    rg_status st = RG_OK;
    int32_t cls = t->cls_id, sep = t->sep_id;
    if (cls >= 0)
        st = tpl_push(&t->single, -1, &cls, 1, 0, e);
    if (!st)
        st = tpl_push(&t->single, 0, NULL, 0, 0, e);
    if (!st && sep >= 0)
        st = tpl_push(&t->single, -1, &sep, 1, 0, e);
    if (!st && cls >= 0)
        st = tpl_push(&t->pair, -1, &cls, 1, 0, e);
    if (!st)
        st = tpl_push(&t->pair, 0, NULL, 0, 0, e);
    if (!st && sep >= 0)
        st = tpl_push(&t->pair, -1, &sep, 1, 0, e);
    if (!st)
        st = tpl_push(&t->pair, 1, NULL, 0, 1, e);
    if (!st && sep >= 0)
        st = tpl_push(&t->pair, -1, &sep, 1, 1, e);
    return st;
}

/* Checks and derived fields once the parts are in. */
static rg_status tok_finish(rg_tokenizer *t, const char *unk, rg_err *e)
{
    if (vocab_size(t->vocab) == 0)
        return rg_error(e, RG_ERR_CORRUPT, "the vocabulary is empty");
    t->max_key = vocab_max_key_len(t->vocab);
    t->unk_id = vocab_get(t->vocab, unk, strlen(unk));
    if (t->unk_id < 0)
        return rg_error(e, RG_ERR_CORRUPT, "the unknown token %.64s is not in the vocabulary", unk);
    if (t->max_chars > WP_MAX_CHARS_LIMIT)
        return rg_error(e, RG_ERR_UNSUPPORTED, "max_input_chars_per_word %zu is above %d", t->max_chars,
                        WP_MAX_CHARS_LIMIT);
    if (!t->prefix) {
        rg_status st = set_prefix(t, "##", e);
        if (st)
            return st;
    }
    /* an added token's id is what the model's embedding table is indexed
     * by: one past the vocabulary would read past the table (found by
     * fuzz_tokenizer_json) */
    for (size_t i = 0; i < t->n_added; i++)
        if ((size_t)t->added[i].id >= (size_t)vocab_id_limit(t->vocab))
            return rg_error(e, RG_ERR_CORRUPT, "added token %.64s has id %d, past the vocabulary's %zu ids",
                            t->added[i].text, (int)t->added[i].id, (size_t)vocab_id_limit(t->vocab));
    /* Each text once in its template (truncation budgets for it once;
     * found by fuzz_tokenizer_json: "[CLS] A [CLS] A [SEP] B [SEP]" made
     * pairs longer than the limit) and template ids in the vocabulary. */
    const wp_template *tpls[2] = {&t->single, &t->pair};
    for (int k = 0; k < 2; k++) {
        size_t count[2] = {0, 0};
        for (size_t i = 0; i < tpls[k]->n; i++) {
            const wp_tpl_item *it = &tpls[k]->items[i];
            if (it->seq >= 0)
                count[it->seq]++;
            for (size_t j = 0; j < it->n_ids; j++)
                if ((size_t)it->ids[j] >= (size_t)vocab_id_limit(t->vocab))
                    return rg_error(e, RG_ERR_CORRUPT, "a template special token has id %d, past the vocabulary's %zu ids",
                                    (int)it->ids[j], (size_t)vocab_id_limit(t->vocab));
        }
        if (count[0] != 1 || count[1] != (size_t)k)
            return rg_error(e, RG_ERR_UNSUPPORTED,
                            "the %s template holds text A %zu times and text B %zu times (once each expected)",
                            k ? "pair" : "single", count[0], count[1]);
    }
    if (t->n_added)
        qsort(t->added, t->n_added, sizeof *t->added, added_cmp);
    memset(t->added_first, 0, sizeof t->added_first);
    for (size_t i = 0; i < t->n_added; i++) {
        unsigned char b = (unsigned char)t->added[i].text[0];
        t->added_first[b >> 3] |= (unsigned char)(1u << (b & 7));
    }
    wp_tables_init();
    return RG_OK;
}

static int32_t lookup(const rg_tokenizer *t, const char *tok)
{
    return tok && *tok ? vocab_get(t->vocab, tok, strlen(tok)) : -1;
}

/* ---- from parts ------------------------------------------------------- */

rg_status tokenizer_new(const char *const *tokens, size_t n_tokens, const rg_tokenizer_opts *opts,
                        rg_tokenizer **out, rg_err *e)
{
    *out = NULL;
    rg_tokenizer_opts def;
    if (!opts) {
        tokenizer_opts_default(&def);
        opts = &def;
    }
    if (n_tokens >= (size_t)RG_VOCAB_MAX_ID)
        return rg_error(e, RG_ERR_UNSUPPORTED, "vocabulary of %zu tokens is too large", n_tokens);
    rg_tokenizer *t;
    rg_status st = tok_alloc(n_tokens, &t, e);
    if (st)
        return st;
    for (size_t i = 0; i < n_tokens && !st; i++) {
        const char *tok = tokens[i] ? tokens[i] : "";
        size_t len = strlen(tok);
        if (!utf8_is_valid(tok, len))
            st = rg_error(e, RG_ERR_CORRUPT, "vocabulary entry %zu is not valid UTF-8", i);
        else
            st = vocab_put(t->vocab, tok, len, (int32_t)i, e);
    }
    t->clean_text = opts->clean_text;
    t->chinese = opts->handle_chinese_chars;
    t->lowercase = opts->lowercase;
    t->strip_accents = opts->strip_accents < 0 ? opts->lowercase : opts->strip_accents;
    t->max_chars = opts->max_input_chars_per_word ? opts->max_input_chars_per_word : 100;
    const char *unk = opts->unk_token ? opts->unk_token : "[UNK]";
    if (!st)
        st = set_prefix(t, opts->continuing_subword_prefix ? opts->continuing_subword_prefix : "##", e);
    if (!st) {
        t->cls_id = lookup(t, opts->cls_token);
        t->sep_id = lookup(t, opts->sep_token);
        int32_t pad = lookup(t, "[PAD]");
        t->pad_id = pad >= 0 ? pad : 0;
        const char *std[] = {unk, opts->cls_token, opts->sep_token, "[PAD]", "[MASK]"};
        for (size_t i = 0; i < sizeof std / sizeof *std && !st; i++)
            st = add_added(t, std[i] ? std[i] : "", lookup(t, std[i]), e);
        for (size_t i = 0; i < opts->n_special_tokens && !st; i++)
            st = add_added(t, opts->special_tokens[i], lookup(t, opts->special_tokens[i]), e);
    }
    if (!st)
        st = tpl_bert(t, e);
    if (!st)
        st = tok_finish(t, unk, e);
    if (st) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return RG_OK;
}

/* ---- tokenizer.json --------------------------------------------------- */

static rg_status read_json(const char *path, size_t max, cJSON **out, rg_err *e)
{
    *out = NULL;
    rg_buf b;
    rg_buf_init(&b, 0);
    rg_status st = fs_read_file(path, max, &b, e);
    if (st) {
        rg_buf_free(&b);
        return st;
    }
    cJSON *j = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    rg_buf_free(&b);
    if (!j)
        return rg_error(e, RG_ERR_CORRUPT, "%s: not valid JSON", path);
    *out = j;
    return RG_OK;
}

static int json_bool(const cJSON *obj, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    return def;
}

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A non-negative integer that fits int32. */
static int json_id(const cJSON *v, int32_t *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= (double)RG_VOCAB_MAX_ID ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return 0;
    *out = (int32_t)v->valuedouble;
    return 1;
}

static rg_status parse_template(rg_tokenizer *t, const cJSON *items, const cJSON *specials, wp_template *tpl,
                                const char *path, rg_err *e)
{
    if (!cJSON_IsArray(items))
        return rg_error(e, RG_ERR_CORRUPT, "%s: post_processor template is not an array", path);
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        const cJSON *body = sp ? sp : sq;
        const char *id = json_str(body, "id");
        int32_t type_id = 0;
        const cJSON *tv = cJSON_GetObjectItemCaseSensitive(body, "type_id");
        if (!id || (tv && !json_id(tv, &type_id)))
            return rg_error(e, RG_ERR_CORRUPT, "%s: malformed post_processor template item", path);
        rg_status st;
        if (sq) {
            int seq = strcmp(id, "A") == 0 ? 0 : strcmp(id, "B") == 0 ? 1 : -1;
            if (seq < 0)
                return rg_error(e, RG_ERR_CORRUPT, "%s: template sequence %.32s", path, id);
            st = tpl_push(tpl, seq, NULL, 0, type_id, e);
        } else {
            const cJSON *def = cJSON_GetObjectItemCaseSensitive(specials, id);
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
            int n = cJSON_GetArraySize(ids);
            if (!cJSON_IsArray(ids) || n <= 0 || n > 64)
                return rg_error(e, RG_ERR_CORRUPT, "%s: template special token %.64s has no ids", path, id);
            int32_t buf[64];
            for (int k = 0; k < n; k++)
                if (!json_id(cJSON_GetArrayItem(ids, k), &buf[k]))
                    return rg_error(e, RG_ERR_CORRUPT, "%s: bad id of special token %.64s", path, id);
            st = tpl_push(tpl, -1, buf, (size_t)n, type_id, e);
        }
        if (st)
            return st;
    }
    (void)t;
    return RG_OK;
}

static rg_status parse_post(rg_tokenizer *t, const cJSON *pp, const char *path, rg_err *e)
{
    template_free(&t->single);
    template_free(&t->pair);
    if (!pp || cJSON_IsNull(pp)) { /* no specials at all */
        rg_status st = tpl_push(&t->single, 0, NULL, 0, 0, e);
        if (!st)
            st = tpl_push(&t->pair, 0, NULL, 0, 0, e);
        if (!st)
            st = tpl_push(&t->pair, 1, NULL, 0, 1, e);
        return st;
    }
    const char *type = json_str(pp, "type");
    if (type && strcmp(type, "TemplateProcessing") == 0) {
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
        rg_status st = parse_template(t, cJSON_GetObjectItemCaseSensitive(pp, "single"), specials, &t->single, path, e);
        if (!st)
            st = parse_template(t, cJSON_GetObjectItemCaseSensitive(pp, "pair"), specials, &t->pair, path, e);
        /* [CLS]/[SEP] ids for callers: the first and last special of "single" */
        if (!st && t->single.n) {
            if (t->single.items[0].seq < 0)
                t->cls_id = t->single.items[0].ids[0];
            const wp_tpl_item *last = &t->single.items[t->single.n - 1];
            if (last->seq < 0)
                t->sep_id = last->ids[last->n_ids - 1];
        }
        return st;
    }
    if (type && strcmp(type, "BertProcessing") == 0) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(pp, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(pp, "sep");
        if (!json_id(cJSON_GetArrayItem(cls, 1), &t->cls_id) || !json_id(cJSON_GetArrayItem(sep, 1), &t->sep_id))
            return rg_error(e, RG_ERR_CORRUPT, "%s: malformed BertProcessing", path);
        return tpl_bert(t, e);
    }
    return rg_error(e, RG_ERR_UNSUPPORTED, "%s: post_processor %.64s is not supported", path, type ? type : "?");
}

rg_status tokenizer_load_json(const char *path, rg_tokenizer **out, rg_err *e)
{
    *out = NULL;
    cJSON *root;
    rg_status st = read_json(path, TOKENIZER_FILE_MAX, &root, e);
    if (st)
        return st;
    rg_tokenizer *t = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const char *mtype = json_str(model, "type");
    if (!cJSON_IsObject(model)) {
        st = rg_error(e, RG_ERR_CORRUPT, "%s: no model", path);
        goto done;
    }
    if ((mtype && strcmp(mtype, "WordPiece") != 0) || (!mtype && cJSON_GetObjectItemCaseSensitive(model, "merges"))) {
        st = rg_error(e, RG_ERR_UNSUPPORTED, "%s: tokenizer model %.64s is not supported (WordPiece only)", path,
                      mtype ? mtype : "BPE");
        goto done;
    }
    if (!cJSON_IsObject(vocab)) {
        st = rg_error(e, RG_ERR_CORRUPT, "%s: model.vocab is not an object", path);
        goto done;
    }
    st = tok_alloc((size_t)cJSON_GetArraySize(vocab), &t, e);
    if (st)
        goto done;
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab)
    {
        int32_t id;
        const char *key = v->string ? v->string : "";
        size_t klen = strlen(key);
        if (!json_id(v, &id)) {
            st = rg_error(e, RG_ERR_CORRUPT, "%s: vocabulary id of %.64s is not a valid id", path, key);
            goto done;
        }
        if (!utf8_is_valid(key, klen)) {
            st = rg_error(e, RG_ERR_CORRUPT, "%s: vocabulary entry %ld is not valid UTF-8", path, (long)id);
            goto done;
        }
        if ((st = vocab_put(t->vocab, key, klen, id, e)))
            goto done;
    }
    if ((size_t)vocab_id_limit(t->vocab) > 2 * vocab_size(t->vocab) + 1024) {
        st = rg_error(e, RG_ERR_CORRUPT, "%s: vocabulary ids are not dense", path);
        goto done;
    }
    const char *unk = json_str(model, "unk_token");
    if (!unk)
        unk = "[UNK]";
    const cJSON *pfx = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    if ((st = set_prefix(t, cJSON_IsString(pfx) ? pfx->valuestring : "##", e)))
        goto done;
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
    if (cJSON_IsNumber(mc)) {
        if (mc->valuedouble < 1 || mc->valuedouble > WP_MAX_CHARS_LIMIT) {
            st = rg_error(e, RG_ERR_UNSUPPORTED, "%s: max_input_chars_per_word out of range", path);
            goto done;
        }
        t->max_chars = (size_t)mc->valuedouble;
    }

    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!norm || cJSON_IsNull(norm)) {
        t->clean_text = t->chinese = t->strip_accents = t->lowercase = 0;
    } else {
        const char *nt = json_str(norm, "type");
        if (!nt || strcmp(nt, "BertNormalizer") != 0) {
            st = rg_error(e, RG_ERR_UNSUPPORTED, "%s: normalizer %.64s is not supported (BertNormalizer only)", path,
                          nt ? nt : "?");
            goto done;
        }
        t->clean_text = json_bool(norm, "clean_text", 1);
        t->chinese = json_bool(norm, "handle_chinese_chars", 1);
        t->lowercase = json_bool(norm, "lowercase", 1);
        t->strip_accents = json_bool(norm, "strip_accents", t->lowercase); /* null follows lowercase */
    }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const char *pt = json_str(pre, "type");
    if (!pt || strcmp(pt, "BertPreTokenizer") != 0) {
        st = rg_error(e, RG_ERR_UNSUPPORTED, "%s: pre_tokenizer %.64s is not supported (BertPreTokenizer only)", path,
                      pt ? pt : "none");
        goto done;
    }

    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *a;
    cJSON_ArrayForEach(a, added)
    {
        const char *content = json_str(a, "content");
        int32_t id;
        if (!content || !json_id(cJSON_GetObjectItemCaseSensitive(a, "id"), &id)) {
            st = rg_error(e, RG_ERR_CORRUPT, "%s: malformed added token", path);
            goto done;
        }
        if ((st = add_added(t, content, id, e)))
            goto done;
        if (json_bool(a, "normalized", 0) || json_bool(a, "lstrip", 0) || json_bool(a, "rstrip", 0) ||
            json_bool(a, "single_word", 0))
            LOG_WARN("%s: added token %.64s is matched in the raw text as it is (its normalized, lstrip, rstrip "
                     "and single_word flags are not supported)",
                     path, content);
        if (strcmp(content, "[PAD]") == 0)
            t->pad_id = id;
    }
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(root, "padding");
    if (cJSON_IsObject(pad)) {
        int32_t pid;
        if (json_id(cJSON_GetObjectItemCaseSensitive(pad, "pad_id"), &pid))
            t->pad_id = pid;
    }
    if ((st = parse_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), path, e)))
        goto done;
    st = tok_finish(t, unk, e);

done:
    cJSON_Delete(root);
    if (st) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return RG_OK;
}

/* ---- vocab.txt + tokenizer_config.json -------------------------------- */

/* A special token in a transformers config: "x" or {"content": "x", ...}. */
static const char *config_token(const cJSON *cfg, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsObject(v))
        return json_str(v, "content");
    return NULL;
}

static const char *config_pick(const cJSON *a, const cJSON *b, const char *key, const char *def)
{
    const char *s = config_token(a, key);
    if (!s)
        s = config_token(b, key);
    return s ? s : def;
}

rg_status tokenizer_load_vocab(const char *vocab_path, const char *config_path, rg_tokenizer **out, rg_err *e)
{
    *out = NULL;
    rg_buf b;
    rg_buf_init(&b, 0);
    rg_status st = fs_read_file(vocab_path, TOKENIZER_FILE_MAX, &b, e);
    if (st) {
        rg_buf_free(&b);
        return st;
    }
    cJSON *cfg = NULL, *map = NULL;
    rg_tokenizer *t = NULL;
    if (config_path && fs_is_file(config_path) && (st = read_json(config_path, CONFIG_FILE_MAX, &cfg, e)))
        goto done;
    if (config_path) { /* special_tokens_map.json next to the config */
        char mp[4096];
        const char *slash = strrchr(config_path, '/');
        int dl = slash ? (int)(slash - config_path + 1) : 0;
        if (snprintf(mp, sizeof mp, "%.*sspecial_tokens_map.json", dl, config_path) < (int)sizeof mp &&
            fs_is_file(mp) && (st = read_json(mp, CONFIG_FILE_MAX, &map, e)))
            goto done;
    }
    /* lines as Python's universal newlines split them */
    size_t lines = 0;
    for (size_t i = 0; i < b.len; i++)
        lines += b.data[i] == '\n' || b.data[i] == '\r';
    if ((st = tok_alloc(lines + 1, &t, e)))
        goto done;
    int32_t id = 0;
    for (size_t p = 0; p < b.len;) {
        size_t q = p;
        while (q < b.len && b.data[q] != '\n' && b.data[q] != '\r')
            q++;
        if (!utf8_is_valid(b.data + p, q - p)) {
            st = rg_error(e, RG_ERR_CORRUPT, "%s: line %ld is not valid UTF-8", vocab_path, (long)id + 1);
            goto done;
        }
        if (id >= RG_VOCAB_MAX_ID - 1) {
            st = rg_error(e, RG_ERR_UNSUPPORTED, "%s: too many tokens", vocab_path);
            goto done;
        }
        if ((st = vocab_put(t->vocab, b.data + p, q - p, id, e)))
            goto done;
        id++;
        if (q < b.len && b.data[q] == '\r' && q + 1 < b.len && b.data[q + 1] == '\n')
            q++;
        p = q + 1;
    }
    t->lowercase = json_bool(cfg, "do_lower_case", 1);
    t->chinese = json_bool(cfg, "tokenize_chinese_chars", 1);
    t->strip_accents = json_bool(cfg, "strip_accents", t->lowercase);
    t->clean_text = 1;
    const char *unk = config_pick(cfg, map, "unk_token", "[UNK]");
    const char *cls = config_pick(cfg, map, "cls_token", "[CLS]");
    const char *sep = config_pick(cfg, map, "sep_token", "[SEP]");
    const char *pad = config_pick(cfg, map, "pad_token", "[PAD]");
    const char *mask = config_pick(cfg, map, "mask_token", "[MASK]");
    t->cls_id = lookup(t, cls);
    t->sep_id = lookup(t, sep);
    t->pad_id = lookup(t, pad) >= 0 ? lookup(t, pad) : 0;
    const char *std[] = {pad, unk, cls, sep, mask};
    for (size_t i = 0; i < sizeof std / sizeof *std && !st; i++)
        st = add_added(t, std[i], lookup(t, std[i]), e);
    for (int k = 0; k < 2 && !st; k++) {
        const cJSON *extra = cJSON_GetObjectItemCaseSensitive(k ? map : cfg, "additional_special_tokens");
        const cJSON *x;
        cJSON_ArrayForEach(x, extra)
        {
            const char *s = cJSON_IsString(x) ? x->valuestring : json_str(x, "content");
            if (s && (st = add_added(t, s, lookup(t, s), e)))
                break;
        }
    }
    /* newer configs list every added token with its id */
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
    const cJSON *x;
    cJSON_ArrayForEach(x, dec)
    {
        if (st)
            break;
        const char *s = json_str(x, "content");
        char *endp;
        long idv = x->string ? strtol(x->string, &endp, 10) : -1;
        if (s && idv >= 0 && idv < RG_VOCAB_MAX_ID && endp != x->string && *endp == '\0')
            st = add_added(t, s, (int32_t)idv, e);
    }
    if (!st)
        st = set_prefix(t, "##", e);
    if (!st)
        st = tpl_bert(t, e);
    if (!st)
        st = tok_finish(t, unk, e);

done:
    rg_buf_free(&b);
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    if (st) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return RG_OK;
}

rg_status tokenizer_load(const char *dir, rg_tokenizer **out, rg_err *e)
{
    *out = NULL;
    char p1[4096], p2[4096];
    if (snprintf(p1, sizeof p1, "%s/tokenizer.json", dir) >= (int)sizeof p1)
        return rg_error(e, RG_ERR_INVALID, "model path too long");
    if (fs_is_file(p1)) {
        rg_status st = tokenizer_load_json(p1, out, e);
        return st ? rg_error_wrap(e, "loading the tokenizer") : RG_OK;
    }
    snprintf(p1, sizeof p1, "%s/vocab.txt", dir);
    snprintf(p2, sizeof p2, "%s/tokenizer_config.json", dir);
    if (fs_is_file(p1)) {
        rg_status st = tokenizer_load_vocab(p1, p2, out, e);
        return st ? rg_error_wrap(e, "loading the tokenizer") : RG_OK;
    }
    return rg_error(e, RG_ERR_NOT_FOUND, "%s: no tokenizer.json or vocab.txt", dir);
}

/* ---- accessors -------------------------------------------------------- */

size_t tokenizer_vocab_size(const rg_tokenizer *t) { return (size_t)vocab_id_limit(t->vocab); }

int32_t tokenizer_token_id(const rg_tokenizer *t, const char *token) { return lookup(t, token); }

const char *tokenizer_id_token(const rg_tokenizer *t, int32_t id) { return vocab_token(t->vocab, id, NULL); }

int32_t tokenizer_cls_id(const rg_tokenizer *t) { return t->cls_id; }
int32_t tokenizer_sep_id(const rg_tokenizer *t) { return t->sep_id; }
int32_t tokenizer_pad_id(const rg_tokenizer *t) { return t->pad_id; }
int32_t tokenizer_unk_id(const rg_tokenizer *t) { return t->unk_id; }

size_t tokenizer_num_special(const rg_tokenizer *t, int pair) { return pair ? t->pair.n_special : t->single.n_special; }
