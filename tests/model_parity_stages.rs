//! The temporal generator G1 and the face networks G2/D2 of the `tiny` config against the
//! PyTorch reference (tools/reference_stages.py), from the fixture written by
//! tools/make_stage_fixtures.py.
//!
//! - `g1`: a stage-1 G (engine init, seed `G_SEED`) copied into G1 by `init_from_stage1`, the
//!   widened (previous-frame) input channels then set to `perturbation` (the same formula in
//!   Python) so the previous frame really matters; the G1 output for fixed inputs in evaluation
//!   and training mode, and every parameter gradient of sum(out · g).
//! - `g2`: G2 on fixed crops: refined crop, input gradients, every parameter gradient.
//! - `d2`: D2 logits (evaluation, then training mode with its power iteration) and every
//!   parameter gradient of sum(logits · g).
//!
//! Weights are not in the fixture (the init is seeded by name): it holds a fingerprint of every
//! exported tensor, and the ignored `export` test writes the weights the reference loads. Large
//! inputs are a closed-form formula (`wave`, mirrored in Python) rather than stored.

mod common;

use common::parity::{self, load_fixture, param, t, tiny, wave, Entry};
use common::summary::{self, Report, SumTol};
use common::{Case, Tol};
use engine::autograd::no_grad;
use engine::model::{FaceDiscriminator, FaceGenerator, GeneratorSide, ModelConfig};
use engine::model::{TemporalGenerator, GEN_SCOPE};
use engine::nn::{Metadata, ParamStore};
use engine::{Tensor, Var};

const G_SEED: u64 = 1;
const G1_SEED: u64 = 2;
const FACE_SEED: u64 = 3;
const BATCH: usize = 2;

const FIXTURE: &str = "model_tiny_stages";
const CASES: [&str; 3] = ["g1", "g2", "d2"];

// ---- tolerances (observed maxima are printed by each test and quoted in the comments) ----------

/// Full outputs. Observed: G1 0.059 of the tolerance (max err 2.6e-6 of max |x|), G2 0.003,
/// D2 0.001.
const FORWARD: Tol = Tol {
    rtol: 1e-4,
    atol: 1e-5,
};
/// Parameter gradients, as summaries (sum, L2, max |x|, 64 sampled elements). Observed: G1
/// 0.014 of the tolerance (err 1.5e-5 of max |x|), G2 0.005, D2 0.003.
const GRAD: SumTol = SumTol {
    rtol: 1e-3,
    frac: 1e-4,
};
/// Input gradients of G2 (full tensors). Observed: 0.019 of the tolerance.
const INPUT_GRAD: Tol = Tol {
    rtol: 1e-3,
    atol: 1e-5,
};

struct Nets {
    stage1: ParamStore,
    g1_store: ParamStore,
    g1: TemporalGenerator,
    widened: usize,
    face_store: ParamStore,
    g2: FaceGenerator,
    d2: FaceDiscriminator,
}

/// The networks, G1 from stage 1 with its widened (previous-frame) input channels set to
/// `parity::perturbation` (the same formula in tools/fixture_io.py).
fn build() -> Nets {
    let cfg = tiny();
    let stage1 = ParamStore::new(G_SEED);
    GeneratorSide::new(&stage1.root(), &cfg).expect("stage-1 G");
    let g1_store = ParamStore::new(G1_SEED);
    let g1 = TemporalGenerator::new(&g1_store.root(), &cfg).expect("G1");
    let widened = g1.init_from_stage1(&g1_store, &stage1).expect("init G1");
    parity::perturb_previous_frame_channels(&g1_store, &cfg);
    let face_store = ParamStore::new(FACE_SEED);
    let g2 = FaceGenerator::new(&face_store.root(), &cfg).expect("G2");
    let d2 = FaceDiscriminator::new(&face_store.root(), &cfg).expect("D2");
    Nets {
        stage1,
        g1_store,
        g1,
        widened,
        face_store,
        g2,
        d2,
    }
}

