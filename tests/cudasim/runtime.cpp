// runtime.cpp - the part of the CUDA runtime API that ragd calls, for
// cudasim (see cudasim.h): one device, device memory in guarded mappings,
// lazy streams, graph capture and replay, launches.
//
// Device memory: each cudaMalloc is its own mapping, placed so that the
// allocation ends 16 bytes or less before an inaccessible page (a read or
// write past its end faults), filled with 0xff bytes (NaN as fp32 and
// fp16) so that reading memory no kernel or copy wrote shows up in the
// results. Allocations are recorded, so copies, cuBLAS operands and
// kernel arguments can be checked against them.
//
// Streams are lazy: work queued on one runs only when something waits for
// it (cudaStreamSynchronize, cudaDeviceSynchronize, a device-to-host copy
// into pageable memory on that stream, cudaFree, a synchronous copy for
// the legacy stream and the blocking streams). A GPU may well have done
// the work earlier; running it as late as the rules allow makes a missing
// wait visible. Host-to-device copies from pageable memory take their
// data at the call, as CUDA's staging does.
//
// Pinned host memory (cudaMallocHost, cudaHostAlloc) is recorded too,
// filled with 0xff bytes like device memory: copies between it and the
// device are truly asynchronous, as on a GPU, so they run when the stream
// runs. A host-to-device copy reads its source then (a host write after
// the call but before the wait reaches the device), and a device-to-host
// copy lands only when something waits (reading the buffer before that
// sees the old bytes).
#include "sim_internal.h"

#include <cuda_profiler_api.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdarg>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct CUstream_st {
    unsigned flags = 0;
    std::deque<std::pair<const char *, std::function<void()>>> queue;
    // capture
    bool capturing = false;
    bool invalidated = false;
    std::string invalid_why;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
    std::vector<std::pair<const char *, std::function<void()>>> captured;
};

struct CUgraph_st {
    std::vector<std::pair<const char *, std::function<void()>>> nodes;
};

struct CUgraphExec_st {
    std::vector<std::pair<const char *, std::function<void()>>> nodes;
};

namespace cudasim {

namespace {

std::recursive_mutex device_mu; // one device: work runs one item at a time
std::mutex alloc_mu;
constexpr size_t DEVICE_MEMORY = (size_t)16 << 30; // what the emulated device reports and holds
std::map<const char *, alloc_info> allocs; // keyed by base
std::map<const char *, size_t> pinned;      // pinned host allocations: base -> size
size_t allocated = 0;                       // bytes of live allocations, against DEVICE_MEMORY
std::vector<CUstream_st *> streams;         // created streams, for device-wide waits
CUstream_st legacy_stream;
thread_local cudaError_t last_error = cudaSuccess;
thread_local CUstream_st *thread_capture = nullptr;

CUstream_st *resolve(cudaStream_t s) { return s ? s : &legacy_stream; }

cudaError_t record(cudaError_t err)
{
    if (err != cudaSuccess)
        last_error = err;
    return err;
}

void run_queue(CUstream_st *st)
{
    std::lock_guard<std::recursive_mutex> lock(device_mu);
    while (!st->queue.empty()) {
        auto item = std::move(st->queue.front());
        st->queue.pop_front();
        item.second();
    }
}

void run_blocking_streams()
{
    std::vector<CUstream_st *> all;
    {
        std::lock_guard<std::mutex> lock(alloc_mu);
        all = streams;
    }
    for (CUstream_st *st : all)
        if (!(st->flags & cudaStreamNonBlocking))
            run_queue(st);
    run_queue(&legacy_stream);
}

void run_all_streams()
{
    std::vector<CUstream_st *> all;
    {
        std::lock_guard<std::mutex> lock(alloc_mu);
        all = streams;
    }
    for (CUstream_st *st : all)
        run_queue(st);
    run_queue(&legacy_stream);
}

// A synchronizing call while this thread captures: refused, and the
// capture is invalidated (CUDA's rule for the global and thread-local
// capture modes).
bool refuse_in_capture(const char *call)
{
    if (!thread_capture)
        return false;
    invalidate_thread_capture(call);
    fail(cudaErrorStreamCaptureUnsupported, "%s during stream capture", call);
    return true;
}

const char *kind_name(cudaMemcpyKind k)
{
    switch (k) {
    case cudaMemcpyHostToHost: return "HostToHost";
    case cudaMemcpyHostToDevice: return "HostToDevice";
    case cudaMemcpyDeviceToHost: return "DeviceToHost";
    case cudaMemcpyDeviceToDevice: return "DeviceToDevice";
    default: return "Default";
    }
}

// [p, p + n) lies inside one pinned host allocation.
bool pinned_range(const void *p, size_t n)
{
    std::lock_guard<std::mutex> lock(alloc_mu);
    auto it = pinned.upper_bound((const char *)p);
    if (it == pinned.begin())
        return false;
    --it;
    const char *q = (const char *)p;
    return q >= it->first && n <= it->second && (size_t)(q - it->first) <= it->second - n;
}

// Checks a copy's pointers against its kind.
cudaError_t check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind, const char *call)
{
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) {
        dst_dev = is_device_ptr(dst);
        src_dev = is_device_ptr(src);
    } else if (kind == cudaMemcpyHostToHost) {
        dst_dev = src_dev = false;
    }
    if (n == 0)
        return cudaSuccess;
    if (dst_dev ? !device_range(dst, n) : is_device_ptr(dst))
        return fail(cudaErrorInvalidValue, "%s %s: destination %p %s %zu bytes", call, kind_name(kind), dst,
                    dst_dev ? "is not device memory for" : "is device memory, copying", n);
    if (src_dev ? !device_range(src, n) : is_device_ptr(src))
        return fail(cudaErrorInvalidValue, "%s %s: source %p %s %zu bytes", call, kind_name(kind), src,
                    src_dev ? "is not device memory for" : "is device memory, copying", n);
    return cudaSuccess;
}

} // namespace

