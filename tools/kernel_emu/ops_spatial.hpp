// main_ops.cpp: pool.cu, resize.cu, unfold.cu (spatial.rs launchers), loss.cu and adam.cu
// (train.rs launchers). Included there, after its helpers.
#pragma once

static const double C_CHAIN = 1.0 / 1048576;  // 2^-20: short f32 chains, S = Σ|terms|

// ---- pool -------------------------------------------------------------------------------------

static void pool_case(long planes, long h, long w, int k, int s, int p, bool include_pad) {
    const long oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
    PoolArgs a{planes, h, w, oh, ow, k, k, s, s, p, p, include_pad, 0};
    Buf x = rand_int(planes * h * w, 5), dy = randn(planes * oh * ow);
    const long ny = planes * oh * ow, nx = planes * h * w;
    std::vector<double> avg(ny), savg(ny), mx(ny), dxa(nx, 0.0), sdxa(nx, 0.0), dxm(nx, 0.0), sdxm(nx, 0.0);
    for (long pl = 0; pl < planes; ++pl)
        for (long oy = 0; oy < oh; ++oy)
            for (long ox = 0; ox < ow; ++ox) {
                const long o = (pl * oh + oy) * ow + ox;
                const long y0 = std::max(oy * s - p, 0L), y1 = std::min(oy * s - p + k, h);
                const long x0 = std::max(ox * s - p, 0L), x1 = std::min(ox * s - p + k, w);
                const double div = include_pad ? k * k : (double)((y1 - y0) * (x1 - x0));
                double sum = 0, mag = 0, best = -INFINITY;
                long at = -1;
                for (long yy = y0; yy < y1; ++yy)
                    for (long xx = x0; xx < x1; ++xx) {
                        const long i = (pl * h + yy) * w + xx;
                        sum += x[i], mag += std::fabs(x[i]);
                        if (x[i] > best) best = x[i], at = i;  // the first maximum
                        dxa[i] += dy[o] / div, sdxa[i] += std::fabs(dy[o] / div);
                    }
                avg[o] = sum / div, savg[o] = mag / div, mx[o] = best;
                dxm[at] += dy[o], sdxm[at] += std::fabs(dy[o]);
            }
    char name[96];
    snprintf(name, sizeof name, "%ldx%ldx%ld k%d s%d p%d%s", planes, h, w, k, s, p, include_pad ? " incl_pad" : "");
    Buf ya(ny), ym(ny), ga(nx), gm(nx);
    emu::launch(elems(ny), [&] { avg_pool2d_forward_f32(a, x.p(), ya.p()); });
    check(std::string("avg_pool2d_forward_f32 ") + name, ya, avg, C_CHAIN, savg);
    emu::launch(elems(nx), [&] { avg_pool2d_backward_f32(a, dy.p(), ga.p()); });
    check(std::string("avg_pool2d_backward_f32 ") + name, ga, dxa, C_CHAIN, sdxa);
    if (include_pad) return;  // max pooling ignores it
    emu::launch(elems(ny), [&] { max_pool2d_forward_f32(a, x.p(), ym.p()); });
    check(std::string("max_pool2d_forward_f32 ") + name, ym, mx, 0);
    emu::launch(elems(nx), [&] { max_pool2d_backward_f32(a, x.p(), dy.p(), gm.p()); });
    check(std::string("max_pool2d_backward_f32 ") + name + " (ties: first max)", gm, dxm, C_CHAIN, sdxm);
}

// ---- resize -----------------------------------------------------------------------------------

// PyTorch's upsample source index in f32 (area_pixel_compute_source_index + the bilinear /
// nearest index rules): taps i0, i1 and the weight l of i1.
static void ref_tap(long d, long size, long out, int mode, bool align, long& i0, long& i1, float& l) {
    volatile float scale, src;  // volatile: each f32 operation rounded, as PyTorch's
    if (mode == RESIZE_NEAREST) {
        scale = (float)size / (float)out;
        src = scale * (float)d;
        i0 = i1 = std::min((long)std::floor(src), size - 1);
        l = 0.f;
        return;
    }
    if (align) {
        scale = out > 1 ? (float)(size - 1) / (float)(out - 1) : 0.f;
        src = scale * (float)d;
    } else {
        scale = (float)size / (float)out;
        volatile float t = scale * ((float)d + 0.5f);
        src = t - 0.5f;
        if (src < 0.f) src = 0.f;
    }
    i0 = (long)src;
    i1 = i0 + (i0 < size - 1 ? 1 : 0);
    l = src - (float)i0;
}

