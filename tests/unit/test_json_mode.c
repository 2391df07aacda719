/* test_json_mode.c - JSON mode (generate/json_mode.h): the byte-level
 * recognizer against hand-picked documents and against cJSON on random
 * ones, the token level on real vocabularies (byte-level BPE and
 * SentencePiece), and the engine: JSON-mode answers of SmolLM2-135M-Instruct
 * (models/, as test_gen_engine) are JSON objects where the same requests
 * without it are not. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "gen_model.h"
#include "generate/engine.h"
#include "generate/json_mode.h"
#include "model/sampling.h"

static int is_object_text(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    int ok = j && cJSON_IsObject(j);
    cJSON_Delete(j);
    return ok;
}

/* 1 when every prefix of doc is accepted and the whole is complete, and no
 * shorter prefix is. */
static int accepts_whole(const char *doc)
{
    rg_json_prefix p;
    json_prefix_init(&p, NULL);
    size_t n = strlen(doc);
    for (size_t i = 0; i < n; i++) {
        if (json_prefix_done(&p) || !json_prefix_feed(&p, doc + i, 1))
            return 0;
    }
    return json_prefix_done(&p);
}

/* 1 when doc is rejected at some byte (0 when it is a prefix or whole). */
static int rejects(const char *doc)
{
    rg_json_prefix p;
    json_prefix_init(&p, NULL);
    return !json_prefix_feed(&p, doc, strlen(doc));
}

static void test_documents(void)
{
    static const char *const good[] = {
        "{}",
        " \n{ }",
        "{\"a\":1}",
        "{\"a\": -0.5e+10, \"b\": [true, false, null, \"x\", {}], \"c\": {\"d\": []}}",
        "{\"n\": [0, -0, 10, 1.25, 2E5, 3e-2, 4.0e0]}",
        "{\"s\": \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"}",
        "{\"\xc3\xa9t\xc3\xa9\": \"\xe2\x82\xac \xf0\x9f\x90\x9d \xed\x9f\xbf \xf4\x8f\xbf\xbf\"}",
        "{\"\": \"\"}",
        "{\"a\":[[[[1]]]]}",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        CHECK_MSG(accepts_whole(good[i]), "rejected: %s", good[i]);
        cJSON *j = cJSON_Parse(good[i]);
        CHECK_MSG(j && cJSON_IsObject(j), "cJSON disagrees on %s", good[i]);
        cJSON_Delete(j);
    }
    static const char *const bad[] = {
        "[]",           /* JSON mode answers an object */
        "\"x\"", "1", "true",
        "{,}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "{'a':1}", "{a:1}",
        "{\"a\":01}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":1.5.}",
        "{\"a\":tru}", "{\"a\":trues}", "{\"a\":nul1}", "{\"a\":NaN}",
        "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"\\udefa\"}", "{\"a\":\"\\uD83Dx\"}",
        "{\"a\":\"\\uD83D\\u0041\"}", "{\"a\":\"\\uD83D\"}", "{\"a\":\"\\uDC00\\uDE00\"}", "{\"a\":\"\x01\"}", "{\"a\":\"\n\"}",
        "{\"a\":\"\xc0\xaf\"}", /* overlong */
        "{\"a\":\"\xe0\x80\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}", /* overlong, a surrogate */
        "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\x80\"}", "{\"a\":\"\xc3\x28\"}",
        "{\"a\":[1}", "{\"a\":{]}", "{}}", "{} ", "{}x", "{}{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_MSG(rejects(bad[i]), "accepted: %s", bad[i]);
    /* prefixes are neither rejected nor done */
    rg_json_prefix p;
    json_prefix_init(&p, NULL);
    static const char part[] = "{\"a\": [1, {\"b\": \"\xe2\x82";
    CHECK(json_prefix_feed(&p, part, sizeof part - 1) && !json_prefix_done(&p));

    /* whitespace runs between tokens are bounded, strings are not */
    char ws[64];
    snprintf(ws, sizeof ws, "{%*s}", JSON_MODE_MAX_WS, "");
    CHECK(accepts_whole(ws));
    snprintf(ws, sizeof ws, "{%*s}", JSON_MODE_MAX_WS + 1, "");
    CHECK(rejects(ws));
    snprintf(ws, sizeof ws, "{\"%*s\":1}", 40, "");
    CHECK(accepts_whole(ws));
    /* nesting is bounded */
    char deep[2 * JSON_MODE_MAX_DEPTH + 8];
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int d = 1; d < JSON_MODE_MAX_DEPTH; d++)
        deep[n++] = '[';
    for (int d = 1; d < JSON_MODE_MAX_DEPTH; d++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    CHECK(accepts_whole(deep));
    memmove(deep + 5, deep + 4, n - 3);
    deep[4] = '['; /* one more level */
    CHECK(rejects(deep));
}

/* ---- schemas ---------------------------------------------------------------------- */

static rg_json_schema *compile_text(const char *text, rg_err *e)
{
    cJSON *j = cJSON_Parse(text);
    rg_json_schema *s = NULL;
    if (!j) {
        rg_error(e, RG_ERR_INVALID, "test schema does not parse");
        return NULL;
    }
    json_schema_compile(j, &s, e);
    cJSON_Delete(j);
    return s;
}

