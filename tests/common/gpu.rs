//! The shared harness of the GPU tests (tests/cuda_*.rs): the GPU and the two backends, random
//! inputs, upload/download, the case tables that several suites run (conv, matmul, corr_warp),
//! and [`Report`], which prints one `family case … PASS|FAIL` line per check (the device run
//! collects those lines) and asserts once per family at the end.
//!
//! Compiled only with the `cuda` feature (declared from tests/common/mod.rs).

use super::{gpu_ok, R};
use cudarc::driver::CudaSlice;
use engine::backend::cuda::launch::{CorrDims, Gpu};
use engine::backend::{self, Backend, Conv2dParams, CorrWarpParams, PadMode};
use engine::{Device, Tensor};

/// Any displayable error as the harness's `String` error.
pub fn e<E: std::fmt::Display>(x: E) -> String {
    x.to_string()
}

// ---- devices ----------------------------------------------------------------------------------

/// The GPU for the launcher-level tests, or None (after printing why) when this machine has
/// none; [`gpu_ok`] decides, so ENGINE_REQUIRE_GPU=1 turns a missing GPU into a failure.
pub fn gpu() -> Option<Gpu> {
    if !gpu_ok() {
        return None;
    }
    match Gpu::new() {
        Ok(g) => {
            println!("GPU: {} ({})", g.name, g.arch);
            Some(g)
        }
        Err(err) => {
            let require = std::env::var("ENGINE_REQUIRE_GPU").is_ok_and(|v| v == "1");
            assert!(!require, "ENGINE_REQUIRE_GPU=1 but: {err}");
            println!("no GPU: skipped ({err})");
            None
        }
    }
}

pub fn cpu() -> &'static dyn Backend {
    backend::for_device(Device::Cpu).expect("the CPU backend")
}

pub fn cuda() -> &'static dyn Backend {
    backend::for_device(Device::Cuda).expect("the CUDA backend")
}

// ---- inputs and transfers ---------------------------------------------------------------------

/// Standard normal values of `shape`.
pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), 0.0, 1.0, seed)
}

/// |t| element-wise (the operands of an error bound's Σ|a||b|).
pub fn abs(t: &Tensor) -> R<Tensor> {
    let v = host(t)?.iter().map(|x| x.abs()).collect();
    Tensor::from_vec(v, t.dims().to_vec()).map_err(e)
}

/// Values rounded to halves, so that maxima tie.
pub fn round_halves(x: &Tensor) -> Tensor {
    let v: Vec<f32> = x
        .to_vec()
        .expect("host values")
        .iter()
        .map(|v| (v * 2.0).round() / 2.0)
        .collect();
    Tensor::from_vec(v, x.dims().to_vec()).expect("same shape")
}

/// The host values of a CPU tensor.
pub fn host(t: &Tensor) -> R<&[f32]> {
    t.cpu_data().map_err(e)
}

/// A CPU tensor's values in a fresh device buffer (the launcher-level tests).
pub fn up(g: &Gpu, t: &Tensor) -> R<CudaSlice<f32>> {
    g.upload(host(t)?).map_err(e)
}

/// The first `len` values of a device buffer (buffers hold at least one element).
pub fn down(g: &Gpu, d: &CudaSlice<f32>, len: usize) -> R<Vec<f32>> {
    let mut v = g.download(d).map_err(e)?;
    v.truncate(len);
    Ok(v)
}

/// A tensor moved to the CUDA backend (the backend-level tests).
pub fn on_cuda(t: &Tensor) -> Tensor {
    t.to_device(Device::Cuda).expect("upload")
}

// ---- comparison -------------------------------------------------------------------------------

/// How [`compare`] treats NaN and infinities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Specials {
    /// A NaN difference fails, and so does an infinite one where the reference is finite; the
    /// scale is max|want| over every element. For references that are finite by construction
    /// (the launcher-level suites).
    Fail,
    /// A value bit-equal to its reference, or NaN where the reference is NaN, passes; any other
    /// non-finite difference fails; the scale is over the finite references. For the backend
    /// suites, where the CPU's own NaN and ∞ are results the GPU must reproduce.
    MustMatch,
}

