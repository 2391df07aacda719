// fiber.cpp - cudasim's block scheduler: the threads of one block run as
// fibers on the calling host thread, switched by a few instructions of
// assembly at __syncthreads and warp shuffles, so a barrier really waits
// for every thread of the block and a shuffle for every lane of the warp.
//
// A block starts with one fiber that runs its threads one after another,
// each to its end: kernels without barriers (element-wise ones) cost a
// function call per thread. When the first thread reaches a barrier, that
// fiber becomes that thread's own and the others start on theirs. From
// then on a thread runs until it reaches a barrier. The last thread to reach one
// releases it and goes on; any other hands over directly to the next
// thread that can run (the next lane of its warp first, for a shuffle), so
// a warp shuffle costs one switch per lane. Blocks alternate the order in
// which threads are taken (lowest first, then highest first), so code that
// reads shared memory another thread writes without a barrier between
// sees the wrong value in one of the two; a kernel's launches alternate
// the order of their blocks likewise (and single-block grids the order of
// their threads). Threads that return while others
// wait at __syncthreads, a shuffle missing lanes of its mask, or threads
// waiting at different barriers are reported and end the test.
#include "sim_internal.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#if !defined(__x86_64__)
#error "cudasim's fiber switch is written for x86-64"
#endif

// cudasim_switch(save, to): saves the callee-saved registers and the stack
// pointer into *save, loads to's and returns into that fiber (System V
// x86-64: rbx, rbp, r12-r15 are callee-saved; the FPU control words are
// not touched by ragd's code).
extern "C" void cudasim_switch(void **save, void *to);
__asm__(".text\n"
        ".globl cudasim_switch\n"
        ".type cudasim_switch,@function\n"
        "cudasim_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size cudasim_switch, .-cudasim_switch\n");

