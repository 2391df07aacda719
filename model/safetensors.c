/* safetensors.c - mmap reader of .safetensors files; see safetensors.h. */
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

struct rg_safetensors {
    char *path;
    void *map;
    size_t map_len;
    rg_st_tensor *tensors; /* header order */
    size_t count;
    const rg_st_tensor **by_name; /* sorted by name, for safetensors_find */
};

static const struct {
    const char *name;
    size_t size;
} dtypes[RG_ST_DTYPE_COUNT] = {
    [RG_ST_F32] = {"F32", 4},         [RG_ST_F16] = {"F16", 2},         [RG_ST_BF16] = {"BF16", 2},
    [RG_ST_F64] = {"F64", 8},         [RG_ST_F8_E4M3] = {"F8_E4M3", 1}, [RG_ST_F8_E5M2] = {"F8_E5M2", 1},
    [RG_ST_I8] = {"I8", 1},           [RG_ST_I16] = {"I16", 2},         [RG_ST_I32] = {"I32", 4},
    [RG_ST_I64] = {"I64", 8},         [RG_ST_U8] = {"U8", 1},           [RG_ST_U16] = {"U16", 2},
    [RG_ST_U32] = {"U32", 4},         [RG_ST_U64] = {"U64", 8},         [RG_ST_BOOL] = {"BOOL", 1},
};

const char *safetensors_dtype_name(rg_st_dtype dtype)
{
    return (unsigned)dtype < RG_ST_DTYPE_COUNT ? dtypes[dtype].name : "?";
}

size_t safetensors_dtype_size(rg_st_dtype dtype)
{
    return (unsigned)dtype < RG_ST_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

int safetensors_aligned(const rg_st_tensor *t)
{
    size_t a = safetensors_dtype_size(t->dtype);
    return a != 0 && (uintptr_t)t->data % a == 0;
}

/* ---- parsing ------------------------------------------------------------ */

/* A JSON number that is an exact non-negative integer. JSON numbers arrive
 * as doubles, so only values below 2^53 are known to be what the file says;
 * that bounds every offset and dimension. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d < 9007199254740992.0)) /* also false for NaN */
        return 0;
    uint64_t u = (uint64_t)d;
    if ((double)u != d)
        return 0;
    *out = u;
    return 1;
}

