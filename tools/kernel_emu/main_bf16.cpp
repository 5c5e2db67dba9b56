// Runs the bf16 tensor-core corr_warp kernels of kernels/corr_warp_bf16.cu under emu.hpp in the
// launch sequence of src/backend/cuda/launch/corr_warp/bf16.rs (packing, forward, delta, slab
// backward with its GEMMs; its padding, slab heights and grid shapes) on awkward shapes, against
// double-precision references computed from the same bf16-rounded inputs, with the tolerances of
// tests/cuda_bf16.rs. Buffers carry NaN guard zones and start NaN-filled (in both bf16 halves):
// a read out of bounds or of memory never written turns an output NaN or stops the emulator.
// Exit status: 0 when every check passes.
#include "corr_warp_bf16.cu"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "buf.hpp"

static std::mt19937_64 rng(11);
static int failures = 0;
static const float kFillBf16 = __uint_as_float(0x7fbb7fbbu);  // never-written bf16 pairs: NaN, NaN
static const double kU = 1.0 / 256.0;  // bf16 unit roundoff

static float rn(float x) { return emu::bf16_to_float(emu::bf16_rn(x)); }

// Every |got − ref| ≤ tol[i] (NaN fails); prints the worst err/tol.
static void check(const std::string& what, const std::string& kernel, const Buf& got, const std::vector<double>& ref,
                  const std::vector<double>& tol) {
    double worst = 0;
    long bad = 0, first = -1;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double err = std::fabs((double)got[i] - ref[i]);
        if (!(err <= tol[i])) {
            if (first < 0) first = (long)i;
            ++bad;
        }
        worst = std::max(worst, err / tol[i]);
    }
    const bool guards = got.guards_intact();
    printf("%-34s %-32s err/bound %.3f %s", what.c_str(), kernel.c_str(), worst, bad || !guards ? "FAIL" : "PASS");
    if (bad) printf(" (%ld bad, first [%ld]: got %g want %g)", bad, first, got[first], ref[first]);
    if (!guards) printf(" (wrote outside the output)");
    printf("\n");
    failures += bad || !guards;
}

// tests/cuda_bf16.rs's norm-wise bound: atol + rtol·max|ref| for every element.
static std::vector<double> normwise(const std::vector<double>& ref, double atol, double rtol) {
    double mx = 0;
    for (double r : ref) mx = std::max(mx, std::fabs(r));
    return std::vector<double>(ref.size(), atol + rtol * mx);
}

struct Case {
    const char* name;
    long b, c, n, m, v;
    float scale;
    bool unit;  // q̂, k̂ columns of unit norm (the normalised features), else N(0, 1)
    long slab;  // the caller's slab height
    unsigned cap;  // 0: the launcher's grids; else every grid dimension capped (grid-stride loops)
};

static uint3 grid_of(const Case& k, i64 x, i64 y, i64 z) {
    auto c = [&](i64 v, i64 mx) {
        v = std::min(std::max(v, (i64)1), mx);
        return (unsigned)(k.cap ? std::min<i64>(v, k.cap) : v);
    };
    return {c(x, 1 << 16), c(y, 65535), c(z, 65535)};
}

static bf16* h(Buf& b) { return reinterpret_cast<bf16*>(b.p()); }
static unsigned short half_at(const Buf& b, size_t i) {
    unsigned u = __float_as_uint(b[i / 2]);
    return (unsigned short)(i % 2 ? u >> 16 : u & 0xffff);
}

// bf16.rs `pack`: f32 src[b·s_b + r·s_row + c·s_col] -> bf16 [b, rows_p, cols_p], zero-padded;
// checked bit for bit against round-to-nearest-even.
static Buf pack(const Case& k, const char* what, long rows, long cols, long rows_p, long cols_p, long s_b, long s_row,
                long s_col, Buf& src) {
    const CorrPackArgs a{k.b, rows, cols, rows_p, cols_p, s_b, s_row, s_col};
    Buf dst((k.b * rows_p * cols_p + 1) / 2, kFillBf16);
    const i64 tiles = k.b * ((rows_p + 63) / 64) * ((cols_p + 63) / 64);
    emu::launch(grid_of(k, tiles, 1, 1), [&] { corr_warp_pack_bf16(a, src.p(), h(dst)); }, 256);
    long bad = 0;
    for (long bi = 0; bi < k.b; ++bi)
        for (long r = 0; r < rows_p; ++r)
            for (long c = 0; c < cols_p; ++c) {
                const float x = (r < rows && c < cols) ? src[bi * s_b + r * s_row + c * s_col] : 0.f;
                bad += half_at(dst, (bi * rows_p + r) * cols_p + c) != emu::bf16_rn(x);
            }
    const bool guards = dst.guards_intact();
    printf("%-34s %-32s %ld of %ld values differ %s\n", (std::string(k.name) + " pack " + what).c_str(),
           "corr_warp_pack_bf16", bad, k.b * rows_p * cols_p, bad || !guards ? "FAIL" : "PASS");
    failures += bad || !guards;
    return dst;
}

