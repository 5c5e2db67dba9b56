// conv2d over NCHW with zero or reflect padding, stride, dilation and groups: forward, input
// gradient, weight gradient, bias gradient. CPU reference: src/backend/cpu/conv.rs.
//
// The fast path is an implicit GEMM per group: shared-memory tiles of the weights and of the
// im2col matrix gathered on the fly (never stored), multiplied by a tile-product policy
// (common.cuh): `_f32`, a 16 × 16 thread grid with (BM/16) × (BN/16) register tiles (tile_fma);
// `_tf32`, tensor cores (mma.sync m16n8k8, operands rounded to tf32 once when staged, f32
// accumulation), 8 warps of (BM/2) × (BN/4). The loaders are the same code for both. Three GEMM
// views:
//   forward          y[co, p]   = Σ_kk  w[co, kk] · col[kk, p]      kk = (ci, ki, kj), p = (n, oy, ox)
//   backward_input   dx[ci, q]  = Σ_kk' w[co, ci, ki, kj] · dycol[kk', q]   kk' = (co, ki, kj), q = (n, iy, ix)
//   backward_weight  dw[co, kk] = Σ_p   dy[co, p] · col[kk, p]       (split over p, partials)
// The input gradient gathers instead of scattering: each input pixel sums the output positions
// that read it, through the padded coordinates that map onto it (one for zero padding, up to
// three per axis for reflect padding: pad_preimages in common.cuh), so there are no atomics and the result is
// deterministic.
//
// Launch of the igemm kernels: block CONV_THREADS (256), 1-D. Grid (tiles of the GEMM's columns,
// tiles of its rows, groups) — for backward_weight (tiles of kk, tiles of co, groups · splits) —
// every axis looping when there are more tiles than blocks. `*_igemm128_*`: BM = BN = 128;
// `*_igemm64_*`: 64 × 64 (few output channels per group). Static shared memory: f32 ≤ 8.3 KiB;
// tf32 ≤ 35 KiB (BK 32 / 16, rows padded by 8 floats). The launcher runs tf32 only when the
// precision setting asks for it and the GEMM is not tiny (src/backend/cuda/launch/conv.rs).
// The weight gradient writes `splits` partials [splits, c_out, K] (K = c_in/groups·kh·kw),
// which the launcher sums with reduce_thread_f32; with splits = 1 it writes dw directly.
//
// The direct kernels (one thread per output / input element, one block per weight element) are
// the plain reference variant of the igemm ladder and the fast path for depthwise convs
// (c_in/groups = 1), where a GEMM tile would be mostly empty. Grid: 1-D, any size; block 256.
//
// The igemm kernels declare __launch_bounds__(256, 1): with the block size alone, ptxas 13 caps
// their registers for occupancy and spills.
#include "common.cuh"

#define CONV_THREADS 256
#define CONV_BK 8

// The tile products (common.cuh): f32 SIMT with BK = CONV_BK, tf32 mma with a deeper k-step.
typedef SimtF32Tile<128, 128, CONV_BK> ConvF32x128;
typedef SimtF32Tile<64, 64, CONV_BK> ConvF32x64;
typedef MmaTf32Tile<128, 128, 32> ConvTf32x128;
typedef MmaTf32Tile<64, 64, 16> ConvTf32x64;

// Mirrors `ConvArgs` (src/backend/cuda/params.rs).
struct ConvArgs {
    i64 n, c_in, h, w, c_out, oh, ow;
    i64 split_len;
    int kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    int groups, reflect, has_bias, splits;
};

// Sizes derived from the args.
struct ConvDims {
    i64 cg, mg;  // input / output channels per group
    i64 hw, ohw;
    i64 khkw, k;  // kernel taps, im2col rows per group (cg · kh · kw)
};

__device__ __forceinline__ ConvDims conv_dims(const ConvArgs& a) {
    ConvDims d;
    d.cg = a.c_in / a.groups;
    d.mg = a.c_out / a.groups;
    d.hw = a.h * a.w;
    d.ohw = a.oh * a.ow;
    d.khkw = (i64)a.kh * a.kw;
    d.k = d.cg * d.khkw;
    return d;
}

