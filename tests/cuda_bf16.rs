//! The bf16 tensor-core corr_warp (kernels/corr_warp_bf16.cu, launched through
//! src/backend/cuda/launch/corr_warp.rs at `Precision::Bf16`) against the CPU backend's f32
//! corr_warp. Needs a GPU: every test is `#[ignore]`d; run with `--ignored --test-threads=1
//! --nocapture`. Each check prints `corr_bf16 case max_abs max_rel (tol …) PASS/FAIL`.
//!
//! Tolerances, with u = 2⁻⁸ (bf16's unit roundoff, round to nearest even):
//! 1. Strict, against an emulated reference: the CPU backend (f32, no normalisation) run on the
//!    GPU's own q̂ and k̂ (downloaded) and on v and dout, each rounded to bf16 exactly as the pack
//!    kernel rounds them. That removes the rounding of the inputs, the one error the softmax
//!    amplifies: δ(scale·q̂·k̂) ≤ 2u·scale·|q̂||k̂|, up to 0.78 at scale 100, which no tight bound
//!    against the unrounded f32 reference survives. What remains is the kernels' own rounding:
//!    - forward: each weight p ∈ (0, 1] (after the running max) is rounded once before P·v,
//!      |δp| ≤ u·p, so |δout_i| ≤ u·Σ_j A_ij|v_j| ≤ u·max|v|: atol = u·max|v| + 1e-5 (f32 sums);
//!    - backward before the normalisation (dq̂, dk̂, dv): P and dS are rounded once each (≤ u per
//!      term) and D = rowsum(dout∘out) carries the forward's error; norm-wise
//!      |δ| ≤ 4u·max|want| + 1e-5, plus where the sums cancel the term of `cancellation_atol`
//!      (u per rounded term times Σ|term|: the emulated driver measured 4.1u·max|want| at C = 3). A CPU emulation of these kernels' roundings (f64 reference,
//!      the cases below) measured at most 0.18·u·max|v| forward and 1.4u backward.
//! 2. Loose, against the plain f32 reference and against the f32 CUDA path: only a guard against
//!    gross errors, rel ≤ 0.5 of max|want| (the same emulation gives up to 0.33 for dq at C = 3,
//!    scale 100, and 0.02–0.03 at C ≥ 16); the printed numbers show the size of bf16's effect.
//!
//! A NaN or infinity where the reference is finite fails every check.
#![cfg(feature = "cuda")]

mod common;

use common::emulated::too_large_to_emulate;
use common::gpu::*;
use common::weights::max_abs;
use common::R;
use engine::backend::cuda::launch::*;
use engine::backend::precision::Precision;
use engine::backend::CorrWarpParams;
use engine::{Device, Tensor};

const U: f32 = 1.0 / 256.0;
const LOOSE: f32 = 0.5;

/// f32 -> nearest bf16 (ties to even), as `cvt.rn.bf16x2.f32` rounds; NaN stays NaN.
fn round_bf16(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let b = x.to_bits();
    let r = b.wrapping_add(0x7fff + ((b >> 16) & 1));
    f32::from_bits(r & 0xffff_0000)
}

fn rounded(data: &[f32], shape: &[usize]) -> R<Tensor> {
    Tensor::from_vec(
        data.iter().map(|&x| round_bf16(x)).collect(),
        shape.to_vec(),
    )
    .map_err(e)
}

