//! Finite-difference gradient checking, for the tests of every differentiable op.
//!
//! `gradcheck` compares the autograd gradient of `L = Σ f(inputs) ⊙ R` (R a fixed random
//! tensor, so that every output element matters with its own weight) against central
//! differences `(L(x + ε) - L(x - ε)) / 2ε`, element by element.
//!
//! Tolerances (f32): the forward is evaluated in f32, so each evaluation of L carries a rounding
//! error of roughly 1e-7 · Σ|out|; dividing by 2ε turns it into an absolute error of about
//! 1e-7 · Σ|out| / 2ε, while the truncation error of the central difference is O(ε²·f‴).
//! With inputs and outputs of order 1 and a few hundred outputs, `eps = 1e-2` (smooth ops) or
//! `1e-3` (ops with nearby kinks) and `rtol = atol = 1e-2` leave a comfortable margin; choose
//! inputs at least `eps` away from kinks (relu at 0, ties of max, |x| at 0).

use super::grad_mode::no_grad;
use super::var::Var;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Seed of the output weighting R: fixed so a failure reproduces.
const WEIGHT_SEED: u64 = 0x9c4d_2e11;

/// Running comparison of analytic and numeric gradients.
#[derive(Default)]
struct Tally {
    failed: usize,
    total: usize,
    /// (input, flat index, analytic, numeric, share of the tolerance used) of the worst element.
    worst: Option<(usize, usize, f32, f64, f64)>,
}

impl Tally {
    fn add(
        &mut self,
        input: usize,
        index: usize,
        analytic: f32,
        numeric: f64,
        rtol: f32,
        atol: f32,
    ) {
        let share = (analytic as f64 - numeric).abs() / (atol as f64 + rtol as f64 * numeric.abs());
        // A NaN (analytic or numeric) fails and counts as the worst possible.
        let share = if share.is_nan() { f64::INFINITY } else { share };
        self.total += 1;
        if share > 1.0 {
            self.failed += 1;
        }
        if self.worst.is_none_or(|w| share > w.4) {
            self.worst = Some((input, index, analytic, numeric, share));
        }
    }
}

/// Checks the gradients of `f` at `inputs` (each becomes a `Var::param`) against central
/// differences with step `eps`; an element passes when
/// `|analytic - numeric| <= atol + rtol · |numeric|`. The error names the worst element
/// (input index, flat index, analytic, numeric) and how many elements failed.
pub fn gradcheck(
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: &[Tensor],
    eps: f32,
    rtol: f32,
    atol: f32,
) -> Result<()> {
    if eps.is_nan() || eps <= 0.0 {
        return Err(Error::invalid(
            "gradcheck",
            format!("eps must be positive, got {eps}"),
        ));
    }
    let vars: Vec<Var> = inputs.iter().cloned().map(Var::param).collect();
    let out = f(&vars)?;
    let weight =
        Tensor::randn(out.shape().clone(), 0.0, 1.0, WEIGHT_SEED).to_device(out.device())?;
    let weight_host = weight.to_vec()?;
    if out.requires_grad() {
        out.mul(&Var::constant(weight))?.sum_all()?.backward()?;
    }
    // L(xs) = Σ f(xs) ⊙ R, accumulated in f64.
    let objective = |xs: &[Tensor]| -> Result<f64> {
        let consts: Vec<Var> = xs.iter().cloned().map(Var::constant).collect();
        let y = no_grad(|| f(&consts))?.value().to_vec()?;
        Ok(y.iter()
            .zip(&weight_host)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum())
    };

    let mut tally = Tally::default();
    let mut probe: Vec<Tensor> = inputs.to_vec();
    for (i, (x, v)) in inputs.iter().zip(&vars).enumerate() {
        let analytic = match v.grad() {
            Some(g) if g.dims() != x.dims() => {
                return Err(Error::Autograd(format!(
                    "gradcheck: gradient of input {i} has shape {:?}, the input {:?}",
                    g.shape(),
                    x.shape()
                )))
            }
            Some(g) => g.to_vec()?,
            None => vec![0.0; x.numel()],
        };
        let base = x.to_vec()?;
        for (j, &a) in analytic.iter().enumerate() {
            let mut at = |value: f32| -> Result<f64> {
                let mut data = base.clone();
                data[j] = value;
                probe[i] = Tensor::from_vec(data, x.shape().clone())?.to_device(x.device())?;
                objective(&probe)
            };
            // Divide by the step actually taken: x ± eps is rounded to f32.
            let (hi, lo) = (base[j] + eps, base[j] - eps);
            let numeric = (at(hi)? - at(lo)?) / (hi as f64 - lo as f64);
            tally.add(i, j, a, numeric, rtol, atol);
        }
        probe[i] = x.clone();
    }
    match tally.worst {
        Some((input, index, analytic, numeric, share)) if tally.failed > 0 => Err(Error::Autograd(format!(
            "gradcheck: {} of {} gradient elements out of tolerance (atol {atol}, rtol {rtol}, eps {eps}); \
             worst: input {input} element {index}: analytic {analytic}, numeric {numeric:.6} \
             ({share:.1}x the tolerance)",
            tally.failed, tally.total
        ))),
        _ => Ok(()),
    }
}
