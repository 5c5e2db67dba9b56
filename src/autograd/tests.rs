//! Gradient checks for every differentiable op; the engine's semantics are in `tests/semantics.rs`.

use super::var::Var;
use super::{gradcheck, no_grad};
use crate::backend::{
    Conv2dParams, CorrWarpParams, PadMode, Pool2dParams, ResizeMode, SpadeNorm, UnfoldParams,
};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

mod semantics;

// ---- helpers ------------------------------------------------------------------------------

/// Central-difference step and tolerances for smooth ops on O(1) values (see gradcheck.rs).
const EPS: f32 = 1e-2;
const RTOL: f32 = 1e-2;
const ATOL: f32 = 1e-2;

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 0.0, 1.0, seed)
}

/// Normal samples pushed at least `margin` away from 0 (for kinks at 0).
fn away_from_zero(dims: &[usize], seed: u64, margin: f32) -> Tensor {
    let v = randn(dims, seed).to_vec().unwrap();
    let v = v
        .into_iter()
        .map(|x| {
            if x.abs() < margin {
                margin.copysign(x)
            } else {
                x
            }
        })
        .collect();
    Tensor::from_vec(v, dims.to_vec()).unwrap()
}

/// Uniform samples in [lo, hi).
fn uniform(dims: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    Tensor::rand_uniform(dims.to_vec(), lo, hi, seed)
}

/// Distinct values 0.1 apart in a scrambled order (max and max-pool need no near-ties).
fn distinct(dims: &[usize], seed: u64) -> Tensor {
    let n: usize = dims.iter().product();
    let keys = randn(&[n], seed).to_vec().unwrap();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let mut v = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        v[i] = (rank as f32 - n as f32 / 2.0) * 0.1;
    }
    Tensor::from_vec(v, dims.to_vec()).unwrap()
}

fn check(name: &str, f: impl Fn(&[Var]) -> Result<Var>, inputs: Vec<Tensor>) {
    check_with(name, f, inputs, EPS, RTOL, ATOL);
}

fn check_with(
    name: &str,
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: Vec<Tensor>,
    eps: f32,
    rtol: f32,
    atol: f32,
) {
    if let Err(e) = gradcheck(f, &inputs, eps, rtol, atol) {
        panic!("{name}: {e}");
    }
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec().unwrap()
}

fn assert_all_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w}"
        );
    }
}

// ---- elementwise --------------------------------------------------------------------------

#[test]
fn grad_binary_ops_with_broadcasting() {
    let a = randn(&[3, 1, 5], 1);
    let b = randn(&[4, 1], 2);
    check("add", |v| v[0].add(&v[1]), vec![a.clone(), b.clone()]);
    check("sub", |v| v[0].sub(&v[1]), vec![a.clone(), b.clone()]);
    check("mul", |v| v[0].mul(&v[1]), vec![a.clone(), b.clone()]);
    let denom = away_from_zero(&[4, 1], 3, 0.5);
    check("div", |v| v[0].div(&v[1]), vec![a.clone(), denom.clone()]);
    // Broadcast the other way round, and same shapes.
    check(
        "div rev",
        |v| v[1].div(&v[0]),
        vec![away_from_zero(&[3, 1, 5], 4, 0.5), b.clone()],
    );
    check(
        "mul same",
        |v| v[0].mul(&v[1]),
        vec![randn(&[2, 3], 5), randn(&[2, 3], 6)],
    );
    check(
        "add scalar-shaped",
        |v| v[0].add(&v[1]),
        vec![randn(&[2, 3], 7), randn(&[], 8)],
    );
}

