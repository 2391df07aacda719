/* decoder_device.c - where a loaded decoder runs: the CPU (decoder_cpu.c) or
 * a CUDA GPU (decoder_cuda.cu), chosen once at load as the encoder chooses
 * (--device cpu|cuda|auto), and the device side of its KV caches. */
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "model/backend.h"
#include "model/decoder_cuda.h"
#include "model/decoder_internal.h"

/* The CPU path multiplies with model/quant's kernels on its own pool, not
 * through BLAS: say so rather than backend_cpu_describe's BLAS line. */
static void cpu_desc(rg_decoder *d)
{
    snprintf(d->device_desc, sizeof d->device_desc, "CPU, %zu threads (quantized matrix-vector kernels)",
             dec_pool_size(d->pool));
}

rg_status dec_device_select(rg_decoder *d, rg_device want, rg_err *e)
{
    d->device = RG_DEVICE_CPU;
    char why[512];
    if (want == RG_DEVICE_CPU) {
        cpu_desc(d);
        LOG_INFO("decoder: device cpu (%s)", d->device_desc);
        return RG_OK;
    }
#ifdef RAGD_HAVE_CUDA
    if (backend_cuda_devices(why, sizeof why) > 0) {
        rg_err ce = {0};
        rg_status st = decoder_cuda_create(d, &d->cuda, d->device_desc, sizeof d->device_desc, &ce);
        if (st == RG_OK) {
            d->device = RG_DEVICE_CUDA;
            LOG_INFO("decoder: device cuda%s (%s)", want == RG_DEVICE_AUTO ? " (auto)" : "", d->device_desc);
            return RG_OK;
        }
        if (want == RG_DEVICE_CUDA)
            return rg_error(e, st, "decoder: device cuda: %s", ce.msg);
        snprintf(why, sizeof why, "%s", ce.msg);
    }
#else
    backend_cuda_devices(why, sizeof why);
#endif
    if (want == RG_DEVICE_CUDA)
        return rg_error(e, RG_ERR_UNSUPPORTED, "decoder: device cuda is not available: %s", why);
    cpu_desc(d);
    LOG_INFO("decoder: device cpu (auto: %s)", why);
    return RG_OK;
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

rg_device decoder_device(const rg_decoder *d)
{
    return d->device;
}

const char *decoder_device_desc(const rg_decoder *d)
{
    return d->device_desc;
}
