//! Adversarial losses over the patch logits of every D scale. Per scale the loss is a mean over
//! all patch logits (so a per-sample mean); the scales are averaged (SPADE/CoCosNet `GANLoss`).
//!
//! - hinge: D: mean(relu(1 − real)) + mean(relu(1 + fake)); G: −mean(fake).
//! - non-saturating (BCE with logits): D: mean(softplus(−real)) + mean(softplus(fake));
//!   G: mean(softplus(−fake)).
//! - LSGAN: D: mean((real − 1)²) + mean(fake²); G: mean((fake − 1)²).

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::model::config::GanLoss;

/// softplus(x) = log(1 + eˣ) = relu(x) + log(1 + e^−|x|), stable for large |x|.
pub fn softplus(x: &Var) -> Result<Var> {
    let tail = x.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?;
    x.relu()?.add(&tail)
}

/// Mean over the scales of `f(logits)`; an error for no scales.
fn scale_mean(op: &'static str, logits: &[Var], f: impl Fn(&Var) -> Result<Var>) -> Result<Var> {
    let mut total: Option<Var> = None;
    for l in logits {
        let t = f(l)?;
        total = Some(match total {
            None => t,
            Some(acc) => acc.add(&t)?,
        });
    }
    let total = total.ok_or_else(|| Error::invalid(op, "no discriminator outputs"))?;
    total.mul_scalar(1.0 / logits.len() as f32)
}

/// The generator's adversarial loss on the logits of the fake images, one tensor per D scale.
pub fn generator_loss(kind: GanLoss, fake: &[Var]) -> Result<Var> {
    scale_mean("gan_generator_loss", fake, |x| match kind {
        GanLoss::Hinge => x.mean_all()?.neg(),
        GanLoss::NonSaturating => softplus(&x.neg()?)?.mean_all(),
        GanLoss::Lsgan => x.add_scalar(-1.0)?.powf(2.0)?.mean_all(),
    })
}

