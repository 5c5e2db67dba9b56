//! Symmetric eigen-decomposition in f64 for the FID: Householder tridiagonalisation (A = Q T Qᵀ),
//! then implicit QL with Wilkinson shifts on T, the plane rotations accumulated into Q.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// Eigenvalues of the symmetric matrix `a` (row-major n×n; only symmetric input is meaningful)
/// and, if asked, its orthonormal eigenvectors as the rows of an n×n matrix (row k pairs with
/// eigenvalue k). Unsorted.
pub fn sym_eigen(a: &[f64], n: usize, vectors: bool) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
    if n == 0 || a.len() != n * n {
        return Err(Error::shape(
            "sym_eigen",
            format!("{} values for a {n}×{n} matrix", a.len()),
        ));
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("sym_eigen", "matrix has non-finite values"));
    }
    let (mut d, mut e, q) = tridiagonalise(a, n, vectors);
    // Q's columns are rotated along with the QL sweeps into A's eigenvectors.
    let mut z = q;
    tridiagonal_ql(&mut d, &mut e, z.as_mut())?;
    Ok((d, z.map(|z| transpose(&z, n))))
}

fn transpose(a: &[f64], n: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            t[j * n + i] = a[i * n + j];
        }
    }
    t
}

/// Householder reduction A = Q T Qᵀ: T's diagonal, subdiagonal (e[i] couples i and i+1; e[n−1] =
/// 0) and, if asked, Q (row-major).
fn tridiagonalise(a: &[f64], n: usize, vectors: bool) -> (Vec<f64>, Vec<f64>, Option<Vec<f64>>) {
    let mut a = a.to_vec();
    let mut e = vec![0.0f64; n];
    let mut q = vectors.then(|| {
        let mut q = vec![0.0f64; n * n];
        (0..n).for_each(|i| q[i * n + i] = 1.0);
        q
    });
    for k in 0..n.saturating_sub(2) {
        let lo = k + 1;
        let x: Vec<f64> = (lo..n).map(|i| a[i * n + k]).collect();
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        // Reflect x onto ∓|x|·e₁, choosing the sign that avoids cancellation.
        let alpha = if x[0] > 0.0 { -norm } else { norm };
        let mut v = x;
        v[0] -= alpha;
        let vn = v.iter().map(|t| t * t).sum::<f64>().sqrt();
        if norm == 0.0 || vn == 0.0 {
            e[k] = a[lo * n + k];
            continue;
        }
        v.iter_mut().for_each(|t| *t /= vn);
        e[k] = alpha;
        // A₂₂ ← H A₂₂ H = A₂₂ − 2(v qᵀ + q vᵀ), p = A₂₂ v, q = p − (vᵀp) v.
        let p: Vec<f64> = (lo..n)
            .into_par_iter()
            .map(|i| {
                a[i * n + lo..(i + 1) * n]
                    .iter()
                    .zip(&v)
                    .map(|(x, y)| x * y)
                    .sum()
            })
            .collect();
        let kk: f64 = v.iter().zip(&p).map(|(x, y)| x * y).sum();
        let qv: Vec<f64> = p.iter().zip(&v).map(|(p, v)| p - kk * v).collect();
        a.par_chunks_mut(n)
            .skip(lo)
            .enumerate()
            .for_each(|(r, row)| {
                for (c, x) in row[lo..].iter_mut().enumerate() {
                    *x -= 2.0 * (v[r] * qv[c] + qv[r] * v[c]);
                }
            });
        // Q ← Q H on columns lo..n.
        if let Some(q) = q.as_mut() {
            q.par_chunks_mut(n).for_each(|row| {
                let dot: f64 = row[lo..].iter().zip(&v).map(|(x, y)| x * y).sum();
                for (x, y) in row[lo..].iter_mut().zip(&v) {
                    *x -= 2.0 * dot * y;
                }
            });
        }
    }
    if n >= 2 {
        e[n - 2] = a[(n - 1) * n + n - 2];
    }
    let d = (0..n).map(|i| a[i * n + i]).collect();
    (d, e, q)
}

