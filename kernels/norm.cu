// Instance norm, positional norm (PONO) and the fused SPADE modulation, forward and backward.
// CPU reference: src/backend/cpu/norm.rs.
//
// x is viewed as [outer, red, inner] and normalised over `red`; statistic s = o·inner + i.
// - Row kernels (instance norm, SPADE-instance: inner = 1): one block per row (looping over
//   rows), Welford per thread merged across the block, then one pass writing the output; a row
//   is read twice (the second time mostly from L2). Block: a multiple of 32 up to 1024 threads
//   (256 intended); grid: 1-D, any size (≥ rows for full occupancy). Rows longer than
//   NORM_CHUNK use the chunked pairs instead (a block per chunk, two launches; see there).
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
// The pieces work on elements [lo, hi) of one row, so the plain kernels (a whole row per block)
// and the chunked ones (a chunk of a long row per block) share them.

// The block's Welford statistics of xr[lo, hi), in every thread.
__device__ __forceinline__ Welford row_welford(const float* __restrict__ xr, i64 lo, i64 hi, float* sh) {
    Welford w = welford_empty();
    for (i64 r = lo + threadIdx.x; r < hi; r += blockDim.x) welford_push(w, xr[r]);
    return block_welford(w, sh);
}

// y over [lo, hi) of `row` from its mean and rstd. p0/p1: instance weight/bias (may be null) or
// SPADE γ/β.
template <int KIND>
__device__ __forceinline__ void row_normalize(const NormArgs& a, i64 row, i64 lo, i64 hi, const float* __restrict__ x,
                                              const float* __restrict__ p0, const float* __restrict__ p1,
                                              float* __restrict__ y, float mu, float rs) {
    const i64 c = row % a.channels;
    const float wc = (KIND == KIND_INSTANCE && a.has_weight) ? p0[c] : 1.f;
    const float bc = (KIND == KIND_INSTANCE && a.has_bias) ? p1[c] : 0.f;
    for (i64 r = lo + threadIdx.x; r < hi; r += blockDim.x) {
        const i64 i = row * a.red + r;
        const float xh = (x[i] - mu) * rs;
        y[i] = KIND == KIND_SPADE ? xh * (1.f + p0[i]) + p1[i] : xh * wc + bc;
    }
}

// The block's (Σg, Σg·x̂) over [lo, hi) of `row`, in every thread; g = dy or dy·(1 + γ).
template <int KIND>
__device__ __forceinline__ void row_grad_sums(const NormArgs& a, i64 row, i64 lo, i64 hi, const float* __restrict__ x,
                                              const float* __restrict__ p0, const float* __restrict__ dy, float mu,
                                              float rs, float* sh, float& sg, float& sgx) {
    sg = 0.f;
    sgx = 0.f;
    for (i64 r = lo + threadIdx.x; r < hi; r += blockDim.x) {
        const i64 i = row * a.red + r;
        const float g = KIND == KIND_SPADE ? dy[i] * (1.f + p0[i]) : dy[i];
        sg += g;
        sgx += g * ((x[i] - mu) * rs);
    }
    sg = block_sum(sg, sh);
    sgx = block_sum(sgx, sh);
}

// dx (and SPADE's dγ into aux) over [lo, hi) of `row` from the whole row's (Σg, Σg·x̂).
template <int KIND>
__device__ __forceinline__ void row_grad_apply(const NormArgs& a, i64 row, i64 lo, i64 hi, const float* __restrict__ x,
                                               const float* __restrict__ p0, const float* __restrict__ dy, float mu,
                                               float rs, float sg, float sgx, float* __restrict__ dx,
                                               float* __restrict__ aux) {
    const float wc = (KIND == KIND_INSTANCE && a.has_weight) ? p0[row % a.channels] : 1.f;
    const float mg = wc * sg / (float)a.red, kx = wc * sgx / (float)(a.red - a.ddof);
    for (i64 r = lo + threadIdx.x; r < hi; r += blockDim.x) {
        const i64 i = row * a.red + r;
        const float xh = (x[i] - mu) * rs;
        const float g = KIND == KIND_SPADE ? dy[i] * (1.f + p0[i]) : dy[i];
        dx[i] = rs * (g * wc - mg - xh * kx);
        if (KIND == KIND_SPADE) aux[i] = dy[i] * xh;
    }
}

// Instance norm's row sums for the affine gradients (SPADE writes dγ elementwise instead).
template <int KIND>
__device__ __forceinline__ void row_sums_out(i64 row, float sg, float sgx, float* __restrict__ aux) {
    if (KIND == KIND_INSTANCE && aux != nullptr && threadIdx.x == 0) {
        aux[2 * row] = sg;
        aux[2 * row + 1] = sgx;
    }
}

