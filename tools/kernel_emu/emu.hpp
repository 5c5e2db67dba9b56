// CPU emulation of the CUDA subset that kernels/conv.cu, matmul.cu, corr_warp_bf16.cu and the
// elementwise / layout / reduce / pool / resize / unfold / loss / adam kernels use, so their real
// source compiles as C++ and runs without a GPU (run.sh swaps the inline-PTX helpers of
// common.cuh and mma_bf16.cuh for the emu:: functions below).
//
// A block's threads (256 unless launch says otherwise; 1-, 2- or 3-D, at most 256, numbered x
// fastest as on the GPU) are fibers on one OS thread (a six-register stack switch on x86-64,
// ucontext elsewhere or under AddressSanitizer: swapcontext's signal-mask syscall made up two
// thirds of the emulation's time), switched only at __syncthreads
// and the warp collectives (mma.sync, ldmatrix, __shfl_xor_sync).
// Each thread therefore runs as far ahead as it can before it waits, and blocks
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
#define __align__(n) __attribute__((aligned(n)))
// One block runs at a time, so a function-local static is exactly one block's shared memory.
// All of it lands in one section, which run_block fills with NaN: a read of shared memory that
// this block never wrote then shows in the results instead of reusing an earlier block's data.
// The linker defines the section's bounds; weak, because GCC (before 14) drops the section of
// statics in templates, and then there is nothing to fill (clang keeps it; run.sh prefers it).
#define __shared__ static __attribute__((section("emu_shared")))
extern "C" __attribute__((weak)) char __start_emu_shared[], __stop_emu_shared[];

// The CUDA bit reinterpretations, as one memcpy each.
template <class To, class From>
inline To emu_bit_cast(From v) {
    static_assert(sizeof(To) == sizeof(From), "bit cast between types of different sizes");
    To r;
    memcpy(&r, &v, sizeof r);
    return r;
}
inline float __int_as_float(int i) { return emu_bit_cast<float>(i); }
inline float __uint_as_float(unsigned u) { return emu_bit_cast<float>(u); }
inline unsigned __float_as_uint(float f) { return emu_bit_cast<unsigned>(f); }
inline int __float_as_int(float f) { return emu_bit_cast<int>(f); }

// The explicitly rounded f32 intrinsics (resize.cu): one IEEE operation each, never contracted
// into an FMA (a function call boundary keeps the compiler from fusing them).
__attribute__((noinline)) inline float __fadd_rn(float a, float b) { return a + b; }
__attribute__((noinline)) inline float __fsub_rn(float a, float b) { return a - b; }
__attribute__((noinline)) inline float __fmul_rn(float a, float b) { return a * b; }
__attribute__((noinline)) inline float __fdiv_rn(float a, float b) { return a / b; }

struct __attribute__((aligned(16))) uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

