// cudasim.h - runs ragd's CUDA sources on the CPU, for tests only.
//
// No GPU has been available where ragd is developed, so the CUDA code
// (model/*.cu) would otherwise first execute on a rented GPU with minutes
// to spare. cudasim compiles those same sources as C++ (tests/cudasim/
// rewrite.cmake turns `k<<<grid, block, smem, stream>>>(args)` into a
// cudasim::launch call and `extern __shared__` arrays into the launch's
// dynamic shared memory; nothing else in them changes) and supplies the
// parts of the CUDA runtime and cuBLAS they call. Every GPU thread of a
// block runs as a fiber on the calling thread, so __syncthreads and warp
// shuffles are real rendezvous: a barrier reached by only part of a block,
// or a shuffle by part of a warp, is reported, not papered over.
//
// What it checks that a plain CPU port would not: device and host pointers
// kept apart (kernel arguments, copies, cuBLAS operands), reads past a
// device allocation (guard pages), reads of device memory never written
// (allocations start as NaN), launch limits, stream ordering (work queued
// on a stream runs only when something waits for it, so a missing
// synchronization returns stale data), what graph capture forbids, a
// device of finite memory (16 GiB), and order dependence (threads of a
// block and blocks of a grid are taken in alternating orders).
// What it cannot show: speed, data races the GPU's scheduling would
// expose, and the hardware's own arithmetic (cuBLAS products are computed
// in fp32 from the same fp16 or fp32 operands).
//
// This header is force-included into each rewritten .cu file after the
// CUDA toolkit's own headers, which give the types (dim3, __half, ...).
#ifndef RAGD_TESTS_CUDASIM_H
#define RAGD_TESTS_CUDASIM_H

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cublas_v2.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

// CUDA's execution-space keywords mean nothing on the host.
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Shared memory: one copy per host thread, shared by the fibers (GPU
// threads) of the block that thread is running; blocks run one at a time.
// A static would keep the previous block's values where a GPU's shared
// memory holds garbage, so rewrite.cmake follows each static __shared__
// declaration with CUDASIM_FRESH_SHARED(name): the first thread of a block
// to pass it fills the variable with NaN bytes (below).
#define __shared__ static thread_local

namespace cudasim {

// The running GPU thread's coordinates (set by the scheduler on every
// switch) and its launch's dynamic shared memory.
struct coords { // trivial, so the thread_local needs no initialization call
    uint3 thread, block, block_dim, grid_dim;
    void *dyn_smem;
    unsigned long long block_serial; // this host thread's blocks so far, counting this one
};
extern thread_local coords cur;

#define CUDASIM_FRESH_SHARED(name)                                  \
    do {                                                           \
        static thread_local unsigned long long cudasim_serial_##name; \
        if (cudasim_serial_##name != cudasim::cur.block_serial) {  \
            std::memset(&(name), 0xff, sizeof(name));              \
            cudasim_serial_##name = cudasim::cur.block_serial;     \
        }                                                          \
    } while (0)

inline void *dynamic_smem() { return cur.dyn_smem; }

// A GPU faults on a load or store that is not aligned to its size, where
// the CPU running the emulation does not: kernels that cast byte pointers
// to wider types (GGUF blocks) state the alignment they rely on with
// CUDASIM_ALIGNED (see model/decoder_cuda_matvec.cu), which ends the
// program here as the fault would there.
[[noreturn]] void misaligned(const void *p, unsigned align, const char *what);
#define CUDASIM_ALIGNED(p, n)                                                                         \
    ((reinterpret_cast<uintptr_t>(p) % (n)) ? cudasim::misaligned((p), (n), #p) : (void)0)

// Block-wide barrier, and the exchange at the heart of every warp shuffle:
// lane publishes v and receives the value lane `src` published (the
// caller computes src); both are rendezvous points of the fibers.
void syncthreads();
uint64_t warp_exchange(uint64_t v, int src, unsigned mask);

template <typename T> inline T shfl_from(T v, int src, unsigned mask)
{
    static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable<T>::value, "shuffle of a wide type");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    bits = warp_exchange(bits, src, mask);
    T out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

inline int lane_id()
{
    unsigned linear = cur.thread.x + cur.block_dim.x * (cur.thread.y + cur.block_dim.y * cur.thread.z);
    return (int)(linear & 31u);
}

// ---- launches ------------------------------------------------------------------

struct config {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    config(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), smem(s), stream(st) {}
};

// Validates the launch, checks that no pointer argument is a host pointer,
// then queues body (one GPU thread's work) on the stream or the capture.
void submit(const char *kernel, const config &c, std::function<void()> body, const char *bad_arg);

// Device memory: the allocation holding p, or none.
bool is_device_ptr(const void *p);

template <typename A> inline const char *host_ptr_arg(const A &a)
{
    if constexpr (std::is_pointer<A>::value) {
        if (a != nullptr && !is_device_ptr((const void *)a))
            return "a pointer argument is not device memory (nullptr or cudaMalloc'd)";
    }
    return nullptr;
}

template <typename F, typename... A> void launch(const char *kernel, const config &c, F f, A... args)
{
    const char *bad = nullptr;
    const char *each[] = {host_ptr_arg(args)..., nullptr};
    for (const char *b : each)
        if (b && !bad)
            bad = b;
    auto tup = std::make_tuple(args...);
    submit(kernel, c, [f, tup]() { std::apply(f, tup); }, bad);
}

} // namespace cudasim

#define threadIdx (cudasim::cur.thread)
#define blockIdx (cudasim::cur.block)
#define blockDim (cudasim::cur.block_dim)
#define gridDim (cudasim::cur.grid_dim)

inline void __syncthreads() { cudasim::syncthreads(); }

// Every lane of mask waits for the others, as at a shuffle (which is how
// it is emulated: an exchange whose value is dropped).
inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    (void)cudasim::shfl_from(0u, cudasim::lane_id(), mask);
}

template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    int lane = cudasim::lane_id();
    int src = lane ^ lane_mask;
    if (src >= ((lane / width) + 1) * width)
        src = lane;
    return cudasim::shfl_from(v, src, mask);
}

template <typename T> inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32)
{
    int lane = cudasim::lane_id();
    return cudasim::shfl_from(v, (lane / width) * width + (src_lane % width), mask);
}