typedef struct span {
    uint64_t begin, end;
    size_t idx;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int tensor_name_cmp(const void *a, const void *b)
{
    const rg_st_tensor *x = *(const rg_st_tensor *const *)a, *y = *(const rg_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* Fills t from one header entry; offsets come back for the overlap check. */
static rg_status parse_tensor(const char *path, const cJSON *entry, const uint8_t *data, uint64_t data_len,
                              rg_st_tensor *t, span *sp, rg_err *e)
{
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return rg_error(e, RG_ERR_CORRUPT, "%s: tensor '%.200s': entry is not a JSON object", path, name);

    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(jd))
        return rg_error(e, RG_ERR_CORRUPT, "%s: tensor '%.200s': missing or non-string \"dtype\"", path, name);
    int dt = -1;
    for (int i = 0; i < RG_ST_DTYPE_COUNT; i++)
        if (strcmp(jd->valuestring, dtypes[i].name) == 0)
            dt = i;
    if (dt < 0)
        return rg_error(e, RG_ERR_UNSUPPORTED,
                        "%s: tensor '%.200s': dtype '%.40s' is not supported (F32, F16, BF16 are computed with; "
                        "F64, F8_E4M3, F8_E5M2, I8-I64, U8-U64, BOOL are read)",
                        path, name, jd->valuestring);
    t->dtype = (rg_st_dtype)dt;

    const cJSON *js = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (!cJSON_IsArray(js))
        return rg_error(e, RG_ERR_CORRUPT, "%s: tensor '%.200s': missing or non-array \"shape\"", path, name);
    int rank = cJSON_GetArraySize(js);
    if (rank > RG_ST_MAX_RANK)
        return rg_error(e, RG_ERR_CORRUPT, "%s: tensor '%.200s': rank %d exceeds the limit of %d", path, name, rank,
                        RG_ST_MAX_RANK);
    t->rank = rank;
    size_t nelem = 1;
    int overflow = 0, k = 0;
    for (const cJSON *d = js->child; d; d = d->next, k++) {
        uint64_t dim;
        if (!json_uint(d, &dim))
            return rg_error(e, RG_ERR_CORRUPT, "%s: tensor '%.200s': shape[%d] is not a non-negative integer", path,
                            name, k);
        if (dim > SIZE_MAX)
            overflow = 1;
        t->shape[k] = (size_t)dim;
        /* Once a dimension is 0 the product stays 0 and cannot overflow. */
        if (dim != 0 && nelem > SIZE_MAX / (size_t)dim)
            overflow = 1;
        else
            nelem *= (size_t)dim;
    }
    size_t esz = dtypes[dt].size;
    if (overflow || nelem > SIZE_MAX / esz)
        return rg_error(e, RG_ERR_CORRUPT, "%s: tensor '%.200s': element count x dtype size overflows", path, name);
    t->nelem = nelem;
    t->nbytes = nelem * esz;

    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &begin) ||
        !json_uint(jo->child->next, &end))
        return rg_error(e, RG_ERR_CORRUPT,
                        "%s: tensor '%.200s': \"data_offsets\" must be [begin, end] of non-negative integers", path,
                        name);
    if (begin > end || end > data_len)
        return rg_error(e, RG_ERR_CORRUPT,
                        "%s: tensor '%.200s': data_offsets [%llu, %llu] outside the data region of %llu bytes", path,
                        name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_len);
    if (end - begin != (uint64_t)t->nbytes)
        return rg_error(e, RG_ERR_CORRUPT,
                        "%s: tensor '%.200s': data_offsets span %llu bytes but %s shape needs %zu x %zu = %zu", path,
                        name, (unsigned long long)(end - begin), dtypes[dt].name, nelem, esz, t->nbytes);
    t->data = data + begin;
    sp->begin = begin;
    sp->end = end;
    return RG_OK;
}

static rg_status parse_header(rg_safetensors *st, const char *json, size_t json_len, const uint8_t *data,
                              uint64_t data_len, rg_err *e)
{
    const char *path = st->path;
    if (json_len == 0 || json[0] != '{')
        return rg_error(e, RG_ERR_CORRUPT, "%s: header does not start with a JSON object", path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, json_len, &end, 0);
    if (!root)
        return rg_error(e, RG_ERR_CORRUPT, "%s: header is not valid JSON", path);
    rg_status s = RG_OK;
    /* The writer pads the header with spaces; nothing else may follow. */
    for (const char *p = end ? end : json + json_len; p < json + json_len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            s = rg_error(e, RG_ERR_CORRUPT, "%s: unexpected bytes after the header's JSON at offset %zu", path,
                         (size_t)(p - json) + 8);
            goto out;
        }
    if (!cJSON_IsObject(root)) {
        s = rg_error(e, RG_ERR_CORRUPT, "%s: header is not a JSON object", path);
        goto out;
    }
    size_t n = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(c)) {
                s = rg_error(e, RG_ERR_CORRUPT, "%s: \"__metadata__\" is not a JSON object", path);
                goto out;
            }
            continue;
        }
        n++;
    }
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    st->by_name = calloc(n ? n : 1, sizeof *st->by_name);
    span *spans = calloc(n ? n : 1, sizeof *spans);
    if (!st->tensors || !st->by_name || !spans) {
        free(spans);
        s = rg_error(e, RG_ERR_NOMEM, "%s: out of memory for %zu tensors", path, n);
        goto out;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0)
            continue;
        rg_st_tensor *t = &st->tensors[st->count];
        spans[st->count].idx = st->count;
        s = parse_tensor(path, c, data, data_len, t, &spans[st->count], e);
        if (s != RG_OK)
            break;
        if (!(t->name = strdup(c->string))) {
            s = rg_error(e, RG_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        st->by_name[st->count] = t;
        st->count++;
    }
    if (s == RG_OK) {
        /* Tensors must not share bytes (empty ones occupy none). */
        qsort(spans, n, sizeof *spans, span_cmp);
        uint64_t reach = 0;
        size_t last = 0;
        for (size_t i = 0; i < n && s == RG_OK; i++) {
            if (spans[i].begin == spans[i].end)
                continue;
            if (spans[i].begin < reach)
                s = rg_error(e, RG_ERR_CORRUPT, "%s: tensors '%.150s' and '%.150s' overlap", path,
                             st->tensors[last].name, st->tensors[spans[i].idx].name);
            reach = spans[i].end;
            last = spans[i].idx;
        }
    }
    free(spans);
    if (s == RG_OK) {
        qsort(st->by_name, n, sizeof *st->by_name, tensor_name_cmp);
        for (size_t i = 1; i < n && s == RG_OK; i++)
            if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0)
                s = rg_error(e, RG_ERR_CORRUPT, "%s: tensor '%.200s' is listed twice", path, st->by_name[i]->name);
    }
