// main_ops.cpp: elementwise.cu (included there, after its helpers).
#pragma once

// y = op(x) and dy/dx·g in double, from the f32 x and the f32 y the kernel is given.
static double unary_ref(int op, double v, double c) {
    switch (op) {
        case UNARY_NEG: return -v;
        case UNARY_ADD_SCALAR: return v + c;
        case UNARY_MUL_SCALAR: return v * c;
        case UNARY_POW_SCALAR: return std::pow(v, c);
        case UNARY_RELU: return v < 0 ? 0 : v;
        case UNARY_LEAKY_RELU: return v > 0 ? v : v * c;
        case UNARY_TANH: return std::tanh(v);
        case UNARY_SIGMOID: return 1 / (1 + std::exp(-v));
        case UNARY_EXP: return std::exp(v);
        case UNARY_LOG: return std::log(v);
        case UNARY_SQRT: return std::sqrt(v);
        default: return std::fabs(v);
    }
}

// The derivative times g, and the magnitude its f32 evaluation's rounding scales with.
static double unary_dref(int op, double x, double y, double g, double c, double& s) {
    double r;
    switch (op) {
        case UNARY_NEG: r = -g; break;
        case UNARY_ADD_SCALAR: r = g; break;
        case UNARY_MUL_SCALAR: r = g * c; break;
        case UNARY_POW_SCALAR: r = c == 0 ? 0 : g * c * std::pow(x, c - 1); break;
        case UNARY_RELU: r = x > 0 ? g : 0; break;
        case UNARY_LEAKY_RELU: r = x > 0 ? g : g * c; break;
        case UNARY_TANH: r = g * (1 - y * y), s = std::fabs(g) * (1 + y * y); return r;
        case UNARY_SIGMOID: r = g * y * (1 - y), s = std::fabs(g * y) * (1 + std::fabs(y)); return r;
        case UNARY_EXP: r = g * y; break;
        case UNARY_LOG: r = g / x; break;
        case UNARY_SQRT: r = g * 0.5 / y; break;
        default: r = x > 0 ? g : (x < 0 ? -g : 0); break;
    }
    s = std::fabs(r);
    return r;
}

static void unary_case(const char* name, int op, float c, bool positive) {
    const long n = 1237;  // 5 blocks, the last partial
    Buf x = randn(n, 1.5f), dy = randn(n);
    if (positive)
        for (long i = 0; i < n; ++i) x.p()[i] = std::fabs(x[i]) + 0.05f;
    x.p()[0] = 0.f;  // relu / abs / leaky at 0
    const UnaryArgs a{n, op, c};
    std::vector<double> ref(n), dref(n), ds(n);
    Buf yf(n);  // the f32 forward the backward is given (as the autograd tape holds it)
    for (long i = 0; i < n; ++i) ref[i] = unary_ref(op, x[i], c), yf.p()[i] = (float)ref[i];
    for (long i = 0; i < n; ++i) dref[i] = unary_dref(op, x[i], yf[i], dy[i], c, ds[i]);
    Buf y(n), dx(n);
    emu::launch(elems(n), [&] { unary_forward_f32(a, x.p(), y.p()); });
    check(std::string("unary_forward_f32 ") + name, y, ref, 1.0 / 1048576);
    emu::launch(elems(n), [&] { unary_backward_f32(a, x.p(), yf.p(), dy.p(), dx.p()); });
    check(std::string("unary_backward_f32 ") + name, dx, dref, 1.0 / 1048576, ds);
}

static double binary_ref(int op, double p, double q) {
    return op == BINARY_ADD ? p + q : op == BINARY_SUB ? p - q : op == BINARY_MUL ? p * q : p / q;
}

