//! corr_warp on the CPU: `out = softmax_M(scale · q̂ᵀk̂) · v` with q [B,C,N], k [B,C,M], v [B,M,V].
//!
//! The [N, M] matrix is never stored whole (unless the caller asks for A): the forward works on
//! blocks of query rows, rayon over (batch, row block), with `sgemm` doing the products.
//! The backward is two race-free phases in the style of flash attention:
//! 1. per (batch, row block): recompute A, keep each row's softmax max, 1/sum and
//!    D = rowsum(dA ⊙ A) = dout·out, and produce dq̂ (rows are owned by the block);
//! 2. per (batch, key-column block): rebuild A tile by tile from those row statistics and
//!    accumulate dv and dk̂ for the columns the block owns.
//!
//! This recomputes S once more than a per-thread-partials scheme, but memory stays bounded and the
//! result is deterministic. Gradients leave the GEMMs as [B, L, C] and are transposed once,
//! fused with the normalisation's backward.

use super::norm::{centred_moments, map_rows, row_sums, rows};
use crate::backend::checks;
use crate::backend::cpu::sgemm;
use crate::backend::*;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::borrow::Cow;

/// Query rows per block (forward and backward phase 1): an S block is ROWS × M floats.
const ROWS: usize = 128;
/// Key columns per block in backward phase 2.
const COLS: usize = 128;
/// Query rows per tile inside a phase-2 block.
const TILE_N: usize = 256;
/// Side of the square tiles of `transpose`.
const TT: usize = 32;

#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    c: usize,
    n: usize,
    m: usize,
    v: usize,
}

/// The dims `checks::corr_warp` accepts.
fn check(op: &'static str, q: &Tensor, k: &Tensor, v: &Tensor, p: CorrWarpParams) -> Result<Dims> {
    let [b, c, n, m, v] = checks::corr_warp(op, q, k, v, p)?;
    Ok(Dims { b, c, n, m, v })
}

/// q̂ or k̂ [B, C, L]: x itself, or x centred and divided by (‖·‖ + eps) per column, with the
/// per-column (1/(r + eps), r = ‖x − mean‖) the backward needs.
struct Desc<'a> {
    data: Cow<'a, [f32]>,
    norms: Vec<(f32, f32)>,
}

fn describe(x: &[f32], b: usize, c: usize, l: usize, p: CorrWarpParams) -> Desc<'_> {
    if !p.normalize {
        return Desc {
            data: Cow::Borrowed(x),
            norms: vec![],
        };
    }
    let mom = centred_moments(x, rows(b, c, l));
    let norm = |m2: f64| ((1.0 / (m2.sqrt() + p.eps as f64)) as f32, m2.sqrt() as f32);
    let norms: Vec<(f32, f32)> = mom.iter().map(|&(_, m2)| norm(m2)).collect();
    let mut out = vec![0.0; x.len()];
    map_rows(rows(b, c, l), &mut out, None, |f, s| {
        ((x[f] - mom[s].0 as f32) * norms[s].0, 0.0)
    });
    Desc {
        data: Cow::Owned(out),
        norms,
    }
}

/// What every block reads, sliced per batch by the accessors.
struct Ctx<'a> {
    d: Dims,
    qh: &'a [f32],
    kh: &'a [f32],
    v: &'a [f32],
    /// Empty in the forward.
    dout: &'a [f32],
    scale: f32,
}

impl<'a> Ctx<'a> {
    fn q(&self, b: usize) -> &'a [f32] {
        &self.qh[b * self.d.c * self.d.n..]
    }
    fn k(&self, b: usize) -> &'a [f32] {
        &self.kh[b * self.d.c * self.d.m..]
    }
    fn v(&self, b: usize) -> &'a [f32] {
        &self.v[b * self.d.m * self.d.v..]
    }
    fn dout(&self, b: usize) -> &'a [f32] {
        &self.dout[b * self.d.n * self.d.v..]
    }
}

/// Per query row: softmax max, 1/sum and D = rowsum(dA ⊙ A).
#[derive(Clone, Copy, Default)]
struct RowStat {
    max: f32,
    inv: f32,
    d: f32,
}

