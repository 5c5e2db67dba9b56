//! Feature matching (pix2pixHD / SPADE): Σ_scales Σ_layers L1(D_l(fake), D_l(real)) / num_D.
//! The real features are targets: their gradient is not taken.

use crate::autograd::Var;
use crate::error::{Error, Result};

/// `fake[s][l]` and `real[s][l]`: the intermediate outputs of layer l at scale s. Returns the
/// unweighted term divided by the number of scales.
pub fn feature_matching(fake: &[Vec<Var>], real: &[Vec<Var>]) -> Result<Var> {
    const OP: &str = "feature_matching";
    if fake.is_empty() || fake.len() != real.len() {
        return Err(Error::invalid(
            OP,
            format!("{} fake scales vs {} real scales", fake.len(), real.len()),
        ));
    }
    let mut total: Option<Var> = None;
    for (s, (f, r)) in fake.iter().zip(real).enumerate() {
        if f.len() != r.len() || f.is_empty() {
            return Err(Error::invalid(
                OP,
                format!(
                    "scale {s}: {} fake layers vs {} real layers",
                    f.len(),
                    r.len()
                ),
            ));
        }
        for (a, b) in f.iter().zip(r) {
            let t = a.l1_loss(&b.detach())?;
            total = Some(match total {
                None => t,
                Some(acc) => acc.add(&t)?,
            });
        }
    }
    // Non-empty: checked above.
    match total {
        Some(t) => t.mul_scalar(1.0 / fake.len() as f32),
        None => Err(Error::invalid(OP, "no features")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    #[test]
    fn matches_naive_sum_over_scales_and_layers() {
        let shapes: [&[usize]; 3] = [&[2, 3, 4, 5], &[2, 1, 3, 3], &[2, 2, 1, 1]];
        let mk = |seed: u64| -> Vec<Vec<Var>> {
            (0..2)
                .map(|s| {
                    shapes
                        .iter()
                        .enumerate()
                        .map(|(l, sh)| {
                            let t = Tensor::randn(sh.to_vec(), 0.0, 1.0, seed + 10 * s + l as u64);
                            Var::param(t)
                        })
                        .collect()
                })
                .collect()
        };
        let (fake, real) = (mk(1), mk(100));
        let got = feature_matching(&fake, &real).unwrap();
        let mut want = 0.0f64;
        for (f, r) in fake.iter().zip(&real) {
            for (a, b) in f.iter().zip(r) {
                let (a, b) = (a.value().to_vec().unwrap(), b.value().to_vec().unwrap());
                let s: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).abs() as f64).sum();
                want += s / a.len() as f64;
            }
        }
        want /= 2.0;
        let g = got.value().item().unwrap() as f64;
        assert!((g - want).abs() < 1e-5 * want, "{g} vs {want}");
        // The real side is a target: no gradient reaches it.
        got.backward().unwrap();
        assert!(fake[0][0].grad().is_some());
        assert!(real[0][0].grad().is_none());
    }

    #[test]
    fn mismatched_structure_is_an_error() {
        let v = || Var::constant(Tensor::zeros([1, 1, 2, 2]));
        assert!(feature_matching(&[vec![v()]], &[]).is_err());
        assert!(feature_matching(&[vec![v()]], &[vec![v(), v()]]).is_err());
        assert!(feature_matching(&[vec![]], &[vec![]]).is_err());
    }
}
