//! The shared checks on awkward shapes: derived layouts against naive index arithmetic, every
//! error case with its kind, op and the shapes it names, and the CPU backend reporting them.
use super::*;
use crate::backend::cpu::CpuBackend;
use std::fmt::Debug;

/// Error kinds, as `fails` names them.
const S: &str = "shape";
const I: &str = "invalid";

fn t(d: &[usize]) -> Tensor {
    Tensor::zeros(d.to_vec())
}

/// Asserts that `r` is a `kind` error of `op` whose detail shows each of `shows`.
#[track_caller]
fn fails<T: Debug>(r: Result<T>, kind: &str, op: &str, shows: &[&str]) {
    let (k, o, detail) = match r {
        Err(Error::Shape { op, detail }) => (S, op, detail),
        Err(Error::Invalid { op, detail }) => (I, op, detail),
        other => panic!("expected a {kind} error of {op}, got {other:?}"),
    };
    assert_eq!((k, o), (kind, op), "{detail}");
    for s in shows {
        assert!(detail.contains(s), "{detail:?} does not show {s:?}");
    }
}

/// Row-major strides, written out.
fn naive_strides(d: &[usize]) -> Vec<usize> {
    (0..d.len()).map(|i| d[i + 1..].iter().product()).collect()
}

/// Every multi-index of `dims`, in row-major order.
fn indices(dims: &[usize]) -> Vec<Vec<usize>> {
    let mut all = vec![vec![]];
    for &d in dims {
        all = all
            .into_iter()
            .flat_map(|i| (0..d).map(move |j| [i.clone(), vec![j]].concat()))
            .collect();
    }
    all
}

/// PyTorch's output length of a conv / pooling / unfold window, written out.
fn out_len(size: usize, pad: usize, dil: usize, k: usize, stride: usize) -> usize {
    (size + 2 * pad - dil * (k - 1) - 1) / stride + 1
}

fn pool_p(kernel: (usize, usize), stride: (usize, usize), padding: (usize, usize)) -> Pool2dParams {
    let count_include_pad = false;
    Pool2dParams {
        kernel,
        stride,
        padding,
        count_include_pad,
    }
}

const UP: UnfoldParams = UnfoldParams {
    kernel: (3, 3),
    stride: (1, 1),
    padding: (1, 1),
    dilation: (1, 1),
};

const CP: CorrWarpParams = CorrWarpParams {
    scale: 1.0,
    normalize: true,
    eps: 1e-5,
};

const AP: AdamParams = AdamParams {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0.0,
    decoupled: false,
    step: 1,
};

#[test]
fn permute_narrow_and_concat_derive_their_views() {
    let x = t(&[2, 1, 3, 5]);
    let st = naive_strides(x.dims());
    for perm in [[3, 1, 0, 2], [0, 1, 2, 3], [2, 3, 1, 0]] {
        let (dims, strides) = permute(&x, &perm).unwrap();
        for (i, &p) in perm.iter().enumerate() {
            assert_eq!((dims[i], strides[i]), (x.dims()[p], st[p]), "{perm:?}");
        }
    }
    for bad in [vec![0, 1, 2], vec![0, 1, 1, 2], vec![0, 1, 2, 4]] {
        fails(permute(&x, &bad), I, "permute", &["[2, 1, 3, 5]"]);
    }
    let (dims, strides, off) = narrow(&x, 3, 1, 3).unwrap();
    assert_eq!((dims, strides, off), (vec![2, 1, 3, 3], st.clone(), 1));
    assert_eq!(narrow(&x, 2, 3, 0).unwrap().2, 3 * st[2]);
    fails(narrow(&x, 2, 2, 2), I, "narrow", &["[2, 1, 3, 5]"]);
    fails(narrow(&x, 1, usize::MAX, 2), I, "narrow", &[]);
    fails(narrow(&x, 4, 0, 1), I, "narrow", &["axis 4"]);

    let (a, b, e) = (t(&[2, 3, 5]), t(&[2, 4, 5]), t(&[2, 0, 5]));
    assert_eq!(concat(&[&a, &e, &b], 1).unwrap(), (vec![2, 7, 5], 1, 2, 5));
    assert_eq!(concat(&[&a], 2).unwrap(), (vec![2, 3, 5], 2, 6, 1));
    fails(concat(&[], 0), I, "concat", &[]);
    fails(
        concat(&[&a, &b], 0),
        S,
        "concat",
        &["[2, 3, 5]", "[2, 4, 5]"],
    );
    fails(concat(&[&a, &t(&[2, 3])], 1), S, "concat", &["[2, 3]"]);
    fails(concat(&[&a, &a], 3), I, "concat", &["axis 3"]);
}