/// The outcome of one [`compare`].
#[derive(Clone, Copy, Debug)]
pub struct Diff {
    /// Largest |got − want| (NaN once any difference is NaN).
    pub max_abs: f32,
    /// `max_abs` relative to max|want|.
    pub max_rel: f32,
    /// atol + rtol·max|want|.
    pub tol: f32,
    /// (got, want) lengths.
    pub lens: (usize, usize),
    pub bad: bool,
}

impl Diff {
    /// `max_abs max_rel (tol …)`, and the lengths when they differ.
    pub fn detail(&self) -> String {
        let lens = if self.lens.0 != self.lens.1 {
            format!(" (len {} vs {})", self.lens.0, self.lens.1)
        } else {
            String::new()
        };
        format!(
            "{:.3e} {:.3e} (tol {:.2e}){lens}",
            self.max_abs, self.max_rel, self.tol
        )
    }
}

/// Every element must satisfy |got − want| ≤ atol + rtol·max|want| (the scale is the whole
/// tensor's, not the element's), the lengths must agree, and NaN is handled per `specials`.
pub fn compare(got: &[f32], want: &[f32], (atol, rtol): (f32, f32), specials: Specials) -> Diff {
    let must_match = specials == Specials::MustMatch;
    let scale = want
        .iter()
        .filter(|w| !must_match || w.is_finite())
        .fold(0f32, |m, w| m.max(w.abs()));
    let tol = atol + rtol * scale;
    let mut bad = got.len() != want.len();
    let mut max_abs = 0f32;
    for (&g, &w) in got.iter().zip(want) {
        if must_match && (g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan())) {
            continue;
        }
        let d = (g - w).abs();
        bad |= match specials {
            Specials::Fail => d.is_nan() || (d.is_infinite() && w.is_finite()) || d > tol,
            Specials::MustMatch => !d.is_finite() || d > tol,
        };
        max_abs = if d.is_nan() || max_abs.is_nan() {
            f32::NAN
        } else {
            max_abs.max(d)
        };
    }
    Diff {
        max_abs,
        max_rel: max_abs / scale.max(f32::MIN_POSITIVE),
        tol,
        lens: (got.len(), want.len()),
        bad,
    }
}

/// One family's checks: a line per check, the failures collected and asserted in
/// [`Report::finish`], so that one failing case does not hide the others.
pub struct Report {
    pub family: &'static str,
    pub fails: Vec<String>,
}

impl Report {
    pub fn new(family: &'static str) -> Self {
        Report {
            family,
            fails: Vec::new(),
        }
    }

    /// Prints `family case detail PASS|FAIL` and records a failure.
    pub fn record(&mut self, case: &str, detail: &str, bad: bool) {
        let verdict = if bad { "FAIL" } else { "PASS" };
        println!("{} {case} {detail} {verdict}", self.family);
        if bad {
            self.fails.push(format!("{} {case}", self.family));
        }
    }

    /// A check or case that could not run at all.
    pub fn fail(&mut self, case: &str, why: String) {
        println!("{} {case} - - FAIL ({why})", self.family);
        self.fails.push(format!("{} {case}: {why}", self.family));
    }

    /// Host values against a reference that is finite by construction ([`Specials::Fail`]).
    pub fn check(&mut self, case: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
        let d = compare(got, want, (atol, rtol), Specials::Fail);
        self.record(case, &d.detail(), d.bad);
    }

    /// The first `len` values of the device buffer `got` against the CPU tensor `want`, as
    /// [`Report::check`]; a failed download or a device tensor `want` is an error.
    pub fn check_dev(
        &mut self,
        g: &Gpu,
        case: &str,
        got: &CudaSlice<f32>,
        len: usize,
        want: &Tensor,
        (atol, rtol): (f32, f32),
    ) -> R<()> {
        let got = down(g, got, len)?;
        self.check(case, &got, host(want)?, atol, rtol);
        Ok(())
    }

