/* json_schema.c - a JSON schema (response_format json_schema) compiled into
 * the nodes json_mode.c's recognizer walks (generate/json_schema_nodes.h).
 * The subset and its reasons are in json_mode.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "generate/json_schema_nodes.h"

#define COMPILE_MAX_DEPTH 64 /* schema objects inside one another */
#define MAX_REFS 256

typedef struct ctx {
    rg_json_schema *s;
    const cJSON *root;
    size_t cap_nodes, cap_props, cap_lits, cap_alts;
    struct {
        const cJSON *target;
        uint16_t node;
        int compiling; /* its definition is being compiled */
    } refs[MAX_REFS];
    size_t n_refs;
    rg_err *e;
} ctx;

/* Keywords that only describe: ignored. */
static const char *const annotations[] = {"title",    "description", "default",   "examples", "$schema",
                                          "$id",      "$comment",    "deprecated", "readOnly", "writeOnly",
                                          "$defs",    "definitions"};
/* Keywords the recognizer follows. */
static const char *const followed[] = {"type",  "properties", "required", "additionalProperties",
                                       "items", "minItems",   "maxItems", "enum",
                                       "const", "anyOf",      "oneOf",    "allOf",
                                       "$ref",  "nullable"};

static int in_list(const char *k, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, list[i]))
            return 1;
    return 0;
}

static int fail(ctx *c, const char *fmt, const char *what)
{
    rg_error(c->e, RG_ERR_INVALID, fmt, what);
    return -1;
}

static int grow(ctx *c, void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? 2 * *cap : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * size);
    if (!p) {
        rg_error(c->e, RG_ERR_NOMEM, "out of memory for a JSON schema");
        return -1;
    }
    *arr = p;
    *cap = n;
    return 0;
}

/* A new node (a copy of n); its index, or -1. */
static int add_node(ctx *c, js_node n)
{
    rg_json_schema *s = c->s;
    if (s->n_nodes >= JSON_SCHEMA_MAX_NODES)
        return fail(c, "the JSON schema has too many parts (at most %s)", "4096");
    if (grow(c, (void **)&s->nodes, &c->cap_nodes, s->n_nodes + 1, sizeof *s->nodes))
        return -1;
    s->nodes[s->n_nodes] = n;
    return (int)s->n_nodes++;
}

/* A value's JSON text as cJSON prints it (keys: a string item, quotes
 * included). The recognizer matches these bytes as they are, so they must
 * be what a client reads back: valid UTF-8 (cJSON copies a string's bytes
 * unchecked), numbers that print as themselves (cJSON prints integers past
 * 2^53 in exponent form, which a validator compares as another number),
 * and at most 65535 bytes (rg_json_prefix.pos). */
static int add_text(ctx *c, js_text **arr, size_t *n, size_t *cap, const cJSON *item)
{
    if (cJSON_IsNumber(item) && !(fabs(item->valuedouble) < 9007199254740992.0))
        return fail(c, "a number in the JSON schema is beyond %s (it would not be written as given)", "2^53");
    if (grow(c, (void **)arr, cap, *n + 1, sizeof **arr))
        return -1;
    char *t = cJSON_PrintUnformatted(item);
    if (!t) {
        rg_error(c->e, RG_ERR_NOMEM, "out of memory for a JSON schema");
        return -1;
    }
    size_t len = strlen(t);
    if (len > UINT16_MAX || !utf8_is_valid(t, len)) {
        cJSON_free(t);
        return fail(c, "a key or value in the JSON schema is %s", len > UINT16_MAX ? "longer than 65535 bytes"
                                                                                  : "not valid UTF-8");
    }
    (*arr)[*n] = (js_text){.text = t, .len = (uint32_t)len, .number = (uint8_t)cJSON_IsNumber(item)};
    (*n)++;
    return 0;
}

