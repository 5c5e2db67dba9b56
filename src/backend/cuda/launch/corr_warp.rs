//! corr_warp launchers: the fused forward and the slab-wise backward, in f32 or (at
//! `Precision::Bf16`, for the calls `bf16::applies` takes) on bf16 tensor cores.

use super::*;
use crate::backend::precision::{precision, Precision};

pub mod bf16;

/// Whether a corr_warp of sizes `d` runs on the bf16 kernels at precision `prec`: only at Bf16
/// (F32 and Tf32 keep the f32 kernels here), and only where the bf16 kernels apply.
pub fn corr_uses_bf16(d: CorrDims, prec: Precision) -> bool {
    prec == Precision::Bf16 && bf16::applies(d)
}

// ---- corr_warp --------------------------------------------------------------------------------

/// Sizes of one corr_warp: q [b, c, n], k [b, c, m], v [b, m, v].
#[derive(Clone, Copy, Debug)]
pub struct CorrDims {
    pub b: usize,
    pub c: usize,
    pub n: usize,
    pub m: usize,
    pub v: usize,
}

/// What the forward keeps for the backward: the normalised q̂, k̂ and their norms.
pub struct CorrSaved {
    pub qh: DeviceBuf,
    pub kh: DeviceBuf,
    pub q_norms: DeviceBuf,
    pub k_norms: DeviceBuf,
}

fn corr_norm(
    gpu: &Gpu,
    b: usize,
    c: usize,
    l: usize,
    eps: f32,
    x: &CudaSlice<f32>,
) -> Result<(DeviceBuf, DeviceBuf)> {
    let a = CorrNormArgs {
        b: b as i64,
        c: c as i64,
        l: l as i64,
        eps,
        _pad: 0,
    };
    let (mut xh, mut norms) = (gpu.alloc(b * c * l)?, gpu.alloc(2 * b * l)?);
    let cf = cfg_cols((b * l) as u64);
    launch!(
        gpu,
        "corr_norm_forward_f32",
        cf,
        &a,
        x,
        &mut *xh,
        &mut *norms
    )?;
    Ok((xh, norms))
}

fn corr_args(d: CorrDims, scale: f32, rows: usize) -> CorrWarpArgs {
    CorrWarpArgs {
        b: d.b as i64,
        c: d.c as i64,
        n: d.n as i64,
        m: d.m as i64,
        v: d.v as i64,
        rows: rows as i64,
        scale,
        _pad: 0,
    }
}

/// Fused forward at `prec`: out [b, n, v]. Without `normalize`, q̂ and k̂ are copies of q and k.
#[allow(clippy::too_many_arguments)]
pub fn corr_warp_forward(
    gpu: &Gpu,
    d: CorrDims,
    p: &crate::backend::CorrWarpParams,
    q: &CudaSlice<f32>,
    k: &CudaSlice<f32>,
    v: &CudaSlice<f32>,
    out: &mut CudaSlice<f32>,
    prec: Precision,
) -> Result<CorrSaved> {
    let saved = corr_prepare(gpu, d, p, q, k)?;
    corr_warp_fused(gpu, d, p.scale, &saved, v, out, prec)?;
    Ok(saved)
}

/// q̂ and k̂ (normalised when `p.normalize`, else copies) and their norms.
pub fn corr_prepare(
    gpu: &Gpu,
    d: CorrDims,
    p: &crate::backend::CorrWarpParams,
    q: &CudaSlice<f32>,
    k: &CudaSlice<f32>,
) -> Result<CorrSaved> {
    Ok(if p.normalize {
        let (qh, q_norms) = corr_norm(gpu, d.b, d.c, d.n, p.eps, q)?;
        let (kh, k_norms) = corr_norm(gpu, d.b, d.c, d.m, p.eps, k)?;
        CorrSaved {
            qh,
            kh,
            q_norms,
            k_norms,
        }
    } else {
        let qh = gpu.copy_buf(q, d.b * d.c * d.n)?;
        let kh = gpu.copy_buf(k, d.b * d.c * d.m)?;
        CorrSaved {
            qh,
            kh,
            q_norms: gpu.alloc(1)?,
            k_norms: gpu.alloc(1)?,
        }
    })
}

