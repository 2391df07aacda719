#include "generate/json_mode.h"

#include <string.h>

#include "generate/json_schema_nodes.h"

/* What the next byte may be. The first seven are between tokens, where
 * whitespace may come; the rest are inside a string, a key or literal
 * being matched, or a number. */
enum {
    JS_VALUE,        /* a value of node want */
    JS_VALUE_OR_END, /* after '[': an item or ']' */
    JS_KEY_OR_END,   /* after '{': a key or '}' */
    JS_KEY,          /* after ',' in an object: a key */
    JS_COLON,        /* after a key */
    JS_AFTER,        /* after a value in a container: ',' or its closer */
    JS_DONE,         /* the top-level object is closed */
    JS_STRING,
    JS_ESCAPE,       /* after '\' */
    JS_UHEX,         /* aux hex digits of \uXXXX left */
    JS_LOW_ESCAPE,   /* after a high surrogate's \uXXXX: the '\' of its low one */
    JS_LOW_U,        /* ... and its 'u' */
    JS_UTF8,         /* aux continuation bytes left, the next in [lo, hi] */
    JS_MATCH,        /* a key of an OBJECT, or a LITERALS value: cand, pos */
    JS_NUM_MINUS,    /* "-": a digit must follow */
    JS_NUM_ZERO,     /* a leading 0: '.', 'e' or the end */
    JS_NUM_INT,
    JS_NUM_DOT,      /* "1.": a digit must follow */
    JS_NUM_FRAC,
    JS_NUM_E,        /* "1e": a sign or a digit */
    JS_NUM_ESIGN,    /* "1e-": a digit */
    JS_NUM_EXP
};

/* JSON mode without a schema: an object of anything. */
static const js_node any_nodes[3] = {
    [JN_NODE_ANY] = {.kind = JN_ANY},
    [JN_NODE_ANY_OBJECT] = {.kind = JN_MAP, .child = JN_NODE_ANY},
    [JN_NODE_ANY_ARRAY] = {.kind = JN_ARRAY, .child = JN_NODE_ANY, .max_items = UINT16_MAX},
};
static const rg_json_schema any_object = {
    .nodes = (js_node *)any_nodes, .n_nodes = 3, .root = JN_NODE_ANY_OBJECT};

static void path_init(rg_json_path *p, const rg_json_schema *schema)
{
    *p = (rg_json_path){.schema = schema ? schema : &any_object, .state = JS_VALUE};
    p->want = p->schema->root;
}

