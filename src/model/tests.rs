//! Network-level tests on the `tiny` config: the correspondence against a loop reference of the
//! correlation/softmax/warp, every option running, names, and analytic counts == recorded MACs
//! and built parameters.

use super::config::{SpadeNormKind, Upsample, WarpMode};
use super::*;
use crate::error::Error;
use crate::nn::ParamStore;
use crate::tensor::Tensor;

fn tiny() -> ModelConfig {
    ModelConfig::preset("tiny").unwrap()
}

fn inputs(cfg: &ModelConfig, b: usize) -> (Var, Var) {
    let s = cfg.image_size;
    let label = Tensor::rand_uniform([b, cfg.label_channels(), s, s], 0.0, 1.0, 21);
    let exemplar = Tensor::rand_uniform([b, 3, s, s], -1.0, 1.0, 22);
    (Var::constant(label), Var::constant(exemplar))
}

/// Reference logits `q̂ᵀk̂ / τ` [N][M] of sample `bi` (centre over C, L2-normalise, norm + eps).
fn ref_logits(q: &[f32], k: &[f32], bi: usize, c: usize, n: usize, tau: f32) -> Vec<Vec<f64>> {
    let unit = |t: &[f32], i: usize| {
        let col: Vec<f64> = (0..c)
            .map(|ch| f64::from(t[(bi * c + ch) * n + i]))
            .collect();
        let mean = col.iter().sum::<f64>() / c as f64;
        let cen: Vec<f64> = col.iter().map(|x| x - mean).collect();
        let norm = cen.iter().map(|x| x * x).sum::<f64>().sqrt() + 1e-8;
        cen.into_iter().map(|x| x / norm).collect::<Vec<_>>()
    };
    let (qs, ks): (Vec<_>, Vec<_>) = (
        (0..n).map(|i| unit(q, i)).collect(),
        (0..n).map(|j| unit(k, j)).collect(),
    );
    qs.iter()
        .map(|qi| {
            ks.iter()
                .map(|kj| qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() / f64::from(tau))
                .collect()
        })
        .collect()
}

fn softmax(row: &[f64]) -> Vec<f64> {
    let mx = row.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = row.iter().map(|x| (x - mx).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|x| x / z).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    let mut worst = 0.0f64;
    for (g, w) in got.iter().zip(want) {
        let err = (f64::from(*g) - w).abs() / (atol * (1.0 + w.abs()));
        worst = worst.max(err);
    }
    assert!(
        worst <= 1.0,
        "{what}: {:.0}% of the tolerance",
        100.0 * worst
    );
}

/// Exemplar patch values [B][M][48] in unfold order (c, ki, kj).
fn ref_patches(x: &[f32], b: usize, s: usize) -> Vec<Vec<Vec<f64>>> {
    let g = s / 4;
    (0..b)
        .map(|bi| {
            (0..g * g)
                .map(|j| {
                    let mut v = Vec::with_capacity(48);
                    for c in 0..3 {
                        for ki in 0..4 {
                            for kj in 0..4 {
                                let (y, xx) = (4 * (j / g) + ki, 4 * (j % g) + kj);
                                v.push(f64::from(x[((bi * 3 + c) * s + y) * s + xx]));
                            }
                        }
                    }
                    v
                })
                .collect()
        })
        .collect()
}

/// Folds per-position patch values [B][N][48] back to a [B, 3, S, S] image.
fn ref_fold(vals: &[Vec<Vec<f64>>], s: usize) -> Vec<f64> {
    let g = s / 4;
    let mut out = vec![0.0; vals.len() * 3 * s * s];
    for (bi, rows) in vals.iter().enumerate() {
        for (i, v) in rows.iter().enumerate() {
            for (e, val) in v.iter().enumerate() {
                let (c, ki, kj) = (e / 16, e / 4 % 4, e % 4);
                out[((bi * 3 + c) * s + 4 * (i / g) + ki) * s + 4 * (i % g) + kj] = *val;
            }
        }
    }
    out
}