/* A LITERALS node of the values in list (an enum's array, or one const). */
static int literals(ctx *c, const cJSON *const *vals, size_t n, const char *what)
{
    if (!n)
        return fail(c, "'%s' in the JSON schema lists no value", what);
    if (n > JSON_SCHEMA_MAX_CHOICES)
        return fail(c, "'%s' in the JSON schema lists more than 64 values", what);
    js_node node = {.kind = JN_LITERALS, .n = (uint16_t)n, .first = (uint32_t)c->s->n_lits};
    for (size_t i = 0; i < n; i++) {
        if (cJSON_IsObject(vals[i]) || cJSON_IsArray(vals[i]))
            return fail(c, "'%s' in the JSON schema: only strings, numbers, booleans and null are supported", what);
        if (add_text(c, &c->s->lits, &c->s->n_lits, &c->cap_lits, vals[i]))
            return -1;
    }
    return add_node(c, node);
}

static int literal_words(ctx *c, int boolean)
{
    cJSON *t = cJSON_CreateTrue(), *f = cJSON_CreateFalse(), *z = cJSON_CreateNull();
    const cJSON *vals[2] = {boolean ? t : z, f};
    int r = t && f && z ? literals(c, vals, boolean ? 2 : 1, boolean ? "boolean" : "null") : -1;
    cJSON_Delete(t);
    cJSON_Delete(f);
    cJSON_Delete(z);
    return r;
}

static int union_of(ctx *c, const int *alts, size_t n)
{
    rg_json_schema *s = c->s;
    if (grow(c, (void **)&s->alts, &c->cap_alts, s->n_alts + n, sizeof *s->alts))
        return -1;
    js_node node = {.kind = JN_UNION, .n = (uint16_t)n, .first = (uint32_t)s->n_alts};
    for (size_t i = 0; i < n; i++)
        s->alts[s->n_alts++] = (uint16_t)alts[i];
    return add_node(c, node);
}

static int compile(ctx *c, const cJSON *j, int depth);

static int compile_object(ctx *c, const cJSON *j, int depth)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(j, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "required");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(j, "additionalProperties");
    if (props && !cJSON_IsObject(props))
        return fail(c, "'%s' in the JSON schema must be an object", "properties");
    if (req && !cJSON_IsArray(req))
        return fail(c, "'%s' in the JSON schema must be an array of names", "required");
    if (!props || !props->child) {
        if (req && cJSON_GetArraySize(req) > 0)
            return fail(c, "'%s' names properties the JSON schema does not define", "required");
        if (cJSON_IsFalse(extra))
            return add_node(c, (js_node){.kind = JN_OBJECT}); /* {} only */
        if (!extra || cJSON_IsTrue(extra))
            return JN_NODE_ANY_OBJECT;
        int child = compile(c, extra, depth + 1);
        return child < 0 ? -1 : add_node(c, (js_node){.kind = JN_MAP, .child = (uint16_t)child});
    }
    size_t n = (size_t)cJSON_GetArraySize(props);
    if (n > JSON_SCHEMA_MAX_CHOICES)
        return fail(c, "an object in the JSON schema has more than %s properties", "64");
    /* the properties' texts first, in a row; their nodes after */
    size_t first = c->s->n_props;
    const cJSON *p;
    cJSON_ArrayForEach(p, props)
    {
        for (const cJSON *q = props->child; q != p; q = q->next)
            if (!strcmp(q->string, p->string))
                return fail(c, "the JSON schema defines property '%s' twice", p->string);
        cJSON *name = cJSON_CreateString(p->string);
        int r = name ? add_text(c, &c->s->props, &c->s->n_props, &c->cap_props, name) : -1;
        cJSON_Delete(name);
        if (r)
            return -1;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, req)
    {
        if (!cJSON_IsString(r))
            return fail(c, "'%s' in the JSON schema must be an array of names", "required");
        size_t k = 0;
        cJSON_ArrayForEach(p, props)
        {
            if (!strcmp(p->string, r->valuestring))
                break;
            k++;
        }
        if (k == n)
            return fail(c, "'required' names '%s', which the JSON schema's properties do not define", r->valuestring);
        c->s->props[first + k].required = 1;
    }
    size_t k = 0;
    cJSON_ArrayForEach(p, props)
    {
        int child = compile(c, p, depth + 1);
        if (child < 0)
            return -1;
        c->s->props[first + k++].node = (uint16_t)child;
    }
    return add_node(c, (js_node){.kind = JN_OBJECT, .n = (uint16_t)n, .first = (uint32_t)first});
}

