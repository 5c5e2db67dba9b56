//! The bf16 tensor-core corr_warp (kernels/corr_warp_bf16.cu): operand packing, the flash-style
//! forward and the slab backward. `super` (corr_warp.rs) routes a call here at
//! `Precision::Bf16` when [`applies`] holds; the normalisation and its backward stay f32 there.

use super::*;

const TILE: usize = CB_TILE as usize;
const CHUNK: usize = CB_BC as usize;
/// Each of the backward's two [b, rows, mp] bf16 slab buffers holds at most this many values
/// (16 MiB), which caps the slab height: at B = 4, N = M = 4096 that is 512 rows, and the
/// backward's pool peak stays near 110 MiB (PyTorch's bf16 eager peaks at 640 MiB there).
const SLAB_VALUES: usize = 1 << 23;

/// Packed (zero-padded) sizes of one call: positions to CB_TILE, channels to CB_BC, v to 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedDims {
    pub np: usize,
    pub mp: usize,
    pub cp: usize,
    pub vp: usize,
}

pub fn packed_dims(d: CorrDims) -> PackedDims {
    let up = |x: usize, m: usize| x.max(1).div_ceil(m) * m;
    PackedDims {
        np: up(d.n, TILE),
        mp: up(d.m, TILE),
        cp: up(d.c, CHUNK),
        vp: up(d.v, 16),
    }
}

/// Whether the bf16 kernels take a call: every size non-zero and v ≤ CB_VMAX (a wider v, the
/// self-attention case, would need a value loop in the kernels; it stays on f32).
pub fn applies(d: CorrDims) -> bool {
    [d.b, d.c, d.n, d.m, d.v].iter().all(|&x| x > 0) && d.v <= CB_VMAX as usize
}

/// Query rows per backward slab: the caller's `slab` rounded up to CB_TILE, capped so that each
/// slab buffer stays within SLAB_VALUES (never below one tile).
pub fn slab_height(d: CorrDims, slab: usize) -> usize {
    let pd = packed_dims(d);
    let cap = (SLAB_VALUES / (d.b * pd.mp).max(1) / TILE * TILE).max(TILE);
    (slab.clamp(1, d.n.max(1)).div_ceil(TILE) * TILE).min(cap)
}

fn forward_symbol(vp: usize) -> Result<&'static str> {
    Ok(match vp {
        16 => "corr_warp_forward_v16_bf16",
        32 => "corr_warp_forward_v32_bf16",
        48 => "corr_warp_forward_v48_bf16",
        64 => "corr_warp_forward_v64_bf16",
        _ => {
            return Err(Error::invalid(
                "corr_warp",
                format!("no bf16 kernel for v padded to {vp}"),
            ))
        }
    })
}

fn ds_symbol(vp: usize) -> Result<&'static str> {
    Ok(match vp {
        16 => "corr_warp_backward_ds_v16_bf16",
        32 => "corr_warp_backward_ds_v32_bf16",
        48 => "corr_warp_backward_ds_v48_bf16",
        64 => "corr_warp_backward_ds_v64_bf16",
        _ => {
            return Err(Error::invalid(
                "corr_warp",
                format!("no bf16 kernel for v padded to {vp}"),
            ))
        }
    })
}

/// bf16 [b, rows_p, cols_p] of f32 `src[b·s_b + r·s_row + c·s_col]`, zero-padded (two values
/// per f32 element of the returned buffer).
fn pack(
    gpu: &Gpu,
    b: usize,
    (rows, cols): (usize, usize),
    (rows_p, cols_p): (usize, usize),
    (s_b, s_row, s_col): (usize, usize, usize),
    src: &CudaSlice<f32>,
) -> Result<DeviceBuf> {
    let i = |x: usize| x as i64;
    let a = CorrPackArgs {
        b: i(b),
        rows: i(rows),
        cols: i(cols),
        rows_p: i(rows_p),
        cols_p: i(cols_p),
        s_b: i(s_b),
        s_row: i(s_row),
        s_col: i(s_col),
    };
    let mut dst = gpu.alloc((b * rows_p * cols_p).div_ceil(2))?;
    let tiles = b * rows_p.div_ceil(64) * cols_p.div_ceil(64);
    let cf = cfg((grid_1d(tiles as u64), 1, 1), (256, 1, 1));
    launch!(gpu, "corr_warp_pack_bf16", cf, &a, src, &mut *dst)?;
    Ok(dst)
}