// elementwise.rs `binary_args` + `binary_broadcast`: out dims, each operand's dims padded with
// leading 1s (1-sized dims broadcast: stride 0).
static void binary_case(int op, const std::vector<long>& out, const std::vector<long>& da,
                        const std::vector<long>& db) {
    auto bstrides = [&](const std::vector<long>& d) {
        std::vector<long> s = contiguous(d);
        for (size_t i = 0; i < d.size(); ++i)
            if (d[i] == 1 && out[i] != 1) s[i] = 0;
        return s;
    };
    std::vector<std::vector<long>> s{bstrides(da), bstrides(db)};
    const std::vector<long> sa = s[0], sb = s[1];
    std::vector<long> d;
    coalesce(out, s, d);
    BinaryArgs a{};
    a.n = prod(out), a.rank = (int)d.size(), a.op = op;
    for (size_t i = 0; i < d.size(); ++i) a.dims[i] = d[i], a.strides_a[i] = s[0][i], a.strides_b[i] = s[1][i];
    Buf x = randn(prod(da)), z = randn(prod(db));
    for (long i = 0; i < prod(db); ++i) z.p()[i] += z[i] >= 0 ? 0.5f : -0.5f;  // divisors away from 0
    std::vector<double> ref(a.n);
    for (long i = 0; i < a.n; ++i) {
        long rest = i, oa = 0, ob = 0;
        for (size_t k = out.size(); k-- > 0;) {
            const long idx = rest % out[k];
            rest /= out[k];
            oa += idx * sa[k], ob += idx * sb[k];
        }
        ref[i] = binary_ref(op, x[oa], z[ob]);
    }
    Buf y(a.n);
    emu::launch(elems(a.n), [&] { binary_broadcast_f32(a, x.p(), z.p(), y.p()); });
    // One f32 operation, correctly rounded.
    check("binary_broadcast_f32 op" + std::to_string(op) + " " + dims_str(da) + " , " + dims_str(db) + " -> " +
              dims_str(out),
          y, ref, 1.0 / 8388608);
}

static void binary_same_case(int op, long n) {
    BinaryArgs a{};
    a.n = n, a.op = op;
    Buf x = randn(n), z = randn(n);
    std::vector<double> ref(n);
    for (long i = 0; i < n; ++i) ref[i] = binary_ref(op, x[i], z[i]);
    Buf y(n);
    emu::launch(elems(n), [&] { binary_same_f32(a, x.p(), z.p(), y.p()); });
    check("binary_same_f32 op" + std::to_string(op) + " n " + std::to_string(n), y, ref, 1.0 / 8388608);
}

// elementwise.rs `prelu_splits`.
static void prelu_splits(long channels, long per_channel, long& splits, long& per_split) {
    const long want = (528 + std::max(channels, 1L) - 1) / std::max(channels, 1L);
    const long by_size = std::max((per_channel + 4095) / 4096, 1L);
    const long s = std::clamp(std::min(want, by_size), 1L, 65535L);
    per_split = std::max((per_channel + s - 1) / s, 1L);
    splits = std::max((per_channel + per_split - 1) / per_split, 1L);
}

