/* fuzz_json_schema.c - a request's response_format JSON schema (untrusted:
 * any client sends one) through json_schema_compile, then a document
 * through the recognizer it compiles to (generate/json_mode.h).
 *
 * Input: the schema's JSON text, a NUL byte, the document's bytes. A
 * schema that does not parse as JSON is skipped (the API answers 400
 * before compiling); one that parses but does not compile must say why.
 * The document is fed byte by byte with the compiled schema and with none
 * (JSON mode): a closed object accepts no further byte, an open one
 * always has a next byte (continues), and a document taken whole is JSON
 * that cJSON (more lenient than JSON) parses to an object. Where the
 * document stops (its end, or the first byte refused), the vocabulary
 * mask the engine takes from the trie (json_mask_logits) must keep exactly
 * the tokens that json_token_allowed allows one by one, on a SentencePiece
 * vocabulary (tests/fixtures/bpe). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

#include "generate/json_mode.h"
#include "generate/json_schema_nodes.h"

/* Some byte can follow p. Every prefix the recognizer accepts must be one
 * that can still be completed (the engine masks the vocabulary with it: a
 * dead end would leave no token), short of a schema that requires nesting
 * past JSON_MODE_MAX_DEPTH. */
static int continues(const rg_json_prefix *p)
{
    for (int c = 0; c < 256; c++) {
        rg_json_prefix t = *p;
        char b = (char)c;
        if (json_prefix_feed(&t, &b, 1))
            return 1;
    }
    return 0;
}

/* The one dead end allowed: at the depth limit, the container on top
 * still needs a value that can only be an object or an array (a required
 * property, or items short of minItems). */
static int path_required_nesting(const rg_json_path *p)
{
    if (p->depth < JSON_MODE_MAX_DEPTH)
        return 0;
    const rg_json_schema *s = p->schema;
    const js_node *t = &s->nodes[p->frame_node[p->depth - 1]];
    uint16_t next = p->frame_next[p->depth - 1];
    if (t->kind == JN_ARRAY)
        return next < t->min_items && !json_schema_has_scalar(s, t->child);
    if (t->kind != JN_OBJECT)
        return 0;
    for (uint16_t i = next; i < t->n; i++)
        if (s->props[t->first + i].required)
            return !json_schema_has_scalar(s, s->props[t->first + i].node);
    return 0;
}

/* ... on every path the text may be read as (one that could go on would) */
static int required_nesting(const rg_json_prefix *p)
{
    for (uint8_t k = 0; k < p->n; k++)
        if (!path_required_nesting(&p->path[k]))
            return 0;
    return p->n > 0;
}

typedef struct mask_vocab {
    rg_bpe *tok;
    rg_json_vocab v;
    float *logits, *masked;
} mask_vocab;

static const mask_vocab *vocab(void)
{
    static mask_vocab m;
    static int loaded;
    if (!loaded) {
        loaded = 1;
        rg_err e = {0};
        if (bpe_load_gguf_path("tests/fixtures/bpe/ggml-vocab-llama-spm.gguf", &m.tok, &e) != RG_OK ||
            json_vocab_init(&m.v, m.tok, bpe_vocab_size(m.tok), bpe_eos_id(m.tok), bpe_eot_id(m.tok), &e) != RG_OK)
            FUZZ_CHECK(0, "the fixture vocabulary: %s", e.msg);
        m.logits = malloc(m.v.n_vocab * sizeof *m.logits);
        m.masked = malloc(m.v.n_vocab * sizeof *m.masked);
        FUZZ_CHECK(m.logits && m.masked, "out of memory");
        for (size_t i = 0; i < m.v.n_vocab; i++)
            m.logits[i] = (float)i;
    }
    return &m;
}

static void check_mask(const rg_json_prefix *p)
{
    const mask_vocab *m = vocab();
    size_t allowed = json_mask_logits(&m->v, p, m->logits, m->masked), counted = 0;
    for (size_t i = 0; i < m->v.n_vocab; i++) {
        int ok = json_token_allowed(&m->v, p, (int32_t)i);
        counted += (size_t)ok;
        FUZZ_CHECK(ok ? m->masked[i] == m->logits[i] : m->masked[i] == -INFINITY,
                   "token %zu: the trie's mask says %s, the token alone %s", i, ok ? "no" : "yes",
                   ok ? "yes" : "no");
    }
    FUZZ_CHECK(allowed == counted, "the mask counts %zu tokens, %zu allowed", allowed, counted);
}

static void run_document(const rg_json_schema *s, const uint8_t *doc, size_t n)
{
    rg_json_prefix p, good;
    json_prefix_init(&p, s);
    good = p;
    size_t i = 0;
    for (; i < n; i++) {
        if (json_prefix_done(&p)) {
            rg_json_prefix t = p;
            FUZZ_CHECK(!json_prefix_feed(&t, (const char *)doc + i, 1), "a closed object took byte %zu", i);
            break;
        }
        if (!json_prefix_feed(&p, (const char *)doc + i, 1))
            break;
        good = p;
        FUZZ_CHECK(json_prefix_done(&p) || continues(&p) || required_nesting(&p),
                   "a dead end after byte %zu: no byte can follow", i);
    }
    check_mask(&good);
    if (i == n && json_prefix_done(&p)) {
        cJSON *j = cJSON_ParseWithLength((const char *)doc, n);
        FUZZ_CHECK(j && cJSON_IsObject(j), "accepted what cJSON does not parse to an object (%zu bytes)", n);
        cJSON_Delete(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t schema_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *doc = nul ? nul + 1 : data + size;
    size_t doc_len = (size_t)(data + size - doc);

    run_document(NULL, doc, doc_len);
    cJSON *j = cJSON_ParseWithLength((const char *)data, schema_len);
    if (!j)
        return 0;
    rg_err e = {0};
    rg_json_schema *s = NULL;
    rg_status st = json_schema_compile(j, &s, &e);
    cJSON_Delete(j); /* the compiled schema keeps nothing of the parse */
    FUZZ_CHECK(st == RG_OK ? s != NULL : s == NULL && e.msg[0], "json_schema_compile: status %d, '%s'", (int)st,
               e.msg);
    if (s)
        run_document(s, doc, doc_len);
    json_schema_free(s);
    return 0;
}
