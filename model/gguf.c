/* gguf.c - GGUF reader: mmap, parse, validate everything up front.
 *
 * Layout (ggml docs/gguf.md), all little-endian:
 *   "GGUF" u32 version u64 tensor_count u64 metadata_kv_count
 *   kv[metadata_kv_count]:   string key, u32 value_type, value
 *   info[tensor_count]:      string name, u32 n_dims, u64 dims[n_dims],
 *                            u32 ggml_type, u64 offset (from the data section)
 *   padding to general.alignment (default 32)
 *   tensor data
 * where string = u64 len + len bytes (no NUL) and an array value is
 * u32 element type, u64 count, then count values (arrays may nest).
 *
 * Every count and length is compared with the bytes that remain before
 * anything is allocated for it, so allocations are bounded by a small
 * multiple of the file's size. */
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- values -------------------------------------------------------------- */

struct gguf_value {
    const char *key; /* NUL-terminated; NULL for array elements */
    uint32_t type;   /* gguf_type */
    union {
        uint64_t u;
        int64_t i;
        double f;
        struct {
            const char *s; /* NUL-terminated copy */
            size_t len;
        } str;
        struct {
            uint32_t elem_type;
            uint32_t elem_size;        /* scalar element types */
            uint64_t n;
            const unsigned char *raw;  /* scalar elements, in the mapping */
            const char **strs;         /* string elements: n + 1 pointers into
                                          one block of NUL-terminated copies,
                                          len(i) = strs[i+1] - strs[i] - 1 */
            gguf_value *items;         /* array elements */
        } arr;
    } v;
};

/* Fixed sizes of scalar metadata types; 0 for string and array. */
static const uint8_t VALUE_SIZE[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = 1,  [GGUF_TYPE_INT8] = 1,   [GGUF_TYPE_UINT16] = 2, [GGUF_TYPE_INT16] = 2,
    [GGUF_TYPE_UINT32] = 4, [GGUF_TYPE_INT32] = 4,  [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,
    [GGUF_TYPE_STRING] = 0, [GGUF_TYPE_ARRAY] = 0,  [GGUF_TYPE_UINT64] = 8, [GGUF_TYPE_INT64] = 8,
    [GGUF_TYPE_FLOAT64] = 8,
};

static const char *const TYPE_NAMES[GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool",  "string", "array", "uint64", "int64", "float64",
};

const char *gguf_type_name(gguf_type t)
{
    return (unsigned)t < GGUF_TYPE_COUNT ? TYPE_NAMES[t] : "invalid";
}

/* ---- arena: stable allocations freed together ------------------------------ */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
} arena_chunk;

#define ARENA_CHUNK (64 * 1024)

