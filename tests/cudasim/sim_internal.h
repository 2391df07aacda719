// sim_internal.h - what cudasim's runtime, scheduler and cuBLAS share.
#ifndef RAGD_TESTS_CUDASIM_INTERNAL_H
#define RAGD_TESTS_CUDASIM_INTERNAL_H

#include "cudasim.h"

#include <cstddef>
#include <ctime>
#include <functional>

namespace cudasim {

// Prints "cudasim: <message>" and aborts: what a GPU would turn into a
// sticky fault (an illegal address, a hung barrier) ends the test here.
[[noreturn]] void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Prints "cudasim: <message>" and returns err, as a CUDA call failing.
cudaError_t fail(cudaError_t err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Times what it scopes when CUDASIM_PROFILE=1 (table printed at exit).
class profile_scope {
  public:
    profile_scope(const char *what, unsigned long long threads);
    ~profile_scope();

  private:
    const char *what_;
    unsigned long long threads_;
    struct timespec t0_;
};

// Runs the grid: every block in turn, each block's threads as fibers.
void run_grid(const char *kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body);

// Device memory registry.
struct alloc_info {
    const char *base;
    size_t size;
};
bool find_alloc(const void *p, alloc_info *out);
// [p, p + bytes) lies inside one device allocation.
bool device_range(const void *p, size_t bytes);

// Queues work on a stream (nullptr: the legacy default stream) or, while
// the stream is being captured, appends it to the capture. The work runs
// when something waits for the stream (cudasim's streams are lazy).
void enqueue(cudaStream_t s, const char *what, std::function<void()> work);
// Marks the calling thread's open capture (global or thread-local mode)
// invalid: its cudaStreamEndCapture will fail, naming why.
void invalidate_thread_capture(const char *why);

} // namespace cudasim

#endif
