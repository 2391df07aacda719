#include "model/backend.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

rg_status backend_device_parse(const char *s, rg_device *out, rg_err *e)
{
    static const rg_device all[] = {RG_DEVICE_AUTO, RG_DEVICE_CPU, RG_DEVICE_CUDA};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, backend_device_name(all[i])) == 0) {
            *out = all[i];
            return RG_OK;
        }
    return rg_error(e, RG_ERR_INVALID, "unknown device \"%s\" (use cpu, cuda or auto)", s ? s : "");
}

const char *backend_device_name(rg_device d)
{
    switch (d) {
    case RG_DEVICE_CPU:
        return "cpu";
    case RG_DEVICE_CUDA:
        return "cuda";
    case RG_DEVICE_AUTO:
        break;
    }
    return "auto";
}

int backend_cuda_compiled(void)
{
#ifdef RAGD_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

#ifndef RAGD_HAVE_CUDA
int backend_cuda_devices(char *desc, size_t desc_size)
{
    if (desc)
        snprintf(desc, desc_size, "CUDA backend not compiled in (nvcc was not found at build time)");
    return 0;
}
#endif

void backend_cpu_describe(char *desc, size_t desc_size)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(desc, desc_size, "%s, %d BLAS threads, %ld CPUs", openblas_get_config(), openblas_get_num_threads(),
             cpus);
}
