/* lm_reranker.c - yes/no scoring of (query, passage) prompts on the
 * decoder (see lm_reranker.h). */
#include "model/lm_reranker.h"

#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "model/decoder.h"

#define LM_SYSTEM "Judge whether the Document answers the Query. Note that the answer can only be \"yes\" or \"no\"."
static const char lm_head[] = "<|im_start|>system\n" LM_SYSTEM "<|im_end|>\n<|im_start|>user\n<Query>:";
static const char lm_mid[] = "\n<Document>:";
static const char lm_tail[] = "<|im_end|>\n<|im_start|>assistant\n";

/* Largest query or passage encoded (bytes): far beyond any context, and
 * bounds the tokenizer's work on hostile input. */
#define LM_MAX_TEXT ((size_t)1 << 22)

/* Passages prefilled together (decoder_prefill_batch) after their query's
 * prefix is copied into each one's cache: at most LM_BATCH_SEQS of them and
 * LM_BATCH_TOKENS of their own tokens (one forward pass), and their caches
 * together at most LM_BATCH_POSITIONS positions (188 MB of f32 cache for
 * SmolLM2-135M). */
#define LM_BATCH_SEQS 16
#define LM_BATCH_TOKENS 512
#define LM_BATCH_POSITIONS 4096

struct rg_lm_reranker {
    rg_decoder *dec;
    rg_bpe *tok;
    rg_bpe_ids head, mid, tail; /* the fixed pieces, tokenized at load */
    int32_t yes, no;
    size_t n_ctx;
    rg_lm_precision precision;
    rg_kv_cache *kv;                 /* the query's prefix, grown to the longest seen */
    rg_kv_cache *slot[LM_BATCH_SEQS]; /* one passage each, all of slot_cap positions */
    size_t slot_cap;
    float *logits; /* LM_BATCH_SEQS * n_vocab */
};

static rg_status single_token(const rg_bpe *tok, const char *word, int32_t *id, rg_err *e)
{
    rg_bpe_ids ids = {0};
    rg_status st = bpe_encode(tok, word, strlen(word), 0, &ids, e);
    if (!st && ids.n != 1)
        st = rg_error(e, RG_ERR_UNSUPPORTED, "\"%s\" is %zu tokens in this vocabulary; the yes/no reranker needs one",
                      word, ids.n);
    if (!st)
        *id = ids.ids[0];
    bpe_ids_free(&ids);
    return st;
}

/* A directory is the decoder's Hugging Face layout: its tokenizer.json. */
static rg_status load_tokenizer(const char *path, rg_bpe **out, rg_err *e)
{
    return fs_is_dir(path) ? bpe_load_dir(path, out, e) : bpe_load_gguf_path(path, out, e);
}

const char *lm_precision_name(rg_lm_precision p)
{
    switch (p) {
    case RG_LM_F32: return "f32";
    case RG_LM_Q8: return "q8";
    }
    return NULL;
}

int lm_precision_parse(const char *s)
{
    if (s && strcmp(s, "f32") == 0)
        return RG_LM_F32;
    if (s && strcmp(s, "q8") == 0)
        return RG_LM_Q8;
    return -1;
}