/// A for query rows n0.. of batch `b` into `a` [r, M]; records max and 1/sum when asked.
fn attn_rows(cx: &Ctx, b: usize, n0: usize, a: &mut [f32], mut stats: Option<&mut [RowStat]>) {
    let Dims { c, n, m, .. } = cx.d;
    // S = q̂ᵀk̂, q̂ᵀ being q̂ [C, N] read with strides (1, N).
    sgemm(
        a.len() / m,
        c,
        m,
        &cx.q(b)[n0..],
        (1, n),
        cx.k(b),
        (m, 1),
        0.0,
        a,
        (m, 1),
    );
    for (i, row) in a.chunks_mut(m).enumerate() {
        let mut max = f32::NEG_INFINITY;
        for s in row.iter_mut() {
            *s *= cx.scale;
            max = max.max(*s);
        }
        let mut sum = 0.0f64;
        for s in row.iter_mut() {
            *s = (*s - max).exp();
            sum += *s as f64;
        }
        let inv = (1.0 / sum) as f32;
        row.iter_mut().for_each(|s| *s *= inv);
        if let Some(st) = stats.as_deref_mut() {
            (st[i].max, st[i].inv) = (max, inv);
        }
    }
}

/// out rows n0.. = A·v; `a` is scratch (or the caller's A output) of r × M.
fn forward_block(cx: &Ctx, b: usize, n0: usize, a: &mut [f32], out: &mut [f32]) {
    let Dims { m, v, .. } = cx.d;
    attn_rows(cx, b, n0, a, None);
    sgemm(
        a.len() / m,
        m,
        v,
        a,
        (m, 1),
        cx.v(b),
        (v, 1),
        0.0,
        out,
        (v, 1),
    );
}

pub fn corr_warp(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: CorrWarpParams,
    return_attn: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let d = check("corr_warp", q, k, v, p)?;
    let Dims { b, c, n, m, v: vd } = d;
    let mut out = vec![0.0; b * n * vd];
    let mut attn = return_attn.then(|| vec![0.0; b * n * m]);
    if b > 0 && n > 0 {
        let (qh, kh) = (
            describe(q.cpu_data()?, b, c, n, p),
            describe(k.cpu_data()?, b, c, m, p),
        );
        let (v, scale) = (v.cpu_data()?, p.scale);
        let cx = Ctx {
            d,
            qh: &qh.data,
            kh: &kh.data,
            v,
            dout: &[],
            scale,
        };
        let per_batch = out.par_chunks_mut(n * vd).enumerate();
        match attn.as_mut() {
            Some(attn) => per_batch
                .zip(attn.par_chunks_mut(n * m))
                .for_each(|((bi, ob), ab)| {
                    let blocks = ob
                        .par_chunks_mut(ROWS * vd)
                        .zip(ab.par_chunks_mut(ROWS * m));
                    blocks
                        .enumerate()
                        .for_each(|(i, (o, a))| forward_block(&cx, bi, i * ROWS, a, o))
                }),
            None => per_batch.for_each(|(bi, ob)| {
                let blocks = ob.par_chunks_mut(ROWS * vd).enumerate();
                blocks.for_each_init(Vec::new, |s, (i, o)| {
                    s.resize(o.len() / vd * m, 0.0);
                    forward_block(&cx, bi, i * ROWS, s, o)
                })
            }),
        }
    }
    let attn = attn
        .map(|a| Tensor::from_vec(a, vec![b, n, m]))
        .transpose()?;
    Ok((Tensor::from_vec(out, vec![b, n, vd])?, attn))
}