/// The fused flash-style forward over prepared q̂, k̂ at `prec`: out [b, n, v].
pub fn corr_warp_fused(
    gpu: &Gpu,
    d: CorrDims,
    scale: f32,
    saved: &CorrSaved,
    v: &CudaSlice<f32>,
    out: &mut CudaSlice<f32>,
    prec: Precision,
) -> Result<()> {
    if corr_uses_bf16(d, prec) {
        return bf16::forward(gpu, d, scale, saved, v, out).map(|_| ());
    }
    let a = corr_args(d, scale, 0);
    let (mut rmax, mut rinv) = (gpu.alloc(d.b * d.n)?, gpu.alloc(d.b * d.n)?);
    let grid = (
        grid_1d(cdiv(d.n as u64, CORR_BQ as u64)),
        grid_yz(cdiv(d.v as u64, CORR_VT as u64)),
        grid_yz(d.b as u64),
    );
    let cf = cfg(grid, (CORR_THREADS, 1, 1));
    launch!(
        gpu,
        "corr_warp_forward_fused_f32",
        cf,
        &a,
        &*saved.qh,
        &*saved.kh,
        v,
        out,
        &mut *rmax,
        &mut *rinv
    )
}

/// Backward by slabs of `slab` query rows at `prec`, returning (dq, dk, dv): the N × M part in
/// f32 ([`backward_slabs_f32`]) or bf16 (`bf16::backward`, whose slabs are `slab` rounded up to
/// 64 rows and capped), then the normalisation's backward in f32.
#[allow(clippy::too_many_arguments)]
pub fn corr_warp_backward(
    gpu: &Gpu,
    d: CorrDims,
    p: &crate::backend::CorrWarpParams,
    saved: &CorrSaved,
    v: &CudaSlice<f32>,
    dout: &CudaSlice<f32>,
    slab: usize,
    prec: Precision,
) -> Result<(DeviceBuf, DeviceBuf, DeviceBuf)> {
    let (dqh, dkh, dv) = if corr_uses_bf16(d, prec) {
        bf16::backward(gpu, d, p.scale, saved, v, dout, slab)?
    } else {
        backward_slabs_f32(gpu, d, p, saved, v, dout, slab)?
    };
    if !p.normalize {
        return Ok((dqh, dkh, dv));
    }
    let (b, c, n, m) = (d.b, d.c, d.n, d.m);
    let i = |x: usize| x as i64;
    // Through the normalisation.
    let back = |l: usize,
                xh: &CudaSlice<f32>,
                norms: &CudaSlice<f32>,
                g: &CudaSlice<f32>|
     -> Result<DeviceBuf> {
        let a = CorrNormArgs {
            b: i(b),
            c: i(c),
            l: i(l),
            eps: p.eps,
            _pad: 0,
        };
        let mut dx = gpu.alloc(b * c * l)?;
        launch!(
            gpu,
            "corr_norm_backward_f32",
            cfg_cols((b * l) as u64),
            &a,
            xh,
            norms,
            g,
            &mut *dx
        )?;
        Ok(dx)
    };
    let dq = back(n, &saved.qh, &saved.q_norms, &dqh)?;
    let dk = back(m, &saved.kh, &saved.k_norms, &dkh)?;
    Ok((dq, dk, dv))
}