// Inputs drawn per case: q̂ [b, c, n], k̂ [b, c, m] (unit columns if k.unit), v [b, m, v],
// dout [b, n, v].
static Buf features(const Case& k, long pos) {
    std::normal_distribution<float> nd(0.f, 1.f);
    Buf x(k.b * k.c * pos);
    for (long i = 0; i < k.b * k.c * pos; ++i) x.p()[i] = nd(rng);
    if (k.unit)
        for (long bi = 0; bi < k.b; ++bi)
            for (long j = 0; j < pos; ++j) {
                double s = 0;
                for (long c = 0; c < k.c; ++c) s += (double)x[(bi * k.c + c) * pos + j] * x[(bi * k.c + c) * pos + j];
                for (long c = 0; c < k.c; ++c) x.p()[(bi * k.c + c) * pos + j] /= (float)std::sqrt(s);
            }
    return x;
}

static Buf randn(long len) {
    std::normal_distribution<float> nd(0.f, 1.f);
    Buf x(len);
    for (long i = 0; i < len; ++i) x.p()[i] = nd(rng);
    return x;
}

// The double reference of forward and backward on the bf16-rounded inputs.
struct Ref {
    std::vector<double> out, lse, lse_tol, dq, dk, dv;
};

static Ref reference(const Case& k, const Buf& q, const Buf& kk, const Buf& v, const Buf& dout) {
    const long B = k.b, C = k.c, N = k.n, M = k.m, V = k.v;
    Ref r;
    r.out.assign(B * N * V, 0), r.lse.assign(B * N, 0), r.lse_tol.assign(B * N, 0);
    r.dq.assign(B * C * N, 0), r.dk.assign(B * C * M, 0), r.dv.assign(B * M * V, 0);
    std::vector<double> s(M), sabs(M), p(M), ds(M);
    for (long bi = 0; bi < B; ++bi)
        for (long i = 0; i < N; ++i) {
            double mx = -INFINITY, sa = 0;
            for (long j = 0; j < M; ++j) {
                double acc = 0, aa = 0;
                for (long c = 0; c < C; ++c) {
                    const double x = rn(q[(bi * C + c) * N + i]) * (double)rn(kk[(bi * C + c) * M + j]);
                    acc += x, aa += std::fabs(x);
                }
                s[j] = k.scale * acc, sabs[j] = aa;
                mx = std::max(mx, s[j]), sa = std::max(sa, aa);
            }
            double l = 0;
            for (long j = 0; j < M; ++j) l += std::exp(s[j] - mx);
            const double lse = mx + std::log(l);
            r.lse[bi * N + i] = lse;
            // f32 accumulation of the products and the f32 softmax statistics.
            r.lse_tol[bi * N + i] = 1e-5 + (std::fabs(lse) + k.scale * sa) / 1048576.0 + M / 8388608.0;
            for (long j = 0; j < M; ++j) p[j] = std::exp(s[j] - lse);
            double dd = 0;
            for (long c = 0; c < V; ++c) {
                double o = 0;
                for (long j = 0; j < M; ++j) o += p[j] * rn(v[(bi * M + j) * V + c]);
                r.out[(bi * N + i) * V + c] = o;
                dd += o * rn(dout[(bi * N + i) * V + c]);
            }
            for (long j = 0; j < M; ++j) {
                double dp = 0;
                for (long c = 0; c < V; ++c) dp += rn(dout[(bi * N + i) * V + c]) * (double)rn(v[(bi * M + j) * V + c]);
                ds[j] = k.scale * p[j] * (dp - dd);
                for (long c = 0; c < V; ++c) r.dv[(bi * M + j) * V + c] += p[j] * rn(dout[(bi * N + i) * V + c]);
            }
            for (long c = 0; c < C; ++c) {
                double acc = 0;
                for (long j = 0; j < M; ++j) {
                    acc += ds[j] * rn(kk[(bi * C + c) * M + j]);
                    r.dk[(bi * C + c) * M + j] += ds[j] * rn(q[(bi * C + c) * N + i]);
                }
                r.dq[(bi * C + c) * N + i] = acc;
            }
        }
    return r;
}