namespace cudasim {

thread_local coords cur;

namespace {

enum fiber_state { NOT_STARTED, RUNNABLE, AT_SYNCTHREADS, AT_WARP, DONE };

// Stacks come from one arena (huge pages where the kernel gives them:
// a switch touches a new stack each time, and 4 KiB pages would make
// that a TLB miss); a canary at each stack's low end catches an overflow.
constexpr size_t STACK_BYTES = 32 * 1024;
constexpr uint64_t CANARY = 0x5ca1ab1e0ddba11ull;
constexpr unsigned MAX_THREADS = 1024;
constexpr unsigned MAX_WARPS = MAX_THREADS / 32;

struct fiber {
    void *sp = nullptr;
    fiber_state state = NOT_STARTED;
    int stack = -1; // its stack in the arena while it has one
    uint3 tid{};
    unsigned linear = 0;
    unsigned mask = 0; // of the shuffle it waits at
    int parity = 0;    // which exchange buffer its next shuffle uses
};

struct warp_state {
    unsigned arrived = 0; // lanes waiting at the current shuffle
    unsigned mask = 0;    // the mask the first of them named
    unsigned expected = 0; // lanes in that mask
};

struct scheduler {
    std::vector<fiber> fibers;
    char *arena = nullptr; // MAX_THREADS + 1 stacks
    int next_stack = 0;
    std::vector<int> free_stacks; // a thread that returned gives its stack back
    bool runner = false;          // one fiber is running the block's threads in turn
    int runner_owner = -1;        // the thread whose .stack is the runner's
    void *host_sp = nullptr;
    int running = -1;
    unsigned n = 0;
    bool reverse = false; // this block takes threads highest first
    // launches of each kernel so far (by name: a fixed sequence of launches,
    // a decode step or a graph replay, would otherwise give a kernel at an
    // even place the same order every time): odd ones take their blocks
    // last first, and their first block's threads highest first
    std::unordered_map<std::string, unsigned long long> launches;
    const std::function<void()> *body = nullptr;
    const char *kernel = nullptr;
    // Each lane's published shuffle value, double-buffered: a lane writes
    // buffer[parity] and flips its parity, so one rendezvous per shuffle
    // suffices (a lane writes the same buffer again only after the next
    // rendezvous, which every lane reaches after reading this one).
    uint64_t exchange[2][MAX_THREADS];
    warp_state warps[MAX_WARPS];
    unsigned at_sync = 0, done = 0;
};

// a pointer, so that the thread_local needs no initialization call per use
thread_local scheduler *sched = nullptr;

char *stack_base(int i) { return sched->arena + (size_t)i * STACK_BYTES; }

int take_stack()
{
    if (!sched->arena) {
        size_t bytes = (size_t)(MAX_THREADS + 1) * STACK_BYTES;
        void *m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            fatal("cannot map the fiber stacks");
        madvise(m, bytes, MADV_HUGEPAGE);
        sched->arena = (char *)m;
    }
    int i;
    if (!sched->free_stacks.empty()) {
        i = sched->free_stacks.back();
        sched->free_stacks.pop_back();
    } else {
        if (sched->next_stack > (int)MAX_THREADS)
            fatal("out of fiber stacks");
        i = sched->next_stack++;
    }
    memcpy(stack_base(i), &CANARY, sizeof CANARY);
    return i;
}

void give_stack(int i)
{
    if (memcmp(stack_base(i), &CANARY, sizeof CANARY) != 0)
        fatal("%s: a GPU thread overflowed its %zu KiB stack", sched->kernel, STACK_BYTES / 1024);
    sched->free_stacks.push_back(i);
}

void fiber_entry();

// Threads start when first run, on a free stack: a kernel without
// barriers runs all its threads one after another on one stack.
void start_fiber(fiber &f)
{
    f.stack = take_stack();
    char *top = stack_base(f.stack) + STACK_BYTES;
    void **sp = (void **)top;
    *--sp = nullptr;                   // the entry's return address: never used
    *--sp = (void *)&fiber_entry;      // where cudasim_switch's ret goes
    for (int r = 0; r < 6; r++)
        *--sp = nullptr;               // rbp rbx r12 r13 r14 r15
    f.sp = sp;
    f.state = RUNNABLE;
}

bool can_run(const fiber &f) { return f.state == RUNNABLE || f.state == NOT_STARTED; }

// The next thread that can run after `from` within [lo, hi), in this
// block's order, or -1.
int next_runnable(unsigned from, unsigned lo, unsigned hi)
{
    const fiber *f = sched->fibers.data();
    if (!sched->reverse) {
        for (unsigned i = from + 1; i < hi; i++)
            if (can_run(f[i]))
                return (int)i;
        for (unsigned i = lo; i < from; i++)
            if (can_run(f[i]))
                return (int)i;
    } else {
        for (unsigned i = from; i-- > lo;)
            if (can_run(f[i]))
                return (int)i;
        for (unsigned i = hi; i-- > from + 1;)
            if (can_run(f[i]))
                return (int)i;
    }
    return -1;
}

// Leaves the running thread (already marked waiting or done) for thread
// `to`, or for the host when to < 0.
void switch_away(int to)
{
    fiber &f = sched->fibers[(size_t)sched->running];
    if (to < 0) {
        cudasim_switch(&f.sp, sched->host_sp);
        return;
    }
    fiber &g = sched->fibers[(size_t)to];
    if (g.state == NOT_STARTED)
        start_fiber(g);
    sched->running = to;
    cur.thread = g.tid;
    cudasim_switch(&f.sp, g.sp);
}

void fiber_entry()
{
    if (sched->runner) {
        // thread after thread, in the block's order, until one reaches a
        // barrier (and ends the runner: see leave_runner)
        unsigned n = sched->n;
        for (unsigned k = 0; k < n; k++) {
            unsigned i = sched->reverse ? n - 1 - k : k;
            fiber &t = sched->fibers[i];
            t.state = RUNNABLE;
            sched->running = (int)i;
            cur.thread = t.tid;
            (*sched->body)();
            if (!sched->runner)
                break; // thread i reached a barrier, became a fiber, and has now returned
            t.state = DONE;
            sched->done++;
        }
        if (sched->runner) {
            // every thread ran to its end: hand the runner's stack to the
            // last of them, whose stack the host frees
            sched->runner = false;
            fiber &last = sched->fibers[(size_t)sched->running];
            if (sched->runner_owner != sched->running) {
                last.stack = sched->fibers[(size_t)sched->runner_owner].stack;
                sched->fibers[(size_t)sched->runner_owner].stack = -1;
            }
            cudasim_switch(&last.sp, sched->host_sp);
            fatal("a finished GPU thread was resumed");
        }
    } else {
        (*sched->body)();
    }
    fiber &f = sched->fibers[(size_t)sched->running];
    f.state = DONE;
    sched->done++;
    // back to the host, which frees this stack: it cannot be given to
    // another thread while still in use here
    cudasim_switch(&f.sp, sched->host_sp);
    fatal("a finished GPU thread was resumed");
}

// Runs thread i from the host until control comes back to the host.
void run_from_host(unsigned i)
{
    fiber &f = sched->fibers[i];
    if (f.state == NOT_STARTED)
        start_fiber(f);
    sched->running = (int)i;
    cur.thread = f.tid;
    cudasim_switch(&sched->host_sp, f.sp);
    // whichever thread yielded to the host: free its stack if it is done
    fiber &last = sched->fibers[(size_t)sched->running];
    if (last.state == DONE && last.stack >= 0) {
        give_stack(last.stack);
        last.stack = -1;
    }
    sched->running = -1;
}

const char *state_name(fiber_state s)
{
    switch (s) {
    case NOT_STARTED: return "not started";
    case RUNNABLE: return "runnable";
    case AT_SYNCTHREADS: return "at __syncthreads";
    case AT_WARP: return "at a warp shuffle";
    default: return "returned";
    }
}

// Nothing can run but the block has not finished: say why and end.
[[noreturn]] void report_stuck(uint3 b)
{
    if (sched->at_sync && sched->at_sync + sched->done == sched->n)
        fatal("%s: block (%u,%u,%u): __syncthreads reached by %u threads while %u had returned", sched->kernel, b.x,
              b.y, b.z, sched->at_sync, sched->done);
    for (unsigned w = 0; w * 32 < sched->n; w++) {
        const warp_state &ws = sched->warps[w];
        if (!ws.arrived)
            continue;
        for (unsigned l = 0; l < 32 && w * 32 + l < sched->n; l++) {
            const fiber &f = sched->fibers[w * 32 + l];
            if ((ws.mask & (1u << l)) && f.state != AT_WARP)
                fatal("%s: block (%u,%u,%u) warp %u: lane %u is in the shuffle mask %#x but %s", sched->kernel, b.x,
                      b.y, b.z, w, l, ws.mask, state_name(f.state));
        }
    }
    fatal("%s: block (%u,%u,%u) is stuck: %u threads at __syncthreads, %u returned, the rest at warp shuffles",
          sched->kernel, b.x, b.y, b.z, sched->at_sync, sched->done);
}

// A thread run by the block's runner reached a barrier: the runner's
// fiber becomes that thread's own (its stack is the runner's), and the
// threads not yet run will start on fibers of their own. Legal only if no
// thread the barrier waits for has already returned: for __syncthreads,
// none of the block; for a shuffle, none of the lanes in its mask.
void leave_runner(fiber &f, unsigned lo, unsigned hi, unsigned mask, const char *what)
{
    for (unsigned i = lo; i < hi; i++)
        if (sched->fibers[i].state == DONE && (mask & (1u << ((i - lo) & 31u))))
            fatal("%s: block (%u,%u,%u): thread %u reached %s after thread %u had returned without reaching it",
                  sched->kernel, cur.block.x, cur.block.y, cur.block.z, f.linear, what, i);
    int owner = sched->runner_owner;
    if (owner != (int)f.linear) {
        f.stack = sched->fibers[(size_t)owner].stack;
        sched->fibers[(size_t)owner].stack = -1;
    }
    sched->runner = false;
}

} // namespace

void syncthreads()
{
    if (sched->running < 0)
        fatal("__syncthreads called outside a kernel");
    fiber &f = sched->fibers[(size_t)sched->running];
    if (sched->runner)
        leave_runner(f, 0, sched->n, 0xffffffffu, "__syncthreads");
    if (++sched->at_sync == sched->n) { // the last one: release the block and go on
        for (unsigned i = 0; i < sched->n; i++)
            sched->fibers[i].state = RUNNABLE;
        sched->at_sync = 0;
        return;
    }
    f.state = AT_SYNCTHREADS;
    switch_away(next_runnable(f.linear, 0, sched->n));
}

uint64_t warp_exchange(uint64_t v, int src, unsigned mask)
{
    if (sched->running < 0)
        fatal("a warp shuffle called outside a kernel");
    fiber &f = sched->fibers[(size_t)sched->running];
    unsigned lane = f.linear & 31u, warp_lo = f.linear & ~31u;
    unsigned warp_hi = warp_lo + 32 < sched->n ? warp_lo + 32 : sched->n;
    unsigned existing = warp_hi - warp_lo == 32 ? 0xffffffffu : (1u << (warp_hi - warp_lo)) - 1u;
    if (!(mask & (1u << lane)))
        fatal("%s: lane %u shuffles with a mask (%#x) that leaves it out", sched->kernel, lane, mask);
    if (mask & ~existing)
        fatal("%s: shuffle mask %#x names lanes the block (%u threads) does not have", sched->kernel, mask, sched->n);
    if (src < 0 || src > 31 || !(mask & (1u << src)))
        fatal("%s: lane %u reads lane %d, which is not in the mask %#x", sched->kernel, lane, src, mask);
    if (sched->runner)
        leave_runner(f, warp_lo, warp_hi, mask, "a warp shuffle");
    warp_state &ws = sched->warps[warp_lo / 32];
    if (ws.arrived == 0) {
        ws.mask = mask;
        ws.expected = mask == 0xffffffffu ? 32u : (unsigned)__builtin_popcount(mask);
    }
    else if (ws.mask != mask)
        fatal("%s: warp %u: lanes shuffle with different masks (%#x, %#x)", sched->kernel, warp_lo / 32, ws.mask, mask);
    int parity = f.parity;
    f.parity ^= 1;
    sched->exchange[parity][f.linear] = v;
    if (++ws.arrived == ws.expected) { // the last lane: release the warp and go on
        for (unsigned i = warp_lo; i < warp_hi; i++)
            if (sched->fibers[i].state == AT_WARP)
                sched->fibers[i].state = RUNNABLE;
        ws.arrived = 0;
    } else {
        f.state = AT_WARP;
        f.mask = mask;
        int next = next_runnable(f.linear, warp_lo, warp_hi);
        switch_away(next >= 0 ? next : next_runnable(f.linear, 0, sched->n));
    }
    return sched->exchange[parity][warp_lo + (unsigned)src];
}

void run_grid(const char *kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body)
{
    unsigned n = block.x * block.y * block.z;
    if (!sched)
        sched = new scheduler(); // per host thread, kept for its next launches
    if (sched->running >= 0)
        fatal("%s launched from inside a kernel", kernel);
    sched->fibers.assign(n, fiber());
    sched->n = n;
    sched->body = &body;
    sched->kernel = kernel;
    std::vector<unsigned char> dyn(smem ? smem : 1);
    cur.block_dim = make_uint3(block.x, block.y, block.z);
    cur.grid_dim = make_uint3(grid.x, grid.y, grid.z);
    cur.dyn_smem = dyn.data();
    // Blocks run one at a time, in index order or (every other launch) the
    // reverse: a GPU runs them in any order, so a kernel that reads what
    // another block of the same grid writes gets it wrong in one of the two.
    unsigned long long n_blocks = (unsigned long long)grid.x * grid.y * grid.z;
    unsigned long long launch_no = sched->launches[kernel]++;
    bool grid_reverse = (launch_no & 1) != 0;
    for (unsigned long long count = 0; count < n_blocks; count++) {
        unsigned long long b = grid_reverse ? n_blocks - 1 - count : count;
        unsigned bx = (unsigned)(b % grid.x), by = (unsigned)(b / grid.x % grid.y),
                 bz = (unsigned)(b / ((unsigned long long)grid.x * grid.y));
        // shared memory is garbage when a block starts: NaN here
        memset(dyn.data(), 0xff, dyn.size());
        cur.block = make_uint3(bx, by, bz);
        cur.block_serial++; // static __shared__ variables are refilled with NaN (CUDASIM_FRESH_SHARED)
        sched->reverse = ((count + launch_no) & 1) != 0;
        sched->at_sync = sched->done = 0;
        for (unsigned w = 0; w * 32 < n; w++)
            sched->warps[w] = warp_state();
        for (unsigned i = 0; i < n; i++) {
            fiber &f = sched->fibers[i];
            f = fiber();
            f.linear = i;
            f.tid = make_uint3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
        }
        unsigned cursor = sched->reverse ? n - 1 : 0;
        sched->runner = true; // the first thread's fiber runs them all, barriers permitting
        sched->runner_owner = (int)cursor;
        while (sched->done < n) {
            int i = can_run(sched->fibers[cursor]) ? (int)cursor : next_runnable(cursor, 0, n);
            if (i < 0)
                report_stuck(cur.block);
            run_from_host((unsigned)i);
            cursor = (unsigned)i;
        }
    }
    sched->body = nullptr;
    cur.dyn_smem = nullptr;
}

} // namespace cudasim
