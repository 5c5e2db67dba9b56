//! The CUDA kernels, launched directly (src/backend/cuda/launch.rs), against the CPU backend on
//! random inputs with awkward shapes. Needs a GPU: every test is `#[ignore]`d; run them with
//! `--ignored --test-threads=1 --nocapture`. Without a driver each prints "no GPU: skipped"
//! (with ENGINE_REQUIRE_GPU=1 it fails instead). Each case prints
//! `family case max_abs max_rel (tol …) PASS/FAIL`; a failing case does not stop the others, the
//! test asserts once at the end. The harness and the case tables shared with tests/cuda_tf32.rs
//! and tests/cuda_bf16.rs are in tests/common/gpu.rs.
#![cfg(feature = "cuda")]

mod common;

use common::emulated::too_large_to_emulate;
use common::gpu::*;
use engine::backend::cuda::launch::*;
use engine::backend::{precision, CorrWarpParams, SpadeNorm};
use engine::Tensor;

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
    let name = corr_case_name(d, p);
    rep.run(&name.clone(), |rep| {
        let [q, k, v, dout] = corr_inputs(d, seed);
        let (want, _) = cpu().corr_warp(&q, &k, &v, p, false).map_err(e)?;
        let (qd, kd, vd) = (up(g, &q)?, up(g, &k)?, up(g, &v)?);
        let mut out = g.zeros(d.b * d.n * d.v).map_err(e)?;
        let saved = corr_warp_forward(g, d, &p, &qd, &kd, &vd, &mut out, precision()).map_err(e)?;
        rep.check_dev(
            g,
            &format!("{name}_fwd"),
            &out,
            want.numel(),
            &want,
            (2e-4, 1e-3),
        )?;
        if !backward {
            return Ok(());
        }
        let (dq, dk, dv) = cpu().corr_warp_backward(&q, &k, &v, p, &dout).map_err(e)?;
        let dd = up(g, &dout)?;
        for &slab in slabs {
            let (gq, gk, gv) =
                corr_warp_backward(g, d, &p, &saved, &vd, &dd, slab, precision()).map_err(e)?;
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
    for (i, &(d, p)) in CORR_CASES.iter().enumerate() {
        corr_case(&mut rep, &g, d, p, true, &[d.n, 32, 7], 100 + 10 * i as u64);
    }
    // The real size, forward only (the CPU reference takes seconds), then a GPU-only backward
    // smoke run of the slab path at that size compared between two slab heights.
    let (d, _) = real_size_corr(3);
    if too_large_to_emulate("corr_warp real size", (d.b * d.c * d.n * d.m) as f64) {
        return rep.finish();
    }
    for v in [3, 48] {
        let (d, p) = real_size_corr(v);
        corr_case(&mut rep, &g, d, p, false, &[], 900 + v as u64);
    }
    rep.run("B4_C256_N4096_M4096_V3_bwd_slab1024_vs_4096", |rep| {
        let (d, p) = real_size_corr(3);
        let (q, k, v) = (
            randn(&[4, 256, 4096], 1),
            randn(&[4, 256, 4096], 2),
            randn(&[4, 4096, 3], 3),
        );
        let dout = randn(&[4, 4096, 3], 4);
        let (qd, kd, vd, dd) = (up(&g, &q)?, up(&g, &k)?, up(&g, &v)?, up(&g, &dout)?);
        let mut out = g.zeros(4 * 4096 * 3).map_err(e)?;
        let saved =
            corr_warp_forward(&g, d, &p, &qd, &kd, &vd, &mut out, precision()).map_err(e)?;
        let a = corr_warp_backward(&g, d, &p, &saved, &vd, &dd, 1024, precision()).map_err(e)?;
        let b = corr_warp_backward(&g, d, &p, &saved, &vd, &dd, 4096, precision()).map_err(e)?;
        for (what, x, y) in [("dq", &a.0, &b.0), ("dk", &a.1, &b.1), ("dv", &a.2, &b.2)] {
            let (x, y) = (g.download(x).map_err(e)?, g.download(y).map_err(e)?);
            rep.check(&format!("real_{what}_slab1024_vs_4096"), &x, &y, 1e-5, 1e-4);
        }
        Ok(())
    });
    rep.finish();
}

// ---- normalisation ----------------------------------------------------------------------------

/// The last three rows are longer than NORM_CHUNK (8192): the chunked instance / SPADE kernels,
/// with 2 chunks of which the last holds 1 element, 2 uneven ones, and 4.
const NORM_SHAPES: &[[usize; 4]] = &[
    [1, 1, 1, 3],
    [2, 3, 5, 7],
    [4, 5, 33, 31],
    [1, 2, 64, 64],
    [4, 3, 1, 2],
    [1, 64, 17, 9],
    [1, 2, 1, 8193],
    [2, 3, 97, 131],
    [1, 2, 200, 130],
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
                rep.check_dev(&g, &format!("{name}_y"), &yd, x.numel(), &y, (1e-5, 1e-5))?;
                rep.check_dev(
                    &g,
                    &format!("{name}_mean"),
                    &gs.mean,
                    s[0] * s[1],
                    &st.mean,
                    (1e-6, 1e-5),
                )?;
                rep.check_dev(
                    &g,
                    &format!("{name}_rstd"),
                    &gs.rstd,
                    s[0] * s[1],
                    &st.rstd,
                    (1e-6, 1e-5),
                )?;
                let mut dxd = g.zeros(x.numel()).map_err(e)?;
                let (dwd, dbd) =
                    instance_norm_backward(&g, nchw(s), &xd, wg, &gs, &dyd, &mut dxd).map_err(e)?;
                rep.check_dev(
                    &g,
                    &format!("{name}_dx"),
                    &dxd,
                    x.numel(),
                    &dx,
                    (1e-5, 1e-4),
                )?;
                if let (Some(dw), Some(db)) = (dw, db) {
                    rep.check_dev(&g, &format!("{name}_dw"), &dwd, s[1], &dw, (1e-5, 1e-4))?;
                    rep.check_dev(&g, &format!("{name}_db"), &dbd, s[1], &db, (1e-5, 1e-4))?;
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
            rep.check_dev(&g, &format!("{name}_y"), &yd, x.numel(), &y, (1e-5, 1e-5))?;
            rep.check_dev(
                &g,
                &format!("{name}_mean"),
                &gs.mean,
                stats,
                &st.mean,
                (1e-6, 1e-5),
            )?;
            rep.check_dev(
                &g,
                &format!("{name}_rstd"),
                &gs.rstd,
                stats,
                &st.rstd,
                (1e-6, 1e-5),
            )?;
            let mut dxd = g.zeros(x.numel()).map_err(e)?;
            pono_backward(&g, nchw(s), &xd, &gs, &dyd, &mut dxd).map_err(e)?;
            rep.check_dev(
                &g,
                &format!("{name}_dx"),
                &dxd,
                x.numel(),
                &dx,
                (1e-5, 1e-4),
            )?;
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
                rep.check_dev(&g, &format!("{name}_y"), &yd, x.numel(), &y, (1e-5, 1e-5))?;
                let (mut dxd, mut dgd) = (
                    g.zeros(x.numel()).map_err(e)?,
                    g.zeros(x.numel()).map_err(e)?,
                );
                spade_backward(&g, pono, nchw(s), &xd, &gd, &gs, &dyd, &mut dxd, &mut dgd)
                    .map_err(e)?;
                rep.check_dev(
                    &g,
                    &format!("{name}_dx"),
                    &dxd,
                    x.numel(),
                    &dx,
                    (1e-5, 1e-4),
                )?;
                rep.check_dev(
                    &g,
                    &format!("{name}_dgamma"),
                    &dgd,
                    x.numel(),
                    &dg,
                    (1e-5, 1e-5),
                )?;
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
                rep.check_dev(
                    &g,
                    &format!("{name}_fwd"),
                    &yd,
                    rows * len,
                    &y,
                    (1e-7, 1e-5),
                )?;
                let mut dxd = g.zeros(rows * len).map_err(e)?;
                softmax_backward(&g, rows, len, Some(block), &yd_in, &dyd, &mut dxd).map_err(e)?;
                rep.check_dev(
                    &g,
                    &format!("{name}_bwd"),
                    &dxd,
                    rows * len,
                    &dx,
                    (1e-7, 1e-4),
                )?;
                Ok(())
            });
        }
    }
    rep.finish();
}