// CUDASIM_PROFILE=1: where the emulation's time goes, printed at exit.
namespace {
struct profile_entry {
    unsigned long long launches = 0, threads = 0;
    double seconds = 0;
};
std::mutex profile_mu;
std::map<std::string, profile_entry> *profile_table;

void profile_print()
{
    std::lock_guard<std::mutex> lock(profile_mu);
    for (auto &kv : *profile_table)
        fprintf(stderr, "cudasim profile: %-28s %8llu launches %12llu threads %9.3f s\n", kv.first.c_str(),
                kv.second.launches, kv.second.threads, kv.second.seconds);
}
} // namespace

profile_scope::profile_scope(const char *what, unsigned long long threads) : what_(what), threads_(threads)
{
    static const bool on = getenv("CUDASIM_PROFILE") && getenv("CUDASIM_PROFILE")[0] == '1';
    if (!on) {
        what_ = nullptr;
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0_);
}

profile_scope::~profile_scope()
{
    if (!what_)
        return;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    std::lock_guard<std::mutex> lock(profile_mu);
    if (!profile_table) {
        profile_table = new std::map<std::string, profile_entry>();
        atexit(profile_print);
    }
    profile_entry &e = (*profile_table)[what_];
    e.launches++;
    e.threads += threads_;
    e.seconds += (double)(t1.tv_sec - t0_.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0_.tv_nsec);
}

static void say(const char *fmt, va_list ap)
{
    fputs("cudasim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    abort();
}

void misaligned(const void *p, unsigned align, const char *what)
{
    fatal("a %u-byte access at %p (%s) is not %u-byte aligned: a GPU faults here", align, p, what, align);
}

cudaError_t fail(cudaError_t err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    return record(err);
}

bool find_alloc(const void *p, alloc_info *out)
{
    const char *c = (const char *)p;
    std::lock_guard<std::mutex> lock(alloc_mu);
    auto it = allocs.upper_bound(c);
    if (it == allocs.begin())
        return false;
    --it;
    if (c < it->second.base + it->second.size || (it->second.size == 0 && c == it->second.base)) {
        if (out)
            *out = it->second;
        return true;
    }
    return false;
}

bool is_device_ptr(const void *p) { return p && find_alloc(p, nullptr); }

bool device_range(const void *p, size_t bytes)
{
    alloc_info a;
    if (!p || !find_alloc(p, &a))
        return false;
    return bytes <= (size_t)(a.base + a.size - (const char *)p);
}

void invalidate_thread_capture(const char *why)
{
    if (thread_capture && !thread_capture->invalidated) {
        thread_capture->invalidated = true;
        thread_capture->invalid_why = why;
    }
}

void enqueue(cudaStream_t s, const char *what, std::function<void()> work)
{
    CUstream_st *st = resolve(s);
    if (st->capturing) {
        st->captured.emplace_back(what, std::move(work));
        return;
    }
    if (thread_capture && st == &legacy_stream) {
        // the legacy stream would wait for the stream being captured,
        // which capture forbids
        invalidate_thread_capture(what);
        fail(cudaErrorStreamCaptureImplicit, "%s on the legacy stream during stream capture", what);
        return;
    }
    std::lock_guard<std::recursive_mutex> lock(device_mu);
    st->queue.emplace_back(what, std::move(work));
}

void submit(const char *kernel, const config &c, std::function<void()> body, const char *bad_arg)
{
    dim3 g = c.grid, b = c.block;
    unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z || threads > 1024 || b.z > 64 || g.y > 65535 || g.z > 65535 ||
        g.x > 2147483647u) {
        fail(cudaErrorInvalidConfiguration, "%s: launch grid (%u,%u,%u) block (%u,%u,%u) is not valid", kernel, g.x, g.y,
             g.z, b.x, b.y, b.z);
        return;
    }
    if (c.smem > 48 * 1024) {
        fail(cudaErrorInvalidValue, "%s: %zu bytes of dynamic shared memory (48 KiB without an opt-in)", kernel,
             c.smem);
        return;
    }
    if (bad_arg)
        fatal("%s: %s", kernel, bad_arg); // on a GPU: an illegal address fault
    size_t smem = c.smem;
    enqueue(c.stream, kernel, [kernel, g, b, smem, body]() {
        profile_scope p(kernel, (unsigned long long)g.x * g.y * g.z * b.x * b.y * b.z);
        run_grid(kernel, g, b, smem, body);
    });
}

} // namespace cudasim