type Scratch = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Phase 1 for query rows n0.. of batch `b`: row statistics into `st`, dq̂ᵀ [r, C] into `dqt`.
fn query_block(
    cx: &Ctx,
    b: usize,
    n0: usize,
    dqt: &mut [f32],
    st: &mut [RowStat],
    sc: &mut Scratch,
) {
    let Dims { c, m, v, .. } = cx.d;
    let (r, (a, da, o)) = (st.len(), sc);
    a.resize(r * m, 0.0);
    da.resize(r * m, 0.0);
    o.resize(r * v, 0.0);
    attn_rows(cx, b, n0, a, Some(&mut *st));
    let (vb, g) = (cx.v(b), &cx.dout(b)[n0 * v..]);
    // D = rowsum(dA ⊙ A) = dout·(A·v): no second r × M product needed.
    sgemm(r, m, v, a, (m, 1), vb, (v, 1), 0.0, o, (v, 1));
    for (i, s) in st.iter_mut().enumerate() {
        s.d = (0..v).map(|j| g[i * v + j] * o[i * v + j]).sum();
    }
    // dA = dout·vᵀ, then dS·scale = A ⊙ (dA − D)·scale in place.
    sgemm(r, v, m, g, (v, 1), vb, (1, v), 0.0, da, (m, 1));
    for ((dar, ar), s) in da.chunks_mut(m).zip(a.chunks(m)).zip(st.iter()) {
        dar.iter_mut()
            .zip(ar)
            .for_each(|(x, &y)| *x = y * (*x - s.d) * cx.scale);
    }
    // dq̂ᵀ = scale·dS·k̂ᵀ, k̂ᵀ being k̂ [C, M] read with strides (1, M).
    sgemm(r, m, c, da, (m, 1), cx.k(b), (1, m), 0.0, dqt, (c, 1));
}

/// Phase 2 for key columns m0.. of batch `b`: dk̂ᵀ [mb, C] into `dkt` and dv [mb, V] into `dv`,
/// both zeroed by the caller; `st` holds the batch's N row statistics.
fn key_block(
    cx: &Ctx,
    b: usize,
    m0: usize,
    (dkt, dv): (&mut [f32], &mut [f32]),
    st: &[RowStat],
    sc: &mut Scratch,
) {
    let Dims { c, n, m, v, .. } = cx.d;
    let (mb, (p, t, _)) = (dv.len() / v, sc);
    let (qb, kb, vb) = (cx.q(b), &cx.k(b)[m0..], &cx.v(b)[m0 * v..]);
    for n0 in (0..n).step_by(TILE_N) {
        let (nb, g, q0) = (TILE_N.min(n - n0), &cx.dout(b)[n0 * v..], &qb[n0..]);
        p.resize(mb * nb, 0.0);
        t.resize(mb * nb, 0.0);
        let sts = &st[n0..n0 + nb];
        // Aᵀ tile [mb, nb] = k̂ᵀq̂, normalised with the rows' saved max and 1/sum.
        sgemm(mb, c, nb, kb, (1, m), q0, (n, 1), 0.0, p, (nb, 1));
        for row in p.chunks_mut(nb) {
            row.iter_mut()
                .zip(sts)
                .for_each(|(x, s)| *x = (*x * cx.scale - s.max).exp() * s.inv);
        }
        // dv += Aᵀ·dout.
        sgemm(mb, nb, v, p, (nb, 1), g, (v, 1), 1.0, dv, (v, 1));
        // dSᵀ·scale = Aᵀ ⊙ (v·doutᵀ − D)·scale.
        sgemm(mb, v, nb, vb, (v, 1), g, (1, v), 0.0, t, (nb, 1));
        for (trow, prow) in t.chunks_mut(nb).zip(p.chunks(nb)) {
            for ((x, &a), s) in trow.iter_mut().zip(prow).zip(sts) {
                *x = a * (*x - s.d) * cx.scale;
            }
        }
        // dk̂ᵀ += dSᵀ·q̂ᵀ, q̂ᵀ being q̂ [C, N] read with strides (1, N).
        sgemm(mb, nb, c, t, (nb, 1), q0, (1, n), 1.0, dkt, (c, 1));
    }
}

