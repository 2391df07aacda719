/* gguf.h - reader of GGUF model files (ggml docs/gguf.md, versions 2 and 3,
 * little-endian).
 *
 * gguf_open maps the file read-only and parses the header, every metadata
 * key/value and every tensor info up front, checking each count, length and
 * offset against the bytes that remain before anything is allocated, so a
 * malformed or truncated file gives a clear error and never a crash. After a
 * successful open every tensor's data lies inside the file, at an aligned
 * offset, with a size that matches its type and dimensions.
 *
 * Views returned by the accessors (strings, tensor data) point into the
 * handle and stay valid until gguf_close. Strings are NUL-terminated copies
 * and also carry their length (GGUF strings may contain any byte). */
#ifndef RAGD_MODEL_GGUF_H
#define RAGD_MODEL_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/quant.h"

/* Metadata value types, numbered as in the file. */
typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT = 13
} gguf_type;

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_KEY_LEN 65535   /* spec: keys are at most 2^16-1 bytes */
#define GGUF_MAX_NAME_LEN 64     /* spec: tensor names are at most 64 bytes */
#define GGUF_MAX_ARRAY_DEPTH 8   /* nesting of arrays in arrays */

typedef struct gguf_file gguf_file;
/* A metadata value: a scalar, a string or an array (possibly of arrays). A
 * key/value pair is a value with a key. */
typedef struct gguf_value gguf_value;
typedef gguf_value gguf_kv;

typedef struct gguf_tensor {
    const char *name;            /* NUL-terminated */
    uint32_t type;               /* ggml_type */
    uint32_t n_dims;             /* 1..4 (0 for a scalar) */
    int64_t dims[GGUF_MAX_DIMS]; /* ggml order: dims[0] varies fastest (a row's
                                    length); unused dims are 1 */
    int64_t n_elems;             /* product of dims */
    uint64_t offset;             /* from the start of the tensor data section */
    const void *data;            /* inside the mapping, never NULL */
    size_t nbytes;               /* exact byte size for type and dims */
} gguf_tensor;

/* Opens and validates path. On success *out owns the mapping; on failure
 * *out is NULL and e says what is wrong, prefixed with the path. */
rg_status gguf_open(const char *path, gguf_file **out, rg_err *e);
/* The same over a caller's buffer (not copied; must outlive the handle). */
rg_status gguf_open_memory(const void *data, size_t size, gguf_file **out, rg_err *e);
void gguf_close(gguf_file *g);

uint32_t gguf_version(const gguf_file *g);
size_t gguf_alignment(const gguf_file *g);
size_t gguf_file_size(const gguf_file *g);
/* File offset where the tensor data section starts (aligned). */
size_t gguf_data_offset(const gguf_file *g);

/* ---- metadata ------------------------------------------------------------ */

size_t gguf_kv_count(const gguf_file *g);
const gguf_kv *gguf_kv_at(const gguf_file *g, size_t i); /* file order */
const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key); /* NULL: absent */
const char *gguf_kv_key(const gguf_kv *kv);

gguf_type gguf_value_type(const gguf_value *v);
const char *gguf_type_name(gguf_type t); /* "uint32", "array", ... */

/* Typed reads. Each fails with RG_ERR_INVALID naming the key and both types
 * when the stored type is not the one asked for. The integer getters accept
 * any integer type whose value fits (a uint64 of 7 reads as u32 7), since the
 * spec lets writers pick uint32 or uint64 for counts. */
rg_status gguf_kv_u32(const gguf_value *v, uint32_t *out, rg_err *e);
rg_status gguf_kv_u64(const gguf_value *v, uint64_t *out, rg_err *e);
rg_status gguf_kv_i32(const gguf_value *v, int32_t *out, rg_err *e);
rg_status gguf_kv_i64(const gguf_value *v, int64_t *out, rg_err *e);
rg_status gguf_kv_f32(const gguf_value *v, float *out, rg_err *e);    /* float32 or float64 */
rg_status gguf_kv_f64(const gguf_value *v, double *out, rg_err *e);   /* float32 or float64 */
rg_status gguf_kv_bool(const gguf_value *v, int *out, rg_err *e);
/* NULL when v is not a string; len may be NULL. */
const char *gguf_kv_string(const gguf_value *v, size_t *len);

/* Arrays. gguf_kv_array_len is 0 and gguf_kv_array_type GGUF_TYPE_COUNT when
 * v is not an array. Element getters check the element type and the index. */
size_t gguf_kv_array_len(const gguf_value *v);
gguf_type gguf_kv_array_type(const gguf_value *v);
const char *gguf_kv_array_string(const gguf_value *v, size_t i, size_t *len); /* NULL on error */
rg_status gguf_kv_array_i64(const gguf_value *v, size_t i, int64_t *out, rg_err *e); /* any int type */
rg_status gguf_kv_array_u64(const gguf_value *v, size_t i, uint64_t *out, rg_err *e); /* any int type */
rg_status gguf_kv_array_f64(const gguf_value *v, size_t i, double *out, rg_err *e);   /* float32/64 */
rg_status gguf_kv_array_bool(const gguf_value *v, size_t i, int *out, rg_err *e);
/* Element i of an array of arrays (NULL on a type or index error). */
const gguf_value *gguf_kv_array_at(const gguf_value *v, size_t i);
/* Raw little-endian elements of an array of a fixed-size scalar type (NULL
 * for arrays of strings or arrays); *elem_size receives the element size. */
const void *gguf_kv_array_data(const gguf_value *v, size_t *elem_size);

/* ---- tensors ------------------------------------------------------------- */

size_t gguf_tensor_count(const gguf_file *g);
const gguf_tensor *gguf_tensor_at(const gguf_file *g, size_t i); /* file order */
const gguf_tensor *gguf_tensor_find(const gguf_file *g, const char *name);

/* Dequantizes a whole tensor into dst (n_elems floats); RG_ERR_UNSUPPORTED
 * "tensor NAME: unsupported tensor type N (Q3_K)" for types not handled by
 * dequantize_row (model/quant.h lists those it handles). */
rg_status gguf_tensor_to_f32(const gguf_tensor *t, float *dst, rg_err *e);

/* Tensor name as a new f32 array (free() it) of rows x cols in Hugging Face
 * order, which GGUF lists as [cols, rows]; cols 0 means a vector of rows.
 * Missing, of another shape (trailing dimensions of 1 are fine) or of a
 * type model/quant cannot dequantize: a clear error naming the tensor. */
rg_status gguf_tensor_load_f32(const gguf_file *g, const char *name, size_t rows, size_t cols, float **out,
                               rg_err *e);

#endif