#[test]
fn broadcast_strides_and_sum_to_match_index_arithmetic() {
    let pairs = [
        (vec![3, 1], vec![2, 3, 5]),
        (vec![1], vec![4, 1, 3]),
        (vec![], vec![2, 2]),
        (vec![2, 1, 3], vec![2, 5, 3]),
        (vec![1, 1], vec![1, 1]),
        (vec![1, 7], vec![0, 7]),
    ];
    for (from, to) in pairs {
        let st = broadcast_strides("add", &from, &to).unwrap();
        let lead = to.len() - from.len();
        for idx in indices(&to) {
            // The source element: each index modulo its source dim, aligned on the right.
            let src = from.iter().zip(naive_strides(&from)).enumerate();
            let want: usize = src.map(|(a, (&f, s))| (idx[lead + a] % f) * s).sum();
            let got: usize = idx.iter().zip(&st).map(|(i, s)| i * s).sum();
            assert_eq!(got, want, "{from:?} -> {to:?} at {idx:?}");
        }
        let mask = sum_to_mask(&t(&to), &from).unwrap();
        let want: Vec<bool> = (0..to.len())
            .map(|i| i < lead || (from[i - lead] == 1 && to[i] != 1))
            .collect();
        assert_eq!(mask, want, "{from:?} <- {to:?}");
    }
    for (from, to) in [(vec![2, 3], vec![3]), (vec![2, 3], vec![4, 3])] {
        fails(broadcast_strides("mul", &from, &to), S, "mul", &["[2, 3]"]);
        fails(sum_to_mask(&t(&to), &from), S, "sum_to", &["[2, 3]"]);
    }
}

#[test]
fn reduction_masks_and_dims() {
    let x = t(&[2, 1, 3, 4]);
    assert_eq!(axis_mask("reduce", &x, &[]).unwrap(), [true; 4]);
    let mask = axis_mask("reduce", &x, &[3, 1]).unwrap();
    assert_eq!(mask, [false, true, false, true]);
    assert_eq!(keepdim_dims(x.dims(), &mask), [2, 1, 3, 1]);
    assert_eq!(reduced_dims(x.dims(), &mask, true), [2, 1, 3, 1]);
    assert_eq!(reduced_dims(x.dims(), &mask, false), [2, 3]);
    assert!(reduced_dims(x.dims(), &[true; 4], false).is_empty());
    fails(axis_mask("reduce", &x, &[1, 1]), I, "reduce", &["[1, 1]"]);
    fails(axis_mask("reduce", &x, &[4]), I, "reduce", &["axis 4"]);

    let (y, dy) = (t(&[2, 1, 3, 1]), t(&[2, 1, 3, 1]));
    let want = (vec![false, false, false, true], y.dims().to_vec());
    assert_eq!(max_backward(&x, &y, &dy, &[3]).unwrap(), want);
    let op = "reduce_max_backward";
    fails(max_backward(&x, &y, &t(&[2, 3]), &[3]), S, op, &["[2, 3]"]);
    fails(
        max_backward(&x, &t(&[2, 3]), &dy, &[3]),
        S,
        op,
        &["[2, 1, 3, 4]"],
    );
    fails(max_backward(&x, &y, &dy, &[5]), I, op, &[]);
}

