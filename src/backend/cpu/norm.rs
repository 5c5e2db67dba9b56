//! Instance norm, positional norm (PONO) and the fused SPADE modulation on the CPU.
//!
//! All of them reduce over the middle axis of an `[outer, red, inner]` view of x: instance norm is
//! `[N·C, H·W, 1]`, PONO is `[N, C, H·W]`. Two helpers serve every op (and corr_warp's column
//! normalisation): `row_sums` (f64 sums per statistic, rayon over `outer` and tiles of `inner`)
//! and `map_rows` (one elementwise pass over contiguous lines, rayon over lines).

use crate::backend::checks::{self, same_shape, NormLayout};
use crate::backend::*;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Columns of `inner` handled by one task of `row_sums` (keeps its accumulators in L1).
const TILE: usize = 256;

/// x viewed as `[outer, red, inner]`, reduced over `red`; a statistic's index is `o·inner + i`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rows {
    pub outer: usize,
    pub red: usize,
    pub inner: usize,
}

pub(super) fn rows(outer: usize, red: usize, inner: usize) -> Rows {
    Rows { outer, red, inner }
}

/// Per statistic, the sums over the reduced axis of the pair `f(flat, stat)` returns.
pub(super) fn row_sums<F>(rows: Rows, f: F) -> Vec<(f64, f64)>
where
    F: Fn(usize, usize) -> (f64, f64) + Sync,
{
    let Rows { outer, red, inner } = rows;
    let mut acc = vec![(0.0, 0.0); outer * inner];
    if acc.is_empty() {
        return acc;
    }
    acc.par_chunks_mut(inner)
        .enumerate()
        .for_each(|(o, acc_o)| {
            acc_o
                .par_chunks_mut(TILE)
                .enumerate()
                .for_each(|(t, tile)| {
                    let i0 = t * TILE;
                    // The reduced axis outermost, so a strided reduction (PONO) reads whole lines.
                    for r in 0..red {
                        let base = (o * red + r) * inner + i0;
                        for (j, a) in tile.iter_mut().enumerate() {
                            let (p, q) = f(base + j, o * inner + i0 + j);
                            a.0 += p;
                            a.1 += q;
                        }
                    }
                })
        });
    acc
}

/// Writes `f(flat, stat)` into `a` (first value) and `b` (second, when given), both laid out as
/// `rows`. Parallel over contiguous lines: one row when `inner == 1`, else one `inner` run.
pub(super) fn map_rows<F>(rows: Rows, a: &mut [f32], b: Option<&mut [f32]>, f: F)
where
    F: Fn(usize, usize) -> (f32, f32) + Sync,
{
    let Rows { red, inner, .. } = rows;
    let line = if inner == 1 { red } else { inner };
    if a.is_empty() || line == 0 {
        return;
    }
    let run = |j: usize, la: &mut [f32], mut lb: Option<&mut [f32]>| {
        let base = j * line;
        // Along a line the statistic is constant (inner == 1) or steps by one.
        let (s0, ds) = if inner == 1 {
            (j, 0)
        } else {
            ((j / red) * inner, 1)
        };
        for t in 0..la.len() {
            let (va, vb) = f(base + t, s0 + t * ds);
            la[t] = va;
            if let Some(lb) = lb.as_deref_mut() {
                lb[t] = vb;
            }
        }
    };
    let chunks = a.par_chunks_mut(line);
    match b {
        Some(b) => {
            let zipped = chunks.zip(b.par_chunks_mut(line)).enumerate();
            zipped.for_each(|(j, (la, lb))| run(j, la, Some(lb)))
        }
        None => chunks.enumerate().for_each(|(j, la)| run(j, la, None)),
    }
}

/// Per statistic: (mean, sum of squared deviations from it), accumulated in f64.
pub(super) fn centred_moments(x: &[f32], rows: Rows) -> Vec<(f64, f64)> {
    let n = rows.red as f64;
    let sums = row_sums(rows, |flat, _| {
        (x[flat] as f64, x[flat] as f64 * x[flat] as f64)
    });
    let moments = sums
        .into_iter()
        .map(|(s1, s2)| (s1 / n, (s2 - s1 * s1 / n).max(0.0)));
    moments.collect()
}

