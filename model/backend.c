#include "model/backend.h"

#include <stdio.h>
#include <unistd.h>

#include <cblas.h>

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