#[test]
fn prelu_and_matmul_layouts() {
    let pl = |x: &[usize], a: &[usize]| prelu_layout("prelu", &t(x), &t(a));
    assert_eq!(pl(&[2, 3, 5], &[1]).unwrap(), (1, 1));
    assert_eq!(pl(&[2, 3, 5, 7], &[3]).unwrap(), (3, 35));
    assert_eq!(pl(&[4, 3], &[1, 3, 1]).unwrap(), (3, 1));
    fails(pl(&[3], &[3]), S, "prelu", &["[3]"]);
    fails(pl(&[2, 3], &[2]), S, "prelu", &["[2]", "[2, 3]"]);

    // (a, b, trans_a, trans_b) -> (batch dims, [m, k, n])
    let cases = [
        ((vec![2, 3], vec![3, 4], false, false), (vec![], [2, 3, 4])),
        ((vec![3, 2], vec![4, 3], true, true), (vec![], [2, 3, 4])),
        (
            (vec![5, 1, 2, 3], vec![3, 1], false, false),
            (vec![5, 1], [2, 3, 1]),
        ),
        (
            (vec![2, 3], vec![7, 4, 3], false, true),
            (vec![7], [2, 3, 4]),
        ),
        (
            (vec![7, 3, 2], vec![7, 3, 4], true, false),
            (vec![7], [2, 3, 4]),
        ),
        ((vec![2, 0], vec![0, 4], false, false), (vec![], [2, 0, 4])),
    ];
    for ((a, b, ta, tb), want) in cases {
        assert_eq!(
            matmul(&t(&a), &t(&b), ta, tb).unwrap(),
            want,
            "{a:?} x {b:?}"
        );
    }
    let bad = [
        (vec![3], vec![3, 4]),
        (vec![2, 3], vec![4, 5]),
        (vec![5, 2, 3], vec![4, 3, 4]),
    ];
    for (a, b) in bad {
        let shows = [format!("{a:?} x {b:?}")];
        let r = matmul(&t(&a), &t(&b), false, false);
        fails(r, S, "matmul", &[shows[0].as_str()]);
    }
}

/// conv2d parameters: (groups, stride.0, dilation.0, padding, reflect).
fn conv_p(g: usize, s: usize, d: usize, pad: usize, reflect: bool) -> Conv2dParams {
    Conv2dParams {
        stride: (s, 1),
        padding: (pad, pad),
        dilation: (d, 1),
        groups: g,
        pad_mode: if reflect {
            PadMode::Reflect
        } else {
            PadMode::Zeros
        },
    }
}

#[test]
fn conv_geometry_on_awkward_shapes() {
    // (x, w, stride, padding, dilation, groups, reflect)
    let cases = [
        ([2, 4, 7, 9], [6, 2, 3, 3], (2, 1), (1, 0), (1, 2), 2, false),
        ([1, 3, 5, 5], [3, 1, 1, 1], (1, 1), (0, 0), (1, 1), 3, false),
        ([1, 1, 1, 1], [1, 1, 1, 1], (2, 2), (0, 0), (1, 1), 1, false),
        ([0, 2, 4, 6], [4, 2, 3, 2], (1, 3), (2, 1), (1, 1), 1, true),
        ([3, 0, 3, 3], [2, 0, 3, 3], (1, 1), (1, 1), (1, 1), 1, false),
    ];
    for (xd, wd, stride, padding, dilation, groups, reflect) in cases {
        let pad_mode = conv_p(1, 1, 1, 0, reflect).pad_mode;
        let p = Conv2dParams {
            stride,
            padding,
            dilation,
            groups,
            pad_mode,
        };
        let g = conv("conv2d", &xd, &wd, p).unwrap();
        let oh = out_len(xd[2], padding.0, dilation.0, wd[2], stride.0);
        let ow = out_len(xd[3], padding.1, dilation.1, wd[3], stride.1);
        assert_eq!((g.x, g.w, g.oh, g.ow), (xd, wd, oh, ow), "{p:?}");
        assert_eq!(g.out(), [xd[0], wd[0], oh, ow]);
        conv_dy("conv2d_backward_input", &g, &t(&g.out())).unwrap();
        conv_bias("conv2d", &g, Some(&t(&[wd[0]]))).unwrap();
        conv_bias("conv2d", &g, None).unwrap();
    }
    let x = vec![1, 4, 5, 5];
    #[rustfmt::skip]
    let bad = [
        (vec![1, 4, 5], vec![6, 4, 3, 3], conv_p(1, 1, 1, 0, false), S, "[1, 4, 5]"),
        (x.clone(), vec![6, 4, 3], conv_p(1, 1, 1, 0, false), S, "[6, 4, 3]"),
        (x.clone(), vec![6, 3, 3, 3], conv_p(1, 1, 1, 0, false), S, "[6, 3, 3, 3]"),
        (x.clone(), vec![6, 2, 3, 3], conv_p(3, 1, 1, 0, false), S, "groups 3"),
        (x.clone(), vec![6, 2, 3, 3], conv_p(0, 1, 1, 0, false), S, "groups 0"),
        (x.clone(), vec![6, 4, 3, 3], conv_p(1, 0, 1, 0, false), I, "stride"),
        (x.clone(), vec![6, 4, 3, 3], conv_p(1, 1, 0, 0, false), I, "dilation"),
        (x.clone(), vec![6, 4, 0, 3], conv_p(1, 1, 1, 0, false), I, "kernel 0x3"),
        (vec![1, 4, 0, 5], vec![6, 4, 1, 1], conv_p(1, 1, 1, 0, false), S, "0x5"),
        (x.clone(), vec![6, 4, 3, 3], conv_p(1, 1, 1, 5, true), I, "reflect"),
        (x.clone(), vec![6, 4, 7, 3], conv_p(1, 1, 1, 0, false), S, "[1, 4, 5, 5]"),
        (x.clone(), vec![6, 4, 3, 3], conv_p(1, 1, 3, 0, false), S, "too big"),
    ];
    let op = "conv2d_backward_weight";
    for (xd, wd, p, kind, shows) in bad {
        fails(conv(op, &xd, &wd, p), kind, op, &[shows]);
    }
    // Zero padding may exceed the input; reflect padding may not.
    assert!(conv("conv2d", &x, &[6, 4, 3, 3], conv_p(1, 1, 1, 5, false)).is_ok());
    let g = conv("conv2d", &x, &[6, 4, 3, 3], conv_p(1, 2, 1, 1, false)).unwrap();
    let op = "conv2d_backward_input";
    fails(conv_dy(op, &g, &t(&[1, 6, 5, 5])), S, op, &["[1, 6, 3, 5]"]);
    let r = conv_bias("conv2d", &g, Some(&t(&[1, 6])));
    fails(r, S, "conv2d", &["[1, 6]", "6 output"]);
}