static void *arena_alloc(arena_chunk **head, size_t size)
{
    if (size > SIZE_MAX / 2)
        return NULL;
    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (size == 0)
        size = sizeof(max_align_t);
    arena_chunk *c = *head;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        if (cap > SIZE_MAX - sizeof(arena_chunk))
            return NULL;
        arena_chunk *n = malloc(sizeof(arena_chunk) + cap);
        if (!n)
            return NULL;
        n->used = 0;
        n->cap = cap;
        if (c && size > ARENA_CHUNK) {
            /* keep filling the current chunk; the big block goes behind it */
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            *head = n;
        }
        c = n;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

static void arena_free(arena_chunk *c)
{
    while (c) {
        arena_chunk *n = c->next;
        free(c);
        c = n;
    }
}

/* ---- name index: open addressing over indices ----------------------------- */

typedef struct name_index {
    size_t *slots; /* index + 1; 0 = empty */
    size_t mask;
} name_index;

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static int index_init(name_index *ix, size_t n)
{
    size_t cap = 8;
    while (cap < 2 * n) {
        if (cap > SIZE_MAX / 4 / sizeof(size_t))
            return 0;
        cap *= 2;
    }
    ix->slots = calloc(cap, sizeof(size_t));
    ix->mask = cap - 1;
    return ix->slots != NULL;
}

/* ---- the handle -------------------------------------------------------------- */

struct gguf_file {
    const unsigned char *base;
    size_t size;
    int mapped; /* base is our mmap */
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    size_t n_kv;
    gguf_value *kvs;
    size_t n_tensors;
    gguf_tensor *tensors;
    name_index kv_index;
    name_index tensor_index;
    arena_chunk *arena;
};

static const char *tensor_name_at(const gguf_file *g, size_t i)
{
    return g->tensors[i].name;
}

static const char *kv_name_at(const gguf_file *g, size_t i)
{
    return g->kvs[i].key;
}

/* Looks name up; when insert_at is not SIZE_MAX and the name is absent,
 * records it. Returns the index found or SIZE_MAX. */
static size_t index_lookup(const gguf_file *g, const name_index *ix, const char *(*name_at)(const gguf_file *, size_t),
                           const char *name, size_t insert_at)
{
    if (!ix->slots)
        return SIZE_MAX;
    size_t pos = (size_t)hash_name(name) & ix->mask;
    for (;;) {
        size_t s = ix->slots[pos];
        if (s == 0) {
            if (insert_at != SIZE_MAX)
                ix->slots[pos] = insert_at + 1;
            return SIZE_MAX;
        }
        if (strcmp(name_at(g, s - 1), name) == 0)
            return s - 1;
        pos = (pos + 1) & ix->mask;
    }
}

/* ---- cursor ------------------------------------------------------------------ */

typedef struct cursor {
    const unsigned char *p;
    size_t size, pos;
    rg_err *e;
} cursor;

static size_t left(const cursor *c)
{
    return c->size - c->pos;
}

static rg_status corrupt(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static rg_status corrupt(cursor *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rg_error(c->e, RG_ERR_CORRUPT, "at byte %zu: %s", c->pos, msg);
}

static rg_status need(cursor *c, size_t n, const char *what)
{
    if (n > left(c))
        return corrupt(c, "file ends inside %s (needs %zu bytes, %zu left)", what, n, left(c));
    return RG_OK;
}

static uint64_t le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static rg_status read_u32(cursor *c, uint32_t *out, const char *what)
{
    rg_status s = need(c, 4, what);
    if (s)
        return s;
    *out = (uint32_t)le(c->p + c->pos, 4);
    c->pos += 4;
    return RG_OK;
}

static rg_status read_u64(cursor *c, uint64_t *out, const char *what)
{
    rg_status s = need(c, 8, what);
    if (s)
        return s;
    *out = le(c->p + c->pos, 8);
    c->pos += 8;
    return RG_OK;
}

/* Reads a string's length and checks its bytes are present. */
static rg_status read_string_span(cursor *c, const unsigned char **bytes, size_t *len, const char *what)
{
    uint64_t n;
    size_t at = c->pos;
    rg_status s = read_u64(c, &n, what);
    if (s)
        return s;
    if (n > left(c)) {
        size_t rem = left(c);
        c->pos = at;
        return corrupt(c, "%s length %llu exceeds the %zu bytes left in the file", what, (unsigned long long)n, rem);
    }
    *bytes = c->p + c->pos;
    *len = (size_t)n;
    c->pos += (size_t)n;
    return RG_OK;
}

static char *copy_string(gguf_file *g, const unsigned char *bytes, size_t len)
{
    char *s = arena_alloc(&g->arena, len + 1);
    if (!s)
        return NULL;
    memcpy(s, bytes, len);
    s[len] = '\0';
    return s;
}

static rg_status nomem(cursor *c, const char *what)
{
    return rg_error(c->e, RG_ERR_NOMEM, "out of memory for %s", what);
}

/* ---- metadata parsing ----------------------------------------------------- */

static rg_status parse_value(gguf_file *g, cursor *c, uint32_t type, gguf_value *out, int depth);

static rg_status check_bools(cursor *c, const unsigned char *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return corrupt(c, "bool value %u is neither 0 nor 1", (unsigned)p[i]);
    return RG_OK;
}

static rg_status parse_array(gguf_file *g, cursor *c, gguf_value *out, int depth)
{
    uint32_t et;
    uint64_t n;
    rg_status s;
    if ((s = read_u32(c, &et, "an array's element type")) || (s = read_u64(c, &n, "an array's length")))
        return s;
    if (et >= GGUF_TYPE_COUNT)
        return corrupt(c, "array element type %u is not a GGUF metadata type", (unsigned)et);
    out->v.arr.elem_type = et;
    out->v.arr.n = n;
    if (VALUE_SIZE[et]) {
        size_t es = VALUE_SIZE[et];
        if (n > left(c) / es)
            return corrupt(c, "array of %llu %s values needs more than the %zu bytes left", (unsigned long long)n,
                           TYPE_NAMES[et], left(c));
        out->v.arr.elem_size = (uint32_t)es;
        out->v.arr.raw = c->p + c->pos;
        if (et == GGUF_TYPE_BOOL && (s = check_bools(c, c->p + c->pos, n)))
            return s;
        c->pos += (size_t)(n * es);
        return RG_OK;
    }
    if (et == GGUF_TYPE_STRING) {
        /* every element takes at least its 8-byte length */
        if (n > left(c) / 8)
            return corrupt(c, "array of %llu strings needs more than the %zu bytes left", (unsigned long long)n,
                           left(c));
        /* first pass: validate lengths and total the bytes */
        size_t start = c->pos, total = 0;
        for (uint64_t i = 0; i < n; i++) {
            const unsigned char *b;
            size_t len;
            if ((s = read_string_span(c, &b, &len, "a string in an array")))
                return s;
            total += len; /* bounded by the file size */
        }
        size_t count = (size_t)n;
        const char **strs = arena_alloc(&g->arena, (count + 1) * sizeof *strs);
        char *block = arena_alloc(&g->arena, total + count + 1);
        if (!strs || !block)
            return nomem(c, "a string array");
        c->pos = start;
        char *w = block;
        for (size_t i = 0; i < count; i++) {
            const unsigned char *b;
            size_t len;
            if ((s = read_string_span(c, &b, &len, "a string in an array")))
                return s;
            strs[i] = w;
            memcpy(w, b, len);
            w[len] = '\0';
            w += len + 1;
        }
        strs[count] = w;
        out->v.arr.strs = strs;
        return RG_OK;
    }
    /* array of arrays: each element takes at least 4 + 8 bytes */
    if (depth + 1 >= GGUF_MAX_ARRAY_DEPTH)
        return corrupt(c, "arrays nested deeper than %d levels", GGUF_MAX_ARRAY_DEPTH);
    if (n > left(c) / 12)
        return corrupt(c, "array of %llu arrays needs more than the %zu bytes left", (unsigned long long)n, left(c));
    gguf_value *items = NULL;
    if (n > 0) {
        items = arena_alloc(&g->arena, (size_t)n * sizeof *items);
        if (!items)
            return nomem(c, "an array of arrays");
        memset(items, 0, (size_t)n * sizeof *items);
    }
    for (size_t i = 0; i < (size_t)n; i++)
        if ((s = parse_value(g, c, GGUF_TYPE_ARRAY, &items[i], depth + 1)))
            return s;
    out->v.arr.items = items;
    return RG_OK;
}

static rg_status parse_value(gguf_file *g, cursor *c, uint32_t type, gguf_value *out, int depth)
{
    rg_status s;
    out->type = type;
    switch (type) {
    case GGUF_TYPE_STRING: {
        const unsigned char *b;
        size_t len;
        if ((s = read_string_span(c, &b, &len, "a string value")))
            return s;
        char *copy = copy_string(g, b, len);
        if (!copy)
            return nomem(c, "a string value");
        out->v.str.s = copy;
        out->v.str.len = len;
        return RG_OK;
    }
    case GGUF_TYPE_ARRAY:
        return parse_array(g, c, out, depth);
    default:
        break;
    }
    size_t size = VALUE_SIZE[type];
    if ((s = need(c, size, "a metadata value")))
        return s;
    const unsigned char *p = c->p + c->pos;
    uint64_t raw = le(p, size);
    switch (type) {
    case GGUF_TYPE_INT8: out->v.i = (int8_t)(uint8_t)raw; break;
    case GGUF_TYPE_INT16: out->v.i = (int16_t)(uint16_t)raw; break;
    case GGUF_TYPE_INT32: out->v.i = (int32_t)(uint32_t)raw; break;
    case GGUF_TYPE_INT64: memcpy(&out->v.i, &raw, 8); break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, 4);
        out->v.f = f;
        break;
    }
    case GGUF_TYPE_FLOAT64: memcpy(&out->v.f, &raw, 8); break;
    case GGUF_TYPE_BOOL:
        if (raw > 1)
            return corrupt(c, "bool value %u is neither 0 nor 1", (unsigned)raw);
        out->v.u = raw;
        break;
    default: out->v.u = raw; break; /* unsigned */
    }
    c->pos += size;
    return RG_OK;
}