int json_path_done(const rg_json_path *p)
{
    return p->state == JS_DONE;
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static const js_node *node(const rg_json_path *p, uint16_t i)
{
    return &p->schema->nodes[i];
}

static const js_node *top(const rg_json_path *p)
{
    return node(p, p->frame_node[p->depth - 1]);
}

/* A value of node i can start inside the container on top: anything
 * below the depth limit, no object or array at it. Keys, items and commas
 * are offered only for values that can start, so that no accepted prefix
 * is a dead end (short of a required value that must nest deeper). */
static int can_start(const rg_json_path *p, uint16_t i)
{
    return p->depth < JSON_MODE_MAX_DEPTH || json_schema_has_scalar(p->schema, i);
}

/* OBJECT: the properties that may come next, from the next one up to and
 * including the first required one (bit i: the object's i-th). */
static uint64_t keys_allowed(const rg_json_path *p)
{
    const js_node *o = top(p);
    uint64_t m = 0;
    for (uint16_t i = p->frame_next[p->depth - 1]; i < o->n; i++) {
        const js_text *prop = &p->schema->props[o->first + i];
        if (can_start(p, prop->node))
            m |= 1ull << i;
        if (prop->required)
            break;
    }
    return m;
}

/* OBJECT: no required property is left. */
static int may_close_object(const rg_json_path *p)
{
    const js_node *o = top(p);
    for (uint16_t i = p->frame_next[p->depth - 1]; i < o->n; i++)
        if (p->schema->props[o->first + i].required)
            return 0;
    return 1;
}

/* A value is over: what was kept to read it is cleared, so two paths that
 * read it as different alternatives are the same path from here on
 * (json_prefix_feed merges them). */
static void end_value(rg_json_path *p)
{
    p->state = p->depth ? JS_AFTER : JS_DONE;
    p->cand = 0;
    p->pos = p->want = p->lits = 0;
    p->aux = p->lo = p->hi = p->key = p->integer = p->low = 0;
    p->code = 0;
}

static int open_container(rg_json_path *p, uint16_t n, int object)
{
    if (p->depth >= JSON_MODE_MAX_DEPTH)
        return 0;
    p->frame_node[p->depth] = n;
    p->frame_next[p->depth] = 0;
    p->depth++;
    p->state = object ? JS_KEY_OR_END : JS_VALUE_OR_END;
    return 1;
}

static int close_container(rg_json_path *p, unsigned char c)
{
    if (!p->depth)
        return 0;
    const js_node *t = top(p);
    if (t->kind == JN_ARRAY) {
        if (c != ']' || p->frame_next[p->depth - 1] < t->min_items)
            return 0;
    } else if (c != '}' || (t->kind == JN_OBJECT && !may_close_object(p))) {
        return 0;
    }
    p->depth--;
    end_value(p);
    return 1;
}

/* Starts matching byte c against the texts list[0 .. n) allowed by mask. */
static int match_start(rg_json_path *p, uint16_t lits, const js_text *list, uint64_t mask, unsigned char c)
{
    uint64_t cand = 0;
    for (uint64_t m = mask; m; m &= m - 1) {
        int i = __builtin_ctzll(m);
        if ((unsigned char)list[i].text[0] == c)
            cand |= 1ull << i;
    }
    if (!cand)
        return 0;
    p->state = JS_MATCH;
    p->lits = lits;
    p->cand = cand;
    p->pos = 1;
    return 1;
}

static int number_start(rg_json_path *p, unsigned char c, int integer)
{
    p->integer = (uint8_t)integer;
    if (c == '-')
        p->state = JS_NUM_MINUS;
    else if (c == '0')
        p->state = JS_NUM_ZERO;
    else if (c >= '1' && c <= '9')
        p->state = JS_NUM_INT;
    else
        return 0;
    return 1;
}

/* The first byte of a value of node want. */
static int value_start(rg_json_path *p, uint16_t want, unsigned char c)
{
    const js_node *n = node(p, want);
    if (p->depth == 0 && c != '{')
        return 0; /* the answer is an object */
    switch (n->kind) {
    case JN_ANY:
        if (c == '{')
            return open_container(p, JN_NODE_ANY_OBJECT, 1);
        if (c == '[')
            return open_container(p, JN_NODE_ANY_ARRAY, 0);
        if (c == '"') {
            p->state = JS_STRING;
            p->key = 0;
            return 1;
        }
        if (c == 't' || c == 'f' || c == 'n') {
            /* any literal: the three words, matched like an enum's */
            p->key = 0;
            p->lits = UINT16_MAX; /* match_texts reads this as the three words */
            p->cand = c == 't' ? 1 : c == 'f' ? 2 : 4;
            p->pos = 1;
            p->state = JS_MATCH;
            return 1;
        }
        return number_start(p, c, 0);
    case JN_OBJECT:
    case JN_MAP:
        return c == '{' && open_container(p, want, 1);
    case JN_ARRAY:
        return c == '[' && open_container(p, want, 0);
    case JN_STRING:
        if (c != '"')
            return 0;
        p->state = JS_STRING;
        p->key = 0;
        return 1;
    case JN_NUMBER:
    case JN_INTEGER:
        return number_start(p, c, n->kind == JN_INTEGER);
    case JN_LITERALS: {
        uint64_t all = n->n >= 64 ? ~0ull : (1ull << n->n) - 1;
        p->key = 0;
        return match_start(p, want, p->schema->lits + n->first, all, c);
    }
    default: { /* JN_UNION: its alternatives are no unions (json_schema.c) */
        uint16_t take = p->fork, found = 0, alt = 0;
        p->fork = 0;
        for (uint16_t k = 0; k < n->n; k++) {
            uint16_t a = p->schema->alts[n->first + k];
            if (!json_schema_starts_with(p->schema, a, c))
                continue;
            if (found++ == take)
                alt = a;
            else if (found > take + 1u) {
                p->more = 1; /* another alternative starts with c too */
                break;
            }
        }
        return found > take && value_start(p, alt, c);
    }
    }
}

/* An item of the array on top starts with byte c. */
static int item_start(rg_json_path *p, unsigned char c)
{
    const js_node *a = top(p);
    uint16_t *count = &p->frame_next[p->depth - 1];
    if (*count >= a->max_items || !can_start(p, a->child))
        return 0;
    (*count)++;
    return value_start(p, a->child, c);
}

/* A key of the object on top starts with byte c ('"'). */
static int key_start(rg_json_path *p, unsigned char c)
{
    const js_node *o = top(p);
    if (o->kind == JN_MAP) {
        if (c != '"' || !can_start(p, o->child))
            return 0;
        p->state = JS_STRING;
        p->key = 1;
        return 1;
    }
    p->key = 1;
    return match_start(p, p->frame_node[p->depth - 1], p->schema->props + o->first, keys_allowed(p), c);
}

/* A byte between tokens (states JS_VALUE .. JS_DONE). */
static int structural(rg_json_path *p, unsigned char c)
{
    if (p->state == JS_DONE)
        return 0;
    if (is_ws(c))
        return ++p->ws <= JSON_MODE_MAX_WS;
    p->ws = 0;
    switch (p->state) {
    case JS_VALUE:
        return p->depth && top(p)->kind == JN_ARRAY ? item_start(p, c) : value_start(p, p->want, c);
    case JS_VALUE_OR_END:
        return c == ']' ? close_container(p, c) : item_start(p, c);
    case JS_KEY_OR_END:
        if (c == '}')
            return close_container(p, c);
        /* fall through */
    case JS_KEY:
        return key_start(p, c);
    case JS_COLON:
        if (c != ':')
            return 0;
        p->state = JS_VALUE;
        return 1;
    case JS_AFTER:
        if (c == ',') {
            const js_node *t = top(p);
            if (t->kind == JN_ARRAY) {
                p->state = JS_VALUE;
                return p->frame_next[p->depth - 1] < t->max_items && can_start(p, t->child);
            }
            p->state = JS_KEY;
            return t->kind == JN_OBJECT ? keys_allowed(p) != 0 : can_start(p, t->child);
        }
        return (c == '}' || c == ']') && close_container(p, c);
    default:
        return 0;
    }
}

/* A byte inside a string: UTF-8 checked as a strict decoder checks it (no
 * overlong forms, no surrogates, nothing past U+10FFFF), so the text
 * decodes to exactly these bytes. */
static int string_byte(rg_json_path *p, unsigned char c)
{
    if (c == '"') {
        if (p->key) {
            p->state = JS_COLON;
            p->want = top(p)->child; /* a MAP's value */
        } else {
            end_value(p);
        }
        return 1;
    }
    if (c == '\\') {
        p->state = JS_ESCAPE;
        return 1;
    }
    if (c < 0x20)
        return 0;
    if (c < 0x80)
        return 1;
    p->lo = 0x80;
    p->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        p->aux = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        p->aux = 2;
        if (c == 0xE0)
            p->lo = 0xA0;
        else if (c == 0xED)
            p->hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        p->aux = 3;
        if (c == 0xF0)
            p->lo = 0x90;
        else if (c == 0xF4)
            p->hi = 0x8F;
    } else {
        return 0;
    }
    p->state = JS_UTF8;
    return 1;
}