/// q̂ᵀ [b, np, cp], k̂ᵀ [b, mp, cp] and v [b, mp, vp], packed.
struct Packed {
    q: DeviceBuf,
    k: DeviceBuf,
    v: DeviceBuf,
    dims: PackedDims,
}

fn pack_inputs(gpu: &Gpu, d: CorrDims, saved: &CorrSaved, v: &CudaSlice<f32>) -> Result<Packed> {
    let pd = packed_dims(d);
    let (b, c) = (d.b, d.c);
    Ok(Packed {
        q: pack(
            gpu,
            b,
            (d.n, c),
            (pd.np, pd.cp),
            (c * d.n, 1, d.n),
            &saved.qh,
        )?,
        k: pack(
            gpu,
            b,
            (d.m, c),
            (pd.mp, pd.cp),
            (c * d.m, 1, d.m),
            &saved.kh,
        )?,
        v: pack(gpu, b, (d.m, d.v), (pd.mp, pd.vp), (d.m * d.v, d.v, 1), v)?,
        dims: pd,
    })
}

/// Kernel arguments; `slab` = (r0, rows, rs) for the backward's slab kernel, zeros otherwise.
fn args(d: CorrDims, pd: PackedDims, scale: f32, slab: (usize, usize, usize)) -> CorrBf16Args {
    let i = |x: usize| x as i64;
    CorrBf16Args {
        b: i(d.b),
        c: i(d.c),
        n: i(d.n),
        m: i(d.m),
        v: i(d.v),
        cp: i(pd.cp),
        np: i(pd.np),
        mp: i(pd.mp),
        vp: i(pd.vp),
        r0: i(slab.0),
        rows: i(slab.1),
        rs: i(slab.2),
        scale,
        _pad: 0,
    }
}

/// Forward over prepared q̂, k̂: writes out [b, n, v] and returns lse [b, n], the natural log of
/// Σ_j exp(scale·q̂ᵢ·k̂ⱼ) per row.
pub fn forward(
    gpu: &Gpu,
    d: CorrDims,
    scale: f32,
    saved: &CorrSaved,
    v: &CudaSlice<f32>,
    out: &mut CudaSlice<f32>,
) -> Result<DeviceBuf> {
    let pk = pack_inputs(gpu, d, saved, v)?;
    forward_packed(gpu, d, scale, &pk, out)
}

fn forward_packed(
    gpu: &Gpu,
    d: CorrDims,
    scale: f32,
    pk: &Packed,
    out: &mut CudaSlice<f32>,
) -> Result<DeviceBuf> {
    let pd = pk.dims;
    let a = args(d, pd, scale, (0, 0, 0));
    let mut lse = gpu.alloc(d.b * d.n)?;
    let grid = (grid_1d((pd.np / TILE) as u64), 1, grid_yz(d.b as u64));
    let sym = forward_symbol(pd.vp)?;
    let cf = cfg(grid, (CB_THREADS, 1, 1));
    launch!(gpu, sym, cf, &a, &*pk.q, &*pk.k, &*pk.v, out, &mut *lse)?;
    Ok(lse)
}

/// The GEMM of [`CorrGemmArgs`]; `trans_a` picks A stored [k][m].
fn gemm(
    gpu: &Gpu,
    p: &CorrGemmArgs,
    trans_a: bool,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let sym = if trans_a {
        "corr_warp_gemm_tn_bf16"
    } else {
        "corr_warp_gemm_nn_bf16"
    };
    let grid = (
        grid_1d(cdiv(p.n_out as u64, CG_BN as u64)),
        grid_yz(cdiv(p.m_out as u64, CG_BM as u64)),
        grid_yz(p.batch as u64),
    );
    launch!(gpu, sym, cfg(grid, (CB_THREADS, 1, 1)), p, a, b, out)
}

