//! The CUDA kernels, launched directly (src/backend/cuda/launch.rs), against the CPU backend on
//! random inputs with awkward shapes. Needs a GPU: every test is `#[ignore]`d; run them with
//! `--ignored --test-threads=1 --nocapture`. Without a driver each prints "no GPU: skipped"
//! (with ENGINE_REQUIRE_GPU=1 it fails instead). Each case prints
//! `family case max_abs max_rel PASS/FAIL`; a failing case does not stop the others, the test
//! asserts once at the end.
#![cfg(feature = "cuda")]

use engine::backend::cuda::launch::*;
use engine::backend::{self, Backend, Conv2dParams, CorrWarpParams, PadMode, SpadeNorm};
use engine::{Device, Tensor};

type R<T> = std::result::Result<T, String>;

fn e<E: std::fmt::Display>(x: E) -> String {
    x.to_string()
}

/// Collects one line per case and the failures.
struct Report {
    family: &'static str,
    fails: Vec<String>,
}

impl Report {
    fn new(family: &'static str) -> Self {
        Report {
            family,
            fails: Vec::new(),
        }
    }

    /// Passes when every |got − want| ≤ atol + rtol·max|want| (and got is finite where want is).
    fn check(&mut self, case: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let mut max_abs = 0f32;
        let mut bad = got.len() != want.len();
        for (g, w) in got.iter().zip(want) {
            let d = (g - w).abs();
            if !d.is_finite() && w.is_finite() {
                bad = true;
            }
            if d > max_abs || d.is_nan() {
                max_abs = d;
            }
        }
        let max_rel = max_abs / scale.max(f32::MIN_POSITIVE);
        bad |= max_abs.is_nan() || max_abs > atol + rtol * scale;
        let verdict = if bad { "FAIL" } else { "PASS" };
        let lens = if got.len() != want.len() {
            format!(" (len {} vs {})", got.len(), want.len())
        } else {
            String::new()
        };
        println!(
            "{} {case} {max_abs:.3e} {max_rel:.3e} {verdict}{lens}",
            self.family
        );
        if bad {
            self.fails.push(format!("{} {case}", self.family));
        }
    }

    /// A case that could not run at all.
    fn error(&mut self, case: &str, err: String) {
        println!("{} {case} - - FAIL ({err})", self.family);
        self.fails.push(format!("{} {case}: {err}", self.family));
    }

    fn run(&mut self, case: &str, f: impl FnOnce(&mut Self) -> R<()>) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(err)) => self.error(case, err),
            Err(_) => self.error(case, "panicked".into()),
        }
    }

    fn finish(self) {
        assert!(
            self.fails.is_empty(),
            "{} failing: {:#?}",
            self.family,
            self.fails
        );
    }
}

/// The GPU, or None (after printing why) when this machine has none.
fn gpu() -> Option<Gpu> {
    let require = std::env::var("ENGINE_REQUIRE_GPU").is_ok_and(|v| v == "1");
    // SAFETY: only tries to load the driver library.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        assert!(!require, "ENGINE_REQUIRE_GPU=1 but no CUDA driver library");
        println!("no GPU: skipped (no CUDA driver library)");
        return None;
    }
    match Gpu::new() {
        Ok(g) => {
            println!("GPU: {} ({})", g.name, g.arch);
            Some(g)
        }
        Err(err) => {
            assert!(!require, "ENGINE_REQUIRE_GPU=1 but: {err}");
            println!("no GPU: skipped ({err})");
            None
        }
    }
}

fn cpu() -> &'static dyn Backend {
    backend::for_device(Device::Cpu).expect("the CPU backend")
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), 0.0, 1.0, seed)
}

fn host(t: &Tensor) -> R<&[f32]> {
    t.cpu_data().map_err(e)
}

fn up(g: &Gpu, t: &Tensor) -> R<cudarc::driver::CudaSlice<f32>> {
    g.upload(host(t)?).map_err(e)
}

fn down(g: &Gpu, d: &cudarc::driver::CudaSlice<f32>, len: usize) -> R<Vec<f32>> {
    let mut v = g.download(d).map_err(e)?;
    v.truncate(len);
    Ok(v)
}