#[test]
fn pool_and_unfold_windows() {
    // (h, w, kernel, stride, padding)
    let cases = [
        (7, 9, (3, 3), (2, 2), (1, 1)),
        (1, 1, (1, 1), (1, 1), (0, 0)),
        (4, 6, (4, 4), (1, 3), (2, 2)),
        (6, 5, (3, 2), (3, 1), (1, 1)),
    ];
    let op = "max_pool2d_backward";
    for (h, w, kernel, stride, padding) in cases {
        let p = pool_p(kernel, stride, padding);
        let oh = out_len(h, padding.0, 1, kernel.0, stride.0);
        let ow = out_len(w, padding.1, 1, kernel.1, stride.1);
        assert_eq!(pool("avg_pool2d", h, w, p).unwrap(), (oh, ow));
        let back = |dy: &[usize]| pool_backward(op, &t(dy), &[2, 3, h, w], p);
        assert_eq!(back(&[2, 3, oh, ow]).unwrap(), ([2, 3, h, w], (oh, ow)));
        fails(back(&[2, 3, oh + 1, ow]), S, op, &["pooled to"]);
        // The same window with dilation 2 across.
        let u = UnfoldParams {
            kernel,
            stride,
            padding,
            dilation: (1, 2),
        };
        let want = (oh, out_len(w, padding.1, 2, kernel.1, stride.1));
        assert_eq!(unfold("unfold", h, w, u).unwrap(), want);
        let cols = t(&[2, 5 * kernel.0 * kernel.1, want.0 * want.1]);
        assert_eq!(fold(&cols, (h, w), u).unwrap(), ([2, 5, h, w], want));
    }
    let p = pool_p((3, 3), (2, 2), (2, 1));
    fails(pool("avg_pool2d", 7, 7, p), I, "avg_pool2d", &["(2, 1)"]);
    fails(pool("avg_pool2d", 0, 7, p), S, "avg_pool2d", &["0x7"]);
    let p = pool_p((3, 3), (2, 2), (0, 0));
    fails(pool("max_pool2d", 2, 7, p), S, "max_pool2d", &["2x7"]);
    let op = "avg_pool2d_backward";
    let r = pool_backward(op, &t(&[1, 1, 3, 3]), &[1, 7, 7], p);
    fails(r, S, op, &["[1, 7, 7]"]);

    let with = |kernel, stride| UnfoldParams {
        kernel,
        stride,
        ..UP
    };
    fails(
        unfold("unfold", 4, 4, with((0, 3), (1, 1))),
        I,
        "unfold",
        &[],
    );
    fails(
        unfold("unfold", 4, 4, with((3, 3), (1, 0))),
        I,
        "unfold",
        &[],
    );
    fails(unfold("unfold", 0, 3, UP), S, "unfold", &["0x3"]);
    fails(
        unfold("unfold", 2, 2, with((5, 5), (1, 1))),
        S,
        "unfold",
        &["2x2"],
    );
    for cd in [vec![1, 17, 25], vec![1, 18, 24], vec![18, 25]] {
        let shows = format!("{cd:?}");
        fails(fold(&t(&cd), (5, 5), UP), S, "fold", &[shows.as_str()]);
    }
    fails(fold(&t(&[1, 18, 25]), (0, 5), UP), S, "fold", &["0x5"]);
}