    /// A CUDA backend result against the CPU backend's: the dims must agree and the result must
    /// be on the GPU, then [`compare`] with [`Specials::MustMatch`].
    pub fn check_tensors(&mut self, case: &str, got: &Tensor, want: &Tensor, tol: (f32, f32)) {
        if got.dims() != want.dims() || got.device() != Device::Cuda {
            let why = format!(
                "dims {:?} on {} vs {:?}",
                got.dims(),
                got.device(),
                want.dims()
            );
            return self.fail(case, why);
        }
        let (g, w) = (
            got.to_vec().expect("download"),
            want.to_vec().expect("cpu values"),
        );
        let d = compare(&g, &w, tol, Specials::MustMatch);
        self.record(case, &d.detail(), d.bad);
    }

    /// Runs `f` on the CPU backend with `inputs` and on the CUDA backend with their uploads,
    /// and compares every output (`case#i`).
    pub fn both(
        &mut self,
        case: &str,
        inputs: &[Tensor],
        tol: (f32, f32),
        f: impl Fn(&dyn Backend, &[Tensor]) -> engine::Result<Vec<Tensor>>,
    ) {
        let want = match f(cpu(), inputs) {
            Ok(w) => w,
            Err(e) => return self.fail(case, format!("cpu: {e}")),
        };
        let dev: Vec<Tensor> = inputs.iter().map(on_cuda).collect();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(cuda(), &dev)));
        match r {
            Ok(Ok(got)) if got.len() == want.len() => {
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    self.check_tensors(&format!("{case}#{i}"), g, w, tol);
                }
            }
            Ok(Ok(_)) => self.fail(case, "output count".into()),
            Ok(Err(e)) => self.fail(case, format!("cuda: {e}")),
            Err(_) => self.fail(case, "panicked".into()),
        }
    }

    /// Runs one case; an error or a panic fails it without stopping the family.
    pub fn run(&mut self, case: &str, f: impl FnOnce(&mut Self) -> R<()>) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(err)) => self.fail(case, err),
            Err(_) => self.fail(case, "panicked".into()),
        }
    }

    pub fn finish(self) {
        assert!(
            self.fails.is_empty(),
            "{} failing: {:#?}",
            self.family,
            self.fails
        );
    }
}

/// (atol, rtol) of the backend suites: data movement, one rounding per element, short f32
/// sums, GEMM-like sums.
pub const EXACT: (f32, f32) = (0.0, 0.0);
pub const TIGHT: (f32, f32) = (1e-6, 1e-6);
pub const F32: (f32, f32) = (1e-5, 1e-5);
pub const GEMM: (f32, f32) = (1e-4, 1e-5);

// ---- conv cases -------------------------------------------------------------------------------