template <int KIND>
__device__ void norm_row_forward(const NormArgs& a, const float* __restrict__ x, const float* __restrict__ p0,
                                 const float* __restrict__ p1, float* __restrict__ y, float* __restrict__ mean,
                                 float* __restrict__ rstd) {
    __shared__ float sh[96];
    for (i64 row = blockIdx.x; row < a.outer; row += gridDim.x) {
        const Welford w = row_welford(x + row * a.red, 0, a.red, sh);
        const float mu = w.mean, rs = rstd_of(a, w);
        if (threadIdx.x == 0) {
            mean[row] = mu;
            rstd[row] = rs;
        }
        row_normalize<KIND>(a, row, 0, a.red, x, p0, p1, y, mu, rs);
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
        const float mu = mean[row], rs = rstd[row];
        float sg, sgx;
        row_grad_sums<KIND>(a, row, 0, a.red, x, p0, dy, mu, rs, sh, sg, sgx);
        row_sums_out<KIND>(row, sg, sgx, aux);
        row_grad_apply<KIND>(a, row, 0, a.red, x, p0, dy, mu, rs, sg, sgx, dx, aux);
    }
}

// ---- chunked row kernels (rows longer than NORM_CHUNK) ------------------------------------------
// A few long rows (instance norm at 256²: 256 rows of 65536) would give a block per row too few
// blocks to fill the GPU. Here each NORM_CHUNK-element chunk of a row is a block — grid x: the
// chunks of a row, y: the rows (looping over both) — in two launches: a partial pass writes each
// chunk's statistics (forward: Welford n, mean, m2; backward: Σg, Σg·x̂) to `part` [rows, chunks,
// 3 or 2]; the apply pass merges a row's partials in chunk order (the same in every block, so
// deterministic), and writes its chunk. The first chunk's block writes the row's outputs (mean
// and rstd; instance norm's row sums).

#define NORM_CHUNK 8192

__device__ __forceinline__ i64 norm_chunks(const NormArgs& a) { return (a.red + NORM_CHUNK - 1) / NORM_CHUNK; }

// The end of the chunk starting at lo.
__device__ __forceinline__ i64 chunk_end(const NormArgs& a, i64 lo) {
    return lo + NORM_CHUNK < a.red ? lo + NORM_CHUNK : a.red;
}

// Every chunk's Welford statistics: part [outer, chunks, 3].
__device__ void norm_row_stats_chunks(const NormArgs& a, const float* __restrict__ x, float* __restrict__ part) {
    __shared__ float sh[96];
    const i64 chunks = norm_chunks(a);
    for (i64 row = blockIdx.y; row < a.outer; row += gridDim.y)
        for (i64 k = blockIdx.x; k < chunks; k += gridDim.x) {
            const i64 lo = k * NORM_CHUNK, hi = chunk_end(a, lo);
            const Welford w = row_welford(x + row * a.red, lo, hi, sh);
            if (threadIdx.x == 0) {
                float* p = part + 3 * (row * chunks + k);
                p[0] = w.n;
                p[1] = w.mean;
                p[2] = w.m2;
            }
        }
}

template <int KIND>
__device__ void norm_row_forward_chunks(const NormArgs& a, const float* __restrict__ x, const float* __restrict__ p0,
                                        const float* __restrict__ p1, const float* __restrict__ part,
                                        float* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd) {
    __shared__ float stat[2];
    const i64 chunks = norm_chunks(a);
    for (i64 row = blockIdx.y; row < a.outer; row += gridDim.y)
        for (i64 k = blockIdx.x; k < chunks; k += gridDim.x) {
            if (threadIdx.x == 0) {
                Welford w = welford_empty();
                for (i64 j = 0; j < chunks; ++j) {
                    const float* p = part + 3 * (row * chunks + j);
                    Welford c;
                    c.n = p[0];
                    c.mean = p[1];
                    c.m2 = p[2];
                    w = welford_merge(w, c);
                }
                stat[0] = w.mean;
                stat[1] = rstd_of(a, w);
                if (k == 0) {
                    mean[row] = stat[0];
                    rstd[row] = stat[1];
                }
            }
            __syncthreads();
            const i64 lo = k * NORM_CHUNK, hi = chunk_end(a, lo);
            row_normalize<KIND>(a, row, lo, hi, x, p0, p1, y, stat[0], stat[1]);
            __syncthreads();
        }
}

// Every chunk's (Σg, Σg·x̂): part [outer, chunks, 2].
template <int KIND>
__device__ void norm_row_grad_chunks(const NormArgs& a, const float* __restrict__ x, const float* __restrict__ p0,
                                     const float* __restrict__ mean, const float* __restrict__ rstd,
                                     const float* __restrict__ dy, float* __restrict__ part) {
    __shared__ float sh[32];
    const i64 chunks = norm_chunks(a);
    for (i64 row = blockIdx.y; row < a.outer; row += gridDim.y)
        for (i64 k = blockIdx.x; k < chunks; k += gridDim.x) {
            const i64 lo = k * NORM_CHUNK, hi = chunk_end(a, lo);
            float sg, sgx;
            row_grad_sums<KIND>(a, row, lo, hi, x, p0, dy, mean[row], rstd[row], sh, sg, sgx);
            if (threadIdx.x == 0) {
                part[2 * (row * chunks + k)] = sg;
                part[2 * (row * chunks + k) + 1] = sgx;
            }
        }
}

