// Softmax over the last axis and its backward. CPU reference: src/backend/cpu/softmax.rs.
// Forward: one pass of online softmax (running max and rescaled sum per thread, merged across
// the row), one pass writing exp(x − max)/sum: two reads and one write per element.
// Backward: dx = y·(dy − Σ y·dy).
// - `*_block_f32`: one block per row (looping over rows), for long rows (≥ 1024, e.g. the
//   4096-long attention rows). Block: a multiple of 32 up to 1024 threads (256 or 512 intended);
//   grid: 1-D, any size.
// - `*_warp_f32`: one warp per row, SOFTMAX_WARP_ROWS rows per 256-thread block, for short rows.
//   Block (32 · SOFTMAX_WARP_ROWS); grid: 1-D, any size (rows loop).
// NaN in a row makes the row NaN, and an all −inf row is NaN, as on the CPU.
#include "common.cuh"

#define SOFTMAX_WARP_ROWS 8

// Mirrors `SoftmaxArgs` (src/backend/cuda/params.rs).
struct SoftmaxArgs {
    i64 rows, len;
};

extern "C" __global__ void softmax_forward_block_f32(const SoftmaxArgs a, const float* __restrict__ x,
                                                     float* __restrict__ y) {
    __shared__ float sh[64];
    for (i64 row = blockIdx.x; row < a.rows; row += gridDim.x) {
        const float* xr = x + row * a.len;
        float* yr = y + row * a.len;
        Online o = online_empty();
        for (i64 j = threadIdx.x; j < a.len; j += blockDim.x) online_push(o, xr[j]);
        o = block_online(o, sh);
        const float inv = 1.f / o.s;
        for (i64 j = threadIdx.x; j < a.len; j += blockDim.x) yr[j] = expf(xr[j] - o.m) * inv;
    }
}

extern "C" __global__ void __launch_bounds__(32 * SOFTMAX_WARP_ROWS)
    softmax_forward_warp_f32(const SoftmaxArgs a, const float* __restrict__ x, float* __restrict__ y) {
    const int lane = threadIdx.x & 31;
    for (i64 row = (i64)blockIdx.x * SOFTMAX_WARP_ROWS + (threadIdx.x >> 5); row < a.rows;
         row += (i64)gridDim.x * SOFTMAX_WARP_ROWS) {
        const float* xr = x + row * a.len;
        float* yr = y + row * a.len;
        Online o = online_empty();
        for (i64 j = lane; j < a.len; j += 32) online_push(o, xr[j]);
        o = warp_online(o);
        const float inv = 1.f / o.s;
        for (i64 j = lane; j < a.len; j += 32) yr[j] = expf(xr[j] - o.m) * inv;
    }
}

extern "C" __global__ void softmax_backward_block_f32(const SoftmaxArgs a, const float* __restrict__ y,
                                                      const float* __restrict__ dy, float* __restrict__ dx) {
    __shared__ float sh[32];
    for (i64 row = blockIdx.x; row < a.rows; row += gridDim.x) {
        const i64 base = row * a.len;
        float dot = 0.f;
        for (i64 j = threadIdx.x; j < a.len; j += blockDim.x) dot += y[base + j] * dy[base + j];
        dot = block_sum(dot, sh);
        for (i64 j = threadIdx.x; j < a.len; j += blockDim.x) dx[base + j] = y[base + j] * (dy[base + j] - dot);
    }
}

extern "C" __global__ void __launch_bounds__(32 * SOFTMAX_WARP_ROWS)
    softmax_backward_warp_f32(const SoftmaxArgs a, const float* __restrict__ y, const float* __restrict__ dy,
                              float* __restrict__ dx) {
    const int lane = threadIdx.x & 31;
    for (i64 row = (i64)blockIdx.x * SOFTMAX_WARP_ROWS + (threadIdx.x >> 5); row < a.rows;
         row += (i64)gridDim.x * SOFTMAX_WARP_ROWS) {
        const i64 base = row * a.len;
        float dot = 0.f;
        for (i64 j = lane; j < a.len; j += 32) dot += y[base + j] * dy[base + j];
        dot = warp_sum(dot);
        for (i64 j = lane; j < a.len; j += 32) dx[base + j] = y[base + j] * (dy[base + j] - dot);
    }
}
