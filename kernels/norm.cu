// Instance norm, positional norm (PONO) and the fused SPADE modulation, forward and backward.
// CPU reference: src/backend/cpu/norm.rs.
//
// x is viewed as [outer, red, inner] and normalised over `red`; statistic s = o·inner + i.
// - Row kernels (instance norm, SPADE-instance: inner = 1): one block per row (looping over
//   rows), Welford per thread merged across the block, then one pass writing the output; a row
//   is read twice (the second time mostly from L2). Block: a multiple of 32 up to 1024 threads
//   (256 intended); grid: 1-D, any size (≥ rows for full occupancy).
// - Column kernels (PONO, SPADE-PONO: reduce over C with stride H·W): a block of NORM_COL_X
//   statistics × NORM_COL_Y slices of the reduced axis, so neighbouring threads read
//   neighbouring pixels; the slices merge in shared memory. Block (NORM_COL_X, NORM_COL_Y);
//   grid: 1-D over ceil(outer·inner / NORM_COL_X) tiles, looping.
//
// Forward: x̂ = (x − mean)·rstd, rstd = 1/√(m2/(red − ddof) + eps); instance: y = x̂·w_c + b_c;
// PONO: y = x̂; SPADE: y = x̂·(1 + γ) + β (γ, β shaped like x). mean and rstd are saved [stats].
// Backward with g = ∂L/∂x̂ (dy·w_c, dy or dy·(1 + γ)):
//   dx = rstd·(g − Σg/red − x̂·Σ(g·x̂)/(red − ddof));  SPADE also dγ = dy·x̂ (dβ = dy, a copy).
// Instance norm's dweight/dbias: the row kernel writes each row's (Σdy, Σdy·x̂) and
// instance_norm_backward_affine_f32 sums them over N per channel.
// The SPADE kernels are the fused rung; the plain reference is the composition of the norm
// kernels with the elementwise kernels (x̂ → ·(1 + γ) → + β), as the CPU's tests compose it.
#include "common.cuh"

#define NORM_COL_X 32
#define NORM_COL_Y 8

// Mirrors `NormArgs` (src/backend/cuda/params.rs).
struct NormArgs {
    i64 outer, red, inner, channels;
    float eps;
    int ddof, has_weight, has_bias;
};

#define KIND_INSTANCE 0
#define KIND_PONO 1
#define KIND_SPADE 2

__device__ __forceinline__ float rstd_of(const NormArgs& a, Welford w) {
    const float var = w.m2 / (float)(a.red - a.ddof);
    return 1.f / sqrtf(var + a.eps);
}

// ---- row kernels (inner = 1) ------------------------------------------------------------------

// p0/p1: instance weight/bias (may be null) or SPADE γ/β.
template <int KIND>
__device__ void norm_row_forward(const NormArgs& a, const float* __restrict__ x, const float* __restrict__ p0,
                                 const float* __restrict__ p1, float* __restrict__ y, float* __restrict__ mean,
                                 float* __restrict__ rstd) {
    __shared__ float sh[96];
    for (i64 row = blockIdx.x; row < a.outer; row += gridDim.x) {
        const float* xr = x + row * a.red;
        Welford w = welford_empty();
        for (i64 r = threadIdx.x; r < a.red; r += blockDim.x) welford_push(w, xr[r]);
        w = block_welford(w, sh);
        const float mu = w.mean, rs = rstd_of(a, w);
        if (threadIdx.x == 0) {
            mean[row] = mu;
            rstd[row] = rs;
        }
        const i64 c = row % a.channels;
        const float wc = (KIND == KIND_INSTANCE && a.has_weight) ? p0[c] : 1.f;
        const float bc = (KIND == KIND_INSTANCE && a.has_bias) ? p1[c] : 0.f;
        float* yr = y + row * a.red;
        for (i64 r = threadIdx.x; r < a.red; r += blockDim.x) {
            const float xh = (xr[r] - mu) * rs;
            if (KIND == KIND_SPADE) {
                const i64 i = row * a.red + r;
                yr[r] = xh * (1.f + p0[i]) + p1[i];
            } else {
                yr[r] = xh * wc + bc;
            }
        }
    }
}