static int schema_accepts(const rg_json_schema *s, const char *doc)
{
    rg_json_prefix p;
    json_prefix_init(&p, s);
    size_t n = strlen(doc);
    for (size_t i = 0; i < n; i++)
        if (json_prefix_done(&p) || !json_prefix_feed(&p, doc + i, 1))
            return 0;
    return json_prefix_done(&p);
}

typedef struct schema_case {
    const char *schema;
    const char *const good[6];
    const char *const bad[8];
} schema_case;

static void test_schemas(void)
{
    static const schema_case cases[] = {
        {"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
         "\"colour\":{\"enum\":[\"black\",\"white\",\"ginger\"]},\"indoor\":{\"type\":\"boolean\"},"
         "\"toys\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1,\"maxItems\":2}},"
         "\"required\":[\"name\",\"age\",\"colour\",\"indoor\",\"toys\"],\"additionalProperties\":false}",
         {"{\"name\":\"Tom\",\"age\":3,\"colour\":\"black\",\"indoor\":false,\"toys\":[\"ball\"]}",
          "{ \"name\" : \"\\u00e9\", \"age\": -12, \"colour\": \"ginger\", \"indoor\": true, \"toys\": [\"a\", \"b\"] }"},
         {"{\"name\":\"Tom\"}", "{\"age\":3,\"name\":\"Tom\",\"colour\":\"black\",\"indoor\":false,\"toys\":[\"b\"]}",
          "{\"name\":\"Tom\",\"age\":3.5,\"colour\":\"black\",\"indoor\":false,\"toys\":[\"b\"]}",
          "{\"name\":\"Tom\",\"age\":3,\"colour\":\"blue\",\"indoor\":false,\"toys\":[\"b\"]}",
          "{\"name\":\"Tom\",\"age\":3,\"colour\":\"black\",\"indoor\":false,\"toys\":[]}",
          "{\"name\":\"Tom\",\"age\":3,\"colour\":\"black\",\"indoor\":false,\"toys\":[\"a\",\"b\",\"c\"]}",
          "{\"name\":\"Tom\",\"age\":\"3\",\"colour\":\"black\",\"indoor\":false,\"toys\":[\"b\"]}",
          "{\"name\":\"Tom\",\"age\":3,\"colour\":\"black\",\"indoor\":false,\"toys\":[\"b\"],\"x\":1}"}},
        /* no schema to speak of: any object */
        {"{}", {"{\"a\":[1,{}]}", "{}"}, {"[]", "1"}},
        /* optional properties keep their place; the required ones cannot be skipped */
        {"{\"properties\":{\"a\":{},\"b\":{\"type\":\"null\"},\"c\":{\"const\":7}},\"required\":[\"a\",\"c\"]}",
         {"{\"a\":[1,{\"x\":null}],\"c\":7}", "{\"a\":\"s\",\"b\":null,\"c\":7}"},
         {"{\"a\":1,\"c\":7,\"b\":null}", "{\"c\":7}", "{\"a\":1,\"c\":70}", "{\"a\":1,\"b\":0,\"c\":7}",
          "{\"a\":1}", "{\"a\":1,\"c\":7,}"}},
        /* unions told apart by their first byte; nullable; numbers in an enum */
        {"{\"type\":\"object\",\"properties\":{\"v\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"},"
         "{\"type\":\"array\",\"items\":{\"type\":\"number\"}}]},\"n\":{\"enum\":[1,10,2.5,\"x\"]},"
         "\"k\":{\"type\":\"integer\",\"nullable\":true}},\"required\":[\"v\",\"n\",\"k\"]}",
         {"{\"v\":\"s\",\"n\":1,\"k\":null}", "{\"v\":null,\"n\":10,\"k\":5}", "{\"v\":[1.5,-2e3],\"n\":2.5,\"k\":0}",
          "{\"v\":[],\"n\":\"x\",\"k\":-1}"},
         {"{\"v\":1,\"n\":1,\"k\":null}", "{\"v\":null,\"n\":12,\"k\":null}", "{\"v\":null,\"n\":2,\"k\":null}",
          "{\"v\":null,\"n\":1,\"k\":1.5}", "{\"v\":[\"a\"],\"n\":1,\"k\":null}"}},
        /* unions whose alternatives start alike: objects (Pydantic's Union[Cat, Dog]), followed
         * until the keys or values tell them apart */
        {"{\"type\":\"object\",\"properties\":{\"pet\":{\"anyOf\":[{\"$ref\":\"#/$defs/Cat\"},{\"$ref\":\"#/$defs/Dog\"}]},"
         "\"n\":{\"type\":[\"integer\",\"number\"]}},\"required\":[\"pet\",\"n\"],"
         "\"$defs\":{\"Cat\":{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"cat\"},\"lives\":{\"type\":\"integer\"}},"
         "\"required\":[\"kind\",\"lives\"]},"
         "\"Dog\":{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"dog\"},\"good\":{\"type\":\"boolean\"}},"
         "\"required\":[\"kind\",\"good\"]}}}",
         {"{\"pet\":{\"kind\":\"cat\",\"lives\":9},\"n\":1}", "{\"pet\":{\"kind\":\"dog\",\"good\":true},\"n\":1.5}",
          "{\"pet\": {\"kind\": \"dog\", \"good\": false}, \"n\": -2e3}"},
         {"{\"pet\":{\"kind\":\"cat\",\"good\":true},\"n\":1}", "{\"pet\":{\"kind\":\"dog\",\"lives\":9},\"n\":1}",
          "{\"pet\":{},\"n\":1}", "{\"pet\":{\"kind\":\"bird\"},\"n\":1}", "{\"pet\":{\"kind\":\"cat\"},\"n\":1}",
          "{\"pet\":{\"kind\":\"cat\",\"lives\":9},\"n\":\"1\"}", "{\"pet\":null,\"n\":1}"}},
        /* alternatives with different first keys, an enum inside a string type, in an array */
        {"{\"properties\":{\"v\":{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"object\",\"properties\":"
         "{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},{\"type\":\"object\",\"properties\":{\"b\":"
         "{\"type\":\"string\"}},\"required\":[\"b\"]},{\"enum\":[\"x\",\"y\"]},{\"type\":\"string\"}]}}},"
         "\"required\":[\"v\"]}",
         {"{\"v\":[{\"a\":1},{\"b\":\"s\"},\"x\",\"xyz\",{\"a\":2}]}", "{\"v\":[]}", "{\"v\":[\"\"]}"},
         {"{\"v\":[{\"a\":\"s\"}]}", "{\"v\":[{\"b\":1}]}", "{\"v\":[{\"a\":1,\"b\":\"s\"}]}", "{\"v\":[{}]}",
          "{\"v\":[1]}"}},
        /* recursion through $defs and "#"; maps */
        {"{\"$defs\":{\"Node\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},"
         "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/Node\"}}},\"required\":[\"id\"]}},"
         "\"type\":\"object\",\"properties\":{\"root\":{\"$ref\":\"#/$defs/Node\"},"
         "\"tags\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}},\"required\":[\"root\",\"tags\"]}",
         {"{\"root\":{\"id\":1},\"tags\":{}}", "{\"root\":{\"id\":1,\"kids\":[{\"id\":2,\"kids\":[{\"id\":3}]}]},\"tags\":{\"a\":1,\"b\":2}}"},
         {"{\"root\":{\"kids\":[]},\"tags\":{}}", "{\"root\":{\"id\":1,\"kids\":[{}]},\"tags\":{}}",
          "{\"root\":{\"id\":1},\"tags\":{\"a\":\"x\"}}"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rg_err e;
        rg_json_schema *s = compile_text(cases[i].schema, &e);
        CHECK_MSG(s != NULL, "schema %zu: %s", i, e.msg);
        if (!s)
            continue;
        for (size_t k = 0; k < 6 && cases[i].good[k]; k++) {
            CHECK_MSG(schema_accepts(s, cases[i].good[k]), "schema %zu rejects %s", i, cases[i].good[k]);
            CHECK_MSG(is_object_text(cases[i].good[k]), "test case %s is not JSON", cases[i].good[k]);
        }
        for (size_t k = 0; k < 8 && cases[i].bad[k]; k++)
            CHECK_MSG(!schema_accepts(s, cases[i].bad[k]), "schema %zu accepts %s", i, cases[i].bad[k]);
        json_schema_free(s);
    }

    /* refused, naming why */
    static const struct {
        const char *schema, *needle;
    } refused[] = {
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^a\"}}}", "'pattern'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"format\":\"date-time\"}}}", "'format'"},
        {"{\"type\":\"array\"}", "root"},
        {"{\"anyOf\":[{\"type\":\"object\"},{\"type\":\"null\"}]}", "root"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"const\":\"a\"},{\"const\":\"b\"},"
         "{\"const\":\"c\"},{\"const\":\"d\"},{\"const\":\"e\"},{\"const\":\"f\"},{\"const\":\"g\"},{\"const\":\"h\"},"
         "{\"const\":\"i\"}]}}}",
         "more than 8 alternatives"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/$defs/Nope\"}}}", "$ref"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"http://x/y\"}}}", "$ref"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "'b'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"enum\":[[1]]}}}", "enum"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"date\"}}}", "'date'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}}}", "minItems"},
        {"{\"type\":\"object\",\"properties\":{\"a\":false}}", "must be an object"},
        /* a union of nothing but itself could never start */
        {"{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/A\"}},"
         "\"$defs\":{\"A\":{\"anyOf\":[{\"$ref\":\"#/$defs/A\"},{\"$ref\":\"#/$defs/A\"}]}}}", "no value"},
        {"{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/A\"}},"
         "\"$defs\":{\"A\":{\"$ref\":\"#/$defs/B\"},\"B\":{\"$ref\":\"#/$defs/A\"}}}", "cycle"},
        {"{\"type\":\"object\",\"properties\":{\"x\":{\"const\":\"a\xff\"}}}", "UTF-8"},
        {"{\"type\":\"object\",\"properties\":{\"x\":{\"enum\":[12345678901234567890]}}}", "2^53"},
        {"{\"type\":\"object\",\"properties\":{\"x\":{},\"x\":{}}}", "twice"},
        {"{\"type\":\"object\",\"properties\":{\"x\":{\"anyOf\":[{\"type\":\"string\"}],\"required\":[\"q\"]}}}",
         "required"},
        {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"string\",\"enum\":[1,2]}}}", "of its type"},
    };
    /* paths: one per alternative that fits so far, merged again once the value is over */
    {
        rg_err e;
        rg_json_schema *s = compile_text("{\"properties\":{\"v\":{\"type\":\"array\",\"items\":{\"anyOf\":["
                                         "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}},"
                                         "{\"type\":\"object\",\"properties\":{\"b\":{\"type\":\"integer\"}}}]}}},"
                                         "\"required\":[\"v\"]}", &e);
        CHECK_MSG(s != NULL, "%s", e.msg);
        static const struct {
            const char *bytes;
            uint8_t paths;
        } steps[] = {{"{\"v\":[", 1}, {"{", 2}, {"}", 1}, {",{", 2}, {"\"a\"", 1}, {":1}", 1}, {",{", 2}, {"\"b\":2", 1},
                     {"}]}", 1}};
        rg_json_prefix p;
        json_prefix_init(&p, s);
        for (size_t i = 0; s && i < sizeof steps / sizeof *steps; i++) {
            int ok = json_prefix_feed(&p, steps[i].bytes, strlen(steps[i].bytes));
            CHECK_MSG(ok && p.n == steps[i].paths, "after %s: %d, %u paths (want %u)", steps[i].bytes, ok, p.n,
                      steps[i].paths);
        }
        CHECK(json_prefix_done(&p));
        json_schema_free(s);
    }
    /* a long run of values that fork is followed in linear time (trying
     * each alternative on the rest in turn would double at every value) */
    {
        rg_err e;
        rg_json_schema *s = compile_text("{\"properties\":{\"v\":{\"type\":\"array\",\"items\":"
                                         "{\"type\":[\"integer\",\"number\"]}}},\"required\":[\"v\"]}", &e);
        CHECK_MSG(s != NULL, "%s", e.msg);
        char run[801];
        for (int i = 0; i < 400; i++)
            memcpy(run + 2 * i, "1,", 2);
        run[799] = 'x'; /* "1,1,...,1x": refused at the very end, by both alternatives */
        run[800] = 0;
        rg_json_prefix p;
        json_prefix_init(&p, s);
        CHECK(s && json_prefix_feed(&p, "{\"v\":[", 6) && p.n == 1);
        CHECK(json_prefix_accepts(&p, run, 798) && !json_prefix_accepts(&p, run, 800));
        json_schema_free(s);
    }
    /* a key or value longer than rg_json_path.pos counts */
    {
        size_t n = 70000;
        char *big = malloc(n + 64);
        int k = snprintf(big, 64, "{\"properties\":{\"k\":{\"const\":\"");
        memset(big + k, 'a', n);
        strcpy(big + k + n, "\"}}}");
        rg_err e;
        rg_json_schema *s = compile_text(big, &e);
        CHECK_MSG(s == NULL && strstr(e.msg, "65535"), "a 70000-byte const: %s", s ? "compiled" : e.msg);
        json_schema_free(s);
        free(big);
    }
    /* the type filters an enum's values (Pydantic writes both) */
    {
        rg_err e;
        rg_json_schema *s = compile_text("{\"properties\":{\"k\":{\"type\":\"string\",\"enum\":[\"a\",1]}},"
                                         "\"required\":[\"k\"]}", &e);
        CHECK_MSG(s && schema_accepts(s, "{\"k\":\"a\"}") && !schema_accepts(s, "{\"k\":1}"), "%s", s ? "" : e.msg);
        json_schema_free(s);
    }
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        rg_err e;
        rg_err_clear(&e);
        rg_json_schema *s = compile_text(refused[i].schema, &e);
        CHECK_MSG(s == NULL && strstr(e.msg, refused[i].needle), "schema %s: %s", refused[i].schema,
                  s ? "compiled" : e.msg);
        json_schema_free(s);
    }
}

