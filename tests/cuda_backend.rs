//! The CUDA backend through the `Backend` trait and through autograd, against the CPU backend,
//! on awkward shapes (odd sizes, 1-sized dims, sizes that are no multiple of the block size),
//! forward and backward: layout, elementwise, reductions and matmul, typed errors, the memory
//! pool, and a small autograd graph (the nn ops are in tests/cuda_backend_nn.rs). Needs a GPU:
//! every test is `#[ignore]`d; run with `--ignored --test-threads=1 --nocapture`. Without a
//! driver each prints "no GPU: skipped" (with ENGINE_REQUIRE_GPU=1 it fails instead). Each case
//! prints `family case max_abs max_rel (tol …) PASS/FAIL`; the test asserts once at the end of
//! its family.
#![cfg(feature = "cuda")]

mod common;

use common::gpu::*;
use common::{gpu_ok, R};
use engine::backend::{self, *};
use engine::{Device, Error, Tensor, Var};

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
            std::slice::from_ref(&x),
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
                rep.both(&name, std::slice::from_ref(&x), F32, |be, t| {
                    Ok(vec![be.reduce(op, &t[0], axes, keep)?])
                });
            }
        }
        // Max backward with ties: round to a few levels first.
        let xr = round_halves(&x);
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

#[test]
#[ignore]
fn typed_errors_and_empty_tensors() {
    if !gpu_ok() {
        return;
    }
    let be = cuda();
    let a = on_cuda(&randn(&[2, 3], 1));
    let b = on_cuda(&randn(&[3, 2], 2));
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
    let e = on_cuda(&Tensor::zeros([2, 0, 3]));
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
    let x = on_cuda(&randn(&[2, 8, 33, 31], 1));
    let w = on_cuda(&randn(&[8, 8, 3, 3], 2));
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
        rep.check_tensors(name, &got[i], &want[i], (1e-4, 1e-4));
    }
    rep.finish();
}

/// The tests above without a GPU, on the emulated driver (tests/common/emulated.rs).
#[test]
fn on_the_emulated_driver() {
    common::emulated::rerun_ignored(&[], 300, &[]);
}
