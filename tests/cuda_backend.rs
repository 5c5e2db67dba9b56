//! The CUDA backend through the `Backend` trait and through autograd, against the CPU backend,
//! on awkward shapes (odd sizes, 1-sized dims, sizes that are no multiple of the block size),
//! forward and backward. Needs a GPU: every test is `#[ignore]`d; run with
//! `--ignored --test-threads=1 --nocapture`. Without a driver each prints "no GPU: skipped"
//! (with ENGINE_REQUIRE_GPU=1 it fails instead). Each case prints
//! `family case max_abs max_rel PASS/FAIL`; the test asserts once at the end of its family.
#![cfg(feature = "cuda")]

mod common;

use common::gpu_ok;

use engine::backend::{self, *};
use engine::{Device, Error, Tensor, Var};

type R<T> = std::result::Result<T, String>;

fn cpu() -> &'static dyn Backend {
    backend::for_device(Device::Cpu).expect("cpu backend")
}

fn cuda() -> &'static dyn Backend {
    backend::for_device(Device::Cuda).expect("cuda backend")
}

fn randn(d: &[usize], seed: u64) -> Tensor {
    Tensor::randn(d.to_vec(), 0.0, 1.0, seed)
}

fn up(t: &Tensor) -> Tensor {
    t.to_device(Device::Cuda).expect("upload")
}

/// One line per case; the failures, asserted at the end.
struct Report {
    family: &'static str,
    fails: Vec<String>,
}

impl Report {
    fn new(family: &'static str) -> Self {
        Report {
            family,
            fails: vec![],
        }
    }
    /// Passes when dims agree, the result is on the GPU and |got − want| ≤ atol + rtol·max|want|.
    fn check(&mut self, case: &str, got: &Tensor, want: &Tensor, (atol, rtol): (f32, f32)) {
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
        let scale = w
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |m, v| m.max(v.abs()));
        let mut max_abs = 0f32;
        let mut bad = false;
        for (a, b) in g.iter().zip(&w) {
            if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) {
                continue;
            }
            let d = (a - b).abs();
            bad |= !d.is_finite() || d > atol + rtol * scale;
            max_abs = if d.is_nan() { f32::NAN } else { max_abs.max(d) };
        }
        let rel = max_abs / scale.max(f32::MIN_POSITIVE);
        let verdict = if bad { "FAIL" } else { "PASS" };
        println!("{} {case} {max_abs:.3e} {rel:.3e} {verdict}", self.family);
        if bad {
            self.fails.push(format!("{} {case}", self.family));
        }
    }
    fn fail(&mut self, case: &str, why: String) {
        println!("{} {case} - - FAIL ({why})", self.family);
        self.fails.push(format!("{} {case}: {why}", self.family));
    }
    /// Runs `f` on the CPU backend with `inputs` and on the CUDA backend with their uploads,
    /// and compares every output.
    fn both(
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
        let dev: Vec<Tensor> = inputs.iter().map(up).collect();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(cuda(), &dev)));
        match r {
            Ok(Ok(got)) if got.len() == want.len() => {
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    self.check(&format!("{case}#{i}"), g, w, tol);
                }
            }
            Ok(Ok(_)) => self.fail(case, "output count".into()),
            Ok(Err(e)) => self.fail(case, format!("cuda: {e}")),
            Err(_) => self.fail(case, "panicked".into()),
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

const EXACT: (f32, f32) = (0.0, 0.0);
const TIGHT: (f32, f32) = (1e-6, 1e-6);
const F32: (f32, f32) = (1e-5, 1e-5);
const GEMM: (f32, f32) = (1e-4, 1e-5);