/* Some byte can follow p (or p is done). */
static int has_next(const rg_json_prefix *p)
{
    if (json_prefix_done(p))
        return 1;
    for (int c = 0; c < 256; c++) {
        rg_json_prefix t = *p;
        char b = (char)c;
        if (json_prefix_feed(&t, &b, 1))
            return 1;
    }
    return 0;
}

/* At the depth limit an optional property, a map's key or an array's item
 * whose value could only nest deeper is not offered: what is accepted can
 * always be finished. */
static void test_depth_limit(void)
{
    static const struct {
        const char *schema, *open, *deeper;
    } cases[] = {
        /* optional recursive property beside a scalar one */
        {"{\"type\":\"object\",\"properties\":{\"c\":{\"$ref\":\"#\"},\"v\":{\"type\":\"integer\"}}}", "{\"c\":",
         "\"c\""},
        /* a map of objects */
        {"{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#\"}}", "{\"k\":", "\""},
        /* JSON mode: any value, where scalars remain */
        {NULL, "[", "["},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rg_err e;
        rg_json_schema *s = cases[i].schema ? compile_text(cases[i].schema, &e) : NULL;
        CHECK_MSG(!cases[i].schema || s, "%s", e.msg);
        rg_json_prefix p;
        json_prefix_init(&p, s);
        int ok = json_prefix_feed(&p, "{\"a\":", cases[i].schema ? 0 : 5);
        while (ok && p.path[0].depth < JSON_MODE_MAX_DEPTH - 1)
            ok = json_prefix_feed(&p, cases[i].open, strlen(cases[i].open)) && has_next(&p);
        ok = ok && json_prefix_feed(&p, cases[i].open, 1); /* '{' or '[': the last level */
        CHECK_MSG(ok && p.n == 1 && p.path[0].depth == JSON_MODE_MAX_DEPTH, "case %zu: could not nest to the limit", i);
        rg_json_prefix t = p;
        CHECK_MSG(!json_prefix_feed(&t, cases[i].deeper, strlen(cases[i].deeper)), "case %zu: offered a dead end", i);
        CHECK_MSG(has_next(&p), "case %zu: a dead end at the limit", i);
        json_schema_free(s);
    }
}

