// Elementwise ops: unary maps and their fused backward, broadcasting binary ops, PReLU.
// CPU reference: src/backend/cpu/elementwise.rs. All kernels are grid-stride loops over a 1-D
// grid of any size (256 threads per block is the intended block).
#include "common.cuh"

// Op codes: mirror UNARY_* / BINARY_* in src/backend/cuda/params.rs.
#define UNARY_NEG 0
#define UNARY_ADD_SCALAR 1
#define UNARY_MUL_SCALAR 2
#define UNARY_POW_SCALAR 3
#define UNARY_RELU 4
#define UNARY_LEAKY_RELU 5
#define UNARY_TANH 6
#define UNARY_SIGMOID 7
#define UNARY_EXP 8
#define UNARY_LOG 9
#define UNARY_SQRT 10
#define UNARY_ABS 11

#define BINARY_ADD 0
#define BINARY_SUB 1
#define BINARY_MUL 2
#define BINARY_DIV 3

// Mirrors `UnaryArgs` (src/backend/cuda/params.rs).
struct UnaryArgs {
    i64 n;
    int op;
    float scalar;
};

// Mirrors `BinaryArgs`.
struct BinaryArgs {
    i64 n;
    int rank;
    int op;
    i64 dims[MAX_RANK];
    i64 strides_a[MAX_RANK];
    i64 strides_b[MAX_RANK];
};

// Mirrors `PreluArgs`.
struct PreluArgs {
    i64 n;
    i64 channels;
    i64 inner;
    i64 per_split;
};

// ---- unary ------------------------------------------------------------------------------------

// One instantiation per op so the per-element loop has no switch in it.
template <int OP>
__device__ __forceinline__ float unary_f(float v, float c) {
    if (OP == UNARY_NEG) return -v;
    if (OP == UNARY_ADD_SCALAR) return v + c;
    if (OP == UNARY_MUL_SCALAR) return v * c;
    if (OP == UNARY_POW_SCALAR) return c == 2.f ? v * v : powf(v, c);
    if (OP == UNARY_RELU) return v < 0.f ? 0.f : v;  // NaN passes through, as in PyTorch
    if (OP == UNARY_LEAKY_RELU) return v > 0.f ? v : v * c;
    if (OP == UNARY_TANH) return tanhf(v);
    if (OP == UNARY_SIGMOID) return 1.f / (1.f + expf(-v));
    if (OP == UNARY_EXP) return expf(v);
    if (OP == UNARY_LOG) return logf(v);
    if (OP == UNARY_SQRT) return sqrtf(v);
    return fabsf(v);  // UNARY_ABS
}

// dx given x, y = op(x) and the upstream g.
template <int OP>
__device__ __forceinline__ float unary_df(float x, float y, float g, float c) {
    if (OP == UNARY_NEG) return -g;
    if (OP == UNARY_ADD_SCALAR) return g;
    if (OP == UNARY_MUL_SCALAR) return g * c;
    // PyTorch returns zeros for exponent 0 (instead of 0·x⁻¹, NaN at 0).
    if (OP == UNARY_POW_SCALAR) return c == 0.f ? 0.f : g * c * powf(x, c - 1.f);
    if (OP == UNARY_RELU) return x > 0.f ? g : 0.f;
    if (OP == UNARY_LEAKY_RELU) return x > 0.f ? g : g * c;
    if (OP == UNARY_TANH) return g * (1.f - y * y);
    if (OP == UNARY_SIGMOID) return g * y * (1.f - y);
    if (OP == UNARY_EXP) return g * y;
    if (OP == UNARY_LOG) return g / x;
    if (OP == UNARY_SQRT) return g * 0.5f / y;
    return x > 0.f ? g : (x < 0.f ? -g : 0.f);  // UNARY_ABS
}

template <int OP>
__device__ void unary_loop(const UnaryArgs a, const float* __restrict__ x, float* __restrict__ y) {
    GRID_LOOP(i, a.n) y[i] = unary_f<OP>(x[i], a.scalar);
}

template <int OP>
__device__ void unary_back_loop(const UnaryArgs a, const float* __restrict__ x, const float* __restrict__ y,
                                const float* __restrict__ dy, float* __restrict__ dx) {
    GRID_LOOP(i, a.n) dx[i] = unary_df<OP>(x[i], y[i], dy[i], a.scalar);
}

#define UNARY_CASES(CALL)                   \
    switch (a.op) {                         \
        case UNARY_NEG: CALL(UNARY_NEG); break; \
        case UNARY_ADD_SCALAR: CALL(UNARY_ADD_SCALAR); break; \
        case UNARY_MUL_SCALAR: CALL(UNARY_MUL_SCALAR); break; \
        case UNARY_POW_SCALAR: CALL(UNARY_POW_SCALAR); break; \
        case UNARY_RELU: CALL(UNARY_RELU); break; \
        case UNARY_LEAKY_RELU: CALL(UNARY_LEAKY_RELU); break; \
        case UNARY_TANH: CALL(UNARY_TANH); break; \
        case UNARY_SIGMOID: CALL(UNARY_SIGMOID); break; \
        case UNARY_EXP: CALL(UNARY_EXP); break; \
        case UNARY_LOG: CALL(UNARY_LOG); break; \
        case UNARY_SQRT: CALL(UNARY_SQRT); break; \
        case UNARY_ABS: CALL(UNARY_ABS); break; \
        default: break;                     \
    }

// y = op(x) over a.n elements.
extern "C" __global__ void unary_forward_f32(const UnaryArgs a, const float* __restrict__ x, float* __restrict__ y) {
#define CALL(OP) unary_loop<OP>(a, x, y)
    UNARY_CASES(CALL)
#undef CALL
}