// ---- conv2d -----------------------------------------------------------------------------------

#[test]
#[ignore = "needs a GPU"]
fn conv2d_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rep = Report::new("conv2d");
    for (i, &(name, xs, ws, p)) in CONV_CASES.iter().enumerate() {
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
                let ConvInputs { x, w, b, y, dy } = conv_inputs(xs, ws, p, 400 + 10 * i as u64)?;
                let dx = cpu().conv2d_backward_input(&dy, &w, &xs, p).map_err(e)?;
                let dw = cpu().conv2d_backward_weight(&x, &dy, &ws, p).map_err(e)?;
                let db = cpu().conv2d_backward_bias(&dy).map_err(e)?;
                let a = conv_args(xs, ws, &p, true).ok_or("empty output")?;
                let (xd, wd, bd, dyd) = (up(&g, &x)?, up(&g, &w)?, up(&g, &b)?, up(&g, &dy)?);
                let mut yd = g.zeros(y.numel()).map_err(e)?;
                conv_forward(&g, &a, path, precision(), &xd, &wd, Some(&bd), &mut yd).map_err(e)?;
                rep.check_dev(&g, &format!("{case}_y"), &yd, y.numel(), &y, (1e-5, 1e-4))?;
                let mut dxd = g.zeros(x.numel()).map_err(e)?;
                conv_backward_input(&g, &a, path, precision(), &dyd, &wd, &mut dxd).map_err(e)?;
                rep.check_dev(
                    &g,
                    &format!("{case}_dx"),
                    &dxd,
                    x.numel(),
                    &dx,
                    (1e-5, 1e-4),
                )?;
                let mut dwd = g.zeros(w.numel()).map_err(e)?;
                conv_backward_weight(&g, &a, path, precision(), &xd, &dyd, &mut dwd).map_err(e)?;
                rep.check_dev(
                    &g,
                    &format!("{case}_dw"),
                    &dwd,
                    w.numel(),
                    &dw,
                    (1e-5, 2e-4),
                )?;
                let mut dbd = g.zeros(ws[0]).map_err(e)?;
                conv_backward_bias(&g, &a, &dyd, &mut dbd).map_err(e)?;
                rep.check_dev(&g, &format!("{case}_db"), &dbd, ws[0], &db, (1e-5, 1e-4))?;
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
    for (i, c) in MATMUL_CASES.iter().enumerate() {
        let case = c.name();
        rep.run(&case.clone(), |rep| {
            let (a, b) = c.inputs(600 + i as u64);
            let want = cpu().matmul(&a, &b, c.ta, c.tb).map_err(e)?;
            let (ad, bd) = (up(&g, &a)?, up(&g, &b)?);
            let mut cd = g.zeros(c.out_len()).map_err(e)?;
            let (mnk, trans, batched) = ((c.m, c.n, c.k), (c.ta, c.tb), (c.ab, c.bb));
            matmul_simple(&g, c.batch, mnk, trans, batched, &ad, &bd, &mut cd).map_err(e)?;
            let got = down(&g, &cd, c.out_len())?;
            rep.check(&case, &got, host(&want)?, 1e-5, 1e-5);
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