/* ---- random documents ------------------------------------------------------------ */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (unsigned)(rnd_state % n);
}

typedef struct doc {
    char b[4096];
    size_t n;
} doc;

static void put(doc *d, const char *s)
{
    size_t l = strlen(s);
    if (d->n + l < sizeof d->b) {
        memcpy(d->b + d->n, s, l);
        d->n += l;
    }
}

static void put_ws(doc *d)
{
    static const char *const w[] = {"", "", " ", "\n", "\n  ", "\t", "\r\n"};
    put(d, w[rnd(7)]);
}

static void put_string(doc *d)
{
    static const char *const parts[] = {"a", "key", " ", "\\n", "\\\"", "\\u00e9", "\\/", "\xc3\xa9", "\xe2\x82\xac",
                                        "\xf0\x9f\x90\x9d", "0", "{", "]", ":", ","};
    put(d, "\"");
    for (unsigned k = rnd(5); k > 0; k--)
        put(d, parts[rnd(sizeof parts / sizeof *parts)]);
    put(d, "\"");
}

static void put_value(doc *d, int depth, int object)
{
    unsigned kind = object ? 0 : rnd(depth > 4 ? 4 : 6);
    if (kind == 0 || kind == 5) {
        int obj = kind == 0;
        put(d, obj ? "{" : "[");
        for (unsigned k = rnd(4), i = 0; i < k; i++) {
            if (i)
                put(d, ",");
            put_ws(d);
            if (obj) {
                put_string(d);
                put_ws(d);
                put(d, ":");
                put_ws(d);
            }
            put_value(d, depth + 1, 0);
            put_ws(d);
        }
        put(d, obj ? "}" : "]");
        return;
    }
    static const char *const nums[] = {"0", "-1", "12", "3.25", "-0.5e3", "1E+2", "7e-1", "100000"};
    static const char *const lits[] = {"true", "false", "null"};
    if (kind == 1)
        put(d, nums[rnd(8)]);
    else if (kind == 2)
        put(d, lits[rnd(3)]);
    else
        put_string(d);
}