#[test]
#[ignore]
fn layout_ops_match_cpu() {
    if !gpu_ok() {
        return;
    }
    let mut rep = Report::new("layout");
    let perms: &[(&[usize], &[usize])] = &[
        (&[2, 3, 4], &[2, 0, 1]),
        (&[3, 1, 5, 2], &[3, 1, 0, 2]),
        (&[129, 130], &[1, 0]),
        (&[3, 17, 33], &[0, 2, 1]),
        (&[2, 5, 3, 7], &[0, 3, 1, 2]),
        (&[1, 40, 1, 3], &[3, 2, 0, 1]),
        (&[4096, 3], &[1, 0]),
        (&[1], &[0]),
        (&[], &[]),
    ];
    for (i, (d, p)) in perms.iter().enumerate() {
        rep.both(
            &format!("permute{d:?}{p:?}"),
            &[randn(d, i as u64)],
            EXACT,
            |be, t| Ok(vec![be.permute(&t[0], p)?]),
        );
    }
    let x = randn(&[3, 5, 2], 1);
    for (axis, start, len) in [(0, 1, 2), (1, 1, 3), (2, 1, 1), (1, 4, 0), (1, 0, 5)] {
        rep.both(
            &format!("narrow{axis}_{start}_{len}"),
            &[x.clone()],
            EXACT,
            |be, t| Ok(vec![be.narrow(&t[0], axis, start, len)?]),
        );
    }
    let ins = [
        randn(&[2, 1, 3], 2),
        randn(&[2, 0, 3], 3),
        randn(&[2, 4, 3], 4),
    ];
    rep.both("concat1", &ins, EXACT, |be, t| {
        Ok(vec![be.concat(&[&t[0], &t[1], &t[2]], 1)?])
    });
    let ins = [randn(&[300, 70], 5), randn(&[300, 1], 6)];
    rep.both("concat_last", &ins, EXACT, |be, t| {
        Ok(vec![be.concat(&[&t[0], &t[1]], 1)?])
    });
    rep.both("concat0", &[randn(&[1, 7], 7)], EXACT, |be, t| {
        Ok(vec![be.concat(&[&t[0], &t[0]], 0)?])
    });
    let casts: &[(&[usize], &[usize])] = &[
        (&[3, 1], &[2, 3, 5]),
        (&[1], &[4, 1, 3]),
        (&[], &[2, 2]),
        (&[2, 1, 3], &[2, 5, 3]),
        (&[300, 1], &[300, 257]),
        (&[1, 1], &[0, 3]),
    ];
    for (i, (from, to)) in casts.iter().enumerate() {
        rep.both(
            &format!("broadcast{from:?}->{to:?}"),
            &[randn(from, 10 + i as u64)],
            EXACT,
            |be, t| Ok(vec![be.broadcast_to(&t[0], to)?]),
        );
        rep.both(
            &format!("sum_to{to:?}->{from:?}"),
            &[randn(to, 20 + i as u64)],
            F32,
            |be, t| Ok(vec![be.sum_to(&t[0], from)?]),
        );
    }
    rep.finish();
}

const UNARY: [UnaryOp; 13] = [
    UnaryOp::Neg,
    UnaryOp::AddScalar(0.5),
    UnaryOp::MulScalar(-1.5),
    UnaryOp::PowScalar(2.0),
    UnaryOp::PowScalar(3.0),
    UnaryOp::Relu,
    UnaryOp::LeakyRelu(0.2),
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Abs,
];

