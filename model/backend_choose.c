/* backend_choose.c - the --device cpu|cuda|auto decision every model makes
 * at load the same way, so the encoder and the decoder cannot drift apart
 * in what they try, refuse or log. */
#include <stdio.h>

#include "common/log.h"
#include "model/backend.h"

rg_status backend_device_choose(const char *who, rg_device want, const backend_device_hooks *h, rg_device *out,
                                char *desc, size_t desc_size, rg_err *e)
{
    *out = RG_DEVICE_CPU;
    char why[512];
    if (want == RG_DEVICE_CPU) {
        h->cpu_describe(h->ctx, desc, desc_size);
        LOG_INFO("%s: device cpu (%s)", who, desc);
        return RG_OK;
    }
    if (backend_cuda_devices(why, sizeof why) > 0 && h->cuda_create) {
        rg_err ce = {0};
        rg_status st = h->cuda_create(h->ctx, desc, desc_size, &ce);
        if (st == RG_OK) {
            *out = RG_DEVICE_CUDA;
            LOG_INFO("%s: device cuda%s (%s)", who, want == RG_DEVICE_AUTO ? " (auto)" : "", desc);
            return RG_OK;
        }
        if (want == RG_DEVICE_CUDA)
            return rg_error(e, st, "%s: device cuda: %s", who, ce.msg);
        snprintf(why, sizeof why, "%s", ce.msg);
    }
    if (want == RG_DEVICE_CUDA)
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: device cuda is not available: %s", who, why);
    h->cpu_describe(h->ctx, desc, desc_size);
    LOG_INFO("%s: device cpu (auto: %s)", who, why);
    return RG_OK;
}