// dx = op'(x) · dy, fused per op (y = op(x) is passed for the ops whose derivative uses it).
extern "C" __global__ void unary_backward_f32(const UnaryArgs a, const float* __restrict__ x,
                                              const float* __restrict__ y, const float* __restrict__ dy,
                                              float* __restrict__ dx) {
#define CALL(OP) unary_back_loop<OP>(a, x, y, dy, dx)
    UNARY_CASES(CALL)
#undef CALL
}

// ---- binary -----------------------------------------------------------------------------------

template <int OP>
__device__ __forceinline__ float binary_f(float p, float q) {
    if (OP == BINARY_ADD) return p + q;
    if (OP == BINARY_SUB) return p - q;
    if (OP == BINARY_MUL) return p * q;
    return p / q;
}

template <int OP>
__device__ void binary_same_loop(const BinaryArgs& a, const float* __restrict__ x, const float* __restrict__ z,
                                 float* __restrict__ y) {
    GRID_LOOP(i, a.n) y[i] = binary_f<OP>(x[i], z[i]);
}

// Output element i of the broadcast: the multi-index of i over `dims`, dotted with each
// operand's strides (launchers merge contiguous dims first, so the rank is usually 1–3).
template <int OP>
__device__ void binary_bcast_loop(const BinaryArgs& a, const float* __restrict__ x, const float* __restrict__ z,
                                  float* __restrict__ y) {
    GRID_LOOP(i, a.n) {
        i64 rest = i, oa = 0, ob = 0;
        for (int d = a.rank - 1; d >= 0; --d) {
            const i64 idx = rest % a.dims[d];
            rest /= a.dims[d];
            oa += idx * a.strides_a[d];
            ob += idx * a.strides_b[d];
        }
        y[i] = binary_f<OP>(x[oa], z[ob]);
    }
}

#define BINARY_CASES(CALL)                     \
    switch (a.op) {                            \
        case BINARY_ADD: CALL(BINARY_ADD); break; \
        case BINARY_SUB: CALL(BINARY_SUB); break; \
        case BINARY_MUL: CALL(BINARY_MUL); break; \
        case BINARY_DIV: CALL(BINARY_DIV); break; \
        default: break;                        \
    }

// y = a op b for operands of the output's shape (uses a.n and a.op only).
extern "C" __global__ void binary_same_f32(const BinaryArgs a, const float* __restrict__ x,
                                           const float* __restrict__ z, float* __restrict__ y) {
#define CALL(OP) binary_same_loop<OP>(a, x, z, y)
    BINARY_CASES(CALL)
#undef CALL
}

// y = a op b with NumPy broadcasting described by dims / strides (stride 0 repeats).
extern "C" __global__ void binary_broadcast_f32(const BinaryArgs a, const float* __restrict__ x,
                                                const float* __restrict__ z, float* __restrict__ y) {
#define CALL(OP) binary_bcast_loop<OP>(a, x, z, y)
    BINARY_CASES(CALL)
#undef CALL
}

// ---- PReLU ------------------------------------------------------------------------------------

__device__ __forceinline__ i64 prelu_channel(const PreluArgs& a, i64 i) {
    return a.channels == 1 ? 0 : (i / a.inner) % a.channels;
}

// y = x if x > 0 else α_c·x.
extern "C" __global__ void prelu_forward_f32(const PreluArgs a, const float* __restrict__ x,
                                             const float* __restrict__ alpha, float* __restrict__ y) {
    GRID_LOOP(i, a.n) {
        const float v = x[i];
        y[i] = v > 0.f ? v : alpha[prelu_channel(a, i)] * v;
    }
}

// dx = dy if x > 0 else α_c·dy.
extern "C" __global__ void prelu_backward_input_f32(const PreluArgs a, const float* __restrict__ x,
                                                    const float* __restrict__ alpha, const float* __restrict__ dy,
                                                    float* __restrict__ dx) {
    GRID_LOOP(i, a.n) {
        const float g = dy[i];
        dx[i] = x[i] > 0.f ? g : alpha[prelu_channel(a, i)] * g;
    }
}

// Partial dα: block (blockIdx.x = channel c, blockIdx.y = split s) sums dy·x over x ≤ 0 for the
// elements s·per_split .. of channel c (its N·inner elements in row-major order) into
// partial[c·gridDim.y + s]. The launcher then sums the [channels, splits] partials over splits
// (reduce_block_f32); a fixed split keeps the result deterministic. Block: any multiple of 32
// up to 1024 threads.
extern "C" __global__ void prelu_backward_alpha_f32(const PreluArgs a, const float* __restrict__ x,
                                                    const float* __restrict__ dy, float* __restrict__ partial) {
    __shared__ double sh[32];
    const i64 per_channel = a.n / a.channels;
    for (i64 c = blockIdx.x; c < a.channels; c += gridDim.x) {
        const i64 s = blockIdx.y;
        const i64 lo = s * a.per_split;
        const i64 hi = lo + a.per_split < per_channel ? lo + a.per_split : per_channel;
        double acc = 0.0;
        for (i64 e = lo + threadIdx.x; e < hi; e += blockDim.x) {
            const i64 i = ((e / a.inner) * a.channels + c) * a.inner + e % a.inner;
            const float v = x[i];
            if (!(v > 0.f)) acc += (double)(dy[i] * v);
        }
        acc = block_sum_f64(acc, sh);
        if (threadIdx.x == 0) partial[c * gridDim.y + s] = (float)acc;
    }
}
