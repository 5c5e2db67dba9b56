// 2-D average and max pooling (PyTorch semantics, floor mode), forward and backward.
// CPU reference: src/backend/cpu/pool.rs. Windows are clipped to the image, so padded positions
// count as zeros (avg, unless count_include_pad divides by the full window) or never win (max).
// The backwards gather (one thread per input pixel sums the windows that cover it), so there
// are no atomics and results are deterministic. Grid: 1-D, any size; block 256.
#include "common.cuh"

// Mirrors `PoolArgs` (src/backend/cuda/params.rs).
struct PoolArgs {
    i64 planes, h, w, oh, ow;
    int kh, kw, stride_h, stride_w, pad_h, pad_w, count_include_pad, _pad;
};

// Clipped input range [lo, hi) of window o along an axis.
__device__ __forceinline__ void clip(int o, int s, int pad, int k, int size, int& lo, int& hi) {
    const int start = o * s - pad;
    lo = start > 0 ? start : 0;
    const int end = start + k;
    hi = end < size ? end : size;
}

// Output windows [lo, hi] along an axis whose (unclipped) range covers input index i.
__device__ __forceinline__ void covering(int i, int s, int pad, int k, int out, int& lo, int& hi) {
    const int num = i + pad - k + 1;  // o·s ≥ num
    lo = num > 0 ? (num + s - 1) / s : 0;
    hi = (i + pad) / s;
    if (hi > out - 1) hi = out - 1;
}

__device__ __forceinline__ float avg_divisor(const PoolArgs& a, int y0, int y1, int x0, int x1) {
    if (a.count_include_pad) return (float)(a.kh * a.kw);
    const int n = (y1 - y0) * (x1 - x0);
    return (float)(n > 1 ? n : 1);
}

// Plane offset of the first maximum of window (oy, ox), row-major scan; NaN handling as the CPU.
__device__ __forceinline__ i64 window_argmax(const PoolArgs& a, const float* __restrict__ plane, int oy, int ox) {
    int y0, y1, x0, x1;
    clip(oy, a.stride_h, a.pad_h, a.kh, (int)a.h, y0, y1);
    clip(ox, a.stride_w, a.pad_w, a.kw, (int)a.w, x0, x1);
    float best = -f32_inf();
    i64 at = (i64)y0 * a.w + x0;
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) {
            const float v = plane[(i64)y * a.w + x];
            if (v > best || f32_isnan(v)) {
                best = v;
                at = (i64)y * a.w + x;
            }
        }
    return at;
}

extern "C" __global__ void avg_pool2d_forward_f32(const PoolArgs a, const float* __restrict__ x, float* __restrict__ y) {
    const i64 ohw = a.oh * a.ow;
    GRID_LOOP(i, a.planes * ohw) {
        const i64 pl = i / ohw, j = i - pl * ohw;
        const int oy = (int)(j / a.ow), ox = (int)(j - (i64)oy * a.ow);
        int y0, y1, x0, x1;
        clip(oy, a.stride_h, a.pad_h, a.kh, (int)a.h, y0, y1);
        clip(ox, a.stride_w, a.pad_w, a.kw, (int)a.w, x0, x1);
        const float* plane = x + pl * a.h * a.w;
        float s = 0.f;
        for (int yy = y0; yy < y1; ++yy)
            for (int xx = x0; xx < x1; ++xx) s += plane[(i64)yy * a.w + xx];
        y[i] = s / avg_divisor(a, y0, y1, x0, x1);
    }
}

extern "C" __global__ void avg_pool2d_backward_f32(const PoolArgs a, const float* __restrict__ dy, float* __restrict__ dx) {
    const i64 hw = a.h * a.w;
    GRID_LOOP(i, a.planes * hw) {
        const i64 pl = i / hw, j = i - pl * hw;
        const int iy = (int)(j / a.w), ix = (int)(j - (i64)iy * a.w);
        int oy0, oy1, ox0, ox1;
        covering(iy, a.stride_h, a.pad_h, a.kh, (int)a.oh, oy0, oy1);
        covering(ix, a.stride_w, a.pad_w, a.kw, (int)a.ow, ox0, ox1);
        const float* g = dy + pl * a.oh * a.ow;
        float s = 0.f;
        for (int oy = oy0; oy <= oy1; ++oy) {
            int y0, y1;
            clip(oy, a.stride_h, a.pad_h, a.kh, (int)a.h, y0, y1);
            for (int ox = ox0; ox <= ox1; ++ox) {
                int x0, x1;
                clip(ox, a.stride_w, a.pad_w, a.kw, (int)a.w, x0, x1);
                s += g[(i64)oy * a.ow + ox] / avg_divisor(a, y0, y1, x0, x1);
            }
        }
        dx[i] = s;
    }
}

extern "C" __global__ void max_pool2d_forward_f32(const PoolArgs a, const float* __restrict__ x, float* __restrict__ y) {
    const i64 ohw = a.oh * a.ow;
    GRID_LOOP(i, a.planes * ohw) {
        const i64 pl = i / ohw, j = i - pl * ohw;
        const int oy = (int)(j / a.ow), ox = (int)(j - (i64)oy * a.ow);
        const float* plane = x + pl * a.h * a.w;
        y[i] = plane[window_argmax(a, plane, oy, ox)];
    }
}

// Each window's gradient goes to its first maximum (PyTorch's choice), recomputed from x.
extern "C" __global__ void max_pool2d_backward_f32(const PoolArgs a, const float* __restrict__ x,
                                                   const float* __restrict__ dy, float* __restrict__ dx) {
    const i64 hw = a.h * a.w;
    GRID_LOOP(i, a.planes * hw) {
        const i64 pl = i / hw, j = i - pl * hw;
        const int iy = (int)(j / a.w), ix = (int)(j - (i64)iy * a.w);
        int oy0, oy1, ox0, ox1;
        covering(iy, a.stride_h, a.pad_h, a.kh, (int)a.oh, oy0, oy1);
        covering(ix, a.stride_w, a.pad_w, a.kw, (int)a.ow, ox0, ox1);
        const float* plane = x + pl * hw;
        const float* g = dy + pl * a.oh * a.ow;
        float s = 0.f;
        for (int oy = oy0; oy <= oy1; ++oy)
            for (int ox = ox0; ox <= ox1; ++ox)
                if (window_argmax(a, plane, oy, ox) == j) s += g[(i64)oy * a.ow + ox];
        dx[i] = s;
    }
}
