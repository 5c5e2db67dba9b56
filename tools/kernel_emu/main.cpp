// Runs the 16 implicit-GEMM conv and tiled matmul kernels of kernels/conv.cu and kernels/matmul.cu
// (f32 SIMT and tf32 mma, 64 and 128 tiles) under emu.hpp against double-precision reference
// loops on awkward shapes, with the error bounds of tests/cuda_tf32.rs. Buffers carry NaN guard
// zones: an out-of-bounds read turns an output NaN, an out-of-bounds write is reported.
// Exit status: 0 when every check passes.
#include "conv.cu"
#include "matmul.cu"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "buf.hpp"

static std::mt19937_64 rng(7);
static int failures = 0;

static Buf randn(size_t n, float sd) {
    std::normal_distribution<float> d(0.f, sd);
    Buf b(n);
    for (size_t i = 0; i < n; ++i) b.p()[i] = d(rng);
    return b;
}

// Passes when every |got − ref| ≤ c·S + 2^-22·|ref| + 1e-30, S = Σ|products|: tf32
// c = (2.01 + (K+16)/2048)·2^-11, f32 c = (K+16)·2^-23 (tests/cuda_tf32.rs).
static void check(const std::string& what, const std::string& kernel, const Buf& got, const std::vector<double>& ref,
                  const std::vector<double>& s, long k, bool tf32) {
    const double c = tf32 ? (2.01 + (k + 16) / 2048.0) / 2048.0 : (k + 16) / 8388608.0;
    double worst = 0;
    long bad = 0, first = -1;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double err = std::fabs((double)got[i] - ref[i]);
        const double tol = c * s[i] + std::fabs(ref[i]) / 4194304.0 + 1e-30;
        if (!(err <= tol)) {
            if (first < 0) first = (long)i;
            ++bad;
        }
        worst = std::max(worst, err / tol);
    }
    const bool guards = got.guards_intact();
    printf("%-36s %-38s err/bound %.3f %s", what.c_str(), kernel.c_str(), worst, bad || !guards ? "FAIL" : "PASS");
    if (bad) printf(" (%ld bad, first [%ld]: got %g want %g)", bad, first, got[first], ref[first]);
    if (!guards) printf(" (wrote outside the output)");
    printf("\n");
    failures += bad || !guards;
}

// ---- conv -------------------------------------------------------------------------------------

struct Conv {
    const char* name;
    long n, cin, h, w, cout;
    int kh, kw, sh, sw, ph, pw, dh, dw, groups;
    bool reflect, bias;
    int splits;  // weight-gradient position splits asked for
};

static ConvArgs args_of(const Conv& c) {
    ConvArgs a{};
    a.n = c.n, a.c_in = c.cin, a.h = c.h, a.w = c.w, a.c_out = c.cout;
    a.oh = (c.h + 2 * c.ph - c.dh * (c.kh - 1) - 1) / c.sh + 1;
    a.ow = (c.w + 2 * c.pw - c.dw * (c.kw - 1) - 1) / c.sw + 1;
    a.kh = c.kh, a.kw = c.kw, a.stride_h = c.sh, a.stride_w = c.sw, a.pad_h = c.ph, a.pad_w = c.pw;
    a.dil_h = c.dh, a.dil_w = c.dw, a.groups = c.groups, a.reflect = c.reflect, a.has_bias = c.bias;
    a.split_len = a.n * a.oh * a.ow;
    a.splits = 1;
    return a;
}

// The source index of padded coordinate i (−1: zero padding), PyTorch's zero / reflect padding.
static long pad_src(long i, long n, bool reflect) {
    if (i >= 0 && i < n) return i;
    if (!reflect) return -1;
    return i < 0 ? -i : 2 * (n - 1) - i;
}

// Calls f(y index, x index, w index) for every product of the convolution.
template <class F>
static void conv_visit(const ConvArgs& a, F f) {
    const long cg = a.c_in / a.groups, mg = a.c_out / a.groups;
    for (long nb = 0; nb < a.n; ++nb)
        for (long co = 0; co < a.c_out; ++co)
            for (long oy = 0; oy < a.oh; ++oy)
                for (long ox = 0; ox < a.ow; ++ox)
                    for (long ci = 0; ci < cg; ++ci)
                        for (long ki = 0; ki < a.kh; ++ki)
                            for (long kj = 0; kj < a.kw; ++kj) {
                                const long sy = pad_src(oy * a.stride_h - a.pad_h + ki * a.dil_h, a.h, a.reflect);
                                const long sx = pad_src(ox * a.stride_w - a.pad_w + kj * a.dil_w, a.w, a.reflect);
                                if (sy < 0 || sx < 0) continue;
                                const long g = co / mg;
                                f(((nb * a.c_out + co) * a.oh + oy) * a.ow + ox,
                                  ((nb * a.c_in + g * cg + ci) * a.h + sy) * a.w + sx, ((co * cg + ci) * a.kh + ki) * a.kw + kj);
                            }
}

