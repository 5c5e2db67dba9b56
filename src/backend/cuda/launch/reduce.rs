//! Reduction launchers: sum / mean / max over any axes, the max backward, and the plan that
//! turns (dims, reduced-axis mask) into the kernels' kept/reduced index groups.

use super::*;
use crate::backend::ReduceOp;

/// The arguments of one reduction and which kernel suits it.
#[derive(Clone, Copy, Debug)]
pub struct ReducePlan {
    pub args: ReduceArgs,
    /// `*_block_f32` (a block per output; the innermost reduced axis is contiguous and long
    /// enough) rather than `*_thread_f32`.
    pub block: bool,
}

/// Plans reducing the contiguous x of `dims` over the axes flagged in `mask`: adjacent axes of
/// the same role merge (1-sized axes play no role), outputs are row-major over the kept axes.
/// A mean scales by 1/(reduced count); `count` must be non-zero for a mean.
pub fn reduce_plan(op: ReduceOp, dims: &[usize], mask: &[bool]) -> Result<ReducePlan> {
    let mut groups: Vec<(usize, bool)> = Vec::new();
    for (&d, &m) in dims.iter().zip(mask).filter(|(&d, _)| d != 1) {
        match groups.last_mut() {
            Some(g) if g.1 == m => g.0 *= d,
            _ => groups.push((d, m)),
        }
    }
    let mut stride = 1usize;
    let (mut kept, mut red): (Vec<(usize, usize)>, Vec<(usize, usize)>) = (vec![], vec![]);
    for &(d, m) in groups.iter().rev() {
        if m { &mut red } else { &mut kept }.push((d, stride));
        stride *= d;
    }
    kept.reverse();
    red.reverse();
    if kept.len() > MAX_RANK || red.len() > MAX_RANK {
        return Err(Error::invalid(
            "reduce",
            format!("{dims:?} alternates kept and reduced axes more than {MAX_RANK} times"),
        ));
    }
    let out_n: usize = kept.iter().map(|g| g.0).product();
    let red_n: usize = red.iter().map(|g| g.0).product();
    let mut a = ReduceArgs {
        out_n: out_n as i64,
        red_n: red_n as i64,
        kept_rank: kept.len() as i32,
        red_rank: red.len() as i32,
        op: reduce_code(op),
        scale: if op == ReduceOp::Mean {
            (1.0 / red_n.max(1) as f64) as f32
        } else {
            1.0
        },
        ..Default::default()
    };
    for (i, &(d, s)) in kept.iter().enumerate() {
        a.kept_dims[i] = d as i64;
        a.kept_strides[i] = s as i64;
    }
    for (i, &(d, s)) in red.iter().enumerate() {
        a.red_dims[i] = d as i64;
        a.red_strides[i] = s as i64;
    }
    // A block per output pays off when its threads read a contiguous run, or when there are
    // too few outputs to give every thread one.
    let inner_reduced = groups.last().is_some_and(|g| g.1);
    let block = (inner_reduced && red_n >= 32) || (out_n < 2048 && red_n >= 256);
    Ok(ReducePlan { args: a, block })
}

pub fn reduce(gpu: &Gpu, p: &ReducePlan, x: &CudaSlice<f32>, y: &mut CudaSlice<f32>) -> Result<()> {
    let n = p.args.out_n as u64;
    if p.block {
        launch!(gpu, "reduce_block_f32", cfg_rows(n), &p.args, x, y)
    } else {
        launch!(gpu, "reduce_thread_f32", cfg_elems(n), &p.args, x, y)
    }
}

