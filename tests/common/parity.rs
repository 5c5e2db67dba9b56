//! Shared pieces of the model parity tests (tests/model_parity*.rs) and the stage smoke tests:
//! panicking fixture access, the engine's init export and its fingerprint check, the closed-form
//! inputs mirrored in tools/fixture_io.py, and the checks of a training run against the
//! reference (first-step gradients, spectral-norm u/v and Adam updates, loss terms).
//!
//! Each test keeps its own tolerances (with the maxima it observed); only the rules are here.
#![allow(dead_code)]

use super::summary::{
    check_fingerprint, check_summary_scaled, check_update, Closeness, Report, StepTol, SumTol,
};
use super::{check_close, Case, Fixture, Tol};
use engine::autograd::no_grad;
use engine::model::ModelConfig;
use engine::nn::{save_tensors, Metadata, ParamStore};
use engine::train_step::LossTerms;
use engine::{Device, Tensor, Var};
use std::collections::BTreeMap;

/// The `LossTerms` names of the stage-2 (`TemporalTrainer`) and stage-3 (`FaceTrainer`) steps.
pub const TEMPORAL_TERMS: [&str; 7] = [
    "gan_ts",
    "reconstruction",
    "vgg",
    "perceptual_mse",
    "g_total",
    "gan_ts_d",
    "d_total",
];
pub const FACE_TERMS: [&str; 6] = [
    "gan_face",
    "face_vgg",
    "face_l1",
    "g_total",
    "gan_face_d",
    "d_total",
];

pub fn tiny() -> ModelConfig {
    ModelConfig::preset("tiny").expect("tiny preset")
}

// ---- fixture access (a missing fixture or key is a test failure) ------------------------------

pub fn load_fixture(stem: &str) -> Fixture {
    Fixture::load(stem).unwrap_or_else(|e| panic!("{e}"))
}

pub fn case<'a>(fx: &'a Fixture, name: &str) -> Case<'a> {
    fx.case(name).unwrap_or_else(|e| panic!("{e}"))
}

pub fn param(c: &Case, key: &str) -> usize {
    c.usize(key).unwrap_or_else(|e| panic!("{e}"))
}

pub fn t(c: &Case, key: &str) -> Tensor {
    c.t(key).unwrap_or_else(|e| panic!("{e}"))
}

// ---- closed-form inputs (the same formulas are in tools/fixture_io.py) -------------------------

/// Element i (flat, over the whole tensor) of `offset + amp · sin(freq · i + phase)`, in f64
/// rounded to f32: inputs too large to store in a fixture.
pub fn wave(dims: &[usize], freq: f64, phase: f64, offset: f64, amp: f64) -> Tensor {
    let n: usize = dims.iter().product();
    let v = (0..n)
        .map(|i| (offset + amp * (freq * i as f64 + phase).sin()) as f32)
        .collect();
    Tensor::from_vec(v, dims.to_vec()).expect("wave")
}

/// Value of element i (flat, over the whole [O, C, k, k] weight) of a previous-frame input
/// channel of G1's conditioning convs.
pub fn perturbation(i: usize) -> f32 {
    (0.02 * (0.37 * i as f64 + 1.0).sin()) as f32
}

/// Sets G1's previous-frame input channels in `store` (zero after `init_from_stage1`) to
/// `perturbation`, so that the previous frames really enter its output.
pub fn perturb_previous_frame_channels(store: &ParamStore, cfg: &ModelConfig) {
    let (base, full) = (cfg.generator_cond_channels(), cfg.temporal_cond_channels());
    for (name, p) in store.params() {
        let d = p.dims().to_vec();
        let cond = name.ends_with(".fc.weight") || name.ends_with(".mlp_shared.weight");
        if !cond || d.len() != 4 || d[1] != full {
            continue;
        }
        let kk = d[2] * d[3];
        let mut v = p.value().to_vec().expect("weight");
        for (i, x) in v.iter_mut().enumerate() {
            if (i / kk) % full >= base {
                *x = perturbation(i);
            }
        }
        let t = Tensor::from_vec(v, d).expect("perturbed");
        store.set(&name, t).expect("set");
    }
}

