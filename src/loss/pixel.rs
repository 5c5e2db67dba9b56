//! The plain L1 terms (MODEL.md §5): domain alignment between the normalised pose-adaptor
//! features and the normalised image-adaptor features of the ground truth, reconstruction
//! L1(output, gt) and warp-self L1(warped exemplar, gt). Means over every element, so per-sample
//! means for equal-sized samples. Gradients reach both sides.

use crate::autograd::Var;
use crate::error::Result;

/// L1(pose features, image features of the ground-truth frame).
pub fn domain_alignment(pose_features: &Var, gt_image_features: &Var) -> Result<Var> {
    pose_features.l1_loss(gt_image_features)
}

/// L1(generated frame, ground truth); the ground truth is data.
pub fn reconstruction(fake: &Var, gt: &Var) -> Result<Var> {
    fake.l1_loss(gt)
}

/// L1(warped exemplar, ground truth).
pub fn warp_self(warped: &Var, gt: &Var) -> Result<Var> {
    warped.l1_loss(gt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    #[test]
    fn l1_terms_match_naive_means_and_check_shapes() {
        let a = Tensor::randn([2, 3, 5, 3], 0.0, 1.0, 1);
        let b = Tensor::randn([2, 3, 5, 3], 0.0, 1.0, 2);
        let (av, bv) = (a.to_vec().unwrap(), b.to_vec().unwrap());
        let want: f64 = av
            .iter()
            .zip(&bv)
            .map(|(x, y)| (x - y).abs() as f64)
            .sum::<f64>()
            / av.len() as f64;
        let (x, y) = (Var::constant(a), Var::constant(b));
        for f in [domain_alignment, reconstruction, warp_self] {
            let got = f(&x, &y).unwrap().value().item().unwrap() as f64;
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        let z = Var::constant(Tensor::zeros([2, 3, 5, 2]));
        assert!(reconstruction(&x, &z).is_err());
    }
}
