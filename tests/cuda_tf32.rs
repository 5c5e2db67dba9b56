//! The tf32 tensor-core kernels (conv2d forward, input gradient, weight gradient; matmul) against
//! the CPU backend's f32 results, with a per-element error bound derived from the arithmetic
//! instead of a guessed tolerance. Needs a GPU: every test is `#[ignore]`d; run them with
//! `--ignored --test-threads=1 --nocapture`. Without a driver each prints "no GPU: skipped"
//! (with ENGINE_REQUIRE_GPU=1 it fails instead). Each case prints
//! `family case kernel max_err max_err/bound PASS/FAIL`; the test asserts once at the end.
//!
//! The bound. Every output is a sum of K products a_i·b_i. The tf32 kernels round each operand
//! to tf32 (10 explicit mantissa bits, round to nearest: relative error ≤ u = 2^-11), so each
//! product carries a relative error ≤ 2u + u²; the products are then summed in f32 (on the
//! tensor cores possibly with truncation: ≤ 2^-23 per addition, relative to the partial sums),
//! and the CPU reference sums the exact f32 products in f32 (≤ 2^-24 per addition). With
//! S = Σ|a_i||b_i| (the same op run on the CPU on |inputs|):
//!     |ours − ref| ≤ (2u + u²)·S + 2K·2^-23·S + 2^-22·|ref| (the bias addition) + tiny
//!                  = c·u·S + 2^-22·|ref| + tiny,  c = 2.01 + K/2048,
//! where 2K·2^-23 covers both accumulations (K·2^-23 ours, K·2^-24 the CPU's, rounded up) and
//! 0.01 absorbs u² / u and the f32 rounding of S itself. K is the number of terms: c_in/groups·
//! kh·kw (forward), c_out/groups·kh·kw plus the ≤ 9 dy values the input gradient gathers per term
//! before rounding (its S counts each of them), n·oh·ow (weight gradient, split partials
//! included) and k (matmul); K + 16 is used throughout as slack. A failure of this bound is a
//! wrong index, not rounding.
#![cfg(feature = "cuda")]

use cudarc::driver::CudaSlice;
use engine::backend::cuda::launch::*;
use engine::backend::cuda::params::{ConvArgs, MatmulArgs};
use engine::backend::{self, set_precision, Backend, Conv2dParams, PadMode, Precision};
use engine::{Device, Tensor};

type R<T> = std::result::Result<T, String>;

fn e<E: std::fmt::Display>(x: E) -> String {
    x.to_string()
}

const U: f64 = 1.0 / 2048.0; // 2^-11, tf32's unit roundoff

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

    /// Passes when every |got − want| ≤ c·u·s + 2^-22·|want| + 1e-30 with c = 2.01 + (k+16)/2048.
    fn bound(&mut self, case: &str, kernel: &str, got: &[f32], want: &[f32], s: &[f32], k: usize) {
        let c = 2.01 + (k + 16) as f64 / 2048.0;
        let (mut worst, mut ratio, mut bad) = (0f64, 0f64, got.len() != want.len());
        for ((&g, &w), &si) in got.iter().zip(want).zip(s) {
            let err = (g as f64 - w as f64).abs();
            let tol = c * U * si as f64 + (w as f64).abs() / 4_194_304.0 + 1e-30;
            if !err.is_finite() || err > tol {
                bad = true;
            }
            worst = worst.max(err);
            ratio = ratio.max(err / tol);
        }
        self.line(case, kernel, worst, ratio, bad);
    }

    /// Passes when `got` and `want` are the same bits.
    fn bits(&mut self, case: &str, kernel: &str, got: &[f32], want: &[f32]) {
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        self.line(case, kernel, 0.0, 0.0, !same);
    }

    /// Passes when `got` and `want` differ somewhere (the tf32 kernels really ran).
    fn differ(&mut self, case: &str, got: &[f32], want: &[f32]) {
        let same = got
            .iter()
            .zip(want)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        self.line(case, "-", 0.0, 0.0, same);
    }

    fn line(&mut self, case: &str, kernel: &str, worst: f64, ratio: f64, bad: bool) {
        let verdict = if bad { "FAIL" } else { "PASS" };
        println!(
            "{} {case} {kernel} {worst:.3e} {ratio:.3} {verdict}",
            self.family
        );
        if bad {
            self.fails.push(format!("{} {case}", self.family));
        }
    }

    fn run(&mut self, case: &str, f: impl FnOnce(&mut Self) -> R<()>) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        let err = match r {
            Ok(Ok(())) => return,
            Ok(Err(err)) => err,
            Err(_) => "panicked".to_string(),
        };
        println!("{} {case} - - - FAIL ({err})", self.family);
        self.fails.push(format!("{} {case}: {err}", self.family));
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