using namespace cudasim;

// ---- errors and the device -------------------------------------------------------

extern "C" {

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

const char *cudaGetErrorName(cudaError_t error)
{
    switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    default: return "cudaError (cudasim)";
    }
}

const char *cudaGetErrorString(cudaError_t error)
{
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return cudaGetErrorName(error);
    }
}

// CUDASIM_DEVICES=0 makes the simulated machine have no GPU.
cudaError_t cudaGetDeviceCount(int *count)
{
    const char *env = getenv("CUDASIM_DEVICES");
    *count = env && env[0] == '0' ? 0 : 1;
    return *count ? cudaSuccess : record(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int device)
{
    if (device != 0)
        return fail(cudaErrorInvalidDevice, "cudaSetDevice(%d): one device", device);
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device)
{
    if (device != 0)
        return fail(cudaErrorInvalidDevice, "cudaGetDeviceProperties(%d): one device", device);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "cudasim (CPU emulation of sm_90)");
    prop->major = 9;
    prop->minor = 0;
    prop->totalGlobalMem = DEVICE_MEMORY;
    prop->sharedMemPerBlock = 48 * 1024;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647;
    prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
    prop->multiProcessorCount = 132;
    prop->memoryBusWidth = 5120;
    prop->l2CacheSize = 50 << 20;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    if (refuse_in_capture("cudaDeviceSynchronize"))
        return cudaErrorStreamCaptureUnsupported;
    run_all_streams();
    return cudaSuccess;
}

// No profiler attaches to the emulation: the range markers a benchmark
// sets for one (cuda_profiler_api.h) mark nothing.
cudaError_t cudaProfilerStart(void)
{
    return cudaSuccess;
}

cudaError_t cudaProfilerStop(void)
{
    return cudaSuccess;
}

// ---- memory ---------------------------------------------------------------------