#[test]
#[ignore]
fn elementwise_ops_match_cpu() {
    if !gpu_ok() {
        return;
    }
    let mut rep = Report::new("elementwise");
    for d in [vec![1usize], vec![3, 5, 7], vec![1_000_003]] {
        // Positive inputs for log / sqrt / fractional powers.
        let x = Tensor::rand_uniform(d.clone(), 0.1, 2.0, 1);
        let s = randn(&d, 2);
        let g = randn(&d, 3);
        for op in UNARY {
            let input = if matches!(op, UnaryOp::Log | UnaryOp::Sqrt) {
                &x
            } else {
                &s
            };
            rep.both(
                &format!("{op:?}{d:?}"),
                &[input.clone(), g.clone()],
                TIGHT,
                |be, t| {
                    let y = be.unary(op, &t[0])?;
                    let dx = be.unary_backward(op, &t[0], &y, &t[1])?;
                    Ok(vec![y, dx])
                },
            );
        }
    }
    let pairs: &[(&[usize], &[usize])] = &[
        (&[3, 5, 7], &[3, 5, 7]),
        (&[2, 3, 4], &[3, 4]),
        (&[2, 1, 4], &[2, 3, 1]),
        (&[5, 1], &[1, 7]),
        (&[], &[4, 1, 3]),
        (&[1, 257, 1], &[3, 1, 33]),
        (&[2, 0, 3], &[1, 3]),
    ];
    for (i, (a, b)) in pairs.iter().enumerate() {
        let ins = [
            randn(a, 30 + i as u64),
            Tensor::rand_uniform(b.to_vec(), 0.5, 2.0, 40 + i as u64),
        ];
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
            rep.both(&format!("{op:?}{a:?}{b:?}"), &ins, TIGHT, |be, t| {
                Ok(vec![
                    be.binary(op, &t[0], &t[1])?,
                    be.binary(op, &t[1], &t[0])?,
                ])
            });
        }
    }
    for (xd, ad) in [
        (vec![2usize, 3, 5, 7], vec![3usize]),
        (vec![2, 3, 5, 7], vec![1]),
        (vec![4, 9], vec![9]),
        (vec![1, 3, 300, 301], vec![3]),
    ] {
        let ins = [
            randn(&xd, 50),
            Tensor::rand_uniform(ad.clone(), 0.0, 0.5, 51),
            randn(&xd, 52),
        ];
        rep.both(&format!("prelu{xd:?}{ad:?}"), &ins, F32, |be, t| {
            let y = be.prelu(&t[0], &t[1])?;
            let (dx, da) = be.prelu_backward(&t[0], &t[1], &t[2])?;
            Ok(vec![y, dx, da])
        });
    }
    rep.finish();
}

#[test]
#[ignore]
fn reductions_and_matmul_match_cpu() {
    if !gpu_ok() {
        return;
    }
    let mut rep = Report::new("reduce");
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 5, 7], &[1]),
        (&[3, 5, 7], &[0, 2]),
        (&[3, 5, 7], &[]),
        (&[3, 5, 7], &[2]),
        (&[2, 3, 1, 4, 5], &[0, 2, 4]),
        (&[1000, 33], &[0]),
        (&[4, 4099], &[1]),
        (&[1_000_003], &[0]),
        (&[3, 0, 2], &[0]),
    ];
    for (i, (d, axes)) in cases.iter().enumerate() {
        let x = randn(d, 60 + i as u64);
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
            for keep in [false, true] {
                let name = format!("{op:?}{d:?}{axes:?}k{keep}");
                rep.both(&name, &[x.clone()], F32, |be, t| {
                    Ok(vec![be.reduce(op, &t[0], axes, keep)?])
                });
            }
        }
        // Max backward with ties: round to a few levels first.
        let xr = be_round(&x);
        let kd: Vec<usize> = {
            let all = axes.is_empty();
            d.iter()
                .enumerate()
                .map(|(a, &n)| if all || axes.contains(&a) { 1 } else { n })
                .collect()
        };
        let dy = randn(&kd, 70 + i as u64);
        if d.iter().product::<usize>() > 0 {
            rep.both(
                &format!("max_backward{d:?}{axes:?}"),
                &[xr, dy],
                F32,
                |be, t| {
                    let y = be.reduce(ReduceOp::Max, &t[0], axes, true)?;
                    Ok(vec![be.reduce_max_backward(&t[0], &y, &t[1], axes)?])
                },
            );
        }
    }
    rep.finish();
    let mut rep = Report::new("matmul");
    let mm: &[(&[usize], &[usize], bool, bool)] = &[
        (&[7, 5], &[5, 3], false, false),
        (&[5, 7], &[5, 3], true, false),
        (&[7, 5], &[3, 5], false, true),
        (&[4, 130, 65], &[65, 129], false, false),
        (&[65, 3], &[4, 65, 129], true, false),
        (&[3, 2, 1, 9], &[3, 2, 9, 1], false, false),
        (&[2, 0], &[0, 3], false, false),
    ];
    for (i, (a, b, ta, tb)) in mm.iter().enumerate() {
        let ins = [randn(a, 80 + i as u64), randn(b, 90 + i as u64)];
        rep.both(&format!("{a:?}x{b:?}t{ta}{tb}"), &ins, GEMM, |be, t| {
            Ok(vec![be.matmul(&t[0], &t[1], *ta, *tb)?])
        });
    }
    rep.finish();
}