// ---- corr_warp --------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn corr_case(
    rep: &mut Report,
    g: &Gpu,
    d: CorrDims,
    p: CorrWarpParams,
    backward: bool,
    slabs: &[usize],
    seed: u64,
) {
    let name = format!(
        "B{}_C{}_N{}_M{}_V{}_{}_s{}",
        d.b,
        d.c,
        d.n,
        d.m,
        d.v,
        if p.normalize { "norm" } else { "raw" },
        p.scale
    );
    rep.run(&name.clone(), |rep| {
        let q = randn(&[d.b, d.c, d.n], seed);
        let k = randn(&[d.b, d.c, d.m], seed + 1);
        let v = randn(&[d.b, d.m, d.v], seed + 2);
        let (want, _) = cpu().corr_warp(&q, &k, &v, p, false).map_err(e)?;
        let (qd, kd, vd) = (up(g, &q)?, up(g, &k)?, up(g, &v)?);
        let mut out = g.zeros(d.b * d.n * d.v).map_err(e)?;
        let saved = corr_warp_forward(g, d, &p, &qd, &kd, &vd, &mut out).map_err(e)?;
        rep.check(
            &format!("{name}_fwd"),
            &down(g, &out, want.numel())?,
            host(&want)?,
            2e-4,
            1e-3,
        );
        if !backward {
            return Ok(());
        }
        let dout = randn(&[d.b, d.n, d.v], seed + 3);
        let (dq, dk, dv) = cpu().corr_warp_backward(&q, &k, &v, p, &dout).map_err(e)?;
        let dd = up(g, &dout)?;
        for &slab in slabs {
            let (gq, gk, gv) = corr_warp_backward(g, d, &p, &saved, &vd, &dd, slab).map_err(e)?;
            for (what, got, want) in [("dq", &gq, &dq), ("dk", &gk, &dk), ("dv", &gv, &dv)] {
                let got = down(g, got, want.numel())?;
                rep.check(
                    &format!("{name}_{what}_slab{slab}"),
                    &got,
                    host(want)?,
                    1e-4,
                    2e-3,
                );
            }
        }
        Ok(())
    });
}

#[test]
#[ignore = "needs a GPU"]
fn corr_warp_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("corr_warp");
    let norm = |scale| CorrWarpParams {
        scale,
        normalize: true,
        eps: 1e-6,
    };
    let raw = |scale| CorrWarpParams {
        scale,
        normalize: false,
        eps: 1e-6,
    };
    let dims = |b, c, n, m, v| CorrDims { b, c, n, m, v };
    let cases = [
        (dims(1, 3, 5, 7, 3), norm(100.0)),
        (dims(2, 16, 64, 64, 3), norm(10.0)),
        (dims(4, 33, 65, 130, 3), norm(100.0)),
        (dims(1, 17, 1, 1, 1), raw(0.5)),
        (dims(2, 20, 70, 129, 65), raw(0.3)),
        (dims(1, 5, 3, 200, 2), raw(1.0)),
        (dims(4, 64, 200, 300, 48), norm(100.0)),
    ];
    for (i, (d, p)) in cases.into_iter().enumerate() {
        corr_case(&mut rep, &g, d, p, true, &[d.n, 32, 7], 100 + 10 * i as u64);
    }
    // The real size, forward only (the CPU reference takes seconds), then a GPU-only backward
    // smoke run of the slab path at that size compared between two slab heights.
    for v in [3, 48] {
        corr_case(
            &mut rep,
            &g,
            dims(4, 256, 4096, 4096, v),
            norm(100.0),
            false,
            &[],
            900 + v as u64,
        );
    }
    rep.run("B4_C256_N4096_M4096_V3_bwd_slab1024_vs_4096", |rep| {
        let d = dims(4, 256, 4096, 4096, 3);
        let p = norm(100.0);
        let (q, k, v) = (
            randn(&[4, 256, 4096], 1),
            randn(&[4, 256, 4096], 2),
            randn(&[4, 4096, 3], 3),
        );
        let dout = randn(&[4, 4096, 3], 4);
        let (qd, kd, vd, dd) = (up(&g, &q)?, up(&g, &k)?, up(&g, &v)?, up(&g, &dout)?);
        let mut out = g.zeros(4 * 4096 * 3).map_err(e)?;
        let saved = corr_warp_forward(&g, d, &p, &qd, &kd, &vd, &mut out).map_err(e)?;
        let a = corr_warp_backward(&g, d, &p, &saved, &vd, &dd, 1024).map_err(e)?;
        let b = corr_warp_backward(&g, d, &p, &saved, &vd, &dd, 4096).map_err(e)?;
        for (what, x, y) in [("dq", &a.0, &b.0), ("dk", &a.1, &b.1), ("dv", &a.2, &b.2)] {
            let (x, y) = (g.download(x).map_err(e)?, g.download(y).map_err(e)?);
            rep.check(&format!("real_{what}_slab1024_vs_4096"), &x, &y, 1e-5, 1e-4);
        }
        Ok(())
    });
    rep.finish();
}

