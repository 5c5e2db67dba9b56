//! Batched matrix products on the GEMM crate: transposes become strides, never copies.

use crate::backend::checks;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// C = op(A)·op(B) + beta·C on raw slices with explicit row/column strides (in elements), so
/// transposes cost nothing. Bounds are the caller's contract; checked in debug builds.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(k == 0 || a.len() > (m - 1) * rsa + (k - 1) * csa);
    debug_assert!(k == 0 || b.len() > (k - 1) * rsb + (n - 1) * csb);
    debug_assert!(c.len() > (m - 1) * rsc + (n - 1) * csc);
    // SAFETY: the asserted extents keep every access inside the three slices.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// Below this `m·k + k·n` the GEMM crate runs single-threaded, so a batch is better spread across
/// rayon; above it the crate threads each product itself.
const GEMM_THREADS_AT: usize = 1 << 15;

pub fn matmul(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    let (batch_dims, [m, k, n]) = checks::matmul(a, b, trans_a, trans_b)?;
    let (ra, rb) = (a.rank(), b.rank());
    let batch: usize = batch_dims.iter().product();
    let mut out_dims = batch_dims;
    out_dims.extend([m, n]);
    let mut out = vec![0.0; batch * m * n];
    if out.is_empty() || k == 0 {
        return Tensor::from_vec(out, out_dims);
    }
    let (xa, xb) = (a.cpu_data()?, b.cpu_data()?);
    // Row and column strides of op(A) [m, k] and op(B) [k, n] in their stored layouts.
    let sa = if trans_a { (1, m) } else { (k, 1) };
    let sb = if trans_b { (1, k) } else { (n, 1) };
    if rb == 2 && !trans_a {
        // A's batch folds into its rows: one tall product suits the GEMM crate best.
        sgemm(batch * m, k, n, xa, sa, xb, sb, 0.0, &mut out, (n, 1));
        return Tensor::from_vec(out, out_dims);
    }
    let step_a = if ra == 2 { 0 } else { m * k };
    let step_b = if rb == 2 { 0 } else { k * n };
    let one = |i: usize, c: &mut [f32]| {
        sgemm(
            m,
            k,
            n,
            &xa[i * step_a..],
            sa,
            &xb[i * step_b..],
            sb,
            0.0,
            c,
            (n, 1),
        );
    };
    if batch == 1 || (m * k + k * n >= GEMM_THREADS_AT && batch < rayon::current_num_threads()) {
        out.chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, c)| one(i, c));
    } else {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, c)| one(i, c));
    }
    Tensor::from_vec(out, out_dims)
}

#[cfg(test)]
mod tests {
    use super::super::layout::tests::assert_close;
    use super::*;
    use crate::error::Error;

    /// Triple loop over stored layouts, batch by batch (a rank-2 operand is reused).
    fn naive(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Vec<f32> {
        let (ad, bd) = (a.dims(), b.dims());
        let (ra, rb) = (ad.len(), bd.len());
        let (m, k) = if ta {
            (ad[ra - 1], ad[ra - 2])
        } else {
            (ad[ra - 2], ad[ra - 1])
        };
        let n = if tb { bd[rb - 2] } else { bd[rb - 1] };
        let batch = (a.numel() / (m * k).max(1)).max(b.numel() / (k * n).max(1));
        let (xa, xb) = (a.cpu_data().unwrap(), b.cpu_data().unwrap());
        let mut out = vec![0f32; batch * m * n];
        for p in 0..batch {
            let oa = if ra == 2 { 0 } else { p * m * k };
            let ob = if rb == 2 { 0 } else { p * k * n };
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0f64;
                    for l in 0..k {
                        let av = if ta {
                            xa[oa + l * m + i]
                        } else {
                            xa[oa + i * k + l]
                        };
                        let bv = if tb {
                            xb[ob + j * k + l]
                        } else {
                            xb[ob + l * n + j]
                        };
                        s += av as f64 * bv as f64;
                    }
                    out[p * m * n + i * n + j] = s as f32;
                }
            }
        }
        out
    }

    fn stored(batch: &[usize], rows: usize, cols: usize, trans: bool) -> Vec<usize> {
        let mut d = batch.to_vec();
        d.extend(if trans { [cols, rows] } else { [rows, cols] });
        d
    }

    #[test]
    fn matmul_matches_triple_loop() {
        type Case<'a> = (&'a [usize], &'a [usize], usize, usize, usize);
        let shapes: [Case; 7] = [
            (&[], &[], 3, 5, 7),
            (&[2, 3], &[2, 3], 4, 1, 6),
            (&[5], &[], 7, 9, 3),
            (&[], &[4], 1, 8, 5),
            (&[3], &[3], 33, 65, 17),
            (&[], &[], 1, 1, 1),
            (&[2], &[2], 130, 140, 150),
        ];
        for (ba, bb, m, k, n) in shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = Tensor::randn(stored(ba, m, k, ta), 0.0, 1.0, 1);
                let b = Tensor::randn(stored(bb, k, n, tb), 0.0, 1.0, 2);
                let y = matmul(&a, &b, ta, tb).unwrap();
                let mut dims = if ba.len() >= bb.len() {
                    ba.to_vec()
                } else {
                    bb.to_vec()
                };
                dims.extend([m, n]);
                assert_eq!(y.dims(), &dims[..]);
                assert_close(y.cpu_data().unwrap(), &naive(&a, &b, ta, tb), 1e-4, 1e-4);
            }
        }
    }

    #[test]
    fn large_batches_take_the_parallel_path() {
        let a = Tensor::randn([64, 8, 12], 0.0, 1.0, 3);
        let b = Tensor::randn([64, 10, 12], 0.0, 1.0, 4);
        let y = matmul(&a, &b, false, true).unwrap();
        assert_close(
            y.cpu_data().unwrap(),
            &naive(&a, &b, false, true),
            1e-4,
            1e-4,
        );
    }

    #[test]
    fn zero_sizes() {
        let y = matmul(&Tensor::zeros([3, 0]), &Tensor::zeros([0, 4]), false, false).unwrap();
        assert_eq!(
            (y.dims(), y.to_vec().unwrap()),
            (&[3usize, 4][..], vec![0.0; 12])
        );
        let y = matmul(
            &Tensor::zeros([0, 2, 3]),
            &Tensor::zeros([3, 4]),
            false,
            false,
        )
        .unwrap();
        assert_eq!(y.dims(), &[0, 2, 4]);
        let y = matmul(
            &Tensor::ones([2, 0, 3]),
            &Tensor::ones([2, 3, 4]),
            false,
            false,
        )
        .unwrap();
        assert_eq!(y.dims(), &[2, 0, 4]);
    }

    #[test]
    fn shape_errors() {
        let e = |a: &[usize], b: &[usize], ta, tb| {
            matches!(
                matmul(
                    &Tensor::zeros(a.to_vec()),
                    &Tensor::zeros(b.to_vec()),
                    ta,
                    tb
                ),
                Err(Error::Shape { op: "matmul", .. })
            )
        };
        assert!(e(&[3], &[3, 4], false, false));
        assert!(e(&[2, 3], &[4, 5], false, false));
        assert!(e(&[2, 3], &[3, 5], true, false));
        assert!(e(&[2, 3], &[5, 3], false, false));
        assert!(e(&[2, 2, 3], &[3, 3, 4], false, false));
        assert!(e(&[2, 1, 2, 3], &[2, 3, 4], false, false));
        assert!(!e(&[2, 3], &[5, 3], false, true));
    }
}