typedef void (*ConvFwd)(const ConvArgs, const float*, const float*, const float*, float*);
typedef void (*ConvBwd)(const ConvArgs, const float*, const float*, float*);

struct ConvKernels {
    const char* suffix;
    bool tf32;
    ConvFwd fwd;
    ConvBwd dx, dw;
};

static const ConvKernels CONV_KERNELS[] = {
    {"igemm64_f32", false, conv2d_forward_igemm64_f32, conv2d_backward_input_igemm64_f32,
     conv2d_backward_weight_igemm64_f32},
    {"igemm128_f32", false, conv2d_forward_igemm128_f32, conv2d_backward_input_igemm128_f32,
     conv2d_backward_weight_igemm128_f32},
    {"igemm64_tf32", true, conv2d_forward_igemm64_tf32, conv2d_backward_input_igemm64_tf32,
     conv2d_backward_weight_igemm64_tf32},
    {"igemm128_tf32", true, conv2d_forward_igemm128_tf32, conv2d_backward_input_igemm128_tf32,
     conv2d_backward_weight_igemm128_tf32},
};

static void conv_case(const Conv& c) {
    const ConvArgs a = args_of(c);
    const long cg = a.c_in / a.groups, mg = a.c_out / a.groups, taps = (long)a.kh * a.kw;
    const long nx = a.n * a.c_in * a.h * a.w, nw = a.c_out * cg * taps, ny = a.n * a.c_out * a.oh * a.ow;
    const long P = a.n * a.oh * a.ow;
    Buf x = randn(nx, 1.f), w = randn(nw, 0.3f), b = randn(a.c_out, 1.f), dy = randn(ny, 1.f);
    std::vector<double> y(ny), sy(ny), dx(nx), sdx(nx), dw(nw), sdw(nw);
    for (long i = 0; i < ny; ++i) {
        const double bias = c.bias ? b[i / (a.oh * a.ow) % a.c_out] : 0.0;
        y[i] = bias, sy[i] = std::fabs(bias);
    }
    conv_visit(a, [&](long yi, long xi, long wi) {
        const double xv = x[xi], wv = w[wi], gv = dy[yi];
        y[yi] += wv * xv, sy[yi] += std::fabs(wv * xv);
        dx[xi] += wv * gv, sdx[xi] += std::fabs(wv * gv);
        dw[wi] += gv * xv, sdw[wi] += std::fabs(gv * xv);
    });
    // The weight gradient in `splits` position ranges, one partial gradient each (summed here).
    ConvArgs sa = a;
    sa.split_len = (P + c.splits - 1) / c.splits;
    sa.splits = (int)((P + sa.split_len - 1) / sa.split_len);
    const std::string dw_name = std::string(c.name) + " dw/" + std::to_string(sa.splits);
    // Grids smaller than the tile counts, so the grid-stride loops take several turns.
    const uint3 grid{2, 2, 2};
    for (const ConvKernels& k : CONV_KERNELS) {
        Buf out(ny), gx(nx), part(sa.splits * nw);
        emu::launch(grid, [&] { k.fwd(a, x.p(), w.p(), b.p(), out.p()); });
        check(std::string(c.name) + " y", std::string("conv2d_forward_") + k.suffix, out, y, sy, cg * taps, k.tf32);
        emu::launch(grid, [&] { k.dx(a, dy.p(), w.p(), gx.p()); });
        // + 9 (as tests/cuda_tf32.rs): each staged dy value sums up to 9 reflect preimages.
        check(std::string(c.name) + " dx", std::string("conv2d_backward_input_") + k.suffix, gx, dx, sdx, mg * taps + 9,
              k.tf32);
        emu::launch({2, 2, 3}, [&] { k.dw(sa, x.p(), dy.p(), part.p()); });
        if (!part.guards_intact()) printf("%s: weight-gradient partials written out of bounds\n", dw_name.c_str());
        Buf gw(nw, 0.f);
        for (long s = 0; s < sa.splits; ++s)
            for (long i = 0; i < nw; ++i) gw.p()[i] += part[s * nw + i];
        failures += !part.guards_intact();
        check(dw_name, std::string("conv2d_backward_weight_") + k.suffix, gw, dw, sdw, P, k.tf32);
    }
}

// ---- matmul -----------------------------------------------------------------------------------

typedef void (*MatmulFn)(const MatmulArgs, const float*, const float*, float*);

