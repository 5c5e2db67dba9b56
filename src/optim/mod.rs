//! Optimisers and learning-rate schedules (MODEL.md §5).
//!
//! - `adam`: Adam over a `ParamStore`'s trainable parameters through the backend's `adam_step`,
//!   with per-parameter state (m, v, step) saved and restored as safetensors.
//! - `schedule`: the constant-then-linear-decay learning-rate factor.

pub mod adam;
pub mod schedule;

pub use adam::{Adam, AdamConfig};
pub use schedule::LinearDecay;
