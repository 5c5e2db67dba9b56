//! The CUDA backend's checks against the CPU backend on the same bad inputs.
use super::*;
use crate::backend::cpu::CpuBackend;

/// The error kind and op of a result, for comparing the CPU backend with the checks.
fn kind<T>(r: &Result<T>) -> Option<(&'static str, &'static str)> {
    match r {
        Ok(_) => None,
        Err(Error::Shape { op, .. }) => Some(("shape", op)),
        Err(Error::Invalid { op, .. }) => Some(("invalid", op)),
        Err(_) => Some(("other", "")),
    }
}

fn t(d: &[usize]) -> Tensor {
    Tensor::zeros(d.to_vec())
}

/// Asserts that the CPU backend and the check agree: both accept, or both reject with the
/// same error kind naming the same op.
fn agree<A, B>(case: &str, cpu: Result<A>, check: Result<B>) {
    assert_eq!(kind(&cpu), kind(&check), "{case}");
}

#[test]
fn layout_and_reduction_checks_match_the_cpu_backend() {
    let cpu = CpuBackend;
    let x = t(&[2, 3, 4]);
    for perm in [
        vec![0, 1, 2],
        vec![0],
        vec![0, 0, 1],
        vec![0, 3, 1],
        vec![2, 1, 0],
    ] {
        agree("permute", cpu.permute(&x, &perm), permute(&x, &perm));
    }
    for (a, s, l) in [
        (1, 1, 2),
        (3, 0, 1),
        (1, 2, 2),
        (1, usize::MAX, 2),
        (2, 4, 0),
    ] {
        agree("narrow", cpu.narrow(&x, a, s, l), narrow(&x, a, s, l));
    }
    let y = t(&[2, 5, 4]);
    for (xs, axis) in [
        (vec![&x, &y], 1),
        (vec![&x, &y], 0),
        (vec![&x, &x], 3),
        (vec![], 0),
    ] {
        agree("concat", cpu.concat(&xs, axis), concat(&xs, axis));
    }
    for to in [vec![5, 2, 3, 4], vec![2, 3, 1], vec![3, 4], vec![2, 6, 4]] {
        agree(
            "broadcast_to",
            cpu.broadcast_to(&x, &to),
            broadcast_strides("broadcast_to", x.dims(), &to),
        );
        agree("sum_to", cpu.sum_to(&x, &to), sum_to_mask(&x, &to));
    }
    for axes in [vec![], vec![1], vec![0, 2], vec![3], vec![1, 1]] {
        let r = cpu.reduce(ReduceOp::Sum, &x, &axes, false);
        agree("reduce", r, axis_mask("reduce", &x, &axes));
    }
    let empty = t(&[2, 0, 3]);
    let r = cpu.reduce(ReduceOp::Max, &empty, &[1], false);
    assert!(matches!(r, Err(Error::Invalid { op: "reduce", .. })));
    for (a, b) in [
        (vec![3], vec![1]),
        (vec![2, 3], vec![2]),
        (vec![2, 3], vec![3]),
        (vec![2, 3, 5], vec![5]),
    ] {
        let (xa, al) = (t(&a), t(&b));
        agree(
            "prelu",
            cpu.prelu(&xa, &al),
            prelu_layout("prelu", &xa, &al),
        );
    }
    let cases = [
        (vec![2, 3], vec![3, 4], false, false),
        (vec![2, 3], vec![4, 3], false, true),
        (vec![3], vec![3, 4], false, false),
        (vec![5, 2, 3], vec![3, 4], false, false),
        (vec![2, 3], vec![5, 3, 4], false, false),
        (vec![5, 2, 3], vec![4, 3, 4], false, false),
        (vec![2, 3], vec![2, 4], true, false),
    ];
    for (a, b, ta, tb) in cases {
        let (ta_, tb_) = (t(&a), t(&b));
        agree(
            "matmul",
            cpu.matmul(&ta_, &tb_, ta, tb),
            matmul(&ta_, &tb_, ta, tb),
        );
    }
}

