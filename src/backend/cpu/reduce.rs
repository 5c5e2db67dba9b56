//! Sum / mean / max over a set of axes, and the max backward (ties share the gradient).
//!
//! Axes are first merged into alternating kept/reduced groups. When the innermost group is
//! reduced, each output is a sum of contiguous runs; when it is kept, whole rows of the input are
//! accumulated into a row of outputs (vectorisable). Sums accumulate in f64.

use super::layout::{for_each_row, GRAIN};
use crate::backend::checks::{self, axis_mask, broadcast_strides};
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// An accumulator of one reduction: f64 sums or f32 maxima that propagate NaN (as PyTorch).
trait Acc: Copy + Send + Sync {
    const INIT: Self;
    fn push(self, v: f32) -> Self;
    fn merge(self, o: Self) -> Self;
    fn run(xs: &[f32]) -> Self;
    /// The value, times `scale` for sums (1/count turns a sum into a mean).
    fn finish(self, scale: f64) -> f32;
}

#[derive(Clone, Copy)]
struct SumAcc(f64);

#[derive(Clone, Copy)]
struct MaxAcc(f32);

impl Acc for SumAcc {
    const INIT: Self = SumAcc(0.0);
    fn push(self, v: f32) -> Self {
        SumAcc(self.0 + v as f64)
    }
    fn merge(self, o: Self) -> Self {
        SumAcc(self.0 + o.0)
    }
    fn run(xs: &[f32]) -> Self {
        // Four independent lanes so the adds pipeline.
        let mut lanes = [0f64; 4];
        let chunks = xs.chunks_exact(4);
        let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
        for c in chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l += v as f64;
            }
        }
        SumAcc(lanes.iter().sum::<f64>() + tail)
    }
    fn finish(self, scale: f64) -> f32 {
        (self.0 * scale) as f32
    }
}

impl Acc for MaxAcc {
    const INIT: Self = MaxAcc(f32::NEG_INFINITY);
    fn push(self, v: f32) -> Self {
        if v > self.0 || v.is_nan() {
            MaxAcc(v)
        } else {
            self
        }
    }
    fn merge(self, o: Self) -> Self {
        self.push(o.0)
    }
    fn run(xs: &[f32]) -> Self {
        // Eight lanes and a separate NaN flag, so the compare-and-select loop vectorises.
        let mut lanes = [f32::NEG_INFINITY; 8];
        let mut nan = [false; 8];
        let chunks = xs.chunks_exact(8);
        let tail = chunks
            .remainder()
            .iter()
            .fold(Self::INIT, |a, &v| a.push(v));
        for c in chunks {
            for ((l, n), &v) in lanes.iter_mut().zip(&mut nan).zip(c) {
                *l = if v > *l { v } else { *l };
                *n |= v.is_nan();
            }
        }
        if nan.iter().any(|&n| n) {
            return MaxAcc(f32::NAN);
        }
        lanes.iter().fold(tail, |a, &v| a.push(v))
    }
    fn finish(self, _scale: f64) -> f32 {
        self.0
    }
}

/// Calls `f` with `base` plus the offset of every multi-index over `groups` of (size, stride).
fn for_each_offset(groups: &[(usize, usize)], base: usize, f: &mut impl FnMut(usize)) {
    match groups.split_first() {
        None => f(base),
        Some((&(n, s), rest)) => (0..n).for_each(|i| for_each_offset(rest, base + i * s, f)),
    }
}

/// Offset of row-major index `i` over `groups` of (size, stride).
fn offset_of(mut i: usize, groups: &[(usize, usize)]) -> usize {
    let mut off = 0;
    for &(n, s) in groups.iter().rev() {
        off += (i % n) * s;
        i /= n;
    }
    off
}

/// Reduces the contiguous `x` of `dims` over the axes flagged in `mask`; the result is in the
/// row-major order of the kept axes. Empty reductions: sum 0, mean NaN, max an error.
pub(super) fn reduce_raw(
    op: ReduceOp,
    x: &[f32],
    dims: &[usize],
    mask: &[bool],
) -> Result<Vec<f32>> {
    let out_n: usize = dims
        .iter()
        .zip(mask)
        .filter(|(_, &m)| !m)
        .map(|(d, _)| d)
        .product();
    let count: usize = dims
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(d, _)| d)
        .product();
    if count == 0 {
        return match op {
            ReduceOp::Sum => Ok(vec![0.0; out_n]),
            ReduceOp::Mean => Ok(vec![f32::NAN; out_n]),
            ReduceOp::Max if out_n == 0 => Ok(vec![]),
            ReduceOp::Max => Err(Error::invalid(
                "reduce",
                format!("max over an empty axis of {dims:?}"),
            )),
        };
    }
    if out_n == 0 {
        return Ok(vec![]);
    }
    Ok(match op {
        ReduceOp::Sum => reduce_with::<SumAcc>(x, dims, mask, 1.0),
        ReduceOp::Mean => reduce_with::<SumAcc>(x, dims, mask, 1.0 / count as f64),
        ReduceOp::Max => reduce_with::<MaxAcc>(x, dims, mask, 1.0),
    })
}

