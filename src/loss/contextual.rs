//! The contextual loss (Mechrez et al.), exactly as MODEL.md §5, per sample:
//! centre X (generated) and Y (target) by Y's channel mean at each position, L2-normalise every
//! position's feature vector, cosine distance d_ij = 1 − ⟨x_i, y_j⟩, relative distance
//! d̃_ij = d_ij / (min_k d_ik + 1e-3), w_ij = exp((1 − d̃_ij)/h), row-normalise over j,
//! CX = mean_i max_j w̄_ij, loss = −log CX; averaged over the batch.
//!
//! `exp((1 − d̃)/h)` overflows f32 once d̃ < 1 − 88·h; since row normalisation is invariant to a
//! per-row factor, the exponent is shifted by its row maximum (1 − 1/(1+1e-3·…)), i.e. a softmax
//! over j — the same values, without overflow.

use crate::autograd::Var;
use crate::backend::Pool2dParams;
use crate::error::{Error, Result};
use crate::model::vgg19::VggFeatures;

/// The 1e-3 of the relative distance.
pub const CX_EPS: f32 = 1e-3;
/// eps of the L2 normalisation: x / sqrt(Σx² + eps²).
const NORM_EPS: f32 = 1e-8;

/// `x / sqrt(Σ_c x² + eps²)` over axis 1 of [B, C, N].
fn l2_normalize(x: &Var) -> Result<Var> {
    let n = x
        .mul(x)?
        .sum(&[1], true)?
        .add_scalar(NORM_EPS * NORM_EPS)?
        .sqrt()?;
    x.div(&n)
}

/// −log CX(x, y), averaged over the batch, for NCHW features of equal shapes, bandwidth `h`.
pub fn contextual_loss(x: &Var, y: &Var, h: f32) -> Result<Var> {
    const OP: &str = "contextual_loss";
    let (b, c, n) = match *x.dims() {
        [b, c, hh, ww] if x.dims() == y.dims() && b * c * hh * ww > 0 => (b, c, hh * ww),
        _ => {
            return Err(Error::shape(
                OP,
                format!(
                    "x {:?} and y {:?}: expected equal non-empty NCHW",
                    x.dims(),
                    y.dims()
                ),
            ))
        }
    };
    if h.is_nan() || h <= 0.0 {
        return Err(Error::invalid(
            OP,
            format!("bandwidth must be positive, got {h}"),
        ));
    }
    let x = x.reshape(&[b, c, n])?;
    let y = y.reshape(&[b, c, n])?;
    let mu = y.mean(&[1], true)?;
    let xn = l2_normalize(&x.sub(&mu)?)?;
    let yn = l2_normalize(&y.sub(&mu)?)?;
    // d [B, N_x, N_y].
    let d = xn.matmul_t(&yn, true, false)?.neg()?.add_scalar(1.0)?;
    let d_min = d.neg()?.max(&[2], true)?.neg()?;
    let rel = d.div(&d_min.add_scalar(CX_EPS)?)?;
    // (1 − d̃)/h, then softmax over j = exp(·) row-normalised.
    let w = rel.neg()?.add_scalar(1.0)?.mul_scalar(1.0 / h)?.softmax()?;
    let cx = w.max(&[2], false)?.mean(&[1], false)?;
    cx.log()?.neg()?.mean_all()
}