out:
    cJSON_Delete(root);
    return s;
}

/* ---- open / close ------------------------------------------------------- */

void safetensors_close(rg_safetensors *st)
{
    if (!st)
        return;
    if (st->tensors)
        for (size_t i = 0; i < st->count; i++)
            free((char *)st->tensors[i].name);
    free(st->tensors);
    free(st->by_name);
    if (st->map)
        munmap(st->map, st->map_len);
    free(st->path);
    free(st);
}

rg_status safetensors_open(const char *path, rg_safetensors **out, rg_err *e)
{
    *out = NULL;
    rg_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return rg_error(e, RG_ERR_NOMEM, "%s: out of memory", path);
    }
    rg_status s = RG_OK;
    char *json = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s = rg_error(e, errno == ENOENT ? RG_ERR_NOT_FOUND : RG_ERR_IO, "%s: cannot open: %s", path,
                     strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        s = rg_error(e, RG_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        s = rg_error(e, RG_ERR_INVALID, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    if (fsize < 8) {
        s = rg_error(e, RG_ERR_CORRUPT, "%s: file is %llu bytes, too short for the 8-byte header length", path,
                     (unsigned long long)fsize);
        goto fail;
    }
    if (fsize > SIZE_MAX) {
        s = rg_error(e, RG_ERR_TOO_LARGE, "%s: file too large to map", path);
        goto fail;
    }
    st->map_len = (size_t)fsize;
    void *map = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        s = rg_error(e, RG_ERR_IO, "%s: cannot mmap %zu bytes: %s", path, st->map_len, strerror(errno));
        goto fail;
    }
    st->map = map;
    close(fd);
    fd = -1;

    const uint8_t *base = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | base[i];
    if (hlen > RG_ST_MAX_HEADER) {
        s = rg_error(e, RG_ERR_CORRUPT, "%s: header length %llu exceeds the limit of %llu bytes", path,
                     (unsigned long long)hlen, (unsigned long long)RG_ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > fsize - 8) {
        s = rg_error(e, RG_ERR_CORRUPT, "%s: header length %llu is larger than the %llu bytes after it (truncated?)",
                     path, (unsigned long long)hlen, (unsigned long long)(fsize - 8));
        goto fail;
    }
    /* Parse a NUL-terminated copy: the mapping has no terminator. */
    if (!(json = malloc((size_t)hlen + 1))) {
        s = rg_error(e, RG_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)hlen);
        goto fail;
    }
    memcpy(json, base + 8, (size_t)hlen);
    json[hlen] = '\0';
    s = parse_header(st, json, (size_t)hlen, base + 8 + hlen, fsize - 8 - hlen, e);
    free(json);
    json = NULL;
    if (s != RG_OK)
        goto fail;
    *out = st;
    return RG_OK;
fail:
    if (fd >= 0)
        close(fd);
    free(json);
    safetensors_close(st);
    return s;
}

/* ---- lookup ------------------------------------------------------------- */

size_t safetensors_count(const rg_safetensors *st)
{
    return st->count;
}

const rg_st_tensor *safetensors_at(const rg_safetensors *st, size_t i)
{
    return i < st->count ? &st->tensors[i] : NULL;
}

const char *safetensors_path(const rg_safetensors *st)
{
    return st->path;
}

const rg_st_tensor *safetensors_find(const rg_safetensors *st, const char *name)
{
    size_t lo = 0, hi = st->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->by_name[mid]->name);
        if (c == 0)
            return st->by_name[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static void format_shape(char *buf, size_t size, int rank, const size_t *shape)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%zu", i ? ", " : "", shape[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

rg_status safetensors_expect(const rg_safetensors *st, const char *name, int rank, const size_t *shape,
                             const rg_st_tensor **out, rg_err *e)
{
    *out = NULL;
    const rg_st_tensor *t = safetensors_find(st, name);
    if (!t)
        return rg_error(e, RG_ERR_NOT_FOUND, "%s: no tensor '%.200s'", st->path, name);
    int same = t->rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char want[128], got[128];
        format_shape(want, sizeof want, rank, shape);
        format_shape(got, sizeof got, t->rank, t->shape);
        return rg_error(e, RG_ERR_CORRUPT, "%s: tensor '%.200s' has shape %s, expected %s", st->path, name, got,
                        want);
    }
    *out = t;
    return RG_OK;
}

/* ---- conversion --------------------------------------------------------- */

static float bits_to_f32(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) { /* inf, or NaN with its payload */
        bits = sign | 0x7f800000u | mant << 13;
    } else if (exp != 0) { /* normal: rebias 15 -> 127 */
        bits = sign | (exp + 112) << 23 | mant << 13;
    } else if (mant == 0) { /* signed zero */
        bits = sign;
    } else { /* subnormal mant * 2^-24: normalize into a float normal */
        uint32_t shift = 0;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            shift++;
        }
        bits = sign | (113 - shift) << 23 | (mant & 0x3ffu) << 13;
    }
    return bits_to_f32(bits);
}

