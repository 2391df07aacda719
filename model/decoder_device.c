/* decoder_device.c - where a loaded decoder runs: the CPU (decoder_cpu.c) or
 * a CUDA GPU (decoder_cuda.cu), chosen once at load as the encoder chooses
 * (--device cpu|cuda|auto), and the device side of its KV caches. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/backend.h"
#include "model/decoder_cuda.h"
#include "model/decoder_internal.h"

/* The CPU path multiplies with model/quant's kernels (or, on f32
 * activations, gemm_cpu on dequantized tiles) on its own pool, not through
 * BLAS: say so rather than backend_cpu_describe's BLAS line. */
static void cpu_desc(void *ctx, char *desc, size_t desc_size)
{
    const rg_decoder *d = ctx;
    snprintf(desc, desc_size, "CPU, %zu threads (%s)", dec_pool_size(d->pool),
             d->f32_activations ? "f32 products on dequantized weight tiles" : "quantized matrix-vector kernels");
}

#ifdef RAGD_HAVE_CUDA
static rg_status cuda_create(void *ctx, char *desc, size_t desc_size, rg_err *e)
{
    rg_decoder *d = ctx;
    return decoder_cuda_create(d, &d->cuda, desc, desc_size, e);
}
#endif

rg_status dec_device_select(rg_decoder *d, rg_device want, rg_err *e)
{
    backend_device_hooks h = {.ctx = d, .cpu_describe = cpu_desc};
#ifdef RAGD_HAVE_CUDA
    h.cuda_create = cuda_create;
#endif
    return backend_device_choose("decoder", want, &h, &d->device, d->device_desc, sizeof d->device_desc, e);
}

void dec_device_free(rg_decoder *d)
{
#ifdef RAGD_HAVE_CUDA
    decoder_cuda_free(d->cuda);
#endif
    d->cuda = NULL;
}

rg_status dec_device_forward(rg_decoder *d, rg_kv_cache *const *kv, const int32_t *ids, const size_t *pos, size_t n,
                             const size_t *out_rows, size_t n_out, float *logits, rg_err *e)
{
#ifdef RAGD_HAVE_CUDA
    if (d->cuda)
        return decoder_cuda_forward(d->cuda, d, kv, ids, pos, n, out_rows, n_out, logits, e);
#else
    (void)kv, (void)ids, (void)pos, (void)n, (void)out_rows, (void)n_out, (void)logits;
#endif
    return rg_error(e, RG_ERR_INTERNAL, "decoder: no device forward pass for %s", backend_device_name(d->device));
}

rg_status dec_device_kv_alloc(const rg_decoder *d, rg_kv_cache *kv, size_t bytes, rg_err *e)
{
    kv->on_device = 0;
#ifdef RAGD_HAVE_CUDA
    if (d->cuda) {
        rg_status st = decoder_cuda_kv_alloc(bytes, &kv->k, &kv->v, e);
        if (st == RG_OK)
            kv->on_device = 1;
        return st;
    }
#else
    (void)d;
#endif
    /* no zero fill: positions are written before they are read */
    kv->k = malloc(bytes);
    kv->v = malloc(bytes);
    if (!kv->k || !kv->v)
        return rg_error(e, RG_ERR_NOMEM, "out of memory for a %zu-byte KV cache", 2 * bytes);
    return RG_OK;
}

void dec_device_kv_free(rg_kv_cache *kv)
{
#ifdef RAGD_HAVE_CUDA
    if (kv->on_device) {
        decoder_cuda_kv_free(kv->k, kv->v);
        kv->k = kv->v = NULL;
        return;
    }
#endif
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

rg_status dec_device_kv_copy(const rg_decoder *d, rg_kv_cache *dst, const rg_kv_cache *src, size_t bytes_per_layer,
                             rg_err *e)
{
#ifdef RAGD_HAVE_CUDA
    if (d->cuda) {
        size_t es = dst->type == RG_KV_F32 ? sizeof(float) : sizeof(uint16_t);
        return decoder_cuda_kv_copy(d->cuda, dst->k, dst->v, dst->cap * dst->kv_dim * es, src->k, src->v,
                                    src->cap * src->kv_dim * es, bytes_per_layer, d->cfg.n_layer, e);
    }
#else
    (void)dst, (void)src, (void)bytes_per_layer;
#endif
    (void)d;
    return rg_error(e, RG_ERR_INTERNAL, "a device KV cache without a CUDA decoder");
}

/* A logits buffer starts LOGITS_HEAD bytes into its allocation, after a
 * note of how it was allocated: pinned memory can be refused (the system
 * limits page-locked memory), and plain memory then still works. */
#define LOGITS_HEAD 64
enum { LOGITS_PLAIN = 0x504c4e, LOGITS_PINNED = 0x50494e };

float *decoder_logits_alloc(const rg_decoder *d, size_t rows)
{
    size_t V = d->cfg.n_vocab;
    if (!rows || !V || rows > (SIZE_MAX - LOGITS_HEAD) / sizeof(float) / V)
        return NULL;
    size_t bytes = LOGITS_HEAD + rows * V * sizeof(float);
    char *p = NULL;
    uint32_t kind = LOGITS_PLAIN;
#ifdef RAGD_HAVE_CUDA
    void *pinned = NULL;
    if (d->cuda && decoder_cuda_host_alloc(bytes, &pinned, NULL) == RG_OK) {
        p = pinned;
        kind = LOGITS_PINNED;
    }
#endif
    if (!p && !(p = malloc(bytes)))
        return NULL;
    memcpy(p, &kind, sizeof kind);
    return (float *)(p + LOGITS_HEAD);
}

void decoder_logits_free(const rg_decoder *d, float *logits)
{
    (void)d;
    if (!logits)
        return;
    char *p = (char *)logits - LOGITS_HEAD;
    uint32_t kind;
    memcpy(&kind, p, sizeof kind);
#ifdef RAGD_HAVE_CUDA
    if (kind == LOGITS_PINNED) {
        decoder_cuda_host_free(p);
        return;
    }
#endif
    free(p);
}

rg_device decoder_device(const rg_decoder *d)
{
    return d->device;
}

rg_status decoder_device_memory(const rg_decoder *d, size_t *free_bytes, size_t *total_bytes, rg_err *e)
{
    *free_bytes = *total_bytes = 0;
#ifdef RAGD_HAVE_CUDA
    if (d->cuda)
        return decoder_cuda_memory(d->cuda, free_bytes, total_bytes, e);
#endif
    return rg_error(e, RG_ERR_UNSUPPORTED, "decoder: no device memory on %s", backend_device_name(d->device));
}

size_t decoder_device_matrix_bytes(const rg_decoder *d)
{
#ifdef RAGD_HAVE_CUDA
    if (d->cuda)
        return decoder_cuda_matrix_bytes(d->cuda);
#endif
    (void)d;
    return 0;
}

const char *decoder_device_desc(const rg_decoder *d)
{
    return d->device_desc;
}
