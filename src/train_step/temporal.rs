//! Stage 2 (Algorithm 1 step 2): the temporal generator G1 and discriminator D1.
//!
//! A batch holds n ≥ l consecutive (label, frame) pairs of a clip and an exemplar. The frozen
//! stage-1 correspondence warps the exemplar to every label (one batched pass, no gradient, eval
//! mode so its spectral-norm buffers stay as trained); G1 then generates the n frames in order,
//! each conditioned on the (up to) l−1 frames it generated before (zeros before the clip start).
//! D1 judges every window of l consecutive frames.
//!
//! G loss = `temporal`·GAN(D1 on the fake windows) + per frame `reconstruction`·L1 +
//! `vgg`·VGG L1 + `perceptual_mse`·MSE(relu4_2): the paper's L_ts plus the stage-1 image terms
//! that keep each frame on the ground truth (Everybody Dance Now trains its temporal stage with
//! its image losses alongside the temporal GAN). No image discriminator is trained here, and
//! the context / warp terms stay with the frozen correspondence. D loss = `temporal`·D-loss on
//! [fake windows; real windows].

use crate::autograd::{no_grad, Var};
use crate::error::{Error, Result};
use crate::loss;
use crate::model::temporal::{build_temporal_discriminator, temporal_window_input};
use crate::model::vgg19::Vgg19;
use crate::model::{GeneratorSide, ModelConfig, MultiscaleDiscriminator, TemporalGenerator};
use crate::nn::ParamStore;
use crate::optim::Adam;
use crate::tensor::Tensor;

use super::{check_nchw, finish_d_step, frozen_stage1, optimisers, split_logits, Acc, LossTerms};

const OP: &str = "temporal_train_step";

/// n ≥ l consecutive frames of one clip per sample, oldest first.
pub struct TemporalBatch {
    /// n × [B, C_label, S, S].
    pub labels: Vec<Tensor>,
    /// n × [B, 3, S, S] in [-1, 1]: the ground-truth frames.
    pub frames: Vec<Tensor>,
    /// [B, 3, S, S] in [-1, 1]: another frame of the same video.
    pub exemplar: Tensor,
}

/// Networks, stores and optimisers of stage 2.
pub struct TemporalTrainer {
    pub cfg: ModelConfig,
    /// The trained stage-1 `corr.*` / `gen.*` (never updated here).
    pub frozen: ParamStore,
    pub stage1: GeneratorSide,
    /// `temporal_gen.*`, trained by `g_opt`.
    pub g_store: ParamStore,
    /// `temporal_disc.*`, trained by `d_opt`.
    pub d_store: ParamStore,
    pub gen: TemporalGenerator,
    pub disc: MultiscaleDiscriminator,
    pub vgg: Vgg19,
    pub g_opt: Adam,
    pub d_opt: Adam,
}

impl TemporalTrainer {
    /// G1 initialised from the stage-1 generator in `stage1` (which must hold every `corr.*` and
    /// `gen.*` tensor), D1 seeded from `seed`, Adam at the config's rates.
    pub fn new(cfg: &ModelConfig, stage1: ParamStore, seed: u64, vgg: Vgg19) -> Result<Self> {
        let side = frozen_stage1(OP, &stage1, cfg)?;
        let g_store = ParamStore::new(seed);
        let d_store = ParamStore::new(seed ^ 0x7e3d_d15c);
        let gen = TemporalGenerator::new(&g_store.root(), cfg)?;
        gen.init_from_stage1(&g_store, &stage1)?;
        let disc = build_temporal_discriminator(&d_store.root(), cfg)?;
        let (g_opt, d_opt) = optimisers(cfg, &g_store, &d_store)?;
        Ok(TemporalTrainer {
            cfg: cfg.clone(),
            frozen: stage1,
            stage1: side,
            g_store,
            d_store,
            gen,
            disc,
            vgg,
            g_opt,
            d_opt,
        })
    }

    /// Returns (n, B).
    fn check_batch(&self, batch: &TemporalBatch) -> Result<(usize, usize)> {
        let (l, n) = (self.cfg.temporal_window, batch.labels.len());
        if n < l || batch.frames.len() != n {
            return Err(Error::invalid(
                OP,
                format!(
                    "{n} labels and {} frames: expected the same number, at least the window \
                     l = {l}",
                    batch.frames.len()
                ),
            ));
        }
        let s = self.cfg.image_size;
        let b = batch.exemplar.dims().first().copied().unwrap_or(0);
        if b == 0 {
            return Err(Error::shape(OP, "empty batch"));
        }
        check_nchw(OP, "exemplar", &batch.exemplar, b, 3, s)?;
        let c = self.cfg.label_channels();
        for (t, (label, frame)) in batch.labels.iter().zip(&batch.frames).enumerate() {
            check_nchw(OP, &format!("label {t}"), label, b, c, s)?;
            check_nchw(OP, &format!("frame {t}"), frame, b, 3, s)?;
        }
        Ok((n, b))
    }