// ---- the engine's init: exported for the generator, fingerprinted in the fixture --------------

/// (name, value, kind) of an exported tensor.
pub type Entry = (String, Tensor, String);

/// Every tensor of the stores, by name, with its kind.
pub fn entries(stores: &[&ParamStore]) -> Vec<Entry> {
    stores
        .iter()
        .flat_map(|s| s.entries())
        .map(|e| (e.name, e.var.value(), format!("{:?}", e.kind)))
        .collect()
}

/// Writes `entries`, their kinds, the config and `meta` to `$ENGINE_EXPORT_DIR/<file>` (the
/// ignored `export` tests, run by the generators through tools/fixture_io.py).
pub fn export_init(file: &str, cfg: &ModelConfig, mut meta: Metadata, entries: Vec<Entry>) {
    let dir = std::env::var("ENGINE_EXPORT_DIR").expect("set ENGINE_EXPORT_DIR");
    meta.insert("config".into(), cfg.to_json().expect("config json"));
    let kinds: Vec<String> = entries.iter().map(|(n, _, k)| format!("{n}:{k}")).collect();
    meta.insert("kinds".into(), kinds.join(","));
    let tensors: Vec<(String, Tensor)> = entries.into_iter().map(|(n, v, _)| (n, v)).collect();
    let path = std::path::Path::new(&dir).join(file);
    save_tensors(&path, &tensors, &meta).expect("write export");
    println!("wrote {}", path.display());
}

/// Fails, naming every changed tensor, when the engine's init no longer gives the tensors the
/// fixture was made from (fingerprints `init.<name>`; `stored` of them in the fixture).
pub fn check_init(c: &Case, entries: &[Entry], stored: usize, generator: &str) {
    let mut bad: Vec<String> = entries
        .iter()
        .filter_map(|(name, v, _)| {
            c.t(&format!("init.{name}"))
                .and_then(|fp| check_fingerprint(name, v, &fp))
                .err()
        })
        .collect();
    if stored != entries.len() {
        bad.push(format!(
            "{stored} initial tensors in the fixture, the engine has {}",
            entries.len()
        ));
    }
    assert!(
        bad.is_empty(),
        "the engine's init differs from the fixture's: regenerate with {generator}\n{}",
        bad.join("\n")
    );
}

// ---- forward intermediates ----------------------------------------------------------------------

pub fn buffers_of(stores: &[&ParamStore]) -> Vec<(String, Var)> {
    stores.iter().flat_map(|s| s.buffers()).collect()
}

/// Runs `forward` without gradients (it may advance the spectral-norm buffers of `stores`), then
/// puts the buffers back so that the step that follows starts from the same state.
pub fn with_buffers_restored(
    stores: &[&ParamStore],
    rep: &mut Report,
    forward: impl FnOnce(&mut Report) -> engine::Result<()>,
) {
    let saved: Vec<Tensor> = buffers_of(stores).iter().map(|(_, v)| v.value()).collect();
    if let Err(e) = no_grad(|| forward(rep)) {
        rep.errs.push(format!("forward: {e}"));
    }
    for ((name, var), value) in buffers_of(stores).iter().zip(saved) {
        var.set_value(value)
            .unwrap_or_else(|e| panic!("restoring {name}: {e}"));
    }
}

// ---- training iterations ------------------------------------------------------------------------

/// Loss terms of the first iteration, and of the later ones (after the f32 and f64 trajectories
/// start to drift); relative to the term, the absolute part covers the near-zero GAN terms.
pub const LOSS: [Tol; 2] = [
    Tol {
        rtol: 1e-4,
        atol: 1e-5,
    },
    Tol {
        rtol: 3e-3,
        atol: 1e-4,
    },
];
/// Spectral-norm u/v after the first iteration, and after the last (they follow the drifting
/// weights).
pub const SN_VECTORS: [SumTol; 2] = [
    SumTol {
        rtol: 1e-4,
        frac: 1e-5,
    },
    SumTol {
        rtol: 1e-2,
        frac: 1e-2,
    },
];