cudaError_t cudaMalloc(void **ptr, size_t size)
{
    *ptr = nullptr;
    if (refuse_in_capture("cudaMalloc"))
        return cudaErrorStreamCaptureUnsupported;
    {
        std::lock_guard<std::mutex> lock(alloc_mu);
        if (size > DEVICE_MEMORY - allocated)
            return record(cudaErrorMemoryAllocation); // the device is full, as a GPU's would be
        allocated += size;                            // reserved now, so two threads cannot both take the rest
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (size + 15) & ~(size_t)15;
    size_t span = (body + page - 1) / page * page;
    char *m = (char *)mmap(nullptr, span + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        std::lock_guard<std::mutex> lock(alloc_mu);
        allocated -= size;
        return record(cudaErrorMemoryAllocation);
    }
    mprotect(m, page, PROT_NONE);
    mprotect(m + page + span, page, PROT_NONE);
    char *base = m + page + span - body;
    memset(base, 0xff, body);
    {
        std::lock_guard<std::mutex> lock(alloc_mu);
        allocs[base] = alloc_info{base, size};
    }
    *ptr = base;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr)
{
    if (!ptr)
        return cudaSuccess;
    if (refuse_in_capture("cudaFree"))
        return cudaErrorStreamCaptureUnsupported;
    run_all_streams(); // cudaFree waits for the device
    alloc_info a;
    {
        std::lock_guard<std::mutex> lock(alloc_mu);
        auto it = allocs.find((const char *)ptr);
        if (it == allocs.end())
            return fail(cudaErrorInvalidValue, "cudaFree(%p): not the start of a device allocation", ptr);
        a = it->second;
        allocs.erase(it);
        allocated -= a.size;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (a.size + 15) & ~(size_t)15;
    size_t span = (body + page - 1) / page * page;
    munmap((char *)a.base + body - span - page, span + 2 * page);
    return cudaSuccess;
}

// Pinned host memory: ordinary memory here, recorded so that copies from and
// to it are asynchronous (see the top of this file).
cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags)
{
    (void)flags;
    *ptr = nullptr;
    if (refuse_in_capture("cudaHostAlloc"))
        return cudaErrorStreamCaptureUnsupported;
    char *m = (char *)malloc(size ? size : 1);
    if (!m)
        return record(cudaErrorMemoryAllocation);
    memset(m, 0xff, size);
    {
        std::lock_guard<std::mutex> lock(alloc_mu);
        pinned[m] = size;
    }
    *ptr = m;
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t size) { return cudaHostAlloc(ptr, size, cudaHostAllocDefault); }

cudaError_t cudaFreeHost(void *ptr)
{
    if (!ptr)
        return cudaSuccess;
    if (refuse_in_capture("cudaFreeHost"))
        return cudaErrorStreamCaptureUnsupported;
    run_all_streams(); // as cudaFree, it waits for the device
    {
        std::lock_guard<std::mutex> lock(alloc_mu);
        auto it = pinned.find((const char *)ptr);
        if (it == pinned.end())
            return fail(cudaErrorInvalidValue, "cudaFreeHost(%p): not the start of a pinned host allocation", ptr);
        pinned.erase(it);
    }
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    std::lock_guard<std::mutex> lock(alloc_mu);
    *free_bytes = DEVICE_MEMORY - allocated;
    *total = DEVICE_MEMORY;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, cudaMemcpyKind kind)
{
    if (refuse_in_capture("cudaMemcpy"))
        return cudaErrorStreamCaptureUnsupported;
    cudaError_t err = check_copy(dst, src, count, kind, "cudaMemcpy");
    if (err)
        return err;
    run_blocking_streams(); // the legacy stream waits for the blocking streams, not the non-blocking ones
    memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, cudaMemcpyKind kind, cudaStream_t stream)
{
    cudaError_t err = check_copy(dst, src, count, kind, "cudaMemcpyAsync");
    if (err)
        return err;
    bool from_host = kind == cudaMemcpyHostToDevice || (kind == cudaMemcpyDefault && !is_device_ptr(src));
    bool to_host = kind == cudaMemcpyDeviceToHost || (kind == cudaMemcpyDefault && !is_device_ptr(dst));
    CUstream_st *st = resolve(stream);
    if ((to_host && pinned_range(dst, count)) || (from_host && pinned_range(src, count))) {
        // pinned host memory: the copy runs with the stream, reading or
        // writing the host buffer then (and may be captured into a graph)
        enqueue(stream, to_host ? "cudaMemcpyAsync DeviceToHost (pinned)" : "cudaMemcpyAsync HostToDevice (pinned)",
                [dst, src, count]() { memcpy(dst, src, count); });
        return cudaSuccess;
    }
    if (to_host) {
        // into pageable memory the call returns once the copy is done
        if (st->capturing || thread_capture) {
            invalidate_thread_capture("cudaMemcpyAsync to pageable host memory");
            return fail(cudaErrorStreamCaptureUnsupported, "cudaMemcpyAsync into pageable host memory during capture");
        }
        run_queue(st);
        memmove(dst, src, count);
        return cudaSuccess;
    }
    if (from_host) {
        // pageable source: staged at the call
        std::shared_ptr<std::vector<char>> staged(new std::vector<char>((const char *)src, (const char *)src + count));
        enqueue(stream, "cudaMemcpyAsync HostToDevice",
                [dst, staged]() { memcpy(dst, staged->data(), staged->size()); });
        return cudaSuccess;
    }
    enqueue(stream, "cudaMemcpyAsync DeviceToDevice", [dst, src, count]() { memmove(dst, src, count); });
    return cudaSuccess;
}

// Rows of `width` bytes, `height` of them, between pitched buffers.
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream)
{
    if (width > dpitch || width > spitch)
        return fail(cudaErrorInvalidPitchValue, "cudaMemcpy2DAsync: width %zu beyond a pitch (%zu, %zu)", width,
                    dpitch, spitch);
    if (kind != cudaMemcpyDeviceToDevice)
        return fail(cudaErrorInvalidValue, "cudaMemcpy2DAsync: only DeviceToDevice is emulated");
    if (height == 0 || width == 0)
        return cudaSuccess;
    size_t dext = dpitch * (height - 1) + width, sext = spitch * (height - 1) + width;
    if (!device_range(dst, dext) || !device_range(src, sext))
        return fail(cudaErrorInvalidValue, "cudaMemcpy2DAsync: %zu rows of %zu bytes: destination (%p, %zu bytes) or "
                    "source (%p, %zu bytes) is not inside one device allocation", height, width, dst, dext, src, sext);
    enqueue(stream, "cudaMemcpy2DAsync", [=]() {
        for (size_t r = 0; r < height; r++)
            memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    });
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream)
{
    if (count && !device_range(ptr, count))
        return fail(cudaErrorInvalidValue, "cudaMemset: %p is not %zu bytes of device memory", ptr, count);
    enqueue(stream, "cudaMemset", [ptr, value, count]() { memset(ptr, value, count); });
    return cudaSuccess;
}