// ---- normalisation ----------------------------------------------------------------------------

const NORM_SHAPES: &[[usize; 4]] = &[
    [1, 1, 1, 3],
    [2, 3, 5, 7],
    [4, 5, 33, 31],
    [1, 2, 64, 64],
    [4, 3, 1, 2],
    [1, 64, 17, 9],
];

fn nchw(s: &[usize; 4]) -> (usize, usize, usize) {
    (s[0], s[1], s[2] * s[3])
}

#[test]
#[ignore = "needs a GPU"]
fn instance_norm_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("instance_norm");
    for (i, s) in NORM_SHAPES.iter().enumerate() {
        for affine in [false, true] {
            let name = format!("{s:?}_affine{}", affine as u8).replace(' ', "");
            rep.run(&name.clone(), |rep| {
                let seed = 10 * i as u64;
                let x = Tensor::randn(s.to_vec(), 0.5, 2.0, seed);
                let w = randn(&[s[1]], seed + 1);
                let b = randn(&[s[1]], seed + 2);
                let dy = randn(s, seed + 3);
                let (wo, bo) = if affine {
                    (Some(&w), Some(&b))
                } else {
                    (None, None)
                };
                let (y, st) = cpu().instance_norm(&x, wo, bo, 1e-5).map_err(e)?;
                let (dx, dw, db) = cpu().instance_norm_backward(&x, wo, &st, &dy).map_err(e)?;
                let (xd, wd, bd, dyd) = (up(&g, &x)?, up(&g, &w)?, up(&g, &b)?, up(&g, &dy)?);
                let mut yd = g.zeros(x.numel()).map_err(e)?;
                let (wg, bg) = if affine {
                    (Some(&wd), Some(&bd))
                } else {
                    (None, None)
                };
                let gs =
                    instance_norm_forward(&g, nchw(s), 1e-5, &xd, wg, bg, &mut yd).map_err(e)?;
                rep.check(
                    &format!("{name}_y"),
                    &down(&g, &yd, x.numel())?,
                    host(&y)?,
                    1e-5,
                    1e-5,
                );
                rep.check(
                    &format!("{name}_mean"),
                    &down(&g, &gs.mean, s[0] * s[1])?,
                    host(&st.mean)?,
                    1e-6,
                    1e-5,
                );
                rep.check(
                    &format!("{name}_rstd"),
                    &down(&g, &gs.rstd, s[0] * s[1])?,
                    host(&st.rstd)?,
                    1e-6,
                    1e-5,
                );
                let mut dxd = g.zeros(x.numel()).map_err(e)?;
                let (dwd, dbd) =
                    instance_norm_backward(&g, nchw(s), &xd, wg, &gs, &dyd, &mut dxd).map_err(e)?;
                rep.check(
                    &format!("{name}_dx"),
                    &down(&g, &dxd, x.numel())?,
                    host(&dx)?,
                    1e-5,
                    1e-4,
                );
                if let (Some(dw), Some(db)) = (dw, db) {
                    rep.check(
                        &format!("{name}_dw"),
                        &down(&g, &dwd, s[1])?,
                        host(&dw)?,
                        1e-5,
                        1e-4,
                    );
                    rep.check(
                        &format!("{name}_db"),
                        &down(&g, &dbd, s[1])?,
                        host(&db)?,
                        1e-5,
                        1e-4,
                    );
                }
                Ok(())
            });
        }
    }
    rep.finish();
}

