//! Stage 3 (Algorithm 1 step 3): the face residual generator G2 and face discriminator D2, with
//! the main generator frozen.
//!
//! The frozen stage-1 correspondence + G (eval mode, no gradient) generate the frame; G2 refines
//! the face crop of it (label crop + generated crop → tanh residual added to the crop); the
//! refined crop is pasted back into the frame and cropped out again, so the losses reach G2
//! through the paste exactly as a full-frame loss would.
//!
//! G loss = L_face = `face_gan`·GAN(D2 on (label crop, refined crop)) + `face_vgg`·VGG L1
//! (refined crop vs ground-truth crop, the stage-1 layer weights). D loss = `face_gan`·D-loss on
//! [refined; ground truth]. The plain L1 between the crops is reported as `face_l1` (not
//! trained on).

use crate::autograd::{no_grad, Var};
use crate::error::{Error, Result};
use crate::loss;
use crate::model::face::{crop_faces, paste_faces, FaceDiscriminator, FaceGenerator};
use crate::model::vgg19::Vgg19;
use crate::model::{GeneratorSide, ModelConfig, ScaleOutput};
use crate::nn::ParamStore;
use crate::optim::Adam;
use crate::pose::CropBox;
use crate::tensor::Tensor;

use super::{check_nchw, finish_d_step, frozen_stage1, optimisers, split_logits, Acc, LossTerms};

const OP: &str = "face_train_step";

/// One frame per sample with its face box.
pub struct FaceBatch {
    /// [B, C_label, S, S].
    pub label: Tensor,
    /// [B, 3, S, S] in [-1, 1].
    pub exemplar: Tensor,
    /// [B, 3, S, S] in [-1, 1].
    pub gt: Tensor,
    /// One `face_crop`-sided box per sample (`pose::face_box` at `image_size`).
    pub boxes: Vec<CropBox>,
}

/// Networks, stores and optimisers of stage 3.
pub struct FaceTrainer {
    pub cfg: ModelConfig,
    /// The trained stage-1 `corr.*` / `gen.*` (never updated here).
    pub frozen: ParamStore,
    pub main: GeneratorSide,
    /// `face_gen.*`, trained by `g_opt`.
    pub g_store: ParamStore,
    /// `face_disc.*`, trained by `d_opt`.
    pub d_store: ParamStore,
    pub gen: FaceGenerator,
    pub disc: FaceDiscriminator,
    pub vgg: Vgg19,
    pub g_opt: Adam,
    pub d_opt: Adam,
}

/// D2's single scale in the shape `split_logits` takes.
fn as_scale(logits: Var) -> ScaleOutput {
    ScaleOutput {
        features: Vec::new(),
        logits,
    }
}

impl FaceTrainer {
    /// G2 and D2 seeded from `seed` around the frozen stage-1 networks in `stage1` (which must
    /// hold every `corr.*` and `gen.*` tensor).
    pub fn new(cfg: &ModelConfig, stage1: ParamStore, seed: u64, vgg: Vgg19) -> Result<Self> {
        let main = frozen_stage1(OP, &stage1, cfg)?;
        let g_store = ParamStore::new(seed);
        let d_store = ParamStore::new(seed ^ 0xface_d15c);
        let gen = FaceGenerator::new(&g_store.root(), cfg)?;
        let disc = FaceDiscriminator::new(&d_store.root(), cfg)?;
        let (g_opt, d_opt) = optimisers(cfg, &g_store, &d_store)?;
        Ok(FaceTrainer {
            cfg: cfg.clone(),
            frozen: stage1,
            main,
            g_store,
            d_store,
            gen,
            disc,
            vgg,
            g_opt,
            d_opt,
        })
    }