// bf16.rs `slab_height`.
static long slab_height(const Case& k, long mp) {
    const long cap = std::max((1L << 23) / std::max(k.b * mp, 1L) / CB_TILE * CB_TILE, (long)CB_TILE);
    const long s = std::min(std::max(k.slab, 1L), std::max(k.n, 1L));
    return std::min((s + CB_TILE - 1) / CB_TILE * CB_TILE, cap);
}

typedef void (*FwdFn)(const CorrBf16Args, const bf16*, const bf16*, const bf16*, float*, float*);
typedef void (*DsFn)(const CorrBf16Args, const bf16*, const bf16*, const bf16*, const bf16*, const float*,
                     const float*, bf16*, bf16*);

static void gemm(const Case& k, const CorrGemmArgs& p, bool trans_a, Buf& a, Buf& b, Buf& out) {
    const uint3 grid = grid_of(k, (p.n_out + CG_BN - 1) / CG_BN, (p.m_out + CG_BM - 1) / CG_BM, p.batch);
    if (trans_a)
        emu::launch(grid, [&] { corr_warp_gemm_tn_bf16(p, h(a), h(b), out.p()); }, CB_THREADS);
    else
        emu::launch(grid, [&] { corr_warp_gemm_nn_bf16(p, h(a), h(b), out.p()); }, CB_THREADS);
}

