// One Adam / AdamW step in place, with PyTorch's torch.optim.Adam (non-fused) arithmetic; the
// host computes the bias corrections in f64 (step_size = lr/(1 − β1^t), bc2_sqrt = √(1 − β2^t)).
// CPU reference: src/backend/cpu/adam.rs. Grid: 1-D, any size; block 256.
#include "common.cuh"

// Mirrors `AdamArgs` (src/backend/cuda/params.rs).
struct AdamArgs {
    i64 n;
    float step_size, bc2_sqrt, decay, l2;
    float beta1, beta2, eps;
    int _pad;
};

extern "C" __global__ void adam_step_f32(const AdamArgs a, float* __restrict__ param, const float* __restrict__ grad,
                                         float* __restrict__ m, float* __restrict__ v) {
    GRID_LOOP(i, a.n) {
        float w = param[i], g = grad[i];
        if (a.l2 != 0.f) g += a.l2 * w;  // Adam's L2 penalty (AdamW decays the weight instead)
        w *= a.decay;
        const float mi = a.beta1 * m[i] + (1.f - a.beta1) * g;
        const float vi = a.beta2 * v[i] + (1.f - a.beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = w - a.step_size * mi / (sqrtf(vi) / a.bc2_sqrt + a.eps);
    }
}
