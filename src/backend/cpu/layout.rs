//! Layout ops: permute, narrow, concat, broadcast_to and its adjoint sum_to. All of them are
//! strided gathers into a new contiguous tensor; `for_each_row` is the shared walker (also used by
//! broadcasting binary ops and the max-reduction backward).

use crate::backend::checks::{self, broadcast_strides};
use crate::backend::*;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Elements per rayon task: below this a split costs more than it saves.
pub(super) const GRAIN: usize = 1 << 14;

/// Merges adjacent axes that every operand walks contiguously and drops 1-sized axes, so inner
/// loops are as long as possible. Never returns an empty list (a scalar becomes one axis of 1).
fn coalesce<const N: usize>(
    dims: &[usize],
    strides: [&[usize]; N],
) -> (Vec<usize>, [Vec<usize>; N]) {
    let mut out_dims: Vec<usize> = Vec::with_capacity(dims.len());
    let mut out_strides: [Vec<usize>; N] = std::array::from_fn(|_| Vec::with_capacity(dims.len()));
    for (i, &d) in dims.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let mergeable = !out_dims.is_empty()
            && (0..N).all(|k| out_strides[k].last().copied() == Some(strides[k][i] * d));
        if mergeable {
            *out_dims.last_mut().expect("checked non-empty") *= d;
            for k in 0..N {
                *out_strides[k].last_mut().expect("same length as dims") = strides[k][i];
            }
        } else {
            out_dims.push(d);
            for k in 0..N {
                out_strides[k].push(strides[k][i]);
            }
        }
    }
    if out_dims.is_empty() {
        out_dims.push(1);
        for s in out_strides.iter_mut() {
            s.push(0);
        }
    }
    (out_dims, out_strides)
}

/// Walks the contiguous `out` (of shape `dims`) row by row of its innermost coalesced axis, in
/// parallel, calling `f(row, base offsets, inner strides)` with each operand's offset of the
/// row's first element. Operands are described by their strides in `dims` (0 = broadcast).
pub(super) fn for_each_row<const N: usize, F>(
    out: &mut [f32],
    dims: &[usize],
    strides: [&[usize]; N],
    f: F,
) where
    F: Fn(&mut [f32], [usize; N], [usize; N]) + Sync,
{
    if out.is_empty() {
        return;
    }
    let (d, s) = coalesce(dims, strides);
    let inner = d[d.len() - 1];
    let inner_s: [usize; N] = std::array::from_fn(|k| s[k][d.len() - 1]);
    let outer = &d[..d.len() - 1];
    let rows_per_task = (GRAIN / inner).max(1);
    out.par_chunks_mut(rows_per_task * inner)
        .enumerate()
        .for_each(|(t, chunk)| {
            // Multi-index and offsets of this task's first row, then an odometer per row.
            let mut idx = vec![0usize; outer.len()];
            let mut off = [0usize; N];
            let mut r = t * rows_per_task;
            for a in (0..outer.len()).rev() {
                idx[a] = r % outer[a];
                r /= outer[a];
                for k in 0..N {
                    off[k] += idx[a] * s[k][a];
                }
            }
            for row in chunk.chunks_mut(inner) {
                f(row, off, inner_s);
                for a in (0..outer.len()).rev() {
                    idx[a] += 1;
                    for k in 0..N {
                        off[k] += s[k][a];
                    }
                    if idx[a] < outer[a] {
                        break;
                    }
                    idx[a] = 0;
                    for k in 0..N {
                        off[k] -= s[k][a] * outer[a];
                    }
                }
            }
        });
}

/// Copies the strided view (`offset`, `dims`, `strides`) of `src` into a new contiguous buffer.
pub(super) fn gather(src: &[f32], offset: usize, dims: &[usize], strides: &[usize]) -> Vec<f32> {
    let mut out = vec![0.0; dims.iter().product()];
    if out.is_empty() {
        return out;
    }
    let (d, s) = coalesce(dims, [strides]);
    let r = d.len();
    if r >= 2 && s[0][r - 2] == 1 && s[0][r - 1] > 1 {
        // The last two axes swap which one is contiguous: a transpose, done in tiles.
        let (p, q, sq) = (d[r - 2], d[r - 1], s[0][r - 1]);
        let batch = (&d[..r - 2], &s[0][..r - 2]);
        out.par_chunks_mut(p * q)
            .enumerate()
            .for_each(|(b, block)| {
                let mut base = offset;
                let mut rest = b;
                for (&n, &st) in batch.0.iter().zip(batch.1).rev() {
                    base += (rest % n) * st;
                    rest /= n;
                }
                transpose_block(&src[base..], sq, q, block);
            });
        return out;
    }
    for_each_row(&mut out, dims, [strides], |row, [o], [s]| {
        let o = o + offset;
        match s {
            1 => row.copy_from_slice(&src[o..o + row.len()]),
            0 => row.fill(src[o]),
            s => row
                .iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v = src[o + j * s]),
        }
    });
    out
}