/// Backward by slabs of query rows: (dq̂ [b, c, n], dk̂ [b, c, m], dv [b, m, v]), before the
/// normalisation's backward. Recomputes the forward for out (→ D = rowsum(dout∘out)) and lse.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    gpu: &Gpu,
    d: CorrDims,
    scale: f32,
    saved: &CorrSaved,
    v: &CudaSlice<f32>,
    dout: &CudaSlice<f32>,
    slab: usize,
) -> Result<(DeviceBuf, DeviceBuf, DeviceBuf)> {
    let (b, c, n, m) = (d.b, d.c, d.n, d.m);
    let pk = pack_inputs(gpu, d, saved, v)?;
    let pd = pk.dims;
    let mut delta = gpu.alloc(b * n)?;
    let lse = {
        let mut out = gpu.alloc(b * n * d.v)?;
        let lse = forward_packed(gpu, d, scale, &pk, &mut out)?;
        let a = args(d, pd, scale, (0, 0, 0));
        let cf = cfg_elems((b * n) as u64);
        launch!(
            gpu,
            "corr_warp_delta_bf16",
            cf,
            &a,
            &*out,
            dout,
            &mut *delta
        )?;
        lse
    };
    let dop = pack(gpu, b, (n, d.v), (pd.np, pd.vp), (n * d.v, d.v, 1), dout)?;
    let r = slab_height(d, slab);
    let (mut p, mut ds) = (gpu.alloc(b * r * pd.mp / 2)?, gpu.alloc(b * r * pd.mp / 2)?);
    let (mut dqh, mut dkh, mut dv) = (
        gpu.alloc(b * c * n)?,
        gpu.alloc(b * c * m)?,
        gpu.alloc(b * m * d.v)?,
    );
    let i = |x: usize| x as i64;
    let ds_sym = ds_symbol(pd.vp)?;
    let mut r0 = 0;
    while r0 < n {
        let rows = r.min(n - r0);
        let rs = rows.div_ceil(TILE) * TILE;
        let a = args(d, pd, scale, (r0, rows, rs));
        let grid = (
            grid_1d((pd.mp / TILE) as u64),
            grid_yz((rs / TILE) as u64),
            grid_yz(b as u64),
        );
        let cf = cfg(grid, (CB_THREADS, 1, 1));
        let (q, k, vv, lse, delta) = (&*pk.q, &*pk.k, &*pk.v, &*lse, &*delta);
        launch!(gpu, ds_sym, cf, &a, q, k, vv, &*dop, lse, delta, &mut *p, &mut *ds)?;
        let acc = (r0 > 0) as i32;
        // dq̂[:, :, r0..r0+rows] = dS·k̂ (written transposed into [b, c, n]).
        let pq = CorrGemmArgs {
            m: i(rs),
            n: i(pd.cp),
            k: i(pd.mp),
            batch: i(b),
            lda: i(pd.mp),
            ldb: i(pd.cp),
            a_off: 0,
            b_off: 0,
            stride_a: i(rs * pd.mp),
            stride_b: i(pd.mp * pd.cp),
            o_off: i(r0),
            o_sb: i(c * n),
            o_si: 1,
            o_sj: i(n),
            m_out: i(rows),
            n_out: i(c),
            accumulate: 0,
            _pad: 0,
        };
        gemm(gpu, &pq, false, &ds, &pk.k, &mut dqh)?;
        // dk̂ += dSᵀ·q̂[rows] into [b, c, m]; dv += Pᵀ·dout[rows] into [b, m, v].
        let tn = |ldb: usize, np_ldb: usize, o: (usize, usize, usize), n_out: usize| CorrGemmArgs {
            m: i(pd.mp),
            n: i(ldb),
            k: i(rs),
            batch: i(b),
            lda: i(pd.mp),
            ldb: i(ldb),
            a_off: 0,
            b_off: i(r0 * ldb),
            stride_a: i(rs * pd.mp),
            stride_b: i(np_ldb),
            o_off: 0,
            o_sb: i(o.0),
            o_si: i(o.1),
            o_sj: i(o.2),
            m_out: i(m),
            n_out: i(n_out),
            accumulate: acc,
            _pad: 0,
        };
        let pk_args = tn(pd.cp, pd.np * pd.cp, (c * m, 1, m), c);
        gemm(gpu, &pk_args, true, &ds, &pk.q, &mut dkh)?;
        let pv_args = tn(pd.vp, pd.np * pd.vp, (m * d.v, d.v, 1), d.v);
        gemm(gpu, &pv_args, true, &p, &dop, &mut dv)?;
        r0 += rows;
    }
    Ok((dqh, dkh, dv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(b: usize, c: usize, n: usize, m: usize, v: usize) -> CorrDims {
        CorrDims { b, c, n, m, v }
    }

    #[test]
    fn padding_rounds_positions_channels_and_values() {
        let pd = packed_dims(dims(4, 33, 65, 130, 3));
        assert_eq!(
            pd,
            PackedDims {
                np: 128,
                mp: 192,
                cp: 64,
                vp: 16
            }
        );
        let pd = packed_dims(dims(4, 2304, 4096, 4096, 48));
        assert_eq!(
            pd,
            PackedDims {
                np: 4096,
                mp: 4096,
                cp: 2304,
                vp: 48
            }
        );
        assert_eq!(packed_dims(dims(1, 64, 64, 64, 64)).vp, 64);
        assert_eq!(packed_dims(dims(1, 65, 1, 1, 17)).cp, 128);
        assert_eq!(packed_dims(dims(1, 65, 1, 1, 17)).vp, 32);
        // Every padded v has a kernel.
        for v in 1..=CB_VMAX as usize {
            let vp = packed_dims(dims(1, 1, 1, 1, v)).vp;
            assert!(forward_symbol(vp).is_ok() && ds_symbol(vp).is_ok(), "v {v}");
        }
        assert!(forward_symbol(80).is_err());
    }

    #[test]
    fn applies_to_nonempty_calls_with_narrow_values() {
        assert!(applies(dims(4, 256, 4096, 4096, 3)));
        assert!(applies(dims(4, 2304, 4096, 4096, 48)));
        assert!(applies(dims(1, 1, 1, 1, 64)));
        assert!(!applies(dims(2, 20, 70, 129, 65)));
        for zero in 0..5 {
            let mut s = [2, 3, 4, 5, 6];
            s[zero] = 0;
            assert!(!applies(dims(s[0], s[1], s[2], s[3], s[4])), "{s:?}");
        }
    }

    #[test]
    fn only_bf16_precision_routes_here() {
        let d = dims(4, 256, 4096, 4096, 3);
        assert!(corr_uses_bf16(d, Precision::Bf16));
        assert!(!corr_uses_bf16(d, Precision::F32));
        assert!(!corr_uses_bf16(d, Precision::Tf32));
        assert!(!corr_uses_bf16(
            dims(4, 256, 4096, 4096, 65),
            Precision::Bf16
        ));
    }

    #[test]
    fn slab_height_is_tile_aligned_and_capped() {
        // 2^23 / (4 · 4096) = 512 rows per slab buffer.
        let real = dims(4, 256, 4096, 4096, 3);
        assert_eq!(slab_height(real, 4096), 512);
        assert_eq!(slab_height(real, 100), 128);
        assert_eq!(slab_height(real, 1), 64);
        assert_eq!(slab_height(dims(1, 3, 5, 7, 3), 5), 64);
        assert_eq!(slab_height(dims(1, 3, 5, 7, 3), 0), 64);
        // A huge key count still gets one tile of rows.
        assert_eq!(slab_height(dims(64, 8, 70, 1 << 20, 3), 70), 64);
        for slab in [1, 7, 32, 65, 200, 300] {
            let h = slab_height(dims(4, 64, 200, 300, 48), slab);
            assert!(
                h.is_multiple_of(TILE) && h >= slab.min(200),
                "{slab} -> {h}"
            );
        }
    }
}
