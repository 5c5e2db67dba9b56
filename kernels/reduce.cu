// Sum / mean / max over any set of axes, and the max backward (ties share the gradient).
// CPU reference: src/backend/cpu/reduce.rs. Also serves sum_to (broadcast_to's adjoint), the
// conv weight-gradient and PReLU split partials, and conv2d_backward_bias-like sums.
//
// Output o (row-major over the kept dims) combines the elements at
//   Σ kept_idx(o)·kept_strides + Σ red_idx(r)·red_strides,  r < red_n.
// Launchers merge adjacent axes of the same role first (ranks are then 1–4) and pick:
// - `*_block_f32` (one block per output, threads across the reduced elements) when the
//   innermost reduced axis is contiguous (stride 1): coalesced reads along r;
// - `*_thread_f32` (one thread per output) when the innermost kept axis is contiguous:
//   neighbouring threads read neighbouring elements at every r.
// Sums accumulate in f64, like the CPU. Max propagates NaN (a NaN element wins), like the CPU.
#include "common.cuh"

#define REDUCE_SUM 0
#define REDUCE_MEAN 1
#define REDUCE_MAX 2

// Mirrors `ReduceArgs` (src/backend/cuda/params.rs).
struct ReduceArgs {
    i64 out_n;
    i64 red_n;
    int kept_rank;
    int red_rank;
    int op;
    float scale;
    i64 kept_dims[MAX_RANK];
    i64 kept_strides[MAX_RANK];
    i64 red_dims[MAX_RANK];
    i64 red_strides[MAX_RANK];
};

__device__ __forceinline__ i64 offset_of(i64 i, int rank, const i64* dims, const i64* strides) {
    i64 off = 0;
    for (int d = rank - 1; d >= 0; --d) {
        off += (i % dims[d]) * strides[d];
        i /= dims[d];
    }
    return off;
}

__device__ __forceinline__ i64 kept_offset(const ReduceArgs& a, i64 o) {
    return offset_of(o, a.kept_rank, a.kept_dims, a.kept_strides);
}

__device__ __forceinline__ i64 red_offset(const ReduceArgs& a, i64 r) {
    return offset_of(r, a.red_rank, a.red_dims, a.red_strides);
}

// NaN-propagating max step (the CPU's MaxAcc::push).
__device__ __forceinline__ float max_push(float acc, float v) { return (v > acc || f32_isnan(v)) ? v : acc; }

__device__ __forceinline__ float warp_max_nan(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = max_push(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

__device__ float block_max_nan(float v, float* sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max_nan(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        v = lane < nw ? sh[lane] : -f32_inf();
        v = warp_max_nan(v);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

// One block per output (looping over outputs when the grid is smaller). Block: a multiple of 32
// threads up to 1024 (256 intended); grid: 1-D, any size.
extern "C" __global__ void reduce_block_f32(const ReduceArgs a, const float* __restrict__ x, float* __restrict__ y) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    for (i64 o = blockIdx.x; o < a.out_n; o += gridDim.x) {
        const float* xo = x + kept_offset(a, o);
        if (a.op == REDUCE_MAX) {
            float m = -f32_inf();
            for (i64 r = threadIdx.x; r < a.red_n; r += blockDim.x) m = max_push(m, xo[red_offset(a, r)]);
            m = block_max_nan(m, shf);
            if (threadIdx.x == 0) y[o] = m;
        } else {
            double s = 0.0;
            for (i64 r = threadIdx.x; r < a.red_n; r += blockDim.x) s += (double)xo[red_offset(a, r)];
            s = block_sum_f64(s, shd);
            if (threadIdx.x == 0) y[o] = a.op == REDUCE_MEAN ? (float)(s * (double)a.scale) : (float)s;
        }
    }
}

// One thread per output. Grid: 1-D, any size; block 256.
extern "C" __global__ void reduce_thread_f32(const ReduceArgs a, const float* __restrict__ x, float* __restrict__ y) {
    GRID_LOOP(o, a.out_n) {
        const float* xo = x + kept_offset(a, o);
        if (a.op == REDUCE_MAX) {
            float m = -f32_inf();
            for (i64 r = 0; r < a.red_n; ++r) m = max_push(m, xo[red_offset(a, r)]);
            y[o] = m;
        } else {
            double s = 0.0;
            for (i64 r = 0; r < a.red_n; ++r) s += (double)xo[red_offset(a, r)];
            y[o] = a.op == REDUCE_MEAN ? (float)(s * (double)a.scale) : (float)s;
        }
    }
}

// Whether x attains its group's maximum y (NaN maxima are attained by NaNs).
__device__ __forceinline__ bool is_hit(float xv, float yv) { return xv == yv || (f32_isnan(xv) && f32_isnan(yv)); }

// dx of the max: dy / (number of tied maxima) where x attains the max, 0 elsewhere. x and dx
// share the layout the args describe; y and dy have out_n elements (keepdim). Every element of
// dx is written (the reduced and kept index sets cover x). Launch: as reduce_block_f32.
extern "C" __global__ void reduce_max_backward_block_f32(const ReduceArgs a, const float* __restrict__ x,
                                                         const float* __restrict__ y, const float* __restrict__ dy,
                                                         float* __restrict__ dx) {
    __shared__ float sh[32];
    for (i64 o = blockIdx.x; o < a.out_n; o += gridDim.x) {
        const i64 base = kept_offset(a, o);
        const float yo = y[o];
        float hits = 0.f;
        for (i64 r = threadIdx.x; r < a.red_n; r += blockDim.x) hits += is_hit(x[base + red_offset(a, r)], yo) ? 1.f : 0.f;
        hits = block_sum(hits, sh);
        const float share = dy[o] / hits;
        for (i64 r = threadIdx.x; r < a.red_n; r += blockDim.x) {
            const i64 i = base + red_offset(a, r);
            dx[i] = is_hit(x[i], yo) ? share : 0.f;
        }
    }
}

// As above, one thread per output. Launch: as reduce_thread_f32.
extern "C" __global__ void reduce_max_backward_thread_f32(const ReduceArgs a, const float* __restrict__ x,
                                                          const float* __restrict__ y, const float* __restrict__ dy,
                                                          float* __restrict__ dx) {
    GRID_LOOP(o, a.out_n) {
        const i64 base = kept_offset(a, o);
        const float yo = y[o];
        float hits = 0.f;
        for (i64 r = 0; r < a.red_n; ++r) hits += is_hit(x[base + red_offset(a, r)], yo) ? 1.f : 0.f;
        const float share = dy[o] / hits;
        for (i64 r = 0; r < a.red_n; ++r) {
            const i64 i = base + red_offset(a, r);
            dx[i] = is_hit(x[i], yo) ? share : 0.f;
        }
    }
}
