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

mod common;

use common::gpu::*;
use common::R;
use cudarc::driver::CudaSlice;
use engine::backend::cuda::launch::*;
use engine::backend::cuda::params::{ConvArgs, MatmulArgs};
use engine::backend::{precision, set_precision, Precision};

const U: f64 = 1.0 / 2048.0; // 2^-11, tf32's unit roundoff

/// This suite's checks, each printed as `family case kernel max_err max_err/bound PASS|FAIL`.
trait Tf32Checks {
    fn bound(&mut self, case: &str, kernel: &str, got: &[f32], want: &[f32], s: &[f32], k: usize);
    fn bits(&mut self, case: &str, kernel: &str, got: &[f32], want: &[f32]);
    fn differ(&mut self, case: &str, got: &[f32], want: &[f32]);
    fn line(&mut self, case: &str, kernel: &str, worst: f64, ratio: f64, bad: bool);
}

impl Tf32Checks for Report {
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
        self.record(case, &format!("{kernel} {worst:.3e} {ratio:.3}"), bad);
    }
}

// ---- conv2d -----------------------------------------------------------------------------------

/// Shapes that exercise the tf32 kernels: odd sizes, stride 2, reflect, groups, dilation, 1×1,
/// 7×7, both tile widths, split weight gradients.
#[rustfmt::skip]
const TF32_CONV_CASES: &[ConvCase] = &[
    ("t_s2_reflect", [2, 19, 13, 11], [37, 19, 3, 3], conv_p(2, 1, 1, 1, true)),
    ("t_groups2", [1, 48, 9, 10], [40, 24, 3, 3], conv_p(1, 1, 1, 2, false)),
    ("t_1x1", [3, 70, 7, 5], [33, 70, 1, 1], conv_p(1, 0, 1, 1, false)),
    ("t_dil2", [1, 20, 17, 15], [24, 20, 3, 3], conv_p(1, 2, 2, 1, false)),
    ("t_cout130", [2, 64, 33, 31], [130, 64, 3, 3], conv_p(1, 1, 1, 1, false)),
    ("t_cin150", [1, 150, 12, 11], [20, 150, 3, 3], conv_p(1, 1, 1, 1, true)),
    ("t_7x7_reflect", [1, 16, 21, 19], [18, 16, 7, 7], conv_p(1, 3, 1, 1, true)),
    ("t_split", [4, 16, 40, 40], [32, 16, 3, 3], conv_p(1, 1, 1, 1, false)),
    ("t_groups3_s2", [2, 51, 15, 16], [48, 17, 3, 3], conv_p(2, 1, 1, 3, true)),
];

/// The conv cases of tests/cuda_vs_cpu.rs (most are too small for the tensor cores and check
/// that the launcher keeps f32 there), then [`TF32_CONV_CASES`].
fn conv_cases() -> Vec<ConvCase> {
    CONV_CASES.iter().chain(TF32_CONV_CASES).copied().collect()
}

/// Forward, input and weight gradients of one case through the launchers at `Some(prec)`, or
/// at None through those that read the process-wide setting; returns (y, dx, dw) on the host.
fn conv_three(
    g: &Gpu,
    a: &ConvArgs,
    prec: Option<Precision>,
    ins: [&CudaSlice<f32>; 4],
    lens: [usize; 3],
) -> R<[Vec<f32>; 3]> {
    let [xd, wd, bd, dyd] = ins;
    let auto = ConvPath::Auto;
    let mut yd = g.zeros(lens[0]).map_err(e)?;
    match prec {
        Some(t) => conv_forward(g, a, auto, t, xd, wd, Some(bd), &mut yd),
        None => conv_forward(g, a, auto, precision(), xd, wd, Some(bd), &mut yd),
    }
    .map_err(e)?;
    let mut dxd = g.zeros(lens[1]).map_err(e)?;
    match prec {
        Some(t) => conv_backward_input(g, a, auto, t, dyd, wd, &mut dxd),
        None => conv_backward_input(g, a, auto, precision(), dyd, wd, &mut dxd),
    }
    .map_err(e)?;
    let mut dwd = g.zeros(lens[2]).map_err(e)?;
    match prec {
        Some(t) => conv_backward_weight(g, a, auto, t, xd, dyd, &mut dwd),
        None => conv_backward_weight(g, a, auto, precision(), xd, dyd, &mut dwd),
    }
    .map_err(e)?;
    Ok([
        down(g, &yd, lens[0])?,
        down(g, &dxd, lens[1])?,
        down(g, &dwd, lens[2])?,
    ])
}

