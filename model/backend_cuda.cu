// backend_cuda.cu - the CUDA side of model/backend.h. Compiled only when
// nvcc is present; at run time it reports the GPUs the driver exposes.
#include <cstdio>

#include <cuda_runtime.h>

extern "C" {
#include "model/backend.h"
}

extern "C" int backend_cuda_devices(char *desc, size_t desc_size)
{
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        if (desc)
            snprintf(desc, desc_size, "no CUDA device: %s",
                     err != cudaSuccess ? cudaGetErrorString(err) : "none found");
        return 0;
    }
    if (desc) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
            snprintf(desc, desc_size, "%d device(s); 0: %s, compute %d.%d, %.1f GiB", n, prop.name, prop.major,
                     prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
        else
            snprintf(desc, desc_size, "%d device(s)", n);
    }
    return n;
}
