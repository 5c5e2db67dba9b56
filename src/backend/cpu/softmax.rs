//! Softmax over the last axis, one row per task chunk; stable (the row max is subtracted first).

use super::layout::GRAIN;
use crate::backend::checks::same_shape;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

fn softmax_row(x: &[f32], y: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f64;
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (v - max).exp();
        sum += *o as f64;
    }
    let inv = (1.0 / sum) as f32;
    y.iter_mut().for_each(|o| *o *= inv);
}

pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let len = x.dims().last().copied().unwrap_or(1);
    let xd = x.cpu_data()?;
    let mut out = vec![0.0; xd.len()];
    if !out.is_empty() {
        out.par_chunks_mut(len)
            .zip(xd.par_chunks(len))
            .with_min_len((GRAIN / len).max(1))
            .for_each(|(y, x)| softmax_row(x, y));
    }
    Tensor::from_vec(out, x.shape().clone())
}

pub fn softmax_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    same_shape("softmax_backward", y, dy)?;
    let len = y.dims().last().copied().unwrap_or(1);
    let (yd, gd) = (y.cpu_data()?, dy.cpu_data()?);
    let mut dx = vec![0.0; yd.len()];
    if !dx.is_empty() {
        dx.par_chunks_mut(len)
            .zip(yd.par_chunks(len).zip(gd.par_chunks(len)))
            .with_min_len((GRAIN / len).max(1))
            .for_each(|(dx, (y, g))| {
                let dot = y
                    .iter()
                    .zip(g)
                    .map(|(&y, &g)| y as f64 * g as f64)
                    .sum::<f64>() as f32;
                dx.iter_mut()
                    .zip(y.iter().zip(g))
                    .for_each(|(d, (&y, &g))| *d = y * (g - dot));
            });
    }
    Tensor::from_vec(dx, y.shape().clone())
}

#[cfg(test)]
mod tests {
    use super::super::layout::tests::assert_close;
    use super::*;
    use crate::error::Error;

    fn naive(x: &[f32], len: usize) -> Vec<f32> {
        x.chunks(len)
            .flat_map(|r| {
                let m = r.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let e: Vec<f64> = r.iter().map(|&v| (v as f64 - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(move |v| (v / s) as f32)
            })
            .collect()
    }

    #[test]
    fn softmax_matches_naive_rows() {
        for dims in [
            vec![3, 7],
            vec![2, 3, 4096],
            vec![5, 1],
            vec![1, 1, 13],
            vec![9],
            vec![700, 3],
        ] {
            let x = Tensor::randn(dims.clone(), 0.0, 4.0, 6);
            let y = softmax(&x).unwrap();
            let len = *dims.last().unwrap();
            assert_close(
                y.cpu_data().unwrap(),
                &naive(x.cpu_data().unwrap(), len),
                1e-6,
                1e-4,
            );
        }
        let s = softmax(&Tensor::scalar(-3.0)).unwrap();
        assert_eq!((s.rank(), s.item().unwrap()), (0, 1.0));
        assert_eq!(softmax(&Tensor::zeros([3, 0])).unwrap().dims(), &[3, 0]);
    }

    #[test]
    fn softmax_is_stable_for_large_inputs() {
        let x = Tensor::from_vec(vec![1000.0, 1000.0, -1000.0, 5e30], [2, 2]).unwrap();
        let y = softmax(&x).unwrap().to_vec().unwrap();
        assert_eq!(y, vec![0.5, 0.5, 0.0, 1.0]);
    }

    #[test]
    fn backward_matches_jacobian_product() {
        for dims in [vec![4, 6], vec![2, 4096], vec![3, 1]] {
            let y = softmax(&Tensor::randn(dims.clone(), 0.0, 1.0, 1)).unwrap();
            let dy = Tensor::randn(dims.clone(), 0.0, 1.0, 2);
            let dx = softmax_backward(&y, &dy).unwrap();
            let len = *dims.last().unwrap();
            // dx_i = Σ_j J_ji dy_j with J_ji = y_j (δ_ij − y_i).
            let (yd, gd) = (y.cpu_data().unwrap(), dy.cpu_data().unwrap());
            let mut want = vec![0f32; yd.len()];
            for r in 0..yd.len() / len {
                let (yr, gr) = (&yd[r * len..(r + 1) * len], &gd[r * len..(r + 1) * len]);
                for i in 0..len {
                    let s: f64 = (0..len)
                        .map(|j| {
                            yr[j] as f64
                                * (if i == j { 1.0 } else { 0.0 } - yr[i] as f64)
                                * gr[j] as f64
                        })
                        .sum();
                    want[r * len + i] = s as f32;
                }
            }
            assert_close(dx.cpu_data().unwrap(), &want, 1e-6, 1e-4);
        }
        let e = softmax_backward(&Tensor::zeros([2, 3]), &Tensor::zeros([3, 2]));
        assert!(matches!(
            e,
            Err(Error::Shape {
                op: "softmax_backward",
                ..
            })
        ));
    }
}