#[test]
fn grad_unary_ops() {
    let x = randn(&[2, 3, 4], 10);
    let pos = uniform(&[2, 3, 4], 0.5, 2.0, 11);
    let off0 = away_from_zero(&[2, 3, 4], 12, 0.1);
    check("neg", |v| v[0].neg(), vec![x.clone()]);
    check("add_scalar", |v| v[0].add_scalar(1.5), vec![x.clone()]);
    check("mul_scalar", |v| v[0].mul_scalar(-2.5), vec![x.clone()]);
    check("powf 2", |v| v[0].powf(2.0), vec![x.clone()]);
    check("powf 3 negative bases", |v| v[0].powf(3.0), vec![x.clone()]);
    check("powf 1.5", |v| v[0].powf(1.5), vec![pos.clone()]);
    check("powf -0.5", |v| v[0].powf(-0.5), vec![pos.clone()]);
    check("relu", |v| v[0].relu(), vec![off0.clone()]);
    check("leaky_relu", |v| v[0].leaky_relu(0.2), vec![off0.clone()]);
    check("tanh", |v| v[0].tanh(), vec![x.clone()]);
    check("sigmoid", |v| v[0].sigmoid(), vec![x.clone()]);
    check("exp", |v| v[0].exp(), vec![x.clone()]);
    check("log", |v| v[0].log(), vec![pos.clone()]);
    check("sqrt", |v| v[0].sqrt(), vec![pos.clone()]);
    check("abs", |v| v[0].abs(), vec![off0.clone()]);
}

#[test]
fn grad_prelu_shared_and_per_channel() {
    let x = away_from_zero(&[2, 3, 4, 5], 20, 0.1);
    check(
        "prelu [1]",
        |v| v[0].prelu(&v[1]),
        vec![x.clone(), Tensor::full(0.25, [1])],
    );
    let alpha = Tensor::from_vec(vec![0.1, -0.3, 0.7], [3]).unwrap();
    check(
        "prelu [C]",
        |v| v[0].prelu(&v[1]),
        vec![x.clone(), alpha.clone()],
    );
    check(
        "prelu [C] rank 2",
        |v| v[0].prelu(&v[1]),
        vec![away_from_zero(&[4, 3], 21, 0.1), alpha],
    );
}

// ---- reductions ---------------------------------------------------------------------------

#[test]
fn grad_sum_mean() {
    let x = randn(&[3, 4, 5], 30);
    check("sum axis 1", |v| v[0].sum(&[1], false), vec![x.clone()]);
    check(
        "sum axes 0,2 keepdim",
        |v| v[0].sum(&[0, 2], true),
        vec![x.clone()],
    );
    check("sum all", |v| v[0].sum(&[], false), vec![x.clone()]);
    check("sum_all", |v| v[0].sum_all(), vec![x.clone()]);
    check("mean axis 2", |v| v[0].mean(&[2], false), vec![x.clone()]);
    check(
        "mean axes 0,1 keepdim",
        |v| v[0].mean(&[0, 1], true),
        vec![x.clone()],
    );
    check("mean_all", |v| v[0].mean_all(), vec![x.clone()]);
    check(
        "sum over a 1-sized axis",
        |v| v[0].sum(&[1], false),
        vec![randn(&[3, 1, 2], 31)],
    );
    let y = Var::param(x).sum_all().unwrap();
    assert_eq!(y.dims(), &[] as &[usize]);
}

#[test]
fn grad_max_without_ties() {
    let x = distinct(&[3, 4, 5], 40);
    check("max axis 1", |v| v[0].max(&[1], false), vec![x.clone()]);
    check(
        "max axes 0,2 keepdim",
        |v| v[0].max(&[0, 2], true),
        vec![x.clone()],
    );
    check("max all", |v| v[0].max(&[], false), vec![x]);
}

#[test]
fn max_ties_share_the_gradient() {
    let x =
        Var::param(Tensor::from_vec(vec![1.0, 3.0, 3.0, 2.0, 5.0, 0.0, 5.0, 5.0], [2, 4]).unwrap());
    x.max(&[1], false)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let third = 1.0 / 3.0;
    assert_all_close(
        &vals(&x.grad().unwrap()),
        &[0.0, 0.5, 0.5, 0.0, third, 0.0, third, third],
        1e-6,
    );
}

// ---- matmul -------------------------------------------------------------------------------

