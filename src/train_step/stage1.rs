//! One stage-1 training iteration (MODEL.md §5, Algorithm 1 step 1): a generator-side step
//! (correspondence + translation generator, all stage-1 losses) then a discriminator step on the
//! same fake, detached; Adam on both sides with the linear-decay factor.
//!
//! The three networks live in separate stores: `g_store` (`corr.*`, `gen.*`, trained by the G
//! optimiser), `d_store` (`disc.*`, the D optimiser) and the frozen VGG19 in its own store.

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::loss;
use crate::model::config::ContextTarget;
use crate::model::vgg19::{Vgg19, VggFeatures};
use crate::model::{build_discriminator, GeneratorSide, ModelConfig, MultiscaleDiscriminator};
use crate::nn::ParamStore;
use crate::optim::Adam;
use crate::tensor::Tensor;

use super::{finish_d_step, optimisers, Acc, LossTerms};

/// One training sample batch: the target frame's pose label, an exemplar (another frame of the
/// same video) and the ground-truth frame, all at `image_size`.
pub struct Stage1Batch {
    /// [B, C_label, S, S].
    pub label: Tensor,
    /// [B, 3, S, S] in [-1, 1].
    pub exemplar: Tensor,
    /// [B, 3, S, S] in [-1, 1].
    pub gt: Tensor,
}

/// Networks, stores and optimisers of stage 1.
pub struct Stage1Trainer {
    pub cfg: ModelConfig,
    pub g_store: ParamStore,
    pub d_store: ParamStore,
    pub gen: GeneratorSide,
    pub disc: MultiscaleDiscriminator,
    pub vgg: Vgg19,
    pub g_opt: Adam,
    pub d_opt: Adam,
}

/// Per scale, the fake and real halves of D's outputs on a [fake; real] batch.
struct DSplit {
    fake_logits: Vec<Var>,
    real_logits: Vec<Var>,
    fake_feats: Vec<Vec<Var>>,
    real_feats: Vec<Vec<Var>>,
}

impl Stage1Trainer {
    /// Builds the networks of `cfg` (seeded) around a given VGG19 and the two optimisers.
    pub fn new(cfg: &ModelConfig, seed: u64, vgg: Vgg19) -> Result<Self> {
        let g_store = ParamStore::new(seed);
        let d_store = ParamStore::new(seed ^ 0x5eed_d15c);
        let gen = GeneratorSide::new(&g_store.root(), cfg)?;
        let disc = build_discriminator(&d_store.root(), cfg)?;
        let (g_opt, d_opt) = optimisers(cfg, &g_store, &d_store)?;
        Ok(Stage1Trainer {
            cfg: cfg.clone(),
            g_store,
            d_store,
            gen,
            disc,
            vgg,
            g_opt,
            d_opt,
        })
    }

    /// D on [fake; real] (each concatenated with the label) in one pass, split back.
    fn discriminate(&self, label: &Var, fake: &Var, real: &Var) -> Result<DSplit> {
        let b = label.dims()[0];
        let x = Var::concat(
            &[
                &Var::concat(&[label, fake], 1)?,
                &Var::concat(&[label, real], 1)?,
            ],
            0,
        )?;
        let mut out = DSplit {
            fake_logits: Vec::new(),
            real_logits: Vec::new(),
            fake_feats: Vec::new(),
            real_feats: Vec::new(),
        };
        for s in self.disc.forward(&x, true)? {
            out.fake_logits.push(s.logits.narrow(0, 0, b)?);
            out.real_logits.push(s.logits.narrow(0, b, b)?);
            let halves = |start| {
                s.features
                    .iter()
                    .map(|f| f.narrow(0, start, b))
                    .collect::<Result<Vec<_>>>()
            };
            out.fake_feats.push(halves(0)?);
            out.real_feats.push(halves(b)?);
        }
        Ok(out)
    }

    fn check_batch(&self, batch: &Stage1Batch) -> Result<()> {
        let s = self.cfg.image_size;
        let b = batch.gt.dims().first().copied().unwrap_or(0);
        let ok = |t: &Tensor, c: usize| t.dims() == [b, c, s, s];
        if b == 0
            || !ok(&batch.label, self.cfg.label_channels())
            || !ok(&batch.exemplar, 3)
            || !ok(&batch.gt, 3)
        {
            return Err(Error::shape(
                "train_step",
                format!(
                    "label {:?}, exemplar {:?}, gt {:?}: expected [B, {}, {s}, {s}] and [B, 3, {s}, {s}]",
                    batch.label.dims(),
                    batch.exemplar.dims(),
                    batch.gt.dims(),
                    self.cfg.label_channels()
                ),
            ));
        }
        Ok(())
    }

