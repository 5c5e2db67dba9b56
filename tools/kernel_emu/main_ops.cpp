// Runs the elementwise, layout, reduce, pool, resize, unfold/fold, loss and Adam kernels
// (kernels/{elementwise,layout,reduce,pool,resize,unfold,loss,adam}.cu) under emu.hpp, launched
// with the grids, blocks and argument values of their Rust launchers (src/backend/cuda/launch/),
// against double-precision reference loops on awkward shapes. Buffers carry NaN guard zones: an
// out-of-bounds read turns an output NaN, an out-of-bounds write is reported.
//
// Tolerances (err ≤ c·S + 1e-30, S = |ref| unless a check names a magnitude such as Σ|terms|):
// - exact (c = 0): strided copy, transpose, concat, max, max-pool forward, unfold;
// - c = 2^-23 (one rounding to f32): f64-accumulated sums (S = |ref| + 2^-25·Σ|x|), the loss
//   forward, binary ops, PReLU forward / input gradient, the max backward's dy / ties;
// - c = 2^-22 (two roundings): mean (the f32 1/n), loss backward, PReLU α gradient (f32
//   products summed in f64, S = Σ|dy·x|);
// - c = 2^-20 (short f32 chains, S = Σ|terms|): libm unary maps and their derivatives, pooling
//   sums, bilinear blends and their adjoints, fold, Adam (one step from the kernel's f32 state).
// Exit status: 0 when every check passes.
#include "adam.cu"
#include "elementwise.cu"
#include "layout.cu"
#include "loss.cu"
#include "pool.cu"
#include "reduce.cu"
#include "resize.cu"
#include "unfold.cu"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "buf.hpp"

static std::mt19937_64 rng(11);
static int failures = 0, checks = 0;

static Buf randn(size_t n, float sd = 1.f) {
    std::normal_distribution<float> d(0.f, sd);
    Buf b(n);
    for (size_t i = 0; i < n; ++i) b.p()[i] = d(rng);
    return b;
}

// Small integers: many ties for max / max-pool.
static Buf rand_int(size_t n, int levels) {
    Buf b(n);
    for (size_t i = 0; i < n; ++i) b.p()[i] = (float)(int)(rng() % (unsigned)levels) - levels / 2;
    return b;
}

// Passes when every |got − ref| ≤ c·S + 1e-30 (S = |ref| when s is empty); NaN matches NaN, an
// infinity itself.
static void check(const std::string& what, const Buf& got, const std::vector<double>& ref, double c,
                  const std::vector<double>& s = {}) {
    double worst = 0;
    long bad = 0, first = -1;
    for (size_t i = 0; i < ref.size(); ++i) {
        const bool nan_ok =
            (std::isnan(ref[i]) && std::isnan(got[i])) || (std::isinf(ref[i]) && (double)got[i] == ref[i]);
        const double err = nan_ok ? 0 : std::fabs((double)got[i] - ref[i]);
        const double tol = c * (s.empty() ? std::fabs(ref[i]) : s[i]) + 1e-30;
        if (!nan_ok && !(err <= tol)) {
            if (first < 0) first = (long)i;
            ++bad;
        }
        if (!nan_ok) worst = std::max(worst, err / tol);
    }
    const bool guards = got.guards_intact();
    ++checks;
    printf("%-58s err/bound %9.3g %s", what.c_str(), worst, bad || !guards ? "FAIL" : "PASS");
    if (bad) printf(" (%ld bad, first [%ld]: got %.9g want %.9g)", bad, first, got[first], ref[first]);
    if (!guards) printf(" (wrote outside the output)");
    printf("\n");
    failures += bad || !guards;
}

static std::string dims_str(const std::vector<long>& d) {
    std::string s = "[";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
    return s + "]";
}

static long prod(const std::vector<long>& d) {
    long p = 1;
    for (long v : d) p *= v;
    return p;
}

// launch/mod.rs: cdiv, grid_1d, grid_yz, cfg_elems (256 threads), cfg_rows (a block per row).
static unsigned cdiv(long a, long b) { return (unsigned)((a + b - 1) / std::max(b, 1L)); }
static unsigned grid_1d(long blocks) { return (unsigned)std::clamp(blocks, 1L, 1L << 16); }
static unsigned grid_yz(long blocks) { return (unsigned)std::clamp(blocks, 1L, 65535L); }
static uint3 elems(long n) { return {grid_1d(cdiv(n, 256)), 1, 1}; }
static uint3 rows(long n) { return {grid_1d(n), 1, 1}; }

// layout.rs `coalesce`: merges adjacent dims every operand walks contiguously, drops 1s.
static void coalesce(const std::vector<long>& dims, std::vector<std::vector<long>>& strides, std::vector<long>& d) {
    std::vector<std::vector<long>> s(strides.size());
    d.clear();
    for (size_t i = 0; i < dims.size(); ++i) {
        const long n = dims[i];
        if (n == 1) continue;
        bool merge = !d.empty();
        for (size_t k = 0; k < s.size() && merge; ++k) merge = s[k].back() == strides[k][i] * n;
        if (merge) {
            d.back() *= n;
            for (size_t k = 0; k < s.size(); ++k) s[k].back() = strides[k][i];
        } else {
            d.push_back(n);
            for (size_t k = 0; k < s.size(); ++k) s[k].push_back(strides[k][i]);
        }
    }
    if (d.empty()) {
        d.push_back(1);
        for (auto& sk : s) sk.push_back(0);
    }
    strides = s;
}

static std::vector<long> contiguous(const std::vector<long>& dims) {
    std::vector<long> s(dims.size());
    long st = 1;
    for (size_t i = dims.size(); i-- > 0;) s[i] = st, st *= dims[i];
    return s;
}

#include "ops_reduce_layout.hpp"
#include "ops_elementwise.hpp"
#include "ops_spatial.hpp"

int main() {
    reduce_tests();
    layout_tests();
    elementwise_tests();
    spatial_tests();
    train_tests();
    printf("%d checks; %d failing\n", checks, failures);
    return failures != 0;
}