/// [B, R, K] -> [B, K, R] in square tiles, rayon over (batch, tile row).
fn transpose(src: &[f32], r: usize, k: usize) -> Vec<f32> {
    let mut dst = vec![0.0; src.len()];
    if dst.is_empty() {
        return dst;
    }
    dst.par_chunks_mut(r * k).enumerate().for_each(|(bi, db)| {
        let sb = &src[bi * r * k..];
        db.par_chunks_mut(TT * r).enumerate().for_each(|(t, dt)| {
            let (k0, kn) = (t * TT, dt.len() / r);
            for i0 in (0..r).step_by(TT) {
                for kk in 0..kn {
                    for i in i0..(i0 + TT).min(r) {
                        dt[kk * r + i] = sb[i * k + k0 + kk];
                    }
                }
            }
        })
    });
    dst
}

/// dq or dk [B, C, L] from dx̂ᵀ [B, L, C]. Through the normalisation, with u = x − mean_C(x),
/// r = ‖u‖, n = r + eps, x̂ = u/n: du = dx̂/n − x̂·(x̂·dx̂)/r (0 when r = 0) and
/// dx = du − mean_C(du) = du − Σdx̂/(C·n), since Σx̂ = 0.
fn input_grad(dxt: Vec<f32>, desc: &Desc, b: usize, c: usize, l: usize) -> Vec<f32> {
    let g = transpose(&dxt, l, c);
    drop(dxt); // at the real sizes each of these is B·L·C floats
    if desc.norms.is_empty() {
        return g;
    }
    let xh = &desc.data;
    let sums = row_sums(rows(b, c, l), |f, _| {
        (g[f] as f64, g[f] as f64 * xh[f] as f64)
    });
    let coef = |(sg, sgx): (f64, f64), &(inv, r): &(f32, f32)| {
        let radial = if r > 0.0 { sgx / r as f64 } else { 0.0 };
        ((sg * inv as f64 / c as f64) as f32, radial as f32)
    };
    let coef: Vec<(f32, f32)> = sums
        .into_iter()
        .zip(&desc.norms)
        .map(|(s, nr)| coef(s, nr))
        .collect();
    let mut dx = vec![0.0; g.len()];
    map_rows(rows(b, c, l), &mut dx, None, |f, s| {
        (g[f] * desc.norms[s].0 - xh[f] * coef[s].1 - coef[s].0, 0.0)
    });
    dx
}

pub fn corr_warp_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: CorrWarpParams,
    dout: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "corr_warp_backward";
    let d = check(op, q, k, v, p)?;
    let Dims { b, c, n, m, v: vd } = d;
    checks::corr_warp_dout(op, [b, c, n, m, vd], dout)?;
    let zeros = |t: &Tensor| Tensor::zeros(t.shape().clone());
    if b == 0 || n == 0 {
        return Ok((zeros(q), zeros(k), zeros(v)));
    }
    let (qh, kh) = (
        describe(q.cpu_data()?, b, c, n, p),
        describe(k.cpu_data()?, b, c, m, p),
    );
    let (v_, dout, scale) = (v.cpu_data()?, dout.cpu_data()?, p.scale);
    let cx = Ctx {
        d,
        qh: &qh.data,
        kh: &kh.data,
        v: v_,
        dout,
        scale,
    };

    let (mut dqt, mut stats) = (vec![0.0; b * n * c], vec![RowStat::default(); b * n]);
    let per_batch = dqt
        .par_chunks_mut(n * c)
        .zip(stats.par_chunks_mut(n))
        .enumerate();
    per_batch.for_each(|(bi, (dqb, stb))| {
        let blocks = dqb
            .par_chunks_mut(ROWS * c)
            .zip(stb.par_chunks_mut(ROWS))
            .enumerate();
        blocks.for_each_init(Scratch::default, |sc, (i, (dq, st))| {
            query_block(&cx, bi, i * ROWS, dq, st, sc)
        })
    });

    let (mut dkt, mut dv) = (vec![0.0; b * m * c], vec![0.0; b * m * vd]);
    let per_batch = dkt
        .par_chunks_mut(m * c)
        .zip(dv.par_chunks_mut(m * vd))
        .enumerate();
    per_batch.for_each(|(bi, (dkb, dvb))| {
        let st = &stats[bi * n..(bi + 1) * n];
        let blocks = dkb
            .par_chunks_mut(COLS * c)
            .zip(dvb.par_chunks_mut(COLS * vd))
            .enumerate();
        blocks.for_each_init(Scratch::default, |sc, (i, out)| {
            key_block(&cx, bi, i * COLS, out, st, sc)
        })
    });

    let dq = Tensor::from_vec(input_grad(dqt, &qh, b, c, n), q.shape().clone())?;
    let dk = Tensor::from_vec(input_grad(dkt, &kh, b, c, m), k.shape().clone())?;
    Ok((dq, dk, Tensor::from_vec(dv, v.shape().clone())?))
}