// C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b]; a batch stride of 0 broadcasts; `pad` is added to
// the leading dimensions of A and B.
static void matmul_case(long batch, long m, long n, long k, bool ta, bool tb, bool a_batched, bool b_batched, long pad) {
    MatmulArgs p{};
    p.m = m, p.n = n, p.k = k, p.batch = batch;
    p.lda = (ta ? m : k) + pad, p.ldb = (tb ? k : n) + pad, p.ldc = n;
    const long a_len = (ta ? k : m) * p.lda, b_len = (tb ? n : k) * p.ldb;
    p.stride_a = a_batched ? a_len : 0, p.stride_b = b_batched ? b_len : 0, p.stride_c = m * n;
    p.trans_a = ta, p.trans_b = tb, p.alpha = 1.5f, p.beta = 0.5f;
    Buf A = randn((a_batched ? batch : 1) * a_len, 1.f), B = randn((b_batched ? batch : 1) * b_len, 1.f);
    Buf C0 = randn(batch * m * n, 1.f);
    std::vector<double> ref(batch * m * n), S(batch * m * n);
    for (long bi = 0; bi < batch; ++bi)
        for (long i = 0; i < m; ++i)
            for (long j = 0; j < n; ++j) {
                double s = 0, sa = 0;
                for (long q = 0; q < k; ++q) {
                    const double av = A[bi * p.stride_a + (ta ? q * p.lda + i : i * p.lda + q)];
                    const double bv = B[bi * p.stride_b + (tb ? j * p.ldb + q : q * p.ldb + j)];
                    s += av * bv, sa += std::fabs(av * bv);
                }
                const long o = (bi * m + i) * n + j;
                ref[o] = 1.5 * s + 0.5 * C0[o];
                S[o] = 1.5 * sa + 0.5 * std::fabs(C0[o]);
            }
    char name[96];
    snprintf(name, sizeof name, "matmul b%ld %ldx%ldx%ld t%d%d bc%d%d ld+%ld", batch, m, n, k, ta, tb, a_batched,
             b_batched, pad);
    const struct {
        const char* name;
        bool tf32;
        MatmulFn f;
    } kernels[] = {{"matmul_tile64_f32", false, matmul_tile64_f32},
                   {"matmul_tile128_f32", false, matmul_tile128_f32},
                   {"matmul_tile64_tf32", true, matmul_tile64_tf32},
                   {"matmul_tile128_tf32", true, matmul_tile128_tf32}};
    for (const auto& kf : kernels) {
        Buf c(batch * m * n);
        std::copy(C0.p(), C0.p() + batch * m * n, c.p());
        emu::launch({2, 2, 2}, [&] { kf.f(p, A.p(), B.p(), c.p()); });
        check(name, kf.name, c, ref, S, k, kf.tf32);
    }
}

int main() {
    // name, n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups, reflect, bias, splits
    const Conv convs[] = {
        {"s2_reflect", 2, 19, 13, 11, 37, 3, 3, 2, 2, 1, 1, 1, 1, 1, true, true, 3},
        {"groups3_s2_reflect", 2, 51, 15, 16, 48, 3, 3, 2, 2, 1, 1, 1, 1, 3, true, true, 2},
        {"cout130_nobias", 1, 20, 9, 10, 130, 3, 3, 1, 1, 1, 1, 1, 1, 1, false, false, 1},
        {"cin150_reflect", 1, 150, 7, 6, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true, 2},
        {"dil2", 1, 20, 12, 11, 24, 3, 3, 1, 1, 2, 2, 2, 2, 1, false, true, 1},
        {"5x3_s2x1_d1x2", 2, 9, 14, 9, 11, 5, 3, 2, 1, 2, 0, 1, 2, 1, false, true, 2},
        {"1x1", 3, 70, 7, 5, 33, 1, 1, 1, 1, 0, 0, 1, 1, 1, false, true, 2},
        {"7x7_reflect", 1, 6, 13, 12, 18, 7, 7, 1, 1, 3, 3, 1, 1, 1, true, true, 1},
        {"tiny", 1, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, false, true, 1},
    };
    for (const Conv& c : convs) conv_case(c);
    // batch, m, n, k, trans_a, trans_b, a batched, b batched, leading-dimension padding
    matmul_case(2, 70, 33, 9, false, false, true, true, 0);
    matmul_case(3, 129, 250, 33, true, true, false, true, 0);
    matmul_case(1, 140, 130, 100, false, true, true, false, 0);
    matmul_case(2, 16, 16, 8, true, false, true, true, 3);
    matmul_case(2, 37, 19, 45, false, false, true, false, 5);
    matmul_case(1, 5, 7, 3, true, true, true, true, 0);
    printf("%ld warp-level mma calls emulated; %d checks failing\n", emu::g.mma_calls, failures);
    return failures != 0;
}