/// What the reference loads: the stage-1 `gen.*` (G1 is rebuilt from it in Python) and the face
/// networks, with their spectral-norm buffers.
fn exported(n: &Nets) -> Vec<Entry> {
    let gen = format!("{GEN_SCOPE}.");
    n.stage1
        .entries()
        .into_iter()
        .filter(|e| e.name.starts_with(&gen))
        .chain(n.face_store.entries())
        .map(|e| (e.name, e.var.value(), format!("{:?}", e.kind)))
        .collect()
}

/// Writes `$ENGINE_EXPORT_DIR/model_tiny_stages_init.safetensors` for
/// tools/make_stage_fixtures.py.
#[test]
#[ignore = "run by tools/make_stage_fixtures.py with ENGINE_EXPORT_DIR set"]
fn export() {
    let n = build();
    let mut meta = Metadata::new();
    meta.insert("widened".into(), n.widened.to_string());
    let file = "model_tiny_stages_init.safetensors";
    parity::export_init(file, &tiny(), meta, exported(&n));
}

#[test]
fn fixture_is_consumed_whole() {
    common::assert_cases_exactly(&load_fixture(FIXTURE), FIXTURE, &CASES);
}

/// Fails, naming every changed tensor, when the engine's init no longer gives the exported
/// weights the fixture was made from (fingerprints `init.<name>` in case `g1`).
fn check_init(c: &Case, n: &Nets) {
    let stored = c.usize("exported").unwrap_or(0);
    parity::check_init(c, &exported(n), stored, "tools/make_stage_fixtures.py");
}

/// Fixed G1 inputs (formula, see `wave`): warped exemplar, label in [0, 1], previous frame, and
/// the upstream gradient g of the loss sum(out · g).
fn g1_inputs(cfg: &ModelConfig) -> [Tensor; 4] {
    let s = cfg.image_size;
    [
        wave(&[BATCH, 3, s, s], 0.013, 0.3, 0.0, 0.9),
        wave(&[BATCH, cfg.label_channels(), s, s], 0.0071, 1.1, 0.5, 0.5),
        wave(&[BATCH, 3, s, s], 0.029, 2.0, 0.0, 0.8),
        wave(&[BATCH, 3, s, s], 0.11, 0.7, 0.0, 1.0),
    ]
}

fn grads_of(rep: &mut Report, c: &Case, store: &ParamStore, prefix: &str) {
    for (name, p) in store.params() {
        if !name.starts_with(prefix) {
            continue;
        }
        let Some(g) = p.grad() else {
            rep.errs.push(format!("{name}: no gradient"));
            continue;
        };
        rep.summary("grad", c, &format!("grad.{name}"), &g, GRAD);
    }
}

/// G1 (from stage 1, widened channels perturbed): output in evaluation then training mode, and
/// every parameter gradient of sum(out_train · g).
#[test]
fn temporal_generator_matches_reference() {
    let fx = load_fixture(FIXTURE);
    let c = fx.case("g1").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(param(&c, "g_seed") as u64, G_SEED);
    assert_eq!(param(&c, "face_seed") as u64, FACE_SEED);
    assert_eq!(param(&c, "summary_n"), summary::SUMMARY_N);
    assert_eq!(param(&c, "fingerprint_n"), summary::FINGERPRINT_N);
    let cfg = tiny();
    assert_eq!(param(&c, "window"), cfg.temporal_window);
    assert_eq!(param(&c, "batch"), BATCH);
    let n = build();
    check_init(&c, &n);
    assert_eq!(
        param(&c, "widened"),
        n.widened,
        "widened conditioning convs"
    );
    let [warped, label, prev, g] = g1_inputs(&cfg).map(Var::constant);
    let mut rep = Report::default();
    let eval = no_grad(|| {
        n.g1.forward(&warped, &label, std::slice::from_ref(&prev), false)
    });
    match eval {
        Ok(out) => rep.full("forward", &c, "out_eval", &out.value(), FORWARD),
        Err(e) => rep.errs.push(format!("eval forward: {e}")),
    }
    let run = |rep: &mut Report| -> engine::Result<()> {
        let out =
            n.g1.forward(&warped, &label, std::slice::from_ref(&prev), true)?;
        rep.full("forward", &c, "out_train", &out.value(), FORWARD);
        out.backward_with(&g.value())?;
        Ok(())
    };
    if let Err(e) = run(&mut rep) {
        rep.errs.push(format!("training forward/backward: {e}"));
    }
    grads_of(&mut rep, &c, &n.g1_store, "temporal_gen.");
    rep.finish("g1", &c);
}

