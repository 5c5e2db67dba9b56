// Shared device helpers of every kernel file. No toolkit header is included anywhere: NVRTC
// declares the CUDA built-ins (math functions, intrinsics, warp shuffles) itself, so the
// kernels compile with nothing but libnvrtc and its builtins library.
//
// Conventions of all kernels:
// - f32 storage, contiguous row-major unless a parameter says otherwise;
// - sizes and flat indices are 64-bit (`i64`); only values bounded by a small dimension (a
//   kernel size, a tile index inside a block) are `int`;
// - parameters travel by value in one struct per family, mirrored field by field by a
//   `#[repr(C)]` struct in src/backend/cuda/params.rs (the compile check asserts every size and
//   field offset against the Rust side);
// - grid-stride loops or explicit bounds checks everywhere, so any grid is correct and a
//   launcher only picks one for speed.
#pragma once

typedef long long i64;
typedef unsigned long long u64;

// Largest tensor rank the strided kernels (layout, binary broadcast, reduce) take.
#define MAX_RANK 8
#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float f32_inf() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float f32_nan() { return __int_as_float(0x7fffffff); }
__device__ __forceinline__ bool f32_isnan(float v) { return v != v; }

// Flat index of this thread and the grid's stride, 64-bit.
__device__ __forceinline__ i64 grid_index() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 grid_stride() { return (i64)blockDim.x * gridDim.x; }

#define GRID_LOOP(i, n) for (i64 i = grid_index(); i < (n); i += grid_stride())

// ---- warp and block reductions -----------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_f64(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