static void resize_case(long planes, long h, long w, long oh, long ow, int mode, bool align) {
    ResizeArgs a{planes, h, w, oh, ow, mode, align};
    const long ny = planes * oh * ow, nx = planes * h * w;
    Buf x = randn(nx), dy = randn(ny);
    std::vector<double> y(ny), sy(ny), dx(nx, 0.0), sdx(nx, 0.0);
    for (long pl = 0; pl < planes; ++pl)
        for (long oy = 0; oy < oh; ++oy)
            for (long ox = 0; ox < ow; ++ox) {
                long y0, y1, x0, x1;
                float ly, lx;
                ref_tap(oy, h, oh, mode, align, y0, y1, ly);
                ref_tap(ox, w, ow, mode, align, x0, x1, lx);
                const long o = (pl * oh + oy) * ow + ox;
                const long src[4] = {y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1};
                const double wt[4] = {(1.0 - ly) * (1.0 - lx), (1.0 - ly) * lx, ly * (1.0 - lx), (double)ly * lx};
                for (int t = 0; t < 4; ++t) {
                    const long i = pl * h * w + src[t];
                    y[o] += wt[t] * x[i], sy[o] += std::fabs(wt[t] * x[i]);
                    dx[i] += wt[t] * dy[o], sdx[i] += std::fabs(wt[t] * dy[o]);
                }
            }
    char name[96];
    snprintf(name, sizeof name, "%ldx%ldx%ld -> %ldx%ld %s", planes, h, w, oh, ow,
             mode == RESIZE_NEAREST ? "nearest" : align ? "bilinear align" : "bilinear");
    Buf out(ny), gx(nx);
    emu::launch(elems(ny), [&] { resize2d_forward_f32(a, x.p(), out.p()); });
    check(std::string("resize2d_forward_f32 ") + name, out, y, C_CHAIN, sy);
    emu::launch(elems(nx), [&] { resize2d_backward_f32(a, dy.p(), gx.p()); });
    check(std::string("resize2d_backward_f32 ") + name, gx, dx, C_CHAIN, sdx);
}

// ---- unfold / fold ------------------------------------------------------------------------------

