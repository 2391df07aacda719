/* backend.h - which compute backends this build has, what hardware they
 * see, and the user's device choice (--device cpu|cuda|auto), so that
 * `ragd --version` and /v1/version tell the user what will be used. */
#ifndef RAGD_MODEL_BACKEND_H
#define RAGD_MODEL_BACKEND_H

#include <stddef.h>

#include "common/err.h"

/* Where a model runs. AUTO: CUDA when the backend is compiled in and a
 * device is usable, else the CPU. */
typedef enum rg_device { RG_DEVICE_AUTO = 0, RG_DEVICE_CPU = 1, RG_DEVICE_CUDA = 2 } rg_device;

/* "auto", "cpu" or "cuda" -> *out; anything else is RG_ERR_INVALID. */
rg_status backend_device_parse(const char *s, rg_device *out, rg_err *e);
const char *backend_device_name(rg_device d); /* "auto", "cpu", "cuda" */

/* 1 when the CUDA backend was compiled in. */
int backend_cuda_compiled(void);

/* Number of usable CUDA devices (0 without the backend, a driver or a GPU);
 * when desc is non-NULL it receives a one-line description ("NVIDIA H100
 * 80GB HBM3, compute 9.0" or why none is usable). */
int backend_cuda_devices(char *desc, size_t desc_size);

/* One-line description of the CPU backend (BLAS library and threads). */
void backend_cpu_describe(char *desc, size_t desc_size);

/* What a model supplies to backend_device_choose: ctx is the model;
 * cpu_describe writes its CPU line; cuda_create (NULL in a build without
 * CUDA) makes its GPU state and writes the device's line. */
typedef struct backend_device_hooks {
    void *ctx;
    void (*cpu_describe)(void *ctx, char *desc, size_t desc_size);
    rg_status (*cuda_create)(void *ctx, char *desc, size_t desc_size, rg_err *e);
} backend_device_hooks;

/* The user's device choice for one model (who: "encoder", "decoder"),
 * made once at load: CPU as asked; CUDA when a device is usable and
 * cuda_create succeeds, else an error saying why; AUTO tries CUDA the same
 * way and falls back to the CPU, logging the reason. *out is the device
 * chosen and desc its description. */
rg_status backend_device_choose(const char *who, rg_device want, const backend_device_hooks *h, rg_device *out,
                                char *desc, size_t desc_size, rg_err *e);

#endif