/// Values rounded to halves, so maxima tie.
fn be_round(x: &Tensor) -> Tensor {
    let v: Vec<f32> = x
        .to_vec()
        .unwrap()
        .iter()
        .map(|v| (v * 2.0).round() / 2.0)
        .collect();
    Tensor::from_vec(v, x.dims().to_vec()).unwrap()
}

#[test]
#[ignore]
fn conv_pool_resize_unfold_match_cpu() {
    if !gpu_ok() {
        return;
    }
    let mut rep = Report::new("conv");
    // (x, w, stride, padding, dilation, groups, reflect, bias)
    type C = (
        [usize; 4],
        [usize; 4],
        usize,
        usize,
        usize,
        usize,
        bool,
        bool,
    );
    let convs: &[C] = &[
        ([2, 3, 7, 9], [5, 3, 3, 3], 1, 1, 1, 1, false, true),
        ([1, 4, 8, 7], [6, 2, 3, 3], 2, 1, 1, 2, true, true),
        ([2, 4, 9, 9], [4, 1, 3, 3], 1, 2, 2, 4, false, false),
        ([1, 3, 5, 5], [2, 3, 1, 1], 1, 0, 1, 1, false, true),
        ([1, 1, 1, 1], [1, 1, 1, 1], 1, 0, 1, 1, false, false),
        ([3, 17, 13, 11], [130, 17, 3, 3], 1, 1, 1, 1, true, true),
    ];
    for (i, &(xd, wd, s, pd, dl, g, refl, bias)) in convs.iter().enumerate() {
        let p = Conv2dParams {
            stride: (s, s),
            padding: (pd, pd),
            dilation: (dl, dl),
            groups: g,
            pad_mode: if refl {
                PadMode::Reflect
            } else {
                PadMode::Zeros
            },
        };
        let (x, w, b) = (
            randn(&xd, 100 + i as u64),
            randn(&wd, 110 + i as u64),
            randn(&[wd[0]], 120),
        );
        let y = cpu().conv2d(&x, &w, None, p).unwrap();
        let dy = randn(y.dims(), 130 + i as u64);
        rep.both(
            &format!("{xd:?}{wd:?}s{s}p{pd}d{dl}g{g}r{refl}"),
            &[x, w, b, dy],
            GEMM,
            |be, t| {
                let bias = if bias { Some(&t[2]) } else { None };
                Ok(vec![
                    be.conv2d(&t[0], &t[1], bias, p)?,
                    be.conv2d_backward_input(&t[3], &t[1], t[0].dims(), p)?,
                    be.conv2d_backward_weight(&t[0], &t[3], t[1].dims(), p)?,
                    be.conv2d_backward_bias(&t[3])?,
                ])
            },
        );
    }
    rep.finish();
    let mut rep = Report::new("pool");
    let pools: &[(
        [usize; 4],
        (usize, usize),
        (usize, usize),
        (usize, usize),
        bool,
    )] = &[
        ([2, 3, 7, 9], (3, 3), (2, 2), (1, 1), true),
        ([2, 3, 7, 9], (3, 3), (2, 2), (1, 1), false),
        ([1, 2, 8, 7], (2, 3), (1, 2), (1, 1), false),
        ([1, 1, 1, 1], (1, 1), (1, 1), (0, 0), true),
        ([1, 5, 64, 63], (2, 2), (2, 2), (0, 0), false),
    ];
    for (i, &(xd, k, s, pd, cip)) in pools.iter().enumerate() {
        let p = Pool2dParams {
            kernel: k,
            stride: s,
            padding: pd,
            count_include_pad: cip,
        };
        let x = be_round(&randn(&xd, 140 + i as u64));
        let y = cpu().avg_pool2d(&x, p).unwrap();
        let dy = randn(y.dims(), 150 + i as u64);
        rep.both(
            &format!("{xd:?}k{k:?}s{s:?}p{pd:?}{cip}"),
            &[x, dy],
            F32,
            |be, t| {
                Ok(vec![
                    be.avg_pool2d(&t[0], p)?,
                    be.avg_pool2d_backward(&t[1], t[0].dims(), p)?,
                    be.max_pool2d(&t[0], p)?,
                    be.max_pool2d_backward(&t[0], &t[1], p)?,
                ])
            },
        );
    }
    rep.finish();
    let mut rep = Report::new("resize");
    let modes = [
        ResizeMode::Nearest,
        ResizeMode::Bilinear {
            align_corners: false,
        },
        ResizeMode::Bilinear {
            align_corners: true,
        },
    ];
    for (i, &(xd, o)) in [
        ([2, 3, 5, 7], (9, 4)),
        ([1, 2, 1, 1], (3, 5)),
        ([1, 1, 64, 48], (128, 96)),
        ([1, 2, 17, 9], (5, 3)),
    ]
    .iter()
    .enumerate()
    {
        for mode in modes {
            let x = randn(&xd, 160 + i as u64);
            let dy = randn(&[xd[0], xd[1], o.0, o.1], 170 + i as u64);
            rep.both(&format!("{xd:?}->{o:?}{mode:?}"), &[x, dy], F32, |be, t| {
                Ok(vec![
                    be.resize2d(&t[0], o, mode)?,
                    be.resize2d_backward(&t[1], t[0].dims(), mode)?,
                ])
            });
        }
    }
    rep.finish();
    let mut rep = Report::new("unfold");
    let cases: &[(
        [usize; 4],
        (usize, usize),
        (usize, usize),
        (usize, usize),
        (usize, usize),
    )] = &[
        ([2, 3, 7, 9], (3, 3), (1, 1), (1, 1), (1, 1)),
        ([1, 2, 8, 7], (2, 3), (2, 1), (0, 1), (1, 2)),
        ([2, 2, 3, 4], (3, 3), (1, 1), (2, 2), (1, 1)),
        ([1, 2, 9, 5], (3, 2), (3, 2), (1, 0), (2, 1)),
    ];
    for (i, &(xd, k, s, pd, dl)) in cases.iter().enumerate() {
        let p = UnfoldParams {
            kernel: k,
            stride: s,
            padding: pd,
            dilation: dl,
        };
        let x = randn(&xd, 180 + i as u64);
        let cols = cpu().unfold(&x, p).unwrap();
        let g = randn(cols.dims(), 190 + i as u64);
        rep.both(
            &format!("{xd:?}k{k:?}s{s:?}p{pd:?}d{dl:?}"),
            &[x, g],
            F32,
            |be, t| {
                Ok(vec![
                    be.unfold(&t[0], p)?,
                    be.fold(&t[1], (xd[2], xd[3]), p)?,
                ])
            },
        );
    }
    rep.finish();
}