// fmaxf ignores NaN, like Rust's f32::max that the CPU softmax uses.
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Sum over the first `width` lanes of each aligned group of `width` lanes (width a power of 2).
__device__ __forceinline__ float group_sum(float v, int width) {
    for (int o = width >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float group_max(float v, int width) {
    for (int o = width >> 1; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Linear thread index and thread count of a (possibly 2-D) block.
__device__ __forceinline__ int block_tid() { return threadIdx.y * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int block_threads() { return blockDim.x * blockDim.y; }

// Block-wide sum; every thread gets the result. `sh` holds 32 values. Safe to call repeatedly
// with the same `sh` (the leading barrier keeps a previous result alive until all have read it).
__device__ __forceinline__ float block_sum(float v, float* sh) {
    const int tid = block_tid(), lane = tid & 31, wid = tid >> 5;
    const int nw = (block_threads() + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        v = lane < nw ? sh[lane] : 0.f;
        v = warp_sum(v);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

__device__ __forceinline__ double block_sum_f64(double v, double* sh) {
    const int tid = block_tid(), lane = tid & 31, wid = tid >> 5;
    const int nw = (block_threads() + 31) >> 5;
    v = warp_sum_f64(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        v = lane < nw ? sh[lane] : 0.0;
        v = warp_sum_f64(v);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

// ---- Welford mean / variance ------------------------------------------------------------------

// Running count, mean and sum of squared deviations. The count is a float: exact up to 2^24
// values per statistic, far above any normalised row of the model.
struct Welford {
    float n, mean, m2;
};

__device__ __forceinline__ Welford welford_empty() {
    Welford w;
    w.n = 0.f;
    w.mean = 0.f;
    w.m2 = 0.f;
    return w;
}

__device__ __forceinline__ void welford_push(Welford& a, float x) {
    a.n += 1.f;
    const float d = x - a.mean;
    a.mean += d / a.n;
    a.m2 += d * (x - a.mean);
}

// Chan et al.'s pairwise combination.
__device__ __forceinline__ Welford welford_merge(Welford a, Welford b) {
    if (b.n == 0.f) return a;
    if (a.n == 0.f) return b;
    Welford r;
    r.n = a.n + b.n;
    const float d = b.mean - a.mean, t = b.n / r.n;
    r.mean = a.mean + d * t;
    r.m2 = a.m2 + b.m2 + d * d * a.n * t;
    return r;
}

__device__ __forceinline__ Welford welford_shfl_xor(Welford a, int o) {
    Welford b;
    b.n = __shfl_xor_sync(FULL_MASK, a.n, o);
    b.mean = __shfl_xor_sync(FULL_MASK, a.mean, o);
    b.m2 = __shfl_xor_sync(FULL_MASK, a.m2, o);
    return b;
}

__device__ __forceinline__ Welford warp_welford(Welford a) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) a = welford_merge(a, welford_shfl_xor(a, o));
    return a;
}

// Block-wide Welford merge; every thread gets the result. `sh` holds 3 × 32 floats.
__device__ __forceinline__ Welford block_welford(Welford a, float* sh) {
    const int tid = block_tid(), lane = tid & 31, wid = tid >> 5;
    const int nw = (block_threads() + 31) >> 5;
    a = warp_welford(a);
    __syncthreads();
    if (lane == 0) {
        sh[wid] = a.n;
        sh[32 + wid] = a.mean;
        sh[64 + wid] = a.m2;
    }
    __syncthreads();
    if (wid == 0) {
        Welford b = welford_empty();
        if (lane < nw) {
            b.n = sh[lane];
            b.mean = sh[32 + lane];
            b.m2 = sh[64 + lane];
        }
        b = warp_welford(b);
        if (lane == 0) {
            sh[0] = b.n;
            sh[32] = b.mean;
            sh[64] = b.m2;
        }
    }
    __syncthreads();
    Welford r;
    r.n = sh[0];
    r.mean = sh[32];
    r.m2 = sh[64];
    return r;
}

// ---- online softmax state ---------------------------------------------------------------------

// Running maximum and sum of exp(x − max) of a stream of scores.
struct Online {
    float m, s;
};

__device__ __forceinline__ Online online_empty() {
    Online o;
    o.m = -f32_inf();
    o.s = 0.f;
    return o;
}

__device__ __forceinline__ void online_push(Online& a, float v) {
    if (v > a.m) {
        a.s = a.s * expf(a.m - v) + 1.f;
        a.m = v;
    } else if (v != -f32_inf()) {
        // −inf scores add nothing (an all −inf row keeps s = 0 and comes out NaN, as on the
        // CPU); a NaN score makes the sum NaN, as on the CPU.
        a.s += expf(v - a.m);
    }
}

// An empty side (s == 0) contributes nothing, so threads that saw no element are harmless.
__device__ __forceinline__ Online online_merge(Online a, Online b) {
    if (b.s == 0.f) return a;
    if (a.s == 0.f) return b;
    Online r;
    r.m = fmaxf(a.m, b.m);
    r.s = a.s * expf(a.m - r.m) + b.s * expf(b.m - r.m);
    return r;
}

__device__ __forceinline__ Online warp_online(Online a) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        Online b;
        b.m = __shfl_xor_sync(FULL_MASK, a.m, o);
        b.s = __shfl_xor_sync(FULL_MASK, a.s, o);
        a = online_merge(a, b);
    }
    return a;
}

// Block-wide merge; every thread gets the result. `sh` holds 2 × 32 floats.
__device__ __forceinline__ Online block_online(Online a, float* sh) {
    const int tid = block_tid(), lane = tid & 31, wid = tid >> 5;
    const int nw = (block_threads() + 31) >> 5;
    a = warp_online(a);
    __syncthreads();
    if (lane == 0) {
        sh[wid] = a.m;
        sh[32 + wid] = a.s;
    }
    __syncthreads();
    if (wid == 0) {
        Online b = online_empty();
        if (lane < nw) {
            b.m = sh[lane];
            b.s = sh[32 + lane];
        }
        b = warp_online(b);
        if (lane == 0) {
            sh[0] = b.m;
            sh[32] = b.s;
        }
    }
    __syncthreads();
    Online r;
    r.m = sh[0];
    r.s = sh[32];
    return r;
}

// ---- padding ----------------------------------------------------------------------------------

// Source index of padded coordinate `i` along an axis of `n` values, or −1 for a zero. Reflect
// mirrors without repeating the edge (PyTorch `reflect`); launchers guarantee pad < n.
__device__ __forceinline__ int pad_source(int i, int n, bool reflect) {
    if (i >= 0 && i < n) return i;
    if (!reflect) return -1;
    return i < 0 ? -i : 2 * (n - 1) - i;
}

// Marks an unused slot of pad_preimages.
#define PAD_NONE (-(1 << 30))

// The padded coordinates that read source index `i` (the adjoint of pad_source), in three fixed
// slots (PAD_NONE when unused) so callers index them with constants and keep them in registers.
// Padded coordinates lie in [−pad, n − 1 + pad].
__device__ __forceinline__ void pad_preimages(int i, int n, int pad, bool reflect, int out[3]) {
    const int j = 2 * (n - 1) - i;
    out[0] = i;
    out[1] = (reflect && i >= 1 && i <= pad) ? -i : PAD_NONE;
    out[2] = (reflect && i <= n - 2 && j <= n - 1 + pad) ? j : PAD_NONE;
}

// ---- register-tiled GEMM step -----------------------------------------------------------------

// acc[i][j] += Σ_k As[k][row0 + i·16] · Bs[k][col0 + j·16] over one shared-memory tile, with a
// 16 × 16 thread grid (ty, tx) owning rows ty + 16i and columns tx + 16j: within a warp the A
// reads are broadcasts and the B reads hit 16 consecutive banks.
template <int BK, int BM, int BN, int TM, int TN>
__device__ __forceinline__ void tile_fma(const float (*As)[BM], const float (*Bs)[BN], int ty, int tx,
                                         float (&acc)[TM][TN]) {
#pragma unroll
    for (int k = 0; k < BK; ++k) {
        float a[TM], b[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < TN; ++j) b[j] = Bs[k][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
}

// ---- tile-product policies of the implicit-GEMM / GEMM kernels --------------------------------
//
// The conv and matmul tile routines are templates on one of these: the policy fixes the block
// tile (BM × BN, BK deep), the shared-memory row pitch (LDA / LDB: padding against bank
// conflicts), what the loaders store (prep), how far their gather loops unroll (LOAD_UNROLL),
// how a block multiplies one staged tile (product) and which output elements each thread owns:
// store<COLS_OUTER>(rows, cols, f) calls f(row, col, value) for each owned element with
// row < rows and col < cols (row, col local to the block tile; rows / cols: what is left of the
// output past the tile's origin, clamped to the tile by tile_left), looping over columns
// outside when COLS_OUTER (callers that decode a column once per loop). Both take a 256-thread
// 1-D block.

// min(left, tile) as an int: the rows / columns of an output tile that exist.
__device__ __forceinline__ int tile_left(i64 left, int tile) { return left < tile ? (int)left : tile; }

// f32 SIMT: a 16 × 16 thread grid, thread (ty, tx) owning rows ty + 16i and columns tx + 16j.
template <int BM_, int BN_, int BK_>
struct SimtF32Tile {
    static constexpr int BM = BM_, BN = BN_, BK = BK_, LDA = BM_, LDB = BN_;
    static constexpr int TM = BM / 16, TN = BN / 16;
    static constexpr int LOAD_UNROLL = 1;
    float acc[TM][TN];

    __device__ __forceinline__ static float prep(float v) { return v; }

    __device__ __forceinline__ void zero() {
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;
    }

    __device__ __forceinline__ void product(const float (*As)[LDA], const float (*Bs)[LDB]) {
        tile_fma<BK, BM, BN, TM, TN>(As, Bs, threadIdx.x / 16, threadIdx.x % 16, acc);
    }

    template <bool COLS_OUTER, class F>
    __device__ __forceinline__ void store(int rows, int cols, F&& f) const {
        const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
        if (COLS_OUTER) {
#pragma unroll
            for (int j = 0; j < TN; ++j) {
                if (tx + 16 * j >= cols) continue;
#pragma unroll
                for (int i = 0; i < TM; ++i)
                    if (ty + 16 * i < rows) f(ty + 16 * i, tx + 16 * j, acc[i][j]);
            }
        } else {
#pragma unroll
            for (int i = 0; i < TM; ++i) {
                if (ty + 16 * i >= rows) continue;
#pragma unroll
                for (int j = 0; j < TN; ++j)
                    if (tx + 16 * j < cols) f(ty + 16 * i, tx + 16 * j, acc[i][j]);
            }
        }
    }
};

// An f32 value rounded to tf32 (10 mantissa bits, nearest, ties away from zero), still an f32
// bit pattern, so the tensor-core kernels round each operand once, when it is staged.
__device__ __forceinline__ float tf32_round(float v) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
    return __uint_as_float(r);
}

// d += a·b on the tensor cores, a 16 × 8 (row) times 8 × 8 (col), f32 accumulation (sm_80+).
// Fragments (PTX ISA, mma.m16n8k8 .tf32), with g = lane / 4 and t = lane % 4:
//   a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4];
//   b0 = B[t][g], b1 = B[t+4][g];
//   d0 = D[g][2t], d1 = D[g][2t+1], d2 = D[g+8][2t], d3 = D[g+8][2t+1].
__device__ __forceinline__ void mma_tf32_m16n8k8(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// tf32 tensor cores: 8 warps in a 2 (rows) × 4 (columns) grid, each owning a (BM/2) × (BN/4)
// warp tile of (BM/32) × (BN/32) m16n8 accumulators. Rows of the staged tiles are padded by 8
// floats, so the fragment reads (banks 8t + g) are conflict-free.
template <int BM_, int BN_, int BK_>
struct MmaTf32Tile {
    static constexpr int BM = BM_, BN = BN_, BK = BK_, LDA = BM_ + 8, LDB = BN_ + 8;
    static constexpr int WM = BM / 2, WN = BN / 4, MI = WM / 16, NI = WN / 8;
    // The deeper k-step gives each thread 8-16 gathered loads per step: unrolled by 4 so they
    // overlap instead of waiting one by one.
    static constexpr int LOAD_UNROLL = 4;
    static_assert(BK % 8 == 0 && WM % 16 == 0 && WN % 8 == 0, "tile shape");
    float acc[MI][NI][4];

    __device__ __forceinline__ static float prep(float v) { return tf32_round(v); }

    __device__ __forceinline__ void zero() {
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
            for (int j = 0; j < NI; ++j)
#pragma unroll
                for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;
    }

    __device__ __forceinline__ void product(const float (*As)[LDA], const float (*Bs)[LDB]) {
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        const int g = lane >> 2, t = lane & 3;
        const int r0 = (warp >> 2) * WM + g, c0 = (warp & 3) * WN + g;
#pragma unroll
        for (int ks = 0; ks < BK; ks += 8) {
            unsigned af[MI][4], bf[NI][2];
#pragma unroll
            for (int i = 0; i < MI; ++i) {
                const int r = r0 + 16 * i;
                af[i][0] = __float_as_uint(As[ks + t][r]);
                af[i][1] = __float_as_uint(As[ks + t][r + 8]);
                af[i][2] = __float_as_uint(As[ks + t + 4][r]);
                af[i][3] = __float_as_uint(As[ks + t + 4][r + 8]);
            }
#pragma unroll
            for (int j = 0; j < NI; ++j) {
                bf[j][0] = __float_as_uint(Bs[ks + t][c0 + 8 * j]);
                bf[j][1] = __float_as_uint(Bs[ks + t + 4][c0 + 8 * j]);
            }
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int j = 0; j < NI; ++j) mma_tf32_m16n8k8(acc[i][j], af[i], bf[j]);
        }
    }

    // Element q of accumulator (i, j) is D[g + 8(q/2)][2t + q%2] of that m16n8 tile.
    template <bool COLS_OUTER, class F>
    __device__ __forceinline__ void store(int rows, int cols, F&& f) const {
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        const int g = lane >> 2, t = lane & 3;
        const int r0 = (warp >> 2) * WM + g, c0 = (warp & 3) * WN + 2 * t;
        if (COLS_OUTER) {
#pragma unroll
            for (int j = 0; j < NI; ++j)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int c = c0 + 8 * j + h;
                    if (c >= cols) continue;
#pragma unroll
                    for (int i = 0; i < MI; ++i)
#pragma unroll
                        for (int v = 0; v < 2; ++v) {
                            const int r = r0 + 16 * i + 8 * v;
                            if (r < rows) f(r, c, acc[i][j][2 * v + h]);
                        }
                }
        } else {
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int v = 0; v < 2; ++v) {
                    const int r = r0 + 16 * i + 8 * v;
                    if (r >= rows) continue;
#pragma unroll
                    for (int j = 0; j < NI; ++j)
#pragma unroll
                        for (int h = 0; h < 2; ++h) {
                            const int c = c0 + 8 * j + h;
                            if (c < cols) f(r, c, acc[i][j][2 * v + h]);
                        }
                }
        }
    }
};