// ---- fiber switching ----------------------------------------------------------------------------

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define EMU_FAST_SWITCH 1
// emu_switch(from, to): pushes the callee-saved registers (the System V ABI's; everything else a
// caller of a function saves itself), stores the stack pointer in *from, loads `to` and pops the
// same registers from there. Weak and hidden: every translation unit that includes this header
// emits it, the linker keeps one, and a shared library does not export it.
asm(R"(
    .text
    .weak emu_switch
    .hidden emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");
extern "C" __attribute__((visibility("hidden"))) void emu_switch(void** from, void* to);
#endif

namespace emu {

// The guard-zone word of the harness buffers (buf.hpp) and the emulated driver's allocations: a
// NaN as f32 and in both bf16 halves (bf16 buffers are f32 buffers holding pairs).
constexpr unsigned kGuardNaN = 0x7fad7fad;

constexpr int kThreads = 256;  // the largest block: 1-D, a multiple of 32 threads
constexpr int kWarps = kThreads / 32;
constexpr size_t kStack = 256 << 10;

// The kernel running, where the caller names it (the emulated driver does), for fail's message.
inline const char* g_kernel_name = nullptr;

inline int g_cur_for_fail();
[[noreturn]] inline void fail(const char* what) {
    fflush(stdout);
    fprintf(stderr, "emu: %s%s%s (block %u,%u,%u thread %d)\n", g_kernel_name ? g_kernel_name : "",
            g_kernel_name ? ": " : "", what, blockIdx.x, blockIdx.y, blockIdx.z, g_cur_for_fail());
    _Exit(2);
}

struct Barrier {
    int count, arrived;
    unsigned gen;
};

// What the lanes of one warp publish at a collective. Two slots, alternated per collective: a
// lane can be at most one collective ahead of its slowest lane.
struct WarpMma {
    float A[2][16][8], B[2][8][8], C[2][16][8];  // mma m16n8k8 tf32
    float A16[2][16][16], B16[2][16][8], C16[2][16][8];  // mma m16n8k16 bf16
    int op[2][32];  // which collective each lane is at (they must agree)
    unsigned long long val[2][32];  // __shfl_xor_sync operands
    const unsigned char* addr[2][32];  // ldmatrix row addresses
    unsigned frag[2][32][4];  // ldmatrix results, gathered by the last lane to arrive
};

// A suspended fiber (or the scheduler): where to resume it.
struct Context {
#ifdef EMU_FAST_SWITCH
    void* sp;
#else
    ucontext_t uc;
#endif
};

struct State {
    Context main_ctx;
    Context fib[kThreads];
    bool done[kThreads];
    int parity[kThreads];
    int cur, live, dir, nthreads;
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
inline int g_cur_for_fail() { return g.cur; }

inline void switch_context(Context& from, Context& to) {
#ifdef EMU_FAST_SWITCH
    emu_switch(&from.sp, to.sp);
#else
    if (swapcontext(&from.uc, &to.uc) != 0) fail("swapcontext failed");
#endif
}

// Fiber nx is the thread of linear index nx (x fastest, as CUDA numbers a block's threads).
inline void set_tid(int nx) {
    const unsigned u = (unsigned)nx;
    threadIdx = {u % blockDim.x, u / blockDim.x % blockDim.y, u / (blockDim.x * blockDim.y)};
}

// Hands the CPU to the next unfinished thread in this block's order.
inline void switch_next() {
    const int me = g.cur;
    int nx = me;
    do nx = (nx + g.dir + g.nthreads) % g.nthreads;
    while (g.done[nx] && nx != me);
    if (nx == me) return;
    g.cur = nx;
    set_tid(nx);
    switch_context(g.fib[me], g.fib[nx]);
}

// Returns true in the thread whose arrival completed the barrier (the others are still in it).
inline bool wait(Barrier& b) {
    // A compiler barrier: staged data written by other fibers is re-read after the wait.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    const unsigned gen = b.gen;
    g.stall = 0;
    if (++b.arrived == b.count) {
        b.arrived = 0;
        ++b.gen;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        return true;
    }
    while (b.gen == gen) {
        // Every live thread polled twice with no arrival anywhere: nobody can release this.
        if (++g.stall > 2L * g.nthreads) fail("deadlock: threads wait at barriers that cannot complete");
        switch_next();
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);
    return false;
}

inline void fiber_main() {
    g.job();
    const int me = g.cur;
    if (g.block.arrived != 0 || g.warp[me / 32].arrived != 0)
        fail("thread returned while others of its block / warp wait at a barrier");
    g.done[me] = true;
    --g.live;
}

// Where a fiber starts: its thread's work, then back to the scheduler in run_block for good.
inline void fiber_entry() {
    fiber_main();
#ifdef EMU_FAST_SWITCH
    switch_context(g.fib[g.cur], g.main_ctx);
    fail("a finished fiber was resumed");
#endif
    // ucontext: uc_link returns to the scheduler.
}

// Thread i's fiber, to start at fiber_entry on its own stack.
inline void start_fiber(int i, char* stack, size_t size) {
#ifdef EMU_FAST_SWITCH
    // emu_switch into it pops six registers and returns into fiber_entry, which then sees the
    // stack as a called function does (16-byte aligned before the call's return address).
    auto* top = (void**)((uintptr_t)(stack + size) & ~uintptr_t(15));
    void** sp = top - 8;
    for (int r = 0; r < 6; ++r) sp[r] = nullptr;
    sp[6] = (void*)&fiber_entry;
    sp[7] = nullptr;
    g.fib[i].sp = sp;
#else
    if (getcontext(&g.fib[i].uc) != 0) fail("getcontext failed");
    g.fib[i].uc.uc_stack.ss_sp = stack;
    g.fib[i].uc.uc_stack.ss_size = size;
    g.fib[i].uc.uc_link = &g.main_ctx.uc;
    makecontext(&g.fib[i].uc, fiber_entry, 0);
#endif
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
    g.block = {g.nthreads, 0, 0};
    for (int w = 0; w < kWarps; ++w) g.warp[w] = {32, 0, 0};
    for (int i = 0; i < g.nthreads; ++i) {
        g.done[i] = false;
        g.parity[i] = 0;
        start_fiber(i, g.stacks + i * each + g.page, kStack);
    }
    g.live = g.nthreads;
    int nx = g.dir > 0 ? 0 : g.nthreads - 1;
    while (g.live > 0) {
        while (g.done[nx]) nx = (nx + g.dir + g.nthreads) % g.nthreads;
        g.cur = nx;
        set_tid(nx);
        switch_context(g.main_ctx, g.fib[nx]);
    }
    if (g.block.arrived != 0) fail("block finished with threads waiting at __syncthreads");
}

// Runs `kernel` (a call of one __global__ function) over `grid`, one block of `block` threads
// (x × y × z, a multiple of 32 up to 256 in all) at a time, in a scrambled block order.
inline void launch(uint3 grid, uint3 block, std::function<void()> kernel) {
    const long threads = (long)block.x * block.y * block.z;
    if (threads <= 0 || threads > kThreads || threads % 32 != 0) fail("launch: block size not a multiple of 32 up to 256");
    init_stacks();
    g.job = std::move(kernel);
    g.nthreads = (int)threads;
    gridDim = grid;
    blockDim = block;
    threadIdx = {0, 0, 0};
    // Blocks run one at a time, in a scrambled order (i -> (a·i + c) mod total, a coprime to
    // total, different each launch): the GPU promises no order, so a kernel whose result
    // depends on one block having run before another shows it here instead of passing by luck.
    const unsigned long long total = (unsigned long long)grid.x * grid.y * grid.z;
    static unsigned long long launches = 0;
    const unsigned long long c = (++launches * 0x9e3779b97f4a7c15ull) % (total ? total : 1);
    unsigned long long a = (0x2545f4914f6cdd1dull + launches) % (total ? total : 1);
    auto gcd = [](unsigned long long u, unsigned long long v) {
        while (v) {
            const unsigned long long t = u % v;
            u = v;
            v = t;
        }
        return u;
    };
    while (total > 1 && (a == 0 || gcd(a, total) != 1)) a = (a + 1) % total;
    if (total <= 1) a = 1;
    for (unsigned long long i = 0; i < total; ++i) {
        const unsigned long long linear = (unsigned long long)(((unsigned __int128)a * i + c) % total);
        blockIdx = {(unsigned)(linear % grid.x), (unsigned)(linear / grid.x % grid.y),
                    (unsigned)(linear / ((unsigned long long)grid.x * grid.y))};
        g.dir = linear % 2 == 0 ? 1 : -1;
        run_block();
    }
}

// A 1-D block of `threads`.
inline void launch(uint3 grid, std::function<void()> kernel, int threads = kThreads) {
    launch(grid, {(unsigned)threads, 1, 1}, std::move(kernel));
}

// ---- warp collectives ---------------------------------------------------------------------------

enum { kOpMmaTf32 = 1, kOpMmaBf16, kOpLdsm, kOpLdsmTrans, kOpShfl };

// Claims this lane's slot for its next collective `op`; the lane then publishes its operands
// there and calls collective_wait.
inline int collective_begin(int op) {
    const int tid = g.cur;
    const int p = g.parity[tid];
    g.parity[tid] ^= 1;
    g.mma[tid >> 5].op[p][tid & 31] = op;
    return p;
}

// Waits until all 32 lanes have published into slot p; they must all be at the same kind of
// collective (.sync.aligned: a divergent one is undefined on the GPU). Returns true in the lane
// that arrived last.
inline bool collective_wait(int p, int op) {
    const int warp = g.cur >> 5;
    const bool last = wait(g.warp[warp]);
    for (int l = 0; l < 32; ++l)
        if (g.mma[warp].op[p][l] != op) fail("lanes of one warp at different warp collectives (divergent .sync.aligned)");
    return last;
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
    const int tid = g.cur, lane = tid & 31, warp = tid >> 5;
    const int gr = lane >> 2, t = lane & 3;
    WarpMma& w = g.mma[warp];
    const int p = collective_begin(kOpMmaTf32);
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
    collective_wait(p, kOpMmaTf32);
    for (int q = 0; q < 4; ++q) {
        double s = w.C[p][rows[q]][cols[q]];
        for (int k = 0; k < 8; ++k) s += (double)w.A[p][rows[q]][k] * (double)w.B[p][k][cols[q]];
        d[q] = (float)s;
    }
}

// ---- bf16 (mma_bf16.cuh) -------------------------------------------------------------------------

inline float bf16_to_float(unsigned short h) { return __uint_as_float((unsigned)h << 16); }

// f32 -> bf16 bits, round to nearest even (overflow goes to infinity as it must).
inline unsigned short bf16_rn(float v) {
    const unsigned u = __float_as_uint(v);
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// cvt.rn.bf16x2.f32 d, a, b: a converted into the upper half of d, b into the lower (PTX ISA,
// cvt). The harness's inputs hold no NaN, so one here was read from a guard zone or unwritten
// memory.
inline unsigned cvt_rn_bf16x2(float a, float b) {
    if (isnan(a) || isnan(b)) fail("cvt.rn.bf16x2.f32 of a NaN: an out-of-bounds or unwritten read");
    return ((unsigned)bf16_rn(a) << 16) | bf16_rn(b);
}

// Whether every __shared__ variable lies in the emu_shared section: with clang; GCC (before 14)
// leaves the statics of templates out, so an address outside it proves nothing there.
#ifdef __clang__
constexpr bool kSharedBounds = true;
#else
constexpr bool kSharedBounds = false;
#endif

inline bool in_shared(const char* c, size_t len) {
    return !kSharedBounds || !__start_emu_shared || !__stop_emu_shared ||
           (c >= __start_emu_shared && c + len <= __stop_emu_shared);
}

// An ldmatrix row address: 16-byte aligned, in this block's shared memory.
inline void check_shared_row(const void* p) {
    const char* c = (const char*)p;
    if ((uintptr_t)c % 16 != 0) fail("ldmatrix row address not 16-byte aligned");
    if (!in_shared(c, 16)) fail("ldmatrix row address outside shared memory");
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 r, [p]: lanes 8i..8i+7 give the addresses of
// rows 0..7 of 8 × 8 matrix i (16 bytes each). Register i of lane l receives, low half first,
// row l/4, columns 2(l%4), 2(l%4)+1 of matrix i; with .trans the matrix is read transposed:
// rows 2(l%4), 2(l%4)+1 of column l/4. The last lane to arrive reads shared memory for all 32
// (the warp reads it at one moment, before any lane goes on).
inline void ldmatrix_x4(unsigned (&r)[4], const void* p, bool trans) {
    const int tid = g.cur, lane = tid & 31, op = trans ? kOpLdsmTrans : kOpLdsm;
    check_shared_row(p);
    WarpMma& w = g.mma[tid >> 5];
    const int s = collective_begin(op);
    w.addr[s][lane] = (const unsigned char*)p;
    if (collective_wait(s, op)) {
        for (int l = 0; l < 32; ++l)
            for (int i = 0; i < 4; ++i) {
                unsigned short h[2];
                for (int e = 0; e < 2; ++e) {
                    const int row = trans ? 2 * (l & 3) + e : l >> 2, col = trans ? l >> 2 : 2 * (l & 3) + e;
                    memcpy(&h[e], w.addr[s][8 * i + row] + 2 * col, 2);
                }
                w.frag[s][l][i] = (unsigned)h[0] | ((unsigned)h[1] << 16);
            }
    }
    // Fibers switch only at waits, so the last lane gathered before any other lane resumed.
    for (int i = 0; i < 4; ++i) r[i] = w.frag[s][lane][i];
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d, a, b, d over one warp (PTX ISA, "Matrix
// Fragments for mma.m16n8k16 with floating point type"), g = lane / 4, t = lane % 4, each .b32
// register two bf16 with the lower index in the lower half:
//   a0 = A[g][2t..2t+1], a1 = A[g+8][2t..2t+1], a2 = A[g][2t+8..2t+9], a3 = A[g+8][2t+8..2t+9];
//   b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]; d0, d1 = D[g][2t..2t+1], d2, d3 = D[g+8][2t..2t+1].
// bf16 products are exact in f32; the sum is taken in double, at least as good as hardware.
inline void mma_bf16(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    const int tid = g.cur, lane = tid & 31;
    const int gr = lane >> 2, t = lane & 3;
    WarpMma& w = g.mma[tid >> 5];
    const unsigned regs[6] = {a[0], a[1], a[2], a[3], b0, b1};
    for (unsigned v : regs)
        for (unsigned short h : {(unsigned short)(v & 0xffff), (unsigned short)(v >> 16)})
            if (isnan(bf16_to_float(h))) fail("mma bf16 operand is NaN: an out-of-bounds or unwritten read");
    const int p = collective_begin(kOpMmaBf16);
    for (int e = 0; e < 2; ++e) {
        const int k = 2 * t + e, sh = 16 * e;
        w.A16[p][gr][k] = bf16_to_float((unsigned short)(a[0] >> sh));
        w.A16[p][gr + 8][k] = bf16_to_float((unsigned short)(a[1] >> sh));
        w.A16[p][gr][k + 8] = bf16_to_float((unsigned short)(a[2] >> sh));
        w.A16[p][gr + 8][k + 8] = bf16_to_float((unsigned short)(a[3] >> sh));
        w.B16[p][k][gr] = bf16_to_float((unsigned short)(b0 >> sh));
        w.B16[p][k + 8][gr] = bf16_to_float((unsigned short)(b1 >> sh));
    }
    const int rows[4] = {gr, gr, gr + 8, gr + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int q = 0; q < 4; ++q) w.C16[p][rows[q]][cols[q]] = d[q];
    if (lane == 0) ++g.mma_calls;
    collective_wait(p, kOpMmaBf16);
    for (int q = 0; q < 4; ++q) {
        double s = w.C16[p][rows[q]][cols[q]];
        for (int k = 0; k < 16; ++k) s += (double)w.A16[p][rows[q]][k] * (double)w.B16[p][k][cols[q]];
        d[q] = (float)s;
    }
}

// __cvta_generic_to_shared: the offset inside this block's shared memory (which must hold p);
// the address itself where the section's bounds prove nothing.
inline size_t cvta_shared(const void* p) {
    const char* c = (const char*)p;
    if (!in_shared(c, 1)) fail("__cvta_generic_to_shared of a non-shared address");
    if (!kSharedBounds || !__start_emu_shared) return (size_t)(uintptr_t)c;
    return (size_t)(c - __start_emu_shared);
}

}  // namespace emu

inline void __syncthreads() { emu::wait(emu::g.block); }

inline size_t __cvta_generic_to_shared(const void* p) { return emu::cvta_shared(p); }

// __shfl_xor_sync(mask, v, m): lane l gets v of lane l ^ m (width 32); a warp collective, so
// every lane publishes before any reads.
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    if (mask != 0xffffffffu) emu::fail("__shfl_xor_sync with a partial mask is not emulated");
    if (lane_mask < 0 || lane_mask > 31) emu::fail("__shfl_xor_sync lane mask outside 0..31");
    const int tid = emu::g.cur, lane = tid & 31;
    emu::WarpMma& w = emu::g.mma[tid >> 5];
    const int p = emu::collective_begin(emu::kOpShfl);
    w.val[p][lane] = 0;
    memcpy(&w.val[p][lane], &v, sizeof(T));
    emu::collective_wait(p, emu::kOpShfl);
    T r;
    memcpy(&r, &w.val[p][lane ^ lane_mask], sizeof(T));
    return r;
}