#[test]
fn resize_checks() {
    resize("resize2d", (1, 1), (5, 3)).unwrap();
    fails(resize("resize2d", (3, 0), (5, 3)), S, "resize2d", &["3x0"]);
    fails(resize("resize2d", (3, 3), (0, 3)), S, "resize2d", &["0x3"]);
    let op = "resize2d_backward";
    let back = |dy: &[usize], x: &[usize]| resize_backward(&t(dy), x);
    let want = ([2, 3, 4, 4], (5, 1));
    assert_eq!(back(&[2, 3, 5, 1], &[2, 3, 4, 4]).unwrap(), want);
    fails(back(&[2, 4, 5, 1], &[2, 3, 4, 4]), S, op, &["[2, 4, 5, 1]"]);
    fails(back(&[2, 3, 5], &[2, 3, 4, 4]), S, op, &["[2, 3, 5]"]);
    fails(back(&[2, 3, 5, 1], &[2, 3, 4]), S, op, &["[2, 3, 4]"]);
    fails(back(&[2, 3, 0, 1], &[2, 3, 4, 4]), S, op, &["0x1"]);
}

#[test]
fn norm_layouts_and_their_errors() {
    let (i, pn) = (SpadeNorm::Instance, SpadeNorm::Pono);
    for d in [
        vec![2, 3, 5],
        vec![2, 3, 4, 5],
        vec![1, 2, 3, 1, 2],
        vec![0, 3, 2, 2],
    ] {
        let l = norm("instance_norm", &t(&d), i).unwrap();
        let hw: usize = d[2..].iter().product();
        assert_eq!((l.n, l.c, l.hw), (d[0], d[1], hw));
        assert_eq!(l.stats_dims, [d[0], d[1]]);
    }
    let l = norm("pono", &t(&[2, 3, 4, 5]), pn).unwrap();
    assert_eq!((l.n, l.c, l.hw, l.stats_dims), (2, 3, 20, vec![2, 1, 4, 5]));
    let op = "spade_modulate";
    fails(norm(op, &t(&[2, 3]), i), S, op, &["[2, 3]"]);
    fails(norm(op, &t(&[2, 3, 7]), pn), S, op, &["[2, 3, 7]"]);
    fails(norm(op, &t(&[2, 1, 4, 5]), pn), I, op, &["[2, 1, 4, 5]"]);
    fails(norm(op, &t(&[2, 3, 0, 5]), i), I, op, &["[2, 3, 0, 5]"]);
    eps("pono", 0.0).unwrap();
    for e in [-1e-5, f32::NAN, f32::INFINITY] {
        fails(eps("pono", e), I, "pono", &["eps"]);
    }
    let op = "instance_norm";
    channel_param(op, Some(&t(&[3])), 3).unwrap();
    channel_param(op, None, 3).unwrap();
    fails(channel_param(op, Some(&t(&[1, 3])), 3), S, op, &["[1, 3]"]);

    let x = t(&[2, 3, 4, 5]);
    let st = |m: &[usize], r: &[usize]| NormStats {
        mean: t(m),
        rstd: t(r),
    };
    let op = "pono_backward";
    let ok = st(&[2, 1, 4, 5], &[2, 1, 4, 5]);
    assert_eq!(norm_saved(op, pn, &x, &ok, &x).unwrap().hw, 20);
    let r = norm_saved(op, pn, &x, &st(&[2, 3], &[2, 3]), &x);
    fails(r, S, op, &["stats.mean", "[2, 3]"]);
    let r = norm_saved(op, pn, &x, &ok, &t(&[2, 3, 5, 4]));
    fails(r, S, op, &["[2, 3, 5, 4]"]);
    let r = norm_saved(op, i, &x, &st(&[2, 3], &[3, 2]), &x);
    fails(r, S, op, &["stats.rstd", "[3, 2]"]);
}