#[cfg(test)]
mod tests {
    use super::super::norm::tests::{assert_close, check_fd, dot};
    use super::*;
    use crate::error::Error;

    fn params(scale: f32, normalize: bool) -> CorrWarpParams {
        CorrWarpParams {
            scale,
            normalize,
            eps: 1e-5,
        }
    }

    fn f64s(t: &Tensor) -> Vec<f64> {
        t.to_vec().unwrap().into_iter().map(f64::from).collect()
    }

    /// Naive per-column normalisation of x [B, C, L] in f64: (x̂, u, (n, r) per column).
    type NaiveDesc = (Vec<f64>, Vec<f64>, Vec<(f64, f64)>);
    fn naive_desc(x: &Tensor, p: CorrWarpParams) -> NaiveDesc {
        let (x, [b, c, l]) = (f64s(x), [x.dims()[0], x.dims()[1], x.dims()[2]]);
        let (mut xh, mut u, mut nr) = (x.clone(), x.clone(), vec![(1.0, 1.0); b * l]);
        for (bi, j) in (0..b)
            .flat_map(|bi| (0..l).map(move |j| (bi, j)))
            .filter(|_| p.normalize)
        {
            let col: Vec<usize> = (0..c).map(|ch| (bi * c + ch) * l + j).collect();
            let mean = col.iter().map(|&i| x[i]).sum::<f64>() / c as f64;
            let r = col
                .iter()
                .map(|&i| (x[i] - mean).powi(2))
                .sum::<f64>()
                .sqrt();
            nr[bi * l + j] = (r + p.eps as f64, r);
            for &i in &col {
                (u[i], xh[i]) = (x[i] - mean, (x[i] - mean) / (r + p.eps as f64));
            }
        }
        (xh, u, nr)
    }

    /// Unfused forward by explicit loops: full S, softmax, A·v. Returns (out, A).
    fn naive_forward(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        p: CorrWarpParams,
    ) -> (Vec<f64>, Vec<f64>) {
        let ([b, c, n], m, vd) = (
            [q.dims()[0], q.dims()[1], q.dims()[2]],
            k.dims()[2],
            v.dims()[2],
        );
        let (qh, kh, vs) = (naive_desc(q, p).0, naive_desc(k, p).0, f64s(v));
        let (mut out, mut a) = (vec![0.0; b * n * vd], vec![0.0; b * n * m]);
        for (bi, i) in (0..b).flat_map(|bi| (0..n).map(move |i| (bi, i))) {
            let dotc = |j: usize| {
                (0..c)
                    .map(|ch| qh[(bi * c + ch) * n + i] * kh[(bi * c + ch) * m + j])
                    .sum::<f64>()
            };
            let s: Vec<f64> = (0..m).map(|j| p.scale as f64 * dotc(j)).collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
            for j in 0..m {
                a[(bi * n + i) * m + j] = (s[j] - mx).exp() / z;
                for t in 0..vd {
                    out[(bi * n + i) * vd + t] +=
                        a[(bi * n + i) * m + j] * vs[(bi * m + j) * vd + t];
                }
            }
        }
        (out, a)
    }