#[test]
fn image_checks_match_the_cpu_backend() {
    let cpu = CpuBackend;
    let conv_cases = [
        (vec![1, 4, 5, 5], vec![6, 2, 3, 3], 2, PadMode::Zeros, 1),
        (vec![1, 4, 5, 5], vec![6, 4, 3, 3], 2, PadMode::Zeros, 1),
        (vec![1, 4, 5], vec![6, 4, 3, 3], 1, PadMode::Zeros, 1),
        (vec![1, 4, 2, 2], vec![6, 4, 3, 3], 1, PadMode::Zeros, 0),
        (vec![1, 4, 2, 2], vec![6, 4, 3, 3], 1, PadMode::Reflect, 2),
        (vec![1, 4, 0, 2], vec![6, 4, 1, 1], 1, PadMode::Zeros, 0),
        (vec![1, 4, 5, 5], vec![6, 4, 0, 1], 1, PadMode::Zeros, 0),
    ];
    for (xd, wd, groups, pad_mode, pad) in conv_cases {
        let p = Conv2dParams {
            groups,
            pad_mode,
            padding: (pad, pad),
            ..Default::default()
        };
        let (x, w) = (t(&xd), t(&wd));
        agree(
            "conv2d",
            cpu.conv2d(&x, &w, None, p),
            conv("conv2d", &xd, &wd, p),
        );
    }
    let pools = [
        ((3, 3), (1, 1), (7, 7)),
        ((2, 2), (2, 2), (7, 7)),
        ((3, 3), (0, 0), (2, 2)),
        ((3, 3), (1, 1), (0, 4)),
    ];
    for (kernel, padding, (h, w)) in pools {
        let p = Pool2dParams {
            kernel,
            stride: (2, 2),
            padding,
            count_include_pad: false,
        };
        let x = t(&[1, 2, h, w]);
        agree(
            "avg_pool2d",
            cpu.avg_pool2d(&x, p),
            pool("avg_pool2d", h, w, p),
        );
        agree(
            "max_pool2d",
            cpu.max_pool2d(&x, p),
            pool("max_pool2d", h, w, p),
        );
    }
    for (xd, o) in [
        (vec![1, 2, 3, 3], (5, 4)),
        (vec![1, 2, 0, 3], (5, 4)),
        (vec![1, 2, 3, 3], (0, 4)),
    ] {
        let x = t(&xd);
        let r = cpu.resize2d(&x, o, ResizeMode::Nearest);
        agree("resize2d", r, resize("resize2d", (xd[2], xd[3]), o));
        let dy = t(&[1, 2, o.0, o.1]);
        let r = cpu.resize2d_backward(&dy, &xd, ResizeMode::Nearest);
        agree("resize2d_backward", r, resize_backward(&dy, &xd));
    }
    let up = UnfoldParams {
        kernel: (3, 3),
        stride: (1, 1),
        padding: (1, 1),
        dilation: (1, 1),
    };
    for (h, w, kernel) in [
        (5, 5, (3, 3)),
        (2, 2, (5, 5)),
        (0, 3, (3, 3)),
        (4, 4, (0, 3)),
    ] {
        let p = UnfoldParams { kernel, ..up };
        let x = t(&[1, 2, h, w]);
        agree("unfold", cpu.unfold(&x, p), unfold("unfold", h, w, p));
    }
    for cd in [
        vec![1, 18, 25],
        vec![1, 17, 25],
        vec![1, 18, 24],
        vec![18, 25],
    ] {
        let cols = t(&cd);
        agree("fold", cpu.fold(&cols, (5, 5), up), fold(&cols, (5, 5), up));
    }
}

#[test]
fn norm_corr_loss_and_adam_checks_match_the_cpu_backend() {
    let cpu = CpuBackend;
    for d in [
        vec![2, 3, 4, 5],
        vec![2, 3],
        vec![2, 1, 4, 5],
        vec![2, 3, 1, 1],
        vec![2, 3, 7],
    ] {
        let x = t(&d);
        for kind in [SpadeNorm::Instance, SpadeNorm::Pono] {
            agree(
                "spade",
                cpu.spade_modulate(&x, &x, &x, kind, 1e-5),
                norm("spade_modulate", &x, kind),
            );
        }
        agree(
            "instance",
            cpu.instance_norm(&x, None, None, 1e-5),
            norm("instance_norm", &x, SpadeNorm::Instance),
        );
    }
    let x = t(&[2, 3, 4, 5]);
    let (st, _) = (
        NormStats {
            mean: t(&[2, 3]),
            rstd: t(&[2, 3]),
        },
        (),
    );
    let bad = NormStats {
        mean: t(&[2, 1, 4, 5]),
        rstd: t(&[2, 1, 4, 5]),
    };
    for s in [&st, &bad] {
        let r = cpu.instance_norm_backward(&x, None, s, &x);
        agree(
            "in_bwd",
            r,
            norm_saved("instance_norm_backward", SpadeNorm::Instance, &x, s, &x),
        );
        let r = cpu.pono_backward(&x, s, &x);
        agree(
            "pono_bwd",
            r,
            norm_saved("pono_backward", SpadeNorm::Pono, &x, s, &x),
        );
    }
    let r = cpu.instance_norm(&x, Some(&t(&[4])), None, 1e-5);
    agree(
        "weight",
        r,
        channel_param("instance_norm", Some(&t(&[4])), 3),
    );
    let r = cpu.pono(&x, -1.0);
    agree("eps", r, eps("pono", -1.0));
    let p = CorrWarpParams {
        scale: 1.0,
        normalize: true,
        eps: 1e-5,
    };
    let shapes = [
        ([2, 3, 4], [2, 3, 5], [2, 5, 6]),
        ([2, 3, 4], [2, 4, 5], [2, 5, 6]),
        ([2, 0, 4], [2, 0, 5], [2, 5, 6]),
        ([2, 3, 4], [2, 3, 5], [2, 5, 0]),
    ];
    for (qd, kd, vd) in shapes {
        let (q, k, v) = (t(&qd), t(&kd), t(&vd));
        agree(
            "corr",
            cpu.corr_warp(&q, &k, &v, p, false),
            corr_warp("corr_warp", &q, &k, &v, p),
        );
    }
    for (a, b) in [
        (vec![2, 3], vec![2, 3]),
        (vec![2, 3], vec![3, 2]),
        (vec![0], vec![0]),
    ] {
        let (a, b) = (t(&a), t(&b));
        agree("l1", cpu.l1_loss(&a, &b), loss("l1_loss", &a, &b));
    }
    let ap = AdamParams {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
        step: 1,
    };
    for (p, gd) in [
        (ap, vec![3]),
        (AdamParams { step: 0, ..ap }, vec![3]),
        (AdamParams { beta1: 1.0, ..ap }, vec![3]),
        (ap, vec![4]),
    ] {
        let (mut w, mut m, mut v) = (t(&[3]), t(&[3]), t(&[3]));
        let g = t(&gd);
        let check = adam(&w, &g, &m, &v, &p);
        agree("adam", cpu.adam_step(&mut w, &g, &mut m, &mut v, p), check);
    }
}