static rg_status parse_kvs(gguf_file *g, cursor *c, uint64_t n_kv)
{
    rg_status s;
    /* smallest pair: 8-byte key length + 4-byte type + a 1-byte value */
    if (n_kv > left(c) / 13)
        return corrupt(c, "metadata count %llu is impossible with %zu bytes left", (unsigned long long)n_kv, left(c));
    g->n_kv = (size_t)n_kv;
    if (n_kv) {
        g->kvs = calloc((size_t)n_kv, sizeof *g->kvs);
        if (!g->kvs)
            return nomem(c, "metadata");
    }
    if (!index_init(&g->kv_index, g->n_kv))
        return nomem(c, "the metadata index");
    for (size_t i = 0; i < g->n_kv; i++) {
        const unsigned char *kb;
        size_t klen;
        size_t at = c->pos;
        if ((s = read_string_span(c, &kb, &klen, "a metadata key")))
            return s;
        if (klen == 0 || klen > GGUF_MAX_KEY_LEN || memchr(kb, 0, klen)) {
            c->pos = at;
            return corrupt(c, "metadata key #%zu %s", i,
                           klen == 0 ? "is empty"
                           : klen > GGUF_MAX_KEY_LEN ? "is longer than 65535 bytes"
                                                     : "contains a NUL byte");
        }
        char *key = copy_string(g, kb, klen);
        if (!key)
            return nomem(c, "a metadata key");
        gguf_value *kv = &g->kvs[i];
        kv->key = key;
        if (index_lookup(g, &g->kv_index, kv_name_at, key, i) != SIZE_MAX) {
            c->pos = at;
            return corrupt(c, "metadata key '%.200s' appears twice", key);
        }
        uint32_t type;
        if ((s = read_u32(c, &type, "a metadata value type")))
            return s;
        if (type >= GGUF_TYPE_COUNT) {
            c->pos -= 4;
            return corrupt(c, "metadata key '%.200s' has value type %u, not a GGUF metadata type", key,
                           (unsigned)type);
        }
        if ((s = parse_value(g, c, type, kv, 0))) {
            rg_error_wrap(c->e, "metadata key '%.200s'", key);
            return s;
        }
    }
    return RG_OK;
}