/* The texts a JS_MATCH state matches against. */
static const js_text *match_texts(const rg_json_path *p)
{
    static const js_text words[3] = {
        {.text = "true", .len = 4}, {.text = "false", .len = 5}, {.text = "null", .len = 4}};
    if (p->lits == UINT16_MAX)
        return words;
    const js_node *n = node(p, p->lits);
    return n->kind == JN_OBJECT ? p->schema->props + n->first : p->schema->lits + n->first;
}

/* A key or literal matched in full: the object's next property is after
 * it, or the value ends. */
static void match_done(rg_json_path *p, int i, const js_text *t)
{
    if (p->key) {
        p->frame_next[p->depth - 1] = (uint16_t)(i + 1);
        p->want = t->node;
        p->state = JS_COLON;
    } else {
        end_value(p);
    }
}

static int match_byte(rg_json_path *p, unsigned char c)
{
    const js_text *list = match_texts(p);
    uint64_t next = 0;
    int complete = -1;
    for (uint64_t m = p->cand; m; m &= m - 1) {
        int i = __builtin_ctzll(m);
        if (list[i].len > p->pos && (unsigned char)list[i].text[p->pos] == c)
            next |= 1ull << i;
        else if (list[i].len == p->pos)
            complete = i; /* a number, which only the next byte ends */
    }
    if (!next) {
        if (complete < 0)
            return 0;
        match_done(p, complete, &list[complete]);
        return structural(p, c);
    }
    p->cand = next;
    p->pos++;
    /* a key, a string, true, false or null ends with its last byte: no
     * other candidate can extend it */
    for (uint64_t m = next; m; m &= m - 1) {
        int i = __builtin_ctzll(m);
        if (list[i].len == p->pos && !list[i].number) {
            match_done(p, i, &list[i]);
            break;
        }
    }
    return 1;
}