template <int KIND>
__device__ void norm_row_backward_chunks(const NormArgs& a, const float* __restrict__ x, const float* __restrict__ p0,
                                         const float* __restrict__ mean, const float* __restrict__ rstd,
                                         const float* __restrict__ dy, const float* __restrict__ part,
                                         float* __restrict__ dx, float* __restrict__ aux) {
    __shared__ float sums[2];
    const i64 chunks = norm_chunks(a);
    for (i64 row = blockIdx.y; row < a.outer; row += gridDim.y)
        for (i64 k = blockIdx.x; k < chunks; k += gridDim.x) {
            if (threadIdx.x == 0) {
                float sg = 0.f, sgx = 0.f;
                for (i64 j = 0; j < chunks; ++j) {
                    sg += part[2 * (row * chunks + j)];
                    sgx += part[2 * (row * chunks + j) + 1];
                }
                sums[0] = sg;
                sums[1] = sgx;
                if (k == 0) row_sums_out<KIND>(row, sg, sgx, aux);
            }
            __syncthreads();
            const i64 lo = k * NORM_CHUNK, hi = chunk_end(a, lo);
            row_grad_apply<KIND>(a, row, lo, hi, x, p0, dy, mean[row], rstd[row], sums[0], sums[1], dx, aux);
            __syncthreads();
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

// The chunked pair for rows longer than NORM_CHUNK (instance norm and SPADE-instance share the
// statistics pass): part [N·C, chunks, 3]; the rest as in the plain kernels.
extern "C" __global__ void norm_row_stats_chunks_f32(const NormArgs a, const float* __restrict__ x,
                                                     float* __restrict__ part) {
    norm_row_stats_chunks(a, x, part);
}

extern "C" __global__ void instance_norm_forward_chunks_f32(const NormArgs a, const float* __restrict__ x,
                                                            const float* __restrict__ weight,
                                                            const float* __restrict__ bias,
                                                            const float* __restrict__ part, float* __restrict__ y,
                                                            float* __restrict__ mean, float* __restrict__ rstd) {
    norm_row_forward_chunks<KIND_INSTANCE>(a, x, weight, bias, part, y, mean, rstd);
}

// part [N·C, chunks, 2] (Σg, Σg·x̂ per chunk).
extern "C" __global__ void instance_norm_grad_chunks_f32(const NormArgs a, const float* __restrict__ x,
                                                         const float* __restrict__ weight,
                                                         const float* __restrict__ mean,
                                                         const float* __restrict__ rstd,
                                                         const float* __restrict__ dy, float* __restrict__ part) {
    norm_row_grad_chunks<KIND_INSTANCE>(a, x, weight, mean, rstd, dy, part);
}

extern "C" __global__ void instance_norm_backward_chunks_f32(const NormArgs a, const float* __restrict__ x,
                                                             const float* __restrict__ weight,
                                                             const float* __restrict__ mean,
                                                             const float* __restrict__ rstd,
                                                             const float* __restrict__ dy,
                                                             const float* __restrict__ part, float* __restrict__ dx,
                                                             float* __restrict__ row_sums) {
    norm_row_backward_chunks<KIND_INSTANCE>(a, x, weight, mean, rstd, dy, part, dx, row_sums);
}

extern "C" __global__ void spade_modulate_instance_forward_chunks_f32(
    const NormArgs a, const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
    const float* __restrict__ part, float* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd) {
    norm_row_forward_chunks<KIND_SPADE>(a, x, gamma, beta, part, y, mean, rstd);
}

extern "C" __global__ void spade_modulate_instance_grad_chunks_f32(const NormArgs a, const float* __restrict__ x,
                                                                   const float* __restrict__ gamma,
                                                                   const float* __restrict__ mean,
                                                                   const float* __restrict__ rstd,
                                                                   const float* __restrict__ dy,
                                                                   float* __restrict__ part) {
    norm_row_grad_chunks<KIND_SPADE>(a, x, gamma, mean, rstd, dy, part);
}

extern "C" __global__ void spade_modulate_instance_backward_chunks_f32(
    const NormArgs a, const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ mean,
    const float* __restrict__ rstd, const float* __restrict__ dy, const float* __restrict__ part,
    float* __restrict__ dx, float* __restrict__ dgamma) {
    norm_row_backward_chunks<KIND_SPADE>(a, x, gamma, mean, rstd, dy, part, dx, dgamma);
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