/* Random objects are accepted byte by byte and parse; a random byte put
 * into one either breaks it for both or, when the recognizer still takes
 * the whole, leaves JSON that cJSON parses to an object (cJSON is more
 * lenient than JSON, so only that direction is an oracle). */
static void test_random_documents(void)
{
    static const char mutations[] = "{}[]\":, \n0123456789-+.eEtrufalsn\\u\x01\x80\xc3";
    int accepted_mutants = 0;
    for (int t = 0; t < 3000; t++) {
        doc d = {.n = 0};
        put_ws(&d);
        put_value(&d, 0, 1);
        d.b[d.n] = '\0';
        int ok = accepts_whole(d.b);
        CHECK_MSG(ok, "rejected a valid object: %s", d.b);
        cJSON *j = cJSON_Parse(d.b);
        CHECK_MSG(j && cJSON_IsObject(j), "cJSON rejects %s", d.b);
        cJSON_Delete(j);

        doc m = d;
        size_t at = rnd((unsigned)m.n + 1);
        memmove(m.b + at + 1, m.b + at, m.n - at + 1);
        m.b[at] = mutations[rnd(sizeof mutations - 1)];
        m.n++;
        if (accepts_whole(m.b)) {
            accepted_mutants++;
            j = cJSON_Parse(m.b);
            CHECK_MSG(j && cJSON_IsObject(j), "accepted what cJSON rejects: %s", m.b);
            cJSON_Delete(j);
        }
    }
    CHECK_MSG(accepted_mutants > 100 && accepted_mutants < 2900, "%d mutants accepted", accepted_mutants);
}

/* ---- the token level -------------------------------------------------------------- */

static int32_t id_of(const rg_bpe *t, const char *piece)
{
    return bpe_piece_id(t, piece, strlen(piece));
}

/* The trie's mask keeps exactly the tokens json_token_allowed allows, one
 * by one, and leaves their logits as they were: at every byte of each
 * document, so strings, escapes, UTF-8, numbers, keys and enum values being
 * matched, and the depth limit are all states it is tried in. */