    fn check_batch(&self, batch: &FaceBatch) -> Result<()> {
        let s = self.cfg.image_size;
        let b = batch.gt.dims().first().copied().unwrap_or(0);
        if b == 0 {
            return Err(Error::shape(OP, "empty batch"));
        }
        check_nchw(OP, "label", &batch.label, b, self.cfg.label_channels(), s)?;
        check_nchw(OP, "exemplar", &batch.exemplar, b, 3, s)?;
        check_nchw(OP, "gt", &batch.gt, b, 3, s)?;
        let f = self.cfg.face_crop as u32;
        if let Some(bx) = batch.boxes.iter().find(|bx| (bx.w, bx.h) != (f, f)) {
            return Err(Error::invalid(
                OP,
                format!("face box {bx:?}: expected {f}×{f} (the config's face_crop)"),
            ));
        }
        // Count and placement are checked by the crop.
        Ok(())
    }

    /// The refined frame [B, 3, S, S]: `fake` with G2's refinement of the boxes pasted in, and
    /// the refined crops (cut from that frame, so gradients pass through the paste).
    pub fn refine(
        &self,
        label: &Var,
        fake: &Var,
        boxes: &[CropBox],
        training: bool,
    ) -> Result<(Var, Var)> {
        let label_crop = crop_faces(label, boxes)?;
        let refined = self
            .gen
            .forward(&label_crop, &crop_faces(fake, boxes)?, training)?;
        let frame = paste_faces(fake, &refined, boxes)?;
        let crop = crop_faces(&frame, boxes)?;
        Ok((frame, crop))
    }

    /// One iteration: G2 step then D2 step at `lr_factor` × the base rates. Terms: `gan_face`,
    /// `face_vgg`, `face_l1` (monitor only), `g_total`, `gan_face_d`, `d_total`.
    pub fn step(&mut self, batch: &FaceBatch, lr_factor: f32) -> Result<LossTerms> {
        self.check_batch(batch)?;
        let label = Var::constant(batch.label.clone());
        let exemplar = Var::constant(batch.exemplar.clone());
        let gt = Var::constant(batch.gt.clone());
        let fake = no_grad(|| self.main.forward(&label, &exemplar, false))?.fake;
        let boxes = &batch.boxes;
        let w = self.cfg.loss.clone();

        self.g_opt.zero_grad();
        let (_, face) = self.refine(&label, &fake, boxes, true)?;
        let label_crop = crop_faces(&label, boxes)?;
        let real_crop = crop_faces(&gt, boxes)?;
        let mut acc = Acc::new();
        let logits = self
            .disc
            .forward(&Var::concat(&[&label_crop, &face], 1)?, true)?;
        acc.add(
            "gan_face",
            w.face_gan,
            loss::generator_loss(w.gan_loss, &[logits])?,
        )?;
        let vgg_face = self.vgg.forward(&face)?;
        let vgg_real = no_grad(|| self.vgg.forward(&real_crop))?;
        acc.add(
            "face_vgg",
            w.face_vgg,
            loss::vgg_l1(&vgg_face, &vgg_real, &w.vgg_layer_weights)?,
        )?;
        let face_l1 = no_grad(|| face.l1_loss(&real_crop))?.value().item()?;
        let (total, mut terms) = acc.finish(OP, "g_total")?;
        terms.insert(terms.len() - 1, ("face_l1", face_l1));
        total.backward()?;
        self.g_opt.step(lr_factor)?;

        // D2 on [refined; real], from clean gradients (the G step reached D2 too).
        self.d_opt.zero_grad();
        let b = face.dims()[0];
        let x = Var::concat(
            &[
                &Var::concat(&[&label_crop, &face.detach()], 1)?,
                &Var::concat(&[&label_crop, &real_crop], 1)?,
            ],
            0,
        )?;
        let split = split_logits(&[as_scale(self.disc.forward(&x, true)?)], b)?;
        let logits = (&split.fake[..], &split.real[..]);
        let (kind, weight) = (w.gan_loss, w.face_gan);
        terms.extend(finish_d_step(
            &mut self.d_opt,
            kind,
            logits,
            weight,
            "gan_face_d",
            lr_factor,
        )?);
        Ok(LossTerms { terms })
    }
}
