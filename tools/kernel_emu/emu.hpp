// CPU emulation of the CUDA subset that kernels/conv.cu and kernels/matmul.cu use, so their real
// source compiles as C++ and runs without a GPU (run.sh swaps the two inline-PTX helpers of
// common.cuh for emu::tf32_round and emu::mma).
//
// A block's 256 threads are fibers (ucontext) on one OS thread, switched only at __syncthreads
// and mma.sync. Each thread therefore runs as far ahead as it can before it waits, and blocks
// alternate forward and backward thread order: a missing barrier makes a thread read staged data
// its neighbours have not written yet, or overwrite data they have not read, every time. Waits
// that can never complete (divergent barriers) abort instead of hanging.
#pragma once
#include <math.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

struct uint3 {
    unsigned x, y, z;
};
inline uint3 threadIdx, blockIdx, gridDim, blockDim;

#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
// One block runs at a time, so a function-local static is exactly one block's shared memory.
// All of it lands in one section, which run_block fills with NaN: a read of shared memory that
// this block never wrote then shows in the results instead of reusing an earlier block's data.
// The linker defines the section's bounds; weak, because GCC (before 14) drops the section of
// statics in templates, and then there is nothing to fill (clang keeps it; run.sh prefers it).
#define __shared__ static __attribute__((section("emu_shared")))
extern "C" __attribute__((weak)) char __start_emu_shared[], __stop_emu_shared[];

inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}
inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
inline int __float_as_int(float f) {
    int i;
    memcpy(&i, &f, 4);
    return i;
}