/// One conv case at Tf32: y, dx and dw against the CPU within the bound.
fn conv_case(rep: &mut Report, g: &Gpu, i: usize, (name, xs, ws, p): ConvCase) {
    rep.run(name, |rep| {
        let ConvInputs { x, w, b, y, dy } = conv_inputs(xs, ws, p, 900 + 10 * i as u64)?;
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
        let lens = [y.numel(), x.numel(), w.numel()];
        let [gy, gdx, gdw] = conv_three(g, &a, Some(t), [&xd, &wd, &bd, &dyd], lens)?;
        let kernel = |op| conv_kernel(op, &a, ConvPath::Auto, t);
        let (kf, ki, kw) = (
            kernel(ConvOp::Forward),
            kernel(ConvOp::BackwardInput),
            kernel(ConvOp::BackwardWeight),
        );
        rep.bound(
            &format!("{name}_y"),
            kf,
            &gy,
            host(&y)?,
            host(&sy)?,
            cg * taps,
        );
        rep.bound(
            &format!("{name}_dx"),
            ki,
            &gdx,
            host(&dx)?,
            host(&sdx)?,
            mg * taps + 9,
        );
        let positions = y.numel() / ws[0];
        rep.bound(
            &format!("{name}_dw"),
            kw,
            &gdw,
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

/// The process-wide setting routes the launchers: at F32 they give the f32 kernels' bits (and
/// stay within the f32 tolerance of tests/cuda_vs_cpu.rs), at Tf32 the tf32 kernels' bits,
/// which differ. Touches the global setting: the only test here that does.
#[test]
#[ignore = "needs a GPU"]
fn precision_setting_routes_the_launchers() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("precision");
    let tf32_only = conv_cases().into_iter().enumerate().skip(CONV_CASES.len());
    for (i, (name, xs, ws, p)) in tf32_only {
        rep.run(name, |rep| {
            let ConvInputs { x, w, b, y, dy } = conv_inputs(xs, ws, p, 1900 + 10 * i as u64)?;
            let a = conv_args(xs, ws, &p, true).ok_or("empty output")?;
            let (xd, wd, bd, dyd) = (up(&g, &x)?, up(&g, &w)?, up(&g, &b)?, up(&g, &dy)?);
            let ins = [&xd, &wd, &bd, &dyd];
            let lens = [y.numel(), x.numel(), w.numel()];
            let f32_at = conv_three(&g, &a, Some(Precision::F32), ins, lens)?;
            let tf32_at = conv_three(&g, &a, Some(Precision::Tf32), ins, lens)?;
            set_precision(Precision::F32);
            let f32_global = conv_three(&g, &a, None, ins, lens);
            set_precision(Precision::Tf32);
            let tf32_global = conv_three(&g, &a, None, ins, lens);
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
            let d = compare(&f32_at[0], host(&y)?, (1e-5, 1e-4), Specials::Fail);
            rep.line(
                &format!("{name}_y_f32_vs_cpu"),
                "-",
                d.max_abs as f64,
                0.0,
                d.bad,
            );
            Ok(())
        });
    }
    rep.finish();
}

// ---- matmul -----------------------------------------------------------------------------------

/// Shapes on the tensor cores with odd sizes, both transposes and broadcasting.
const TF32_MATMUL_CASES: &[MatmulCase] = &[
    mm(2, 70, 33, 9, false, false, true, true),
    mm(3, 129, 250, 33, true, true, false, true),
    mm(1, 300, 140, 1000, false, true, true, false),
    mm(2, 16, 16, 8, true, false, true, true),
];

#[test]
#[ignore = "needs a GPU"]
fn matmul_tf32_within_bound() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("matmul_tf32");
    // The f32 test's cases, then the tensor-core ones.
    for (i, c) in MATMUL_CASES.iter().chain(TF32_MATMUL_CASES).enumerate() {
        let case = c.name();
        rep.run(&case.clone(), |rep| {
            let MatmulCase {
                m,
                n,
                k,
                ta,
                tb,
                ab,
                bb,
                ..
            } = *c;
            let (a, b) = c.inputs(2600 + i as u64);
            let want = cpu().matmul(&a, &b, ta, tb).map_err(e)?;
            let s = cpu().matmul(&abs(&a)?, &abs(&b)?, ta, tb).map_err(e)?;
            let p = MatmulArgs {
                m: m as i64,
                n: n as i64,
                k: k as i64,
                batch: c.batch as i64,
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
            let mut cd = g.zeros(c.out_len()).map_err(e)?;
            let (av, bv) = (ad.as_view(), bd.as_view());
            matmul(&g, &p, Precision::Tf32, &av, &bv, &mut cd.as_view_mut()).map_err(e)?;
            let kernel = matmul_kernel(&p, Precision::Tf32).0;
            let got = down(&g, &cd, c.out_len())?;
            rep.bound(&case, kernel, &got, host(&want)?, host(&s)?, k);
            Ok(())
        });
    }
    rep.finish();
}

/// The tests above without a GPU, on the emulated driver (tests/common/emulated.rs).
#[test]
fn on_the_emulated_driver() {
    common::emulated::rerun_ignored(&[], 300, &[]);
}