float st_bf16_to_f32(uint16_t b)
{
    return bits_to_f32((uint32_t)b << 16);
}

rg_status st_convert_f32(rg_st_dtype dtype, const void *src, size_t n, float *out, rg_err *e)
{
    const uint8_t *p = src;
    switch (dtype) {
    case RG_ST_F32:
        if (n)
            memcpy(out, src, n * sizeof(float));
        return RG_OK;
    case RG_ST_F16:
        for (size_t i = 0; i < n; i++)
            out[i] = st_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return RG_OK;
    case RG_ST_BF16:
        for (size_t i = 0; i < n; i++)
            out[i] = st_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return RG_OK;
    default:
        return rg_error(e, RG_ERR_UNSUPPORTED, "dtype %s cannot be converted to F32 (F32, F16, BF16 only)",
                        safetensors_dtype_name(dtype));
    }
}

rg_status tensor_to_f32(const rg_st_tensor *t, float *out, size_t n, rg_err *e)
{
    if (n != t->nelem)
        return rg_error(e, RG_ERR_INVALID, "tensor '%.200s': %zu floats requested, it has %zu elements", t->name, n,
                        t->nelem);
    rg_status s = st_convert_f32(t->dtype, t->data, n, out, e);
    if (s != RG_OK)
        rg_error_wrap(e, "tensor '%.200s'", t->name);
    return s;
}