#[test]
fn corr_warp_checks() {
    let (q, k, v) = (t(&[2, 3, 4]), t(&[2, 3, 5]), t(&[2, 5, 6]));
    let op = "corr_warp_backward";
    let cw = |q: &[usize], k: &[usize], v: &[usize]| corr_warp(op, &t(q), &t(k), &t(v), CP);
    let d = cw(&[2, 3, 4], &[2, 3, 5], &[2, 5, 6]).unwrap();
    assert_eq!(d, [2, 3, 4, 5, 6]);
    assert_eq!(
        cw(&[0, 3, 0], &[0, 3, 5], &[0, 5, 6]).unwrap(),
        [0, 3, 0, 5, 6]
    );
    corr_warp_dout(op, d, &t(&[2, 4, 6])).unwrap();
    fails(
        corr_warp_dout(op, d, &t(&[2, 6, 4])),
        S,
        op,
        &["[2, 4, 6]", "[2, 6, 4]"],
    );
    #[rustfmt::skip]
    let bad = [
        (vec![2, 3], vec![2, 3, 5], vec![2, 5, 6], S, "[2, 3]"),
        (vec![2, 3, 4], vec![2, 4, 5], vec![2, 5, 6], S, "[2, 4, 5]"),
        (vec![2, 3, 4], vec![2, 3, 5], vec![1, 5, 6], S, "[1, 5, 6]"),
        (vec![2, 0, 4], vec![2, 0, 5], vec![2, 5, 6], I, "[2, 0, 4]"),
        (vec![2, 3, 4], vec![2, 3, 5], vec![2, 5, 0], I, "[2, 5, 0]"),
    ];
    for (qd, kd, vd, kind, shows) in bad {
        fails(cw(&qd, &kd, &vd), kind, op, &[shows]);
    }
    let with = |p| corr_warp(op, &q, &k, &v, p);
    fails(
        with(CorrWarpParams {
            scale: f32::NAN,
            ..CP
        }),
        I,
        op,
        &["scale"],
    );
    fails(with(CorrWarpParams { eps: -1.0, ..CP }), I, op, &["eps"]);
    // eps only matters when the descriptors are normalised.
    with(CorrWarpParams {
        eps: -1.0,
        normalize: false,
        ..CP
    })
    .unwrap();
}

#[test]
fn loss_and_adam_checks() {
    loss("l1_loss", &t(&[2, 3]), &t(&[2, 3])).unwrap();
    let op = "mse_loss";
    fails(
        loss(op, &t(&[2, 3]), &t(&[3, 2])),
        S,
        op,
        &["[2, 3]", "[3, 2]"],
    );
    let op = "l1_loss_backward";
    fails(loss(op, &t(&[0, 3]), &t(&[0, 3])), I, op, &["[0, 3]"]);

    let (w, op) = (t(&[3]), "adam_step");
    adam(&w, &w, &w, &w, &AP).unwrap();
    fails(adam(&w, &w, &t(&[4]), &w, &AP), S, op, &["[3]", "[4]"]);
    fails(adam(&w, &t(&[1, 3]), &w, &w, &AP), S, op, &["[1, 3]"]);
    let step0 = AdamParams { step: 0, ..AP };
    fails(adam(&w, &w, &w, &w, &step0), I, op, &["step"]);
    for (beta1, beta2) in [(1.0, 0.999), (0.9, -0.1)] {
        let p = AdamParams { beta1, beta2, ..AP };
        fails(adam(&w, &w, &w, &w, &p), I, op, &["betas"]);
    }
}

