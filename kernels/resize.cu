// Nearest and bilinear resizing of NCHW planes (PyTorch `interpolate` given an output size) and
// its adjoint. CPU reference: src/backend/cpu/resize.rs. Both modes reduce to per-axis taps
// (i0, i1, λ), value = (1 − λ)·x[i0] + λ·x[i1] (nearest: i1 = i0, λ = 0), computed in f32 with
// explicitly rounded operations (no FMA contraction) so indices round exactly as on the CPU.
// The backward gathers: each input index finds, by binary search, the contiguous range of
// outputs whose taps touch it (taps are monotone), so there are no atomics.
// Grid: 1-D, any size; block 256.
#include "common.cuh"

#define RESIZE_NEAREST 0
#define RESIZE_BILINEAR 1

// Mirrors `ResizeArgs` (src/backend/cuda/params.rs).
struct ResizeArgs {
    i64 planes, h, w, oh, ow;
    int mode, align_corners;
};

struct Tap {
    int i0, i1;
    float l;
};

__device__ __forceinline__ Tap tap(int d, int size, int out, int mode, bool align) {
    const int last = size - 1;
    Tap t;
    if (mode == RESIZE_NEAREST) {
        const float scale = __fdiv_rn((float)size, (float)out);
        const int i = (int)floorf(__fmul_rn((float)d, scale));
        t.i0 = t.i1 = i < last ? i : last;
        t.l = 0.f;
        return t;
    }
    float src;
    if (align) {
        const float scale = out > 1 ? __fdiv_rn((float)last, (float)(out - 1)) : 0.f;
        src = __fmul_rn(scale, (float)d);
    } else {
        const float scale = __fdiv_rn((float)size, (float)out);
        src = fmaxf(__fsub_rn(__fmul_rn(scale, __fadd_rn((float)d, 0.5f)), 0.5f), 0.f);
    }
    const int i0 = (int)floorf(src);
    t.i0 = i0 < last ? i0 : last;
    t.i1 = t.i0 + 1 < last ? t.i0 + 1 : last;
    t.l = fminf(fmaxf(__fsub_rn(src, (float)t.i0), 0.f), 1.f);
    return t;
}

// Outputs [lo, hi] along an axis whose taps touch input index i: i1(d) ≥ i and i0(d) ≤ i
// (both monotone in d). Empty when lo > hi.
__device__ __forceinline__ void touching(int i, int size, int out, int mode, bool align, int& lo, int& hi) {
    int a = 0, b = out;  // first d with i1(d) >= i
    while (a < b) {
        const int m = (a + b) >> 1;
        if (tap(m, size, out, mode, align).i1 >= i) b = m; else a = m + 1;
    }
    lo = a;
    a = 0;
    b = out;  // first d with i0(d) > i
    while (a < b) {
        const int m = (a + b) >> 1;
        if (tap(m, size, out, mode, align).i0 > i) b = m; else a = m + 1;
    }
    hi = a - 1;
}

// Weight of input index i in output d's interpolation (both taps may be i at the border).
__device__ __forceinline__ float weight(const Tap& t, int i) {
    return (t.i0 == i ? 1.f - t.l : 0.f) + (t.i1 == i ? t.l : 0.f);
}

extern "C" __global__ void resize2d_forward_f32(const ResizeArgs a, const float* __restrict__ x, float* __restrict__ y) {
    const i64 ohw = a.oh * a.ow;
    const bool align = a.align_corners != 0;
    GRID_LOOP(i, a.planes * ohw) {
        const i64 pl = i / ohw, j = i - pl * ohw;
        const int oy = (int)(j / a.ow), ox = (int)(j - (i64)oy * a.ow);
        const Tap ty = tap(oy, (int)a.h, (int)a.oh, a.mode, align);
        const Tap tx = tap(ox, (int)a.w, (int)a.ow, a.mode, align);
        const float* p = x + pl * a.h * a.w;
        const float* r0 = p + (i64)ty.i0 * a.w;
        const float* r1 = p + (i64)ty.i1 * a.w;
        const float top = (1.f - tx.l) * r0[tx.i0] + tx.l * r0[tx.i1];
        const float bottom = (1.f - tx.l) * r1[tx.i0] + tx.l * r1[tx.i1];
        y[i] = (1.f - ty.l) * top + ty.l * bottom;
    }
}

extern "C" __global__ void resize2d_backward_f32(const ResizeArgs a, const float* __restrict__ dy, float* __restrict__ dx) {
    const i64 hw = a.h * a.w;
    const bool align = a.align_corners != 0;
    GRID_LOOP(i, a.planes * hw) {
        const i64 pl = i / hw, j = i - pl * hw;
        const int iy = (int)(j / a.w), ix = (int)(j - (i64)iy * a.w);
        int y0, y1, x0, x1;
        touching(iy, (int)a.h, (int)a.oh, a.mode, align, y0, y1);
        touching(ix, (int)a.w, (int)a.ow, a.mode, align, x0, x1);
        const float* g = dy + pl * a.oh * a.ow;
        float s = 0.f;
        for (int oy = y0; oy <= y1; ++oy) {
            const float wy = weight(tap(oy, (int)a.h, (int)a.oh, a.mode, align), iy);
            for (int ox = x0; ox <= x1; ++ox) {
                const float wx = weight(tap(ox, (int)a.w, (int)a.ow, a.mode, align), ix);
                s += wx * (wy * g[(i64)oy * a.ow + ox]);
            }
        }
        dx[i] = s;
    }
}
