// Batched SGEMM: C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b], op = optional transpose, with leading
// dimensions and batch strides (0 broadcasts a rank-2 operand). Shared-memory tiles of
// BM × BK and BK × BN multiplied by a tile-product policy (common.cuh): `_f32`, a 16 × 16 thread
// grid, each thread a (BM/16) × (BN/16) register tile; `_tf32`, tensor cores (mma.sync m16n8k8,
// operands rounded to tf32 when staged, f32 accumulation), 8 warps of (BM/2) × (BN/4).
// CPU reference: src/backend/cpu/matmul.rs. Also the GEMMs of corr_warp's backward and of its
// plain reference variant (see corr_warp.cu).
//
// Launch: block MATMUL_THREADS (256) threads, 1-D; grid (ceil(n/BN), ceil(m/BM), batch), every
// axis looping when there are more tiles than blocks. `matmul_tile128_f32`: BM = BN = 128 (big
// products); `matmul_tile64_f32`: 64 × 64 (small m or n, more blocks). Static shared memory:
// 8 KiB (128) / 4 KiB (64). `matmul_tile{128,64}_tf32`: the same tiles and grid, BK 32 / 16,
// 34 / 9 KiB; the launcher runs them only when the precision setting asks for tf32.
// __launch_bounds__(256, 1): with the block size alone, ptxas 13 caps registers and spills.
#include "common.cuh"

#define MATMUL_THREADS 256
#define MATMUL_BK 8

typedef SimtF32Tile<128, 128, MATMUL_BK> MatmulF32x128;
typedef SimtF32Tile<64, 64, MATMUL_BK> MatmulF32x64;
typedef MmaTf32Tile<128, 128, 32> MatmulTf32x128;
typedef MmaTf32Tile<64, 64, 16> MatmulTf32x64;

// Mirrors `MatmulArgs` (src/backend/cuda/params.rs).
struct MatmulArgs {
    i64 m, n, k;
    i64 batch;
    i64 lda, ldb, ldc;
    i64 stride_a, stride_b, stride_c;
    int trans_a, trans_b;
    float alpha, beta;
};

// As[kk][r] = op(A)[m0 + r][k0 + kk], zero outside. Stored A is [m, k] (lda) or, transposed,
// [k, m] (lda); the thread mapping follows the contiguous direction so reads coalesce.
template <class T>
__device__ __forceinline__ void load_a(const MatmulArgs& p, const float* __restrict__ A, i64 m0, i64 k0,
                                       float (*As)[T::LDA]) {
    constexpr int BM = T::BM, BK = T::BK;
    constexpr int PER = BM * BK / MATMUL_THREADS;
#pragma unroll T::LOAD_UNROLL
    for (int q = 0; q < PER; ++q) {
        const int e = threadIdx.x + MATMUL_THREADS * q;
        int r, kk;
        if (p.trans_a) {
            kk = e / BM;
            r = e % BM;
        } else {
            r = e / BK;
            kk = e % BK;
        }
        const i64 gm = m0 + r, gk = k0 + kk;
        float v = 0.f;
        if (gm < p.m && gk < p.k) v = p.trans_a ? A[gk * p.lda + gm] : A[gm * p.lda + gk];
        As[kk][r] = T::prep(v);
    }
}

// Bs[kk][c] = op(B)[k0 + kk][n0 + c], zero outside. Stored B is [k, n] or, transposed, [n, k].
template <class T>
__device__ __forceinline__ void load_b(const MatmulArgs& p, const float* __restrict__ B, i64 k0, i64 n0,
                                       float (*Bs)[T::LDB]) {
    constexpr int BN = T::BN, BK = T::BK;
    constexpr int PER = BN * BK / MATMUL_THREADS;
#pragma unroll T::LOAD_UNROLL
    for (int q = 0; q < PER; ++q) {
        const int e = threadIdx.x + MATMUL_THREADS * q;
        int c, kk;
        if (p.trans_b) {
            c = e / BK;
            kk = e % BK;
        } else {
            kk = e / BN;
            c = e % BN;
        }
        const i64 gk = k0 + kk, gn = n0 + c;
        float v = 0.f;
        if (gk < p.k && gn < p.n) v = p.trans_b ? B[gn * p.ldb + gk] : B[gk * p.ldb + gn];
        Bs[kk][c] = T::prep(v);
    }
}

template <class T>
__device__ __forceinline__ void matmul_tiles(const MatmulArgs& p, const float* __restrict__ A,
                                             const float* __restrict__ B, float* __restrict__ C) {
    constexpr int BM = T::BM, BN = T::BN;
    __shared__ float As[T::BK][T::LDA];
    __shared__ float Bs[T::BK][T::LDB];
    const i64 tiles_m = (p.m + BM - 1) / BM, tiles_n = (p.n + BN - 1) / BN;
    for (i64 b = blockIdx.z; b < p.batch; b += gridDim.z) {
        const float* Ab = A + b * p.stride_a;
        const float* Bb = B + b * p.stride_b;
        float* Cb = C + b * p.stride_c;
        for (i64 tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
            for (i64 tn = blockIdx.x; tn < tiles_n; tn += gridDim.x) {
                const i64 m0 = tm * BM, n0 = tn * BN;
                T tile;
                tile.zero();
                for (i64 k0 = 0; k0 < p.k; k0 += T::BK) {
                    load_a<T>(p, Ab, m0, k0, As);
                    load_b<T>(p, Bb, k0, n0, Bs);
                    __syncthreads();
                    tile.product(As, Bs);
                    __syncthreads();
                }
                tile.template store<false>(tile_left(p.m - m0, BM), tile_left(p.n - n0, BN), [&](int r, int cl, float acc) {
                    float* c = Cb + (m0 + r) * p.ldc + n0 + cl;
                    const float v = p.alpha * acc;
                    *c = p.beta == 0.f ? v : v + p.beta * *c;
                });
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(MATMUL_THREADS, 1)
    matmul_tile128_f32(const MatmulArgs p, const float* __restrict__ A, const float* __restrict__ B, float* C) {
    matmul_tiles<MatmulF32x128>(p, A, B, C);
}

extern "C" __global__ void __launch_bounds__(MATMUL_THREADS, 1)
    matmul_tile64_f32(const MatmulArgs p, const float* __restrict__ A, const float* __restrict__ B, float* C) {
    matmul_tiles<MatmulF32x64>(p, A, B, C);
}

extern "C" __global__ void __launch_bounds__(MATMUL_THREADS, 1)
    matmul_tile128_tf32(const MatmulArgs p, const float* __restrict__ A, const float* __restrict__ B, float* C) {
    matmul_tiles<MatmulTf32x128>(p, A, B, C);
}

extern "C" __global__ void __launch_bounds__(MATMUL_THREADS, 1)
    matmul_tile64_tf32(const MatmulArgs p, const float* __restrict__ A, const float* __restrict__ B, float* C) {
    matmul_tiles<MatmulTf32x64>(p, A, B, C);
}