#[test]
fn grad_matmul_all_transposes() {
    let (m, k, n) = (3, 4, 5);
    for ta in [false, true] {
        for tb in [false, true] {
            let a = randn(&if ta { [2, k, m] } else { [2, m, k] }, 50);
            let b = randn(&if tb { [2, n, k] } else { [2, k, n] }, 51);
            check(
                &format!("matmul_t {ta} {tb}"),
                |v| v[0].matmul_t(&v[1], ta, tb),
                vec![a, b],
            );
        }
    }
    check(
        "matmul rank 2",
        |v| v[0].matmul(&v[1]),
        vec![randn(&[3, 4], 52), randn(&[4, 1], 53)],
    );
}

#[test]
fn grad_matmul_broadcast_rank2_operand() {
    check(
        "matmul [M,K] x [B,K,N]",
        |v| v[0].matmul(&v[1]),
        vec![randn(&[3, 4], 54), randn(&[2, 4, 5], 55)],
    );
    check(
        "matmul [B,M,K] x [K,N]",
        |v| v[0].matmul(&v[1]),
        vec![randn(&[2, 3, 4], 56), randn(&[4, 5], 57)],
    );
    check(
        "matmul_t [K,M]^T x [B,N,K]^T",
        |v| v[0].matmul_t(&v[1], true, true),
        vec![randn(&[4, 3], 58), randn(&[2, 5, 4], 59)],
    );
}

// ---- layout -------------------------------------------------------------------------------

#[test]
fn grad_layout_ops() {
    let x = randn(&[2, 3, 4], 60);
    check("reshape", |v| v[0].reshape(&[4, 6]), vec![x.clone()]);
    check(
        "reshape inferred",
        |v| v[0].reshape(&[usize::MAX, 2]),
        vec![x.clone()],
    );
    check("permute", |v| v[0].permute(&[2, 0, 1]), vec![x.clone()]);
    check("narrow middle", |v| v[0].narrow(1, 1, 1), vec![x.clone()]);
    check("narrow start", |v| v[0].narrow(2, 0, 3), vec![x.clone()]);
    check("narrow end", |v| v[0].narrow(0, 1, 1), vec![x.clone()]);
    check("narrow all", |v| v[0].narrow(0, 0, 2), vec![x.clone()]);
    check(
        "broadcast_to",
        |v| v[0].broadcast_to(&[2, 3, 4]),
        vec![randn(&[3, 1], 61)],
    );
    check(
        "concat",
        |v| Var::concat(&[&v[0], &v[1], &v[2]], 1),
        vec![
            randn(&[2, 1, 4], 62),
            randn(&[2, 3, 4], 63),
            randn(&[2, 2, 4], 64),
        ],
    );
    // Only the inputs that require grad get one.
    let a = Var::param(randn(&[2, 2], 65));
    let c = Var::constant(randn(&[2, 3], 66));
    Var::concat(&[&c, &a], 1)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(vals(&a.grad().unwrap()), vec![1.0; 4]);
    assert!(c.grad().is_none());
}

// ---- convolution, pooling, resizing, unfold -------------------------------------------------

fn conv_params(
    stride: usize,
    pad: usize,
    dil: usize,
    groups: usize,
    mode: PadMode,
) -> Conv2dParams {
    Conv2dParams {
        stride: (stride, stride),
        padding: (pad, pad),
        dilation: (dil, dil),
        groups,
        pad_mode: mode,
    }
}