/// Where one normalisation reduces and what its statistics look like.
struct Layout {
    rows: Rows,
    /// Subtracted from the count for the variance divisor: 0 biased (instance), 1 unbiased (PONO).
    ddof: usize,
    stats_dims: Vec<usize>,
    channels: usize,
}

/// The row view of a layout `checks::norm` accepted (which also rules out too few values per
/// statistic: an error, not a NaN).
fn layout(l: NormLayout, kind: SpadeNorm) -> Layout {
    let (rows, ddof) = match kind {
        SpadeNorm::Pono => (rows(l.n, l.c, l.hw), 1),
        SpadeNorm::Instance => (rows(l.n * l.c, l.hw, 1), 0),
    };
    Layout {
        rows,
        ddof,
        stats_dims: l.stats_dims,
        channels: l.c,
    }
}

/// The values of an optional per-channel parameter, which must be `[channels]`.
fn channel_param<'a>(
    op: &'static str,
    t: Option<&'a Tensor>,
    c: usize,
) -> Result<Option<&'a [f32]>> {
    checks::channel_param(op, t, c)?;
    t.map(|t| t.cpu_data()).transpose()
}

/// Normalises x per the layout and writes `out(flat, stat, x̂)` for every element.
fn forward<F>(x: &Tensor, l: &Layout, eps: f32, out: F) -> Result<(Tensor, NormStats)>
where
    F: Fn(usize, usize, f32) -> f32 + Sync,
{
    let xs = x.cpu_data()?;
    let div = (l.rows.red - l.ddof) as f64;
    let (mean, rstd): (Vec<f32>, Vec<f32>) = centred_moments(xs, l.rows)
        .into_iter()
        .map(|(m, m2)| (m as f32, (1.0 / (m2 / div + eps as f64).sqrt()) as f32))
        .unzip();
    let mut y = vec![0.0; xs.len()];
    map_rows(l.rows, &mut y, None, |f, s| {
        (out(f, s, (xs[f] - mean[s]) * rstd[s]), 0.0)
    });
    let mean = Tensor::from_vec(mean, l.stats_dims.clone())?;
    let rstd = Tensor::from_vec(rstd, l.stats_dims.clone())?;
    Ok((
        Tensor::from_vec(y, x.shape().clone())?,
        NormStats { mean, rstd },
    ))
}

/// The inputs of a normalisation's backward, shapes checked.
struct Saved<'a> {
    l: Layout,
    x: &'a [f32],
    mean: &'a [f32],
    rstd: &'a [f32],
    dy: &'a [f32],
}

impl<'a> Saved<'a> {
    fn new(
        op: &'static str,
        kind: SpadeNorm,
        x: &'a Tensor,
        st: &'a NormStats,
        dy: &'a Tensor,
    ) -> Result<Self> {
        let l = layout(checks::norm_saved(op, kind, x, st, dy)?, kind);
        let (mean, rstd) = (st.mean.cpu_data()?, st.rstd.cpu_data()?);
        Ok(Saved {
            l,
            x: x.cpu_data()?,
            mean,
            rstd,
            dy: dy.cpu_data()?,
        })
    }

    #[inline]
    fn xhat(&self, flat: usize, s: usize) -> f32 {
        (self.x[flat] - self.mean[s]) * self.rstd[s]
    }

