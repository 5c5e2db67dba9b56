// Layout ops: permute, narrow and broadcast_to are one strided gather (`copy_strided_f32`), the
// swap of the last two axes has a shared-memory tiled transpose, concat copies each input into
// its slice of the output. sum_to (broadcast_to's adjoint) is a reduction: reduce.cu.
// CPU reference: src/backend/cpu/layout.rs.
#include "common.cuh"

#define TRANSPOSE_TILE 32
#define TRANSPOSE_ROWS 8

// Mirrors `StridedArgs` (src/backend/cuda/params.rs).
struct StridedArgs {
    i64 n;
    i64 offset;
    int rank;
    int _pad;
    i64 dims[MAX_RANK];
    i64 strides[MAX_RANK];
};

// Mirrors `TransposeArgs`.
struct TransposeArgs {
    i64 batch;
    i64 rows;
    i64 cols;
    i64 _pad;
};

// Mirrors `ConcatArgs`.
struct ConcatArgs {
    i64 outer;
    i64 width;
    i64 row;
    i64 at;
};

// y (contiguous, a.n elements of shape dims) = x[offset + Σ idx_d · strides_d]. Strides of 0
// repeat (broadcast), permuted strides permute, an offset and smaller dims narrow.
// Grid: 1-D, any size; block 256.
extern "C" __global__ void copy_strided_f32(const StridedArgs a, const float* __restrict__ x, float* __restrict__ y) {
    GRID_LOOP(i, a.n) {
        i64 rest = i, off = a.offset;
        for (int d = a.rank - 1; d >= 0; --d) {
            off += (rest % a.dims[d]) * a.strides[d];
            rest /= a.dims[d];
        }
        y[i] = x[off];
    }
}

// x [batch, rows, cols] -> y [batch, cols, rows] through a 32 × 33 shared tile (the extra column
// avoids bank conflicts), so both the reads and the writes are coalesced.
// Block (TRANSPOSE_TILE, TRANSPOSE_ROWS); grid (ceil(cols/32), ceil(rows/32), batch), each grid
// axis looping when the tensor has more tiles than the grid.
extern "C" __global__ void __launch_bounds__(TRANSPOSE_TILE * TRANSPOSE_ROWS)
    transpose_tiled_f32(const TransposeArgs a, const float* __restrict__ x, float* __restrict__ y) {
    __shared__ float tile[TRANSPOSE_TILE][TRANSPOSE_TILE + 1];
    const i64 tiles_c = (a.cols + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
    const i64 tiles_r = (a.rows + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
    for (i64 b = blockIdx.z; b < a.batch; b += gridDim.z) {
        const float* xb = x + b * a.rows * a.cols;
        float* yb = y + b * a.rows * a.cols;
        for (i64 tr = blockIdx.y; tr < tiles_r; tr += gridDim.y) {
            for (i64 tc = blockIdx.x; tc < tiles_c; tc += gridDim.x) {
                const i64 r0 = tr * TRANSPOSE_TILE, c0 = tc * TRANSPOSE_TILE;
                for (int j = threadIdx.y; j < TRANSPOSE_TILE; j += TRANSPOSE_ROWS) {
                    const i64 r = r0 + j, c = c0 + threadIdx.x;
                    if (r < a.rows && c < a.cols) tile[j][threadIdx.x] = xb[r * a.cols + c];
                }
                __syncthreads();
                for (int j = threadIdx.y; j < TRANSPOSE_TILE; j += TRANSPOSE_ROWS) {
                    const i64 c = c0 + j, r = r0 + threadIdx.x;
                    if (r < a.rows && c < a.cols) yb[c * a.rows + r] = tile[threadIdx.x][j];
                }
                __syncthreads();
            }
        }
    }
}

// One input of a concat: y[o·row + at + j] = x[o·width + j] for o < outer, j < width, where
// width = the input's size along the axis × the inner size, row = the output's. One launch per
// input. Grid: 1-D, any size; block 256.
extern "C" __global__ void concat_slice_f32(const ConcatArgs a, const float* __restrict__ x, float* __restrict__ y) {
    GRID_LOOP(i, a.outer * a.width) {
        const i64 o = i / a.width, j = i - o * a.width;
        y[o * a.row + a.at + j] = x[i];
    }
}