#[test]
fn correspondence_matches_loop_reference_with_cycle() {
    let cfg = ModelConfig {
        warp_cycle: true,
        ..tiny()
    };
    let store = ParamStore::new(5);
    let corr = Correspondence::new(
        &store.scope("corr"),
        CorrespondenceSpec::from_config(&cfg),
        0.02,
    )
    .unwrap();
    let b = 2;
    let (label, exemplar) = inputs(&cfg, b);
    let out = corr
        .forward_with_attention(&label, &exemplar, false)
        .unwrap();
    let (q, k) = corr
        .descriptors(&out.pose_features, &out.image_features, false)
        .unwrap();
    let (c, n, s) = (q.dims()[1], q.dims()[2], cfg.image_size);
    assert_eq!((c, n), (9 * cfg.feature_channels(), cfg.corr_grid().pow(2)));
    let (qv, kv) = (q.value().to_vec().unwrap(), k.value().to_vec().unwrap());
    let attn = out.attention.as_ref().unwrap();
    assert_eq!(attn.dims(), &[b, n, n]);

    let patches = ref_patches(&exemplar.value().to_vec().unwrap(), b, s);
    let (mut want_a, mut warped_vals, mut cycle_vals) = (vec![], vec![], vec![]);
    for (bi, pb) in patches.iter().enumerate() {
        let logits = ref_logits(&qv, &kv, bi, c, n, cfg.temperature);
        let rows: Vec<Vec<f64>> = logits.iter().map(|r| softmax(r)).collect();
        let wv: Vec<Vec<f64>> = rows
            .iter()
            .map(|a| {
                (0..48)
                    .map(|e| (0..n).map(|j| a[j] * pb[j][e]).sum())
                    .collect()
            })
            .collect();
        // Cycle: softmax over the pose axis of the transposed logits, applied to the warped values.
        let cols: Vec<Vec<f64>> = (0..n)
            .map(|j| softmax(&(0..n).map(|i| logits[i][j]).collect::<Vec<_>>()))
            .collect();
        let cv: Vec<Vec<f64>> = cols
            .iter()
            .map(|a| {
                (0..48)
                    .map(|e| (0..n).map(|i| a[i] * wv[i][e]).sum())
                    .collect()
            })
            .collect();
        want_a.extend(rows.into_iter().flatten());
        warped_vals.push(wv);
        cycle_vals.push(cv);
    }
    assert_close("attention", attn.cpu_data().unwrap(), &want_a, 2e-4);
    let warped = out.warped.value().to_vec().unwrap();
    assert_close("warped", &warped, &ref_fold(&warped_vals, s), 1e-3);
    let cycle = out.cycle.as_ref().unwrap().value().to_vec().unwrap();
    assert_close("cycle", &cycle, &ref_fold(&cycle_vals, s), 1e-3);
}

#[test]
fn pooled_warp_is_upsampled_attention_of_the_pooled_exemplar() {
    let cfg = ModelConfig {
        warp_mode: WarpMode::Pooled,
        pooled_upsample: Upsample::Nearest,
        match_kernel: 1,
        ..tiny()
    };
    let store = ParamStore::new(6);
    let corr =
        Correspondence::new(&store.root(), CorrespondenceSpec::from_config(&cfg), 0.02).unwrap();
    let (label, exemplar) = inputs(&cfg, 1);
    let out = corr
        .forward_with_attention(&label, &exemplar, true)
        .unwrap();
    let (s, g) = (cfg.image_size, cfg.corr_grid());
    let a = out.attention.unwrap().to_vec().unwrap();
    let x = exemplar.value().to_vec().unwrap();
    let pooled = |c: usize, j: usize| {
        let (y0, x0) = (4 * (j / g), 4 * (j % g));
        (0..16)
            .map(|e| f64::from(x[(c * s + y0 + e / 4) * s + x0 + e % 4]))
            .sum::<f64>()
            / 16.0
    };
    let n = g * g;
    let mut want = vec![0.0; 3 * s * s];
    for c in 0..3 {
        let pc: Vec<f64> = (0..n).map(|j| pooled(c, j)).collect();
        for y in 0..s {
            for xx in 0..s {
                let i = (y / 4) * g + xx / 4;
                want[(c * s + y) * s + xx] = (0..n).map(|j| f64::from(a[i * n + j]) * pc[j]).sum();
            }
        }
    }
    assert_close(
        "pooled warp",
        &out.warped.value().to_vec().unwrap(),
        &want,
        1e-4,
    );
}