    /// dx of x̂ = (x − mean)·rstd given ∂L/∂x̂ = `g(flat)`·`row_w(stat)`:
    /// dx = rstd·(g − mean(g) − x̂·Σ(g·x̂)/div), div the variance divisor (for the unbiased
    /// variance C − 1: the x̂ term is C/(C−1) times the biased one). `row_w` is constant per
    /// statistic, so the returned (Σg, Σg·x̂) exclude it (instance norm's dweight needs them
    /// bare). With `aux`, dy·x̂ comes out of the same pass too (SPADE's dγ).
    fn backward<G, W>(&self, g: G, row_w: W, aux: bool) -> (Vec<f32>, Vec<f32>, Vec<(f64, f64)>)
    where
        G: Fn(usize) -> f32 + Sync,
        W: Fn(usize) -> f32 + Sync,
    {
        let rows = self.l.rows;
        let sums = row_sums(rows, |f, s| {
            (g(f) as f64, g(f) as f64 * self.xhat(f, s) as f64)
        });
        let (n, div) = (rows.red as f64, (rows.red - self.l.ddof) as f64);
        let coef = |s: usize, (sg, sgx): (f64, f64)| {
            let w = row_w(s) as f64;
            ((w * sg / n) as f32, (w * sgx / div) as f32)
        };
        let coef: Vec<(f32, f32)> = sums.iter().enumerate().map(|(s, &v)| coef(s, v)).collect();
        let mut dx = vec![0.0; self.x.len()];
        let mut dxh = if aux { vec![0.0; self.x.len()] } else { vec![] };
        let aux = if aux { Some(&mut dxh[..]) } else { None };
        map_rows(rows, &mut dx, aux, |f, s| {
            let (xh, (mg, kx)) = (self.xhat(f, s), coef[s]);
            (
                self.rstd[s] * (g(f) * row_w(s) - mg - xh * kx),
                self.dy[f] * xh,
            )
        });
        (dx, dxh, sums)
    }
}

pub fn instance_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, NormStats)> {
    let op = "instance_norm";
    let kind = SpadeNorm::Instance;
    let l = layout(checks::norm(op, x, kind)?, kind);
    checks::eps(op, eps)?;
    let c = l.channels;
    let (w, b) = (channel_param(op, weight, c)?, channel_param(op, bias, c)?);
    // The statistic index is n·C + c.
    let (w, b) = (
        |s: usize| w.map_or(1.0, |w| w[s % c]),
        |s: usize| b.map_or(0.0, |b| b[s % c]),
    );
    forward(x, &l, eps, |_, s, xh| xh * w(s) + b(s))
}

pub fn instance_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    stats: &NormStats,
    dy: &Tensor,
) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    let op = "instance_norm_backward";
    let sv = Saved::new(op, SpadeNorm::Instance, x, stats, dy)?;
    let c = sv.l.channels;
    let w = channel_param(op, weight, c)?;
    let (dx, _, sums) = sv.backward(|f| sv.dy[f], |s| w.map_or(1.0, |w| w[s % c]), false);
    let dx = Tensor::from_vec(dx, x.shape().clone())?;
    if w.is_none() {
        return Ok((dx, None, None));
    }
    // dweight = Σ dy·x̂ and dbias = Σ dy over N and the spatial dims: reduce the per-row sums.
    let (mut dw, mut db) = (vec![0.0f64; c], vec![0.0f64; c]);
    for (s, &(sg, sgx)) in sums.iter().enumerate() {
        db[s % c] += sg;
        dw[s % c] += sgx;
    }
    let to_tensor =
        |v: Vec<f64>| Tensor::from_vec(v.into_iter().map(|a| a as f32).collect(), vec![c]);
    Ok((dx, Some(to_tensor(dw)?), Some(to_tensor(db)?)))
}

pub fn pono(x: &Tensor, eps: f32) -> Result<(Tensor, NormStats)> {
    let l = layout(checks::norm("pono", x, SpadeNorm::Pono)?, SpadeNorm::Pono);
    checks::eps("pono", eps)?;
    forward(x, &l, eps, |_, _, xh| xh)
}

pub fn pono_backward(x: &Tensor, stats: &NormStats, dy: &Tensor) -> Result<Tensor> {
    let sv = Saved::new("pono_backward", SpadeNorm::Pono, x, stats, dy)?;
    Tensor::from_vec(
        sv.backward(|f| sv.dy[f], |_| 1.0, false).0,
        x.shape().clone(),
    )
}

pub fn spade_modulate(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    norm: SpadeNorm,
    eps: f32,
) -> Result<(Tensor, NormStats)> {
    let op = "spade_modulate";
    let l = layout(checks::norm(op, x, norm)?, norm);
    checks::eps(op, eps)?;
    same_shape(op, x, gamma)?;
    same_shape(op, x, beta)?;
    let (g, b) = (gamma.cpu_data()?, beta.cpu_data()?);
    forward(x, &l, eps, |f, _, xh| xh * (1.0 + g[f]) + b[f])
}

