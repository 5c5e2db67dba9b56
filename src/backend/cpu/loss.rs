//! Mean L1 and mean squared error, with f64 accumulation; backward is w.r.t. `a`.

use super::layout::GRAIN;
use crate::backend::checks;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

fn inputs<'a>(op: &'static str, a: &'a Tensor, b: &'a Tensor) -> Result<(&'a [f32], &'a [f32])> {
    checks::loss(op, a, b)?;
    Ok((a.cpu_data()?, b.cpu_data()?))
}

/// mean f(a − b) as a shape-[] tensor.
fn mean_of(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(f64) -> f64 + Sync,
) -> Result<Tensor> {
    let (ad, bd) = inputs(op, a, b)?;
    let sum: f64 = ad
        .par_chunks(GRAIN)
        .zip(bd.par_chunks(GRAIN))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(&p, &q)| f(p as f64 - q as f64))
                .sum::<f64>()
        })
        .sum();
    Ok(Tensor::scalar((sum / ad.len() as f64) as f32))
}

/// scale · g(a − b) elementwise.
fn grad_of(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
    g: impl Fn(f32) -> f32 + Sync + Send,
) -> Result<Tensor> {
    let (ad, bd) = inputs(op, a, b)?;
    let s = (scale / ad.len() as f64) as f32;
    let out = ad
        .par_iter()
        .zip(bd)
        .with_min_len(GRAIN)
        .map(|(&p, &q)| s * g(p - q))
        .collect();
    Tensor::from_vec(out, a.shape().clone())
}

fn sign(d: f32) -> f32 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

pub fn l1_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    mean_of("l1_loss", a, b, f64::abs)
}

pub fn l1_loss_backward(a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor> {
    grad_of("l1_loss_backward", a, b, dloss as f64, sign)
}

pub fn mse_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    mean_of("mse_loss", a, b, |d| d * d)
}

pub fn mse_loss_backward(a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor> {
    grad_of("mse_loss_backward", a, b, 2.0 * dloss as f64, |d| d)
}

#[cfg(test)]
mod tests {
    use super::super::layout::tests::assert_close;
    use super::*;
    use crate::error::Error;

    #[test]
    fn losses_match_naive_sums() {
        for dims in [vec![3, 5], vec![1], vec![2, 1, 70_001]] {
            let a = Tensor::randn(dims.clone(), 0.0, 1.0, 1);
            let b = Tensor::randn(dims.clone(), 0.0, 1.0, 2);
            let (ad, bd) = (a.cpu_data().unwrap(), b.cpu_data().unwrap());
            let n = ad.len() as f64;
            let l1: f64 = ad
                .iter()
                .zip(bd)
                .map(|(&p, &q)| (p as f64 - q as f64).abs())
                .sum::<f64>()
                / n;
            let l2: f64 = ad
                .iter()
                .zip(bd)
                .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
                .sum::<f64>()
                / n;
            let y1 = l1_loss(&a, &b).unwrap();
            assert_eq!(y1.rank(), 0);
            assert_close(&[y1.item().unwrap()], &[l1 as f32], 0.0, 1e-6);
            assert_close(
                &[mse_loss(&a, &b).unwrap().item().unwrap()],
                &[l2 as f32],
                0.0,
                1e-6,
            );
            let g1: Vec<f32> = ad
                .iter()
                .zip(bd)
                .map(|(&p, &q)| (0.5 * (p - q).signum() as f64 / n) as f32)
                .collect();
            let g2: Vec<f32> = ad
                .iter()
                .zip(bd)
                .map(|(&p, &q)| (0.5 * 2.0 * (p - q) as f64 / n) as f32)
                .collect();
            assert_close(
                l1_loss_backward(&a, &b, 0.5).unwrap().cpu_data().unwrap(),
                &g1,
                0.0,
                1e-6,
            );
            assert_close(
                mse_loss_backward(&a, &b, 0.5).unwrap().cpu_data().unwrap(),
                &g2,
                1e-12,
                1e-5,
            );
        }
    }

    #[test]
    fn l1_gradient_is_zero_where_equal() {
        let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap();
        let b = Tensor::from_vec(vec![1.0, 3.0, 1.0, 4.0], [2, 2]).unwrap();
        assert_eq!(
            l1_loss_backward(&a, &b, 4.0).unwrap().to_vec().unwrap(),
            vec![0.0, -1.0, 1.0, 0.0]
        );
        assert_eq!(l1_loss(&a, &b).unwrap().item().unwrap(), 0.75);
    }

    #[test]
    fn errors() {
        let (a, b) = (Tensor::zeros([2, 3]), Tensor::zeros([3, 2]));
        assert!(matches!(
            l1_loss(&a, &b),
            Err(Error::Shape { op: "l1_loss", .. })
        ));
        assert!(matches!(
            mse_loss_backward(&a, &b, 1.0),
            Err(Error::Shape { .. })
        ));
        let e = Tensor::zeros([0]);
        assert!(matches!(
            mse_loss(&e, &e),
            Err(Error::Invalid { op: "mse_loss", .. })
        ));
        assert!(l1_loss_backward(&e, &e, 1.0).is_err());
    }
}
