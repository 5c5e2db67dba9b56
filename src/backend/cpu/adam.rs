//! One Adam / AdamW step in place, with PyTorch's `torch.optim.Adam` (non-fused) arithmetic.

use super::layout::GRAIN;
use crate::backend::checks;
use crate::backend::*;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

pub fn adam_step(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    p: AdamParams,
) -> Result<()> {
    checks::adam(param, grad, m, v, &p)?;
    // Bias corrections in f64 (as PyTorch computes them in Python floats).
    let t = p.step as f64;
    let bc1 = 1.0 - (p.beta1 as f64).powf(t);
    let bc2 = 1.0 - (p.beta2 as f64).powf(t);
    let step_size = (p.lr as f64 / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let decay = if p.decoupled {
        1.0 - p.lr * p.weight_decay
    } else {
        1.0
    };
    let l2 = if p.decoupled { 0.0 } else { p.weight_decay };
    let (b1, b2, eps) = (p.beta1, p.beta2, p.eps);
    let g = grad.cpu_data()?;
    let (pd, md, vd) = (param.data_mut()?, m.data_mut()?, v.data_mut()?);
    pd.par_chunks_mut(GRAIN)
        .zip(md.par_chunks_mut(GRAIN))
        .zip(vd.par_chunks_mut(GRAIN))
        .zip(g.par_chunks(GRAIN))
        .for_each(|(((pc, mc), vc), gc)| {
            for (((w, m), v), &g) in pc.iter_mut().zip(mc).zip(vc).zip(gc) {
                let g = if l2 != 0.0 { g + l2 * *w } else { g };
                *w *= decay;
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w -= step_size * *m / (v.sqrt() / bc2_sqrt + eps);
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::layout::tests::assert_close;
    use super::*;
    use crate::error::Error;

    fn params(wd: f32, decoupled: bool, step: u64) -> AdamParams {
        AdamParams {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
            decoupled,
            step,
        }
    }

    /// Scalar f64 reference of the same update, run for several steps.
    fn naive(w: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f32], p: AdamParams) {
        let (b1, b2, lr, wd) = (
            p.beta1 as f64,
            p.beta2 as f64,
            p.lr as f64,
            p.weight_decay as f64,
        );
        for i in 0..w.len() {
            let mut gi = g[i] as f64;
            if p.decoupled {
                w[i] *= 1.0 - lr * wd;
            } else {
                gi += wd * w[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let bc1 = 1.0 - b1.powi(p.step as i32);
            let bc2 = 1.0 - b2.powi(p.step as i32);
            w[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + p.eps as f64);
        }
    }

    #[test]
    fn matches_reference_over_steps() {
        for (wd, decoupled, dims) in [
            (0.0, false, vec![3, 7]),
            (0.1, false, vec![40_001]),
            (0.1, true, vec![1]),
        ] {
            let mut w = Tensor::randn(dims.clone(), 0.0, 1.0, 1);
            let (mut m, mut v) = (Tensor::zeros(dims.clone()), Tensor::zeros(dims.clone()));
            let mut rw: Vec<f64> = w.cpu_data().unwrap().iter().map(|&x| x as f64).collect();
            let (mut rm, mut rv) = (vec![0f64; rw.len()], vec![0f64; rw.len()]);
            for step in 1..=5 {
                let g = Tensor::randn(dims.clone(), 0.0, 1.0, 10 + step);
                let p = params(wd, decoupled, step);
                adam_step(&mut w, &g, &mut m, &mut v, p).unwrap();
                naive(&mut rw, &mut rm, &mut rv, g.cpu_data().unwrap(), p);
            }
            let want: Vec<f32> = rw.iter().map(|&x| x as f32).collect();
            assert_close(w.cpu_data().unwrap(), &want, 1e-5, 1e-5);
            let want_v: Vec<f32> = rv.iter().map(|&x| x as f32).collect();
            assert_close(v.cpu_data().unwrap(), &want_v, 1e-7, 1e-5);
        }
    }

    #[test]
    fn first_step_moves_by_about_lr() {
        // With zero state, step 1 moves each weight by lr·sign(g) (up to eps).
        let mut w = Tensor::zeros([4]);
        let g = Tensor::from_vec(vec![3.0, -0.5, 1e-3, -100.0], [4]).unwrap();
        let (mut m, mut v) = (Tensor::zeros([4]), Tensor::zeros([4]));
        adam_step(&mut w, &g, &mut m, &mut v, params(0.0, false, 1)).unwrap();
        assert_close(
            w.cpu_data().unwrap(),
            &[-1e-2, 1e-2, -1e-2, 1e-2],
            1e-6,
            1e-4,
        );
    }

    #[test]
    fn errors() {
        let (mut w, g) = (Tensor::zeros([2]), Tensor::zeros([2]));
        let (mut m, mut v) = (Tensor::zeros([2]), Tensor::zeros([3]));
        assert!(matches!(
            adam_step(&mut w, &g, &mut m, &mut v, params(0.0, false, 1)),
            Err(Error::Shape { .. })
        ));
        let mut v = Tensor::zeros([2]);
        assert!(matches!(
            adam_step(&mut w, &g, &mut m, &mut v, params(0.0, false, 0)),
            Err(Error::Invalid { .. })
        ));
        let bad = AdamParams {
            beta2: 1.0,
            ..params(0.0, false, 1)
        };
        assert!(adam_step(&mut w, &g, &mut m, &mut v, bad).is_err());
        assert!(adam_step(
            &mut w,
            &Tensor::zeros([1, 2]),
            &mut m,
            &mut v,
            params(0.0, false, 1)
        )
        .is_err());
    }
}