static int item_count(ctx *c, const cJSON *j, const char *name, int fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!v)
        return fallback;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > UINT16_MAX ||
        v->valuedouble != (double)(int)v->valuedouble)
        return fail(c, "'%s' in the JSON schema must be a whole number from 0 to 65535", name);
    return (int)v->valuedouble;
}

static int compile_array(ctx *c, const cJSON *j, int depth)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    if (items && cJSON_IsArray(items))
        return fail(c, "'%s' as a list (tuples) is not supported in the JSON schema", "items");
    int min = item_count(c, j, "minItems", 0), max = item_count(c, j, "maxItems", UINT16_MAX);
    if (min < 0 || max < 0)
        return -1;
    if (min > max)
        return fail(c, "'%s' exceeds maxItems in the JSON schema", "minItems");
    int child = items ? compile(c, items, depth + 1) : JN_NODE_ANY;
    if (child < 0)
        return -1;
    return add_node(c, (js_node){.kind = JN_ARRAY, .child = (uint16_t)child, .min_items = (uint16_t)min,
                                 .max_items = (uint16_t)max});
}

static int compile_type(ctx *c, const cJSON *j, const char *type, int depth)
{
    if (!strcmp(type, "object"))
        return compile_object(c, j, depth);
    if (!strcmp(type, "array"))
        return compile_array(c, j, depth);
    if (!strcmp(type, "string"))
        return add_node(c, (js_node){.kind = JN_STRING});
    if (!strcmp(type, "number"))
        return add_node(c, (js_node){.kind = JN_NUMBER});
    if (!strcmp(type, "integer"))
        return add_node(c, (js_node){.kind = JN_INTEGER});
    if (!strcmp(type, "boolean"))
        return literal_words(c, 1);
    if (!strcmp(type, "null"))
        return literal_words(c, 0);
    return fail(c, "unknown type '%s' in the JSON schema", type);
}

/* "#/$defs/Name", "#/definitions/Name" or "#": compiled once, so a
 * recursive schema refers to itself. */
static int compile_ref(ctx *c, const char *ref, int depth)
{
    const cJSON *target = NULL;
    if (!strcmp(ref, "#")) {
        target = c->root;
    } else {
        static const char *const bases[] = {"#/$defs/", "#/definitions/"};
        static const char *const homes[] = {"$defs", "definitions"};
        for (size_t i = 0; i < 2 && !target; i++) {
            size_t l = strlen(bases[i]);
            if (!strncmp(ref, bases[i], l) && !strchr(ref + l, '/') && !strchr(ref + l, '~'))
                target = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->root, homes[i]), ref + l);
        }
    }
    if (!target)
        return fail(c, "'$ref' %s: only references into the schema's own $defs or definitions are supported", ref);
    for (size_t i = 0; i < c->n_refs; i++)
        if (c->refs[i].target == target)
            return c->refs[i].node;
    if (c->n_refs == MAX_REFS)
        return fail(c, "the JSON schema has more than %s references", "256");
    int slot = add_node(c, (js_node){.kind = JN_ANY});
    if (slot < 0)
        return -1;
    size_t me = c->n_refs++;
    c->refs[me].target = target;
    c->refs[me].node = (uint16_t)slot;
    c->refs[me].compiling = 1;
    int k = compile(c, target, depth + 1);
    if (k < 0)
        return -1;
    for (size_t i = 0; i < c->n_refs; i++)
        if (c->refs[i].compiling && c->refs[i].node == k)
            return fail(c, "'$ref' %s: a cycle of references with no schema between them", ref);
    c->refs[me].compiling = 0;
    c->s->nodes[slot] = c->s->nodes[k]; /* the slot behaves as the definition */
    return slot;
}

/* Whether value v is of the JSON schema type (or one of the types) in
 * type; 1 without a type, -1 for a malformed one. */