#[test]
#[ignore = "needs a GPU"]
fn pono_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("pono");
    // PONO's unbiased variance needs C ≥ 2.
    for (i, s) in NORM_SHAPES.iter().filter(|s| s[1] >= 2).enumerate() {
        let name = format!("{s:?}").replace(' ', "");
        rep.run(&name.clone(), |rep| {
            let seed = 50 + 10 * i as u64;
            let x = Tensor::randn(s.to_vec(), -0.3, 1.5, seed);
            let dy = randn(s, seed + 1);
            let (y, st) = cpu().pono(&x, 1e-5).map_err(e)?;
            let dx = cpu().pono_backward(&x, &st, &dy).map_err(e)?;
            let (xd, dyd) = (up(&g, &x)?, up(&g, &dy)?);
            let mut yd = g.zeros(x.numel()).map_err(e)?;
            let gs = pono_forward(&g, nchw(s), 1e-5, &xd, &mut yd).map_err(e)?;
            let stats = s[0] * s[2] * s[3];
            rep.check(
                &format!("{name}_y"),
                &down(&g, &yd, x.numel())?,
                host(&y)?,
                1e-5,
                1e-5,
            );
            rep.check(
                &format!("{name}_mean"),
                &down(&g, &gs.mean, stats)?,
                host(&st.mean)?,
                1e-6,
                1e-5,
            );
            rep.check(
                &format!("{name}_rstd"),
                &down(&g, &gs.rstd, stats)?,
                host(&st.rstd)?,
                1e-6,
                1e-5,
            );
            let mut dxd = g.zeros(x.numel()).map_err(e)?;
            pono_backward(&g, nchw(s), &xd, &gs, &dyd, &mut dxd).map_err(e)?;
            rep.check(
                &format!("{name}_dx"),
                &down(&g, &dxd, x.numel())?,
                host(&dx)?,
                1e-5,
                1e-4,
            );
            Ok(())
        });
    }
    rep.finish();
}

#[test]
#[ignore = "needs a GPU"]
fn spade_modulation_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("spade");
    for (i, s) in NORM_SHAPES.iter().enumerate() {
        for norm in [SpadeNorm::Instance, SpadeNorm::Pono] {
            let pono = norm == SpadeNorm::Pono;
            if pono && s[1] < 2 {
                continue;
            }
            let name = format!("{s:?}_{}", if pono { "pono" } else { "instance" }).replace(' ', "");
            rep.run(&name.clone(), |rep| {
                let seed = 90 + 10 * i as u64;
                let x = Tensor::randn(s.to_vec(), 0.2, 1.3, seed);
                let gamma = Tensor::randn(s.to_vec(), 0.0, 0.5, seed + 1);
                let beta = randn(s, seed + 2);
                let dy = randn(s, seed + 3);
                let (y, st) = cpu()
                    .spade_modulate(&x, &gamma, &beta, norm, 1e-5)
                    .map_err(e)?;
                let (dx, dg, db) = cpu()
                    .spade_modulate_backward(&x, &gamma, &st, norm, &dy)
                    .map_err(e)?;
                let (xd, gd, bd, dyd) =
                    (up(&g, &x)?, up(&g, &gamma)?, up(&g, &beta)?, up(&g, &dy)?);
                let mut yd = g.zeros(x.numel()).map_err(e)?;
                let gs =
                    spade_forward(&g, pono, nchw(s), 1e-5, &xd, &gd, &bd, &mut yd).map_err(e)?;
                rep.check(
                    &format!("{name}_y"),
                    &down(&g, &yd, x.numel())?,
                    host(&y)?,
                    1e-5,
                    1e-5,
                );
                let (mut dxd, mut dgd) = (
                    g.zeros(x.numel()).map_err(e)?,
                    g.zeros(x.numel()).map_err(e)?,
                );
                spade_backward(&g, pono, nchw(s), &xd, &gd, &gs, &dyd, &mut dxd, &mut dgd)
                    .map_err(e)?;
                rep.check(
                    &format!("{name}_dx"),
                    &down(&g, &dxd, x.numel())?,
                    host(&dx)?,
                    1e-5,
                    1e-4,
                );
                rep.check(
                    &format!("{name}_dgamma"),
                    &down(&g, &dgd, x.numel())?,
                    host(&dg)?,
                    1e-5,
                    1e-5,
                );
                // dβ is dy itself on the GPU side.
                rep.check(&format!("{name}_dbeta"), host(&dy)?, host(&db)?, 1e-7, 0.0);
                Ok(())
            });
        }
    }
    rep.finish();
}

// ---- softmax ----------------------------------------------------------------------------------