/// The CPU backend runs these checks under each op's own name (the CUDA backend calls the same
/// functions; its GPU tests are in tests/cuda_backend.rs).
#[test]
fn the_cpu_backend_reports_them_under_its_op_names() {
    let cpu = CpuBackend;
    let (x, w, p) = (t(&[1, 4, 5, 5]), t(&[6, 4, 3, 3]), Conv2dParams::default());
    let dy = t(&[1, 6, 4, 3]);
    fails(cpu.conv2d(&x, &w, Some(&t(&[5])), p), S, "conv2d", &["[5]"]);
    let r = cpu.conv2d_backward_input(&dy, &w, x.dims(), p);
    fails(r, S, "conv2d_backward_input", &["[1, 6, 4, 3]"]);
    let r = cpu.conv2d_backward_weight(&x, &dy, w.dims(), p);
    fails(r, S, "conv2d_backward_weight", &["[1, 6, 4, 3]"]);
    let r = cpu.conv2d_backward_bias(&t(&[6, 3]));
    fails(r, S, "conv2d_backward_bias", &["[6, 3]"]);
    let pp = pool_p((2, 2), (2, 2), (0, 0));
    fails(
        cpu.avg_pool2d(&t(&[1, 5, 5]), pp),
        S,
        "avg_pool2d",
        &["[1, 5, 5]"],
    );
    let r = cpu.max_pool2d_backward(&x, &t(&[1, 4, 3, 2]), pp);
    fails(r, S, "max_pool2d_backward", &["[1, 4, 3, 2]"]);
    let r = cpu.resize2d(&x, (0, 2), ResizeMode::Nearest);
    fails(r, S, "resize2d", &["0x2"]);
    let up = UnfoldParams {
        padding: (0, 0),
        ..UP
    };
    fails(cpu.unfold(&t(&[1, 2, 2, 2]), up), S, "unfold", &["2x2"]);
    let st = NormStats {
        mean: t(&[1, 4]),
        rstd: t(&[1, 4]),
    };
    fails(
        cpu.pono_backward(&x, &st, &x),
        S,
        "pono_backward",
        &["stats.mean"],
    );
    let r = cpu.instance_norm(&x, None, Some(&t(&[3])), 1e-5);
    fails(r, S, "instance_norm", &["[3]"]);
    let r = cpu.spade_modulate(&x, &x, &t(&[1]), SpadeNorm::Pono, 1e-5);
    fails(r, S, "spade_modulate", &["[1]"]);
    let (q, k, v) = (t(&[1, 2, 3]), t(&[1, 2, 4]), t(&[1, 4, 5]));
    let r = cpu.corr_warp_backward(&q, &k, &v, CP, &t(&[1, 3, 4]));
    fails(r, S, "corr_warp_backward", &["[1, 3, 4]"]);
    let r = cpu.matmul(&t(&[2, 3]), &t(&[2, 3]), false, false);
    fails(r, S, "matmul", &["inner"]);
    let r = cpu.reduce_max_backward(&x, &x, &x, &[1]);
    fails(r, S, "reduce_max_backward", &["[1, 1, 5, 5]"]);
    let r = cpu.prelu_backward(&x, &t(&[4]), &w);
    fails(r, S, "prelu_backward", &["[6, 4, 3, 3]"]);
    fails(cpu.binary(BinaryOp::Div, &x, &w), S, "div", &[]);
    fails(cpu.sum_to(&x, &[3, 5]), S, "sum_to", &["[3, 5]"]);
    let r = cpu.softmax_backward(&x, &w);
    fails(r, S, "softmax_backward", &["[6, 4, 3, 3]"]);
    fails(
        cpu.mse_loss_backward(&x, &w, 1.0),
        S,
        "mse_loss_backward",
        &[],
    );
    let (mut a, mut m, mut v2) = (t(&[3]), t(&[3]), t(&[3]));
    let step0 = AdamParams { step: 0, ..AP };
    let r = cpu.adam_step(&mut a, &t(&[3]), &mut m, &mut v2, step0);
    fails(r, I, "adam_step", &["step"]);
}
