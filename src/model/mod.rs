//! The pose-transfer networks of MODEL.md, forward through `Var`.
//!
//! - `config`: `ModelConfig` (every option of MODEL.md, presets `paper`, `small`, `tiny`).
//! - `layers`: conv (optional SN, bias, zero/reflect pad), SPADE and its residual block,
//!   SAGAN self-attention (on `corr_warp`), the shared residual stack.
//! - `correspondence`: the two domain adaptors, shared stack, θ/φ and the `corr_warp` warp.
//! - `generator`: the SPADE translation generator.
//! - `discriminator`: the multiscale PatchGAN (also the temporal D1 over l frames).
//! - `temporal`: the temporal generator G1 (previous frames in the conditioning, initialised from
//!   a stage-1 G) and the temporal discriminator D1.
//! - `face`: the face residual generator G2, the face PatchGAN D2, face crop/paste as `Var` ops.
//! - `count`: analytic parameter and MAC counts per network (no forward needed).
//!
//! Parameter names follow the module tree: `corr.pose_adaptor.layer1.weight`,
//! `gen.up_3.norm_0.mlp_gamma.bias`, `disc.scale_1.attn.gamma`, and spectral-norm buffers
//! `<conv>.weight_u` / `<conv>.weight_v`.

pub mod config;
pub mod correspondence;
pub mod count;
pub mod discriminator;
pub mod face;
pub mod generator;
pub mod inception;
pub mod layers;
pub mod pose_net;
pub mod temporal;
pub mod vgg19;

pub use config::{ModelConfig, PRESETS};
pub use correspondence::{CorrOutput, Correspondence, CorrespondenceSpec};
pub use count::{count, measure_macs, Count, ModelCounts};
pub use discriminator::{DiscriminatorSpec, MultiscaleDiscriminator, ScaleOutput};
pub use face::{
    crop_faces, paste_faces, FaceDiscriminator, FaceDiscriminatorSpec, FaceGenerator,
    FaceGeneratorSpec,
};
pub use generator::{Generator, GeneratorSpec};
pub use temporal::{build_temporal_discriminator, temporal_window_input, TemporalGenerator};

use crate::autograd::Var;
use crate::error::Result;
use crate::nn::Scope;

/// Top-level scope names of the networks.
pub const CORR_SCOPE: &str = "corr";
pub const GEN_SCOPE: &str = "gen";
pub const DISC_SCOPE: &str = "disc";

/// What the generator side produces for one (label, exemplar) pair.
pub struct GeneratorOutput {
    pub corr: CorrOutput,
    /// The generated frame [B, 3, S, S].
    pub fake: Var,
}

/// Correspondence + translation generator: everything the generator-side optimiser trains.
pub struct GeneratorSide {
    pub corr: Correspondence,
    pub generator: Generator,
}

impl GeneratorSide {
    /// Registers `corr.*` and `gen.*` under `root`.
    pub fn new(root: &Scope<'_>, cfg: &ModelConfig) -> Result<Self> {
        cfg.validate()?;
        let gain = cfg.init_gain;
        Ok(GeneratorSide {
            corr: Correspondence::new(
                &root.scope(CORR_SCOPE),
                CorrespondenceSpec::from_config(cfg),
                gain,
            )?,
            generator: Generator::new(
                &root.scope(GEN_SCOPE),
                GeneratorSpec::from_config(cfg),
                gain,
            )?,
        })
    }

    /// Warps `exemplar` [B, 3, S, S] to `label` [B, C_label, S, S] and translates
    /// concat(warped, label) into the generated frame.
    pub fn forward(&self, label: &Var, exemplar: &Var, training: bool) -> Result<GeneratorOutput> {
        let corr = self.corr.forward(label, exemplar, training)?;
        let cond = Var::concat(&[&corr.warped, label], 1)?;
        let fake = self.generator.forward(&cond, training)?;
        Ok(GeneratorOutput { corr, fake })
    }
}

/// The image discriminator `disc.*` of `cfg` under `root`.
pub fn build_discriminator(root: &Scope<'_>, cfg: &ModelConfig) -> Result<MultiscaleDiscriminator> {
    cfg.validate()?;
    MultiscaleDiscriminator::new(
        &root.scope(DISC_SCOPE),
        DiscriminatorSpec::from_config(cfg),
        cfg.init_gain,
    )
}

#[cfg(test)]
mod tests;