/* ---- tensor infos ---------------------------------------------------------- */

static int cmp_by_offset(const void *a, const void *b)
{
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

static rg_status parse_tensor_infos(gguf_file *g, cursor *c, uint64_t n_tensors)
{
    rg_status s;
    /* smallest info: 8 name length + 4 n_dims + 4 type + 8 offset */
    if (n_tensors > left(c) / 24)
        return corrupt(c, "tensor count %llu is impossible with %zu bytes left", (unsigned long long)n_tensors,
                       left(c));
    g->n_tensors = (size_t)n_tensors;
    if (n_tensors) {
        g->tensors = calloc((size_t)n_tensors, sizeof *g->tensors);
        if (!g->tensors)
            return nomem(c, "tensor infos");
    }
    if (!index_init(&g->tensor_index, g->n_tensors))
        return nomem(c, "the tensor index");
    for (size_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        const unsigned char *nb;
        size_t nlen;
        size_t at = c->pos;
        if ((s = read_string_span(c, &nb, &nlen, "a tensor name")))
            return s;
        if (nlen == 0 || nlen > GGUF_MAX_NAME_LEN || memchr(nb, 0, nlen)) {
            c->pos = at;
            return corrupt(c, "tensor #%zu's name %s", i,
                           nlen == 0 ? "is empty"
                           : nlen > GGUF_MAX_NAME_LEN ? "is longer than 64 bytes"
                                                      : "contains a NUL byte");
        }
        char *name = copy_string(g, nb, nlen);
        if (!name)
            return nomem(c, "a tensor name");
        t->name = name;
        if (index_lookup(g, &g->tensor_index, tensor_name_at, name, i) != SIZE_MAX) {
            c->pos = at;
            return corrupt(c, "tensor '%s' appears twice", name);
        }
        uint32_t n_dims;
        if ((s = read_u32(c, &n_dims, "a tensor's dimension count")))
            return s;
        if (n_dims > GGUF_MAX_DIMS) {
            c->pos -= 4;
            return corrupt(c, "tensor '%s' has %u dimensions (at most %d)", name, (unsigned)n_dims, GGUF_MAX_DIMS);
        }
        t->n_dims = n_dims;
        int64_t n_elems = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) {
            uint64_t dim = 1;
            if ((uint32_t)d < n_dims) {
                if ((s = read_u64(c, &dim, "a tensor's dimensions")))
                    return s;
                if (dim > (uint64_t)INT64_MAX)
                    return corrupt(c, "tensor '%s' dimension %d is %llu", name, d, (unsigned long long)dim);
            }
            t->dims[d] = (int64_t)dim;
            if (dim != 0 && n_elems > INT64_MAX / (int64_t)dim)
                return corrupt(c, "tensor '%s': the element count overflows", name);
            n_elems *= (int64_t)dim;
        }
        t->n_elems = n_elems;
        if ((s = read_u32(c, &t->type, "a tensor's type")))
            return s;
        uint32_t blk;
        if (!ggml_type_layout(t->type, &blk, NULL))
            return rg_error(c->e, RG_ERR_UNSUPPORTED, "tensor '%s': unsupported tensor type %u", name,
                            (unsigned)t->type);
        if (t->dims[0] % blk != 0)
            return corrupt(c, "tensor '%s': row length %lld is not a multiple of the %s block size %u", name,
                           (long long)t->dims[0], ggml_type_name(t->type), (unsigned)blk);
        rg_err sub;
        if (ggml_row_bytes(t->type, (uint64_t)n_elems, &t->nbytes, &sub) != RG_OK)
            return corrupt(c, "tensor '%s': %s", name, sub.msg);
        if ((s = read_u64(c, &t->offset, "a tensor's offset")))
            return s;
        if (t->offset % g->alignment != 0) {
            c->pos -= 8;
            return corrupt(c, "tensor '%s': data offset %llu is not a multiple of the alignment %zu", name,
                           (unsigned long long)t->offset, g->alignment);
        }
    }
    return RG_OK;
}