#[test]
fn grad_conv2d() {
    let conv = |p: Conv2dParams| move |v: &[Var]| Var::conv2d(&v[0], &v[1], v.get(2), p);
    let x = randn(&[2, 4, 5, 6], 70);
    let cases = [
        (
            "plain",
            conv_params(1, 0, 1, 1, PadMode::Zeros),
            [3, 4, 3, 3],
        ),
        (
            "stride 2 pad 1",
            conv_params(2, 1, 1, 1, PadMode::Zeros),
            [3, 4, 3, 3],
        ),
        (
            "reflect pad 1",
            conv_params(1, 1, 1, 1, PadMode::Reflect),
            [2, 4, 3, 3],
        ),
        (
            "reflect stride 2",
            conv_params(2, 2, 1, 1, PadMode::Reflect),
            [2, 4, 3, 2],
        ),
        (
            "groups 2",
            conv_params(1, 1, 1, 2, PadMode::Zeros),
            [4, 2, 3, 3],
        ),
        (
            "dilation 2",
            conv_params(1, 2, 2, 1, PadMode::Zeros),
            [2, 4, 3, 3],
        ),
        ("1x1", conv_params(1, 0, 1, 1, PadMode::Zeros), [5, 4, 1, 1]),
    ];
    for (i, (name, p, w)) in cases.into_iter().enumerate() {
        let w = randn(&w, 71 + i as u64);
        let b = randn(&[w.dims()[0]], 80 + i as u64);
        check(name, conv(p), vec![x.clone(), w.clone(), b]);
        check(&format!("{name} no bias"), conv(p), vec![x.clone(), w]);
    }
}

fn pool(k: usize, s: usize, p: usize, count_include_pad: bool) -> Pool2dParams {
    Pool2dParams {
        kernel: (k, k),
        stride: (s, s),
        padding: (p, p),
        count_include_pad,
    }
}

#[test]
fn grad_pooling() {
    let x = randn(&[2, 3, 5, 7], 90);
    check(
        "avg 2/2",
        |v| v[0].avg_pool2d(pool(2, 2, 0, true)),
        vec![x.clone()],
    );
    check(
        "avg 3/2 pad 1 incl",
        |v| v[0].avg_pool2d(pool(3, 2, 1, true)),
        vec![x.clone()],
    );
    check(
        "avg 3/2 pad 1 excl",
        |v| v[0].avg_pool2d(pool(3, 2, 1, false)),
        vec![x.clone()],
    );
    let xd = distinct(&[2, 3, 5, 7], 91);
    check(
        "max 2/2",
        |v| v[0].max_pool2d(pool(2, 2, 0, true)),
        vec![xd.clone()],
    );
    check(
        "max 3/1 overlapping",
        |v| v[0].max_pool2d(pool(3, 1, 0, true)),
        vec![xd.clone()],
    );
    check(
        "max 3/2 pad 1",
        |v| v[0].max_pool2d(pool(3, 2, 1, true)),
        vec![xd],
    );
}

#[test]
fn grad_resize() {
    let x = randn(&[2, 2, 3, 4], 100);
    for (name, out, mode) in [
        ("nearest up", (5, 7), ResizeMode::Nearest),
        ("nearest down", (2, 3), ResizeMode::Nearest),
        (
            "bilinear up",
            (5, 7),
            ResizeMode::Bilinear {
                align_corners: false,
            },
        ),
        (
            "bilinear down",
            (2, 3),
            ResizeMode::Bilinear {
                align_corners: false,
            },
        ),
        (
            "bilinear aligned up",
            (6, 9),
            ResizeMode::Bilinear {
                align_corners: true,
            },
        ),
        (
            "bilinear aligned to 1",
            (1, 2),
            ResizeMode::Bilinear {
                align_corners: true,
            },
        ),
    ] {
        check(name, |v| v[0].resize2d(out, mode), vec![x.clone()]);
    }
}

#[test]
fn grad_unfold_fold() {
    let p = UnfoldParams {
        kernel: (3, 2),
        stride: (2, 1),
        padding: (1, 1),
        dilation: (1, 2),
    };
    let x = randn(&[2, 3, 5, 6], 110);
    check("unfold", |v| v[0].unfold(p), vec![x.clone()]);
    let cols = no_grad(|| Var::constant(x.clone()).unfold(p))
        .unwrap()
        .value();
    check(
        "fold",
        |v| v[0].fold((5, 6), p),
        vec![randn(cols.dims(), 111)],
    );
}

// ---- normalisation ------------------------------------------------------------------------

