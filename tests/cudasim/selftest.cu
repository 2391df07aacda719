// selftest.cu - cudasim's own test: what it claims to catch, it catches.
// Written in CUDA C++ and rewritten like model/*.cu (CMakeLists.txt). The
// checks that end a GPU program (a hung barrier, an illegal address) run
// in a child process and must kill it with the message.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static int failures, checks;
#define EXPECT(cond, ...)                                                  \
    do {                                                                   \
        checks++;                                                          \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "cudasim_selftest:%d: %s: ", __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

__global__ static void k_scale(float *x, int n, float a)
{
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n)
        x[i] *= a;
}

__global__ static void k_sums(const float *x, float *out)
{
    __shared__ float s[64];
    float v = x[blockIdx.x * 64 + threadIdx.x];
    s[threadIdx.x] = v;
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0;
        for (int i = 0; i < 64; i++)
            t += s[i];
        out[blockIdx.x * 3] = t;
    }
    if ((threadIdx.x & 31) == 0)
        out[blockIdx.x * 3 + 1 + (threadIdx.x >> 5)] = v; // each warp's sum
}

__global__ static void k_divergent(float *x)
{
    if (threadIdx.x < 16)
        return;
    __syncthreads();
    x[threadIdx.x] = 1.0f;
}

// each warp reverses its 32 values through shared memory, ordered by
// __syncwarp alone
__global__ static void k_warp_reverse(const float *x, float *out)
{
    __shared__ float s[64];
    s[threadIdx.x] = x[threadIdx.x];
    __syncwarp();
    int lane = (int)(threadIdx.x & 31), base = (int)(threadIdx.x & ~31u);
    out[threadIdx.x] = s[base + 31 - lane];
}

__global__ static void k_no_barrier(const float *x, float *out)
{
    __shared__ float s[64];
    s[threadIdx.x] = x[threadIdx.x] + (float)blockIdx.x;
    out[blockIdx.x * 64 + threadIdx.x] = s[63 - threadIdx.x]; // missing __syncthreads
}

__global__ static void k_write_past(float *x, int n) { x[n + 1024 + threadIdx.x] = 1.0f; }

// A 4-byte load from an odd address, stated as aligned: a GPU faults.
__global__ static void k_misaligned(const float *x, float *out)
{
    const unsigned char *b = reinterpret_cast<const unsigned char *>(x) + 2 * (threadIdx.x & 1);
    CUDASIM_ALIGNED(b, 4);
    out[threadIdx.x] = (float)b[0];
}

// Wrong on a GPU: block 1 reads shared memory only block 0 wrote.
__global__ static void k_stale_shared(float *out)
{
    __shared__ float s[32];
    if (blockIdx.x == 0)
        s[threadIdx.x] = 1.0f;
    __syncthreads();
    out[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x];
}

// Wrong on a GPU: block b reads what block b - 1 writes in the same grid.
__global__ static void k_chain(float *x)
{
    if (threadIdx.x == 0)
        x[blockIdx.x + 1] = x[blockIdx.x] + 1.0f;
}

// Runs f in a child; true if the child died of SIGABRT or SIGSEGV.
template <typename F> static bool dies(F f)
{
    fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        f();
        cudaDeviceSynchronize();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && (WTERMSIG(status) == SIGABRT || WTERMSIG(status) == SIGSEGV);
}