#[test]
#[ignore]
fn norms_softmax_corr_warp_match_cpu() {
    if !gpu_ok() {
        return;
    }
    let mut rep = Report::new("norm");
    for (i, d) in [
        [2usize, 3, 5, 7],
        [1, 1, 1, 2],
        [1, 64, 33, 31],
        [4, 3, 1, 1],
    ]
    .iter()
    .enumerate()
    {
        let (x, dy) = (randn(d, 200 + i as u64), randn(d, 210 + i as u64));
        let (w, b) = (randn(&[d[1]], 220), randn(&[d[1]], 221));
        let (gm, bt) = (randn(d, 222), randn(d, 223));
        rep.both(
            &format!("instance{d:?}"),
            &[x.clone(), dy.clone(), w, b],
            (1e-4, 1e-4),
            |be, t| {
                let (y, st) = be.instance_norm(&t[0], Some(&t[2]), Some(&t[3]), 1e-5)?;
                let (dx, dw, db) = be.instance_norm_backward(&t[0], Some(&t[2]), &st, &t[1])?;
                let (y2, st2) = be.instance_norm(&t[0], None, None, 1e-5)?;
                let (dx2, _, _) = be.instance_norm_backward(&t[0], None, &st2, &t[1])?;
                Ok(vec![
                    y,
                    st.mean,
                    st.rstd,
                    dx,
                    dw.unwrap(),
                    db.unwrap(),
                    y2,
                    dx2,
                ])
            },
        );
        if d[1] > 1 {
            rep.both(
                &format!("pono{d:?}"),
                &[x.clone(), dy.clone()],
                (1e-4, 1e-4),
                |be, t| {
                    let (y, st) = be.pono(&t[0], 1e-5)?;
                    Ok(vec![
                        be.pono_backward(&t[0], &st, &t[1])?,
                        y,
                        st.mean,
                        st.rstd,
                    ])
                },
            );
        }
        for norm in [SpadeNorm::Instance, SpadeNorm::Pono] {
            if norm == SpadeNorm::Pono && d[1] == 1 {
                continue;
            }
            let ins = [x.clone(), dy.clone(), gm.clone(), bt.clone()];
            rep.both(
                &format!("spade{norm:?}{d:?}"),
                &ins,
                (1e-4, 1e-4),
                |be, t| {
                    let (y, st) = be.spade_modulate(&t[0], &t[2], &t[3], norm, 1e-5)?;
                    let (dx, dg, db) =
                        be.spade_modulate_backward(&t[0], &t[2], &st, norm, &t[1])?;
                    Ok(vec![y, dx, dg, db])
                },
            );
        }
    }
    rep.finish();
    let mut rep = Report::new("softmax");
    for (i, d) in [
        vec![3usize, 5],
        vec![7, 1],
        vec![2, 3, 4096],
        vec![1, 1025],
        vec![5],
    ]
    .iter()
    .enumerate()
    {
        let (x, dy) = (randn(d, 230 + i as u64), randn(d, 240 + i as u64));
        rep.both(&format!("{d:?}"), &[x, dy], F32, |be, t| {
            let y = be.softmax(&t[0])?;
            Ok(vec![be.softmax_backward(&y, &t[1])?, y])
        });
    }
    rep.finish();
    let mut rep = Report::new("corr_warp");
    for (i, &(b, c, n, m, v, norm)) in [
        (1, 3, 5, 7, 2, true),
        (2, 16, 65, 33, 3, false),
        (2, 7, 130, 129, 70, true),
        (1, 1, 1, 1, 1, false),
    ]
    .iter()
    .enumerate()
    {
        let p = CorrWarpParams {
            scale: 10.0,
            normalize: norm,
            eps: 1e-5,
        };
        let ins = [
            randn(&[b, c, n], 250 + i as u64),
            randn(&[b, c, m], 251),
            randn(&[b, m, v], 252),
            randn(&[b, n, v], 253),
        ];
        rep.both(
            &format!("B{b}C{c}N{n}M{m}V{v}n{norm}"),
            &ins,
            (1e-4, 1e-4),
            |be, t| {
                let (out, _) = be.corr_warp(&t[0], &t[1], &t[2], p, false)?;
                let (out2, attn) = be.corr_warp(&t[0], &t[1], &t[2], p, true)?;
                let (dq, dk, dv) = be.corr_warp_backward(&t[0], &t[1], &t[2], p, &t[3])?;
                Ok(vec![out, out2, attn.expect("attn"), dq, dk, dv])
            },
        );
    }
    rep.finish();
}