rg_status lm_reranker_load(const char *path, size_t threads, rg_device device, rg_lm_precision precision,
                           rg_lm_reranker **out, rg_err *e)
{
    *out = NULL;
    if (!lm_precision_name(precision))
        return rg_error(e, RG_ERR_INVALID, "unknown reranker precision %d", (int)precision);
    rg_lm_reranker *lr = calloc(1, sizeof *lr);
    if (!lr)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    lr->precision = precision;
    rg_status st = load_tokenizer(path, &lr->tok, e);
    if (!st) {
        int32_t s = bpe_piece_id(lr->tok, "<|im_start|>", 12), t = bpe_piece_id(lr->tok, "<|im_end|>", 10);
        if (s < 0 || t < 0 || !bpe_is_special(lr->tok, s) || !bpe_is_special(lr->tok, t))
            st = rg_error(e, RG_ERR_UNSUPPORTED,
                          "the causal-LM reranker's prompt uses ChatML turns (<|im_start|>, <|im_end|>), which "
                          "this model's vocabulary lacks (SmolLM2 and Qwen2/2.5/3 have them)");
    }
    if (!st)
        st = single_token(lr->tok, "yes", &lr->yes, e);
    if (!st)
        st = single_token(lr->tok, "no", &lr->no, e);
    if (!st)
        st = bpe_encode(lr->tok, lm_head, strlen(lm_head), RG_BPE_ADD_SPECIAL | RG_BPE_PARSE_SPECIAL, &lr->head, e);
    if (!st)
        st = bpe_encode(lr->tok, lm_mid, strlen(lm_mid), 0, &lr->mid, e);
    if (!st)
        st = bpe_encode(lr->tok, lm_tail, strlen(lm_tail), RG_BPE_PARSE_SPECIAL, &lr->tail, e);
    rg_decoder_opts dopts = {.threads = threads, .device = device, .device_set = 1,
                             .f32_activations = precision == RG_LM_F32};
    if (!st)
        st = decoder_load(path, &dopts, &lr->dec, e);
    if (!st) {
        lr->n_ctx = decoder_config(lr->dec)->n_ctx_train;
        if ((size_t)lr->yes >= decoder_vocab(lr->dec) || (size_t)lr->no >= decoder_vocab(lr->dec))
            st = rg_error(e, RG_ERR_INVALID, "the tokenizer's yes/no ids lie outside the model's %zu logits",
                          decoder_vocab(lr->dec));
        else if (lr->head.n + lr->mid.n + lr->tail.n + 2 > lr->n_ctx)
            st = rg_error(e, RG_ERR_INVALID, "the model's context (%zu tokens) cannot hold the reranking prompt",
                          lr->n_ctx);
    }
    if (!st && !(lr->logits = decoder_logits_alloc(lr->dec, LM_BATCH_SEQS)))
        st = rg_error(e, RG_ERR_NOMEM, "out of memory");
    if (st) {
        lm_reranker_free(lr);
        return st;
    }
    *out = lr;
    return RG_OK;
}

void lm_reranker_free(rg_lm_reranker *lr)
{
    if (!lr)
        return;
    kv_cache_free(lr->kv);
    for (size_t i = 0; i < LM_BATCH_SEQS; i++)
        kv_cache_free(lr->slot[i]);
    if (lr->dec)
        decoder_logits_free(lr->dec, lr->logits);
    decoder_free(lr->dec);
    bpe_free(lr->tok);
    bpe_ids_free(&lr->head);
    bpe_ids_free(&lr->mid);
    bpe_ids_free(&lr->tail);
    free(lr);
}

rg_device lm_reranker_device(const rg_lm_reranker *lr)
{
    return decoder_device(lr->dec);
}

const char *lm_reranker_device_desc(const rg_lm_reranker *lr)
{
    return decoder_device_desc(lr->dec);
}

rg_lm_precision lm_reranker_precision(const rg_lm_reranker *lr) { return lr->precision; }
size_t lm_reranker_context(const rg_lm_reranker *lr) { return lr->n_ctx; }
int32_t lm_reranker_yes_id(const rg_lm_reranker *lr) { return lr->yes; }
int32_t lm_reranker_no_id(const rg_lm_reranker *lr) { return lr->no; }

/* " " + text, tokenized as content (special tokens stay text). */
static rg_status encode_content(const rg_bpe *tok, const char *text, size_t len, rg_bpe_ids *out, rg_err *e)
{
    if (len > LM_MAX_TEXT)
        return rg_error(e, RG_ERR_TOO_LARGE, "a text of %zu bytes; at most %zu are read", len, LM_MAX_TEXT);
    char *buf = malloc(len + 2);
    if (!buf)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    buf[0] = ' ';
    memcpy(buf + 1, text, len);
    buf[len + 1] = '\0';
    rg_status st = bpe_encode(tok, buf, len + 1, 0, out, e);
    free(buf);
    return st;
}