/// The f32 N × M part of the backward, by slabs of `slab` query rows (kernels/corr_warp.cu):
/// (dq̂, dk̂, dv).
#[allow(clippy::too_many_arguments)]
fn backward_slabs_f32(
    gpu: &Gpu,
    d: CorrDims,
    p: &crate::backend::CorrWarpParams,
    saved: &CorrSaved,
    v: &CudaSlice<f32>,
    dout: &CudaSlice<f32>,
    slab: usize,
) -> Result<(DeviceBuf, DeviceBuf, DeviceBuf)> {
    let (b, c, n, m, vv) = (d.b, d.c, d.n, d.m, d.v);
    let r = slab.clamp(1, n);
    let mut s = gpu.alloc(b * r * m)?;
    let mut da = gpu.alloc(b * r * m)?;
    let mut dqh = gpu.alloc(b * c * n)?;
    let mut dkh = gpu.alloc(b * c * m)?;
    let mut dv = gpu.alloc(b * m * vv)?;
    let i = |x: usize| x as i64;
    let mm = |mm: usize,
              nn: usize,
              kk: usize,
              lds: (usize, usize, usize),
              st: (usize, usize, usize),
              t: (bool, bool),
              alpha: f32,
              beta: f32| MatmulArgs {
        m: i(mm),
        n: i(nn),
        k: i(kk),
        batch: i(b),
        lda: i(lds.0),
        ldb: i(lds.1),
        ldc: i(lds.2),
        stride_a: i(st.0),
        stride_b: i(st.1),
        stride_c: i(st.2),
        trans_a: t.0 as i32,
        trans_b: t.1 as i32,
        alpha,
        beta,
    };
    let mut r0 = 0;
    while r0 < n {
        let rr = r.min(n - r0);
        let beta = if r0 == 0 { 0.0 } else { 1.0 };
        // 1. S = scale · q̂[:, rows]ᵀ · k̂
        let pa = mm(
            rr,
            m,
            c,
            (n, m, m),
            (c * n, c * m, r * m),
            (true, false),
            p.scale,
            0.0,
        );
        matmul(
            gpu,
            &pa,
            precision(),
            &saved.qh.slice(r0..),
            &saved.kh.as_view(),
            &mut s.as_view_mut(),
        )?;
        // 2. dA = dout[rows] · vᵀ
        let pb = mm(
            rr,
            m,
            vv,
            (vv, vv, m),
            (n * vv, m * vv, r * m),
            (false, true),
            1.0,
            0.0,
        );
        matmul(
            gpu,
            &pb,
            precision(),
            &dout.slice(r0 * vv..),
            &v.as_view(),
            &mut da.as_view_mut(),
        )?;
        // 3. S -> A, dA -> scale·A·(dA − D) per row; a short last slab leaves gaps between
        // the batches' rows of the [b, r, m] buffers, so it goes batch by batch.
        if rr == r {
            let a = corr_args(d, p.scale, b * r);
            let cf = cfg_rows((b * r) as u64);
            launch!(
                gpu,
                "corr_warp_backward_rows_f32",
                cf,
                &a,
                &mut *s,
                &mut *da
            )?;
        } else {
            for bb in 0..b {
                let a = corr_args(d, p.scale, rr);
                let off = bb * r * m;
                let mut sv = s.slice_mut(off..off + rr * m);
                let mut dav = da.slice_mut(off..off + rr * m);
                let cf = cfg_rows(rr as u64);
                launch!(
                    gpu,
                    "corr_warp_backward_rows_f32",
                    cf,
                    &a,
                    &mut sv,
                    &mut dav
                )?;
            }
        }
        // 4. dq̂[:, :, rows] = k̂ · dSᵀ
        let pc = mm(
            c,
            rr,
            m,
            (m, m, n),
            (c * m, r * m, c * n),
            (false, true),
            1.0,
            0.0,
        );
        matmul(
            gpu,
            &pc,
            precision(),
            &saved.kh.as_view(),
            &da.as_view(),
            &mut dqh.slice_mut(r0..),
        )?;
        // 5. dk̂ += q̂[:, rows] · dS;  dv += Aᵀ · dout[rows]
        let pd = mm(
            c,
            m,
            rr,
            (n, m, m),
            (c * n, r * m, c * m),
            (false, false),
            1.0,
            beta,
        );
        matmul(
            gpu,
            &pd,
            precision(),
            &saved.qh.slice(r0..),
            &da.as_view(),
            &mut dkh.as_view_mut(),
        )?;
        let pe = mm(
            m,
            vv,
            rr,
            (m, vv, vv),
            (r * m, n * vv, m * vv),
            (true, false),
            1.0,
            beta,
        );
        matmul(
            gpu,
            &pe,
            precision(),
            &s.as_view(),
            &dout.slice(r0 * vv..),
            &mut dv.as_view_mut(),
        )?;
        r0 += rr;
    }
    Ok((dqh, dkh, dv))
}