// p0: instance weight (may be null) or SPADE γ. aux: instance row sums [outer, 2] (may be
// null) or SPADE dγ.
template <int KIND>
__device__ void norm_row_backward(const NormArgs& a, const float* __restrict__ x, const float* __restrict__ p0,
                                  const float* __restrict__ mean, const float* __restrict__ rstd,
                                  const float* __restrict__ dy, float* __restrict__ dx, float* __restrict__ aux) {
    __shared__ float sh[32];
    for (i64 row = blockIdx.x; row < a.outer; row += gridDim.x) {
        const i64 base = row * a.red;
        const float mu = mean[row], rs = rstd[row];
        float sg = 0.f, sgx = 0.f;
        for (i64 r = threadIdx.x; r < a.red; r += blockDim.x) {
            const i64 i = base + r;
            const float g = KIND == KIND_SPADE ? dy[i] * (1.f + p0[i]) : dy[i];
            sg += g;
            sgx += g * ((x[i] - mu) * rs);
        }
        sg = block_sum(sg, sh);
        sgx = block_sum(sgx, sh);
        const float wc = (KIND == KIND_INSTANCE && a.has_weight) ? p0[row % a.channels] : 1.f;
        if (KIND == KIND_INSTANCE && aux != nullptr && threadIdx.x == 0) {
            aux[2 * row] = sg;
            aux[2 * row + 1] = sgx;
        }
        const float mg = wc * sg / (float)a.red, kx = wc * sgx / (float)(a.red - a.ddof);
        for (i64 r = threadIdx.x; r < a.red; r += blockDim.x) {
            const i64 i = base + r;
            const float xh = (x[i] - mu) * rs;
            const float g = KIND == KIND_SPADE ? dy[i] * (1.f + p0[i]) : dy[i];
            dx[i] = rs * (g * wc - mg - xh * kx);
            if (KIND == KIND_SPADE) aux[i] = dy[i] * xh;
        }
    }
}

// ---- column kernels (reduce with stride `inner`) ----------------------------------------------

// The element offset of (statistic s, reduced index 0) and the reduced stride.
__device__ __forceinline__ i64 col_base(const NormArgs& a, i64 s) {
    const i64 o = s / a.inner, i = s - o * a.inner;
    return o * a.red * a.inner + i;
}

template <int KIND>
__device__ void norm_col_forward(const NormArgs& a, const float* __restrict__ x, const float* __restrict__ gamma,
                                 const float* __restrict__ beta, float* __restrict__ y, float* __restrict__ mean,
                                 float* __restrict__ rstd) {
    __shared__ Welford part[NORM_COL_Y][NORM_COL_X];
    __shared__ float stat[2][NORM_COL_X];
    const i64 nstat = a.outer * a.inner, tiles = (nstat + NORM_COL_X - 1) / NORM_COL_X;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (i64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const i64 s = t * NORM_COL_X + tx;
        const bool valid = s < nstat;
        const i64 base = valid ? col_base(a, s) : 0;
        Welford w = welford_empty();
        if (valid)
            for (i64 r = ty; r < a.red; r += NORM_COL_Y) welford_push(w, x[base + r * a.inner]);
        part[ty][tx] = w;
        __syncthreads();
        if (ty == 0) {
            for (int k = 1; k < NORM_COL_Y; ++k) w = welford_merge(w, part[k][tx]);
            const float rs = rstd_of(a, w);
            stat[0][tx] = w.mean;
            stat[1][tx] = rs;
            if (valid) {
                mean[s] = w.mean;
                rstd[s] = rs;
            }
        }
        __syncthreads();
        const float mu = stat[0][tx], rs = stat[1][tx];
        if (valid)
            for (i64 r = ty; r < a.red; r += NORM_COL_Y) {
                const i64 i = base + r * a.inner;
                const float xh = (x[i] - mu) * rs;
                y[i] = KIND == KIND_SPADE ? xh * (1.f + gamma[i]) + beta[i] : xh;
            }
        __syncthreads();
    }
}

template <int KIND>
__device__ void norm_col_backward(const NormArgs& a, const float* __restrict__ x, const float* __restrict__ gamma,
                                  const float* __restrict__ mean, const float* __restrict__ rstd,
                                  const float* __restrict__ dy, float* __restrict__ dx, float* __restrict__ dgamma) {
    __shared__ float part[2][NORM_COL_Y][NORM_COL_X];
    const i64 nstat = a.outer * a.inner, tiles = (nstat + NORM_COL_X - 1) / NORM_COL_X;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (i64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const i64 s = t * NORM_COL_X + tx;
        const bool valid = s < nstat;
        const i64 base = valid ? col_base(a, s) : 0;
        const float mu = valid ? mean[s] : 0.f, rs = valid ? rstd[s] : 0.f;
        float sg = 0.f, sgx = 0.f;
        if (valid)
            for (i64 r = ty; r < a.red; r += NORM_COL_Y) {
                const i64 i = base + r * a.inner;
                const float g = KIND == KIND_SPADE ? dy[i] * (1.f + gamma[i]) : dy[i];
                sg += g;
                sgx += g * ((x[i] - mu) * rs);
            }
        part[0][ty][tx] = sg;
        part[1][ty][tx] = sgx;
        __syncthreads();
        sg = 0.f;
        sgx = 0.f;
        for (int k = 0; k < NORM_COL_Y; ++k) {
            sg += part[0][k][tx];
            sgx += part[1][k][tx];
        }
        const float mg = sg / (float)a.red, kx = sgx / (float)(a.red - a.ddof);
        if (valid)
            for (i64 r = ty; r < a.red; r += NORM_COL_Y) {
                const i64 i = base + r * a.inner;
                const float xh = (x[i] - mu) * rs;
                const float g = KIND == KIND_SPADE ? dy[i] * (1.f + gamma[i]) : dy[i];
                dx[i] = rs * (g - mg - xh * kx);
                if (KIND == KIND_SPADE) dgamma[i] = dy[i] * xh;
            }
        __syncthreads();
    }
}