    /// The exemplar warped to every label by the frozen correspondence, one batched pass.
    fn warp_all(&self, batch: &TemporalBatch, n: usize, b: usize) -> Result<Vec<Var>> {
        no_grad(|| {
            let labels: Vec<&Tensor> = batch.labels.iter().collect();
            let label = Var::constant(Tensor::concat(&labels, 0)?);
            let ex = Var::constant(Tensor::concat(&vec![&batch.exemplar; n], 0)?);
            let warped = self.stage1.corr.forward(&label, &ex, false)?.warped;
            (0..n).map(|t| warped.narrow(0, t * b, b)).collect()
        })
    }

    /// The n generated frames, in order.
    fn generate(&self, warped: &[Var], labels: &[Var]) -> Result<Vec<Var>> {
        let keep = self.cfg.temporal_window - 1;
        let mut fakes: Vec<Var> = Vec::with_capacity(labels.len());
        for (w, label) in warped.iter().zip(labels) {
            // The previous frames enter detached: at inference they are fixed inputs, so G1
            // learns to use them as given rather than to bend frame t−1 to ease frame t; it also
            // keeps each frame's backward separate from the others' generators.
            let prev: Vec<Var> = fakes[fakes.len().saturating_sub(keep)..]
                .iter()
                .map(Var::detach)
                .collect();
            fakes.push(self.gen.forward(w, label, &prev, true)?);
        }
        Ok(fakes)
    }

    /// D1 input: every window of l consecutive frames, stacked on the batch axis.
    fn windows(&self, labels: &[Var], images: &[Var]) -> Result<Var> {
        let l = self.cfg.temporal_window;
        let per_window = (0..=labels.len() - l)
            .map(|w| {
                let ls: Vec<&Var> = labels[w..w + l].iter().collect();
                let is: Vec<&Var> = images[w..w + l].iter().collect();
                temporal_window_input(&ls, &is)
            })
            .collect::<Result<Vec<_>>>()?;
        Var::concat(&per_window.iter().collect::<Vec<_>>(), 0)
    }

    /// One iteration: G1 step then D1 step at `lr_factor` × the base rates. Terms: `gan_ts`,
    /// `reconstruction`, `vgg`, `perceptual_mse` (means over the frames), `g_total`, `gan_ts_d`,
    /// `d_total`.
    pub fn step(&mut self, batch: &TemporalBatch, lr_factor: f32) -> Result<LossTerms> {
        let (n, b) = self.check_batch(batch)?;
        let warped = self.warp_all(batch, n, b)?;
        let labels: Vec<Var> = batch.labels.iter().cloned().map(Var::constant).collect();
        let frames: Vec<Var> = batch.frames.iter().cloned().map(Var::constant).collect();
        let w = self.cfg.loss.clone();

        self.g_opt.zero_grad();
        let fakes = self.generate(&warped, &labels)?;
        let fake_windows = self.windows(&labels, &fakes)?;
        let mut acc = Acc::new();
        let logits: Vec<Var> = (self.disc.forward(&fake_windows, true)?)
            .into_iter()
            .map(|s| s.logits)
            .collect();
        acc.add(
            "gan_ts",
            w.temporal,
            loss::generator_loss(w.gan_loss, &logits)?,
        )?;
        // All frames on the batch axis: the means are over frames and samples alike.
        let fake_all = Var::concat(&fakes.iter().collect::<Vec<_>>(), 0)?;
        let gt_all = Var::concat(&frames.iter().collect::<Vec<_>>(), 0)?;
        acc.add(
            "reconstruction",
            w.reconstruction,
            loss::reconstruction(&fake_all, &gt_all)?,
        )?;
        let vgg_fake = self.vgg.forward(&fake_all)?;
        let vgg_gt = no_grad(|| self.vgg.forward(&gt_all))?;
        acc.add_vgg(&w, &vgg_fake, &vgg_gt)?;
        let (total, mut terms) = acc.finish(OP, "g_total")?;
        total.backward()?;
        self.g_opt.step(lr_factor)?;

        // D1 on [fake windows; real windows]; the G step's backward also reached D1's
        // parameters, so start from clean gradients.
        self.d_opt.zero_grad();
        let real_windows = self.windows(&labels, &frames)?;
        let x = Var::concat(&[&fake_windows.detach(), &real_windows], 0)?;
        let split = split_logits(&self.disc.forward(&x, true)?, fake_windows.dims()[0])?;
        let logits = (&split.fake[..], &split.real[..]);
        let (kind, weight) = (w.gan_loss, w.temporal);
        terms.extend(finish_d_step(
            &mut self.d_opt,
            kind,
            logits,
            weight,
            "gan_ts_d",
            lr_factor,
        )?);
        Ok(LossTerms { terms })
    }
}