/// `out[i, j] = src[i + j·sq]` for the row-major `out` of `q` columns. Each TI×TJ tile is read
/// by contiguous source runs into a local buffer and written by contiguous output runs, so every
/// cache line is used whole even when power-of-two strides alias in L1, and each source page is
/// visited once per band of TI rows (few TLB misses). Bands go to different threads.
fn transpose_block(src: &[f32], sq: usize, q: usize, out: &mut [f32]) {
    const TI: usize = 64;
    const TJ: usize = 16;
    out.par_chunks_mut(TI * q)
        .with_min_len((GRAIN / (TI * q)).max(1))
        .enumerate()
        .for_each(|(band, rows)| {
            let i0 = band * TI;
            let ni = rows.len() / q;
            let mut buf = [[0f32; TI]; TJ];
            for j0 in (0..q).step_by(TJ) {
                let nj = TJ.min(q - j0);
                for (jj, b) in buf.iter_mut().enumerate().take(nj) {
                    let at = i0 + (j0 + jj) * sq;
                    b[..ni].copy_from_slice(&src[at..at + ni]);
                }
                for (ii, row) in rows.chunks_mut(q).enumerate() {
                    for (jj, o) in row[j0..j0 + nj].iter_mut().enumerate() {
                        *o = buf[jj][ii];
                    }
                }
            }
        });
}

pub fn permute(x: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let (out_dims, strides) = checks::permute(x, dims)?;
    Tensor::from_vec(gather(x.cpu_data()?, 0, &out_dims, &strides), out_dims)
}

pub fn narrow(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let (out_dims, strides, offset) = checks::narrow(x, axis, start, len)?;
    let data = gather(x.cpu_data()?, offset, &out_dims, &strides);
    Tensor::from_vec(data, out_dims)
}

pub fn concat(xs: &[&Tensor], axis: usize) -> Result<Tensor> {
    let (out_dims, axis, outer, inner) = checks::concat(xs, axis)?;
    let row = out_dims[axis] * inner;
    let mut out = vec![0.0; outer * row];
    if out.is_empty() {
        return Tensor::from_vec(out, out_dims);
    }
    let srcs: Vec<(&[f32], usize)> = xs
        .iter()
        .map(|x| Ok((x.cpu_data()?, x.dims()[axis] * inner)))
        .collect::<Result<_>>()?;
    // Each output row (one outer index) is the inputs' rows laid side by side.
    let fill = |o: usize, dst: &mut [f32]| {
        let mut at = 0;
        for &(src, w) in &srcs {
            dst[at..at + w].copy_from_slice(&src[o * w..(o + 1) * w]);
            at += w;
        }
    };
    if outer == 1 {
        fill(0, &mut out);
    } else {
        out.par_chunks_mut(row)
            .with_min_len((GRAIN / row).max(1))
            .enumerate()
            .for_each(|(o, dst)| fill(o, dst));
    }
    Tensor::from_vec(out, out_dims)
}

pub fn broadcast_to(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let strides = broadcast_strides("broadcast_to", x.dims(), shape)?;
    Tensor::from_vec(gather(x.cpu_data()?, 0, shape, &strides), shape.to_vec())
}