#[test]
fn grad_instance_norm() {
    let x = randn(&[2, 3, 4, 5], 120);
    let w = uniform(&[3], 0.5, 1.5, 121);
    let b = randn(&[3], 122);
    check(
        "instance_norm affine",
        |v| v[0].instance_norm(Some(&v[1]), Some(&v[2]), 1e-5),
        vec![x.clone(), w.clone(), b.clone()],
    );
    check(
        "instance_norm plain",
        |v| v[0].instance_norm(None, None, 1e-5),
        vec![x.clone()],
    );
    check(
        "instance_norm weight only",
        |v| v[0].instance_norm(Some(&v[1]), None, 1e-5),
        vec![x.clone(), w],
    );
    check(
        "instance_norm bias only",
        |v| v[0].instance_norm(None, Some(&v[1]), 1e-5),
        vec![x, b],
    );
}

#[test]
fn grad_pono_and_spade() {
    let x = randn(&[2, 4, 3, 5], 130);
    check("pono", |v| v[0].pono(1e-5), vec![x.clone()]);
    let g = randn(&[2, 4, 3, 5], 131);
    let b = randn(&[2, 4, 3, 5], 132);
    for norm in [SpadeNorm::Pono, SpadeNorm::Instance] {
        check(
            &format!("spade {norm:?}"),
            |v| v[0].spade_modulate(&v[1], &v[2], norm, 1e-5),
            vec![x.clone(), g.clone(), b.clone()],
        );
    }
}

// ---- softmax, attention, losses -----------------------------------------------------------

#[test]
fn grad_softmax() {
    check("softmax", |v| v[0].softmax(), vec![randn(&[3, 7], 140)]);
    check(
        "softmax rank 3",
        |v| v[0].softmax(),
        vec![randn(&[2, 1, 5], 141)],
    );
}

#[test]
fn grad_corr_warp() {
    let (q, k, v) = (
        randn(&[2, 3, 5], 150),
        randn(&[2, 3, 4], 151),
        randn(&[2, 4, 2], 152),
    );
    for normalize in [false, true] {
        let p = CorrWarpParams {
            scale: if normalize { 3.0 } else { 0.7 },
            normalize,
            eps: 1e-5,
        };
        check(
            &format!("corr_warp normalize={normalize}"),
            |x| Var::corr_warp(&x[0], &x[1], &x[2], p),
            vec![q.clone(), k.clone(), v.clone()],
        );
    }
    let p = CorrWarpParams {
        scale: 1.0,
        normalize: false,
        eps: 1e-5,
    };
    let (qv, kv, vv) = (Var::constant(q), Var::constant(k), Var::param(v));
    let (out, attn) = Var::corr_warp_with_attn(&qv, &kv, &vv, p).unwrap();
    assert_eq!(attn.dims(), &[2, 5, 4]);
    assert_eq!(out.dims(), &[2, 5, 2]);
}

#[test]
fn grad_losses() {
    let a = randn(&[2, 3, 4], 160);
    let b = randn(&[2, 3, 4], 161);
    // Keep a - b away from 0, where |a - b| has its kink.
    let diff = away_from_zero(&[2, 3, 4], 162, 0.1);
    let b_l1 = Tensor::from_vec(
        vals(&a)
            .iter()
            .zip(vals(&diff))
            .map(|(x, d)| x - d)
            .collect(),
        [2, 3, 4],
    )
    .unwrap();
    check("l1_loss", |v| v[0].l1_loss(&v[1]), vec![a.clone(), b_l1]);
    check("mse_loss", |v| v[0].mse_loss(&v[1]), vec![a, b]);
}

// ---- gradcheck itself ---------------------------------------------------------------------

#[test]
fn gradcheck_catches_a_wrong_gradient() {
    // x · detach(x) has gradient x by autograd but 2x numerically.
    let e = gradcheck(
        |v| v[0].mul(&v[0].detach()),
        &[uniform(&[3], 1.0, 2.0, 170)],
        EPS,
        RTOL,
        ATOL,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, Error::Autograd(_)) && msg.contains("input 0") && msg.contains("3 of 3"),
        "{msg}"
    );
}
