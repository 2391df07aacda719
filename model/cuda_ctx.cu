// cuda_ctx.cu - a CUDA model's device, stream, cuBLAS handle and mutex
// (see cuda_ctx.cuh).
#include "model/cuda_ctx.cuh"

#include "model/ops_cuda.cuh" // cu_check, cublas_check

rg_status cu_ctx_device(const char *who, const char *needs, cudaDeviceProp *prop, rg_err *e)
{
    int n = 0;
    rg_status st = cu_check(cudaGetDeviceCount(&n), "no CUDA device", e);
    if (st)
        return st;
    if (n == 0)
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: no CUDA device", who);
    if ((st = cu_check(cudaSetDevice(0), "cudaSetDevice(0)", e)) ||
        (st = cu_check(cudaGetDeviceProperties(prop, 0), "cudaGetDeviceProperties", e)))
        return st;
    if (prop->major < 8)
        return rg_error(e, RG_ERR_UNSUPPORTED, "%s: %s has compute capability %d.%d; %s", who, prop->name, prop->major,
                        prop->minor, needs);
    return RG_OK;
}

rg_status cu_ctx_open(cu_ctx *x, rg_err *e)
{
    pthread_mutex_init(&x->mu, nullptr);
    x->device = 0;
    rg_status st;
    if ((st = cu_check(cudaStreamCreateWithFlags(&x->stream, cudaStreamNonBlocking), "cudaStreamCreate", e)) ||
        (st = cublas_check(cublasCreate(&x->blas), "cublasCreate", e)) ||
        (st = cublas_check(cublasSetStream(x->blas, x->stream), "cublasSetStream", e)))
        return st;
    return RG_OK;
}

void cu_ctx_sync(cu_ctx *x)
{
    cudaSetDevice(x->device);
    if (x->stream)
        cudaStreamSynchronize(x->stream);
}

void cu_ctx_close(cu_ctx *x)
{
    if (x->blas)
        cublasDestroy(x->blas);
    if (x->stream)
        cudaStreamDestroy(x->stream);
    x->blas = nullptr;
    x->stream = nullptr;
    pthread_mutex_destroy(&x->mu);
}

cudaError_t cu_regrow(void **buf, size_t bytes)
{
    cudaFree(*buf);
    *buf = nullptr;
    cudaError_t err = cudaMalloc(buf, bytes);
    if (err != cudaSuccess) {
        cudaGetLastError();
        *buf = nullptr;
    }
    return err;
}