/// Implicit QL with Wilkinson shifts on the tridiagonal (d, e): d becomes the eigenvalues; each
/// plane rotation is also applied to columns i, i+1 of `z` (row-major; eigenvectors as columns).
fn tridiagonal_ql(d: &mut [f64], e: &mut [f64], mut z: Option<&mut Vec<f64>>) -> Result<()> {
    let n = d.len();
    // Couplings are negligible relative to the matrix norm, not to their neighbours: a cluster of
    // (near-)zero eigenvalues, as in a covariance of fewer samples than dimensions, would
    // otherwise never split.
    let norm = (0..n).fold(0.0f64, |m, i| m.max(d[i].abs() + e[i].abs()));
    let mut rotations: Vec<(usize, f64, f64)> = Vec::with_capacity(n);
    for l in 0..n {
        let mut iterations = 0;
        loop {
            // The first negligible coupling at or below l splits off the block l..=m.
            let mut m = l;
            while m + 1 < n {
                let scale = (d[m].abs() + d[m + 1].abs()).max(norm);
                if e[m].abs() <= f64::EPSILON * scale {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iterations += 1;
            if iterations > 60 {
                return Err(Error::invalid("sym_eigen", "QL iteration did not converge"));
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0f64, 1.0f64, 0.0f64);
            let mut deflated = false;
            rotations.clear();
            for i in (l..m).rev() {
                let f = s * e[i];
                let b = c * e[i];
                let r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    // Underflow: the block splits at i + 1; retry from l.
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    deflated = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                let t = (d[i] - g) * s + 2.0 * c * b;
                p = s * t;
                d[i + 1] = g + p;
                g = c * t - b;
                rotations.push((i, c, s));
            }
            if let Some(z) = z.as_deref_mut() {
                apply_sweep(z, n, &rotations);
            }
            if deflated {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
    Ok(())
}

/// Columns i and i+1 of `z` ← each plane rotation of one QL sweep, in order. Rows are
/// independent, and within a row the sweep is one pass over contiguous memory.
fn apply_sweep(z: &mut [f64], n: usize, rotations: &[(usize, f64, f64)]) {
    if rotations.is_empty() {
        return;
    }
    z.par_chunks_mut(n).for_each(|row| {
        for &(i, c, s) in rotations {
            let (x, f) = (row[i], row[i + 1]);
            row[i + 1] = s * x + c * f;
            row[i] = c * x - s * f;
        }
    });
}

/// A deterministic pseudo-random stream in [-1, 1), for the tests here and in `fid`.
#[cfg(test)]
pub(super) fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_decomposition_reconstructs_awkward_matrices() {
        for (n, seed) in [(1, 1), (2, 2), (3, 3), (5, 4), (17, 5), (64, 6)] {
            let r = noise(n * n, seed);
            let a: Vec<f64> = (0..n * n)
                .map(|k| {
                    let (i, j) = (k / n, k % n);
                    r[i.min(j) * n + i.max(j)]
                })
                .collect();
            let (lam, v) = sym_eigen(&a, n, true).unwrap();
            let v = v.unwrap();
            for k in 0..n {
                let vk = &v[k * n..(k + 1) * n];
                for i in 0..n {
                    let av: f64 = (0..n).map(|j| a[i * n + j] * vk[j]).sum();
                    assert!((av - lam[k] * vk[i]).abs() < 1e-10, "n={n}: A v ≠ λ v");
                }
                for l in 0..n {
                    let dot: f64 = vk
                        .iter()
                        .zip(&v[l * n..(l + 1) * n])
                        .map(|(x, y)| x * y)
                        .sum();
                    let want = if k == l { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-10, "n={n}: not orthonormal");
                }
            }
            // Eigenvalues alone agree with the full decomposition.
            let (mut l2, none) = sym_eigen(&a, n, false).unwrap();
            assert!(none.is_none());
            let mut l1 = lam.clone();
            l1.sort_by(f64::total_cmp);
            l2.sort_by(f64::total_cmp);
            for (x, y) in l1.iter().zip(&l2) {
                assert!((x - y).abs() < 1e-10);
            }
        }
        // Already diagonal and repeated eigenvalues.
        let (lam, _) = sym_eigen(&[2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 2.0], 3, true).unwrap();
        assert!(lam.iter().all(|l| (l - 2.0).abs() < 1e-15));
        assert!(sym_eigen(&[1.0, 2.0], 2, false).is_err());
        assert!(sym_eigen(&[], 0, false).is_err());
        assert!(sym_eigen(&[f64::NAN], 1, false).is_err());
    }
}