static void unfold_case(long n, long c, long h, long w, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                        int dw) {
    const long oh = (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1, ow = (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
    UnfoldArgs a{n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw};
    const long L = oh * ow, ncols = n * c * kh * kw * L, nx = n * c * h * w;
    Buf x = randn(nx), cols = randn(ncols);
    std::vector<double> ref(ncols, 0.0), fold(nx, 0.0), sfold(nx, 0.0);
    for (long b = 0; b < n; ++b)
        for (long ch = 0; ch < c; ++ch)
            for (int ki = 0; ki < kh; ++ki)
                for (int kj = 0; kj < kw; ++kj)
                    for (long oy = 0; oy < oh; ++oy)
                        for (long ox = 0; ox < ow; ++ox) {
                            const long iy = oy * sh - ph + ki * dh, ix = ox * sw - pw + kj * dw;
                            const long ci = ((b * c + ch) * kh * kw + ki * kw + kj) * L + oy * ow + ox;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            const long xi = ((b * c + ch) * h + iy) * w + ix;
                            ref[ci] = x[xi];
                            fold[xi] += cols[ci], sfold[xi] += std::fabs(cols[ci]);
                        }
    char name[96];
    snprintf(name, sizeof name, "%ldx%ldx%ldx%ld k%dx%d s%dx%d p%dx%d d%dx%d", n, c, h, w, kh, kw, sh, sw, ph, pw, dh,
             dw);
    Buf got(ncols), gx(nx);
    emu::launch(elems(ncols), [&] { unfold_forward_f32(a, x.p(), got.p()); });
    check(std::string("unfold_forward_f32 ") + name, got, ref, 0);
    emu::launch(elems(nx), [&] { fold_forward_f32(a, cols.p(), gx.p()); });
    check(std::string("fold_forward_f32 ") + name, gx, fold, C_CHAIN, sfold);
}

static void spatial_tests() {
    pool_case(3, 9, 8, 3, 2, 1, false);
    pool_case(3, 9, 8, 3, 2, 1, true);
    pool_case(2, 7, 5, 2, 2, 0, false);
    pool_case(1, 1, 1, 1, 1, 0, false);
    pool_case(2, 6, 11, 3, 1, 1, false);
    for (bool align : {false, true}) {
        resize_case(3, 5, 7, 9, 4, RESIZE_BILINEAR, align);
        resize_case(2, 8, 6, 3, 5, RESIZE_BILINEAR, align);
        resize_case(1, 1, 1, 3, 2, RESIZE_BILINEAR, align);
        resize_case(2, 4, 5, 1, 1, RESIZE_BILINEAR, align);
    }
    resize_case(3, 5, 7, 9, 4, RESIZE_NEAREST, false);
    resize_case(2, 10, 6, 6, 13, RESIZE_NEAREST, false);
    unfold_case(2, 3, 7, 6, 3, 2, 2, 1, 1, 0, 1, 2);
    unfold_case(1, 2, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1);
    unfold_case(1, 4, 3, 2, 1, 1, 1, 1, 0, 0, 1, 1);
    unfold_case(2, 1, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1);
}

// ---- loss / adam --------------------------------------------------------------------------------

// train.rs `loss_blocks`, `loss_forward`, `loss_backward`.
static void loss_case(long n, int op) {
    const long per_block = std::max((n + 1023) / 1024, 4096L), blocks = std::max((n + per_block - 1) / per_block, 1L);
    LossArgs a{n, per_block, blocks, op, 1.f};
    Buf x = randn(n), z = randn(n);
    double sum = 0;
    for (long i = 0; i < n; ++i) {
        const double d = (double)x[i] - z[i];
        sum += op == LOSS_L1 ? std::fabs(d) : d * d;
    }
    Buf part(2 * blocks), out(1);  // f64 partials: two f32 slots each, as the launcher allocates
    emu::launch({grid_1d(blocks), 1, 1}, [&] { loss_forward_partial_f32(a, x.p(), z.p(), (double*)part.p()); },
                LOSS_THREADS);
    if (!part.guards_intact()) printf("loss partials written out of bounds FAIL\n"), ++failures;
    emu::launch({1, 1, 1}, [&] { loss_forward_finish_f32(a, (const double*)part.p(), out.p()); }, LOSS_THREADS);
    const std::string name = std::string(op == LOSS_L1 ? "l1" : "mse") + " n " + std::to_string(n) + " blocks " +
                             std::to_string(blocks);
    check("loss_forward_partial+finish_f32 " + name, out, {sum / (double)n}, 1.0 / 8388608);
    // Backward: scale = upstream / n (2· for MSE).
    const float scale = (op == LOSS_MSE ? 2.f : 1.f) * 0.75f / (float)n;
    LossArgs b{n, 0, 0, op, scale};
    std::vector<double> ref(n);
    for (long i = 0; i < n; ++i) {
        const double d = (double)x[i] - z[i];
        ref[i] = scale * (op == LOSS_L1 ? (d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0) : d);
    }
    Buf dx(n);
    emu::launch(elems(n), [&] { loss_backward_f32(b, x.p(), z.p(), dx.p()); });
    check("loss_backward_f32 " + name, dx, ref, 1.0 / 4194304);
}

// train.rs `adam_args` / `adam_step`: three steps; each step's reference starts from the
// kernel's f32 state, so the bound is one step's rounding.
static void adam_case(bool decoupled) {
    const long n = 1000;
    const float lr = 1e-2f, wd = 0.05f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    Buf w = randn(n), m(n, 0.f), v(n, 0.f);
    for (int t = 1; t <= 3; ++t) {
        Buf g = randn(n);
        const double bc1 = 1.0 - std::pow((double)b1, t), bc2 = 1.0 - std::pow((double)b2, t);
        AdamArgs a{n, (float)(lr / bc1), (float)std::sqrt(bc2), decoupled ? 1.f - lr * wd : 1.f, decoupled ? 0.f : wd,
                   b1, b2, eps, 0};
        std::vector<double> rw(n), rm(n), rv(n), sw(n), sm(n), sv(n);
        for (long i = 0; i < n; ++i) {
            double wi = w[i], gi = g[i];
            // The f32 sum g + l2·w may cancel: its rounding scales with both terms.
            const double gs = std::fabs(gi) + std::fabs((double)a.l2 * wi);
            if (a.l2 != 0.f) gi += (double)a.l2 * wi;
            wi *= a.decay;
            rm[i] = b1 * (double)m[i] + (1.0 - b1) * gi;
            sm[i] = std::fabs(b1 * (double)m[i]) + std::fabs((1.0 - b1) * gi);
            rv[i] = b2 * (double)v[i] + (1.0 - b2) * gi * gi;
            sv[i] = std::fabs(rv[i]) + 2 * (1.0 - b2) * std::fabs(gi) * gs;
            const double upd = a.step_size * rm[i] / (std::sqrt(rv[i]) / a.bc2_sqrt + eps);
            rw[i] = wi - upd, sw[i] = std::fabs(wi) + std::fabs(upd) * 8;  // upd: m, v and the grad's rounding
            sm[i] += (1.0 - b1) * gs;
        }
        emu::launch(elems(n), [&] { adam_step_f32(a, w.p(), g.p(), m.p(), v.p()); });
        const std::string name = std::string(decoupled ? "adamw" : "adam+l2") + " step " + std::to_string(t);
        check("adam_step_f32 m " + name, m, rm, C_CHAIN, sm);
        check("adam_step_f32 v " + name, v, rv, C_CHAIN, sv);
        check("adam_step_f32 param " + name, w, rw, C_CHAIN, sw);
    }
}

static void train_tests() {
    loss_case(9000, LOSS_L1);
    loss_case(9000, LOSS_MSE);
    loss_case(5, LOSS_MSE);
    loss_case(4096, LOSS_L1);
    adam_case(false);
    adam_case(true);
}