static int of_type(const cJSON *v, const cJSON *type)
{
    if (!type)
        return 1;
    if (cJSON_IsArray(type)) {
        const cJSON *t;
        int any = 0;
        cJSON_ArrayForEach(t, type)
        {
            int r = cJSON_IsString(t) ? of_type(v, t) : -1;
            if (r < 0)
                return -1;
            any |= r;
        }
        return any;
    }
    if (!cJSON_IsString(type))
        return -1;
    const char *n = type->valuestring;
    if (!strcmp(n, "string"))
        return cJSON_IsString(v);
    if (!strcmp(n, "number"))
        return cJSON_IsNumber(v);
    if (!strcmp(n, "integer"))
        return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    if (!strcmp(n, "boolean"))
        return cJSON_IsBool(v);
    if (!strcmp(n, "null"))
        return cJSON_IsNull(v);
    if (!strcmp(n, "object"))
        return cJSON_IsObject(v);
    if (!strcmp(n, "array"))
        return cJSON_IsArray(v);
    return -1;
}

static int compile_plain(ctx *c, const cJSON *j, int depth)
{
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(j, "anyOf");
    if (!any)
        any = cJSON_GetObjectItemCaseSensitive(j, "oneOf");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(j, "enum");
    const cJSON *cst = cJSON_GetObjectItemCaseSensitive(j, "const");
    static const char *const shape[] = {"properties", "required", "additionalProperties", "items", "minItems",
                                        "maxItems"};
    for (size_t i = 0; (any || en || cst) && i < sizeof shape / sizeof *shape; i++)
        if (cJSON_GetObjectItemCaseSensitive(j, shape[i]))
            return fail(c, "'%s' beside anyOf, oneOf, enum or const is not supported in the JSON schema", shape[i]);
    if (any) {
        if (type || en || cst)
            return fail(c, "'%s' beside type, enum or const is not supported in the JSON schema", "anyOf");
        int n = cJSON_GetArraySize(any);
        if (!cJSON_IsArray(any) || n < 1 || n > 16)
            return fail(c, "'%s' in the JSON schema must list 1 to 16 schemas", "anyOf");
        int alts[16], k = 0;
        const cJSON *a;
        cJSON_ArrayForEach(a, any)
        {
            if ((alts[k++] = compile(c, a, depth + 1)) < 0)
                return -1;
        }
        return n == 1 ? alts[0] : union_of(c, alts, (size_t)n);
    }
    if (cst || en) {
        /* the values that are of the type too, when one is given (Pydantic
         * writes "type": "string" beside an Enum's values) */
        if (en && !cJSON_IsArray(en))
            return fail(c, "'%s' in the JSON schema must be an array", "enum");
        const cJSON *vals[JSON_SCHEMA_MAX_CHOICES + 1];
        size_t n = 0;
        const cJSON *v = cst ? cst : en->child;
        for (; v && n <= JSON_SCHEMA_MAX_CHOICES; v = cst ? NULL : v->next) {
            int typed = of_type(v, type);
            if (typed < 0)
                return fail(c, "'%s' in the JSON schema must be a string or a list of strings", "type");
            if (typed)
                vals[n++] = v;
        }
        if (!n && type)
            return fail(c, "no value of '%s' in the JSON schema is of its type", cst ? "const" : "enum");
        return literals(c, vals, n, cst ? "const" : "enum");
    }
    if (cJSON_IsString(type))
        return compile_type(c, j, type->valuestring, depth);
    if (cJSON_IsArray(type)) {
        int n = cJSON_GetArraySize(type), alts[8], k = 0;
        if (n < 1 || n > 8)
            return fail(c, "'%s' in the JSON schema must name 1 to 8 types", "type");
        const cJSON *t;
        cJSON_ArrayForEach(t, type)
        {
            if (!cJSON_IsString(t))
                return fail(c, "'%s' in the JSON schema must be a string or a list of strings", "type");
            if ((alts[k++] = compile_type(c, j, t->valuestring, depth)) < 0)
                return -1;
        }
        return n == 1 ? alts[0] : union_of(c, alts, (size_t)n);
    }
    if (type)
        return fail(c, "'%s' in the JSON schema must be a string or a list of strings", "type");
    if (cJSON_GetObjectItemCaseSensitive(j, "properties") || cJSON_GetObjectItemCaseSensitive(j, "required") ||
        cJSON_GetObjectItemCaseSensitive(j, "additionalProperties"))
        return compile_object(c, j, depth);
    if (cJSON_GetObjectItemCaseSensitive(j, "items") || cJSON_GetObjectItemCaseSensitive(j, "minItems") ||
        cJSON_GetObjectItemCaseSensitive(j, "maxItems"))
        return compile_array(c, j, depth);
    return JN_NODE_ANY;
}