static rg_status place_tensors(gguf_file *g, cursor *c)
{
    /* the data section starts at the next multiple of the alignment */
    size_t pos = c->pos;
    size_t pad = (g->alignment - pos % g->alignment) % g->alignment;
    if (g->n_tensors == 0) {
        g->data_offset = pad <= g->size - pos ? pos + pad : g->size;
        return RG_OK;
    }
    if (pad > g->size - pos)
        return corrupt(c, "file ends before its tensor data section (at byte %zu + %zu padding)", pos, pad);
    g->data_offset = pos + pad;
    size_t avail = g->size - g->data_offset;
    for (size_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return rg_error(c->e, RG_ERR_CORRUPT,
                            "tensor '%s' (%s, %zu bytes at data offset %llu) extends past the end of the file "
                            "(%zu bytes of tensor data)",
                            t->name, ggml_type_name(t->type), t->nbytes, (unsigned long long)t->offset, avail);
        t->data = g->base + g->data_offset + t->offset;
    }
    /* no two tensors may share bytes */
    const gguf_tensor **order = malloc(g->n_tensors * sizeof *order);
    if (!order)
        return nomem(c, "tensor order");
    for (size_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    qsort(order, g->n_tensors, sizeof *order, cmp_by_offset);
    rg_status s = RG_OK;
    const gguf_tensor *last = NULL; /* the non-empty tensor reaching furthest so far */
    for (size_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *b = order[i];
        if (!b->nbytes)
            continue;
        if (last && last->offset + last->nbytes > b->offset) {
            s = rg_error(c->e, RG_ERR_CORRUPT, "tensors '%s' and '%s' overlap in the data section", last->name,
                         b->name);
            break;
        }
        last = b;
    }
    free(order);
    return s;
}

/* ---- open / close -------------------------------------------------------------- */

static rg_status set_alignment(gguf_file *g, cursor *c)
{
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_value *v = gguf_find_kv(g, "general.alignment");
    if (!v)
        return RG_OK;
    uint64_t a;
    rg_err sub;
    if (gguf_kv_u64(v, &a, &sub) != RG_OK)
        return rg_error(c->e, RG_ERR_CORRUPT, "general.alignment is %s, not an unsigned integer",
                        gguf_type_name(gguf_value_type(v)));
    if (a == 0 || (a & (a - 1)) != 0)
        return rg_error(c->e, RG_ERR_CORRUPT, "general.alignment %llu is not a power of two",
                        (unsigned long long)a);
    if (a > SIZE_MAX / 2)
        return rg_error(c->e, RG_ERR_CORRUPT, "general.alignment %llu is too large", (unsigned long long)a);
    g->alignment = (size_t)a;
    return RG_OK;
}

static rg_status parse(gguf_file *g, rg_err *e)
{
    cursor c = {g->base, g->size, 0, e};
    rg_status s;
    if (g->size < 4)
        return rg_error(e, RG_ERR_CORRUPT, "file too short for a GGUF header (%zu bytes)", g->size);
    if (memcmp(g->base, GGUF_MAGIC, 4) != 0)
        return rg_error(e, RG_ERR_CORRUPT, "not a GGUF file (the first bytes are not \"GGUF\")");
    c.pos = 4;
    uint32_t version;
    if ((s = read_u32(&c, &version, "the header")))
        return s;
    if (version != 2 && version != 3) {
        uint32_t swapped = (version >> 24) | ((version >> 8) & 0xff00u) | ((version << 8) & 0xff0000u) | (version << 24);
        if (swapped == 2 || swapped == 3)
            return rg_error(e, RG_ERR_UNSUPPORTED, "big-endian GGUF files are not supported (version %u)",
                            (unsigned)swapped);
        if (version == 1)
            return rg_error(e, RG_ERR_UNSUPPORTED,
                            "GGUF version 1 is not supported (only versions 2 and 3; convert the file again)");
        return rg_error(e, RG_ERR_UNSUPPORTED, "unsupported GGUF version %u (only versions 2 and 3)", (unsigned)version);
    }
    g->version = version;
    uint64_t n_tensors, n_kv;
    if ((s = read_u64(&c, &n_tensors, "the header")) || (s = read_u64(&c, &n_kv, "the header")))
        return s;
    if ((s = parse_kvs(g, &c, n_kv)))
        return s;
    if ((s = set_alignment(g, &c)))
        return s;
    if ((s = parse_tensor_infos(g, &c, n_tensors)))
        return s;
    return place_tensors(g, &c);
}

static rg_status open_common(gguf_file *g, gguf_file **out, rg_err *e)
{
    rg_status s = parse(g, e);
    if (s) {
        gguf_close(g);
        return s;
    }
    *out = g;
    return RG_OK;
}

rg_status gguf_open_memory(const void *data, size_t size, gguf_file **out, rg_err *e)
{
    *out = NULL;
    gguf_file *g = calloc(1, sizeof *g);
    if (!g)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    static const unsigned char empty[1];
    g->base = data ? data : empty;
    g->size = data ? size : 0;
    return open_common(g, out, e);
}

rg_status gguf_open(const char *path, gguf_file **out, rg_err *e)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rg_error(e, errno == ENOENT ? RG_ERR_NOT_FOUND : RG_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return rg_error(e, RG_ERR_IO, "%s: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rg_error(e, RG_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return rg_error(e, RG_ERR_TOO_LARGE, "%s: file too large to map", path);
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        return rg_error(e, RG_ERR_CORRUPT, "%s: empty file, not a GGUF file", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (map == MAP_FAILED)
        return rg_error(e, RG_ERR_IO, "%s: mmap: %s", path, strerror(err));
    gguf_file *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(map, size);
        return rg_error(e, RG_ERR_NOMEM, "%s: out of memory", path);
    }
    g->base = map;
    g->size = size;
    g->mapped = 1;
    rg_status s = open_common(g, out, e);
    if (s)
        rg_error_wrap(e, "%s", path);
    return s;
}

void gguf_close(gguf_file *g)
{
    if (!g)
        return;
    if (g->mapped)
        munmap((void *)g->base, g->size);
    free(g->kvs);
    free(g->tensors);
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    arena_free(g->arena);
    free(g);
}

uint32_t gguf_version(const gguf_file *g)
{
    return g->version;
}

size_t gguf_alignment(const gguf_file *g)
{
    return g->alignment;
}

size_t gguf_file_size(const gguf_file *g)
{
    return g->size;
}

size_t gguf_data_offset(const gguf_file *g)
{
    return g->data_offset;
}

/* ---- metadata accessors ------------------------------------------------------ */

size_t gguf_kv_count(const gguf_file *g)
{
    return g->n_kv;
}

const gguf_kv *gguf_kv_at(const gguf_file *g, size_t i)
{
    return i < g->n_kv ? &g->kvs[i] : NULL;
}

const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key)
{
    size_t i = index_lookup(g, &g->kv_index, kv_name_at, key, SIZE_MAX);
    return i == SIZE_MAX ? NULL : &g->kvs[i];
}

const char *gguf_kv_key(const gguf_kv *kv)
{
    return kv && kv->key ? kv->key : "";
}

gguf_type gguf_value_type(const gguf_value *v)
{
    return v ? (gguf_type)v->type : GGUF_TYPE_COUNT;
}

static int is_signed_int(uint32_t t)
{
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

static int is_unsigned_int(uint32_t t)
{
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
}

static rg_status type_error(const gguf_value *v, const char *want, rg_err *e)
{
    if (!v)
        return rg_error(e, RG_ERR_NOT_FOUND, "metadata value missing (wanted %s)", want);
    return rg_error(e, RG_ERR_INVALID, "metadata %s%s%s is %s, not %s", v->key ? "key '" : "value",
                    v->key ? v->key : "", v->key ? "'" : "", gguf_type_name((gguf_type)v->type), want);
}

static rg_status range_error(const gguf_value *v, const char *want, rg_err *e)
{
    return rg_error(e, RG_ERR_INVALID, "metadata %s%s%s does not fit in %s", v->key ? "key '" : "value",
                    v->key ? v->key : "", v->key ? "'" : "", want);
}

/* Reads an integer scalar as (negative?, magnitude-ish) pair. */
static rg_status int_value(const gguf_value *v, int *neg, uint64_t *u, int64_t *i, const char *want, rg_err *e)
{
    if (!v || !(is_signed_int(v->type) || is_unsigned_int(v->type)))
        return type_error(v, want, e);
    if (is_signed_int(v->type)) {
        *i = v->v.i;
        *neg = v->v.i < 0;
        *u = *neg ? 0 : (uint64_t)v->v.i;
    } else {
        *u = v->v.u;
        *neg = 0;
        *i = v->v.u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v->v.u;
    }
    return RG_OK;
}

rg_status gguf_kv_u64(const gguf_value *v, uint64_t *out, rg_err *e)
{
    int neg;
    uint64_t u = 0;
    int64_t i = 0;
    rg_status s = int_value(v, &neg, &u, &i, "an unsigned integer", e);
    if (s)
        return s;
    if (neg)
        return range_error(v, "uint64", e);
    *out = u;
    return RG_OK;
}

rg_status gguf_kv_u32(const gguf_value *v, uint32_t *out, rg_err *e)
{
    uint64_t u = 0;
    rg_status s = gguf_kv_u64(v, &u, e);
    if (s)
        return s;
    if (u > UINT32_MAX)
        return range_error(v, "uint32", e);
    *out = (uint32_t)u;
    return RG_OK;
}

rg_status gguf_kv_i64(const gguf_value *v, int64_t *out, rg_err *e)
{
    int neg;
    uint64_t u = 0;
    int64_t i = 0;
    rg_status s = int_value(v, &neg, &u, &i, "an integer", e);
    if (s)
        return s;
    if (!neg && u > (uint64_t)INT64_MAX)
        return range_error(v, "int64", e);
    *out = i;
    return RG_OK;
}

rg_status gguf_kv_i32(const gguf_value *v, int32_t *out, rg_err *e)
{
    int64_t i = 0;
    rg_status s = gguf_kv_i64(v, &i, e);
    if (s)
        return s;
    if (i < INT32_MIN || i > INT32_MAX)
        return range_error(v, "int32", e);
    *out = (int32_t)i;
    return RG_OK;
}

rg_status gguf_kv_f64(const gguf_value *v, double *out, rg_err *e)
{
    if (!v || (v->type != GGUF_TYPE_FLOAT32 && v->type != GGUF_TYPE_FLOAT64))
        return type_error(v, "a float", e);
    *out = v->v.f;
    return RG_OK;
}

rg_status gguf_kv_f32(const gguf_value *v, float *out, rg_err *e)
{
    double d = 0;
    rg_status s = gguf_kv_f64(v, &d, e);
    if (s)
        return s;
    *out = (float)d;
    return RG_OK;
}

rg_status gguf_kv_bool(const gguf_value *v, int *out, rg_err *e)
{
    if (!v || v->type != GGUF_TYPE_BOOL)
        return type_error(v, "bool", e);
    *out = v->v.u != 0;
    return RG_OK;
}

const char *gguf_kv_string(const gguf_value *v, size_t *len)
{
    if (!v || v->type != GGUF_TYPE_STRING)
        return NULL;
    if (len)
        *len = v->v.str.len;
    return v->v.str.s;
}

/* ---- arrays ------------------------------------------------------------------ */

size_t gguf_kv_array_len(const gguf_value *v)
{
    return v && v->type == GGUF_TYPE_ARRAY ? (size_t)v->v.arr.n : 0;
}

gguf_type gguf_kv_array_type(const gguf_value *v)
{
    return v && v->type == GGUF_TYPE_ARRAY ? (gguf_type)v->v.arr.elem_type : GGUF_TYPE_COUNT;
}

const char *gguf_kv_array_string(const gguf_value *v, size_t i, size_t *len)
{
    if (!v || v->type != GGUF_TYPE_ARRAY || v->v.arr.elem_type != GGUF_TYPE_STRING || i >= v->v.arr.n)
        return NULL;
    if (len)
        *len = (size_t)(v->v.arr.strs[i + 1] - v->v.arr.strs[i]) - 1;
    return v->v.arr.strs[i];
}

const gguf_value *gguf_kv_array_at(const gguf_value *v, size_t i)
{
    if (!v || v->type != GGUF_TYPE_ARRAY || v->v.arr.elem_type != GGUF_TYPE_ARRAY || i >= v->v.arr.n)
        return NULL;
    return &v->v.arr.items[i];
}

const void *gguf_kv_array_data(const gguf_value *v, size_t *elem_size)
{
    if (!v || v->type != GGUF_TYPE_ARRAY || !v->v.arr.elem_size)
        return NULL;
    if (elem_size)
        *elem_size = v->v.arr.elem_size;
    return v->v.arr.raw;
}

/* Element i of a scalar array as a scalar value (no key). */
static rg_status array_elem(const gguf_value *v, size_t i, gguf_value *tmp, rg_err *e)
{
    if (!v || v->type != GGUF_TYPE_ARRAY)
        return type_error(v, "an array", e);
    if (i >= v->v.arr.n)
        return rg_error(e, RG_ERR_INVALID, "metadata key '%s': index %zu is past the array's %llu elements",
                        gguf_kv_key(v), i, (unsigned long long)v->v.arr.n);
    if (!v->v.arr.elem_size)
        return rg_error(e, RG_ERR_INVALID, "metadata key '%s' is an array of %s, not of scalars", gguf_kv_key(v),
                        gguf_type_name((gguf_type)v->v.arr.elem_type));
    cursor c = {v->v.arr.raw + i * v->v.arr.elem_size, v->v.arr.elem_size, 0, e};
    memset(tmp, 0, sizeof *tmp);
    rg_status s = parse_value(NULL, &c, v->v.arr.elem_type, tmp, 0);
    tmp->key = v->key;
    return s;
}

rg_status gguf_kv_array_i64(const gguf_value *v, size_t i, int64_t *out, rg_err *e)
{
    gguf_value tmp;
    rg_status s = array_elem(v, i, &tmp, e);
    return s ? s : gguf_kv_i64(&tmp, out, e);
}

rg_status gguf_kv_array_u64(const gguf_value *v, size_t i, uint64_t *out, rg_err *e)
{
    gguf_value tmp;
    rg_status s = array_elem(v, i, &tmp, e);
    return s ? s : gguf_kv_u64(&tmp, out, e);
}

rg_status gguf_kv_array_f64(const gguf_value *v, size_t i, double *out, rg_err *e)
{
    gguf_value tmp;
    rg_status s = array_elem(v, i, &tmp, e);
    return s ? s : gguf_kv_f64(&tmp, out, e);
}

rg_status gguf_kv_array_bool(const gguf_value *v, size_t i, int *out, rg_err *e)
{
    gguf_value tmp;
    rg_status s = array_elem(v, i, &tmp, e);
    return s ? s : gguf_kv_bool(&tmp, out, e);
}

/* ---- tensors ------------------------------------------------------------------ */

size_t gguf_tensor_count(const gguf_file *g)
{
    return g->n_tensors;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *g, size_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const gguf_tensor *gguf_tensor_find(const gguf_file *g, const char *name)
{
    size_t i = index_lookup(g, &g->tensor_index, tensor_name_at, name, SIZE_MAX);
    return i == SIZE_MAX ? NULL : &g->tensors[i];
}

rg_status gguf_tensor_to_f32(const gguf_tensor *t, float *dst, rg_err *e)
{
    if ((uint64_t)t->n_elems > SIZE_MAX / sizeof(float))
        return rg_error(e, RG_ERR_TOO_LARGE, "tensor '%s' is too large", t->name);
    rg_status s = dequantize_row(t->type, t->data, dst, (size_t)t->n_elems, e);
    if (s)
        rg_error_wrap(e, "tensor '%s'", t->name);
    return s;
}

rg_status gguf_tensor_load_f32(const gguf_file *g, const char *name, size_t rows, size_t cols, float **out,
                               rg_err *e)
{
    const gguf_tensor *t = gguf_tensor_find(g, name);
    if (!t)
        return rg_error(e, RG_ERR_CORRUPT, "tensor %s is missing", name);
    int64_t want[GGUF_MAX_DIMS] = {(int64_t)(cols ? cols : rows), cols ? (int64_t)rows : 1, 1, 1};
    int ok = t->n_dims <= (cols ? 2u : 1u);
    for (int i = 0; i < GGUF_MAX_DIMS; i++)
        ok = ok && t->dims[i] == want[i];
    if (!ok) {
        if (cols)
            return rg_error(e, RG_ERR_CORRUPT, "tensor %s has shape [%lld, %lld, %lld, %lld] (GGUF order), expected "
                            "[%zu, %zu]", name, (long long)t->dims[0], (long long)t->dims[1], (long long)t->dims[2],
                            (long long)t->dims[3], cols, rows);
        return rg_error(e, RG_ERR_CORRUPT, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%zu]", name,
                        (long long)t->dims[0], (long long)t->dims[1], (long long)t->dims[2], (long long)t->dims[3],
                        rows);
    }
    if (!dequantize_supported(t->type)) {
        const char *tn = ggml_type_name(t->type);
        return rg_error(e, RG_ERR_UNSUPPORTED, "tensor %s: type %s is not supported", name, tn ? tn : "unknown");
    }
    float *buf = malloc((size_t)t->n_elems * sizeof *buf);
    if (!buf)
        return rg_error(e, RG_ERR_NOMEM, "out of memory converting tensor %s", name);
    rg_status st = gguf_tensor_to_f32(t, buf, e);
    if (st != RG_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return RG_OK;
}
