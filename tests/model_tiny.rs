//! The `tiny` config (64² images, 16² correspondence grid, widths /8) forward on the CPU at
//! batch 2, then a backward of a simple loss touching every output: all outputs finite with the
//! right shapes, and a finite gradient for every parameter of the generator side and of D.

use engine::model::{build_discriminator, GeneratorSide, ModelConfig};
use engine::nn::ParamStore;
use engine::{Tensor, Var};

fn all_finite(t: &Tensor) -> bool {
    t.cpu_data().unwrap().iter().all(|x| x.is_finite())
}

#[test]
fn tiny_forward_and_backward_reach_every_parameter() {
    let cfg = ModelConfig::preset("tiny").unwrap();
    let (b, s, cl) = (2, cfg.image_size, cfg.label_channels());
    let g_store = ParamStore::new(1);
    let d_store = ParamStore::new(2);
    let side = GeneratorSide::new(&g_store.root(), &cfg).unwrap();
    let disc = build_discriminator(&d_store.root(), &cfg).unwrap();

    let label = Var::constant(Tensor::rand_uniform([b, cl, s, s], 0.0, 1.0, 10));
    let exemplar = Var::constant(Tensor::rand_uniform([b, 3, s, s], -1.0, 1.0, 11));
    let gt = Var::constant(Tensor::rand_uniform([b, 3, s, s], -1.0, 1.0, 12));

    let out = side.forward(&label, &exemplar, true).unwrap();
    let g = cfg.corr_grid();
    let f = cfg.feature_channels();
    assert_eq!(out.corr.warped.dims(), &[b, 3, s, s]);
    assert_eq!(out.corr.pose_features.dims(), &[b, f, g, g]);
    assert_eq!(out.corr.image_features.dims(), &[b, f, g, g]);
    assert_eq!(out.fake.dims(), &[b, 3, s, s]);
    for (name, v) in [
        ("warped", &out.corr.warped),
        ("pose_features", &out.corr.pose_features),
        ("image_features", &out.corr.image_features),
        ("fake", &out.fake),
    ] {
        assert!(all_finite(&v.value()), "{name} has non-finite values");
    }
    // The patch warp mixes exemplar pixels with convex weights: it stays inside their range.
    let w = out.corr.warped.value().to_vec().unwrap();
    assert!(w.iter().all(|x| x.abs() <= 1.0 + 1e-5));

    // Fake and real through D in one pass, stacked on the batch axis.
    let fake_in = Var::concat(&[&label, &out.fake], 1).unwrap();
    let real_in = Var::concat(&[&label, &gt], 1).unwrap();
    let d_in = Var::concat(&[&fake_in, &real_in], 0).unwrap();
    let scales = disc.forward(&d_in, true).unwrap();
    assert_eq!(scales.len(), cfg.num_d);
    assert_eq!(scales[0].logits.dims(), &[2 * b, 1, 6, 6]);
    assert_eq!(scales[1].logits.dims(), &[2 * b, 1, 2, 2]);
    for sc in &scales {
        assert_eq!(sc.features.len(), 4);
        for v in sc.features.iter().chain([&sc.logits]) {
            assert!(all_finite(&v.value()));
        }
    }

    // A simple loss that reaches every output and so every parameter.
    let gt_features = side.corr.image_features(&gt, true).unwrap();
    let mut loss = out.fake.l1_loss(&gt).unwrap();
    loss = loss.add(&out.corr.warped.l1_loss(&gt).unwrap()).unwrap();
    loss = loss
        .add(&out.corr.pose_features.l1_loss(&gt_features).unwrap())
        .unwrap();
    for sc in &scales {
        loss = loss.add(&sc.logits.mean_all().unwrap()).unwrap();
    }
    assert!(loss.value().item().unwrap().is_finite());
    loss.backward().unwrap();

    for (store, what) in [(&g_store, "generator side"), (&d_store, "discriminator")] {
        let params = store.params();
        assert!(!params.is_empty());
        for (name, p) in params {
            let grad = p
                .grad()
                .unwrap_or_else(|| panic!("{what}: {name} got no gradient"));
            assert_eq!(grad.dims(), p.dims(), "{name}");
            assert!(
                all_finite(&grad),
                "{what}: {name} has a non-finite gradient"
            );
        }
    }
    // The attention's γ starts at 0, so its own gradient is what lets it grow.
    let gamma = g_store.get("gen.attn.gamma").unwrap().grad().unwrap();
    assert!(gamma.item().unwrap() != 0.0);
}