/// The cancellation terms of the backward's strict bound, as absolute tolerances for (dq̂, dk̂,
/// dv). dq̂_i = scale·Σ_j dS_ij·k̂_j and dk̂_j = scale·Σ_i dS_ij·q̂_i sum terms that cancel (each
/// row of dS = P∘(dP − D) sums to 0), and dv_j = Σ_i P_ij·dout_i sums signed terms; a rounding of
/// u per term (P and dS are each rounded to bf16) then errs by u·Σ|term|, which can exceed
/// u·max|result| (it does at C = 3, scale 100: 4.1u there). The terms:
/// 2u·scale·max|k̂|·max_i Σ_j|dS_ij|, 2u·scale·max|q̂|·max_j Σ_i|dS_ij| and
/// 2u·max|dout|·max_j Σ_i P_ij, from the emulated reference's P, out, v, dout, q̂ and k̂.
#[allow(clippy::too_many_arguments)]
fn cancellation_atol(
    d: CorrDims,
    scale: f32,
    attn: &[f32],
    out: &[f32],
    v: &[f32],
    dout: &[f32],
    qh: &[f32],
    kh: &[f32],
) -> [f32; 3] {
    let (n, m, nv) = (d.n, d.m, d.v);
    let (mut row_ds, mut col_ds, mut col_p) = (0f64, 0f64, 0f64);
    for b in 0..d.b {
        let (mut cols, mut colp) = (vec![0f64; m], vec![0f64; m]);
        for i in 0..n {
            let di = &dout[(b * n + i) * nv..][..nv];
            let oi = &out[(b * n + i) * nv..][..nv];
            let dd: f64 = di.iter().zip(oi).map(|(a, o)| *a as f64 * *o as f64).sum();
            let mut row = 0f64;
            for j in 0..m {
                let vj = &v[(b * m + j) * nv..][..nv];
                let dp: f64 = di.iter().zip(vj).map(|(a, x)| *a as f64 * *x as f64).sum();
                let pij = attn[(b * n + i) * m + j] as f64;
                let ds = (pij * (dp - dd)).abs();
                row += ds;
                cols[j] += ds;
                colp[j] += pij;
            }
            row_ds = row_ds.max(row);
        }
        col_ds = cols.iter().fold(col_ds, |a, &x| a.max(x));
        col_p = colp.iter().fold(col_p, |a, &x| a.max(x));
    }
    let u2 = 2.0 * U as f64;
    [
        u2 * scale as f64 * max_abs(kh) as f64 * row_ds,
        u2 * scale as f64 * max_abs(qh) as f64 * col_ds,
        u2 * max_abs(dout) as f64 * col_p,
    ]
    .map(|x| x as f32)
}

/// Forward and backward of one case at Bf16: strict against the emulated reference, loose
/// against the f32 CPU reference and the f32 CUDA path. `slabs`: backward slab heights.
fn bf16_case(ck: &mut Report, g: &Gpu, d: CorrDims, p: CorrWarpParams, slabs: &[usize], seed: u64) {
    let name = corr_case_name(d, p);
    ck.run(&name.clone(), |ck| {
        assert!(
            corr_uses_bf16(d, Precision::Bf16),
            "{name}: not a bf16 case"
        );
        let [q, k, v, dout] = corr_inputs(d, seed);
        let (qd, kd, vd, dd) = (up(g, &q)?, up(g, &k)?, up(g, &v)?, up(g, &dout)?);
        let numel = d.b * d.n * d.v;
        let fwd = |prec| -> R<(Vec<f32>, CorrSaved)> {
            let mut out = g.zeros(numel).map_err(e)?;
            let saved = corr_warp_forward(g, d, &p, &qd, &kd, &vd, &mut out, prec).map_err(e)?;
            Ok((down(g, &out, numel)?, saved))
        };
        let (out, saved) = fwd(Precision::Bf16)?;
        let (out32, _) = fwd(Precision::F32)?;
        // The emulated reference: the GPU's q̂, k̂ and the inputs, rounded to bf16.
        let qh = rounded(&down(g, &saved.qh, d.b * d.c * d.n)?, &[d.b, d.c, d.n])?;
        let kh = rounded(&down(g, &saved.kh, d.b * d.c * d.m)?, &[d.b, d.c, d.m])?;
        let (vb, db) = (
            rounded(host(&v)?, v.dims())?,
            rounded(host(&dout)?, dout.dims())?,
        );
        let raw = corr_params(p.scale, false);
        let (emu, attn) = cpu().corr_warp(&qh, &kh, &vb, raw, true).map_err(e)?;
        let attn = attn.ok_or("the CPU corr_warp returned no attention")?;
        let (attn, out_e) = (host(&attn)?, host(&emu)?);
        let cancel = cancellation_atol(
            d,
            p.scale,
            attn,
            out_e,
            host(&vb)?,
            host(&db)?,
            host(&qh)?,
            host(&kh)?,
        );
        let vmax = max_abs(host(&vb)?);
        ck.check(
            &format!("{name}_fwd_vs_emulated"),
            &out,
            host(&emu)?,
            U * vmax + 1e-5,
            0.0,
        );
        let (want, _) = cpu().corr_warp(&q, &k, &v, p, false).map_err(e)?;
        ck.check(
            &format!("{name}_fwd_vs_f32"),
            &out,
            host(&want)?,
            1e-5,
            LOOSE,
        );
        ck.check(
            &format!("{name}_fwd_vs_cuda_f32"),
            &out,
            &out32,
            1e-5,
            LOOSE,
        );
        let (eq, ek, ev) = cpu()
            .corr_warp_backward(&qh, &kh, &vb, raw, &db)
            .map_err(e)?;
        let (wq, wk, wv) = cpu().corr_warp_backward(&q, &k, &v, p, &dout).map_err(e)?;
        let f32_grads =
            corr_warp_backward(g, d, &p, &saved, &vd, &dd, d.n, Precision::F32).map_err(e)?;
        for &slab in slabs {
            // The N × M part alone (before the normalisation's backward), strictly.
            let (gq, gk, gv) = bf16::backward(g, d, p.scale, &saved, &vd, &dd, slab).map_err(e)?;
            let strict = [("dqh", &gq, &eq), ("dkh", &gk, &ek), ("dv", &gv, &ev)];
            for ((what, got, want), atol) in strict.into_iter().zip(cancel) {
                let got = down(g, got, want.numel())?;
                let case = format!("{name}_{what}_slab{slab}_vs_emulated");
                ck.check(&case, &got, host(want)?, 1e-5 + atol, 4.0 * U);
            }
            // The whole backward at Bf16, loosely.
            let grads =
                corr_warp_backward(g, d, &p, &saved, &vd, &dd, slab, Precision::Bf16).map_err(e)?;
            let all = [
                ("dq", &grads.0, &wq, &f32_grads.0),
                ("dk", &grads.1, &wk, &f32_grads.1),
                ("dv", &grads.2, &wv, &f32_grads.2),
            ];
            for (what, got, want, cuda32) in all {
                let got = down(g, got, want.numel())?;
                let case = format!("{name}_{what}_slab{slab}");
                ck.check(&format!("{case}_vs_f32"), &got, host(want)?, 1e-5, LOOSE);
                let c32 = down(g, cuda32, want.numel())?;
                ck.check(&format!("{case}_vs_cuda_f32"), &got, &c32, 1e-5, LOOSE);
            }
        }
        Ok(())
    });
}

