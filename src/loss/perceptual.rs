//! VGG losses: L_per = Σ_l w_l · L1(φ_l(fake), φ_l(gt)) over relu1_2 … relu5_2, and the
//! perceptual MSE on relu4_2. The ground-truth features are targets (no gradient).

use crate::autograd::Var;
use crate::error::Result;
use crate::model::vgg19::VggFeatures;

/// Σ_l weights[l] · L1(fake_l, gt_l) over the five VGG layers.
pub fn vgg_l1(fake: &VggFeatures, gt: &VggFeatures, weights: &[f32; 5]) -> Result<Var> {
    let mut total: Option<Var> = None;
    for ((f, g), &w) in fake.layers.iter().zip(&gt.layers).zip(weights) {
        let t = f.l1_loss(&g.detach())?.mul_scalar(w)?;
        total = Some(match total {
            None => t,
            Some(acc) => acc.add(&t)?,
        });
    }
    // Five layers, always Some.
    total.ok_or_else(|| crate::Error::invalid("vgg_l1", "no layers"))
}

/// MSE(relu4_2(fake), relu4_2(gt)).
pub fn perceptual_mse(fake: &VggFeatures, gt: &VggFeatures) -> Result<Var> {
    fake.relu4_2().mse_loss(&gt.relu4_2().detach())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    fn feats(seed: u64) -> VggFeatures {
        let shapes = [
            [2, 2, 8, 8],
            [2, 3, 4, 4],
            [2, 4, 2, 2],
            [2, 5, 2, 1],
            [2, 3, 1, 1],
        ];
        let layers = std::array::from_fn(|i| {
            Var::param(Tensor::randn(shapes[i].to_vec(), 0.0, 1.0, seed + i as u64))
        });
        VggFeatures { layers }
    }

    #[test]
    fn match_naive_weighted_sums() {
        let (f, g) = (feats(1), feats(50));
        let w = [1.0 / 32.0, 1.0 / 16.0, 1.0 / 8.0, 1.0 / 4.0, 1.0];
        let mut want = 0.0f64;
        for ((fl, gl), wl) in f.layers.iter().zip(&g.layers).zip(w) {
            let a = fl.value().to_vec().unwrap();
            let b = gl.value().to_vec().unwrap();
            let l1: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).abs() as f64).sum();
            want += wl as f64 * l1 / a.len() as f64;
        }
        let got = vgg_l1(&f, &g, &w).unwrap();
        assert!((got.value().item().unwrap() as f64 - want).abs() < 1e-5);
        got.backward().unwrap();
        assert!(f.layers[0].grad().is_some() && g.layers[0].grad().is_none());

        let a = f.layers[3].value().to_vec().unwrap();
        let b = g.layers[3].value().to_vec().unwrap();
        let want: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        let got = perceptual_mse(&f, &g).unwrap().value().item().unwrap() as f64;
        assert!((got - want).abs() < 1e-5 * (1.0 + want));
    }
}
