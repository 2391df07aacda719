/* json_schema_nodes.h - a compiled JSON schema as json_schema.c builds it
 * and json_mode.c walks it (internal to those two). */
#ifndef RAGD_GENERATE_JSON_SCHEMA_NODES_H
#define RAGD_GENERATE_JSON_SCHEMA_NODES_H

#include <stddef.h>
#include <stdint.h>

#include "generate/json_mode.h"

enum {
    JN_ANY,      /* any JSON value */
    JN_OBJECT,   /* properties in order: props[first .. first + n) */
    JN_MAP,      /* any keys, every value a child */
    JN_ARRAY,    /* items: child, min_items .. max_items of them */
    JN_STRING,
    JN_NUMBER,
    JN_INTEGER,
    JN_LITERALS, /* one of lits[first .. first + n) (enum, const, boolean, null) */
    JN_UNION     /* one of alts[first .. first + n), told apart by their first byte */
};

/* Nodes every schema has: any value, an object of any values, an array of
 * any values (what JN_ANY opens). */
#define JN_NODE_ANY 0
#define JN_NODE_ANY_OBJECT 1
#define JN_NODE_ANY_ARRAY 2

#define JSON_SCHEMA_MAX_NODES 4096
#define JSON_SCHEMA_MAX_CHOICES 64 /* properties of an object, values of an enum (bits of rg_json_prefix.cand) */

typedef struct js_node {
    uint8_t kind;
    uint16_t n;     /* OBJECT: properties; LITERALS: values; UNION: alternatives */
    uint32_t first; /* where they start in props / lits / alts */
    uint16_t child; /* MAP: the values' node; ARRAY: the items' node */
    uint16_t min_items, max_items;
} js_node;

/* A property or a literal: its JSON text as it must be written (a key
 * with its quotes, "name"; a value as cJSON prints it). */
typedef struct js_text {
    char *text;
    uint32_t len;
    uint16_t node;    /* a property's value node */
    uint8_t required; /* a property that must be there */
    uint8_t number;   /* a literal that is a number: it ends at the next byte that cannot extend it */
} js_text;

struct rg_json_schema {
    js_node *nodes;
    size_t n_nodes;
    js_text *props, *lits;
    size_t n_props, n_lits;
    uint16_t *alts;
    size_t n_alts;
    uint64_t *starts; /* 4 words a node: the bytes a value of it may start with (NULL: no unions) */
    uint16_t root;
};

/* Whether a value of node i may start with byte c (a union picks its
 * alternative by it; compiling made them start differently). */
static inline int json_schema_starts_with(const rg_json_schema *s, uint16_t i, unsigned char c)
{
    const js_node *n = &s->nodes[i];
    switch (n->kind) {
    case JN_ANY:
        return c == '{' || c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' ||
               c == 'n';
    case JN_OBJECT:
    case JN_MAP:
        return c == '{';
    case JN_ARRAY:
        return c == '[';
    case JN_STRING:
        return c == '"';
    case JN_NUMBER:
    case JN_INTEGER:
        return c == '-' || (c >= '0' && c <= '9');
    case JN_LITERALS:
        for (uint16_t k = 0; k < n->n; k++)
            if ((unsigned char)s->lits[n->first + k].text[0] == c)
                return 1;
        return 0;
    default: /* JN_UNION: the set json_schema_compile worked out */
        return (int)(s->starts[4 * (size_t)i + c / 64] >> (c % 64) & 1);
    }
}

/* A value of node i may be something other than an object or an array
 * (what can still come inside a container at the depth limit). */
static inline int json_schema_has_scalar(const rg_json_schema *s, uint16_t i)
{
    for (int c = 0; c < 256; c++)
        if (c != '{' && c != '[' && json_schema_starts_with(s, i, (unsigned char)c))
            return 1;
    return 0;
}

#endif