/// The packed widths 16..64 of v, and C = 2304 (the unfolded 3 × 3 features).
const BF16_CORR_CASES: &[(CorrDims, CorrWarpParams)] = &[
    (corr_dims(2, 70, 130, 65, 17), corr_params(30.0, true)),
    (corr_dims(1, 64, 128, 192, 64), corr_params(100.0, true)),
    (corr_dims(1, 2304, 256, 1024, 3), corr_params(100.0, true)),
];

#[test]
#[ignore = "needs a GPU"]
fn bf16_corr_warp_matches_emulated_cpu() {
    let Some(g) = gpu() else { return };
    let mut ck = Report::new("corr_bf16");
    // The awkward shapes of tests/cuda_vs_cpu.rs with v = 65 narrowed to 48 (v = 65 is checked
    // below: it stays f32), then BF16_CORR_CASES.
    let narrow = |d: CorrDims| corr_dims(d.b, d.c, d.n, d.m, d.v.min(48));
    let cases = CORR_CASES.iter().map(|&(d, p)| (narrow(d), p));
    for (i, (d, p)) in cases.chain(BF16_CORR_CASES.iter().copied()).enumerate() {
        let work = (d.b * d.c * d.n * d.m) as f64;
        if !too_large_to_emulate(&corr_case_name(d, p), work) {
            bf16_case(&mut ck, &g, d, p, &[d.n, 32, 7], 100 + 10 * i as u64);
        }
    }
    // v wider than CB_VMAX stays on the f32 kernels at Bf16: bit-equal results.
    ck.run("B2_C20_N70_M129_V65_raw_s0.3_stays_f32", |ck| {
        let (d, p) = (corr_dims(2, 20, 70, 129, 65), corr_params(0.3, false));
        assert!(!corr_uses_bf16(d, Precision::Bf16));
        let rand_up = |s: &[usize], seed| up(&g, &randn(s, seed));
        let (q, k, v) = (
            rand_up(&[2, 20, 70], 1)?,
            rand_up(&[2, 20, 129], 2)?,
            rand_up(&[2, 129, 65], 3)?,
        );
        let mut outs = Vec::new();
        for prec in [Precision::Bf16, Precision::F32] {
            let mut out = g.zeros(2 * 70 * 65).map_err(e)?;
            corr_warp_forward(&g, d, &p, &q, &k, &v, &mut out, prec).map_err(e)?;
            outs.push(down(&g, &out, 2 * 70 * 65)?);
        }
        ck.check("V65_bf16_equals_f32", &outs[0], &outs[1], 0.0, 0.0);
        Ok(())
    });
    ck.finish();
}

#[test]
#[ignore = "needs a GPU"]
fn bf16_corr_warp_real_size() {
    let Some(g) = gpu() else { return };
    let mut ck = Report::new("corr_bf16");
    // CoCosNet's correspondence at its real size; one slab height (the bf16 launcher caps it at
    // 512 rows here).
    for v in [3, 48] {
        let (d, p) = real_size_corr(v);
        if !too_large_to_emulate(&corr_case_name(d, p), (d.b * d.c * d.n * d.m) as f64) {
            bf16_case(&mut ck, &g, d, p, &[4096], 900 + v as u64);
        }
    }
    ck.finish();
}