#[test]
#[ignore = "needs a GPU"]
fn softmax_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("softmax");
    let shapes = [
        (1, 1),
        (3, 5),
        (7, 33),
        (5, 1000),
        (4, 4096),
        (9, 1025),
        (1, 4096),
        (1000, 3),
    ];
    for (i, &(rows, len)) in shapes.iter().enumerate() {
        for block in [false, true] {
            let name = format!("{rows}x{len}_{}", if block { "block" } else { "warp" });
            rep.run(&name.clone(), |rep| {
                let x = Tensor::randn(vec![rows, len], 0.0, 3.0, 200 + i as u64);
                let dy = randn(&[rows, len], 300 + i as u64);
                let y = cpu().softmax(&x).map_err(e)?;
                let dx = cpu().softmax_backward(&y, &dy).map_err(e)?;
                let (xd, yd_in, dyd) = (up(&g, &x)?, up(&g, &y)?, up(&g, &dy)?);
                let mut yd = g.zeros(rows * len).map_err(e)?;
                softmax_forward(&g, rows, len, Some(block), &xd, &mut yd).map_err(e)?;
                rep.check(
                    &format!("{name}_fwd"),
                    &down(&g, &yd, rows * len)?,
                    host(&y)?,
                    1e-7,
                    1e-5,
                );
                let mut dxd = g.zeros(rows * len).map_err(e)?;
                softmax_backward(&g, rows, len, Some(block), &yd_in, &dyd, &mut dxd).map_err(e)?;
                rep.check(
                    &format!("{name}_bwd"),
                    &down(&g, &dxd, rows * len)?,
                    host(&dx)?,
                    1e-7,
                    1e-4,
                );
                Ok(())
            });
        }
    }
    rep.finish();
}

// ---- conv2d -----------------------------------------------------------------------------------

fn conv_p(stride: usize, pad: usize, dil: usize, groups: usize, reflect: bool) -> Conv2dParams {
    Conv2dParams {
        stride: (stride, stride),
        padding: (pad, pad),
        dilation: (dil, dil),
        groups,
        pad_mode: if reflect {
            PadMode::Reflect
        } else {
            PadMode::Zeros
        },
    }
}

#[test]
#[ignore = "needs a GPU"]
fn conv2d_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("conv2d");
    let cases: Vec<(&str, [usize; 4], [usize; 4], Conv2dParams)> = vec![
        (
            "3x3_pad1",
            [1, 3, 7, 9],
            [5, 3, 3, 3],
            conv_p(1, 1, 1, 1, false),
        ),
        (
            "3x3_stride2",
            [2, 4, 9, 7],
            [6, 4, 3, 3],
            conv_p(2, 1, 1, 1, false),
        ),
        (
            "3x3_reflect",
            [2, 4, 8, 8],
            [6, 4, 3, 3],
            conv_p(1, 1, 1, 1, true),
        ),
        (
            "groups2_s2_reflect",
            [1, 6, 7, 5],
            [4, 3, 3, 3],
            conv_p(2, 1, 1, 2, true),
        ),
        (
            "depthwise",
            [2, 8, 9, 11],
            [8, 1, 3, 3],
            conv_p(1, 1, 1, 8, false),
        ),
        (
            "depthwise_reflect_s2",
            [1, 5, 6, 7],
            [10, 1, 3, 3],
            conv_p(2, 1, 1, 5, true),
        ),
        ("1x1", [1, 3, 5, 5], [2, 3, 1, 1], conv_p(1, 0, 1, 1, false)),
        (
            "dil2",
            [1, 5, 11, 10],
            [7, 5, 3, 3],
            conv_p(1, 2, 2, 1, false),
        ),
        (
            "7x7_reflect3",
            [1, 3, 12, 13],
            [8, 3, 7, 7],
            conv_p(1, 3, 1, 1, true),
        ),
        (
            "cout130",
            [2, 32, 20, 19],
            [130, 32, 3, 3],
            conv_p(1, 1, 1, 1, false),
        ),
        (
            "cin130",
            [1, 130, 10, 9],
            [16, 130, 3, 3],
            conv_p(1, 1, 1, 1, true),
        ),
        (
            "split_k",
            [4, 8, 32, 32],
            [8, 8, 3, 3],
            conv_p(1, 1, 1, 1, false),
        ),
        ("hw1", [4, 3, 1, 1], [5, 3, 1, 1], conv_p(1, 0, 1, 1, false)),
    ];
    for (i, (name, xs, ws, p)) in cases.into_iter().enumerate() {
        for path in [ConvPath::Auto, ConvPath::Direct] {
            let case = format!(
                "{name}_{}",
                if path == ConvPath::Auto {
                    "igemm"
                } else {
                    "direct"
                }
            );
            rep.run(&case.clone(), |rep| {
                let seed = 400 + 10 * i as u64;
                let x = randn(&xs, seed);
                let w = Tensor::randn(ws.to_vec(), 0.0, 0.3, seed + 1);
                let b = randn(&[ws[0]], seed + 2);
                let y = cpu().conv2d(&x, &w, Some(&b), p).map_err(e)?;
                let dy = randn(y.dims(), seed + 3);
                let dx = cpu().conv2d_backward_input(&dy, &w, &xs, p).map_err(e)?;
                let dw = cpu().conv2d_backward_weight(&x, &dy, &ws, p).map_err(e)?;
                let db = cpu().conv2d_backward_bias(&dy).map_err(e)?;
                let a = conv_args(xs, ws, &p, true).ok_or("empty output")?;
                let (xd, wd, bd, dyd) = (up(&g, &x)?, up(&g, &w)?, up(&g, &b)?, up(&g, &dy)?);
                let mut yd = g.zeros(y.numel()).map_err(e)?;
                conv_forward(&g, &a, path, &xd, &wd, Some(&bd), &mut yd).map_err(e)?;
                rep.check(
                    &format!("{case}_y"),
                    &down(&g, &yd, y.numel())?,
                    host(&y)?,
                    1e-5,
                    1e-4,
                );
                let mut dxd = g.zeros(x.numel()).map_err(e)?;
                conv_backward_input(&g, &a, path, &dyd, &wd, &mut dxd).map_err(e)?;
                rep.check(
                    &format!("{case}_dx"),
                    &down(&g, &dxd, x.numel())?,
                    host(&dx)?,
                    1e-5,
                    1e-4,
                );
                let mut dwd = g.zeros(w.numel()).map_err(e)?;
                conv_backward_weight(&g, &a, path, &xd, &dyd, &mut dwd).map_err(e)?;
                rep.check(
                    &format!("{case}_dw"),
                    &down(&g, &dwd, w.numel())?,
                    host(&dw)?,
                    1e-5,
                    2e-4,
                );
                let mut dbd = g.zeros(ws[0]).map_err(e)?;
                conv_backward_bias(&g, &a, &dyd, &mut dbd).map_err(e)?;
                rep.check(
                    &format!("{case}_db"),
                    &down(&g, &dbd, ws[0])?,
                    host(&db)?,
                    1e-5,
                    1e-4,
                );
                Ok(())
            });
        }
    }
    rep.finish();
}