/// Σ weights · CX terms over relu5_2, relu4_2 and avgpool2(relu3_2) of `fake` vs `target`.
pub fn contextual_vgg_loss(
    fake: &VggFeatures,
    target: &VggFeatures,
    weights: &[f32; 3],
    h: f32,
) -> Result<Var> {
    let pool = Pool2dParams {
        kernel: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
        count_include_pad: true,
    };
    let pairs = [
        (fake.relu5_2().clone(), target.relu5_2().detach()),
        (fake.relu4_2().clone(), target.relu4_2().detach()),
        (
            fake.relu3_2().avg_pool2d(pool)?,
            target.relu3_2().detach().avg_pool2d(pool)?,
        ),
    ];
    let mut total: Option<Var> = None;
    for ((f, t), &w) in pairs.iter().zip(weights) {
        let term = contextual_loss(f, t, h)?.mul_scalar(w)?;
        total = Some(match total {
            None => term,
            Some(acc) => acc.add(&term)?,
        });
    }
    total.ok_or_else(|| Error::invalid("contextual_vgg_loss", "no layers"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::gradcheck;
    use crate::tensor::Tensor;

    /// Straight loops in f64, with the exp taken as written (small inputs do not overflow).
    fn naive(x: &[f32], y: &[f32], b: usize, c: usize, n: usize, h: f64) -> f64 {
        let mut total = 0.0;
        for s in 0..b {
            let at = |v: &[f32], ch: usize, p: usize| v[(s * c + ch) * n + p] as f64;
            let mut xs = vec![vec![0.0; c]; n];
            let mut ys = vec![vec![0.0; c]; n];
            for p in 0..n {
                let mu = (0..c).map(|ch| at(y, ch, p)).sum::<f64>() / c as f64;
                for ch in 0..c {
                    xs[p][ch] = at(x, ch, p) - mu;
                    ys[p][ch] = at(y, ch, p) - mu;
                }
            }
            for v in xs.iter_mut().chain(ys.iter_mut()) {
                let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
                v.iter_mut().for_each(|a| *a /= norm);
            }
            let mut cx = 0.0;
            for xi in &xs {
                let d: Vec<f64> = ys
                    .iter()
                    .map(|yj| 1.0 - xi.iter().zip(yj).map(|(a, b)| a * b).sum::<f64>())
                    .collect();
                let dmin = d.iter().cloned().fold(f64::INFINITY, f64::min);
                let w: Vec<f64> = d
                    .iter()
                    .map(|dij| ((1.0 - dij / (dmin + 1e-3)) / h).exp())
                    .collect();
                let sum: f64 = w.iter().sum();
                cx += w.iter().cloned().fold(0.0, f64::max) / sum;
            }
            total += -(cx / n as f64).ln();
        }
        total / b as f64
    }

    #[test]
    fn matches_naive_loops() {
        // Awkward sizes: 5 channels, 3×2 positions, batch 2; h = 0.5 keeps the naive exp finite.
        let x = Tensor::randn([2, 5, 3, 2], 0.3, 1.0, 1);
        let y = Tensor::randn([2, 5, 3, 2], -0.2, 1.0, 2);
        for h in [0.5f32, 1.0] {
            let got = contextual_loss(&Var::constant(x.clone()), &Var::constant(y.clone()), h)
                .unwrap()
                .value()
                .item()
                .unwrap() as f64;
            let want = naive(
                &x.to_vec().unwrap(),
                &y.to_vec().unwrap(),
                2,
                5,
                6,
                h as f64,
            );
            assert!(
                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                "h {h}: {got} vs {want}"
            );
        }
        // Identical inputs: each x_i matches y_i exactly, so CX is the largest it gets.
        let same = contextual_loss(&Var::constant(y.clone()), &Var::constant(y.clone()), 0.1)
            .unwrap()
            .value()
            .item()
            .unwrap();
        let other = contextual_loss(&Var::constant(x), &Var::constant(y), 0.1)
            .unwrap()
            .value()
            .item()
            .unwrap();
        assert!(
            same.is_finite() && other.is_finite() && same < other,
            "{same} {other}"
        );
    }

    #[test]
    fn bandwidth_0_1_stays_finite_where_naive_exp_overflows() {
        let x = Tensor::randn([1, 8, 4, 4], 0.0, 1.0, 5);
        let mut y = x.to_vec().unwrap();
        y[0] += 0.01; // nearly identical features: d̃ spans a wide range
        let y = Tensor::from_vec(y, [1, 8, 4, 4]).unwrap();
        let l = contextual_loss(&Var::param(x), &Var::constant(y), 0.1).unwrap();
        assert!(l.value().item().unwrap().is_finite());
    }

    #[test]
    fn gradients_match_finite_differences() {
        let x = Tensor::randn([2, 4, 2, 3], 0.0, 1.0, 7);
        let y = Tensor::randn([2, 4, 2, 3], 0.0, 1.0, 8);
        gradcheck(
            |v| contextual_loss(&v[0], &v[1], 0.5),
            &[x, y],
            1e-3,
            2e-2,
            2e-3,
        )
        .unwrap();
    }

    #[test]
    fn bad_inputs_are_errors() {
        let a = Var::constant(Tensor::zeros([1, 2, 3, 3]));
        let b = Var::constant(Tensor::zeros([1, 2, 3, 2]));
        assert!(contextual_loss(&a, &b, 0.1).is_err());
        assert!(contextual_loss(&a, &a, 0.0).is_err());
        let r3 = Var::constant(Tensor::zeros([2, 3, 3]));
        assert!(contextual_loss(&r3, &r3, 0.1).is_err());
    }

    #[test]
    fn vgg_combination_is_the_weighted_sum() {
        let mk = |seed: u64| VggFeatures {
            layers: std::array::from_fn(|i| {
                let s = [16, 8, 4, 2, 2][i];
                Var::constant(Tensor::randn([1, 3, s, s], 0.5, 1.0, seed + i as u64))
            }),
        };
        let (f, t) = (mk(1), mk(20));
        let got = contextual_vgg_loss(&f, &t, &[8.0, 4.0, 2.0], 0.1)
            .unwrap()
            .value()
            .item()
            .unwrap();
        let pool = Pool2dParams {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            count_include_pad: true,
        };
        let one = |a: &Var, b: &Var| contextual_loss(a, b, 0.1).unwrap().value().item().unwrap();
        let want = 8.0 * one(f.relu5_2(), t.relu5_2())
            + 4.0 * one(f.relu4_2(), t.relu4_2())
            + 2.0
                * one(
                    &f.relu3_2().avg_pool2d(pool).unwrap(),
                    &t.relu3_2().avg_pool2d(pool).unwrap(),
                );
        assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()));
    }
}