static rg_status append(rg_bpe_ids *out, const int32_t *ids, size_t n, rg_err *e)
{
    for (size_t i = 0; i < n; i++) {
        rg_status st = bpe_ids_push(out, ids[i], e);
        if (st)
            return st;
    }
    return RG_OK;
}

static size_t limit_of(const rg_lm_reranker *lr, size_t max_tokens)
{
    return max_tokens && max_tokens < lr->n_ctx ? max_tokens : lr->n_ctx;
}

rg_status lm_reranker_encode_query(const rg_lm_reranker *lr, const char *query, size_t query_len, size_t max_tokens,
                                   int truncate, rg_bpe_ids *prefix, size_t *query_tokens, rg_err *e)
{
    size_t limit = limit_of(lr, max_tokens), fixed = lr->head.n + lr->mid.n + lr->tail.n;
    if (fixed >= limit)
        return rg_error(e, RG_ERR_INVALID, "a limit of %zu tokens cannot hold the reranking prompt (%zu tokens)",
                        limit, fixed);
    rg_bpe_ids q = {0};
    rg_status st = encode_content(lr->tok, query, query_len, &q, e);
    if (query_tokens)
        *query_tokens = q.n;
    if (!st && fixed + q.n > limit) {
        if (truncate)
            q.n = limit - fixed;
        else
            st = rg_error(e, RG_ERR_INVALID, "the query is %zu tokens; with the prompt's %zu that exceeds the "
                          "reranker's limit of %zu", q.n, fixed, limit);
    }
    if (!st)
        st = append(prefix, lr->head.ids, lr->head.n, e);
    if (!st)
        st = append(prefix, q.ids, q.n, e);
    if (!st)
        st = append(prefix, lr->mid.ids, lr->mid.n, e);
    bpe_ids_free(&q);
    return st;
}

rg_status lm_reranker_encode_passage(const rg_lm_reranker *lr, size_t n_prefix, const char *passage,
                                     size_t passage_len, size_t max_tokens, int truncate, rg_bpe_ids *rest, int *cut,
                                     rg_err *e)
{
    size_t limit = limit_of(lr, max_tokens);
    if (cut)
        *cut = 0;
    if (n_prefix + lr->tail.n > limit)
        return rg_error(e, RG_ERR_INVALID, "a prefix of %zu tokens leaves no room in the limit of %zu", n_prefix,
                        limit);
    rg_bpe_ids p = {0};
    rg_status st = encode_content(lr->tok, passage, passage_len, &p, e);
    size_t room = limit - n_prefix - lr->tail.n;
    if (!st && p.n > room) {
        if (truncate) {
            p.n = room;
            if (cut)
                *cut = 1;
        } else {
            st = rg_error(e, RG_ERR_INVALID, "the query and passage make %zu tokens; the reranker takes at most %zu",
                          n_prefix + p.n + lr->tail.n, limit);
        }
    }
    if (!st)
        st = append(rest, p.ids, p.n, e);
    if (!st)
        st = append(rest, lr->tail.ids, lr->tail.n, e);
    bpe_ids_free(&p);
    return st;
}

static rg_kv_type cache_type(const rg_lm_reranker *lr)
{
    return lr->precision == RG_LM_F32 ? RG_KV_F32 : RG_KV_F16;
}

/* need positions rounded up to 256, within the context */
static size_t cache_size(const rg_lm_reranker *lr, size_t need)
{
    size_t cap = (need + 255) / 256 * 256;
    return cap > lr->n_ctx ? lr->n_ctx : cap;
}

/* The prefix cache: at least need positions. */
static rg_status ensure_prefix_cache(rg_lm_reranker *lr, size_t need, rg_err *e)
{
    if (lr->kv && kv_cache_capacity(lr->kv) >= need)
        return RG_OK;
    kv_cache_free(lr->kv);
    lr->kv = NULL;
    return kv_cache_alloc(lr->dec, cache_size(lr, need), cache_type(lr), &lr->kv, e);
}