#[test]
fn every_option_runs_finite() {
    let variants = [
        ModelConfig {
            adaptor_kernel: 4,
            spade_norm: SpadeNormKind::Instance,
            ..tiny()
        },
        ModelConfig {
            warp_mode: WarpMode::Pooled,
            pooled_upsample: Upsample::Bilinear,
            warp_cycle: true,
            label: crate::pose::LabelKind::Cocosnet,
            ..tiny()
        },
    ];
    for cfg in variants {
        let store = ParamStore::new(7);
        let side = GeneratorSide::new(&store.root(), &cfg).unwrap();
        let (label, exemplar) = inputs(&cfg, 1);
        let out = side.forward(&label, &exemplar, true).unwrap();
        let s = cfg.image_size;
        assert_eq!(out.fake.dims(), &[1, 3, s, s]);
        for v in [&out.fake, &out.corr.warped]
            .into_iter()
            .chain(out.corr.cycle.as_ref())
        {
            assert!(v.value().to_vec().unwrap().iter().all(|x| x.is_finite()));
        }
        assert_eq!(out.corr.cycle.is_some(), cfg.warp_cycle);
    }
}

/// Σ of the parameter sizes whose names start with `prefix`.
fn params_under(store: &ParamStore, prefix: &str) -> u64 {
    (store.params().iter())
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(_, v)| v.value().numel() as u64)
        .sum()
}

#[test]
fn analytic_counts_equal_built_parameters_and_recorded_macs() {
    for cfg in [
        tiny(),
        ModelConfig {
            warp_cycle: true,
            adaptor_kernel: 4,
            ..tiny()
        },
    ] {
        let counts = count(&cfg).unwrap();
        let store = ParamStore::new(8);
        let side = GeneratorSide::new(&store.root(), &cfg).unwrap();
        let disc = build_discriminator(&store.root(), &cfg).unwrap();
        let k = &counts.correspondence;
        assert_eq!(
            params_under(&store, "corr.pose_adaptor."),
            k.pose_adaptor.params
        );
        assert_eq!(
            params_under(&store, "corr.image_adaptor."),
            k.image_adaptor.params
        );
        let shared = params_under(&store, "corr.shared.")
            + params_under(&store, "corr.theta.")
            + params_under(&store, "corr.phi.");
        assert_eq!(shared, k.shared.params);
        assert_eq!(params_under(&store, "gen."), counts.generator.total.params);
        assert_eq!(
            params_under(&store, "gen.attn."),
            counts.generator.attention.params
        );
        assert_eq!(params_under(&store, "disc."), counts.discriminator.params);

        let (label, exemplar) = inputs(&cfg, 1);
        let (out, macs) = measure_macs(|| side.forward(&label, &exemplar, false));
        let out = out.unwrap();
        assert_eq!(macs, counts.generator_side().macs);
        let d_in = Var::concat(&[&label, &out.fake], 1).unwrap();
        let (_, macs) = measure_macs(|| disc.forward(&d_in, false).unwrap());
        assert_eq!(macs, counts.discriminator.macs);
    }
}