int main()
{
    const int n = 1000;
    std::vector<float> h(n), back(n);
    for (int i = 0; i < n; i++)
        h[i] = (float)i;
    float *d = nullptr, *o = nullptr;
    EXPECT(cudaMalloc((void **)&d, n * sizeof(float)) == cudaSuccess, "cudaMalloc");
    EXPECT(cudaMalloc((void **)&o, n * sizeof(float)) == cudaSuccess, "cudaMalloc");

    // memory starts as NaN; copies check which side is device memory
    EXPECT(cudaMemcpy(back.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess, "copy back");
    EXPECT(std::isnan(back[7]), "fresh device memory reads %g, not NaN", back[7]);
    EXPECT(cudaMemcpy(back.data(), h.data(), 16, cudaMemcpyHostToDevice) == cudaErrorInvalidValue,
           "a host destination for HostToDevice");
    EXPECT(cudaMemcpy(d, h.data(), (n + 1) * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue,
           "a copy past the allocation");
    cudaGetLastError();

    // a grid of blocks, each thread its element
    cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    k_scale<<<(n + 127) / 128, 128>>>(d, n, 2.0f);
    EXPECT(cudaGetLastError() == cudaSuccess, "launch");
    cudaMemcpy(back.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    bool ok = true;
    for (int i = 0; i < n; i++)
        ok = ok && back[i] == 2.0f * (float)i;
    EXPECT(ok, "k_scale");
    k_scale<<<0, 128>>>(d, n, 2.0f);
    EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration, "an empty grid is refused");
    k_scale<<<1, 2048>>>(d, n, 2.0f);
    EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration, "2048 threads per block are refused");

    // barriers and shuffles: block sums and warp sums of 4 blocks
    cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    k_sums<<<4, 64>>>(d, o);
    cudaMemcpy(back.data(), o, 12 * sizeof(float), cudaMemcpyDeviceToHost);
    for (int b = 0; b < 4; b++) {
        float lo = 0, hi = 0;
        for (int i = 0; i < 32; i++)
            lo += h[(size_t)(b * 64 + i)], hi += h[(size_t)(b * 64 + 32 + i)];
        EXPECT(back[(size_t)b * 3] == lo + hi && back[(size_t)b * 3 + 1] == lo && back[(size_t)b * 3 + 2] == hi,
               "block %d: sums %g %g %g, want %g %g %g", b, back[(size_t)b * 3], back[(size_t)b * 3 + 1],
               back[(size_t)b * 3 + 2], lo + hi, lo, hi);
    }

    // a missing barrier before a shared read shows in one of the two orders
    k_no_barrier<<<2, 64>>>(d, o);
    cudaMemcpy(back.data(), o, 128 * sizeof(float), cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 64; t++)
            wrong += back[(size_t)(b * 64 + t)] != h[(size_t)(63 - t)] + (float)b;
    EXPECT(wrong > 0, "a read of shared memory without a barrier went unnoticed");

    // __syncwarp orders a warp's shared writes before its reads, in either
    // thread order
    for (int run = 0; run < 2; run++) {
        k_warp_reverse<<<1, 64>>>(d, o);
        cudaMemcpy(back.data(), o, 64 * sizeof(float), cudaMemcpyDeviceToHost);
        int off = 0;
        for (int t = 0; t < 64; t++)
            off += back[(size_t)t] != h[(size_t)((t & ~31) + 31 - (t & 31))];
        EXPECT(off == 0, "__syncwarp, launch %d: %d values not reversed", run, off);
    }

    // static shared memory holds no value when a block starts (NaN here),
    // whatever the block before it left there, in either order of blocks
    for (int run = 0; run < 2; run++) {
        k_stale_shared<<<2, 32>>>(o);
        cudaMemcpy(back.data(), o, 64 * sizeof(float), cudaMemcpyDeviceToHost);
        EXPECT(back[0] == 1.0f && std::isnan(back[32 + 5]), "launch %d: block 1 read %g from a shared array only "
               "block 0 wrote", run, back[32 + 5]);
    }

    // blocks run in index order in one launch and the reverse in the next,
    // so a grid that depends on its blocks' order gives two answers
    std::vector<float> chain[2];
    for (int run = 0; run < 2; run++) {
        cudaMemset(d, 0, 9 * sizeof(float));
        k_chain<<<8, 32>>>(d);
        chain[run].resize(9);
        cudaMemcpy(chain[run].data(), d, 9 * sizeof(float), cudaMemcpyDeviceToHost);
    }
    EXPECT(chain[0] != chain[1], "a grid that depends on the order of its blocks went unnoticed (last %g, %g)",
           chain[0][8], chain[1][8]);

    // streams are lazy: the legacy stream does not wait for a non-blocking one
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    k_scale<<<(n + 127) / 128, 128, 0, s>>>(d, n, 3.0f);
    cudaMemcpy(back.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    EXPECT(back[5] == 5.0f, "read without waiting for the stream: %g (the kernel's 15 would hide the bug)", back[5]);
    cudaStreamSynchronize(s);
    cudaMemcpy(back.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    EXPECT(back[5] == 15.0f, "after cudaStreamSynchronize: %g", back[5]);

    // graph capture: replay repeats the work; an allocation invalidates it
    cudaGraph_t g = nullptr;
    cudaGraphExec_t x = nullptr;
    EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin capture");
    k_scale<<<(n + 127) / 128, 128, 0, s>>>(d, n, 2.0f);
    EXPECT(cudaStreamEndCapture(s, &g) == cudaSuccess && g, "end capture");
    EXPECT(cudaGraphInstantiate(&x, g, 0) == cudaSuccess, "instantiate");
    cudaGraphLaunch(x, s);
    cudaGraphLaunch(x, s);
    cudaStreamSynchronize(s);
    cudaMemcpy(back.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    EXPECT(back[5] == 60.0f, "two replays: %g", back[5]);
    cudaGraphExecDestroy(x);
    cudaGraphDestroy(g);
    void *p = nullptr;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    EXPECT(cudaMalloc(&p, 64) == cudaErrorStreamCaptureUnsupported, "cudaMalloc during capture");
    EXPECT(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated && !g, "capture invalidated");
    cudaGetLastError();

    // pinned host memory: copies from and to it run with the stream, so a
    // result read before the wait is not there yet, and a source written
    // after the call but before the stream runs is what the device gets
    float *pin = nullptr;
    EXPECT(cudaMallocHost((void **)&pin, n * sizeof(float)) == cudaSuccess && pin, "cudaMallocHost");
    cudaMemcpyAsync(pin, d, n * sizeof(float), cudaMemcpyDeviceToHost, s);
    EXPECT(std::isnan(pin[5]), "a pinned download read before the stream ran: %g", pin[5]);
    cudaStreamSynchronize(s);
    EXPECT(pin[5] == 60.0f, "the pinned download after cudaStreamSynchronize: %g", pin[5]);
    pin[5] = 1.0f;
    cudaMemcpyAsync(d, pin, n * sizeof(float), cudaMemcpyHostToDevice, s);
    pin[5] = 7.0f; // still in time: the copy has not run
    cudaStreamSynchronize(s);
    cudaMemcpy(back.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    EXPECT(back[5] == 7.0f, "a pinned upload takes the source when it runs: %g", back[5]);
    EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin capture");
    k_scale<<<(n + 127) / 128, 128, 0, s>>>(d, n, 2.0f);
    EXPECT(cudaMemcpyAsync(pin, d, n * sizeof(float), cudaMemcpyDeviceToHost, s) == cudaSuccess,
           "a pinned download in a capture");
    EXPECT(cudaStreamEndCapture(s, &g) == cudaSuccess && g, "end capture");
    EXPECT(cudaGraphInstantiate(&x, g, 0) == cudaSuccess, "instantiate");
    cudaGraphLaunch(x, s);
    cudaStreamSynchronize(s);
    EXPECT(pin[5] == 14.0f, "the replayed pinned download: %g", pin[5]);
    cudaGraphExecDestroy(x);
    cudaGraphDestroy(g);
    EXPECT(cudaFreeHost(back.data()) == cudaErrorInvalidValue, "cudaFreeHost of pageable memory");
    cudaGetLastError();
    EXPECT(cudaFreeHost(pin) == cudaSuccess, "cudaFreeHost");

    // the device's memory is finite and cudaMemGetInfo says what is left
    size_t free0 = 0, total = 0, free1 = 0;
    EXPECT(cudaMemGetInfo(&free0, &total) == cudaSuccess && free0 < total, "cudaMemGetInfo");
    void *block = nullptr, *more = nullptr;
    EXPECT(cudaMalloc(&more, free0 + 1) == cudaErrorMemoryAllocation && !more, "a byte more than is free");
    cudaGetLastError();
    EXPECT(cudaMalloc(&block, 64u << 20) == cudaSuccess, "64 MiB");
    EXPECT(cudaMemGetInfo(&free1, &total) == cudaSuccess && free1 == free0 - (64u << 20), "%zu bytes free after "
           "64 MiB of %zu", free1, free0);
    EXPECT(cudaMalloc(&more, free1 + 1) == cudaErrorMemoryAllocation && !more, "a byte more than is left");
    cudaGetLastError();
    cudaFree(block);
    EXPECT(cudaMemGetInfo(&free1, &total) == cudaSuccess && free1 == free0, "cudaFree gives the memory back");

    // cuBLAS: C (2x3) = A^T (2x4 from a 4x2) * B (4x3), column-major
    float ha[8] = {1, 2, 3, 4, 5, 6, 7, 8}, hb[12], hc[6], *da, *db, *dc;
    for (int i = 0; i < 12; i++)
        hb[i] = (float)(i % 5) - 1.5f;
    cudaMalloc((void **)&da, sizeof ha);
    cudaMalloc((void **)&db, sizeof hb);
    cudaMalloc((void **)&dc, sizeof hc);
    cudaMemcpy(da, ha, sizeof ha, cudaMemcpyHostToDevice);
    cudaMemcpy(db, hb, sizeof hb, cudaMemcpyHostToDevice);
    cublasHandle_t blas;
    cublasCreate(&blas);
    const float one = 1.0f, zero = 0.0f;
    EXPECT(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, 2, 3, 4, &one, da, CUDA_R_32F, 4, db, CUDA_R_32F, 4, &zero, dc,
                        CUDA_R_32F, 2, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
           "gemm");
    cudaMemcpy(hc, dc, sizeof hc, cudaMemcpyDeviceToHost);
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 2; i++) {
            float want = 0;
            for (int k = 0; k < 4; k++)
                want += ha[i * 4 + k] * hb[j * 4 + k];
            EXPECT(hc[j * 2 + i] == want, "C[%d,%d] = %g, want %g", i, j, hc[j * 2 + i], want);
        }
    EXPECT(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, 2, 3, 5, &one, da, CUDA_R_32F, 5, db, CUDA_R_32F, 5, &zero, dc,
                        CUDA_R_32F, 2, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE,
           "an operand beyond its allocation is refused");
    cublasDestroy(blas);

    // what ends a GPU program ends the child
    EXPECT(dies([&] { k_divergent<<<1, 64>>>(o); }), "__syncthreads skipped by part of the block");
    EXPECT(dies([&] { k_scale<<<1, 32>>>(h.data(), 32, 1.0f); }), "a host pointer as a kernel argument");
    EXPECT(dies([&] { k_write_past<<<1, 32>>>(o, n); }), "a write past the allocation");
    EXPECT(dies([&] { k_misaligned<<<1, 32>>>(o, o); }), "a wide access not aligned to its size");

    cudaFree(da), cudaFree(db), cudaFree(dc), cudaFree(d), cudaFree(o);
    cudaStreamDestroy(s);
    printf("cudasim_selftest: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