/// The tolerance of parameter updates after iteration `it` (1, or the last of 3), in units of
/// the side's lr. Adam divides each gradient element by its own running magnitude, so an element
/// whose gradient is near 0 (or near eps) turns a tiny gradient error into a visible update
/// error, and over 3 steps the f32 and f64 trajectories drift apart (PyTorch's own float32 run
/// drifts from float64 as far): after 1 step every sampled element is held to 0.25 lr; after 3
/// the checks are statistical (a few outliers within 4 lr, and one opposite step of 2 lr in the
/// sum and the norm).
pub fn step_tol(lr: f32, it: usize) -> StepTol {
    let lr = f64::from(lr);
    if it == 1 {
        StepTol {
            lr,
            atol_lr: 0.25,
            outliers: 0,
            hard_lr: 0.25,
            norm_rtol: 1e-3,
        }
    } else {
        StepTol {
            lr,
            atol_lr: 0.5,
            outliers: 4,
            hard_lr: 4.0,
            norm_rtol: 5e-2,
        }
    }
}

/// Whether the reference gradient of `name` (in `group`: grad_g or grad_d) is 0 up to float64
/// rounding next to its conv's weight gradient: a bias whose effect cancels exactly (followed by
/// an instance norm, or the last D bias under hinge while every logit lies inside the margin:
/// the real and fake patch means then cancel).
pub fn zero_gradient(c: &Case, group: &str, name: &str) -> bool {
    let Some(conv) = name.strip_suffix(".bias") else {
        return false;
    };
    let max_of = |k: String| c.t(&k).ok().and_then(|t| t.to_vec().ok()).map(|v| v[2]);
    match (
        max_of(format!("{group}.{name}")),
        max_of(format!("{group}.{conv}.weight")),
    ) {
        (Some(b), Some(w)) => b <= 1e-9 * w,
        _ => false,
    }
}