/* A hex digit of \uXXXX. UTF-16 surrogates come in pairs, as a strict
 * parser wants them (cJSON refuses a lone one): a high one (D800-DBFF) is
 * followed by a low one (DC00-DFFF), and a low one never comes alone. Each
 * is decided at its second digit, so every prefix accepted can still be
 * completed. */
static int uhex_byte(rg_json_path *p, unsigned char c)
{
    if (!is_hex(c))
        return 0;
    unsigned v = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
    p->code = (uint16_t)(p->code << 4 | v);
    p->aux--;
    if (p->aux == 2) { /* two digits: 0xD8-0xDB high, 0xDC-0xDF low */
        int low = p->code >= 0xDC && p->code <= 0xDF;
        if (p->low ? !low : low)
            return 0;
    } else if (p->aux == 3 && p->low && p->code != 0xD) {
        return 0;
    }
    if (p->aux)
        return 1;
    if (p->low) {
        p->low = 0;
        p->state = JS_STRING;
    } else if (p->code >= 0xD800 && p->code <= 0xDBFF) {
        p->low = 1;
        p->state = JS_LOW_ESCAPE;
    } else {
        p->state = JS_STRING;
    }
    return 1;
}

/* A byte that ends a number: the number is a value, and the byte is read
 * as what follows it. */
static int end_number(rg_json_path *p, unsigned char c)
{
    end_value(p);
    return structural(p, c);
}

static int feed_byte(rg_json_path *p, unsigned char c)
{
    p->more = 0;
    switch (p->state) {
    case JS_STRING:
        return string_byte(p, c);
    case JS_ESCAPE:
        if (c == 'u') {
            p->state = JS_UHEX;
            p->aux = 4;
            p->code = 0;
            return 1;
        }
        p->state = JS_STRING;
        return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't';
    case JS_UHEX:
        return uhex_byte(p, c);
    case JS_LOW_ESCAPE:
        p->state = JS_LOW_U;
        return c == '\\';
    case JS_LOW_U:
        p->state = JS_UHEX;
        p->aux = 4;
        p->code = 0;
        return c == 'u';
    case JS_UTF8:
        if (c < p->lo || c > p->hi)
            return 0;
        p->lo = 0x80;
        p->hi = 0xBF;
        if (--p->aux == 0)
            p->state = JS_STRING;
        return 1;
    case JS_MATCH:
        return match_byte(p, c);
    case JS_NUM_MINUS:
        if (!is_digit(c))
            return 0;
        p->state = c == '0' ? JS_NUM_ZERO : JS_NUM_INT;
        return 1;
    case JS_NUM_ZERO:
    case JS_NUM_INT:
        if (is_digit(c) && p->state == JS_NUM_INT)
            return 1;
        if (c == '.' && !p->integer) {
            p->state = JS_NUM_DOT;
            return 1;
        }
        if ((c == 'e' || c == 'E') && !p->integer) {
            p->state = JS_NUM_E;
            return 1;
        }
        return end_number(p, c);
    case JS_NUM_DOT:
        if (!is_digit(c))
            return 0;
        p->state = JS_NUM_FRAC;
        return 1;
    case JS_NUM_FRAC:
        if (is_digit(c))
            return 1;
        if (c == 'e' || c == 'E') {
            p->state = JS_NUM_E;
            return 1;
        }
        return end_number(p, c);
    case JS_NUM_E:
        if (c == '+' || c == '-') {
            p->state = JS_NUM_ESIGN;
            return 1;
        }
        /* fall through */
    case JS_NUM_ESIGN:
        if (!is_digit(c))
            return 0;
        p->state = JS_NUM_EXP;
        return 1;
    case JS_NUM_EXP:
        return is_digit(c) ? 1 : end_number(p, c);
    default:
        return structural(p, c);
    }
}

