#include "generate/json_mode.h"

#include <math.h>

/* What the next byte may be. The first six are between tokens, where
 * whitespace may come; the rest are inside a string, a literal or a
 * number. */
enum {
    JS_VALUE,        /* a value (at the top: only an object) */
    JS_VALUE_OR_END, /* after '[': a value or ']' */
    JS_KEY_OR_END,   /* after '{': a key or '}' */
    JS_KEY,          /* after ',' in an object: a key */
    JS_COLON,        /* after a key */
    JS_AFTER,        /* after a value in a container: ',' or its closer */
    JS_DONE,         /* the top-level object is closed */
    JS_STRING,
    JS_ESCAPE,       /* after '\' */
    JS_UHEX,         /* aux hex digits of \uXXXX left */
    JS_UTF8,         /* aux continuation bytes left, the next in [lo, hi] */
    JS_LIT,          /* inside true / false / null, aux bytes matched */
    JS_NUM_MINUS,    /* "-": a digit must follow */
    JS_NUM_ZERO,     /* a leading 0: '.', 'e' or the end */
    JS_NUM_INT,
    JS_NUM_DOT,      /* "1.": a digit must follow */
    JS_NUM_FRAC,
    JS_NUM_E,        /* "1e": a sign or a digit */
    JS_NUM_ESIGN,    /* "1e-": a digit */
    JS_NUM_EXP
};

static const char *const literals[] = {"true", "false", "null"};

void json_prefix_init(rg_json_prefix *p)
{
    *p = (rg_json_prefix){.state = JS_VALUE};
}

int json_prefix_done(const rg_json_prefix *p)
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

static int top_is_object(const rg_json_prefix *p)
{
    return (p->nest >> (p->depth - 1)) & 1u;
}

static void end_value(rg_json_prefix *p)
{
    p->state = p->depth ? JS_AFTER : JS_DONE;
}

static int open_container(rg_json_prefix *p, int object)
{
    if (p->depth >= JSON_MODE_MAX_DEPTH)
        return 0;
    p->nest = (p->nest & ~(1u << p->depth)) | ((uint32_t)object << p->depth);
    p->depth++;
    p->state = object ? JS_KEY_OR_END : JS_VALUE_OR_END;
    return 1;
}

static int close_container(rg_json_prefix *p, unsigned char c)
{
    if (!p->depth || top_is_object(p) != (c == '}'))
        return 0;
    p->depth--;
    end_value(p);
    return 1;
}

/* The first byte of a value. */
static int value_start(rg_json_prefix *p, unsigned char c)
{
    if (p->depth == 0 && c != '{')
        return 0; /* JSON mode's answer is an object */
    switch (c) {
    case '{':
        return open_container(p, 1);
    case '[':
        return open_container(p, 0);
    case '"':
        p->state = JS_STRING;
        p->key = 0;
        return 1;
    case '-':
        p->state = JS_NUM_MINUS;
        return 1;
    case '0':
        p->state = JS_NUM_ZERO;
        return 1;
    case 't':
    case 'f':
    case 'n':
        p->state = JS_LIT;
        p->lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
        p->aux = 1;
        return 1;
    default:
        if (c >= '1' && c <= '9') {
            p->state = JS_NUM_INT;
            return 1;
        }
        return 0;
    }
}

/* A byte between tokens (states JS_VALUE .. JS_DONE). */
static int structural(rg_json_prefix *p, unsigned char c)
{
    if (p->state == JS_DONE)
        return 0;
    if (is_ws(c))
        return ++p->ws <= JSON_MODE_MAX_WS;
    p->ws = 0;
    switch (p->state) {
    case JS_VALUE:
        return value_start(p, c);
    case JS_VALUE_OR_END:
        return c == ']' ? close_container(p, c) : value_start(p, c);
    case JS_KEY_OR_END:
        if (c == '}')
            return close_container(p, c);
        /* fall through */
    case JS_KEY:
        if (c != '"')
            return 0;
        p->state = JS_STRING;
        p->key = 1;
        return 1;
    case JS_COLON:
        if (c != ':')
            return 0;
        p->state = JS_VALUE;
        return 1;
    case JS_AFTER:
        if (c == ',') {
            p->state = top_is_object(p) ? JS_KEY : JS_VALUE;
            return 1;
        }
        return (c == '}' || c == ']') && close_container(p, c);
    default:
        return 0;
    }
}

/* A byte inside a string: UTF-8 checked as a strict decoder checks it (no
 * overlong forms, no surrogates, nothing past U+10FFFF), so the text
 * decodes to exactly these bytes. */
static int string_byte(rg_json_prefix *p, unsigned char c)
{
    if (c == '"') {
        if (p->key)
            p->state = JS_COLON;
        else
            end_value(p);
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

/* A byte that ends a number: the number is a value, and the byte is read
 * as what follows it. */
static int end_number(rg_json_prefix *p, unsigned char c)
{
    end_value(p);
    return structural(p, c);
}

static int feed_byte(rg_json_prefix *p, unsigned char c)
{
    switch (p->state) {
    case JS_STRING:
        return string_byte(p, c);
    case JS_ESCAPE:
        if (c == 'u') {
            p->state = JS_UHEX;
            p->aux = 4;
            return 1;
        }
        p->state = JS_STRING;
        return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't';
    case JS_UHEX:
        if (!is_hex(c))
            return 0;
        if (--p->aux == 0)
            p->state = JS_STRING;
        return 1;
    case JS_UTF8:
        if (c < p->lo || c > p->hi)
            return 0;
        p->lo = 0x80;
        p->hi = 0xBF;
        if (--p->aux == 0)
            p->state = JS_STRING;
        return 1;
    case JS_LIT: {
        const char *lit = literals[p->lit];
        if (c != (unsigned char)lit[p->aux])
            return 0;
        if (lit[++p->aux] == '\0')
            end_value(p);
        return 1;
    }
    case JS_NUM_MINUS:
        if (!is_digit(c))
            return 0;
        p->state = c == '0' ? JS_NUM_ZERO : JS_NUM_INT;
        return 1;
    case JS_NUM_ZERO:
    case JS_NUM_INT:
        if (is_digit(c) && p->state == JS_NUM_INT)
            return 1;
        if (c == '.') {
            p->state = JS_NUM_DOT;
            return 1;
        }
        if (c == 'e' || c == 'E') {
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

int json_prefix_feed(rg_json_prefix *p, const char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!feed_byte(p, (unsigned char)bytes[i]))
            return 0;
    return 1;
}

int json_token_allowed(const rg_json_vocab *v, const rg_json_prefix *p, int32_t id)
{
    if (id < 0 || (size_t)id >= v->n_vocab)
        return 0;
    if (id == v->end[0] || id == v->end[1])
        return json_prefix_done(p);
    if (bpe_is_special(v->tok, id))
        return 0;
    size_t n;
    const char *b = bpe_token_bytes(v->tok, id, &n);
    if (!b || !n)
        return 0;
    rg_json_prefix t = *p;
    return json_prefix_feed(&t, b, n);
}

/* ~1-3 ms over SmolLM2's 49K tokens on the development VM; the engine
 * calls it only when the token it drew does not fit (engine.c pick_json). */
size_t json_mask_logits(const rg_json_vocab *v, const rg_json_prefix *p, float *logits)
{
    size_t allowed = 0;
    for (size_t id = 0; id < v->n_vocab; id++) {
        if (json_token_allowed(v, p, (int32_t)id))
            allowed++;
        else
            logits[id] = -INFINITY;
    }
    return allowed;
}