static int compile(ctx *c, const cJSON *j, int depth)
{
    if (depth > COMPILE_MAX_DEPTH)
        return fail(c, "the JSON schema is nested more than %s deep", "64");
    if (cJSON_IsTrue(j))
        return JN_NODE_ANY;
    if (!cJSON_IsObject(j))
        return fail(c, "%s", "a JSON schema must be an object (or true)");
    const cJSON *k;
    cJSON_ArrayForEach(k, j)
    {
        if (!in_list(k->string, annotations, sizeof annotations / sizeof *annotations) &&
            !in_list(k->string, followed, sizeof followed / sizeof *followed))
            return fail(c, "'%s' is not supported in the JSON schema (the answer could not be made to follow it)",
                        k->string);
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(j, "$ref");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(j, "allOf");
    int n;
    if (ref) {
        if (!cJSON_IsString(ref))
            return fail(c, "'%s' in the JSON schema must be a string", "$ref");
        n = compile_ref(c, ref->valuestring, depth);
    } else if (all) {
        if (!cJSON_IsArray(all) || cJSON_GetArraySize(all) != 1)
            return fail(c, "'%s' is supported in the JSON schema with exactly one schema", "allOf");
        n = compile(c, all->child, depth + 1);
    } else {
        n = compile_plain(c, j, depth);
    }
    const cJSON *nullable = cJSON_GetObjectItemCaseSensitive(j, "nullable");
    if (n < 0 || !cJSON_IsTrue(nullable))
        return n;
    int z = literal_words(c, 0);
    int alts[2] = {n, z};
    return z < 0 ? -1 : union_of(c, alts, 2);
}

/* Each union's alternatives, replaced by the alternatives that are not
 * unions themselves, reached through nested unions and $refs (each once,
 * in order; a union that lists itself adds nothing). The recognizer then
 * takes a leaf at a value's first byte, or follows several when they can
 * start alike (json_mode.c), and never recurses through unions. */
static int flatten_unions(ctx *c)
{
    rg_json_schema *s = c->s;
    uint8_t *seen = malloc(s->n_nodes);
    uint16_t *stack = malloc(s->n_nodes * sizeof *stack), leaves[JSON_SCHEMA_MAX_CHOICES]; /* a node is pushed once */
    int r = 0;
    if (!seen || !stack) {
        rg_error(c->e, RG_ERR_NOMEM, "out of memory for a JSON schema");
        r = -1;
    }
    for (size_t i = 0; !r && i < s->n_nodes; i++) {
        js_node *n = &s->nodes[i];
        if (n->kind != JN_UNION)
            continue;
        memset(seen, 0, s->n_nodes);
        seen[i] = 1;
        size_t top = 0, k = 0;
        for (uint16_t a = n->n; a-- > 0;) /* pushed backwards: popped in order */
            if (!seen[s->alts[n->first + a]]) {
                seen[s->alts[n->first + a]] = 1;
                stack[top++] = s->alts[n->first + a];
            }
        while (top && !r) {
            uint16_t x = stack[--top];
            const js_node *m = &s->nodes[x];
            if (m->kind != JN_UNION) {
                if (k == JSON_SCHEMA_MAX_CHOICES)
                    r = fail(c, "%s", "more than 64 alternatives in one anyOf (counting nested ones) in the JSON schema");
                else
                    leaves[k++] = x;
                continue;
            }
            for (uint16_t a = m->n; a-- > 0;)
                if (!seen[s->alts[m->first + a]]) {
                    seen[s->alts[m->first + a]] = 1;
                    stack[top++] = s->alts[m->first + a];
                }
        }
        if (r)
            break;
        if (grow(c, (void **)&s->alts, &c->cap_alts, s->n_alts + k, sizeof *s->alts)) {
            r = -1;
            break;
        }
        n = &s->nodes[i];
        n->first = (uint32_t)s->n_alts;
        n->n = (uint16_t)k;
        memcpy(s->alts + s->n_alts, leaves, k * sizeof *leaves);
        s->n_alts += k;
    }
    free(seen);
    free(stack);
    return r;
}

/* The bytes each node's values may start with (4 words a node; a union's
 * are its leaves'); no node may be unable to start at all (a union of
 * nothing but itself), and no union may have more alternatives starting
 * with one byte than the recognizer follows at once. */
static int check_starts(ctx *c)
{
    rg_json_schema *s = c->s;
    if (flatten_unions(c))
        return -1;
    s->starts = calloc(4 * s->n_nodes, sizeof *s->starts);
    if (!s->starts) {
        rg_error(c->e, RG_ERR_NOMEM, "out of memory for a JSON schema");
        return -1;
    }
    for (size_t i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].kind != JN_UNION)
            for (int b = 0; b < 256; b++)
                if (json_schema_starts_with(s, (uint16_t)i, (unsigned char)b))
                    s->starts[4 * i + b / 64] |= 1ull << (b % 64);
    for (size_t i = 0; i < s->n_nodes; i++) {
        const js_node *n = &s->nodes[i];
        if (n->kind == JN_UNION)
            for (uint16_t k = 0; k < n->n; k++)
                for (int w = 0; w < 4; w++)
                    s->starts[4 * i + w] |= s->starts[4 * (size_t)s->alts[n->first + k] + w];
        const uint64_t *w = s->starts + 4 * i;
        if (!(w[0] | w[1] | w[2] | w[3]))
            return fail(c, "%s", "a part of the JSON schema allows no value (an anyOf of nothing but itself?)");
        for (int b = 0; n->kind == JN_UNION && b < 256; b++) {
            int alike = 0;
            for (uint16_t k = 0; k < n->n; k++)
                alike += json_schema_starts_with(s, s->alts[n->first + k], (unsigned char)b);
            if (alike > JSON_MODE_MAX_PATHS) {
                char what[2] = {(char)b, 0};
                return fail(c,
                            "more than 8 alternatives of one anyOf can start with '%s' (each is followed until "
                            "the answer tells them apart) in the JSON schema",
                            what);
            }
        }
    }
    return 0;
}