#[test]
fn parameter_names_follow_the_module_tree() {
    let cfg = tiny();
    let store = ParamStore::new(9);
    GeneratorSide::new(&store.root(), &cfg).unwrap();
    build_discriminator(&store.root(), &cfg).unwrap();
    for name in [
        "corr.pose_adaptor.layer1.weight",
        "corr.pose_adaptor.layer1.weight_u",
        "corr.image_adaptor.layer5.weight_v",
        "corr.pose_adaptor.G_middle_1.conv_s.weight",
        "corr.image_adaptor.head_0.norm_0.mlp_shared.bias",
        "corr.shared.block_3.prelu.weight",
        "corr.theta.bias",
        "corr.phi.weight",
        "gen.fc.weight",
        "gen.head_0.norm_1.mlp_beta.weight",
        "gen.attn.gamma",
        "gen.attn.o.weight_u",
        "gen.conv_img.bias",
        "disc.scale_0.layer_0.bias",
        "disc.scale_1.layer_2.weight_u",
        "disc.scale_1.attn.theta.weight",
        "disc.scale_1.layer_4.bias",
    ] {
        assert!(store.contains(name), "{name} missing");
    }
    // No conv bias before an InstanceNorm, none on the attention projections.
    for name in [
        "corr.pose_adaptor.layer1.bias",
        "disc.scale_0.layer_1.bias",
        "gen.attn.theta.bias",
        "gen.fc.weight_u",
    ] {
        assert!(!store.contains(name), "{name} should not exist");
    }
    let layer1 = store.get("corr.pose_adaptor.layer1.weight").unwrap();
    assert_eq!(layer1.dims(), &[cfg.corr_nf, cfg.label_channels(), 3, 3]);
}

#[test]
fn eval_is_deterministic_and_training_updates_spectral_norm() {
    let cfg = tiny();
    let store = ParamStore::new(10);
    let side = GeneratorSide::new(&store.root(), &cfg).unwrap();
    let (label, exemplar) = inputs(&cfg, 1);
    let u = store.get("gen.up_3.conv_0.weight_u").unwrap();
    let u0 = u.value().to_vec().unwrap();
    let run = |training| {
        (side.forward(&label, &exemplar, training).unwrap().fake)
            .value()
            .to_vec()
            .unwrap()
    };
    assert_eq!(run(false), run(false));
    assert_eq!(u.value().to_vec().unwrap(), u0);
    run(true);
    assert_ne!(u.value().to_vec().unwrap(), u0);
}

#[test]
fn wrong_inputs_are_shape_errors() {
    let cfg = tiny();
    let store = ParamStore::new(11);
    let side = GeneratorSide::new(&store.root(), &cfg).unwrap();
    let disc = build_discriminator(&store.root(), &cfg).unwrap();
    let (label, exemplar) = inputs(&cfg, 2);
    let s = cfg.image_size;
    let bad = [
        // label with the cocosnet channel count under a paper-label config
        (
            Var::constant(Tensor::zeros([2, 20, s, s])),
            exemplar.clone(),
        ),
        // wrong size
        (
            Var::constant(Tensor::zeros([2, cfg.label_channels(), 32, 32])),
            Var::constant(Tensor::zeros([2, 3, 32, 32])),
        ),
        // batch mismatch
        (label.clone(), Var::constant(Tensor::zeros([1, 3, s, s]))),
        // exemplar with 4 channels
        (label.clone(), Var::constant(Tensor::zeros([2, 4, s, s]))),
    ];
    for (l, e) in bad {
        let r = side.forward(&l, &e, false);
        assert!(
            matches!(r, Err(Error::Shape { .. })),
            "{:?} {:?}",
            l.dims(),
            e.dims()
        );
    }
    let r = side
        .generator
        .forward(&Var::constant(Tensor::zeros([1, 5, s, s])), false);
    assert!(matches!(r, Err(Error::Shape { .. })));
    let r = disc.forward(&Var::constant(Tensor::zeros([1, 3, s, s])), false);
    assert!(matches!(r, Err(Error::Shape { .. })));
}