fn host(t: &Tensor) -> R<&[f32]> {
    t.cpu_data().map_err(e)
}

fn abs(t: &Tensor) -> R<Tensor> {
    let v = host(t)?.iter().map(|x| x.abs()).collect();
    Tensor::from_vec(v, t.dims().to_vec()).map_err(e)
}

fn up(g: &Gpu, t: &Tensor) -> R<CudaSlice<f32>> {
    g.upload(host(t)?).map_err(e)
}

fn down(g: &Gpu, d: &CudaSlice<f32>, len: usize) -> R<Vec<f32>> {
    let mut v = g.download(d).map_err(e)?;
    v.truncate(len);
    Ok(v)
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

type ConvCase = (&'static str, [usize; 4], [usize; 4], Conv2dParams);

/// The conv cases of tests/cuda_vs_cpu.rs (most are too small for the tensor cores and check
/// that the launcher keeps f32 there), then shapes that exercise the tf32 kernels: odd sizes,
/// stride 2, reflect, groups, dilation, 1×1, 7×7, both tile widths, split weight gradients.
fn conv_cases() -> Vec<ConvCase> {
    vec![
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
        (
            "t_s2_reflect",
            [2, 19, 13, 11],
            [37, 19, 3, 3],
            conv_p(2, 1, 1, 1, true),
        ),
        (
            "t_groups2",
            [1, 48, 9, 10],
            [40, 24, 3, 3],
            conv_p(1, 1, 1, 2, false),
        ),
        (
            "t_1x1",
            [3, 70, 7, 5],
            [33, 70, 1, 1],
            conv_p(1, 0, 1, 1, false),
        ),
        (
            "t_dil2",
            [1, 20, 17, 15],
            [24, 20, 3, 3],
            conv_p(1, 2, 2, 1, false),
        ),
        (
            "t_cout130",
            [2, 64, 33, 31],
            [130, 64, 3, 3],
            conv_p(1, 1, 1, 1, false),
        ),
        (
            "t_cin150",
            [1, 150, 12, 11],
            [20, 150, 3, 3],
            conv_p(1, 1, 1, 1, true),
        ),
        (
            "t_7x7_reflect",
            [1, 16, 21, 19],
            [18, 16, 7, 7],
            conv_p(1, 3, 1, 1, true),
        ),
        (
            "t_split",
            [4, 16, 40, 40],
            [32, 16, 3, 3],
            conv_p(1, 1, 1, 1, false),
        ),
        (
            "t_groups3_s2",
            [2, 51, 15, 16],
            [48, 17, 3, 3],
            conv_p(2, 1, 1, 3, true),
        ),
    ]
}

/// One conv case at Tf32: y, dx and dw against the CPU within the bound.
fn conv_case(rep: &mut Report, g: &Gpu, i: usize, (name, xs, ws, p): ConvCase) {
    rep.run(name, |rep| {
        let seed = 900 + 10 * i as u64;
        let x = Tensor::randn(xs.to_vec(), 0.0, 1.0, seed);
        let w = Tensor::randn(ws.to_vec(), 0.0, 0.3, seed + 1);
        let b = Tensor::randn(vec![ws[0]], 0.0, 1.0, seed + 2);
        let y = cpu().conv2d(&x, &w, Some(&b), p).map_err(e)?;
        let dy = Tensor::randn(y.dims().to_vec(), 0.0, 1.0, seed + 3);
        let dx = cpu().conv2d_backward_input(&dy, &w, &xs, p).map_err(e)?;
        let dw = cpu().conv2d_backward_weight(&x, &dy, &ws, p).map_err(e)?;
        let (ax, aw, ady) = (abs(&x)?, abs(&w)?, abs(&dy)?);
        let sy = cpu().conv2d(&ax, &aw, None, p).map_err(e)?;
        let sdx = cpu().conv2d_backward_input(&ady, &aw, &xs, p).map_err(e)?;
        let sdw = cpu().conv2d_backward_weight(&ax, &ady, &ws, p).map_err(e)?;
        let a = conv_args(xs, ws, &p, true).ok_or("empty output")?;
        let (cg, mg) = (xs[1] / p.groups, ws[0] / p.groups);
        let taps = ws[2] * ws[3];
        let t = Precision::Tf32;
        let (xd, wd, bd, dyd) = (up(g, &x)?, up(g, &w)?, up(g, &b)?, up(g, &dy)?);
        let mut yd = g.zeros(y.numel()).map_err(e)?;
        conv_forward_at(g, &a, ConvPath::Auto, t, &xd, &wd, Some(&bd), &mut yd).map_err(e)?;
        let kf = conv_kernel(ConvOp::Forward, &a, ConvPath::Auto, t);
        let got = down(g, &yd, y.numel())?;
        rep.bound(
            &format!("{name}_y"),
            kf,
            &got,
            host(&y)?,
            host(&sy)?,
            cg * taps,
        );
        let mut dxd = g.zeros(x.numel()).map_err(e)?;
        conv_backward_input_at(g, &a, ConvPath::Auto, t, &dyd, &wd, &mut dxd).map_err(e)?;
        let ki = conv_kernel(ConvOp::BackwardInput, &a, ConvPath::Auto, t);
        let got = down(g, &dxd, x.numel())?;
        rep.bound(
            &format!("{name}_dx"),
            ki,
            &got,
            host(&dx)?,
            host(&sdx)?,
            mg * taps + 9,
        );
        let mut dwd = g.zeros(w.numel()).map_err(e)?;
        conv_backward_weight_at(g, &a, ConvPath::Auto, t, &xd, &dyd, &mut dwd).map_err(e)?;
        let kw = conv_kernel(ConvOp::BackwardWeight, &a, ConvPath::Auto, t);
        let got = down(g, &dwd, w.numel())?;
        let positions = y.numel() / ws[0];
        rep.bound(
            &format!("{name}_dw"),
            kw,
            &got,
            host(&dw)?,
            host(&sdw)?,
            positions,
        );
        Ok(())
    });
}

#[test]
#[ignore = "needs a GPU"]
fn conv2d_tf32_within_bound() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("conv2d_tf32");
    for (i, c) in conv_cases().into_iter().enumerate() {
        conv_case(&mut rep, &g, i, c);
    }
    rep.finish();
}

/// Runs forward, input and weight gradients of one case through the launchers that read the
/// process-wide setting; returns (y, dx, dw) on the host.
fn conv_global(
    g: &Gpu,
    a: &ConvArgs,
    ins: [&CudaSlice<f32>; 4],
    lens: [usize; 3],
) -> R<[Vec<f32>; 3]> {
    let [xd, wd, bd, dyd] = ins;
    let mut yd = g.zeros(lens[0]).map_err(e)?;
    conv_forward(g, a, ConvPath::Auto, xd, wd, Some(bd), &mut yd).map_err(e)?;
    let mut dxd = g.zeros(lens[1]).map_err(e)?;
    conv_backward_input(g, a, ConvPath::Auto, dyd, wd, &mut dxd).map_err(e)?;
    let mut dwd = g.zeros(lens[2]).map_err(e)?;
    conv_backward_weight(g, a, ConvPath::Auto, xd, dyd, &mut dwd).map_err(e)?;
    Ok([
        down(g, &yd, lens[0])?,
        down(g, &dxd, lens[1])?,
        down(g, &dwd, lens[2])?,
    ])
}

/// Runs the three launchers at an explicit precision.
fn conv_at(
    g: &Gpu,
    a: &ConvArgs,
    prec: Precision,
    ins: [&CudaSlice<f32>; 4],
    lens: [usize; 3],
) -> R<[Vec<f32>; 3]> {
    let [xd, wd, bd, dyd] = ins;
    let mut yd = g.zeros(lens[0]).map_err(e)?;
    conv_forward_at(g, a, ConvPath::Auto, prec, xd, wd, Some(bd), &mut yd).map_err(e)?;
    let mut dxd = g.zeros(lens[1]).map_err(e)?;
    conv_backward_input_at(g, a, ConvPath::Auto, prec, dyd, wd, &mut dxd).map_err(e)?;
    let mut dwd = g.zeros(lens[2]).map_err(e)?;
    conv_backward_weight_at(g, a, ConvPath::Auto, prec, xd, dyd, &mut dwd).map_err(e)?;
    Ok([
        down(g, &yd, lens[0])?,
        down(g, &dxd, lens[1])?,
        down(g, &dwd, lens[2])?,
    ])
}

/// The process-wide setting routes the launchers: at F32 they give the f32 kernels' bits (and
/// stay within the f32 tolerance of tests/cuda_vs_cpu.rs), at Tf32 the tf32 kernels' bits,
/// which differ. Touches the global setting: the only test here that does.
#[test]
#[ignore = "needs a GPU"]
fn precision_setting_routes_the_launchers() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("precision");
    for (i, (name, xs, ws, p)) in conv_cases().into_iter().enumerate().skip(13) {
        rep.run(name, |rep| {
            let seed = 1900 + 10 * i as u64;
            let x = Tensor::randn(xs.to_vec(), 0.0, 1.0, seed);
            let w = Tensor::randn(ws.to_vec(), 0.0, 0.3, seed + 1);
            let b = Tensor::randn(vec![ws[0]], 0.0, 1.0, seed + 2);
            let y = cpu().conv2d(&x, &w, Some(&b), p).map_err(e)?;
            let dy = Tensor::randn(y.dims().to_vec(), 0.0, 1.0, seed + 3);
            let a = conv_args(xs, ws, &p, true).ok_or("empty output")?;
            let (xd, wd, bd, dyd) = (up(&g, &x)?, up(&g, &w)?, up(&g, &b)?, up(&g, &dy)?);
            let ins = [&xd, &wd, &bd, &dyd];
            let lens = [y.numel(), x.numel(), w.numel()];
            let f32_at = conv_at(&g, &a, Precision::F32, ins, lens)?;
            let tf32_at = conv_at(&g, &a, Precision::Tf32, ins, lens)?;
            set_precision(Precision::F32);
            let f32_global = conv_global(&g, &a, ins, lens);
            set_precision(Precision::Tf32);
            let tf32_global = conv_global(&g, &a, ins, lens);
            set_precision(Precision::F32);
            let (f32_global, tf32_global) = (f32_global?, tf32_global?);
            let ops = [
                ConvOp::Forward,
                ConvOp::BackwardInput,
                ConvOp::BackwardWeight,
            ];
            for (j, what) in ["y", "dx", "dw"].iter().enumerate() {
                let kf = conv_kernel(ops[j], &a, ConvPath::Auto, Precision::F32);
                let kt = conv_kernel(ops[j], &a, ConvPath::Auto, Precision::Tf32);
                rep.bits(
                    &format!("{name}_{what}_f32"),
                    kf,
                    &f32_global[j],
                    &f32_at[j],
                );
                rep.bits(
                    &format!("{name}_{what}_tf32"),
                    kt,
                    &tf32_global[j],
                    &tf32_at[j],
                );
                if kt.ends_with("_tf32") {
                    rep.differ(
                        &format!("{name}_{what}_tf32_vs_f32"),
                        &tf32_at[j],
                        &f32_at[j],
                    );
                }
            }
            let y_ref = host(&y)?;
            let scale = y_ref.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = f32_at[0]
                .iter()
                .zip(y_ref)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            let tol = 1e-5 + 1e-4 * scale;
            let bad = f32_at[0]
                .iter()
                .zip(y_ref)
                .any(|(a, b)| (a - b).abs().is_nan() || (a - b).abs() > tol);
            rep.line(&format!("{name}_y_f32_vs_cpu"), "-", worst as f64, 0.0, bad);
            Ok(())
        });
    }
    rep.finish();
}