pub fn sum_to(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let mask = checks::sum_to_mask(x, shape)?;
    let out = super::reduce::reduce_raw(ReduceOp::Sum, x.cpu_data()?, x.dims(), &mask)?;
    Tensor::from_vec(out, shape.to_vec())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::error::Error;

    /// Row-major multi-index of flat index `i`.
    pub(in crate::backend::cpu) fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
        let mut idx = vec![0; dims.len()];
        for a in (0..dims.len()).rev() {
            idx[a] = i % dims[a];
            i /= dims[a];
        }
        idx
    }

    pub(in crate::backend::cpu) fn ravel(idx: &[usize], dims: &[usize]) -> usize {
        idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
    }

    /// Asserts |got - want| <= atol + rtol·|want| everywhere, printing the worst element.
    pub(in crate::backend::cpu) fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32) {
        assert_eq!(got.len(), want.len(), "length");
        let mut worst = (0usize, 0f32);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            if g == w || (g.is_nan() && w.is_nan()) {
                continue;
            }
            let share = (g - w).abs() / (atol + rtol * w.abs());
            assert!(!share.is_nan(), "element {i}: got {g}, want {w}");
            if share > worst.1 {
                worst = (i, share);
            }
        }
        let (i, share) = worst;
        assert!(
            share <= 1.0,
            "element {i}: got {}, want {} ({share:.2} of the tolerance)",
            got[i],
            want[i]
        );
    }

    fn seq(dims: &[usize]) -> Tensor {
        let n: usize = dims.iter().product();
        Tensor::from_vec((0..n).map(|i| i as f32).collect(), dims.to_vec()).unwrap()
    }

    fn naive_broadcast(x: &Tensor, to: &[usize]) -> Vec<f32> {
        let xd = x.dims();
        let lead = to.len() - xd.len();
        let n: usize = to.iter().product();
        (0..n)
            .map(|i| {
                let o = unravel(i, to);
                let src: Vec<usize> = (0..xd.len())
                    .map(|a| if xd[a] == 1 { 0 } else { o[lead + a] })
                    .collect();
                x.cpu_data().unwrap()[ravel(&src, xd)]
            })
            .collect()
    }

    #[test]
    fn permute_matches_index_arithmetic() {
        for (dims, perm) in [
            (vec![2, 3, 4], vec![2, 0, 1]),
            (vec![3, 1, 5, 2], vec![3, 1, 0, 2]),
            (vec![7, 9], vec![1, 0]),
            (vec![129, 130], vec![1, 0]),
            (vec![3, 17, 33], vec![0, 2, 1]),
            (vec![2, 5, 3, 7], vec![0, 2, 3, 1]),
            (vec![2, 5, 3, 7], vec![0, 3, 1, 2]),
            (vec![1, 40, 1, 3], vec![3, 2, 0, 1]),
            (vec![2, 3], vec![0, 1]),
            (vec![], vec![]),
        ] {
            let x = Tensor::randn(dims.clone(), 0.0, 1.0, 7);
            let y = permute(&x, &perm).unwrap();
            let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
            assert_eq!(y.dims(), &out_dims[..]);
            let want: Vec<f32> = (0..x.numel())
                .map(|i| {
                    let o = unravel(i, &out_dims);
                    let mut src = vec![0; dims.len()];
                    for (a, &p) in perm.iter().enumerate() {
                        src[p] = o[a];
                    }
                    x.cpu_data().unwrap()[ravel(&src, &dims)]
                })
                .collect();
            assert_eq!(y.cpu_data().unwrap(), &want[..]);
        }
    }

    #[test]
    fn permute_rejects_non_permutations() {
        let x = seq(&[2, 3]);
        for bad in [vec![0], vec![0, 0], vec![0, 2], vec![1, 0, 2]] {
            assert!(
                matches!(permute(&x, &bad), Err(Error::Invalid { op: "permute", .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn narrow_picks_the_slice() {
        let x = seq(&[3, 5, 2]);
        let y = narrow(&x, 1, 1, 3).unwrap();
        assert_eq!(y.dims(), &[3, 3, 2]);
        let want: Vec<f32> = (0..18)
            .map(|i| {
                let o = unravel(i, &[3, 3, 2]);
                (o[0] * 10 + (o[1] + 1) * 2 + o[2]) as f32
            })
            .collect();
        assert_eq!(y.cpu_data().unwrap(), &want[..]);
        assert_eq!(narrow(&x, 2, 2, 0).unwrap().dims(), &[3, 5, 0]);
        assert_eq!(
            narrow(&x, 0, 2, 1).unwrap().cpu_data().unwrap(),
            &(20..30).map(|v| v as f32).collect::<Vec<_>>()[..]
        );
        assert!(narrow(&x, 3, 0, 1).is_err());
        assert!(narrow(&x, 1, 4, 2).is_err());
        assert!(narrow(&x, 1, usize::MAX, 2).is_err());
        assert!(narrow(&Tensor::scalar(1.0), 0, 0, 1).is_err());
    }

    #[test]
    fn concat_lays_inputs_side_by_side() {
        let a = seq(&[2, 1, 3]);
        let b = Tensor::randn([2, 4, 3], 0.0, 1.0, 3);
        let c = Tensor::zeros([2, 0, 3]);
        let y = concat(&[&a, &c, &b], 1).unwrap();
        assert_eq!(y.dims(), &[2, 5, 3]);
        for i in 0..y.numel() {
            let o = unravel(i, &[2, 5, 3]);
            let want = if o[1] == 0 {
                a.cpu_data().unwrap()[ravel(&[o[0], 0, o[2]], &[2, 1, 3])]
            } else {
                b.cpu_data().unwrap()[ravel(&[o[0], o[1] - 1, o[2]], &[2, 4, 3])]
            };
            assert_eq!(y.cpu_data().unwrap()[i], want);
        }
        let y0 = concat(&[&a, &a], 0).unwrap();
        assert_eq!(y0.dims(), &[4, 1, 3]);
        assert_eq!(&y0.cpu_data().unwrap()[6..], a.cpu_data().unwrap());
        // Large enough to take the parallel path.
        let big = Tensor::randn([300, 70], 0.0, 1.0, 1);
        let yb = concat(&[&big, &big], 1).unwrap();
        assert_eq!(
            &yb.cpu_data().unwrap()[140 * 299 + 70..140 * 300],
            &big.cpu_data().unwrap()[70 * 299..]
        );
    }

    #[test]
    fn concat_errors() {
        let a = seq(&[2, 3]);
        assert!(matches!(concat(&[], 0), Err(Error::Invalid { .. })));
        assert!(matches!(
            concat(&[&a, &seq(&[3, 3])], 1),
            Err(Error::Shape { op: "concat", .. })
        ));
        assert!(matches!(
            concat(&[&a, &seq(&[2, 3, 1])], 0),
            Err(Error::Shape { .. })
        ));
        assert!(concat(&[&a, &a], 2).is_err());
    }

    #[test]
    fn broadcast_to_repeats_and_prepends() {
        for (from, to) in [
            (vec![3, 1], vec![2, 3, 5]),
            (vec![1], vec![4, 1, 3]),
            (vec![], vec![2, 2]),
            (vec![2, 1, 3], vec![2, 5, 3]),
            (vec![1, 7], vec![7, 7]),
            (vec![1, 1], vec![0, 3]),
            (vec![300, 1], vec![300, 200]),
        ] {
            let x = Tensor::randn(from.clone(), 0.0, 1.0, 11);
            let y = broadcast_to(&x, &to).unwrap();
            assert_eq!(y.dims(), &to[..]);
            assert_eq!(
                y.cpu_data().unwrap(),
                &naive_broadcast(&x, &to)[..],
                "{from:?} -> {to:?}"
            );
        }
        assert!(broadcast_to(&seq(&[2, 3]), &[3]).is_err());
        assert!(broadcast_to(&seq(&[2, 3]), &[4, 3]).is_err());
    }

    #[test]
    fn sum_to_is_the_adjoint_of_broadcast_to() {
        // <broadcast(x), g> == <x, sum_to(g)> for random x and g.
        for (small, big) in [
            (vec![3, 1], vec![2, 3, 5]),
            (vec![1], vec![4, 1, 3]),
            (vec![], vec![2, 2]),
            (vec![2, 1, 3], vec![2, 5, 3]),
            (vec![1, 1, 9], vec![3, 200, 9]),
            (vec![5, 1], vec![5, 1]),
        ] {
            let x = Tensor::randn(small.clone(), 0.0, 1.0, 1);
            let g = Tensor::randn(big.clone(), 0.0, 1.0, 2);
            let s = sum_to(&g, &small).unwrap();
            assert_eq!(s.dims(), &small[..]);
            let lhs: f64 = naive_broadcast(&x, &big)
                .iter()
                .zip(g.cpu_data().unwrap())
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            let rhs: f64 = x
                .cpu_data()
                .unwrap()
                .iter()
                .zip(s.cpu_data().unwrap())
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()),
                "{small:?} <- {big:?}: {lhs} vs {rhs}"
            );
        }
        assert_eq!(
            sum_to(&Tensor::zeros([0, 3]), &[1, 3])
                .unwrap()
                .cpu_data()
                .unwrap(),
            &[0.0; 3]
        );
        assert!(matches!(
            sum_to(&seq(&[2, 3]), &[2]),
            Err(Error::Shape { op: "sum_to", .. })
        ));
        assert!(sum_to(&seq(&[3]), &[1, 3]).is_err());
    }
}