// Single-rounding float arithmetic that the device compiler never fuses
// into an FMA. The host build could fuse a * b + c under -ffp-contract
// when FMA instructions are enabled; the volatile stores keep each result
// rounded on its own.
inline float __fmul_rn(float a, float b)
{
    volatile float r = a * b;
    return r;
}
inline float __fadd_rn(float a, float b)
{
    volatile float r = a + b;
    return r;
}
inline float __fsub_rn(float a, float b)
{
    volatile float r = a - b;
    return r;
}

inline float __fmaf_rn(float a, float b, float c)
{
    volatile float r = std::fma(a, b, c);
    return r;
}
inline float __fdiv_rn(float a, float b)
{
    volatile float r = a / b;
    return r;
}
// Round to nearest, ties to even (the host's default rounding mode, as
// lrintf in model/quant), saturating as the device's conversion does.
inline int __float2int_rn(float v)
{
    if (v != v)
        return 0;
    if (v >= 2147483648.0f)
        return INT32_MAX;
    if (v <= -2147483648.0f)
        return INT32_MIN;
    return (int)std::nearbyint(v);
}
inline float __int_as_float(int v)
{
    float f;
    std::memcpy(&f, &v, sizeof f);
    return f;
}
inline int __float_as_int(float f)
{
    int v;
    std::memcpy(&v, &f, sizeof v);
    return v;
}
// Four signed byte products summed into c (sm_61+ dp4a).
inline int __dp4a(int a, int b, int c)
{
    for (int j = 0; j < 4; j++)
        c += (int)(int8_t)(uint8_t)((uint32_t)a >> (8 * j)) * (int)(int8_t)(uint8_t)((uint32_t)b >> (8 * j));
    return c;
}

template <typename T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int lane = cudasim::lane_id();
    int src = lane + (int)delta;
    if (src >= ((lane / width) + 1) * width)
        src = lane;
    return cudasim::shfl_from(v, src, mask);
}

#endif