// ---- forward ----------------------------------------------------------------------------------

// Per im2col row kk of the current k-step: input-plane offset (−1: past K), ki·dil_h, kj·dil_w.
template <int BK>
struct RowTab {
    i64 off[BK];
    int dy[BK], dx[BK];
};

template <int BK>
__device__ __forceinline__ void fill_rowtab(const ConvArgs& a, const ConvDims& d, i64 k0, i64 plane, RowTab<BK>& t) {
    if (threadIdx.x < BK) {
        const i64 kk = k0 + threadIdx.x;
        if (kk < d.k) {
            const i64 ci = kk / d.khkw;
            const int rem = (int)(kk - ci * d.khkw);
            const int ki = rem / a.kw, kj = rem - ki * a.kw;
            t.off[threadIdx.x] = ci * plane;
            t.dy[threadIdx.x] = ki * a.dil_h;
            t.dx[threadIdx.x] = kj * a.dil_w;
        } else {
            t.off[threadIdx.x] = -1;
        }
    }
}

template <class T>
__device__ void conv_forward_tiles(const ConvArgs& a, const float* __restrict__ x, const float* __restrict__ w,
                                   const float* __restrict__ bias, float* __restrict__ y) {
    constexpr int BM = T::BM, BN = T::BN, BK = T::BK;
    constexpr int PER_A = BM * BK / CONV_THREADS, PER_B = BN * BK / CONV_THREADS;
    __shared__ float As[BK][T::LDA];
    __shared__ float Bs[BK][T::LDB];
    __shared__ RowTab<BK> tab;
    const ConvDims d = conv_dims(a);
    const i64 P = a.n * d.ohw;
    const i64 tiles_m = (d.mg + BM - 1) / BM, tiles_p = (P + BN - 1) / BN;
    const bool reflect = a.reflect != 0;
    for (i64 g = blockIdx.z; g < a.groups; g += gridDim.z) {
        const float* wg = w + g * d.mg * d.k;
        for (i64 tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
            for (i64 tp = blockIdx.x; tp < tiles_p; tp += gridDim.x) {
                const i64 m0 = tm * BM, p0 = tp * BN;
                // This thread's im2col column (fixed for the whole tile: BN divides the block).
                const int bc = threadIdx.x % BN;
                const i64 p = p0 + bc;
                const bool pvalid = p < P;
                const i64 nb = pvalid ? p / d.ohw : 0, pix = pvalid ? p - nb * d.ohw : 0;
                const int oy = (int)(pix / a.ow), ox = (int)(pix - (i64)oy * a.ow);
                const int iy0 = oy * a.stride_h - a.pad_h, ix0 = ox * a.stride_w - a.pad_w;
                const float* xb = x + (nb * a.c_in + g * d.cg) * d.hw;
                T tile;
                tile.zero();
                for (i64 k0 = 0; k0 < d.k; k0 += BK) {
                    fill_rowtab<BK>(a, d, k0, d.hw, tab);
                    __syncthreads();
#pragma unroll
                    for (int q = 0; q < PER_A; ++q) {
                        const int e = threadIdx.x + CONV_THREADS * q, r = e / BK, kk = e % BK;
                        const i64 co = m0 + r, gk = k0 + kk;
                        As[kk][r] = T::prep((co < d.mg && gk < d.k) ? wg[co * d.k + gk] : 0.f);
                    }
#pragma unroll T::LOAD_UNROLL
                    for (int q = 0; q < PER_B; ++q) {
                        const int kk = (threadIdx.x + CONV_THREADS * q) / BN;
                        float v = 0.f;
                        if (pvalid && tab.off[kk] >= 0) {
                            const int sy = pad_source(iy0 + tab.dy[kk], (int)a.h, reflect);
                            const int sx = pad_source(ix0 + tab.dx[kk], (int)a.w, reflect);
                            if (sy >= 0 && sx >= 0) v = xb[tab.off[kk] + (i64)sy * a.w + sx];
                        }
                        Bs[kk][bc] = T::prep(v);
                    }
                    __syncthreads();
                    tile.product(As, Bs);
                }
                tile.template store<true>(tile_left(d.mg - m0, BM), tile_left(P - p0, BN), [&](int r, int c, float v) {
                    const i64 pj = p0 + c, co = m0 + r;
                    const i64 nj = pj / d.ohw, pixj = pj - nj * d.ohw;
                    const i64 oc = g * d.mg + co;
                    const float b = a.has_bias ? bias[oc] : 0.f;
                    y[(nj * a.c_out + oc) * d.ohw + pixj] = v + b;
                });
                __syncthreads();
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_forward_igemm128_f32(const ConvArgs a, const float* __restrict__ x, const float* __restrict__ w,
                                const float* __restrict__ bias, float* __restrict__ y) {
    conv_forward_tiles<ConvF32x128>(a, x, w, bias, y);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_forward_igemm128_tf32(const ConvArgs a, const float* __restrict__ x, const float* __restrict__ w,
                                const float* __restrict__ bias, float* __restrict__ y) {
    conv_forward_tiles<ConvTf32x128>(a, x, w, bias, y);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_forward_igemm64_f32(const ConvArgs a, const float* __restrict__ x, const float* __restrict__ w,
                                const float* __restrict__ bias, float* __restrict__ y) {
    conv_forward_tiles<ConvF32x64>(a, x, w, bias, y);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_forward_igemm64_tf32(const ConvArgs a, const float* __restrict__ x, const float* __restrict__ w,
                                const float* __restrict__ bias, float* __restrict__ y) {
    conv_forward_tiles<ConvTf32x64>(a, x, w, bias, y);
}

// ---- input gradient ---------------------------------------------------------------------------

// Per row kk' = (co, ki, kj) of the current k-step: dy-plane offset of co (−1: past K), the
// weight offset of (co, 0, ki, kj), ki·dil_h, kj·dil_w.
template <int BK>
struct DgradTab {
    i64 dy_off[BK], w_off[BK];
    int dy[BK], dx[BK];
};

// Sum of dy over the output positions whose window tap (ki, kj) reads input pixel (iy, ix),
// given the padded preimages of iy and ix (pad_preimages, already shifted by the padding).
__device__ __forceinline__ float dgrad_gather(const ConvArgs& a, const float* __restrict__ dyp, const int py[3],
                                              const int px[3], int tap_y, int tap_x) {
    float v = 0.f;
#pragma unroll
    for (int u = 0; u < 3; ++u) {
        const int ty = py[u] - tap_y;
        if (py[u] < 0 || ty < 0 || ty % a.stride_h) continue;
        const int oy = ty / a.stride_h;
        if (oy >= a.oh) continue;
#pragma unroll
        for (int t = 0; t < 3; ++t) {
            const int tx = px[t] - tap_x;
            if (px[t] < 0 || tx < 0 || tx % a.stride_w) continue;
            const int ox = tx / a.stride_w;
            if (ox < a.ow) v += dyp[(i64)oy * a.ow + ox];
        }
    }
    return v;
}

// Padded preimages of (iy, ix) shifted by the padding (so they are ≥ 0; PAD_NONE stays < 0).
__device__ __forceinline__ void shifted_preimages(const ConvArgs& a, int iy, int ix, bool reflect, int py[3], int px[3]) {
    pad_preimages(iy, (int)a.h, a.pad_h, reflect, py);
    pad_preimages(ix, (int)a.w, a.pad_w, reflect, px);
#pragma unroll
    for (int u = 0; u < 3; ++u) {
        if (py[u] != PAD_NONE) py[u] += a.pad_h;
        if (px[u] != PAD_NONE) px[u] += a.pad_w;
    }
}

template <class T>
__device__ void conv_dgrad_tiles(const ConvArgs& a, const float* __restrict__ dy, const float* __restrict__ w,
                                 float* __restrict__ dx) {
    constexpr int BM = T::BM, BN = T::BN, BK = T::BK;
    constexpr int PER_A = BM * BK / CONV_THREADS, PER_B = BN * BK / CONV_THREADS;
    __shared__ float As[BK][T::LDA];
    __shared__ float Bs[BK][T::LDB];
    __shared__ DgradTab<BK> tab;
    const ConvDims d = conv_dims(a);
    const i64 Q = a.n * d.hw, K = d.mg * d.khkw;
    const i64 tiles_m = (d.cg + BM - 1) / BM, tiles_q = (Q + BN - 1) / BN;
    const bool reflect = a.reflect != 0;
    for (i64 g = blockIdx.z; g < a.groups; g += gridDim.z) {
        for (i64 tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
            for (i64 tq = blockIdx.x; tq < tiles_q; tq += gridDim.x) {
                const i64 m0 = tm * BM, q0 = tq * BN;
                const int bc = threadIdx.x % BN;
                const i64 q = q0 + bc;
                const bool qvalid = q < Q;
                const i64 nb = qvalid ? q / d.hw : 0, pix = qvalid ? q - nb * d.hw : 0;
                const int iy = (int)(pix / a.w), ix = (int)(pix - (i64)iy * a.w);
                int py[3], px[3];
                shifted_preimages(a, iy, ix, reflect, py, px);
                const float* dyb = dy + nb * a.c_out * d.ohw;
                T tile;
                tile.zero();
                for (i64 k0 = 0; k0 < K; k0 += BK) {
                    if (threadIdx.x < BK) {
                        const i64 kk = k0 + threadIdx.x;
                        if (kk < K) {
                            const i64 co = kk / d.khkw;
                            const int rem = (int)(kk - co * d.khkw);
                            const int ki = rem / a.kw, kj = rem - ki * a.kw;
                            tab.dy_off[threadIdx.x] = (g * d.mg + co) * d.ohw;
                            tab.w_off[threadIdx.x] = (g * d.mg + co) * d.k + rem;
                            tab.dy[threadIdx.x] = ki * a.dil_h;
                            tab.dx[threadIdx.x] = kj * a.dil_w;
                        } else {
                            tab.dy_off[threadIdx.x] = -1;
                        }
                    }
                    __syncthreads();
#pragma unroll T::LOAD_UNROLL
                    for (int qq = 0; qq < PER_A; ++qq) {
                        const int e = threadIdx.x + CONV_THREADS * qq, r = e / BK, kk = e % BK;
                        const i64 ci = m0 + r;
                        As[kk][r] = T::prep((ci < d.cg && tab.dy_off[kk] >= 0) ? w[tab.w_off[kk] + ci * d.khkw] : 0.f);
                    }
#pragma unroll
                    for (int qq = 0; qq < PER_B; ++qq) {
                        const int kk = (threadIdx.x + CONV_THREADS * qq) / BN;
                        float v = 0.f;
                        if (qvalid && tab.dy_off[kk] >= 0)
                            v = dgrad_gather(a, dyb + tab.dy_off[kk], py, px, tab.dy[kk], tab.dx[kk]);
                        Bs[kk][bc] = T::prep(v);
                    }
                    __syncthreads();
                    tile.product(As, Bs);
                }
                tile.template store<true>(tile_left(d.cg - m0, BM), tile_left(Q - q0, BN), [&](int r, int c, float v) {
                    const i64 qj = q0 + c, ci = m0 + r;
                    const i64 nj = qj / d.hw, pixj = qj - nj * d.hw;
                    dx[(nj * a.c_in + g * d.cg + ci) * d.hw + pixj] = v;
                });
                __syncthreads();
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_backward_input_igemm128_f32(const ConvArgs a, const float* __restrict__ dy, const float* __restrict__ w,
                                       float* __restrict__ dx) {
    conv_dgrad_tiles<ConvF32x128>(a, dy, w, dx);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_backward_input_igemm128_tf32(const ConvArgs a, const float* __restrict__ dy, const float* __restrict__ w,
                                       float* __restrict__ dx) {
    conv_dgrad_tiles<ConvTf32x128>(a, dy, w, dx);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_backward_input_igemm64_f32(const ConvArgs a, const float* __restrict__ dy, const float* __restrict__ w,
                                       float* __restrict__ dx) {
    conv_dgrad_tiles<ConvF32x64>(a, dy, w, dx);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_backward_input_igemm64_tf32(const ConvArgs a, const float* __restrict__ dy, const float* __restrict__ w,
                                       float* __restrict__ dx) {
    conv_dgrad_tiles<ConvTf32x64>(a, dy, w, dx);
}

// ---- weight gradient --------------------------------------------------------------------------

// Per output position p of the current k-step: dy offset of (n, pix) without the channel term
// (−1: past this split), the sample's input-group offset, oy·s_h − pad_h, ox·s_w − pad_w.
template <int BK>
struct WgradTab {
    i64 dy_off[BK], x_off[BK];
    int iy0[BK], ix0[BK];
};

template <class T>
__device__ void conv_wgrad_tiles(const ConvArgs& a, const float* __restrict__ x, const float* __restrict__ dy,
                                 float* __restrict__ out) {
    constexpr int BM = T::BM, BN = T::BN, BK = T::BK;
    constexpr int PER_A = BM * BK / CONV_THREADS, PER_B = BN * BK / CONV_THREADS;
    __shared__ float As[BK][T::LDA];
    __shared__ float Bs[BK][T::LDB];
    __shared__ WgradTab<BK> tab;
    const ConvDims d = conv_dims(a);
    const i64 P = a.n * d.ohw;
    const i64 tiles_m = (d.mg + BM - 1) / BM, tiles_k = (d.k + BN - 1) / BN;
    const bool reflect = a.reflect != 0;
    for (i64 z = blockIdx.z; z < (i64)a.groups * a.splits; z += gridDim.z) {
        const i64 g = z / a.splits, s = z - g * a.splits;
        const i64 p_lo = s * a.split_len;
        const i64 p_hi = p_lo + a.split_len < P ? p_lo + a.split_len : P;
        float* outs = out + s * a.c_out * d.k;
        for (i64 tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
            for (i64 tk = blockIdx.x; tk < tiles_k; tk += gridDim.x) {
                const i64 m0 = tm * BM, c0 = tk * BN;
                // This thread's im2col row kk (a column of this GEMM), fixed for the tile.
                const int bc = threadIdx.x % BN;
                const i64 kk = c0 + bc;
                const bool kvalid = kk < d.k;
                const i64 ci = kvalid ? kk / d.khkw : 0;
                const int rem = (int)(kk - ci * d.khkw);
                const int tap_y = (rem / a.kw) * a.dil_h, tap_x = (rem % a.kw) * a.dil_w;
                const i64 ci_off = ci * d.hw;
                T tile;
                tile.zero();
                for (i64 k0 = p_lo; k0 < p_hi; k0 += BK) {
                    if (threadIdx.x < BK) {
                        const i64 p = k0 + threadIdx.x;
                        if (p < p_hi) {
                            const i64 nb = p / d.ohw, pix = p - nb * d.ohw;
                            const int oy = (int)(pix / a.ow), ox = (int)(pix - (i64)oy * a.ow);
                            tab.dy_off[threadIdx.x] = nb * a.c_out * d.ohw + pix;
                            tab.x_off[threadIdx.x] = (nb * a.c_in + g * d.cg) * d.hw;
                            tab.iy0[threadIdx.x] = oy * a.stride_h - a.pad_h;
                            tab.ix0[threadIdx.x] = ox * a.stride_w - a.pad_w;
                        } else {
                            tab.dy_off[threadIdx.x] = -1;
                        }
                    }
                    __syncthreads();
#pragma unroll T::LOAD_UNROLL
                    for (int q = 0; q < PER_A; ++q) {
                        const int e = threadIdx.x + CONV_THREADS * q, r = e / BK, pk = e % BK;
                        const i64 co = m0 + r;
                        As[pk][r] = T::prep((co < d.mg && tab.dy_off[pk] >= 0) ? dy[tab.dy_off[pk] + (g * d.mg + co) * d.ohw]
                                                                                : 0.f);
                    }
#pragma unroll T::LOAD_UNROLL
                    for (int q = 0; q < PER_B; ++q) {
                        const int pk = (threadIdx.x + CONV_THREADS * q) / BN;
                        float v = 0.f;
                        if (kvalid && tab.dy_off[pk] >= 0) {
                            const int sy = pad_source(tab.iy0[pk] + tap_y, (int)a.h, reflect);
                            const int sx = pad_source(tab.ix0[pk] + tap_x, (int)a.w, reflect);
                            if (sy >= 0 && sx >= 0) v = x[tab.x_off[pk] + ci_off + (i64)sy * a.w + sx];
                        }
                        Bs[pk][bc] = T::prep(v);
                    }
                    __syncthreads();
                    tile.product(As, Bs);
                }
                tile.template store<false>(tile_left(d.mg - m0, BM), tile_left(d.k - c0, BN), [&](int r, int c, float v) {
                    outs[(g * d.mg + m0 + r) * d.k + c0 + c] = v;
                });
                __syncthreads();
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_backward_weight_igemm128_f32(const ConvArgs a, const float* __restrict__ x, const float* __restrict__ dy,
                                        float* __restrict__ out) {
    conv_wgrad_tiles<ConvF32x128>(a, x, dy, out);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_backward_weight_igemm128_tf32(const ConvArgs a, const float* __restrict__ x, const float* __restrict__ dy,
                                        float* __restrict__ out) {
    conv_wgrad_tiles<ConvTf32x128>(a, x, dy, out);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_backward_weight_igemm64_f32(const ConvArgs a, const float* __restrict__ x, const float* __restrict__ dy,
                                        float* __restrict__ out) {
    conv_wgrad_tiles<ConvF32x64>(a, x, dy, out);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 1)
    conv2d_backward_weight_igemm64_tf32(const ConvArgs a, const float* __restrict__ x, const float* __restrict__ dy,
                                        float* __restrict__ out) {
    conv_wgrad_tiles<ConvTf32x64>(a, x, dy, out);
}

// ---- direct variants (reference ladder rung, depthwise fast path) -----------------------------

// y[n, co, oy, ox] = bias[co] + Σ_{ci in group, ki, kj} w[co, ci, ki, kj] · x_padded[...].
extern "C" __global__ void conv2d_direct_forward_f32(const ConvArgs a, const float* __restrict__ x,
                                                     const float* __restrict__ w, const float* __restrict__ bias,
                                                     float* __restrict__ y) {
    const ConvDims d = conv_dims(a);
    const bool reflect = a.reflect != 0;
    GRID_LOOP(i, a.n * a.c_out * d.ohw) {
        const i64 pix = i % d.ohw, nc = i / d.ohw, co = nc % a.c_out, nb = nc / a.c_out;
        const int oy = (int)(pix / a.ow), ox = (int)(pix % a.ow);
        const i64 g = co / d.mg;
        const float* xg = x + (nb * a.c_in + g * d.cg) * d.hw;
        const float* wc = w + co * d.k;
        float acc = a.has_bias ? bias[co] : 0.f;
        for (int ki = 0; ki < a.kh; ++ki) {
            const int sy = pad_source(oy * a.stride_h - a.pad_h + ki * a.dil_h, (int)a.h, reflect);
            if (sy < 0) continue;
            for (int kj = 0; kj < a.kw; ++kj) {
                const int sx = pad_source(ox * a.stride_w - a.pad_w + kj * a.dil_w, (int)a.w, reflect);
                if (sx < 0) continue;
                const i64 at = (i64)sy * a.w + sx;
                for (i64 ci = 0; ci < d.cg; ++ci) acc = fmaf(wc[ci * d.khkw + ki * a.kw + kj], xg[ci * d.hw + at], acc);
            }
        }
        y[i] = acc;
    }
}

// dx[n, ci, iy, ix] = Σ_{co in group, ki, kj, padded preimages} w[co, ci, ki, kj] · dy[n, co, oy, ox].
extern "C" __global__ void conv2d_direct_backward_input_f32(const ConvArgs a, const float* __restrict__ dy,
                                                            const float* __restrict__ w, float* __restrict__ dx) {
    const ConvDims d = conv_dims(a);
    const bool reflect = a.reflect != 0;
    GRID_LOOP(i, a.n * a.c_in * d.hw) {
        const i64 pix = i % d.hw, nc = i / d.hw, ci = nc % a.c_in, nb = nc / a.c_in;
        const int iy = (int)(pix / a.w), ix = (int)(pix % a.w);
        const i64 g = ci / d.cg, cl = ci - g * d.cg;
        int py[3], px[3];
        shifted_preimages(a, iy, ix, reflect, py, px);
        float acc = 0.f;
        for (i64 co = g * d.mg; co < (g + 1) * d.mg; ++co) {
            const float* dyp = dy + (nb * a.c_out + co) * d.ohw;
            const float* wc = w + (co * d.cg + cl) * d.khkw;
            for (int ki = 0; ki < a.kh; ++ki)
                for (int kj = 0; kj < a.kw; ++kj)
                    acc = fmaf(wc[ki * a.kw + kj], dgrad_gather(a, dyp, py, px, ki * a.dil_h, kj * a.dil_w), acc);
        }
        dx[i] = acc;
    }
}

// dw[co, ci, ki, kj] = Σ_{n, oy, ox} dy[n, co, oy, ox] · x_padded[n, g·cg + ci, ...]: one block per
// weight element (looping), f64 block sum. Block: a multiple of 32 up to 1024 threads.
extern "C" __global__ void conv2d_direct_backward_weight_f32(const ConvArgs a, const float* __restrict__ x,
                                                             const float* __restrict__ dy, float* __restrict__ dw) {
    __shared__ double sh[32];
    const ConvDims d = conv_dims(a);
    const bool reflect = a.reflect != 0;
    const i64 P = a.n * d.ohw;
    for (i64 e = blockIdx.x; e < a.c_out * d.k; e += gridDim.x) {
        const i64 co = e / d.k, kk = e - co * d.k, ci = kk / d.khkw;
        const int rem = (int)(kk - ci * d.khkw), ki = rem / a.kw, kj = rem % a.kw;
        const i64 g = co / d.mg;
        double acc = 0.0;
        for (i64 p = threadIdx.x; p < P; p += blockDim.x) {
            const i64 nb = p / d.ohw, pix = p - nb * d.ohw;
            const int oy = (int)(pix / a.ow), ox = (int)(pix % a.ow);
            const int sy = pad_source(oy * a.stride_h - a.pad_h + ki * a.dil_h, (int)a.h, reflect);
            const int sx = pad_source(ox * a.stride_w - a.pad_w + kj * a.dil_w, (int)a.w, reflect);
            if (sy < 0 || sx < 0) continue;
            const float xv = x[(nb * a.c_in + g * d.cg + ci) * d.hw + (i64)sy * a.w + sx];
            acc += (double)(dy[(nb * a.c_out + co) * d.ohw + pix] * xv);
        }
        acc = block_sum_f64(acc, sh);
        if (threadIdx.x == 0) dw[e] = (float)acc;
    }
}

// db[co] = Σ_{n, oy, ox} dy[n, co, oy, ox]: one block per channel (looping), f64 sums like the
// CPU. Block: a multiple of 32 up to 1024 threads.
extern "C" __global__ void conv2d_backward_bias_f32(const ConvArgs a, const float* __restrict__ dy, float* __restrict__ db) {
    __shared__ double sh[32];
    const i64 ohw = a.oh * a.ow;
    for (i64 co = blockIdx.x; co < a.c_out; co += gridDim.x) {
        double acc = 0.0;
        for (i64 nb = 0; nb < a.n; ++nb) {
            const float* p = dy + (nb * a.c_out + co) * ohw;
            for (i64 j = threadIdx.x; j < ohw; j += blockDim.x) acc += (double)p[j];
        }
        acc = block_sum_f64(acc, sh);
        if (threadIdx.x == 0) db[co] = (float)acc;
    }
}
