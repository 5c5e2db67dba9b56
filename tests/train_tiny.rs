//! Stage-1 training on the `tiny` config with generated data: every loss term is finite and the
//! reconstruction L1 falls over 50 iterations on a fixed batch.
//!
//! The 50-iteration run uses the exemplar = ground truth (CoCosNet's self-reference case), so
//! that the contextual and warp-self terms pull the same way as the reconstruction. With an
//! unrelated exemplar the default weights (context 10 against the exemplar, warp-self 100) and
//! lr 1e-4 leave the reconstruction flat over 50 iterations (measured: 0.49 → ~0.47 → 0.49). Even
//! in the self-reference case the default lr 1e-4 with Xavier gain 0.02 moves it slowly (~2% over
//! 50 iterations), hence the 1% margin.
//!
//! Shrunk for a 2-core CPU: the 50-iteration run uses batch 1 (batch 2 took ~1.5-1.9 s per
//! iteration on a loaded 2-core machine, over the time budget) at the `tiny` size (64², widths /8)
//! and VGG19 with every width divided by 8 (random frozen weights; the real ones come from a
//! file). Batch 2 is exercised by the per-sample-mean test, one iteration.

use engine::autograd::no_grad;
use engine::backend::ResizeMode;
use engine::model::vgg19::{Vgg19, Vgg19Spec};
use engine::model::ModelConfig;
use engine::train_step::{Stage1Batch, Stage1Trainer};
use engine::{Tensor, Var};
use std::time::Instant;

/// Smooth random maps: a 4×4 normal grid upsampled bilinearly to `size`, squashed by tanh
/// (scaled into [lo, hi] when `unit` is set).
fn smooth(b: usize, c: usize, size: usize, seed: u64, unit: bool) -> Tensor {
    no_grad(|| {
        let coarse = Var::constant(Tensor::randn([b, c, 4, 4], 0.3, 1.0, seed));
        let up = coarse
            .resize2d(
                (size, size),
                ResizeMode::Bilinear {
                    align_corners: false,
                },
            )
            .unwrap()
            .tanh()
            .unwrap();
        let up = if unit {
            up.add_scalar(1.0).unwrap().mul_scalar(0.5).unwrap()
        } else {
            up
        };
        up.value()
    })
}

#[test]
fn tiny_stage1_losses_are_finite_and_reconstruction_falls() {
    let cfg = ModelConfig::preset("tiny").unwrap();
    let s = cfg.image_size;
    let vgg = Vgg19::new(Vgg19Spec::scaled(8), 7).unwrap();
    let mut trainer = Stage1Trainer::new(&cfg, 1, vgg).unwrap();
    let gt = smooth(1, 3, s, 12, false);
    let batch = Stage1Batch {
        label: smooth(1, cfg.label_channels(), s, 10, true),
        exemplar: gt.clone(),
        gt,
    };
    let start = Instant::now();
    let mut rec = Vec::new();
    for it in 0..50 {
        let t = trainer.step(&batch, 1.0).unwrap();
        for (name, v) in &t.terms {
            assert!(v.is_finite(), "iteration {it}: {name} = {v}");
        }
        for name in [
            "gan_g",
            "feature_matching",
            "vgg",
            "perceptual_mse",
            "context",
        ] {
            assert!(t.get(name).is_some(), "{name} missing");
        }
        for name in [
            "domain_alignment",
            "reconstruction",
            "warp_self",
            "gan_d",
            "g_total",
        ] {
            assert!(t.get(name).is_some(), "{name} missing");
        }
        if it == 0 || it == 49 {
            eprintln!("iteration {it}: {:?}", t.terms);
        }
        rec.push(t.get("reconstruction").unwrap());
    }
    let first = rec[..10].iter().sum::<f32>() / 10.0;
    let last = rec[40..].iter().sum::<f32>() / 10.0;
    eprintln!(
        "reconstruction first-10 mean {first}, last-10 mean {last}, {:?}",
        start.elapsed()
    );
    assert!(
        last < 0.99 * first,
        "reconstruction did not fall: {first} -> {last}"
    );
}

/// Losses are per-sample means: a batch of two copies of a sample gives the terms of the sample
/// alone (same seeds, first iteration).
#[test]
fn loss_terms_do_not_depend_on_batch_size() {
    let cfg = ModelConfig::preset("tiny").unwrap();
    let s = cfg.image_size;
    let one = Stage1Batch {
        label: smooth(1, cfg.label_channels(), s, 20, true),
        exemplar: smooth(1, 3, s, 21, false),
        gt: smooth(1, 3, s, 22, false),
    };
    let two = |t: &Tensor| Tensor::concat(&[t, t], 0).unwrap();
    let both = Stage1Batch {
        label: two(&one.label),
        exemplar: two(&one.exemplar),
        gt: two(&one.gt),
    };
    let run = |b: &Stage1Batch| {
        let vgg = Vgg19::new(Vgg19Spec::scaled(8), 7).unwrap();
        let mut trainer = Stage1Trainer::new(&cfg, 3, vgg).unwrap();
        trainer.step(b, 1.0).unwrap()
    };
    let (a, b) = (run(&one), run(&both));
    assert_eq!(a.terms.len(), b.terms.len());
    for ((name, x), (_, y)) in a.terms.iter().zip(&b.terms) {
        assert!(x.is_finite() && y.is_finite(), "{name}: {x} {y}");
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
            "{name}: batch 1 {x} vs batch 2 {y}"
        );
    }
}

#[test]
fn bad_batches_are_errors() {
    let cfg = ModelConfig::preset("tiny").unwrap();
    let vgg = Vgg19::new(Vgg19Spec::scaled(16), 7).unwrap();
    let mut trainer = Stage1Trainer::new(&cfg, 1, vgg).unwrap();
    let s = cfg.image_size;
    let batch = Stage1Batch {
        label: Tensor::zeros([1, cfg.label_channels(), s, s]),
        exemplar: Tensor::zeros([1, 3, s, s]),
        gt: Tensor::zeros([2, 3, s, s]),
    };
    assert!(trainer.step(&batch, 1.0).is_err());
}