    /// dx from dx̂ [B, C, L] through the normalisation, by its full C×C Jacobian per column.
    fn naive_norm_backward(
        dxh: &[f64],
        (_, u, nr): &NaiveDesc,
        [b, c, l]: [usize; 3],
        p: CorrWarpParams,
    ) -> Vec<f64> {
        let mut dx = dxh.to_vec();
        for (bi, j) in (0..b)
            .flat_map(|bi| (0..l).map(move |j| (bi, j)))
            .filter(|_| p.normalize)
        {
            let (idx, (nn, r)) = (|ch: usize| (bi * c + ch) * l + j, nr[bi * l + j]);
            let delta = |a: usize, b: usize| if a == b { 1.0 } else { 0.0 };
            // ∂x̂_i/∂u_t = δ_it/n − u_i·u_t/(r·n²), then ∂u_t/∂x_s = δ_ts − 1/C.
            let jac = |i: usize, t: usize| {
                delta(i, t) / nn
                    - if r > 0.0 {
                        u[idx(i)] * u[idx(t)] / (r * nn * nn)
                    } else {
                        0.0
                    }
            };
            let du: Vec<f64> = (0..c)
                .map(|t| (0..c).map(|i| dxh[idx(i)] * jac(i, t)).sum())
                .collect();
            for s in 0..c {
                dx[idx(s)] = (0..c).map(|t| du[t] * (delta(t, s) - 1.0 / c as f64)).sum();
            }
        }
        dx
    }

    /// Unfused backward by explicit loops: (dq, dk, dv).
    fn naive_backward(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        p: CorrWarpParams,
        dout: &Tensor,
    ) -> [Vec<f64>; 3] {
        let ([b, c, n], m, vd) = (
            [q.dims()[0], q.dims()[1], q.dims()[2]],
            k.dims()[2],
            v.dims()[2],
        );
        let (qd, kd, a, vs, g) = (
            naive_desc(q, p),
            naive_desc(k, p),
            naive_forward(q, k, v, p).1,
            f64s(v),
            f64s(dout),
        );
        let (qh, kh, sc) = (&qd.0, &kd.0, p.scale as f64);
        let (mut dqh, mut dkh, mut dv) = (
            vec![0.0; b * c * n],
            vec![0.0; b * c * m],
            vec![0.0; b * m * vd],
        );
        for (bi, i) in (0..b).flat_map(|bi| (0..n).map(move |i| (bi, i))) {
            let (row, gr) = (&a[(bi * n + i) * m..][..m], &g[(bi * n + i) * vd..][..vd]);
            let da: Vec<f64> = (0..m)
                .map(|j| (0..vd).map(|t| gr[t] * vs[(bi * m + j) * vd + t]).sum())
                .collect();
            let rowdot: f64 = (0..m).map(|j| da[j] * row[j]).sum();
            for j in 0..m {
                let ds = row[j] * (da[j] - rowdot);
                (0..vd).for_each(|t| dv[(bi * m + j) * vd + t] += row[j] * gr[t]);
                for ch in 0..c {
                    dqh[(bi * c + ch) * n + i] += sc * kh[(bi * c + ch) * m + j] * ds;
                    dkh[(bi * c + ch) * m + j] += sc * qh[(bi * c + ch) * n + i] * ds;
                }
            }
        }
        [
            naive_norm_backward(&dqh, &qd, [b, c, n], p),
            naive_norm_backward(&dkh, &kd, [b, c, m], p),
            dv,
        ]
    }

    fn inputs(
        b: usize,
        c: usize,
        n: usize,
        m: usize,
        v: usize,
        seed: u64,
    ) -> (Tensor, Tensor, Tensor) {
        let t = |d: Vec<usize>, mean: f32, s: u64| Tensor::randn(d, mean, 1.0, seed + s);
        (
            t(vec![b, c, n], 0.3, 0),
            t(vec![b, c, m], -0.2, 1),
            t(vec![b, m, v], 0.0, 2),
        )
    }

    /// (B, C, N, M, V, normalize, scale): 1-sized dims, odd N ≠ M, blocks that straddle ROWS,
    /// COLS and TILE_N, a 4096-long softmax row with small C, and the sharp CoCosNet scale 100.
    const CASES: [(usize, usize, usize, usize, usize, bool, f32); 7] = [
        (1, 1, 5, 7, 1, false, 0.5),
        (3, 4, 131, 67, 3, true, 10.0),
        (1, 2, 3, 4096, 2, true, 1.0),
        (2, 6, 260, 150, 5, false, 0.3),
        (2, 3, 9, 11, 4, true, 100.0),
        (1, 3, 2, 129, 1, false, 1.0),
        (3, 5, 129, 257, 2, true, 2.0),
    ];