/* n slot caches of at least need positions each (all slots share one size:
 * a larger need frees the smaller ones). */
static rg_status ensure_slots(rg_lm_reranker *lr, size_t n, size_t need, rg_err *e)
{
    if (need > lr->slot_cap) {
        for (size_t i = 0; i < LM_BATCH_SEQS; i++) {
            kv_cache_free(lr->slot[i]);
            lr->slot[i] = NULL;
        }
        lr->slot_cap = cache_size(lr, need);
    }
    for (size_t i = 0; i < n; i++)
        if (!lr->slot[i]) {
            rg_status st = kv_cache_alloc(lr->dec, lr->slot_cap, cache_type(lr), &lr->slot[i], e);
            if (st != RG_OK)
                return st;
        }
    return RG_OK;
}

/* A group's prompts fit the model: *longest gets its longest rest. */
static rg_status check_prompts(const rg_lm_reranker *lr, size_t n_prefix, const rg_bpe_ids *rests, size_t n,
                               size_t *longest, rg_err *e)
{
    if (n_prefix == 0)
        return rg_error(e, RG_ERR_INVALID, "an empty reranking prompt prefix");
    *longest = 0;
    for (size_t i = 0; i < n; i++) {
        if (rests[i].n == 0)
            return rg_error(e, RG_ERR_INVALID, "passage %zu: an empty prompt", i);
        if (rests[i].n > *longest)
            *longest = rests[i].n;
    }
    if (*longest > lr->n_ctx || n_prefix > lr->n_ctx - *longest)
        return rg_error(e, RG_ERR_INVALID, "a prompt of %zu tokens exceeds the model's context of %zu",
                        n_prefix + *longest, lr->n_ctx);
    return RG_OK;
}

/* Slots of cache_size(need) positions that the position budget allows. */
static size_t slots_for(const rg_lm_reranker *lr, size_t need)
{
    size_t max_seqs = LM_BATCH_POSITIONS / cache_size(lr, need);
    if (max_seqs > LM_BATCH_SEQS)
        max_seqs = LM_BATCH_SEQS;
    return max_seqs ? max_seqs : 1;
}

static void put_scores(const rg_lm_reranker *lr, size_t n, float *scores)
{
    size_t V = decoder_vocab(lr->dec);
    for (size_t k = 0; k < n; k++)
        scores[k] = lr->logits[k * V + (size_t)lr->yes] - lr->logits[k * V + (size_t)lr->no];
}

rg_status lm_reranker_score(rg_lm_reranker *lr, const int32_t *prefix, size_t n_prefix, const rg_bpe_ids *rests,
                            size_t n, float *scores, rg_err *e)
{
    if (n == 0)
        return RG_OK;
    size_t longest;
    rg_status st = check_prompts(lr, n_prefix, rests, n, &longest, e);
    if (st)
        return st;
    if ((st = ensure_prefix_cache(lr, n_prefix, e)))
        return st;
    kv_cache_reset(lr->kv);
    if ((st = decoder_prefill(lr->dec, lr->kv, prefix, n_prefix, NULL, e)))
        return st;
    /* Every slot holds the longest prompt of this request, so slots of one
     * size serve every batch; as many slots as the position budget allows. */
    size_t max_seqs = slots_for(lr, n_prefix + longest);
    const int32_t *ids[LM_BATCH_SEQS];
    size_t lens[LM_BATCH_SEQS];
    for (size_t i = 0; i < n && st == RG_OK;) {
        /* passages i..j-1: one forward pass's worth (at least one) */
        size_t j = i, tokens = 0;
        while (j < n && j - i < max_seqs && (j == i || tokens + rests[j].n <= LM_BATCH_TOKENS))
            tokens += rests[j++].n;
        if ((st = ensure_slots(lr, j - i, n_prefix + longest, e)))
            break;
        for (size_t k = i; k < j && st == RG_OK; k++) {
            st = kv_cache_copy_prefix(lr->dec, lr->slot[k - i], lr->kv, n_prefix, e);
            ids[k - i] = rests[k].ids;
            lens[k - i] = rests[k].n;
        }
        if (st == RG_OK)
            st = decoder_prefill_batch(lr->dec, lr->slot, ids, lens, j - i, lr->logits, e);
        if (st == RG_OK)
            put_scores(lr, j - i, scores + i);
        i = j;
    }
    return st;
}

