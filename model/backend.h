/* backend.h - which compute backends this build has and what hardware they
 * see. The inference runtime grows here; for now it reports devices so that
 * `ragd --version` and /v1/version tell the user what will be used. */
#ifndef RAGD_MODEL_BACKEND_H
#define RAGD_MODEL_BACKEND_H

#include <stddef.h>

/* 1 when the CUDA backend was compiled in. */
int backend_cuda_compiled(void);

/* Number of usable CUDA devices (0 without the backend, a driver or a GPU);
 * when desc is non-NULL it receives a one-line description ("NVIDIA H100
 * 80GB HBM3, compute 9.0" or why none is usable). */
int backend_cuda_devices(char *desc, size_t desc_size);

/* One-line description of the CPU backend (BLAS library and threads). */
void backend_cpu_describe(char *desc, size_t desc_size);

#endif