namespace emu {

constexpr int kThreads = 256;  // every emulated kernel takes a 256-thread 1-D block
constexpr int kWarps = kThreads / 32;
constexpr size_t kStack = 256 << 10;

[[noreturn]] inline void fail(const char* what) {
    fflush(stdout);
    fprintf(stderr, "emu: %s (block %u,%u,%u thread %u)\n", what, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x);
    _Exit(2);
}

struct Barrier {
    int count, arrived;
    unsigned gen;
};

struct WarpMma {
    // Two slots, alternated per call: a lane can be at most one mma ahead of its slowest lane.
    float A[2][16][8], B[2][8][8], C[2][16][8];
};

struct State {
    ucontext_t main_ctx;
    ucontext_t fib[kThreads];
    bool done[kThreads];
    int parity[kThreads];
    int cur, live, dir;
    long stall;
    char* stacks;
    size_t page;
    std::function<void()> job;
    Barrier block;
    Barrier warp[kWarps];
    WarpMma mma[kWarps];
    long mma_calls;
};
inline State g;

// Hands the CPU to the next unfinished thread in this block's order.
inline void switch_next() {
    const int me = g.cur;
    int nx = me;
    do nx = (nx + g.dir + kThreads) % kThreads;
    while (g.done[nx] && nx != me);
    if (nx == me) return;
    g.cur = nx;
    threadIdx.x = (unsigned)nx;
    if (swapcontext(&g.fib[me], &g.fib[nx]) != 0) fail("swapcontext failed");
}

inline void wait(Barrier& b) {
    // A compiler barrier: staged data written by other fibers is re-read after the wait.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    const unsigned gen = b.gen;
    g.stall = 0;
    if (++b.arrived == b.count) {
        b.arrived = 0;
        ++b.gen;
        return;
    }
    while (b.gen == gen) {
        // Every live thread polled twice with no arrival anywhere: nobody can release this.
        if (++g.stall > 2L * kThreads) fail("deadlock: threads wait at barriers that cannot complete");
        switch_next();
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);
}

inline void fiber_main() {
    g.job();
    const int me = g.cur;
    if (g.block.arrived != 0 || g.warp[me / 32].arrived != 0)
        fail("thread returned while others of its block / warp wait at a barrier");
    g.done[me] = true;
    --g.live;
    // uc_link returns to the scheduler in run_block.
}

inline void init_stacks() {
    if (g.stacks) return;
    g.page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t each = kStack + g.page;
    void* p = mmap(nullptr, each * kThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("mmap of the fiber stacks failed");
    g.stacks = (char*)p;
    // A guard page under each stack: an overflow faults instead of corrupting a neighbour.
    for (int i = 0; i < kThreads; ++i)
        if (mprotect(g.stacks + i * each, g.page, PROT_NONE) != 0) fail("mprotect failed");
}

inline void run_block() {
    const size_t each = kStack + g.page;
    if (__start_emu_shared && __stop_emu_shared)
        memset(__start_emu_shared, 0xff, (size_t)(__stop_emu_shared - __start_emu_shared));  // NaNs
    g.block = {kThreads, 0, 0};
    for (int w = 0; w < kWarps; ++w) g.warp[w] = {32, 0, 0};
    for (int i = 0; i < kThreads; ++i) {
        g.done[i] = false;
        g.parity[i] = 0;
        if (getcontext(&g.fib[i]) != 0) fail("getcontext failed");
        g.fib[i].uc_stack.ss_sp = g.stacks + i * each + g.page;
        g.fib[i].uc_stack.ss_size = kStack;
        g.fib[i].uc_link = &g.main_ctx;
        makecontext(&g.fib[i], fiber_main, 0);
    }
    g.live = kThreads;
    int nx = g.dir > 0 ? 0 : kThreads - 1;
    while (g.live > 0) {
        while (g.done[nx]) nx = (nx + g.dir + kThreads) % kThreads;
        g.cur = nx;
        threadIdx.x = (unsigned)nx;
        if (swapcontext(&g.main_ctx, &g.fib[nx]) != 0) fail("swapcontext failed");
    }
    if (g.block.arrived != 0) fail("block finished with threads waiting at __syncthreads");
}

// Runs `kernel` (a call of one __global__ function) over `grid`, one block at a time.
inline void launch(uint3 grid, std::function<void()> kernel) {
    init_stacks();
    g.job = std::move(kernel);
    gridDim = grid;
    blockDim = {kThreads, 1, 1};
    threadIdx = {0, 0, 0};
    long linear = 0;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x, ++linear) {
                blockIdx = {x, y, z};
                g.dir = linear % 2 == 0 ? 1 : -1;
                run_block();
            }
}

// cvt.rna.tf32.f32: nearest at 10 mantissa bits, ties away from zero (adding half an ulp to the
// magnitude bits does both signs), kept as an f32 bit pattern.
inline float tf32_round(float v) {
    if (!isfinite(v)) return v;
    return __uint_as_float((__float_as_uint(v) + 0x1000u) & 0xffffe000u);
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, d = A·B + d over one warp. The fragment
// layout is the PTX ISA's, with g = lane / 4, t = lane % 4:
//   a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]; b0 = B[t][g], b1 = B[t+4][g];
//   d0 = D[g][2t], d1 = D[g][2t+1], d2 = D[g+8][2t], d3 = D[g+8][2t+1].
// The lanes publish their fragments, meet at a warp barrier, and each computes its own four
// outputs in double (tf32 products are exact in f32; the sum is at least as good as hardware).
inline void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int gr = lane >> 2, t = lane & 3;
    WarpMma& w = g.mma[warp];
    const int p = g.parity[tid];
    g.parity[tid] ^= 1;
    // The harness's inputs hold no NaN: one here was read from a guard zone past a buffer (or
    // from unwritten memory). Otherwise the hardware ignores the low 13 bits, so the kernels
    // must have rounded each operand.
    for (unsigned v : a) {
        if (isnan(__uint_as_float(v))) fail("mma A operand is NaN: an out-of-bounds or unwritten read");
        if (v & 0x1fffu) fail("mma A operand not rounded to tf32");
    }
    for (unsigned v : b) {
        if (isnan(__uint_as_float(v))) fail("mma B operand is NaN: an out-of-bounds or unwritten read");
        if (v & 0x1fffu) fail("mma B operand not rounded to tf32");
    }
    w.A[p][gr][t] = __uint_as_float(a[0]);
    w.A[p][gr + 8][t] = __uint_as_float(a[1]);
    w.A[p][gr][t + 4] = __uint_as_float(a[2]);
    w.A[p][gr + 8][t + 4] = __uint_as_float(a[3]);
    w.B[p][t][gr] = __uint_as_float(b[0]);
    w.B[p][t + 4][gr] = __uint_as_float(b[1]);
    const int rows[4] = {gr, gr, gr + 8, gr + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int q = 0; q < 4; ++q) w.C[p][rows[q]][cols[q]] = d[q];
    if (lane == 0) ++g.mma_calls;
    wait(g.warp[warp]);
    for (int q = 0; q < 4; ++q) {
        double s = w.C[p][rows[q]][cols[q]];
        for (int k = 0; k < 8; ++k) s += (double)w.A[p][rows[q]][k] * (double)w.B[p][k][cols[q]];
        d[q] = (float)s;
    }
}

}  // namespace emu

inline void __syncthreads() { emu::wait(emu::g.block); }

// Declared for common.cuh's warp reductions, which the emulated kernels never call.
template <class T>
T __shfl_xor_sync(unsigned, T, int) {
    emu::fail("__shfl_xor_sync is not emulated");
}