/* Several small groups in shared passes: every group's prefix into its
 * first slot (one batched prefill for all prefixes), copied into its other
 * slots, then every passage's rest (one batched prefill). The caller made
 * sure the passages fit the slots. */
static rg_status score_set(rg_lm_reranker *lr, rg_lm_group *const *m, size_t nm, size_t need, rg_err *e)
{
    size_t total = 0;
    for (size_t k = 0; k < nm; k++)
        total += m[k]->n;
    rg_status st = ensure_slots(lr, total, need, e);
    if (st)
        return st;
    rg_kv_cache *first[LM_BATCH_SEQS];
    const int32_t *ids[LM_BATCH_SEQS];
    size_t lens[LM_BATCH_SEQS], at = 0;
    for (size_t k = 0; k < nm; k++) {
        first[k] = lr->slot[at];
        kv_cache_reset(first[k]);
        ids[k] = m[k]->prefix;
        lens[k] = m[k]->n_prefix;
        at += m[k]->n;
    }
    if ((st = decoder_prefill_batch(lr->dec, first, ids, lens, nm, NULL, e)))
        return st;
    at = 0;
    for (size_t k = 0; k < nm; k++)
        for (size_t p = 0; p < m[k]->n; p++, at++) {
            if (p && (st = kv_cache_copy_prefix(lr->dec, lr->slot[at], first[k], m[k]->n_prefix, e)))
                return st;
            ids[at] = m[k]->rests[p].ids;
            lens[at] = m[k]->rests[p].n;
        }
    if ((st = decoder_prefill_batch(lr->dec, lr->slot, ids, lens, total, lr->logits, e)))
        return st;
    float all[LM_BATCH_SEQS];
    put_scores(lr, total, all);
    at = 0;
    for (size_t k = 0; k < nm; at += m[k]->n, k++)
        memcpy(m[k]->scores, all + at, m[k]->n * sizeof *all);
    return RG_OK;
}

void lm_reranker_score_groups(rg_lm_reranker *lr, rg_lm_group *g, size_t ng)
{
    rg_lm_group *set[LM_BATCH_SEQS];
    size_t i = 0;
    while (i < ng) {
        /* a set: the next groups that are small enough to share passes */
        size_t nm = 0, seqs = 0, need = 0;
        for (; i < ng; i++) {
            rg_err_clear(&g[i].err);
            size_t longest = 0;
            g[i].status = g[i].n ? check_prompts(lr, g[i].n_prefix, g[i].rests, g[i].n, &longest, &g[i].err) : RG_OK;
            if (g[i].status || g[i].n == 0)
                continue; /* answered already */
            size_t want = g[i].n_prefix + longest, need2 = want > need ? want : need;
            if (2 * g[i].n > LM_BATCH_SEQS || g[i].n > slots_for(lr, want)) {
                if (nm)
                    break; /* run the set first; this group comes back next round */
                /* a large group fills its own passes */
                g[i].status = lm_reranker_score(lr, g[i].prefix, g[i].n_prefix, g[i].rests, g[i].n, g[i].scores,
                                                &g[i].err);
                continue;
            }
            if (nm && seqs + g[i].n > slots_for(lr, need2))
                break;
            set[nm++] = &g[i];
            seqs += g[i].n;
            need = need2;
        }
        if (nm) {
            rg_err e;
            rg_err_clear(&e);
            rg_status st = score_set(lr, set, nm, need, &e);
            for (size_t k = 0; k < nm; k++)
                if ((set[k]->status = st))
                    set[k]->err = e;
        }
    }
}
