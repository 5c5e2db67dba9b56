//! The training losses of MODEL.md §5, built from `Var` ops (every one has a backward rule).
//! Each function returns the unweighted term as a scalar `Var`; the training step applies the
//! config weights. All terms are per-sample means: independent of the batch size.
//!
//! - `gan`: hinge / non-saturating (BCE-with-logits) / LSGAN losses for G and D, over D scales.
//! - `feature_matching`: L1 between D's intermediate outputs on fake and real.
//! - `perceptual`: weighted VGG L1 over relu1_2 … relu5_2 and the relu4_2 MSE.
//! - `contextual`: the contextual loss (−log CX) and its three-layer VGG combination.
//! - `pixel`: the plain L1 terms (domain alignment, reconstruction, warp-self).

pub mod contextual;
pub mod feature_matching;
pub mod gan;
pub mod perceptual;
pub mod pixel;

pub use contextual::{contextual_loss, contextual_vgg_loss, CX_EPS};
pub use feature_matching::feature_matching;
pub use gan::{discriminator_loss, generator_loss};
pub use perceptual::{perceptual_mse, vgg_l1};
pub use pixel::{domain_alignment, reconstruction, warp_self};
