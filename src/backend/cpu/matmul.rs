#![allow(unused_variables)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

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
            m, k, n, 1.0, a.as_ptr(), rsa as isize, csa as isize, b.as_ptr(), rsb as isize, csb as isize, beta,
            c.as_mut_ptr(), rsc as isize, csc as isize,
        );
    }
}

pub fn matmul(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    todo!("matmul")
}
