//! The FID Inception-v3 with the real (fetched) weights against the float64 NumPy forward of the
//! TorchScript model's tensors (tools/weights/convert_inception.py writes both files; that NumPy
//! forward was checked against the TorchScript model run by PyTorch to 2e-6). Skips, saying why,
//! when `python3 tools/weights/fetch.py` has not been run.

mod common;

use common::weights::{fetched, max_abs, max_abs_diff};
use engine::model::inception::{InceptionV3, FEATURE_DIM};
use engine::nn::load_tensors;
use std::path::PathBuf;

/// Model input (quantise + TF1 bilinear resize, f64 on both sides): max abs difference.
const INPUT_TOL: f32 = 1e-6;
/// Features (values O(1), up to ~3.5): max abs difference, f32 engine vs f64 NumPy through 94
/// convs.
const FEATURE_TOL: f32 = 1e-4;

#[test]
fn inception_real_weights_match_numpy_reference() {
    let Some([wpath, rpath]) =
        fetched(&["inception.safetensors", "inception_reference.safetensors"])
            .map(|p| <[PathBuf; 2]>::try_from(p).expect("two paths"))
    else {
        return;
    };
    let net = InceptionV3::load(&wpath).unwrap();
    let reference = load_tensors(&rpath).unwrap();
    for k in 0..2 {
        let input = &reference[&format!("input_{k}")];
        let model_input = InceptionV3::preprocess(input).unwrap();
        let want_input = &reference[&format!("model_input_{k}")];
        assert_eq!(model_input.dims(), want_input.dims());
        let err = max_abs_diff(
            &model_input.to_vec().unwrap(),
            &want_input.to_vec().unwrap(),
        );
        eprintln!("model_input_{k}: max abs err {err:.3e} (tolerance {INPUT_TOL:.0e})");
        assert!(err <= INPUT_TOL, "model_input_{k}: {err}");

        let got = net.features(input).unwrap();
        assert_eq!(got.dims(), &[1, FEATURE_DIM]);
        let want = reference[&format!("features_{k}")].to_vec().unwrap();
        let got = got.to_vec().unwrap();
        let err = max_abs_diff(&got, &want);
        let scale = max_abs(&want);
        eprintln!(
            "features_{k}: max|ref| {scale:.3}, max abs err {err:.3e} ({:.1}% of tolerance {FEATURE_TOL:.0e})",
            100.0 * err / FEATURE_TOL
        );
        assert!(scale > 0.1, "features_{k}: reference is all ~zero");
        assert!(err <= FEATURE_TOL, "features_{k}: max abs err {err}");
    }
}

/// `engine eval`'s FID metric end to end on real weights: identical prediction and truth give
/// ~0, a colour-shifted prediction a clearly positive distance.
#[test]
fn fid_metric_on_frames() {
    use engine::metrics::extra::ExtraMetric;
    use engine::metrics::fid::FidMetric;
    use engine::video::Frame;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights");
    if !dir.join("inception.safetensors").is_file() {
        eprintln!(
            "skipped: weights/inception.safetensors missing (run python3 tools/weights/fetch.py)"
        );
        return;
    }
    let frame = |k: u32, shift: u8| {
        let (w, h) = (40u32, 30u32);
        let data: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [
                    ((x * 6 + k * 17) % 256) as u8,
                    ((y * 8 + k * 5) % 256) as u8,
                    (((x + y) * 3) % 256) as u8,
                ]
                .map(|v| v.saturating_add(shift))
            })
            .collect();
        Frame::new(w, h, data).unwrap()
    };
    let run = |shift: u8| -> f64 {
        let mut m = FidMetric::new(&dir).unwrap();
        for k in 0..3 {
            m.push(&frame(k, shift), &frame(k, 0)).unwrap();
        }
        let out = m.finish().unwrap();
        assert_eq!(out[0].0, "fid");
        out[0].1
    };
    let (same, shifted) = (run(0), run(60));
    eprintln!("FID identical {same:.3e}, colour-shifted {shifted:.3}");
    assert!(same.abs() < 1e-6, "{same}");
    assert!(shifted > 1.0, "{shifted}");
}
