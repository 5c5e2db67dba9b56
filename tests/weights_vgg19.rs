//! VGG19 with the real (fetched) weights against the float64 NumPy forward of the same dequantised
//! weights (tools/weights/convert_vgg19.py writes both files). Skips, saying why, when
//! `python3 tools/weights/fetch.py` has not been run.

mod common;

use common::weights::{fetched, max_abs, max_abs_diff};
use engine::model::vgg19::Vgg19;
use engine::nn::load_tensors;
use engine::{Tensor, Var};
use std::path::PathBuf;

/// Per feature map: max |engine − reference| ≤ REL_TOL · max |reference|. The f32 engine against
/// f64 NumPy lands near 1e-6 (sums of up to 4608 products through 13 convs).
const REL_TOL: f32 = 1e-4;

#[test]
fn vgg19_real_weights_match_numpy_reference() {
    let Some([wpath, rpath]) = fetched(&["vgg19.safetensors", "vgg19_reference.safetensors"])
        .map(|p| <[PathBuf; 2]>::try_from(p).expect("two paths"))
    else {
        return;
    };
    let vgg = Vgg19::load(&wpath).unwrap();
    let reference = load_tensors(&rpath).unwrap();
    let mut checked = 0;
    for k in 0..2 {
        let input = reference[&format!("input_{k}")].clone();
        let feats = vgg.forward(&Var::constant(input.clone())).unwrap();
        for (b, got) in feats.layers.iter().enumerate() {
            let name = format!("relu{}_2_{k}", b + 1);
            let want: &Tensor = &reference[&name];
            assert_eq!(got.dims(), want.dims(), "{name}: shape");
            let (g, w) = (got.value().to_vec().unwrap(), want.to_vec().unwrap());
            let scale = max_abs(&w);
            let err = max_abs_diff(&g, &w);
            eprintln!(
                "{name} {:?}: max|ref| {scale:.1}, max abs err {err:.3e} ({:.1}% of tolerance)",
                want.dims(),
                100.0 * err / (REL_TOL * scale)
            );
            assert!(scale > 1.0, "{name}: reference is all ~zero");
            assert!(
                err <= REL_TOL * scale,
                "{name}: max abs err {err} > {REL_TOL} · {scale}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 10);
}
