// im2col (`unfold`, torch.nn.functional.unfold, zero padding) and its adjoint col2im (`fold`,
// summing overlaps). Each is the other's backward. CPU reference: src/backend/cpu/unfold.rs.
// fold gathers (one thread per image pixel sums the window taps that read it), so there are no
// atomics. Grid: 1-D, any size; block 256.
#include "common.cuh"

// Mirrors `UnfoldArgs` (src/backend/cuda/params.rs).
struct UnfoldArgs {
    i64 n, c, h, w, oh, ow;
    int kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
};

// cols[n, (c, ki, kj), (oy, ox)] = x[n, c, oy·s_h − p_h + ki·d_h, ox·s_w − p_w + kj·d_w] or 0.
extern "C" __global__ void unfold_forward_f32(const UnfoldArgs a, const float* __restrict__ x, float* __restrict__ cols) {
    const i64 l = a.oh * a.ow, khkw = (i64)a.kh * a.kw;
    GRID_LOOP(i, a.n * a.c * khkw * l) {
        const i64 pos = i % l, row = (i / l) % (a.c * khkw), nb = i / (l * a.c * khkw);
        const i64 ch = row / khkw;
        const int tapi = (int)(row - ch * khkw), ki = tapi / a.kw, kj = tapi - ki * a.kw;
        const int oy = (int)(pos / a.ow), ox = (int)(pos - (i64)oy * a.ow);
        const int iy = oy * a.stride_h - a.pad_h + ki * a.dil_h;
        const int ix = ox * a.stride_w - a.pad_w + kj * a.dil_w;
        float v = 0.f;
        if (iy >= 0 && iy < a.h && ix >= 0 && ix < a.w) v = x[((nb * a.c + ch) * a.h + iy) * a.w + ix];
        cols[i] = v;
    }
}

// x[n, c, iy, ix] = Σ over taps (ki, kj) and positions (oy, ox) that read (iy, ix) of cols.
extern "C" __global__ void fold_forward_f32(const UnfoldArgs a, const float* __restrict__ cols, float* __restrict__ x) {
    const i64 l = a.oh * a.ow, khkw = (i64)a.kh * a.kw, hw = a.h * a.w;
    GRID_LOOP(i, a.n * a.c * hw) {
        const i64 pix = i % hw, nc = i / hw;
        const int iy = (int)(pix / a.w), ix = (int)(pix - (i64)iy * a.w);
        const float* base = cols + nc * khkw * l;  // rows of channel c of sample n
        float s = 0.f;
        for (int ki = 0; ki < a.kh; ++ki) {
            const int ty = iy + a.pad_h - ki * a.dil_h;
            if (ty < 0 || ty % a.stride_h) continue;
            const int oy = ty / a.stride_h;
            if (oy >= a.oh) continue;
            for (int kj = 0; kj < a.kw; ++kj) {
                const int tx = ix + a.pad_w - kj * a.dil_w;
                if (tx < 0 || tx % a.stride_w) continue;
                const int ox = tx / a.stride_w;
                if (ox < a.ow) s += base[(i64)(ki * a.kw + kj) * l + (i64)oy * a.ow + ox];
            }
        }
        x[i] = s;
    }
}