#[test]
#[ignore]
fn losses_and_adam_match_cpu() {
    if !gpu_ok() {
        return;
    }
    let mut rep = Report::new("loss");
    for (i, d) in [
        vec![3usize, 5],
        vec![1],
        vec![2, 1, 70_001],
        vec![5_000_011],
    ]
    .iter()
    .enumerate()
    {
        let ins = [randn(d, 260 + i as u64), randn(d, 270 + i as u64)];
        rep.both(&format!("{d:?}"), &ins, F32, |be, t| {
            Ok(vec![
                be.l1_loss(&t[0], &t[1])?,
                be.mse_loss(&t[0], &t[1])?,
                be.l1_loss_backward(&t[0], &t[1], 0.7)?,
                be.mse_loss_backward(&t[0], &t[1], 0.7)?,
            ])
        });
    }
    rep.finish();
    let mut rep = Report::new("adam");
    for (i, decoupled) in [false, true].into_iter().enumerate() {
        let d = [1000, 3];
        let p = AdamParams {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
            decoupled,
            step: 1,
        };
        let (w0, g0) = (randn(&d, 280 + i as u64), randn(&d, 290 + i as u64));
        let (mut wc, mut mc, mut vc) = (w0.clone(), Tensor::zeros(d), Tensor::zeros(d));
        let (mut wg, mut mg, mut vg) = (up(&w0), up(&Tensor::zeros(d)), up(&Tensor::zeros(d)));
        let shared = wg.clone(); // the step must not write through to another tensor
        for step in 1..=3 {
            let p = AdamParams { step, ..p };
            cpu().adam_step(&mut wc, &g0, &mut mc, &mut vc, p).unwrap();
            if let Err(e) = cuda().adam_step(&mut wg, &up(&g0), &mut mg, &mut vg, p) {
                rep.fail("adam", e.to_string());
            }
        }
        rep.check(&format!("param_d{decoupled}"), &wg, &wc, (1e-6, 1e-5));
        rep.check(&format!("m_d{decoupled}"), &mg, &mc, TIGHT);
        rep.check(&format!("v_d{decoupled}"), &vg, &vc, TIGHT);
        rep.check(&format!("untouched_d{decoupled}"), &shared, &w0, EXACT);
    }
    rep.finish();
}

