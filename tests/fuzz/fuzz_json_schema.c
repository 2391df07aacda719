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
 * that cJSON (more lenient than JSON) parses to an object. */
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
static int required_nesting(const rg_json_prefix *p)
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

static void run_document(const rg_json_schema *s, const uint8_t *doc, size_t n)
{
    rg_json_prefix p;
    json_prefix_init(&p, s);
    size_t i = 0;
    for (; i < n; i++) {
        if (json_prefix_done(&p)) {
            rg_json_prefix t = p;
            FUZZ_CHECK(!json_prefix_feed(&t, (const char *)doc + i, 1), "a closed object took byte %zu", i);
            break;
        }
        if (!json_prefix_feed(&p, (const char *)doc + i, 1))
            break;
        FUZZ_CHECK(json_prefix_done(&p) || continues(&p) || required_nesting(&p),
                   "a dead end after byte %zu: no byte can follow", i);
    }
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