static size_t check_masks_along(const rg_json_vocab *v, const rg_json_schema *schema, const char *text,
                                float *logits, float *masked)
{
    rg_json_prefix p;
    json_prefix_init(&p, schema);
    size_t n = strlen(text), total = 0;
    for (size_t at = 0; at <= n; at++) {
        size_t allowed = json_mask_logits(v, &p, logits, masked), counted = 0, intact = 1;
        for (size_t i = 0; i < v->n_vocab; i++) {
            int ok = json_token_allowed(v, &p, (int32_t)i);
            counted += ok;
            if (ok ? masked[i] != logits[i] : masked[i] != -INFINITY)
                intact = 0;
        }
        CHECK_MSG(allowed == counted && intact, "after %zu bytes of %s: the mask keeps %zu tokens, %zu allowed%s",
                  at, text, allowed, counted, intact ? "" : ", logits changed");
        /* with several paths, every token kept is one the prefix then takes (its paths cut alike) */
        for (size_t i = 0; p.n > 1 && i < v->n_vocab; i++) {
            size_t len;
            const char *b = bpe_token_bytes(v->tok, (int32_t)i, &len);
            if (masked[i] == -INFINITY || (int32_t)i == v->end[0] || (int32_t)i == v->end[1])
                continue;
            rg_json_prefix t = p;
            CHECK_MSG(b && json_prefix_feed(&t, b, len), "after %zu bytes of %s: token %zu kept, then refused", at,
                      text, i);
        }
        total += allowed;
        if (at < n)
            CHECK(json_prefix_feed(&p, text + at, 1));
    }
    return total;
}

static void test_tokens(const char *path, const char *open_piece, const char *spaced_open_piece)
{
    rg_err e;
    rg_bpe *t = NULL;
    rg_status st = bpe_load_gguf_path(path, &t, &e);
    CHECK_OK(st, e);
    if (st)
        return;
    rg_json_vocab v;
    st = json_vocab_init(&v, t, bpe_vocab_size(t) + 3, bpe_eos_id(t), bpe_eot_id(t), &e); /* rows wider than the vocabulary */
    CHECK_OK(st, e);
    if (st) {
        bpe_free(t);
        return;
    }
    int32_t open = id_of(t, open_piece), spaced = id_of(t, spaced_open_piece), close = id_of(t, "}");
    CHECK_MSG(open >= 0 && spaced >= 0 && close >= 0, "%s: pieces missing", path);
    rg_json_prefix p;
    json_prefix_init(&p, NULL);
    CHECK(json_token_allowed(&v, &p, open));
    CHECK(json_token_allowed(&v, &p, spaced)); /* whitespace may lead */
    CHECK(!json_token_allowed(&v, &p, close));
    CHECK(!json_token_allowed(&v, &p, v.end[0]));
    CHECK(!json_token_allowed(&v, &p, bpe_bos_id(t)));
    CHECK(!json_token_allowed(&v, &p, -1) && !json_token_allowed(&v, &p, (int32_t)v.n_vocab));
    CHECK(!json_token_allowed(&v, &p, (int32_t)v.n_vocab - 1)); /* past the tokenizer */

    float *logits = malloc(v.n_vocab * sizeof *logits), *masked = malloc(v.n_vocab * sizeof *masked);
    for (size_t i = 0; i < v.n_vocab; i++)
        logits[i] = (float)i - 1000.0f;
    size_t allowed = json_mask_logits(&v, &p, logits, masked);
    CHECK(allowed > 0 && allowed < v.n_vocab / 10);
    size_t kept = check_masks_along(&v, NULL,
                                    "{\"a b\": [1, -0.5e+3, true, null, {\"\\u00e9\\n\\ud83d\\ude00\": \"h\u00e9 \xe2\x82\xac \xf0\x9f\x98\x80\"}],\n"
                                    "  \"x\":{ } }",
                                    logits, masked);
    static const struct {
        const char *schema, *doc;
    } along[] = {
        {"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
         "\"kind\":{\"enum\":[\"cat\",\"caterpillar\",7]},\"n\":{\"type\":\"integer\"},"
         "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"maxItems\":2}},"
         "\"required\":[\"name\",\"kind\",\"n\"]}",
         "{\"name\": \"Tom\", \"kind\": \"caterpillar\", \"n\": -12, \"tags\": [true,false]}"},
        /* a union of two objects */
        {"{\"type\":\"object\",\"properties\":{\"pet\":{\"anyOf\":[{\"$ref\":\"#/$defs/Cat\"},"
         "{\"$ref\":\"#/$defs/Dog\"}]}},\"required\":[\"pet\"],"
         "\"$defs\":{\"Cat\":{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"cat\"},"
         "\"lives\":{\"type\":\"integer\"}},\"required\":[\"kind\",\"lives\"]},"
         "\"Dog\":{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"dog\"},"
         "\"good\":{\"type\":\"boolean\"}},\"required\":[\"kind\",\"good\"]}}}",
         "{\"pet\": {\"kind\": \"dog\", \"good\": true}}"},
        /* tokens that run past a fork: "{\"b" where the first object wants "a", "\"z" where the enum
         * wants x or y */
        {"{\"properties\":{\"v\":{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"object\","
         "\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},{\"type\":\"object\","
         "\"properties\":{\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]},{\"enum\":[\"x\",\"y\"]},"
         "{\"type\":\"string\"}]}}},\"required\":[\"v\"]}",
         "{\"v\":[{\"b\":\"s\"}, \"zebra\", \"x\"]}"},
    };
    rg_json_schema *s;
    for (size_t i = 0; i < sizeof along / sizeof *along; i++) {
        s = compile_text(along[i].schema, &e);
        CHECK_OK(s ? RG_OK : RG_ERR_INVALID, e);
        kept += check_masks_along(&v, s, along[i].doc, logits, masked);
        json_schema_free(s);
    }
    /* nested unions: 2 or 3 paths (the outer objects) that fork 3 ways each at the '"' of x's value:
     * 6 paths, or 9 cut to the 8 followed. The mask must cut them as feeding does: "\"x" (the ninth
     * alternative's start) is kept with 2 outer objects and not with 3 (each path's forks alone
     * would keep it) */
    for (int outer = 2; outer <= 3; outer++) {
        static const char first[] = "acdfghksx";
        char schema[1024];
        int at = snprintf(schema, sizeof schema, "{\"properties\":{\"r\":{\"anyOf\":[");
        for (int o = 0; o < outer; o++) {
            at += snprintf(schema + at, sizeof schema - (size_t)at,
                           "%s{\"type\":\"object\",\"properties\":{\"x\":{\"anyOf\":[", o ? "," : "");
            for (int k = 0; k < 3; k++) {
                char c = first[o == outer - 1 && k == 2 ? 8 : 3 * o + k];
                at += snprintf(schema + at, sizeof schema - (size_t)at, "%s{\"const\":\"%cq\"}", k ? "," : "", c);
            }
            at += snprintf(schema + at, sizeof schema - (size_t)at, "]}},\"required\":[\"x\"]}");
        }
        snprintf(schema + at, sizeof schema - (size_t)at, "]}},\"required\":[\"r\"]}");
        s = compile_text(schema, &e);
        CHECK_OK(s ? RG_OK : RG_ERR_INVALID, e);
        kept += check_masks_along(&v, s, "{\"r\": {\"x\": \"aq\"}}", logits, masked);
        rg_json_prefix p9;
        json_prefix_init(&p9, s);
        CHECK(json_prefix_feed(&p9, "{\"r\": {\"x\": ", 12));
        CHECK_MSG(json_prefix_accepts(&p9, "\"x", 2) == (outer == 2), "%d outer objects (%u paths): \"x taken: %d",
                  outer, p9.n, json_prefix_accepts(&p9, "\"x", 2));
        int32_t quote_x = id_of(t, "\"x");
        CHECK_MSG(quote_x < 0 || json_token_allowed(&v, &p9, quote_x) == (outer == 2),
                  "%d outer objects: \"x allowed: %d", outer, json_token_allowed(&v, &p9, quote_x));
        json_schema_free(s);
    }
    char deep[JSON_MODE_MAX_DEPTH + 8] = "{\"a\":";
    size_t at = strlen(deep);
    for (int d = 1; d < JSON_MODE_MAX_DEPTH; d++)
        deep[at++] = '[';
    deep[at] = 0;
    kept += check_masks_along(&v, NULL, deep, logits, masked); /* the last '[' is at the limit */
    CHECK_MSG(kept > 1000, "only %zu tokens kept along the documents", kept);

    /* after a whole object only an end token is left */
    CHECK(json_prefix_feed(&p, "{}", 2) && json_prefix_done(&p));
    allowed = json_mask_logits(&v, &p, logits, masked);
    CHECK(json_token_allowed(&v, &p, v.end[0]) && masked[v.end[0]] == logits[v.end[0]]);
    size_t ends = 1 + (size_t)(v.end[1] >= 0 && v.end[1] != v.end[0]);
    CHECK_MSG(allowed == ends, "%zu tokens allowed after the object", allowed);
    free(logits);
    free(masked);
    json_vocab_free(&v);
    bpe_free(t);
}