// ---- matmul -----------------------------------------------------------------------------------

#[test]
#[ignore = "needs a GPU"]
fn matmul_tf32_within_bound() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("matmul_tf32");
    // (batch, m, n, k, trans_a, trans_b, a batched, b batched): the f32 test's cases, then
    // shapes on the tensor cores with odd sizes, both transposes and broadcasting.
    let cases = [
        (1, 1, 1, 1, false, false, true, true),
        (1, 5, 7, 3, true, true, true, true),
        (4, 33, 65, 17, true, false, true, true),
        (2, 130, 129, 70, false, true, true, true),
        (3, 1, 200, 9, false, false, true, false),
        (4, 257, 3, 300, false, false, false, true),
        (1, 128, 128, 128, true, true, true, true),
        (2, 70, 33, 9, false, false, true, true),
        (3, 129, 250, 33, true, true, false, true),
        (1, 300, 140, 1000, false, true, true, false),
        (2, 16, 16, 8, true, false, true, true),
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
            let a_dims = if ta { shape(ab, k, m) } else { shape(ab, m, k) };
            let b_dims = if tb { shape(bb, n, k) } else { shape(bb, k, n) };
            let a = Tensor::randn(a_dims, 0.0, 1.0, 2600 + i as u64);
            let b = Tensor::randn(b_dims, 0.0, 1.0, 2700 + i as u64);
            let want = cpu().matmul(&a, &b, ta, tb).map_err(e)?;
            let s = cpu().matmul(&abs(&a)?, &abs(&b)?, ta, tb).map_err(e)?;
            let p = MatmulArgs {
                m: m as i64,
                n: n as i64,
                k: k as i64,
                batch: batch as i64,
                lda: if ta { m } else { k } as i64,
                ldb: if tb { k } else { n } as i64,
                ldc: n as i64,
                stride_a: if ab { (m * k) as i64 } else { 0 },
                stride_b: if bb { (k * n) as i64 } else { 0 },
                stride_c: (m * n) as i64,
                trans_a: ta as i32,
                trans_b: tb as i32,
                alpha: 1.0,
                beta: 0.0,
            };
            let (ad, bd) = (up(&g, &a)?, up(&g, &b)?);
            let mut cd = g.zeros(batch * m * n).map_err(e)?;
            let (av, bv) = (ad.as_view(), bd.as_view());
            matmul_at(&g, &p, Precision::Tf32, &av, &bv, &mut cd.as_view_mut()).map_err(e)?;
            let kernel = matmul_kernel(&p, Precision::Tf32).0;
            let got = down(&g, &cd, batch * m * n)?;
            rep.bound(&case, kernel, &got, host(&want)?, host(&s)?, k);
            Ok(())
        });
    }
    rep.finish();
}