// elementwise.rs `prelu_forward` / `prelu_backward`: x [batch, channels, inner].
static void prelu_case(long batch, long channels, long inner) {
    const long n = batch * channels * inner;
    PreluArgs a{n, std::max(channels, 1L), std::max(inner, 1L), 0};
    Buf x = randn(n), alpha = randn(channels, 0.3f), dy = randn(n);
    std::vector<double> y(n), dx(n), da(channels, 0.0), sa(channels, 0.0);
    for (long i = 0; i < n; ++i) {
        const long c = channels == 1 ? 0 : i / inner % channels;
        y[i] = x[i] > 0 ? x[i] : (double)alpha[c] * x[i];
        dx[i] = x[i] > 0 ? dy[i] : (double)alpha[c] * dy[i];
        if (!(x[i] > 0)) da[c] += (double)dy[i] * x[i], sa[c] += std::fabs((double)dy[i] * x[i]);
    }
    const std::string shape = dims_str({batch, channels, inner});
    Buf out(n), gx(n);
    emu::launch(elems(n), [&] { prelu_forward_f32(a, x.p(), alpha.p(), out.p()); });
    check("prelu_forward_f32 " + shape, out, y, 1.0 / 8388608);
    emu::launch(elems(n), [&] { prelu_backward_input_f32(a, x.p(), alpha.p(), dy.p(), gx.p()); });
    check("prelu_backward_input_f32 " + shape, gx, dx, 1.0 / 8388608);
    long splits, per_split;
    prelu_splits(a.channels, n / a.channels, splits, per_split);
    a.per_split = per_split;
    Buf part(a.channels * splits), dalpha(a.channels);
    emu::launch({grid_1d(a.channels), (unsigned)splits, 1},
                [&] { prelu_backward_alpha_f32(a, x.p(), dy.p(), part.p()); });
    if (!part.guards_intact()) printf("prelu partials written out of bounds FAIL\n"), ++failures;
    ReduceArgs r{};
    r.out_n = a.channels, r.red_n = splits, r.kept_rank = 1, r.red_rank = 1, r.op = REDUCE_SUM, r.scale = 1.f;
    r.kept_dims[0] = a.channels, r.kept_strides[0] = splits, r.red_dims[0] = splits, r.red_strides[0] = 1;
    emu::launch(rows(a.channels), [&] { reduce_block_f32(r, part.p(), dalpha.p()); });
    // f32 products summed in f64, rounded to f32 per split and once more after the split sum.
    check("prelu_backward_alpha_f32 + reduce " + shape + " splits " + std::to_string(splits), dalpha, da,
          1.0 / 4194304, sa);
}

static void elementwise_tests() {
    unary_case("neg", UNARY_NEG, 0.f, false);
    unary_case("add 0.7", UNARY_ADD_SCALAR, 0.7f, false);
    unary_case("mul -1.3", UNARY_MUL_SCALAR, -1.3f, false);
    unary_case("pow 3", UNARY_POW_SCALAR, 3.f, false);
    unary_case("pow 2", UNARY_POW_SCALAR, 2.f, false);
    unary_case("pow 0", UNARY_POW_SCALAR, 0.f, true);
    unary_case("pow 0.5", UNARY_POW_SCALAR, 0.5f, true);
    unary_case("relu", UNARY_RELU, 0.f, false);
    unary_case("leaky 0.1", UNARY_LEAKY_RELU, 0.1f, false);
    unary_case("tanh", UNARY_TANH, 0.f, false);
    unary_case("sigmoid", UNARY_SIGMOID, 0.f, false);
    unary_case("exp", UNARY_EXP, 0.f, false);
    unary_case("log", UNARY_LOG, 0.f, true);
    unary_case("sqrt", UNARY_SQRT, 0.f, true);
    unary_case("abs", UNARY_ABS, 0.f, false);
    binary_case(BINARY_ADD, {2, 3, 4}, {2, 3, 4}, {1, 3, 1});
    binary_case(BINARY_SUB, {2, 3, 4}, {2, 1, 4}, {1, 3, 4});
    binary_case(BINARY_MUL, {5, 7, 3}, {5, 1, 1}, {1, 7, 3});
    binary_case(BINARY_DIV, {3, 1, 33, 2}, {3, 1, 1, 2}, {1, 1, 33, 2});
    binary_case(BINARY_DIV, {1, 1}, {1, 1}, {1, 1});
    binary_case(BINARY_ADD, {2, 1, 3, 5, 2}, {2, 1, 3, 1, 2}, {1, 1, 3, 5, 1});
    binary_same_case(BINARY_SUB, 1000);
    binary_same_case(BINARY_DIV, 1);
    prelu_case(2, 3, 2100);  // two splits per channel
    prelu_case(3, 2, 1367);  // two splits, the last one short
    prelu_case(3, 5, 7);
    prelu_case(4, 1, 77);  // one shared α
    prelu_case(1, 600, 1);
}