/* ---- the engine ------------------------------------------------------------------- */

static int is_json_object(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    int ok = j && cJSON_IsObject(j);
    cJSON_Delete(j);
    return ok;
}

/* Runs question through the chat template; returns the finish reason and
 * leaves the text in out. */
static rg_gen_finish ask_schema(rg_generator *g, const char *question, int json, rg_json_schema *schema,
                                float temperature, uint64_t seed, size_t max_tokens, rg_buf *out)
{
    rg_err e;
    const rg_chat_template *t = generator_chat_template(g, &e);
    rg_chat_message m = {"user", question, strlen(question)};
    rg_chat_prompt p;
    chat_prompt_init(&p);
    CHECK_OK(chat_template_apply(t, &m, 1, 1, &p, &e), e);
    rg_bpe_ids ids = {0};
    CHECK_OK(chat_prompt_encode(generator_tokenizer(g), &p, &ids, &e), e);
    chat_prompt_free(&p);
    rg_gen_request req = {
        .prompt = ids.ids, .n_prompt = ids.n, .max_tokens = max_tokens, .json_object = json, .json_schema = schema};
    sampling_params_default(&req.sampling);
    req.sampling.temperature = temperature;
    req.sampling.seed = seed;
    rg_gen_output o;
    gen_output_init(&o);
    CHECK_OK(generator_complete(g, &req, &o, &e), e);
    bpe_ids_free(&ids);
    rg_buf_append(out, o.text.data ? o.text.data : "", o.text.len, &e);
    rg_buf_append(out, "", 1, &e); /* NUL */
    out->len--;
    rg_gen_finish f = o.finish;
    gen_output_free(&o);
    return f;
}

static rg_gen_finish ask(rg_generator *g, const char *question, int json, float temperature, uint64_t seed,
                         size_t max_tokens, rg_buf *out)
{
    return ask_schema(g, question, json, NULL, temperature, seed, max_tokens, out);
}

