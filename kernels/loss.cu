// Mean L1 and mean squared error, and their gradient w.r.t. the first operand.
// CPU reference: src/backend/cpu/loss.rs. The forward is a deterministic two-stage f64 sum:
// loss_forward_partial_f32 writes one f64 partial per block (block b sums elements
// [b·per_block, (b+1)·per_block)), loss_forward_finish_f32 (one block) adds the `blocks`
// partials and divides by n. Block LOSS_THREADS (256); partial grid: `blocks` blocks (1-D).
// The backward is elementwise: dx = scale · f'(a − b), scale = upstream gradient / n (2·that
// for MSE, as the CPU folds it); grid 1-D, any size.
#include "common.cuh"

#define LOSS_L1 0
#define LOSS_MSE 1
#define LOSS_THREADS 256

// Mirrors `LossArgs` (src/backend/cuda/params.rs).
struct LossArgs {
    i64 n, per_block, blocks;
    int op;
    float scale;
};

extern "C" __global__ void __launch_bounds__(LOSS_THREADS)
    loss_forward_partial_f32(const LossArgs a, const float* __restrict__ x, const float* __restrict__ z,
                             double* __restrict__ partial) {
    __shared__ double sh[32];
    for (i64 blk = blockIdx.x; blk < a.blocks; blk += gridDim.x) {
        const i64 lo = blk * a.per_block;
        const i64 hi = lo + a.per_block < a.n ? lo + a.per_block : a.n;
        double s = 0.0;
        for (i64 i = lo + threadIdx.x; i < hi; i += LOSS_THREADS) {
            const double d = (double)x[i] - (double)z[i];
            s += a.op == LOSS_L1 ? fabs(d) : d * d;
        }
        s = block_sum_f64(s, sh);
        if (threadIdx.x == 0) partial[blk] = s;
    }
}

// out[0] = Σ partial / n. Launch one block of LOSS_THREADS.
extern "C" __global__ void __launch_bounds__(LOSS_THREADS)
    loss_forward_finish_f32(const LossArgs a, const double* __restrict__ partial, float* __restrict__ out) {
    __shared__ double sh[32];
    double s = 0.0;
    for (i64 i = threadIdx.x; i < a.blocks; i += LOSS_THREADS) s += partial[i];
    s = block_sum_f64(s, sh);
    if (threadIdx.x == 0) out[0] = (float)(s / (double)a.n);
}

extern "C" __global__ void loss_backward_f32(const LossArgs a, const float* __restrict__ x, const float* __restrict__ z,
                                             float* __restrict__ dx) {
    GRID_LOOP(i, a.n) {
        const float d = x[i] - z[i];
        const float f = a.op == LOSS_L1 ? (d > 0.f ? 1.f : (d < 0.f ? -1.f : 0.f)) : d;
        dx[i] = a.scale * f;
    }
}
