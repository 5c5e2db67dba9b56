// Batched SGEMM: C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b], op = optional transpose, with leading
// dimensions and batch strides (0 broadcasts a rank-2 operand). Shared-memory tiles of
// BM × BK and BK × BN, a 16 × 16 thread grid, each thread a (BM/16) × (BN/16) register tile.
// CPU reference: src/backend/cpu/matmul.rs. Also the GEMMs of corr_warp's backward and of its
// plain reference variant (see corr_warp.cu).
//
// Launch: block MATMUL_THREADS (256) threads, 1-D; grid (ceil(n/BN), ceil(m/BM), batch), every
// axis looping when there are more tiles than blocks. `matmul_tile128_f32`: BM = BN = 128 (big
// products); `matmul_tile64_f32`: 64 × 64 (small m or n, more blocks). Static shared memory:
// 8 KiB (128) / 4 KiB (64).
#include "common.cuh"

#define MATMUL_THREADS 256
#define MATMUL_BK 8

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
template <int BM>
__device__ __forceinline__ void load_a(const MatmulArgs& p, const float* __restrict__ A, i64 m0, i64 k0,
                                       float (*As)[BM]) {
    constexpr int PER = BM * MATMUL_BK / MATMUL_THREADS;
#pragma unroll 1
    for (int q = 0; q < PER; ++q) {
        const int e = threadIdx.x + MATMUL_THREADS * q;
        int r, kk;
        if (p.trans_a) {
            kk = e / BM;
            r = e % BM;
        } else {
            r = e / MATMUL_BK;
            kk = e % MATMUL_BK;
        }
        const i64 gm = m0 + r, gk = k0 + kk;
        float v = 0.f;
        if (gm < p.m && gk < p.k) v = p.trans_a ? A[gk * p.lda + gm] : A[gm * p.lda + gk];
        As[kk][r] = v;
    }
}

// Bs[kk][c] = op(B)[k0 + kk][n0 + c], zero outside. Stored B is [k, n] or, transposed, [n, k].
template <int BN>
__device__ __forceinline__ void load_b(const MatmulArgs& p, const float* __restrict__ B, i64 k0, i64 n0,
                                       float (*Bs)[BN]) {
    constexpr int PER = BN * MATMUL_BK / MATMUL_THREADS;
#pragma unroll 1
    for (int q = 0; q < PER; ++q) {
        const int e = threadIdx.x + MATMUL_THREADS * q;
        int c, kk;
        if (p.trans_b) {
            c = e / MATMUL_BK;
            kk = e % MATMUL_BK;
        } else {
            kk = e / BN;
            c = e % BN;
        }
        const i64 gk = k0 + kk, gn = n0 + c;
        float v = 0.f;
        if (gk < p.k && gn < p.n) v = p.trans_b ? B[gn * p.ldb + gk] : B[gk * p.ldb + gn];
        Bs[kk][c] = v;
    }
}

template <int BM, int BN>
__device__ __forceinline__ void matmul_tiles(const MatmulArgs& p, const float* __restrict__ A,
                                             const float* __restrict__ B, float* __restrict__ C) {
    constexpr int TM = BM / 16, TN = BN / 16;
    __shared__ float As[MATMUL_BK][BM];
    __shared__ float Bs[MATMUL_BK][BN];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const i64 tiles_m = (p.m + BM - 1) / BM, tiles_n = (p.n + BN - 1) / BN;
    for (i64 b = blockIdx.z; b < p.batch; b += gridDim.z) {
        const float* Ab = A + b * p.stride_a;
        const float* Bb = B + b * p.stride_b;
        float* Cb = C + b * p.stride_c;
        for (i64 tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
            for (i64 tn = blockIdx.x; tn < tiles_n; tn += gridDim.x) {
                const i64 m0 = tm * BM, n0 = tn * BN;
                float acc[TM][TN];
#pragma unroll
                for (int i = 0; i < TM; ++i)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;
                for (i64 k0 = 0; k0 < p.k; k0 += MATMUL_BK) {
                    load_a<BM>(p, Ab, m0, k0, As);
                    load_b<BN>(p, Bb, k0, n0, Bs);
                    __syncthreads();
                    tile_fma<MATMUL_BK, BM, BN, TM, TN>(As, Bs, ty, tx, acc);
                    __syncthreads();
                }
#pragma unroll
                for (int i = 0; i < TM; ++i) {
                    const i64 gm = m0 + ty + 16 * i;
                    if (gm >= p.m) continue;
#pragma unroll
                    for (int j = 0; j < TN; ++j) {
                        const i64 gn = n0 + tx + 16 * j;
                        if (gn >= p.n) continue;
                        float* c = Cb + gm * p.ldc + gn;
                        const float v = p.alpha * acc[i][j];
                        *c = p.beta == 0.f ? v : v + p.beta * *c;
                    }
                }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(MATMUL_THREADS)
    matmul_tile128_f32(const MatmulArgs p, const float* __restrict__ A, const float* __restrict__ B, float* C) {
    matmul_tiles<128, 128>(p, A, B, C);
}

extern "C" __global__ void __launch_bounds__(MATMUL_THREADS)
    matmul_tile64_f32(const MatmulArgs p, const float* __restrict__ A, const float* __restrict__ B, float* C) {
    matmul_tiles<64, 64>(p, A, B, C);
}