    #[test]
    fn forward_matches_naive_loops() {
        for (i, &(b, c, n, m, v, norm, scale)) in CASES.iter().enumerate() {
            let ((q, k, vt), p) = (inputs(b, c, n, m, v, 10 * i as u64), params(scale, norm));
            let (want_out, want_a) = naive_forward(&q, &k, &vt, p);
            let (out, a) = corr_warp(&q, &k, &vt, p, true).unwrap();
            let a = a.unwrap();
            assert_eq!((out.dims(), a.dims()), (&[b, n, v][..], &[b, n, m][..]));
            assert_close("corr_warp out", &out, &want_out, 1e-3, 1e-4);
            assert_close("corr_warp A", &a, &want_a, 1e-3, 1e-6);
            // Without A: the same values from the scratch-buffer path.
            let (out2, a2) = corr_warp(&q, &k, &vt, p, false).unwrap();
            assert!(a2.is_none() && out.to_vec().unwrap() == out2.to_vec().unwrap());
        }
    }

    #[test]
    fn backward_matches_naive_loops() {
        // Scale 100 is left out: too sharp for a meaningful f32-vs-f64 gradient comparison.
        for (i, &(b, c, n, m, v, norm, scale)) in CASES.iter().enumerate() {
            if scale > 10.0 {
                continue;
            }
            let ((q, k, vt), p) = (
                inputs(b, c, n, m, v, 100 + 10 * i as u64),
                params(scale, norm),
            );
            let dout = Tensor::randn(vec![b, n, v], 0.0, 1.0, 999 + i as u64);
            let (dq, dk, dv) = corr_warp_backward(&q, &k, &vt, p, &dout).unwrap();
            let want = naive_backward(&q, &k, &vt, p, &dout);
            for ((name, got), want) in [("dq", &dq), ("dk", &dk), ("dv", &dv)]
                .into_iter()
                .zip(want)
            {
                let atol = 1e-4 * want.iter().fold(1.0f64, |a, x| a.max(x.abs()));
                assert_close(name, got, &want, 1e-3, atol);
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let cases = [
            (2, 3, 7, 5, 2, true, 2.0),
            (1, 2, 4, 3, 1, false, 0.7),
            (3, 1, 2, 6, 3, false, 1.0),
            (1, 4, 3, 2, 2, true, 1.5),
        ];
        for (i, &(b, c, n, m, v, norm, scale)) in cases.iter().enumerate() {
            let ((q, k, vt), p) = (
                inputs(b, c, n, m, v, 500 + 10 * i as u64),
                params(scale, norm),
            );
            let r = Tensor::randn(vec![b, n, v], 0.0, 1.0, 77);
            let (dq, dk, dv) = corr_warp_backward(&q, &k, &vt, p, &r).unwrap();
            let loss = |q: &Tensor, k: &Tensor, v: &Tensor| {
                dot(&corr_warp(q, k, v, p, false).unwrap().0, &r)
            };
            check_fd("dq vs fd", &q, &dq, |x| loss(x, &k, &vt));
            check_fd("dk vs fd", &k, &dk, |x| loss(&q, x, &vt));
            check_fd("dv vs fd", &vt, &dv, |x| loss(&q, &k, x));
        }
    }

    #[test]
    fn constant_descriptor_columns_stay_finite() {
        // A constant q column normalises to 0 (r = 0): uniform attention, finite gradients.
        let ((mut q, k, v), p) = (inputs(1, 3, 4, 5, 2, 7), params(1.0, true));
        (0..3).for_each(|ch| q.data_mut().unwrap()[ch * 4] = 2.0);
        let a = corr_warp(&q, &k, &v, p, true)
            .unwrap()
            .1
            .unwrap()
            .to_vec()
            .unwrap();
        assert!(a[..5].iter().all(|x| (x - 0.2).abs() < 1e-6));
        let dout = Tensor::ones(vec![1, 4, 2]);
        let (dq, _, _) = corr_warp_backward(&q, &k, &v, p, &dout).unwrap();
        assert_close(
            "dq with a constant column",
            &dq,
            &naive_backward(&q, &k, &v, p, &dout)[0],
            1e-3,
            1e-4,
        );
    }

    #[test]
    fn empty_queries_give_empty_outputs() {
        let ((q, k, v), p) = (inputs(2, 3, 0, 5, 2, 1), params(1.0, true));
        let (out, a) = corr_warp(&q, &k, &v, p, true).unwrap();
        assert_eq!(
            (out.dims(), a.unwrap().dims()),
            (&[2, 0, 2][..], &[2, 0, 5][..])
        );
        let (dq, dk, dv) =
            corr_warp_backward(&q, &k, &v, p, &Tensor::zeros(vec![2, 0, 2])).unwrap();
        assert_eq!(
            (dq.dims(), dk.dims(), dv.dims()),
            (&[2, 3, 0][..], &[2, 3, 5][..], &[2, 5, 2][..])
        );
        assert!(f64s(&dk).iter().chain(f64s(&dv).iter()).all(|x| *x == 0.0));
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let (q, k, v) = inputs(2, 3, 4, 5, 2, 1);
        let run =
            |(q, k, v): (&Tensor, &Tensor, &Tensor), p| corr_warp(q, k, v, p, false).map(|r| r.0);
        let shape = |r: Result<Tensor>| assert!(matches!(r, Err(Error::Shape { .. })), "{r:?}");
        let invalid = |r: Result<Tensor>| assert!(matches!(r, Err(Error::Invalid { .. })), "{r:?}");
        let p = params(1.0, true);
        let (q1, k1, v1) = inputs(1, 3, 4, 5, 2, 1); // batch 1 vs 2
        shape(run((&q1, &k, &v), p));
        shape(run((&q, &k1, &v), p));
        shape(run((&q, &k, &v1), p));
        shape(run((&q, &inputs(2, 4, 4, 5, 2, 1).1, &v), p)); // C 3 vs 4
        shape(run((&q, &k, &inputs(2, 3, 4, 6, 2, 1).2), p)); // M 5 vs 6
        shape(run((&q.reshape(vec![2, 12]).unwrap(), &k, &v), p));
        for (c, m, vd) in [(0, 5, 2), (3, 0, 2), (3, 5, 0)] {
            let (q, k, v) = inputs(2, c, 4, m, vd, 1);
            invalid(run((&q, &k, &v), p));
        }
        invalid(run(
            (&q, &k, &v),
            CorrWarpParams {
                scale: f32::INFINITY,
                normalize: false,
                eps: 0.0,
            },
        ));
        invalid(run(
            (&q, &k, &v),
            CorrWarpParams {
                scale: 1.0,
                normalize: true,
                eps: -1.0,
            },
        ));
        shape(corr_warp_backward(&q, &k, &v, p, &Tensor::zeros(vec![2, 5, 2])).map(|r| r.0));
        shape(corr_warp_backward(&q, &k1, &v, p, &Tensor::zeros(vec![2, 4, 2])).map(|r| r.0));
    }

    /// The paper's size for one image (B = 1, C = 256, N = M = 4096, V = 48): prints the time.
    /// `cargo test --release --lib corr_warp_real_size -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn corr_warp_real_size_timing() {
        let ((q, k, v), p) = (inputs(1, 256, 4096, 4096, 48, 3), params(100.0, true));
        let t = std::time::Instant::now();
        let (out, _) = corr_warp(&q, &k, &v, p, false).unwrap();
        let fwd = t.elapsed();
        let t = std::time::Instant::now();
        let (dq, dk, dv) = corr_warp_backward(&q, &k, &v, p, &out).unwrap();
        let bwd = t.elapsed();
        assert!([&dq, &dk, &dv]
            .iter()
            .all(|g| f64s(g).iter().all(|x| x.is_finite())));
        let threads = rayon::current_num_threads();
        eprintln!(
            "corr_warp B=1 C=256 N=M=4096 V=48, {threads} threads: fwd {fwd:.2?}, bwd {bwd:.2?}"
        );
    }
}