fn reduce_with<A: Acc>(x: &[f32], dims: &[usize], mask: &[bool], scale: f64) -> Vec<f32> {
    // Merge adjacent axes of the same role; 1-sized axes play no role.
    let mut groups: Vec<(usize, bool)> = Vec::new();
    for (&d, &m) in dims.iter().zip(mask).filter(|(&d, _)| d != 1) {
        match groups.last_mut() {
            Some(g) if g.1 == m => g.0 *= d,
            _ => groups.push((d, m)),
        }
    }
    let mut stride = 1;
    let (mut kept, mut red) = (Vec::new(), Vec::new());
    for &(d, m) in groups.iter().rev() {
        let list: &mut Vec<(usize, usize)> = if m { &mut red } else { &mut kept };
        list.push((d, stride));
        stride *= d;
    }
    kept.reverse();
    red.reverse();
    if red.is_empty() {
        // Only 1-sized axes are reduced: a copy (scaled by 1).
        return x
            .par_iter()
            .with_min_len(GRAIN)
            .map(|&v| A::INIT.push(v).finish(scale))
            .collect();
    }
    match groups[groups.len() - 1] {
        (run, true) => reduce_runs::<A>(x, &kept, &red[..red.len() - 1], run, scale),
        (width, false) => reduce_rows::<A>(x, &kept[..kept.len() - 1], &red, width, scale),
    }
}

/// Innermost axes reduced: each output combines contiguous runs of `run` elements.
fn reduce_runs<A: Acc>(
    x: &[f32],
    kept: &[(usize, usize)],
    outer_red: &[(usize, usize)],
    run: usize,
    scale: f64,
) -> Vec<f32> {
    if kept.is_empty() {
        // Everything reduces to one value: split the single run across threads.
        let acc = x.par_chunks(GRAIN).map(A::run).reduce(|| A::INIT, A::merge);
        return vec![acc.finish(scale)];
    }
    let out_n: usize = kept.iter().map(|g| g.0).product();
    let per_out = outer_red.iter().map(|g| g.0).product::<usize>() * run;
    (0..out_n)
        .into_par_iter()
        .with_min_len((GRAIN / per_out).max(1))
        .map(|o| {
            let mut acc = A::INIT;
            for_each_offset(outer_red, offset_of(o, kept), &mut |off| {
                acc = acc.merge(A::run(&x[off..off + run]))
            });
            acc.finish(scale)
        })
        .collect()
}

/// Innermost axes kept: each output row of `width` accumulates input rows elementwise. Rows
/// are split into column tiles so that a single output row still spreads across threads.
fn reduce_rows<A: Acc>(
    x: &[f32],
    kept_outer: &[(usize, usize)],
    red: &[(usize, usize)],
    width: usize,
    scale: f64,
) -> Vec<f32> {
    let blocks: usize = kept_outer.iter().map(|g| g.0).product();
    let red_n: usize = red.iter().map(|g| g.0).product();
    let tile = width.min((GRAIN / red_n).max(256));
    let mut out = vec![0.0; blocks * width];
    out.par_chunks_mut(width)
        .with_min_len((GRAIN / (red_n * width)).max(1))
        .enumerate()
        .for_each(|(b, ob)| {
            let base = offset_of(b, kept_outer);
            ob.par_chunks_mut(tile).enumerate().for_each(|(t, o)| {
                let c0 = base + t * tile;
                let mut acc = vec![A::INIT; o.len()];
                for_each_offset(red, c0, &mut |off| {
                    for (a, &v) in acc.iter_mut().zip(&x[off..off + o.len()]) {
                        *a = a.push(v);
                    }
                });
                for (dst, a) in o.iter_mut().zip(acc) {
                    *dst = a.finish(scale);
                }
            });
        });
    out
}