#[test]
#[ignore]
fn typed_errors_and_empty_tensors() {
    if !gpu_ok() {
        return;
    }
    let be = cuda();
    let a = up(&randn(&[2, 3], 1));
    let b = up(&randn(&[3, 2], 2));
    assert!(matches!(
        be.binary(BinaryOp::Add, &a, &b),
        Err(Error::Shape { op: "add", .. })
    ));
    assert!(matches!(
        be.matmul(&a, &a, false, false),
        Err(Error::Shape { op: "matmul", .. })
    ));
    assert!(matches!(
        be.permute(&a, &[0, 0]),
        Err(Error::Invalid { op: "permute", .. })
    ));
    assert!(matches!(
        be.l1_loss(&a, &randn(&[2, 3], 3)),
        Err(Error::DeviceMismatch { .. })
    ));
    assert!(matches!(
        be.conv2d(&a, &a, None, Conv2dParams::default()),
        Err(Error::Shape { op: "conv2d", .. })
    ));
    let e = up(&Tensor::zeros([2, 0, 3]));
    assert_eq!(be.unary(UnaryOp::Exp, &e).unwrap().dims(), &[2, 0, 3]);
    assert_eq!(
        be.reduce(ReduceOp::Sum, &e, &[1], false)
            .unwrap()
            .to_vec()
            .unwrap(),
        vec![0.0; 6]
    );
    assert!(be
        .reduce(ReduceOp::Mean, &e, &[1], false)
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .all(|v| v.is_nan()));
    assert!(matches!(
        be.reduce(ReduceOp::Max, &e, &[1], false),
        Err(Error::Invalid { op: "reduce", .. })
    ));
    // Tensor methods and `item` route to the CUDA backend.
    assert_eq!(a.permute(&[1, 0]).unwrap().device(), Device::Cuda);
    let s = be.l1_loss(&a, &a).unwrap();
    assert_eq!(s.item().unwrap(), 0.0);
    println!("typed errors ok");
}