rg_status json_schema_compile(const cJSON *schema, rg_json_schema **out, rg_err *e)
{
    *out = NULL;
    rg_json_schema *s = calloc(1, sizeof *s);
    if (!s)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a JSON schema");
    ctx c = {.s = s, .root = schema, .e = e};
    int r = add_node(&c, (js_node){.kind = JN_ANY});
    if (r >= 0)
        r = add_node(&c, (js_node){.kind = JN_MAP, .child = JN_NODE_ANY});
    if (r >= 0)
        r = add_node(&c, (js_node){.kind = JN_ARRAY, .child = JN_NODE_ANY, .max_items = UINT16_MAX});
    if (r >= 0)
        r = compile(&c, schema, 0);
    if (r == JN_NODE_ANY) /* {} or true: the answer is an object anyway */
        r = JN_NODE_ANY_OBJECT;
    if (r >= 0 && s->nodes[r].kind != JN_OBJECT && s->nodes[r].kind != JN_MAP)
        r = fail(&c, "%s", "the JSON schema's root must be an object (\"type\": \"object\")");
    if (r >= 0 && check_starts(&c))
        r = -1;
    if (r < 0) {
        json_schema_free(s);
        return e && e->status ? e->status : RG_ERR_INVALID;
    }
    s->root = (uint16_t)r;
    *out = s;
    return RG_OK;
}

void json_schema_free(rg_json_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_props; i++)
        cJSON_free(s->props[i].text);
    for (size_t i = 0; i < s->n_lits; i++)
        cJSON_free(s->lits[i].text);
    free(s->props);
    free(s->lits);
    free(s->alts);
    free(s->starts);
    free(s->nodes);
    free(s);
}
