//! Image-quality metrics between generated and ground-truth frames: SSIM and PSNR (matched to
//! scikit-image), sharpness (variance of the Laplacian), the per-frame scores `engine eval`
//! aggregates, and `extra`, the hook for metrics that need network weights (FID, LPIPS).

pub mod extra;
pub mod fid;
pub mod psnr;
pub mod report;
pub mod sharpness;
pub mod ssim;

use crate::error::Result;
use crate::video::Frame;

pub use psnr::psnr;
pub use report::{EvalReport, Stats};
pub use sharpness::laplacian_variance;
pub use ssim::ssim;

/// The scores of one (prediction, truth) frame pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameScores {
    pub ssim: f64,
    /// dB; `f64::INFINITY` for identical frames.
    pub psnr_db: f64,
    pub sharpness_pred: f64,
    pub sharpness_truth: f64,
}

impl FrameScores {
    /// Sharpness of the prediction minus that of the truth (negative: blurrier than the truth).
    pub fn sharpness_diff(&self) -> f64 {
        self.sharpness_pred - self.sharpness_truth
    }
}

/// Every per-frame metric of a frame pair of the same size.
pub fn score_frames(pred: &Frame, truth: &Frame) -> Result<FrameScores> {
    Ok(FrameScores {
        ssim: ssim(pred, truth)?,
        psnr_db: psnr(pred, truth)?,
        sharpness_pred: laplacian_variance(pred),
        sharpness_truth: laplacian_variance(truth),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::{Dtype, SafeTensors};

    /// SSIM and PSNR against scikit-image (tools/make_metric_fixtures.py).
    #[test]
    fn ssim_and_psnr_match_skimage_fixture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/metrics_reference.safetensors"
        );
        let bytes = std::fs::read(path).expect("read the metrics fixture");
        let st = SafeTensors::deserialize(&bytes).expect("parse the metrics fixture");
        let frame = |name: &str| -> Frame {
            let t = st.tensor(name).unwrap();
            assert_eq!(t.dtype(), Dtype::U8, "{name}");
            let [h, w, 3] = t.shape() else {
                panic!("{name}: shape {:?}", t.shape())
            };
            Frame::new(*w as u32, *h as u32, t.data().to_vec()).unwrap()
        };
        let value = |name: &str| -> f64 {
            let t = st.tensor(name).unwrap();
            assert_eq!(t.dtype(), Dtype::F64, "{name}");
            f64::from_le_bytes(t.data()[..8].try_into().unwrap())
        };
        let mut cases: Vec<String> = st
            .names()
            .iter()
            .filter_map(|n| n.strip_suffix(".ssim").map(str::to_string))
            .collect();
        cases.sort();
        assert_eq!(cases.len(), 6, "{cases:?}");
        for case in &cases {
            let (a, b) = (frame(&format!("{case}.a")), frame(&format!("{case}.b")));
            let (want_ssim, want_psnr) = (
                value(&format!("{case}.ssim")),
                value(&format!("{case}.psnr")),
            );
            let got_ssim = ssim(&a, &b).unwrap();
            let got_psnr = psnr(&a, &b).unwrap();
            assert!(
                (got_ssim - want_ssim).abs() < 1e-4,
                "{case}: ssim {got_ssim} vs {want_ssim}"
            );
            if want_psnr.is_infinite() {
                assert_eq!(got_psnr, want_psnr, "{case}");
            } else {
                assert!(
                    (got_psnr - want_psnr).abs() < 1e-3,
                    "{case}: psnr {got_psnr} vs {want_psnr}"
                );
            }
            eprintln!(
                "{case}: ssim err {:.2e}, psnr {got_psnr:.4}",
                (got_ssim - want_ssim).abs()
            );
        }
    }

    #[test]
    fn score_frames_combines_the_metrics() {
        let a = Frame::filled(12, 12, [30, 60, 90]).unwrap();
        let mut b = a.clone();
        b.data_mut()[40] = 200;
        let s = score_frames(&a, &b).unwrap();
        assert_eq!(s.ssim, ssim(&a, &b).unwrap());
        assert_eq!(s.psnr_db, psnr(&a, &b).unwrap());
        assert_eq!(s.sharpness_pred, 0.0);
        assert!(s.sharpness_truth > 0.0 && s.sharpness_diff() < 0.0);
        assert!(score_frames(&a, &Frame::filled(12, 13, [0, 0, 0]).unwrap()).is_err());
    }
}
