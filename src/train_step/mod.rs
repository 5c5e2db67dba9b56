//! One training iteration per stage of Algorithm 1 (MODEL.md §5): each a generator step then a
//! discriminator step on the same fake, detached, with Adam on both sides.
//!
//! - `stage1`: correspondence + translation generator G and the image discriminator D.
//! - `temporal`: stage 2, the temporal generator G1 and discriminator D1 over windows of l frames
//!   (the stage-1 correspondence frozen).
//! - `face`: stage 3, the face residual generator G2 and face discriminator D2 (the stage-1
//!   correspondence and G frozen).
//!
//! Shared here: `LossTerms` (what a step reports), the loss accumulator, the fake/real split of
//! a discriminator pass, and the frozen stage-1 networks of the later stages.

pub mod device;
pub mod face;
pub mod stage1;
pub mod temporal;

pub use face::{FaceBatch, FaceTrainer};
pub use stage1::{Stage1Batch, Stage1Trainer};
pub use temporal::{TemporalBatch, TemporalTrainer};

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::loss;
use crate::model::config::{GanLoss, LossConfig};
use crate::model::vgg19::VggFeatures;
use crate::model::{GeneratorSide, ModelConfig, ScaleOutput};
use crate::nn::ParamStore;
use crate::optim::{Adam, AdamConfig};
use crate::tensor::Tensor;

/// The named loss values of one iteration (unweighted terms, then the weighted totals).
#[derive(Clone, Debug, Default)]
pub struct LossTerms {
    pub terms: Vec<(&'static str, f32)>,
}

impl LossTerms {
    pub fn get(&self, name: &str) -> Option<f32> {
        self.terms.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// Adds `w · term` to the running total and records the raw term.
pub(crate) struct Acc {
    pub(crate) total: Option<Var>,
    pub(crate) terms: Vec<(&'static str, f32)>,
}

impl Acc {
    pub(crate) fn new() -> Self {
        Acc {
            total: None,
            terms: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, name: &'static str, w: f32, term: Var) -> Result<()> {
        self.terms.push((name, term.value().item()?));
        let t = term.mul_scalar(w)?;
        self.total = Some(match self.total.take() {
            None => t,
            Some(acc) => acc.add(&t)?,
        });
        Ok(())
    }

    /// The weighted total (also recorded as `total_name`) and the recorded terms.
    pub(crate) fn finish(
        mut self,
        op: &'static str,
        total_name: &'static str,
    ) -> Result<(Var, Vec<(&'static str, f32)>)> {
        let total = self
            .total
            .take()
            .ok_or_else(|| Error::invalid(op, "no loss terms"))?;
        self.terms.push((total_name, total.value().item()?));
        Ok((total, self.terms))
    }
}

/// Per scale, the fake and real halves of a discriminator's patch logits on a [fake; real] batch.
pub(crate) struct LogitSplit {
    pub(crate) fake: Vec<Var>,
    pub(crate) real: Vec<Var>,
}

/// Splits the logits of each scale at sample `b` (the first `b` samples are the fakes).
pub(crate) fn split_logits(outs: &[ScaleOutput], b: usize) -> Result<LogitSplit> {
    let mut split = LogitSplit {
        fake: Vec::with_capacity(outs.len()),
        real: Vec::with_capacity(outs.len()),
    };
    for s in outs {
        split.fake.push(s.logits.narrow(0, 0, b)?);
        split.real.push(s.logits.narrow(0, b, b)?);
    }
    Ok(split)
}

/// The G-side and D-side Adam optimisers over every parameter of each store, at the config's
/// rates, betas and eps.
pub(crate) fn optimisers(
    cfg: &ModelConfig,
    g: &ParamStore,
    d: &ParamStore,
) -> Result<(Adam, Adam)> {
    let o = &cfg.optim;
    let g_cfg = AdamConfig {
        lr: o.g_lr,
        betas: o.g_betas,
        eps: o.g_eps,
    };
    let d_cfg = AdamConfig {
        lr: o.d_lr,
        betas: o.d_betas,
        eps: o.d_eps,
    };
    Ok((Adam::new(g, g_cfg)?, Adam::new(d, d_cfg)?))
}

/// The tail every discriminator step shares: the adversarial loss on the fake and real logits,
/// weighted by `weight`, recorded as (`name`, `d_total`), backpropagated and stepped.
pub(crate) fn finish_d_step(
    d_opt: &mut Adam,
    kind: GanLoss,
    (fake, real): (&[Var], &[Var]),
    weight: f32,
    name: &'static str,
    lr_factor: f32,
) -> Result<[(&'static str, f32); 2]> {
    let d_loss = loss::discriminator_loss(kind, fake, real)?;
    let d_total = d_loss.mul_scalar(weight)?;
    let terms = [
        (name, d_loss.value().item()?),
        ("d_total", d_total.value().item()?),
    ];
    d_total.backward()?;
    d_opt.step(lr_factor)?;
    Ok(terms)
}

impl Acc {
    /// The VGG19 L1 (layer-weighted) and perceptual-MSE terms on the same features.
    pub(crate) fn add_vgg(
        &mut self,
        w: &LossConfig,
        fake: &VggFeatures,
        real: &VggFeatures,
    ) -> Result<()> {
        self.add(
            "vgg",
            w.vgg,
            loss::vgg_l1(fake, real, &w.vgg_layer_weights)?,
        )?;
        self.add(
            "perceptual_mse",
            w.perceptual_mse,
            loss::perceptual_mse(fake, real)?,
        )
    }
}

/// The stage-1 correspondence and generator over a store that already holds every `corr.*` and
/// `gen.*` tensor (a trained stage-1 store, or one a checkpoint was loaded into). A store that
/// lacks one is an error: the frozen networks must never be a fresh random init by accident.
pub(crate) fn frozen_stage1(
    op: &'static str,
    store: &ParamStore,
    cfg: &ModelConfig,
) -> Result<GeneratorSide> {
    let before = store.len();
    let side = GeneratorSide::new(&store.root(), cfg)?;
    let names = store.names();
    if let Some(missing) = names.get(before) {
        return Err(Error::invalid(
            op,
            format!(
                "the stage-1 store lacks `{missing}` ({} of the stage-1 tensors missing): \
                 pass the trained `corr.*`/`gen.*` store",
                names.len() - before
            ),
        ));
    }
    Ok(side)
}

/// Checks that `t` is [b, c, s, s]; names the tensor in the error.
pub(crate) fn check_nchw(
    op: &'static str,
    what: &str,
    t: &Tensor,
    b: usize,
    c: usize,
    s: usize,
) -> Result<()> {
    if t.dims() != [b, c, s, s] {
        return Err(Error::shape(
            op,
            format!("{what} {:?}, expected [{b}, {c}, {s}, {s}]", t.dims()),
        ));
    }
    Ok(())
}