int json_path_in_string(const rg_json_path *p)
{
    return p->state == JS_STRING;
}

int json_path_keeps(const rg_json_path *p, unsigned char c)
{
    switch (p->state) {
    case JS_STRING:
        return json_string_plain(c);
    case JS_NUM_INT:
    case JS_NUM_FRAC:
    case JS_NUM_EXP:
        return is_digit(c);
    default:
        return 0;
    }
}

int json_path_feed(rg_json_path *p, const char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!feed_byte(p, (unsigned char)bytes[i]))
            return 0;
    return 1;
}

/* The same path from here on: what is read next, and the containers open
 * (end_value cleared what a finished value kept). */
static int same_path(const rg_json_path *a, const rg_json_path *b)
{
    if (a->cand != b->cand || a->pos != b->pos || a->want != b->want || a->lits != b->lits ||
        a->depth != b->depth || a->state != b->state || a->ws != b->ws || a->aux != b->aux || a->lo != b->lo ||
        a->hi != b->hi || a->key != b->key || a->integer != b->integer || a->low != b->low || a->code != b->code)
        return 0;
    return !memcmp(a->frame_node, b->frame_node, a->depth * sizeof *a->frame_node) &&
           !memcmp(a->frame_next, b->frame_next, a->depth * sizeof *a->frame_next);
}

static void add_path(rg_json_prefix *to, const rg_json_path *p)
{
    for (uint8_t i = 0; i < to->n; i++)
        if (same_path(&to->path[i], p))
            return;
    if (to->n < JSON_MODE_MAX_PATHS) /* past it, later alternatives are let go */
        to->path[to->n++] = *p;
}

void json_prefix_init(rg_json_prefix *p, const rg_json_schema *schema)
{
    p->n = 1;
    path_init(&p->path[0], schema);
}

int json_prefix_feed(rg_json_prefix *p, const char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rg_json_prefix next;
        next.n = 0;
        for (uint8_t k = 0; k < p->n; k++)
            for (uint16_t f = 0;; f++) {
                rg_json_path t = p->path[k];
                t.fork = (uint8_t)f;
                if (feed_byte(&t, (unsigned char)bytes[i]))
                    add_path(&next, &t);
                if (!t.more)
                    break;
            }
        if (!next.n)
            return 0;
        memcpy(p->path, next.path, next.n * sizeof *next.path);
        p->n = next.n;
    }
    return 1;
}

int json_prefix_accepts(const rg_json_prefix *p, const char *bytes, size_t n)
{
    rg_json_prefix t;
    t.n = p->n;
    memcpy(t.path, p->path, p->n * sizeof *p->path);
    return json_prefix_feed(&t, bytes, n);
}

int json_prefix_done(const rg_json_prefix *p)
{
    for (uint8_t k = 0; k < p->n; k++)
        if (json_path_done(&p->path[k]))
            return 1;
    return 0;
}