// ---- matmul -----------------------------------------------------------------------------------

#[test]
#[ignore = "needs a GPU"]
fn matmul_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("matmul");
    // (batch, m, n, k, trans_a, trans_b, a batched, b batched)
    let cases = [
        (1, 1, 1, 1, false, false, true, true),
        (1, 5, 7, 3, true, true, true, true),
        (4, 33, 65, 17, true, false, true, true),
        (2, 130, 129, 70, false, true, true, true),
        (3, 1, 200, 9, false, false, true, false),
        (4, 257, 3, 300, false, false, false, true),
        (1, 128, 128, 128, true, true, true, true),
    ];
    for (i, &(batch, m, n, k, ta, tb, ab, bb)) in cases.iter().enumerate() {
        let case = format!(
            "b{batch}_{m}x{n}x{k}_t{}{}_bc{}{}",
            ta as u8, tb as u8, ab as u8, bb as u8
        );
        rep.run(&case.clone(), |rep| {
            let shape = |batched: bool, r: usize, c: usize| {
                if batched {
                    vec![batch, r, c]
                } else {
                    vec![r, c]
                }
            };
            let a = Tensor::randn(
                if ta { shape(ab, k, m) } else { shape(ab, m, k) },
                0.0,
                1.0,
                600 + i as u64,
            );
            let b = Tensor::randn(
                if tb { shape(bb, n, k) } else { shape(bb, k, n) },
                0.0,
                1.0,
                700 + i as u64,
            );
            let want = cpu().matmul(&a, &b, ta, tb).map_err(e)?;
            let (ad, bd) = (up(&g, &a)?, up(&g, &b)?);
            let mut cd = g.zeros(batch * m * n).map_err(e)?;
            matmul_simple(&g, batch, (m, n, k), (ta, tb), (ab, bb), &ad, &bd, &mut cd)
                .map_err(e)?;
            rep.check(
                &case,
                &down(&g, &cd, batch * m * n)?,
                host(&want)?,
                1e-5,
                1e-5,
            );
            Ok(())
        });
    }
    rep.finish();
}