/// The discriminator's loss: real term plus fake term, each averaged over the scales.
pub fn discriminator_loss(kind: GanLoss, fake: &[Var], real: &[Var]) -> Result<Var> {
    const OP: &str = "gan_discriminator_loss";
    if fake.len() != real.len() {
        return Err(Error::invalid(
            OP,
            format!("{} fake scales vs {} real scales", fake.len(), real.len()),
        ));
    }
    let real_term = scale_mean(OP, real, |x| match kind {
        GanLoss::Hinge => x.neg()?.add_scalar(1.0)?.relu()?.mean_all(),
        GanLoss::NonSaturating => softplus(&x.neg()?)?.mean_all(),
        GanLoss::Lsgan => x.add_scalar(-1.0)?.powf(2.0)?.mean_all(),
    })?;
    let fake_term = scale_mean(OP, fake, |x| match kind {
        GanLoss::Hinge => x.add_scalar(1.0)?.relu()?.mean_all(),
        GanLoss::NonSaturating => softplus(x)?.mean_all(),
        GanLoss::Lsgan => x.powf(2.0)?.mean_all(),
    })?;
    real_term.add(&fake_term)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck;
    use crate::tensor::Tensor;

    fn naive_softplus(x: f64) -> f64 {
        (1.0 + x.exp()).ln()
    }

    /// Naive per-element reference, averaged per scale then over scales.
    fn naive(kind: GanLoss, fake: &[Vec<f32>], real: Option<&[Vec<f32>]>) -> f64 {
        let mean = |v: &[f32], f: &dyn Fn(f64) -> f64| {
            v.iter().map(|&x| f(x as f64)).sum::<f64>() / v.len() as f64
        };
        let avg = |s: &[Vec<f32>], f: &dyn Fn(f64) -> f64| {
            s.iter().map(|v| mean(v, f)).sum::<f64>() / s.len() as f64
        };
        match real {
            None => match kind {
                GanLoss::Hinge => avg(fake, &|x| -x),
                GanLoss::NonSaturating => avg(fake, &|x| naive_softplus(-x)),
                GanLoss::Lsgan => avg(fake, &|x| (x - 1.0).powi(2)),
            },
            Some(real) => match kind {
                GanLoss::Hinge => {
                    avg(real, &|x| (1.0 - x).max(0.0)) + avg(fake, &|x| (1.0 + x).max(0.0))
                }
                GanLoss::NonSaturating => {
                    avg(real, &|x| naive_softplus(-x)) + avg(fake, &naive_softplus)
                }
                GanLoss::Lsgan => avg(real, &|x| (x - 1.0).powi(2)) + avg(fake, &|x| x * x),
            },
        }
    }

    fn logits(seed: u64) -> Vec<Tensor> {
        // Two scales of different sizes, values away from the hinge kinks at ±1.
        vec![
            Tensor::randn([2, 1, 3, 5], 0.0, 1.5, seed),
            Tensor::randn([2, 1, 2, 1], 0.0, 1.5, seed + 1),
        ]
    }

    fn kinks_away(ts: &[Tensor]) -> Vec<Tensor> {
        ts.iter()
            .map(|t| {
                let v = t
                    .to_vec()
                    .unwrap()
                    .into_iter()
                    .map(|x| {
                        if (x.abs() - 1.0).abs() < 0.05 {
                            x * 1.2
                        } else {
                            x
                        }
                    })
                    .collect();
                Tensor::from_vec(v, t.dims().to_vec()).unwrap()
            })
            .collect()
    }

    #[test]
    fn losses_match_naive_references() {
        let fake = kinks_away(&logits(3));
        let real = kinks_away(&logits(7));
        let fv: Vec<Vec<f32>> = fake.iter().map(|t| t.to_vec().unwrap()).collect();
        let rv: Vec<Vec<f32>> = real.iter().map(|t| t.to_vec().unwrap()).collect();
        let fvar: Vec<Var> = fake.iter().cloned().map(Var::constant).collect();
        let rvar: Vec<Var> = real.iter().cloned().map(Var::constant).collect();
        for kind in [GanLoss::Hinge, GanLoss::NonSaturating, GanLoss::Lsgan] {
            let g = generator_loss(kind, &fvar).unwrap().value().item().unwrap();
            let want = naive(kind, &fv, None);
            assert!(
                (g as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{kind:?} G {g} vs {want}"
            );
            let d = discriminator_loss(kind, &fvar, &rvar)
                .unwrap()
                .value()
                .item()
                .unwrap();
            let want = naive(kind, &fv, Some(&rv));
            assert!(
                (d as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{kind:?} D {d} vs {want}"
            );
        }
    }

    #[test]
    fn softplus_is_stable_for_large_inputs() {
        let x = Var::constant(Tensor::from_vec(vec![-100.0, 0.0, 100.0], [3]).unwrap());
        let y = softplus(&x).unwrap().value().to_vec().unwrap();
        assert!(
            y[0].abs() < 1e-6 && (y[1] - 2f32.ln()).abs() < 1e-6 && (y[2] - 100.0).abs() < 1e-4
        );
    }

    #[test]
    fn gradients_match_finite_differences() {
        let fake = kinks_away(&logits(11));
        let real = kinks_away(&logits(13));
        for kind in [GanLoss::Hinge, GanLoss::NonSaturating, GanLoss::Lsgan] {
            gradcheck(|v| generator_loss(kind, &v[..2]), &fake, 1e-2, 1e-2, 1e-3).unwrap();
            let inputs: Vec<Tensor> = fake.iter().chain(real.iter()).cloned().collect();
            gradcheck(
                |v| discriminator_loss(kind, &v[..2], &v[2..]),
                &inputs,
                1e-2,
                1e-2,
                1e-3,
            )
            .unwrap();
        }
    }

    #[test]
    fn mismatched_or_empty_scales_are_errors() {
        let fake: Vec<Var> = logits(1).into_iter().map(Var::constant).collect();
        assert!(discriminator_loss(GanLoss::Hinge, &fake, &fake[..1]).is_err());
        assert!(generator_loss(GanLoss::Hinge, &[]).is_err());
    }
}