#[test]
#[ignore]
fn the_pool_stops_calling_the_driver_after_the_first_step() {
    if !gpu_ok() {
        return;
    }
    let x = up(&randn(&[2, 8, 33, 31], 1));
    let w = up(&randn(&[8, 8, 3, 3], 2));
    let p = Conv2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    let step = || {
        let y = cuda().conv2d(&x, &w, None, p).unwrap();
        let (z, st) = cuda().instance_norm(&y, None, None, 1e-5).unwrap();
        let dx = cuda().instance_norm_backward(&y, None, &st, &z).unwrap().0;
        cuda().conv2d_backward_weight(&x, &dx, w.dims(), p).unwrap()
    };
    drop(step());
    let before = backend::cuda_mem_stats().expect("stats");
    for _ in 0..3 {
        drop(step());
    }
    let after = backend::cuda_mem_stats().expect("stats");
    println!("pool before: {before}\npool after:  {after}");
    assert_eq!(
        after.driver_allocs, before.driver_allocs,
        "steps 2-4 reuse step 1's buffers"
    );
    assert!(after.reuses > before.reuses);
    assert!(after.peak >= after.in_use);
}

/// A small conv + instance norm + leaky ReLU + L1 graph: forward and every gradient on CUDA
/// against the same graph on the CPU.
#[test]
#[ignore]
fn autograd_graph_matches_cpu() {
    if !gpu_ok() {
        return;
    }
    let run = |dev: Device| -> R<Vec<Tensor>> {
        let e = |x: engine::Error| x.to_string();
        let on = |t: Tensor| t.to_device(dev).map_err(e);
        let x = Var::leaf(on(randn(&[2, 3, 9, 7], 1))?, true);
        let w = Var::param(on(randn(&[5, 3, 3, 3], 2))?);
        let b = Var::param(on(randn(&[5], 3))?);
        let gw = Var::param(on(randn(&[5], 4))?);
        let target = Var::constant(on(randn(&[2, 5, 5, 4], 5))?);
        let p = Conv2dParams {
            stride: (2, 2),
            padding: (1, 1),
            pad_mode: PadMode::Reflect,
            ..Default::default()
        };
        let y = Var::conv2d(&x, &w, Some(&b), p).map_err(e)?;
        let y = y
            .instance_norm(Some(&gw), None, 1e-5)
            .map_err(e)?
            .leaky_relu(0.2)
            .map_err(e)?;
        let loss = y.l1_loss(&target).map_err(e)?;
        loss.backward().map_err(e)?;
        let grad = |v: &Var| v.grad().ok_or_else(|| "missing gradient".to_string());
        Ok(vec![
            loss.value(),
            y.value(),
            grad(&x)?,
            grad(&w)?,
            grad(&b)?,
            grad(&gw)?,
        ])
    };
    let want = run(Device::Cpu).expect("cpu graph");
    let got = run(Device::Cuda).expect("cuda graph");
    let mut rep = Report::new("autograd");
    for (i, name) in ["loss", "y", "dx", "dw", "db", "dgamma"].iter().enumerate() {
        rep.check(name, &got[i], &want[i], (1e-4, 1e-4));
    }
    rep.finish();
}
