// cuda_ctx.cuh - what every CUDA model (encoder_cuda.cu, decoder_cuda.cu)
// sets up and tears down the same way: the device it runs on, one
// non-blocking stream with a cuBLAS handle bound to it, and the mutex that
// lets one call at a time use them and the model's buffers. C++, included
// only by model/*.cu.
#ifndef RAGD_MODEL_CUDA_CTX_CUH
#define RAGD_MODEL_CUDA_CTX_CUH

#include <cstddef>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <pthread.h>

extern "C" {
#include "common/err.h"
}

struct cu_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    pthread_mutex_t mu;
};

// Makes device 0 current and fills *prop; refuses no device, or compute
// capability below 8.0 (the build carries code for 8.0 and newer only):
// "WHO: NAME has compute capability X.Y; NEEDS".
rg_status cu_ctx_device(const char *who, const char *needs, cudaDeviceProp *prop, rg_err *e);

// On a zeroed x, after cu_ctx_device: the mutex (always, so that
// cu_ctx_close is right even when this fails), the stream and the handle.
rg_status cu_ctx_open(cu_ctx *x, rg_err *e);

// Waits for the stream, so the caller may free what its work used.
void cu_ctx_sync(cu_ctx *x);

// Destroys the handle, the stream and the mutex (after the caller freed
// its device memory).
void cu_ctx_close(cu_ctx *x);

// Replaces *buf (device memory nothing uses any more) by bytes of fresh
// device memory. On failure *buf is NULL and the error, not sticky, is
// cleared so later launch checks are not blamed; it is returned for the
// caller's message.
cudaError_t cu_regrow(void **buf, size_t bytes);

#endif