pub fn reduce(op: ReduceOp, x: &Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor> {
    let mask = axis_mask("reduce", x, axes)?;
    let data = reduce_raw(op, x.cpu_data()?, x.dims(), &mask)?;
    Tensor::from_vec(data, checks::reduced_dims(x.dims(), &mask, keepdim))
}

pub fn reduce_max_backward(x: &Tensor, y: &Tensor, dy: &Tensor, axes: &[usize]) -> Result<Tensor> {
    let (mask, kd) = checks::max_backward(x, y, dy, axes)?;
    let ys = broadcast_strides("reduce_max_backward", &kd, x.dims())?;
    let xs = x.shape().strides();
    let (xd, yd) = (x.cpu_data()?, y.cpu_data()?);
    // 1 where x attains its group's maximum (NaN maxima are attained by NaNs).
    let mut hit = vec![0.0; x.numel()];
    for_each_row(&mut hit, x.dims(), [&xs, &ys], |row, [ox, oy], [sx, sy]| {
        for (j, h) in row.iter_mut().enumerate() {
            let (xv, yv) = (xd[ox + j * sx], yd[oy + j * sy]);
            *h = if xv == yv || (xv.is_nan() && yv.is_nan()) {
                1.0
            } else {
                0.0
            };
        }
    });
    let counts = reduce_raw(ReduceOp::Sum, &hit, x.dims(), &mask)?;
    let share: Vec<f32> = dy
        .cpu_data()?
        .iter()
        .zip(&counts)
        .map(|(&g, &c)| if c > 0.0 { g / c } else { 0.0 })
        .collect();
    let mut dx = vec![0.0; x.numel()];
    for_each_row(&mut dx, x.dims(), [&xs, &ys], |row, [oh, oy], [sh, sy]| {
        for (j, d) in row.iter_mut().enumerate() {
            *d = hit[oh + j * sh] * share[oy + j * sy];
        }
    });
    Tensor::from_vec(dx, x.dims().to_vec())
}

#[cfg(test)]
mod tests {
    use super::super::layout::tests::{assert_close, ravel, unravel};
    use super::*;
    use crate::backend::checks::keepdim_dims;

    /// Straightforward reference: visit every element, accumulate into its keepdim output.
    fn naive(op: ReduceOp, x: &Tensor, mask: &[bool]) -> Vec<f32> {
        let kd = keepdim_dims(x.dims(), mask);
        let n: usize = kd.iter().product();
        let mut acc = vec![
            if op == ReduceOp::Max {
                f64::NEG_INFINITY
            } else {
                0.0
            };
            n
        ];
        let mut cnt = vec![0usize; n];
        for (i, &v) in x.cpu_data().unwrap().iter().enumerate() {
            let mut idx = unravel(i, x.dims());
            for (a, &m) in mask.iter().enumerate() {
                if m {
                    idx[a] = 0;
                }
            }
            let o = ravel(&idx, &kd);
            acc[o] = if op == ReduceOp::Max {
                acc[o].max(v as f64)
            } else {
                acc[o] + v as f64
            };
            cnt[o] += 1;
        }
        acc.iter().zip(&cnt).map(|(&a, &c)| if op == ReduceOp::Mean { a / c as f64 } else { a } as f32).collect()
    }

    #[test]
    fn reductions_match_naive_loops() {
        let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
            (vec![3, 5, 7], vec![1]),
            (vec![3, 5, 7], vec![0, 2]),
            (vec![3, 5, 7], vec![2]),
            (vec![3, 5, 7], vec![0]),
            (vec![3, 5, 7], vec![]),
            (vec![2, 1, 3, 1, 4], vec![1, 3]),
            (vec![2, 1, 3, 1, 4], vec![0, 4]),
            (vec![4, 3, 17, 19], vec![0, 2, 3]),
            (vec![1, 1], vec![0]),
            (vec![9], vec![0]),
            (vec![70_000], vec![0]),
            (vec![5, 40_000], vec![0]),
            (vec![40_000, 3], vec![0]),
            (vec![300, 300], vec![1]),
        ];
        for (dims, axes) in cases {
            let x = Tensor::randn(dims.clone(), 0.5, 1.0, 5);
            let mask = axis_mask("t", &x, &axes).unwrap();
            for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
                let y = reduce(op, &x, &axes, true).unwrap();
                assert_eq!(y.dims(), &keepdim_dims(x.dims(), &mask)[..]);
                assert_close(y.cpu_data().unwrap(), &naive(op, &x, &mask), 1e-4, 1e-5);
                let z = reduce(op, &x, &axes, false).unwrap();
                assert_eq!(z.numel(), y.numel());
                assert_eq!(
                    z.rank(),
                    mask.iter().filter(|m| !**m).count(),
                    "{dims:?} {axes:?}"
                );
            }
        }
    }

    #[test]
    fn scalar_and_empty_cases() {
        let s = reduce(
            ReduceOp::Sum,
            &Tensor::randn([2, 3], 0.0, 1.0, 1),
            &[],
            false,
        )
        .unwrap();
        assert_eq!(s.dims(), &[] as &[usize]);
        let r0 = reduce(ReduceOp::Mean, &Tensor::scalar(3.0), &[], false).unwrap();
        assert_eq!((r0.dims().len(), r0.item().unwrap()), (0, 3.0));
        let e = Tensor::zeros([2, 0]);
        assert_eq!(
            reduce(ReduceOp::Sum, &e, &[1], false)
                .unwrap()
                .cpu_data()
                .unwrap(),
            &[0.0, 0.0]
        );
        assert!(reduce(ReduceOp::Mean, &e, &[1], false)
            .unwrap()
            .cpu_data()
            .unwrap()[0]
            .is_nan());
        assert!(matches!(
            reduce(ReduceOp::Max, &e, &[1], false),
            Err(Error::Invalid { .. })
        ));
        assert_eq!(reduce(ReduceOp::Max, &e, &[0], false).unwrap().dims(), &[0]);
    }

    #[test]
    fn max_propagates_nan() {
        let x = Tensor::from_vec(vec![1.0, f32::NAN, 3.0, 0.0, 2.0, 1.0], [2, 3]).unwrap();
        let y = reduce(ReduceOp::Max, &x, &[1], false).unwrap();
        let y = y.cpu_data().unwrap();
        assert!(y[0].is_nan());
        assert_eq!(y[1], 2.0);
    }

    #[test]
    fn axis_errors() {
        let x = Tensor::zeros([2, 3]);
        assert!(matches!(
            reduce(ReduceOp::Sum, &x, &[2], false),
            Err(Error::Invalid { op: "reduce", .. })
        ));
        assert!(matches!(
            reduce(ReduceOp::Sum, &x, &[1, 1], false),
            Err(Error::Invalid { .. })
        ));
        let y = Tensor::zeros([2, 1]);
        assert!(reduce_max_backward(&x, &y, &y, &[0]).is_err());
        assert!(reduce_max_backward(&x, &y, &Tensor::zeros([2]), &[1]).is_err());
        assert!(reduce_max_backward(&x, &y, &y, &[5]).is_err());
    }

    #[test]
    fn max_backward_splits_ties_equally() {
        // Ties within rows (axis 1) and within columns of a [2, 3, 4] tensor.
        let vals: Vec<f32> = (0..24).map(|i| ((i * 7) % 5) as f32).collect();
        let x = Tensor::from_vec(vals, [2, 3, 4]).unwrap();
        for axes in [vec![1], vec![0, 2], vec![], vec![2]] {
            let mask = axis_mask("t", &x, &axes).unwrap();
            let y = reduce(ReduceOp::Max, &x, &axes, true).unwrap();
            let dy = Tensor::randn(y.dims().to_vec(), 0.0, 1.0, 3);
            let dx = reduce_max_backward(&x, &y, &dy, &axes).unwrap();
            // Reference: count ties per group, then hand out dy / count.
            let kd = y.dims().to_vec();
            let idx_of = |i: usize| {
                let mut idx = unravel(i, x.dims());
                mask.iter()
                    .enumerate()
                    .filter(|(_, &m)| m)
                    .for_each(|(a, _)| idx[a] = 0);
                ravel(&idx, &kd)
            };
            let (xd, yd, gd) = (
                x.cpu_data().unwrap(),
                y.cpu_data().unwrap(),
                dy.cpu_data().unwrap(),
            );
            let mut ties = vec![0f32; y.numel()];
            (0..24)
                .filter(|&i| xd[i] == yd[idx_of(i)])
                .for_each(|i| ties[idx_of(i)] += 1.0);
            let want: Vec<f32> = (0..24)
                .map(|i| {
                    if xd[i] == yd[idx_of(i)] {
                        gd[idx_of(i)] / ties[idx_of(i)]
                    } else {
                        0.0
                    }
                })
                .collect();
            assert_close(dx.cpu_data().unwrap(), &want, 1e-6, 1e-6);
            // The gradient is conserved.
            let total: f32 = dx.cpu_data().unwrap().iter().sum();
            assert!((total - gd.iter().sum::<f32>()).abs() < 1e-4, "{axes:?}");
        }
    }
}
