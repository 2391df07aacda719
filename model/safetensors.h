/* safetensors.h - read-only reader of Hugging Face .safetensors weight files.
 *
 * The file is mapped read-only; tensors point into the mapping, so they stay
 * valid until safetensors_close. Layout: an 8-byte little-endian header
 * length N, N bytes of JSON ({"name": {"dtype", "shape", "data_offsets"}, ...,
 * "__metadata__": {...}}), then the data region the offsets are relative to.
 *
 * Every size and offset is checked at open: header length, JSON shape, dtype,
 * rank, element count x dtype size without overflow, offsets inside the data
 * region, byte length == element count x dtype size, no two tensors
 * overlapping, no duplicate names. A malformed file gives RG_ERR_CORRUPT (or
 * RG_ERR_UNSUPPORTED for a dtype we do not know) with a message naming the
 * file and the tensor, never a crash. (A file truncated by someone else after
 * it was opened can still raise SIGBUS on access; that is mmap's contract.)
 *
 * Every dtype of the format is accepted at open so that real checkpoints with
 * integer buffers (BERT's I64 "embeddings.position_ids") load; the runtime
 * computes with F32, F16 and BF16, and tensor_to_f32 refuses the others with
 * RG_ERR_UNSUPPORTED naming the dtype.
 *
 * Data pointers are as aligned as the file makes them (the official writer
 * pads the header to 8 bytes); tensor_to_f32 works at any alignment, callers
 * that cast t->data to float* should check safetensors_aligned(t). */
#ifndef RAGD_MODEL_SAFETENSORS_H
#define RAGD_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define RG_ST_MAX_RANK 8
/* Largest JSON header accepted (the reference implementation's limit). */
#define RG_ST_MAX_HEADER ((uint64_t)100000000)

typedef enum rg_st_dtype {
    RG_ST_F32 = 0,
    RG_ST_F16,
    RG_ST_BF16,
    /* Known to the format, not computed with (tensor_to_f32 refuses them). */
    RG_ST_F64,
    RG_ST_F8_E4M3,
    RG_ST_F8_E5M2,
    RG_ST_I8,
    RG_ST_I16,
    RG_ST_I32,
    RG_ST_I64,
    RG_ST_U8,
    RG_ST_U16,
    RG_ST_U32,
    RG_ST_U64,
    RG_ST_BOOL,
    RG_ST_DTYPE_COUNT
} rg_st_dtype;

typedef struct rg_st_tensor {
    const char *name;
    rg_st_dtype dtype;
    int rank;                     /* 0 (a scalar) .. RG_ST_MAX_RANK */
    size_t shape[RG_ST_MAX_RANK]; /* row-major; entries past rank are 0 */
    size_t nelem;                 /* product of shape (1 for a scalar) */
    const void *data;             /* into the read-only mapping */
    size_t nbytes;                /* nelem * safetensors_dtype_size(dtype) */
} rg_st_tensor;

typedef struct rg_safetensors rg_safetensors;

/* Maps and validates path. On failure *out is NULL and e says why:
 * RG_ERR_NOT_FOUND / RG_ERR_IO for the file, RG_ERR_CORRUPT for a malformed
 * one, RG_ERR_UNSUPPORTED for an unknown dtype, RG_ERR_NOMEM. */
rg_status safetensors_open(const char *path, rg_safetensors **out, rg_err *e);
void safetensors_close(rg_safetensors *st); /* NULL is fine */

/* Tensors in header order. */
size_t safetensors_count(const rg_safetensors *st);
const rg_st_tensor *safetensors_at(const rg_safetensors *st, size_t i); /* NULL past the end */
/* NULL when there is no tensor of that name. */
const rg_st_tensor *safetensors_find(const rg_safetensors *st, const char *name);
const char *safetensors_path(const rg_safetensors *st);

/* Finds name and checks its shape (rank entries of shape): RG_ERR_NOT_FOUND
 * or RG_ERR_CORRUPT with a message giving the expected and actual shape. */
rg_status safetensors_expect(const rg_safetensors *st, const char *name, int rank, const size_t *shape,
                             const rg_st_tensor **out, rg_err *e);

/* "F32", "BF16", ... and bytes per element. */
const char *safetensors_dtype_name(rg_st_dtype dtype);
size_t safetensors_dtype_size(rg_st_dtype dtype);
/* 1 when t->data is aligned to its element size. */
int safetensors_aligned(const rg_st_tensor *t);

/* Converts all of t (F32, F16 or BF16) to float; n must equal t->nelem.
 * RG_ERR_UNSUPPORTED naming the dtype for the others, RG_ERR_INVALID for n. */
rg_status tensor_to_f32(const rg_st_tensor *t, float *out, size_t n, rg_err *e);
/* The same for n raw little-endian elements at src (any alignment), e.g. one
 * row of an embedding table: src = (const char *)t->data + row * row_bytes. */
rg_status st_convert_f32(rg_st_dtype dtype, const void *src, size_t n, float *out, rg_err *e);

/* IEEE binary16 and bfloat16 to float, exact (subnormals, inf, NaN kept). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t b);

#endif