    /// One iteration: G step then D step at `lr_factor` × the base rates. Returns every
    /// unweighted term, `g_total`, and `d_real_fake` (the D loss before its weight) and `d_total`.
    pub fn step(&mut self, batch: &Stage1Batch, lr_factor: f32) -> Result<LossTerms> {
        self.check_batch(batch)?;
        let label = Var::constant(batch.label.clone());
        let exemplar = Var::constant(batch.exemplar.clone());
        let gt = Var::constant(batch.gt.clone());
        let (mut terms, fake) = self.generator_step(&label, &exemplar, &gt, lr_factor)?;
        terms.extend(self.discriminator_step(&label, &fake, &gt, lr_factor)?);
        Ok(LossTerms { terms })
    }

    fn generator_step(
        &mut self,
        label: &Var,
        exemplar: &Var,
        gt: &Var,
        lr_factor: f32,
    ) -> Result<(Vec<(&'static str, f32)>, Var)> {
        let w = self.cfg.loss.clone();
        self.g_opt.zero_grad();
        let out = self.gen.forward(label, exemplar, true)?;
        let fake = out.fake;
        let mut acc = Acc::new();
        let d = self.discriminate(label, &fake, gt)?;
        acc.add(
            "gan_g",
            w.gan,
            loss::generator_loss(w.gan_loss, &d.fake_logits)?,
        )?;
        acc.add(
            "feature_matching",
            w.feature_matching,
            loss::feature_matching(&d.fake_feats, &d.real_feats)?,
        )?;
        let vgg_fake = self.vgg.forward(&fake)?;
        let vgg_gt = crate::autograd::no_grad(|| self.vgg.forward(gt))?;
        acc.add_vgg(&w, &vgg_fake, &vgg_gt)?;
        let vgg_target: VggFeatures = match w.context_target {
            ContextTarget::GroundTruth => vgg_gt,
            ContextTarget::Exemplar => crate::autograd::no_grad(|| self.vgg.forward(exemplar))?,
        };
        acc.add(
            "context",
            w.context,
            loss::contextual_vgg_loss(
                &vgg_fake,
                &vgg_target,
                &w.context_layer_weights,
                w.context_bandwidth,
            )?,
        )?;
        let gt_features = self.gen.corr.image_features(gt, true)?;
        acc.add(
            "domain_alignment",
            w.domain_alignment,
            loss::domain_alignment(&out.corr.pose_features, &gt_features)?,
        )?;
        acc.add(
            "reconstruction",
            w.reconstruction,
            loss::reconstruction(&fake, gt)?,
        )?;
        acc.add(
            "warp_self",
            w.warp_self,
            loss::warp_self(&out.corr.warped, gt)?,
        )?;
        if let Some(cycle) = &out.corr.cycle {
            acc.add("warp_cycle", w.warp_cycle, cycle.l1_loss(exemplar)?)?;
        }
        let total = acc
            .total
            .ok_or_else(|| Error::invalid("train_step", "no generator loss terms"))?;
        acc.terms.push(("g_total", total.value().item()?));
        total.backward()?;
        self.g_opt.step(lr_factor)?;
        Ok((acc.terms, fake.detach()))
    }

    fn discriminator_step(
        &mut self,
        label: &Var,
        fake: &Var,
        gt: &Var,
        lr_factor: f32,
    ) -> Result<Vec<(&'static str, f32)>> {
        // The G step's backward also reached D's parameters: start D from clean gradients.
        self.d_opt.zero_grad();
        let d = self.discriminate(label, fake, gt)?;
        let logits = (&d.fake_logits[..], &d.real_logits[..]);
        let (kind, weight) = (self.cfg.loss.gan_loss, self.cfg.loss.gan);
        let terms = finish_d_step(&mut self.d_opt, kind, logits, weight, "gan_d", lr_factor)?;
        Ok(terms.to_vec())
    }
}