/* A schema's answers: the object it describes, keys in its order, values
 * of its types. */
static void test_engine_schema(rg_generator *g)
{
    static const char *const schema =
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
        "\"colour\":{\"enum\":[\"black\",\"white\",\"ginger\"]},\"indoor\":{\"type\":\"boolean\"}},"
        "\"required\":[\"name\",\"age\",\"colour\",\"indoor\"],\"additionalProperties\":false}";
    static const char *const keys[] = {"name", "age", "colour", "indoor"};
    int complete = 0;
    for (int run = 0; run < 4; run++) {
        rg_err e;
        rg_json_schema *s = compile_text(schema, &e);
        CHECK_OK(s ? RG_OK : RG_ERR_INVALID, e);
        rg_buf text;
        rg_buf_init(&text, 0);
        const char *q = run & 1 ? "Describe a cat." : "Describe a cat as JSON: name, age, colour, indoor.";
        rg_gen_finish f = ask_schema(g, q, 0, s, run < 2 ? 0.0f : 1.0f, 3 + (uint64_t)run, 160, &text);
        cJSON *j = cJSON_Parse(text.data);
        if (f == RG_GEN_STOP) {
            complete++;
            CHECK_MSG(j && cJSON_GetArraySize(j) == 4, "not the schema's object: %s", text.data);
            const cJSON *it = j ? j->child : NULL;
            for (int k = 0; k < 4 && it; k++, it = it->next)
                CHECK_MSG(!strcmp(it->string, keys[k]), "key %d is %s: %s", k, it->string, text.data);
            const cJSON *age = cJSON_GetObjectItemCaseSensitive(j, "age");
            const cJSON *colour = cJSON_GetObjectItemCaseSensitive(j, "colour");
            CHECK_MSG(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "name")) && cJSON_IsNumber(age) &&
                          age->valuedouble == (double)(long long)age->valuedouble && cJSON_IsString(colour) &&
                          strstr("black white ginger", colour->valuestring) &&
                          cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(j, "indoor")),
                      "values off the schema: %s", text.data);
        } else {
            CHECK_MSG(f == RG_GEN_LENGTH, "finish %d", (int)f);
        }
        cJSON_Delete(j);
        rg_buf_free(&text);
    }
    CHECK_MSG(complete >= 3, "only %d of 4 schema answers complete within 160 tokens", complete);
}

static void test_engine(void)
{
    char path[1024];
    gen_model_path(path, sizeof path);
    rg_gen_opts o;
    generator_opts_default(&o);
    o.threads = 2;
    o.kv_cache_mb = 256;
    rg_generator *g = NULL;
    rg_err e;
    rg_status st = generator_start(path, &o, &g, &e);
    CHECK_OK(st, e);
    if (st)
        return;
    static const char *const questions[] = {
        "Give me a JSON object describing a cat with its name and age.",
        "What do bees make?",
        "Write a haiku about the sea.",
    };
    int plain_json = 0, stopped = 0;
    for (size_t q = 0; q < sizeof questions / sizeof *questions; q++) {
        for (int run = 0; run < 3; run++) {
            float temp = run == 0 ? 0.0f : 1.0f;
            rg_buf text;
            rg_buf_init(&text, 0);
            rg_gen_finish f = ask(g, questions[q], 1, temp, 7 + (uint64_t)run, 160, &text);
            if (f == RG_GEN_STOP) {
                stopped++;
                CHECK_MSG(is_json_object(text.data), "JSON mode, not an object: %s", text.data);
            } else {
                CHECK_MSG(f == RG_GEN_LENGTH, "finish %d", (int)f);
                rg_json_prefix p;
                json_prefix_init(&p, NULL);
                CHECK_MSG(json_prefix_feed(&p, text.data, text.len), "JSON mode cut short, not a prefix: %s",
                          text.data);
            }
            if (run == 0) {
                /* greedy is deterministic: the same request, the same text */
                rg_buf again;
                rg_buf_init(&again, 0);
                ask(g, questions[q], 1, temp, 99, 160, &again);
                CHECK_MSG(again.len == text.len && !memcmp(again.data, text.data, text.len), "greedy JSON differs");
                rg_buf_free(&again);
                rg_buf plain;
                rg_buf_init(&plain, 0);
                ask(g, questions[q], 0, temp, 7, 160, &plain);
                plain_json += is_json_object(plain.data);
                rg_buf_free(&plain);
            }
            rg_buf_free(&text);
        }
    }
    /* the constraint, not the model, made the answers JSON */
    CHECK_MSG(plain_json == 0, "%d plain answers were JSON already", plain_json);
    CHECK_MSG(stopped >= 6, "only %d of 9 JSON answers closed their object within 160 tokens", stopped);
    test_engine_schema(g);
    generator_stop(g);
}

int main(void)
{
    test_documents();
    test_random_documents();
    test_schemas();
    test_depth_limit();
    test_tokens("tests/fixtures/bpe/ggml-vocab-qwen2.gguf", "{", "Ġ{");
    test_tokens("tests/fixtures/bpe/ggml-vocab-llama-spm.gguf", "{", "▁{");
    test_engine();
    return check_finish("test_json_mode");
}