cudaError_t cudaMemset(void *ptr, int value, size_t count) { return cudaMemsetAsync(ptr, value, count, nullptr); }

// ---- streams -------------------------------------------------------------------

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    CUstream_st *st = new CUstream_st();
    st->flags = flags;
    std::lock_guard<std::mutex> lock(alloc_mu);
    streams.push_back(st);
    *stream = st;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    if (refuse_in_capture("cudaStreamSynchronize"))
        return cudaErrorStreamCaptureUnsupported;
    CUstream_st *st = resolve(stream);
    if (st == &legacy_stream)
        run_blocking_streams();
    else
        run_queue(st);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    if (!stream)
        return fail(cudaErrorInvalidValue, "cudaStreamDestroy of the legacy stream");
    if (stream->capturing)
        return fail(cudaErrorIllegalState, "cudaStreamDestroy of a stream being captured");
    run_queue(stream); // queued work still completes
    std::lock_guard<std::mutex> lock(alloc_mu);
    for (size_t i = 0; i < streams.size(); i++)
        if (streams[i] == stream) {
            streams.erase(streams.begin() + (long)i);
            delete stream;
            return cudaSuccess;
        }
    return fail(cudaErrorInvalidValue, "cudaStreamDestroy of an unknown stream");
}

// ---- graphs --------------------------------------------------------------------

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)
{
    if (!stream)
        return fail(cudaErrorStreamCaptureUnsupported, "capture of the legacy stream");
    if (stream->capturing || thread_capture)
        return fail(cudaErrorIllegalState, "cudaStreamBeginCapture while a capture is open");
    // capture starts from an idle stream here; queued work runs first
    run_queue(stream);
    stream->capturing = true;
    stream->invalidated = false;
    stream->invalid_why.clear();
    stream->mode = mode;
    stream->captured.clear();
    if (mode != cudaStreamCaptureModeRelaxed)
        thread_capture = stream;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    *graph = nullptr;
    if (!stream || !stream->capturing)
        return fail(cudaErrorIllegalState, "cudaStreamEndCapture without a capture");
    stream->capturing = false;
    if (thread_capture == stream)
        thread_capture = nullptr;
    if (stream->invalidated) {
        stream->captured.clear();
        return fail(cudaErrorStreamCaptureInvalidated, "capture invalidated by %s", stream->invalid_why.c_str());
    }
    CUgraph_st *g = new CUgraph_st();
    g->nodes = std::move(stream->captured);
    stream->captured.clear();
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    *exec = nullptr;
    if (!graph)
        return fail(cudaErrorInvalidValue, "cudaGraphInstantiate of no graph");
    CUgraphExec_st *x = new CUgraphExec_st();
    x->nodes = graph->nodes;
    *exec = x;
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    if (!exec)
        return fail(cudaErrorInvalidValue, "cudaGraphLaunch of no graph");
    for (auto &n : exec->nodes)
        enqueue(stream, n.first, n.second);
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    delete graph;
    return cudaSuccess;
}

} // extern "C"