/// Sets the process precision and restores F32 when dropped (also on a failed check).
struct PrecisionGuard;

impl PrecisionGuard {
    fn set(p: Precision) -> PrecisionGuard {
        engine::backend::set_precision(p);
        PrecisionGuard
    }
}

impl Drop for PrecisionGuard {
    fn drop(&mut self) {
        engine::backend::set_precision(Precision::F32);
    }
}

#[test]
#[ignore = "needs a GPU"]
fn backend_takes_the_bf16_path_at_bf16_precision() {
    let Some(g) = gpu() else { return };
    let mut ck = Report::new("corr_bf16");
    ck.run("backend_routing", |ck| {
        // One backward slab on both sides (the backend's slab covers all 130 rows), so the
        // backend and the launchers must agree bit for bit.
        let (d, p) = (corr_dims(2, 33, 130, 129, 3), corr_params(100.0, true));
        let (q, k, v) = (
            randn(&[2, 33, 130], 7),
            randn(&[2, 33, 129], 8),
            randn(&[2, 129, 3], 9),
        );
        let dout = randn(&[2, 130, 3], 10);
        let cuda = cuda();
        let on = |x: &Tensor| x.to_device(Device::Cuda).map_err(e);
        let (qc, kc, vc, dc) = (on(&q)?, on(&k)?, on(&v)?, on(&dout)?);
        let mut via_backend = Vec::new();
        for prec in [Precision::Bf16, Precision::F32] {
            let _guard = PrecisionGuard::set(prec);
            let (out, _) = cuda.corr_warp(&qc, &kc, &vc, p, false).map_err(e)?;
            let (dq, dk, dv) = cuda.corr_warp_backward(&qc, &kc, &vc, p, &dc).map_err(e)?;
            let host_of = |x: Tensor| {
                x.to_device(Device::Cpu)
                    .and_then(|h| Ok(h.cpu_data()?.to_vec()))
            };
            via_backend
                .push([host_of(out), host_of(dq), host_of(dk), host_of(dv)].map(|r| r.map_err(e)));
        }
        let (qd, kd, vd, dd) = (up(&g, &q)?, up(&g, &k)?, up(&g, &v)?, up(&g, &dout)?);
        let mut out = g.zeros(2 * 130 * 3).map_err(e)?;
        let bf = Precision::Bf16;
        let saved = corr_warp_forward(&g, d, &p, &qd, &kd, &vd, &mut out, bf).map_err(e)?;
        let grads = corr_warp_backward(&g, d, &p, &saved, &vd, &dd, d.n, bf).map_err(e)?;
        let launched = [
            down(&g, &out, 2 * 130 * 3)?,
            down(&g, &grads.0, 2 * 33 * 130)?,
            down(&g, &grads.1, 2 * 33 * 129)?,
            down(&g, &grads.2, 2 * 129 * 3)?,
        ];
        let [bf16_run, f32_run] = [&via_backend[0], &via_backend[1]];
        for (i, what) in ["out", "dq", "dk", "dv"].into_iter().enumerate() {
            let (got, f32_got) = (bf16_run[i].clone()?, f32_run[i].clone()?);
            ck.check(
                &format!("backend_bf16_{what}_equals_launcher"),
                &got,
                &launched[i],
                0.0,
                0.0,
            );
            // At F32 the backend must not have taken the bf16 kernels.
            let differs = got.iter().zip(&f32_got).any(|(a, b)| a != b);
            let case = format!("backend_f32_{what}_differs_from_bf16");
            ck.record(&case, &differs.to_string(), !differs);
        }
        Ok(())
    });
    ck.finish();
}

#[test]
fn round_bf16_matches_round_to_nearest_even() {
    assert_eq!(round_bf16(1.0), 1.0);
    // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties to the even 1.
    assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
    assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
    assert_eq!(round_bf16(1.0 + 1.5 / 256.0), 1.0 + 2.0 / 256.0);
    assert_eq!(round_bf16(-0.1), -0.100097656);
    assert!(round_bf16(f32::NAN).is_nan());
    assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
    for x in [0.3f32, -7.25, 1e-20, 123456.0] {
        assert!((round_bf16(x) - x).abs() <= U * x.abs(), "{x}");
    }
}

/// The tests above without a GPU, on the emulated driver (tests/common/emulated.rs); the real
/// size is left to a GPU.
#[test]
fn on_the_emulated_driver() {
    common::emulated::rerun_ignored(&[], 300, &[]);
}