/// (name, x dims, w dims, params).
pub type ConvCase = (&'static str, [usize; 4], [usize; 4], Conv2dParams);

/// Square stride, padding and dilation; zero or reflect padding.
pub const fn conv_p(
    stride: usize,
    pad: usize,
    dil: usize,
    groups: usize,
    reflect: bool,
) -> Conv2dParams {
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

/// The awkward conv shapes of the f32 kernels (tests/cuda_vs_cpu.rs), which tests/cuda_tf32.rs
/// also runs: odd sizes, stride 2, reflect, groups, depthwise, 1×1, dilation, 7×7, more than 128
/// output or input channels, a split weight gradient, 1×1 images.
#[rustfmt::skip]
pub const CONV_CASES: &[ConvCase] = &[
    ("3x3_pad1", [1, 3, 7, 9], [5, 3, 3, 3], conv_p(1, 1, 1, 1, false)),
    ("3x3_stride2", [2, 4, 9, 7], [6, 4, 3, 3], conv_p(2, 1, 1, 1, false)),
    ("3x3_reflect", [2, 4, 8, 8], [6, 4, 3, 3], conv_p(1, 1, 1, 1, true)),
    ("groups2_s2_reflect", [1, 6, 7, 5], [4, 3, 3, 3], conv_p(2, 1, 1, 2, true)),
    ("depthwise", [2, 8, 9, 11], [8, 1, 3, 3], conv_p(1, 1, 1, 8, false)),
    ("depthwise_reflect_s2", [1, 5, 6, 7], [10, 1, 3, 3], conv_p(2, 1, 1, 5, true)),
    ("1x1", [1, 3, 5, 5], [2, 3, 1, 1], conv_p(1, 0, 1, 1, false)),
    ("dil2", [1, 5, 11, 10], [7, 5, 3, 3], conv_p(1, 2, 2, 1, false)),
    ("7x7_reflect3", [1, 3, 12, 13], [8, 3, 7, 7], conv_p(1, 3, 1, 1, true)),
    ("cout130", [2, 32, 20, 19], [130, 32, 3, 3], conv_p(1, 1, 1, 1, false)),
    ("cin130", [1, 130, 10, 9], [16, 130, 3, 3], conv_p(1, 1, 1, 1, true)),
    ("split_k", [4, 8, 32, 32], [8, 8, 3, 3], conv_p(1, 1, 1, 1, false)),
    ("hw1", [4, 3, 1, 1], [5, 3, 1, 1], conv_p(1, 0, 1, 1, false)),
];

/// One conv case's CPU tensors.
pub struct ConvInputs {
    pub x: Tensor,
    pub w: Tensor,
    pub b: Tensor,
    /// conv2d(x, w, b) on the CPU.
    pub y: Tensor,
    /// An upstream gradient of y's shape.
    pub dy: Tensor,
}

/// x, b, dy ~ N(0, 1), w ~ N(0, 0.3²), from seeds seed, seed+1 (w), seed+2 (b), seed+3 (dy).
pub fn conv_inputs(xs: [usize; 4], ws: [usize; 4], p: Conv2dParams, seed: u64) -> R<ConvInputs> {
    let x = randn(&xs, seed);
    let w = Tensor::randn(ws.to_vec(), 0.0, 0.3, seed + 1);
    let b = randn(&[ws[0]], seed + 2);
    let y = cpu().conv2d(&x, &w, Some(&b), p).map_err(e)?;
    let dy = randn(y.dims(), seed + 3);
    Ok(ConvInputs { x, w, b, y, dy })
}

// ---- matmul cases -----------------------------------------------------------------------------

/// One batched matmul C[batch] = op(A)·op(B): sizes, transposes, and whether A and B have the
/// batch dimension (the other is broadcast).
#[derive(Clone, Copy, Debug)]
pub struct MatmulCase {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ta: bool,
    pub tb: bool,
    pub ab: bool,
    pub bb: bool,
}

/// (batch, m, n, k, trans_a, trans_b, a batched, b batched).
#[allow(clippy::too_many_arguments)]
pub const fn mm(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    ab: bool,
    bb: bool,
) -> MatmulCase {
    MatmulCase {
        batch,
        m,
        n,
        k,
        ta,
        tb,
        ab,
        bb,
    }
}

/// The matmul cases of the f32 kernels, which the tf32 suite also runs.
pub const MATMUL_CASES: &[MatmulCase] = &[
    mm(1, 1, 1, 1, false, false, true, true),
    mm(1, 5, 7, 3, true, true, true, true),
    mm(4, 33, 65, 17, true, false, true, true),
    mm(2, 130, 129, 70, false, true, true, true),
    mm(3, 1, 200, 9, false, false, true, false),
    mm(4, 257, 3, 300, false, false, false, true),
    mm(1, 128, 128, 128, true, true, true, true),
];

impl MatmulCase {
    /// `b{batch}_{m}x{n}x{k}_t{ta}{tb}_bc{ab}{bb}`.
    pub fn name(&self) -> String {
        format!(
            "b{}_{}x{}x{}_t{}{}_bc{}{}",
            self.batch,
            self.m,
            self.n,
            self.k,
            self.ta as u8,
            self.tb as u8,
            self.ab as u8,
            self.bb as u8
        )
    }

    fn operand(&self, batched: bool, r: usize, c: usize) -> Vec<usize> {
        if batched {
            vec![self.batch, r, c]
        } else {
            vec![r, c]
        }
    }

    /// A's dims as stored: [k, m] when transposed, else [m, k] (with the batch when batched).
    pub fn a_dims(&self) -> Vec<usize> {
        if self.ta {
            self.operand(self.ab, self.k, self.m)
        } else {
            self.operand(self.ab, self.m, self.k)
        }
    }

    /// B's dims as stored: [n, k] when transposed, else [k, n].
    pub fn b_dims(&self) -> Vec<usize> {
        if self.tb {
            self.operand(self.bb, self.n, self.k)
        } else {
            self.operand(self.bb, self.k, self.n)
        }
    }

    /// A ~ N(0, 1) from `seed`, B ~ N(0, 1) from `seed + 100`.
    pub fn inputs(&self, seed: u64) -> (Tensor, Tensor) {
        (
            randn(&self.a_dims(), seed),
            randn(&self.b_dims(), seed + 100),
        )
    }

    /// The length of C: batch·m·n.
    pub fn out_len(&self) -> usize {
        self.batch * self.m * self.n
    }
}

// ---- corr_warp cases --------------------------------------------------------------------------

pub const fn corr_dims(b: usize, c: usize, n: usize, m: usize, v: usize) -> CorrDims {
    CorrDims { b, c, n, m, v }
}

/// eps 1e-6 throughout.
pub const fn corr_params(scale: f32, normalize: bool) -> CorrWarpParams {
    CorrWarpParams {
        scale,
        normalize,
        eps: 1e-6,
    }
}

/// The awkward corr_warp shapes of the f32 kernels (tests/cuda_vs_cpu.rs); the bf16 suite runs
/// them too, with v = 65 narrowed (wider v stays on the f32 kernels at bf16).
pub const CORR_CASES: &[(CorrDims, CorrWarpParams)] = &[
    (corr_dims(1, 3, 5, 7, 3), corr_params(100.0, true)),
    (corr_dims(2, 16, 64, 64, 3), corr_params(10.0, true)),
    (corr_dims(4, 33, 65, 130, 3), corr_params(100.0, true)),
    (corr_dims(1, 17, 1, 1, 1), corr_params(0.5, false)),
    (corr_dims(2, 20, 70, 129, 65), corr_params(0.3, false)),
    (corr_dims(1, 5, 3, 200, 2), corr_params(1.0, false)),
    (corr_dims(4, 64, 200, 300, 48), corr_params(100.0, true)),
];

/// CoCosNet's correspondence at its real size: B = 4, N = M = 4096 (64 × 64), C = 256,
/// normalised, scale 100; `v` values per position.
pub const fn real_size_corr(v: usize) -> (CorrDims, CorrWarpParams) {
    (corr_dims(4, 256, 4096, 4096, v), corr_params(100.0, true))
}

/// `B{b}_C{c}_N{n}_M{m}_V{v}_{norm|raw}_s{scale}`.
pub fn corr_case_name(d: CorrDims, p: CorrWarpParams) -> String {
    let kind = if p.normalize { "norm" } else { "raw" };
    format!(
        "B{}_C{}_N{}_M{}_V{}_{kind}_s{}",
        d.b, d.c, d.n, d.m, d.v, p.scale
    )
}

/// [q [b, c, n], k [b, c, m], v [b, m, v], dout [b, n, v]] ~ N(0, 1), seeds seed..seed+3.
pub fn corr_inputs(d: CorrDims, seed: u64) -> [Tensor; 4] {
    [
        randn(&[d.b, d.c, d.n], seed),
        randn(&[d.b, d.c, d.m], seed + 1),
        randn(&[d.b, d.m, d.v], seed + 2),
        randn(&[d.b, d.n, d.v], seed + 3),
    ]
}