/// dx of a max: dy shared among the tied maxima of each group (x, dx of the planned layout;
/// y, dy of `out_n` elements).
pub fn reduce_max_backward(
    gpu: &Gpu,
    p: &ReducePlan,
    (x, y, dy): (&CudaSlice<f32>, &CudaSlice<f32>, &CudaSlice<f32>),
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = p.args.out_n as u64;
    if p.block {
        let sym = "reduce_max_backward_block_f32";
        launch!(gpu, sym, cfg_rows(n), &p.args, x, y, dy, dx)
    } else {
        let sym = "reduce_max_backward_thread_f32";
        launch!(gpu, sym, cfg_elems(n), &p.args, x, y, dy, dx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the reduce kernels compute from the plan (sums in f64, as they do).
    fn emulate(p: &ReducePlan, x: &[f32]) -> Vec<f32> {
        let a = &p.args;
        let off = |mut i: i64, rank: i32, dims: &[i64], strides: &[i64]| {
            let mut o = 0;
            for d in (0..rank as usize).rev() {
                o += (i % dims[d]) * strides[d];
                i /= dims[d];
            }
            o
        };
        (0..a.out_n)
            .map(|o| {
                let base = off(o, a.kept_rank, &a.kept_dims, &a.kept_strides);
                let vals = (0..a.red_n)
                    .map(|r| x[(base + off(r, a.red_rank, &a.red_dims, &a.red_strides)) as usize]);
                if a.op == REDUCE_MAX {
                    vals.fold(f32::NEG_INFINITY, f32::max)
                } else {
                    let s: f64 = vals.map(|v| v as f64).sum();
                    (s * a.scale as f64) as f32
                }
            })
            .collect()
    }

    /// Reference: accumulate every element into its keepdim output.
    fn naive(op: ReduceOp, dims: &[usize], mask: &[bool], x: &[f32]) -> Vec<f32> {
        let kd: Vec<usize> = dims
            .iter()
            .zip(mask)
            .map(|(&d, &m)| if m { 1 } else { d })
            .collect();
        let n_out: usize = kd.iter().product();
        let count: usize = dims
            .iter()
            .zip(mask)
            .filter(|(_, &m)| m)
            .map(|(d, _)| d)
            .product();
        let mut acc = vec![
            if op == ReduceOp::Max {
                f64::NEG_INFINITY
            } else {
                0.0
            };
            n_out
        ];
        for (i, &v) in x.iter().enumerate() {
            let (mut rest, mut o, mut mul) = (i, 0, 1);
            for a in (0..dims.len()).rev() {
                let idx = rest % dims[a];
                rest /= dims[a];
                if !mask[a] {
                    o += idx * mul;
                    mul *= dims[a];
                }
            }
            acc[o] = if op == ReduceOp::Max {
                acc[o].max(v as f64)
            } else {
                acc[o] + v as f64
            };
        }
        acc.iter()
            .map(|&s| {
                if op == ReduceOp::Mean {
                    (s / count as f64) as f32
                } else {
                    s as f32
                }
            })
            .collect()
    }

    #[test]
    fn plans_reduce_the_flagged_axes() {
        let cases: Vec<(Vec<usize>, Vec<bool>)> = vec![
            (vec![3, 5, 7], vec![false, true, false]),
            (vec![3, 5, 7], vec![true, false, true]),
            (vec![3, 5, 7], vec![true, true, true]),
            (vec![3, 5, 7], vec![false, false, true]),
            (vec![3, 1, 7], vec![false, true, false]),
            (vec![2, 3, 1, 4, 5], vec![true, false, true, false, true]),
            (vec![1, 1], vec![true, false]),
            (vec![300, 2], vec![true, false]),
            (vec![4, 1000], vec![false, true]),
            (vec![], vec![]),
        ];
        for (dims, mask) in cases {
            let n: usize = dims.iter().product();
            let x: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
            for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
                let p = reduce_plan(op, &dims, &mask).unwrap();
                let (got, want) = (emulate(&p, &x), naive(op, &dims, &mask, &x));
                assert_eq!(got.len(), want.len(), "{dims:?} {mask:?}");
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                        "{op:?} {dims:?} {mask:?}: {g} vs {w}"
                    );
                }
            }
        }
        let p = reduce_plan(ReduceOp::Sum, &[4, 1000], &[false, true]).unwrap();
        assert!(p.block, "contiguous inner reduction");
        let p = reduce_plan(ReduceOp::Sum, &[1000, 4096], &[true, false]).unwrap();
        assert!(!p.block, "contiguous inner kept axis");
        let deep = vec![2usize; 18];
        let alt: Vec<bool> = (0..18).map(|i| i % 2 == 0).collect();
        assert!(reduce_plan(ReduceOp::Sum, &deep, &alt).is_err());
    }
}