pub fn spade_modulate_backward(
    x: &Tensor,
    gamma: &Tensor,
    stats: &NormStats,
    norm: SpadeNorm,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "spade_modulate_backward";
    let sv = Saved::new(op, norm, x, stats, dy)?;
    same_shape(op, x, gamma)?;
    let gs = gamma.cpu_data()?;
    // ∂L/∂x̂ = dy·(1 + γ); dγ = dy·x̂ comes out of the same pass; dβ = dy.
    let (dx, dgamma, _) = sv.backward(|f| sv.dy[f] * (1.0 + gs[f]), |_| 1.0, true);
    let shape = x.shape().clone();
    Ok((
        Tensor::from_vec(dx, shape.clone())?,
        Tensor::from_vec(dgamma, shape)?,
        dy.clone(),
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::error::Error;

    /// |got − want| ≤ atol + rtol·|want| elementwise; prints the largest share of the tolerance.
    pub(in crate::backend::cpu) fn assert_close(
        name: &str,
        got: &Tensor,
        want: &[f64],
        rtol: f64,
        atol: f64,
    ) {
        let got = got.to_vec().unwrap();
        assert_eq!(got.len(), want.len(), "{name}: lengths");
        let mut worst = 0.0f64;
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let (err, tol) = ((g as f64 - w).abs(), atol + rtol * w.abs());
            assert!(
                err <= tol,
                "{name}[{i}]: got {g}, want {w} (err {err:.3e} > tol {tol:.3e})"
            );
            worst = worst.max(err / tol);
        }
        eprintln!("{name}: max share of tolerance used {worst:.3}");
    }

    /// Central finite differences (h = 1e-3) of `loss` at x.
    pub(in crate::backend::cpu) fn fd(x: &Tensor, loss: impl Fn(&Tensor) -> f64) -> Vec<f64> {
        let (h, xs) = (1e-3f32, x.to_vec().unwrap());
        let at = |i: usize, d: f32| {
            let mut p = xs.clone();
            p[i] += d;
            loss(&Tensor::from_vec(p, x.shape().clone()).unwrap())
        };
        (0..xs.len())
            .map(|i| (at(i, h) - at(i, -h)) / (2.0 * h as f64))
            .collect()
    }

    /// `grad` against finite differences: 1e-2 relative, 2e-3 of the largest entry absolute.
    pub(in crate::backend::cpu) fn check_fd(
        name: &str,
        x: &Tensor,
        grad: &Tensor,
        loss: impl Fn(&Tensor) -> f64,
    ) {
        let want = fd(x, loss);
        let atol = 2e-3 * want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
        assert_close(name, grad, &want, 1e-2, atol);
    }

    /// Σ y·r, the test loss (so ∂L/∂y = r).
    pub(in crate::backend::cpu) fn dot(y: &Tensor, r: &Tensor) -> f64 {
        let (y, r) = (y.to_vec().unwrap(), r.to_vec().unwrap());
        y.iter().zip(r).map(|(&a, b)| a as f64 * b as f64).sum()
    }

    fn randn(dims: &[usize], seed: u64) -> Tensor {
        Tensor::randn(dims.to_vec(), 0.0, 1.0, seed)
    }

    /// Naive normalisation by explicit loops in f64 over groups of element indices, variance
    /// divisor `count − ddof`: x̂.
    fn naive_norm(x: &Tensor, groups: &[Vec<usize>], ddof: usize) -> Vec<f64> {
        let x: Vec<f64> = x.to_vec().unwrap().into_iter().map(f64::from).collect();
        let mut out = vec![0.0; x.len()];
        for g in groups {
            let mean = g.iter().map(|&i| x[i]).sum::<f64>() / g.len() as f64;
            let var =
                g.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / (g.len() - ddof) as f64;
            g.iter()
                .for_each(|&i| out[i] = (x[i] - mean) / (var + 1e-5).sqrt());
        }
        out
    }

    fn naive(x: &Tensor, kind: SpadeNorm) -> Vec<f64> {
        let d = x.dims();
        let l: usize = d[2..].iter().product();
        match kind {
            SpadeNorm::Instance => naive_norm(
                x,
                &(0..d[0] * d[1])
                    .map(|r| (r * l..(r + 1) * l).collect())
                    .collect::<Vec<_>>(),
                0,
            ),
            SpadeNorm::Pono => {
                let group =
                    |n: usize, i: usize| (0..d[1]).map(|c| (n * d[1] + c) * l + i).collect();
                naive_norm(
                    x,
                    &(0..d[0] * l)
                        .map(|g| group(g / l, g % l))
                        .collect::<Vec<_>>(),
                    1,
                )
            }
        }
    }

    #[test]
    fn instance_norm_matches_naive_loops() {
        let shapes = [
            vec![2, 3, 5, 7],
            vec![1, 1, 1, 3],
            vec![2, 3, 5],
            vec![1, 2, 3, 2, 2],
            vec![3, 2, 17, 19],
        ];
        for (k, dims) in shapes.iter().enumerate() {
            let (c, seed) = (dims[1], k as u64);
            let x = Tensor::randn(dims.clone(), 1.5, 2.0, seed);
            let (w, b) = (randn(&[c], 100 + seed), randn(&[c], 200 + seed));
            let xh = naive(&x, SpadeNorm::Instance);
            let (y, st) = instance_norm(&x, None, None, 1e-5).unwrap();
            assert_close("instance_norm", &y, &xh, 1e-4, 1e-5);
            assert_eq!((st.mean.dims(), st.rstd.dims()), (&dims[..2], &dims[..2]));
            let l = xh.len() / (dims[0] * c);
            let (wd, bd) = (w.to_vec().unwrap(), b.to_vec().unwrap());
            let affine = |i: usize, v: f64, w: bool| {
                v * if w { wd[i / l % c] as f64 } else { 1.0 } + bd[i / l % c] as f64
            };
            let want: Vec<f64> = xh
                .iter()
                .enumerate()
                .map(|(i, &v)| affine(i, v, true))
                .collect();
            assert_close(
                "affine",
                &instance_norm(&x, Some(&w), Some(&b), 1e-5).unwrap().0,
                &want,
                1e-4,
                1e-5,
            );
            let want: Vec<f64> = xh
                .iter()
                .enumerate()
                .map(|(i, &v)| affine(i, v, false))
                .collect();
            assert_close(
                "bias only",
                &instance_norm(&x, None, Some(&b), 1e-5).unwrap().0,
                &want,
                1e-4,
                1e-5,
            );
        }
    }

    #[test]
    fn instance_norm_backward_matches_finite_differences() {
        for (k, dims) in [vec![2, 3, 4, 5], vec![1, 1, 7], vec![2, 2, 3, 1, 2]]
            .iter()
            .enumerate()
        {
            let (x, r, c) = (
                randn(dims, 10 + k as u64),
                randn(dims, 40 + k as u64),
                dims[1],
            );
            let (w, b) = (Tensor::randn(vec![c], 1.0, 0.5, 20), randn(&[c], 30));
            let (_, st) = instance_norm(&x, Some(&w), Some(&b), 1e-5).unwrap();
            let (dx, dw, db) = instance_norm_backward(&x, Some(&w), &st, &r).unwrap();
            let loss = |x: &Tensor, w: &Tensor, b: &Tensor| {
                dot(&instance_norm(x, Some(w), Some(b), 1e-5).unwrap().0, &r)
            };
            check_fd("instance dx", &x, &dx, |x| loss(x, &w, &b));
            check_fd("instance dweight", &w, &dw.unwrap(), |w| loss(&x, w, &b));
            check_fd("instance dbias", &b, &db.unwrap(), |b| loss(&x, &w, b));
            // Without affine: no parameter gradients, dx still right.
            let (_, st) = instance_norm(&x, None, None, 1e-5).unwrap();
            let (dx, dw, db) = instance_norm_backward(&x, None, &st, &r).unwrap();
            assert!(dw.is_none() && db.is_none());
            check_fd("instance dx, no affine", &x, &dx, |x| {
                dot(&instance_norm(x, None, None, 1e-5).unwrap().0, &r)
            });
        }
    }

    #[test]
    fn pono_matches_naive_loops_and_finite_differences() {
        for (k, dims) in [
            vec![2, 5, 3, 4],
            vec![1, 2, 1, 1],
            vec![3, 3, 1, 7],
            vec![1, 7, 9, 31],
        ]
        .iter()
        .enumerate()
        {
            let x = Tensor::randn(dims.clone(), -0.5, 3.0, 50 + k as u64);
            let (y, st) = pono(&x, 1e-5).unwrap();
            assert_close("pono", &y, &naive(&x, SpadeNorm::Pono), 1e-4, 1e-5);
            assert_eq!(st.mean.dims(), &[dims[0], 1, dims[2], dims[3]]);
        }
        // Backward in a well-conditioned regime (C >= 3, so x̂ is not just a sign).
        for (k, dims) in [vec![2, 3, 2, 3], vec![1, 6, 1, 5]].iter().enumerate() {
            let (x, r) = (randn(dims, 60 + k as u64), randn(dims, 70 + k as u64));
            let dx = pono_backward(&x, &pono(&x, 1e-5).unwrap().1, &r).unwrap();
            check_fd("pono dx", &x, &dx, |x| dot(&pono(x, 1e-5).unwrap().0, &r));
        }
    }

    #[test]
    fn spade_modulate_matches_unfused_composition() {
        for norm in [SpadeNorm::Pono, SpadeNorm::Instance] {
            for (k, dims) in [vec![2, 3, 4, 5], vec![1, 2, 1, 3], vec![1, 4, 13, 11]]
                .iter()
                .enumerate()
            {
                let seed = 80 + 10 * k as u64;
                let (x, g, b) = (
                    Tensor::randn(dims.clone(), 0.7, 1.3, seed),
                    randn(dims, seed + 1),
                    randn(dims, seed + 2),
                );
                let (gd, bd) = (g.to_vec().unwrap(), b.to_vec().unwrap());
                let want: Vec<f64> = naive(&x, norm)
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * (1.0 + gd[i] as f64) + bd[i] as f64)
                    .collect();
                let (y, st) = spade_modulate(&x, &g, &b, norm, 1e-5).unwrap();
                assert_close("spade_modulate", &y, &want, 1e-4, 1e-5);
                let plain = match norm {
                    SpadeNorm::Pono => pono(&x, 1e-5).unwrap().1,
                    SpadeNorm::Instance => instance_norm(&x, None, None, 1e-5).unwrap().1,
                };
                assert_eq!(
                    (st.mean.to_vec().unwrap(), st.rstd.to_vec().unwrap()),
                    (plain.mean.to_vec().unwrap(), plain.rstd.to_vec().unwrap())
                );
            }
        }
    }

    #[test]
    fn spade_modulate_backward_matches_finite_differences_and_unfused_chain() {
        for norm in [SpadeNorm::Pono, SpadeNorm::Instance] {
            let dims = [2, 3, 2, 3];
            let (x, g, b, r) = (
                randn(&dims, 1),
                Tensor::randn(dims.to_vec(), 0.0, 0.5, 2),
                randn(&dims, 3),
                randn(&dims, 4),
            );
            let (_, st) = spade_modulate(&x, &g, &b, norm, 1e-5).unwrap();
            let (dx, dg, db) = spade_modulate_backward(&x, &g, &st, norm, &r).unwrap();
            let loss = |x: &Tensor, g: &Tensor, b: &Tensor| {
                dot(&spade_modulate(x, g, b, norm, 1e-5).unwrap().0, &r)
            };
            check_fd("spade dx", &x, &dx, |x| loss(x, &g, &b));
            check_fd("spade dgamma", &g, &dg, |g| loss(&x, g, &b));
            check_fd("spade dbeta", &b, &db, |b| loss(&x, &g, b));
            // The unfused chain: the plain norm's backward of dy·(1+γ).
            let dyg: Vec<f32> = r
                .to_vec()
                .unwrap()
                .iter()
                .zip(g.to_vec().unwrap())
                .map(|(a, b)| a * (1.0 + b))
                .collect();
            let dyg = Tensor::from_vec(dyg, dims.to_vec()).unwrap();
            let want = match norm {
                SpadeNorm::Pono => pono_backward(&x, &st, &dyg).unwrap(),
                SpadeNorm::Instance => instance_norm_backward(&x, None, &st, &dyg).unwrap().0,
            };
            let want: Vec<f64> = want.to_vec().unwrap().into_iter().map(f64::from).collect();
            assert_close("spade dx vs unfused", &dx, &want, 1e-5, 1e-6);
        }
    }

    #[test]
    fn constant_rows_and_empty_batches() {
        let x = Tensor::full(3.0, vec![1, 2, 4, 4]);
        let (y, st) = instance_norm(&x, None, None, 1e-5).unwrap();
        assert!(y.to_vec().unwrap().iter().all(|v| *v == 0.0));
        let dx = instance_norm_backward(&x, None, &st, &randn(&[1, 2, 4, 4], 5))
            .unwrap()
            .0;
        assert!(dx.to_vec().unwrap().iter().all(|v| v.is_finite()));
        assert!(pono(&x, 1e-5)
            .unwrap()
            .0
            .to_vec()
            .unwrap()
            .iter()
            .all(|v| *v == 0.0));
        let x = Tensor::zeros(vec![0, 3, 2, 2]);
        let (y, st) = instance_norm(&x, None, None, 1e-5).unwrap();
        assert_eq!(
            (
                y.dims(),
                instance_norm_backward(&x, None, &st, &x).unwrap().0.numel()
            ),
            (&[0, 3, 2, 2][..], 0)
        );
        let (y, st) = pono(&x, 1e-5).unwrap();
        assert_eq!(
            (y.numel(), pono_backward(&x, &st, &x).unwrap().numel()),
            (0, 0)
        );
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let shape = |r: Result<(Tensor, NormStats)>| {
            assert!(matches!(r, Err(Error::Shape { .. })), "{r:?}")
        };
        let invalid = |r: Result<(Tensor, NormStats)>| {
            assert!(matches!(r, Err(Error::Invalid { .. })), "{r:?}")
        };
        let (x, x1) = (randn(&[2, 3, 4, 5], 1), randn(&[2, 1, 4, 5], 1));
        shape(instance_norm(&randn(&[2, 3], 1), None, None, 1e-5));
        shape(instance_norm(&x, Some(&randn(&[4], 1)), None, 1e-5));
        shape(instance_norm(&x, None, Some(&randn(&[3, 1], 1)), 1e-5));
        invalid(instance_norm(&randn(&[2, 3, 0, 5], 1), None, None, 1e-5));
        invalid(instance_norm(&x, None, None, -1.0));
        invalid(pono(&x, f32::NAN));
        shape(pono(&randn(&[2, 3, 4], 1), 1e-5));
        invalid(pono(&x1, 1e-5));
        shape(spade_modulate(
            &x,
            &randn(&[2, 3, 4, 4], 1),
            &x,
            SpadeNorm::Pono,
            1e-5,
        ));
        shape(spade_modulate(
            &x,
            &x,
            &randn(&[2, 3, 5, 4], 1),
            SpadeNorm::Instance,
            1e-5,
        ));

        let (ist, pst) = (
            instance_norm(&x, None, None, 1e-5).unwrap().1,
            pono(&x, 1e-5).unwrap().1,
        );
        let bad = randn(&[2, 3, 4, 4], 2);
        let shape = |r: Result<Tensor>| assert!(matches!(r, Err(Error::Shape { .. })), "{r:?}");
        shape(instance_norm_backward(&x, None, &ist, &bad).map(|r| r.0));
        shape(instance_norm_backward(&x, None, &pst, &x).map(|r| r.0));
        shape(instance_norm_backward(&x, Some(&randn(&[2], 1)), &ist, &x).map(|r| r.0));
        shape(pono_backward(&x, &ist, &x));
        shape(pono_backward(&x, &pst, &bad));
        assert!(matches!(
            pono_backward(&x1, &pst, &x1),
            Err(Error::Invalid { .. })
        ));
        shape(spade_modulate_backward(&x, &x, &ist, SpadeNorm::Pono, &x).map(|r| r.0));
        shape(spade_modulate_backward(&x, &bad, &pst, SpadeNorm::Pono, &x).map(|r| r.0));
        shape(spade_modulate_backward(&x, &x, &ist, SpadeNorm::Instance, &bad).map(|r| r.0));
    }
}
