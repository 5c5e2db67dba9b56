//! The CUDA backend's nn ops through the `Backend` trait against the CPU backend, on awkward
//! shapes, forward and backward: conv, pooling, resize, unfold/fold, the normalisations, softmax,
//! corr_warp, the losses and Adam (the tensor ops are in tests/cuda_backend.rs). Needs a GPU:
//! every test is `#[ignore]`d; run with `--ignored --test-threads=1 --nocapture`. Without a
//! driver each prints "no GPU: skipped" (with ENGINE_REQUIRE_GPU=1 it fails instead). Each case
//! prints `family case max_abs max_rel (tol …) PASS/FAIL`; the test asserts once at the end of
//! its family.
#![cfg(feature = "cuda")]

mod common;

use common::gpu::*;
use common::gpu_ok;
use engine::backend::*;
use engine::Tensor;

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
    // (x, kernel, stride, padding, count_include_pad)
    type P = (
        [usize; 4],
        (usize, usize),
        (usize, usize),
        (usize, usize),
        bool,
    );
    let pools: &[P] = &[
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
        let x = round_halves(&randn(&xd, 140 + i as u64));
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
    // (x, kernel, stride, padding, dilation)
    type U = (
        [usize; 4],
        (usize, usize),
        (usize, usize),
        (usize, usize),
        (usize, usize),
    );
    let cases: &[U] = &[
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
    // [2, 3, 100, 90]: rows of 9000 take the chunked instance / SPADE kernels.
    for (i, d) in [
        [2usize, 3, 5, 7],
        [1, 1, 1, 2],
        [1, 64, 33, 31],
        [4, 3, 1, 1],
        [2, 3, 100, 90],
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
        let (mut wg, mut mg, mut vg) = (
            on_cuda(&w0),
            on_cuda(&Tensor::zeros(d)),
            on_cuda(&Tensor::zeros(d)),
        );
        let shared = wg.clone(); // the step must not write through to another tensor
        for step in 1..=3 {
            let p = AdamParams { step, ..p };
            cpu().adam_step(&mut wc, &g0, &mut mc, &mut vc, p).unwrap();
            if let Err(e) = cuda().adam_step(&mut wg, &on_cuda(&g0), &mut mg, &mut vg, p) {
                rep.fail("adam", e.to_string());
            }
        }
        rep.check_tensors(&format!("param_d{decoupled}"), &wg, &wc, (1e-6, 1e-5));
        rep.check_tensors(&format!("m_d{decoupled}"), &mg, &mc, TIGHT);
        rep.check_tensors(&format!("v_d{decoupled}"), &vg, &vc, TIGHT);
        rep.check_tensors(&format!("untouched_d{decoupled}"), &shared, &w0, EXACT);
    }
    rep.finish();
}

/// The tests above without a GPU, on the emulated driver (tests/common/emulated.rs).
#[test]
fn on_the_emulated_driver() {
    common::emulated::rerun_ignored(&[], 300, &[]);
}