/// G2 on fixed crops: refined crop, gradients of both inputs and of every parameter.
#[test]
fn face_generator_matches_reference() {
    let fx = load_fixture(FIXTURE);
    let c = fx.case("g2").unwrap_or_else(|e| panic!("{e}"));
    let n = build();
    let label = Var::leaf(t(&c, "label_crop"), true);
    let crop = Var::leaf(t(&c, "crop"), true);
    let mut rep = Report::default();
    let run = |rep: &mut Report| -> engine::Result<()> {
        let out = n.g2.forward(&label, &crop, true)?;
        rep.full("forward", &c, "refined", &out.value(), FORWARD);
        out.backward_with(&t(&c, "g"))?;
        for (key, v) in [("dlabel_crop", &label), ("dcrop", &crop)] {
            match v.grad() {
                Some(gr) => rep.full("input_grad", &c, key, &gr, INPUT_GRAD),
                None => rep.errs.push(format!("no gradient reached {key}")),
            }
        }
        Ok(())
    };
    if let Err(e) = run(&mut rep) {
        rep.errs.push(format!("G2: {e}"));
    }
    grads_of(&mut rep, &c, &n.face_store, "face_gen.");
    rep.finish("g2", &c);
}

/// D2 on a fixed input: logits in evaluation mode, then in training mode (one power iteration
/// per SN conv), and every parameter gradient of sum(logits_train · g).
#[test]
fn face_discriminator_matches_reference() {
    let fx = load_fixture(FIXTURE);
    let c = fx.case("d2").unwrap_or_else(|e| panic!("{e}"));
    let n = build();
    let x = Var::constant(t(&c, "x"));
    let mut rep = Report::default();
    match no_grad(|| n.d2.forward(&x, false)) {
        Ok(l) => rep.full("forward", &c, "logits_eval", &l.value(), FORWARD),
        Err(e) => rep.errs.push(format!("eval forward: {e}")),
    }
    let run = |rep: &mut Report| -> engine::Result<()> {
        let l = n.d2.forward(&x, true)?;
        rep.full("forward", &c, "logits_train", &l.value(), FORWARD);
        l.backward_with(&t(&c, "g"))?;
        Ok(())
    };
    if let Err(e) = run(&mut rep) {
        rep.errs.push(format!("D2: {e}"));
    }
    grads_of(&mut rep, &c, &n.face_store, "face_disc.");
    rep.finish("d2", &c);
}

/// The fixture's inputs are consumed and the engine refuses G1 inputs of the wrong shape.
#[test]
fn bad_inputs_are_errors() {
    let cfg = tiny();
    let n = build();
    let [warped, label, prev, _] = g1_inputs(&cfg).map(Var::constant);
    // Two previous frames for l = 2, and label/warped swapped.
    assert!(n
        .g1
        .forward(&warped, &label, &[prev.clone(), prev.clone()], false)
        .is_err());
    assert!(n.g1.forward(&label, &warped, &[prev], false).is_err());
    let small = Var::constant(Tensor::zeros([1, 3, 8, 8]));
    assert!(n.g2.forward(&small, &small, false).is_err());
    assert!(n.d2.forward(&small, false).is_err());
}