static void corr_case(const Case& k) {
    const long B = k.b, C = k.c, N = k.n, M = k.m, V = k.v;
    auto up = [](long x, long m) { return (std::max(x, 1L) + m - 1) / m * m; };
    const long np = up(N, CB_TILE), mp = up(M, CB_TILE), cp = up(C, CB_BC), vp = up(V, 16);
    const int vi = (int)(vp / 16 - 1);
    const FwdFn fwd[] = {corr_warp_forward_v16_bf16, corr_warp_forward_v32_bf16, corr_warp_forward_v48_bf16,
                         corr_warp_forward_v64_bf16};
    const DsFn dsk[] = {corr_warp_backward_ds_v16_bf16, corr_warp_backward_ds_v32_bf16,
                        corr_warp_backward_ds_v48_bf16, corr_warp_backward_ds_v64_bf16};
    const std::string vp_s = std::to_string(vp), name = k.name;
    Buf q = features(k, N), kk = features(k, M), v = randn(B * M * V), dout = randn(B * N * V);
    const Ref ref = reference(k, q, kk, v, dout);

    // Forward (bf16.rs `forward`): pack, then one block per 64 query rows and batch.
    Buf qp = pack(k, "q", N, C, np, cp, C * N, 1, N, q);
    Buf kp = pack(k, "k", M, C, mp, cp, C * M, 1, M, kk);
    Buf vpk = pack(k, "v", M, V, mp, vp, M * V, V, 1, v);
    const CorrBf16Args a0{B, C, N, M, V, cp, np, mp, vp, 0, 0, 0, k.scale, 0};
    Buf out(B * N * V), lse(B * N);
    emu::launch(grid_of(k, np / CB_TILE, 1, B), [&] { fwd[vi](a0, h(qp), h(kp), h(vpk), out.p(), lse.p()); },
                CB_THREADS);
    double vmax = 0;
    for (long i = 0; i < B * M * V; ++i) vmax = std::max(vmax, (double)std::fabs(rn(v[i])));
    check(name + " out", "corr_warp_forward_v" + vp_s + "_bf16", out, ref.out, normwise(ref.out, kU * vmax + 1e-5, 0));
    check(name + " lse", "corr_warp_forward_v" + vp_s + "_bf16", lse, ref.lse, ref.lse_tol);

    // Backward (bf16.rs `backward`; its recomputed forward is the one above, bit for bit).
    Buf delta(B * N);
    emu::launch(grid_of(k, (B * N + 255) / 256, 1, 1), [&] { corr_warp_delta_bf16(a0, out.p(), dout.p(), delta.p()); },
                256);
    Buf dop = pack(k, "dout", N, V, np, vp, N * V, V, 1, dout);
    const long r = slab_height(k, mp);
    Buf pb(B * r * mp / 2, kFillBf16), dsb(B * r * mp / 2, kFillBf16);
    Buf dq(B * C * N), dk(B * C * M), dv(B * M * V);
    int slabs = 0;
    long pad_bad = 0;  // P or dS not zero at a padded row or key (the documented slab contents)
    for (long r0 = 0; r0 < N; ++slabs) {
        const long rows = std::min(r, N - r0), rs = (rows + CB_TILE - 1) / CB_TILE * CB_TILE;
        const CorrBf16Args a{B, C, N, M, V, cp, np, mp, vp, r0, rows, rs, k.scale, 0};
        emu::launch(grid_of(k, mp / CB_TILE, rs / CB_TILE, B),
                    [&] {
                        dsk[vi](a, h(qp), h(kp), h(vpk), h(dop), lse.p(), delta.p(), h(pb), h(dsb));
                    },
                    CB_THREADS);
        for (long bi = 0; bi < B; ++bi)
            for (long rl = 0; rl < rs; ++rl)
                for (long j = rl < rows ? M : 0; j < mp; ++j) {
                    const size_t at = (bi * rs + rl) * mp + j;
                    // == 0.f: dS = 0·(dP − D) may be −0.
                    pad_bad += !(emu::bf16_to_float(half_at(pb, at)) == 0.f && emu::bf16_to_float(half_at(dsb, at)) == 0.f);
                }
        const int acc = r0 > 0;
        // dq̂[:, :, r0..r0+rows] = dS·k̂, written transposed into [b, c, n].
        const CorrGemmArgs pq{rs, cp, mp, B, mp, cp, 0, 0, rs * mp, mp * cp, r0, C * N, 1, N, rows, C, 0, 0};
        gemm(k, pq, false, dsb, kp, dq);
        // dk̂ += dSᵀ·q̂[rows] into [b, c, m]; dv += Pᵀ·dout[rows] into [b, m, v].
        const CorrGemmArgs pk{mp, cp, rs, B, mp, cp, 0, r0 * cp, rs * mp, np * cp, 0, C * M, 1, M, M, C, acc, 0};
        gemm(k, pk, true, dsb, qp, dk);
        const CorrGemmArgs pv{mp, vp, rs, B, mp, vp, 0, r0 * vp, rs * mp, np * vp, 0, M * V, V, 1, M, V, acc, 0};
        gemm(k, pv, true, pb, dop, dv);
        r0 += rows;
    }
    const std::string bw = " slab" + std::to_string(r) + "x" + std::to_string(slabs);
    const std::string ks = "backward_ds_v" + vp_s + " + gemm_nn";
    printf("%-34s %-32s %ld padded P / dS values not zero %s\n", (name + bw + " pad").c_str(),
           ("corr_warp_backward_ds_v" + vp_s + "_bf16").c_str(), pad_bad, pad_bad ? "FAIL" : "PASS");
    failures += pad_bad != 0;
    check(name + bw + " dq", ks, dq, ref.dq, normwise(ref.dq, 1e-5, 4 * kU));
    check(name + bw + " dk", "backward_ds_v" + vp_s + " + gemm_tn", dk, ref.dk, normwise(ref.dk, 1e-5, 4 * kU));
    check(name + bw + " dv", "backward_ds_v" + vp_s + " + gemm_tn", dv, ref.dv, normwise(ref.dv, 1e-5, 4 * kU));
    if (!pb.guards_intact() || !dsb.guards_intact()) {
        printf("%s: P / dS slab written out of bounds FAIL\n", k.name);
        ++failures;
    }
}

int main() {
    // name, b, c, n, m, v, scale, unit columns, slab, grid cap
    const Case cases[] = {
        {"B2_C5_N37_M70_V3_s100", 2, 5, 37, 70, 3, 100.f, true, 37, 0},
        {"B2_C70_N37_M70_V17_s0.3_raw", 2, 70, 37, 70, 17, 0.3f, false, 37, 0},
        {"B2_C70_N130_M70_V48_s30_grid1", 2, 70, 130, 70, 48, 30.f, true, 64, 1},
        {"B1_C5_N37_M129_V50_s10", 1, 5, 37, 129, 50, 10.f, true, 7, 0},
        {"B1_C17_N1_M1_V1_s0.5_raw", 1, 17, 1, 1, 1, 0.5f, false, 1, 0},
    };
    for (const Case& k : cases) corr_case(k);
    printf("%ld warp-level mma calls emulated; %d checks failing\n", emu::g.mma_calls, failures);
    return failures != 0;
}