/// One trained side: fixture group (grad_g / grad_d), parameters, lr, gradient tolerance.
pub type Side = (&'static str, Vec<(String, Var)>, f32, SumTol);

/// Handles to a trainer's trained tensors (a clone of a `Var` shares its value and gradient), so
/// they can be read between steps while the trainer is borrowed mutably.
pub struct Trained {
    /// The G side, then the D side.
    pub sides: [Side; 2],
    pub buffers: Vec<(String, Var)>,
    /// Every parameter before the first step.
    pub init: BTreeMap<String, Tensor>,
}

impl Trained {
    /// `grad`: the gradient tolerances of the G and D sides.
    pub fn new(cfg: &ModelConfig, g: &ParamStore, d: &ParamStore, grad: [SumTol; 2]) -> Self {
        let o = &cfg.optim;
        let init = [g, d]
            .iter()
            .flat_map(|s| s.params())
            .map(|(n, v)| (n, v.value()))
            .collect();
        Trained {
            sides: [
                ("grad_g", g.params(), o.g_lr, grad[0]),
                ("grad_d", d.params(), o.d_lr, grad[1]),
            ],
            buffers: buffers_of(&[g, d]),
            init,
        }
    }
}

/// Gradients of the first G step and D step, read after the iteration: the D step starts from
/// cleared gradients and its input is detached, so neither side's gradients mix. A gradient
/// that is 0 in exact arithmetic (`zero_gradient`) is rounding noise in f32, so it is judged on
/// the scale of its conv's weight gradient.
pub fn check_grads(c: &Case, t: &Trained, rep: &mut Report) {
    for (group, params, _, tol) in &t.sides {
        for (name, p) in params {
            let key = format!("{group}.{name}");
            let Some(grad) = p.grad() else {
                rep.errs.push(format!("{name}: no gradient after step 1"));
                continue;
            };
            let sibling = name
                .strip_suffix(".bias")
                .map(|conv| format!("{group}.{conv}.weight"))
                .filter(|_| zero_gradient(c, group, name));
            let r = c.t(&key).and_then(|want| {
                let scale = match &sibling {
                    Some(k) => f64::from(c.t(k)?.to_vec().map_err(|e| e.to_string())?[2]),
                    None => 0.0,
                };
                check_summary_scaled(&format!("{}.{key}", c.id()), &grad, &want, *tol, scale)
            });
            rep.record(group, &key, r);
        }
    }
}

/// After iteration `it` (1 or the last): the u/v buffers and every parameter's update.
pub fn check_state(c: &Case, it: usize, t: &Trained, rep: &mut Report) {
    let (sn, sn_tol, up) = if it == 1 {
        ("sn_1", SN_VECTORS[0], "update_1")
    } else {
        ("sn_3", SN_VECTORS[1], "update_3")
    };
    for (name, b) in &t.buffers {
        rep.summary(sn, c, &format!("sn{it}.{name}"), &b.value(), sn_tol);
    }
    for (group, params, lr, _) in &t.sides {
        for (name, p) in params {
            let key = format!("update{it}.{name}");
            let mut tol = step_tol(*lr, it);
            if zero_gradient(c, group, name) {
                // Its f32 gradient is noise that Adam turns into updates of up to ~lr per
                // step: only Adam's bound is checked.
                tol.atol_lr = 1.5 * it as f64;
                tol.hard_lr = tol.hard_lr.max(tol.atol_lr);
                tol.norm_rtol = f64::INFINITY;
            }
            let r = c.t(&key).and_then(|want| {
                let id = format!("{}.{key}", c.id());
                check_update(&id, &p.value(), &t.init[name], &want, tol)
            });
            rep.record(up, &key, r);
        }
    }
}

/// The case's `iterations` iterations through `step`: gradients after the first, the state
/// after the first and the last; the loss terms of every iteration are returned.
pub fn run_iterations(
    c: &Case,
    t: &Trained,
    rep: &mut Report,
    mut step: impl FnMut() -> engine::Result<LossTerms>,
) -> Vec<LossTerms> {
    let iterations = param(c, "iterations");
    let mut terms = Vec::with_capacity(iterations);
    for it in 1..=iterations {
        terms.push(step().unwrap_or_else(|e| panic!("{}: step {it}: {e}", c.id())));
        if it == 1 {
            check_grads(c, t, rep);
        }
        if it == 1 || it == iterations {
            check_state(c, it, t, rep);
        }
    }
    terms
}

/// Every term of `names` at every iteration against `loss.<term>` (one value per iteration),
/// under `LOSS`. A term the trainer does not report is NaN, and fails.
pub fn check_losses(c: &Case, names: &[&str], per_iter: &[LossTerms], rep: &mut Report) {
    for name in names {
        let key = format!("loss.{name}");
        let got: Vec<f32> = per_iter
            .iter()
            .map(|t| t.get(name).unwrap_or(f32::NAN))
            .collect();
        let r = c.t(&key).and_then(|want| {
            let want = want.to_vec().map_err(|e| e.to_string())?;
            if got.len() != want.len() {
                return Err(format!("{key}: {} iterations vs {}", got.len(), want.len()));
            }
            let mut worst = Closeness::default();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let tol = if i == 0 { LOSS[0] } else { LOSS[1] };
                let one = |v: f32| Tensor::from_vec(vec![v], [1]).map_err(|e| e.to_string());
                let what = format!("{}.{key} (iteration {})", c.id(), i + 1);
                let d = check_close(&what, &one(*g)?, &one(*w)?, tol)?;
                worst = worst.max(Closeness {
                    share: f64::from(d.share),
                    err: f64::from(d.max_rel),
                });
            }
            Ok(worst)
        });
        rep.record("loss", &key, r);
    }
}

/// Where the training parity tests run the trainers: the CPU, or the GPU with
/// `ENGINE_TEST_DEVICE=cuda` (the same fixtures and tolerances: the issue's "same parity test on
/// CUDA"). The init is checked on the CPU before the move.
pub fn test_device() -> Device {
    match std::env::var("ENGINE_TEST_DEVICE").as_deref() {
        Err(_) | Ok("cpu") => Device::Cpu,
        Ok("cuda") => Device::Cuda,
        Ok(other) => panic!("ENGINE_TEST_DEVICE={other}: expected cpu or cuda"),
    }
}