// ---- entry points -----------------------------------------------------------------------------

// weight / bias: [C] or null (has_weight / has_bias say which); mean, rstd: [N·C].
extern "C" __global__ void instance_norm_forward_f32(const NormArgs a, const float* __restrict__ x,
                                                     const float* __restrict__ weight, const float* __restrict__ bias,
                                                     float* __restrict__ y, float* __restrict__ mean,
                                                     float* __restrict__ rstd) {
    norm_row_forward<KIND_INSTANCE>(a, x, weight, bias, y, mean, rstd);
}

// row_sums: [N·C, 2] (Σdy, Σdy·x̂) per row, for the affine gradients; null without weight.
extern "C" __global__ void instance_norm_backward_f32(const NormArgs a, const float* __restrict__ x,
                                                      const float* __restrict__ weight, const float* __restrict__ mean,
                                                      const float* __restrict__ rstd, const float* __restrict__ dy,
                                                      float* __restrict__ dx, float* __restrict__ row_sums) {
    norm_row_backward<KIND_INSTANCE>(a, x, weight, mean, rstd, dy, dx, row_sums);
}

// dweight[c] = Σ_n row_sums[n·C + c][1], dbias[c] = Σ_n row_sums[n·C + c][0] (f64, like the
// CPU). Grid: 1-D, any size; block 256; one thread per channel.
extern "C" __global__ void instance_norm_backward_affine_f32(const NormArgs a, const float* __restrict__ row_sums,
                                                             float* __restrict__ dweight, float* __restrict__ dbias) {
    const i64 n = a.outer / a.channels;
    GRID_LOOP(c, a.channels) {
        double sw = 0.0, sb = 0.0;
        for (i64 nb = 0; nb < n; ++nb) {
            const i64 row = nb * a.channels + c;
            sb += (double)row_sums[2 * row];
            sw += (double)row_sums[2 * row + 1];
        }
        dweight[c] = (float)sw;
        dbias[c] = (float)sb;
    }
}

// mean, rstd: [N, 1, H, W].
extern "C" __global__ void pono_forward_f32(const NormArgs a, const float* __restrict__ x, float* __restrict__ y,
                                            float* __restrict__ mean, float* __restrict__ rstd) {
    norm_col_forward<KIND_PONO>(a, x, nullptr, nullptr, y, mean, rstd);
}

extern "C" __global__ void pono_backward_f32(const NormArgs a, const float* __restrict__ x,
                                             const float* __restrict__ mean, const float* __restrict__ rstd,
                                             const float* __restrict__ dy, float* __restrict__ dx) {
    norm_col_backward<KIND_PONO>(a, x, nullptr, mean, rstd, dy, dx, nullptr);
}

extern "C" __global__ void spade_modulate_instance_forward_f32(const NormArgs a, const float* __restrict__ x,
                                                               const float* __restrict__ gamma,
                                                               const float* __restrict__ beta, float* __restrict__ y,
                                                               float* __restrict__ mean, float* __restrict__ rstd) {
    norm_row_forward<KIND_SPADE>(a, x, gamma, beta, y, mean, rstd);
}

extern "C" __global__ void spade_modulate_instance_backward_f32(const NormArgs a, const float* __restrict__ x,
                                                                const float* __restrict__ gamma,
                                                                const float* __restrict__ mean,
                                                                const float* __restrict__ rstd,
                                                                const float* __restrict__ dy, float* __restrict__ dx,
                                                                float* __restrict__ dgamma) {
    norm_row_backward<KIND_SPADE>(a, x, gamma, mean, rstd, dy, dx, dgamma);
}

extern "C" __global__ void spade_modulate_pono_forward_f32(const NormArgs a, const float* __restrict__ x,
                                                           const float* __restrict__ gamma,
                                                           const float* __restrict__ beta, float* __restrict__ y,
                                                           float* __restrict__ mean, float* __restrict__ rstd) {
    norm_col_forward<KIND_SPADE>(a, x, gamma, beta, y, mean, rstd);
}

extern "C" __global__ void spade_modulate_pono_backward_f32(const NormArgs a, const float* __restrict__ x,
                                                            const float* __restrict__ gamma,
                                                            const float* __restrict__ mean,
                                                            const float* __restrict__ rstd,
                                                            const float* __restrict__ dy, float* __restrict__ dx,
                                                            float* __restrict__ dgamma) {
    norm_col_backward<KIND_SPADE>(a, x, gamma, mean, rstd, dy, dx, dgamma);
}
