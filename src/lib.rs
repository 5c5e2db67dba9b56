//! `engine`: a GPU compute engine for single-person pose transfer (Wang et al. 2021).
//!
//! Layers, bottom up: `tensor` (values on a device), `backend` (the primitive contract and its
//! CPU reference), `autograd` (the tape and one backward rule per primitive), `nn` (parameters,
//! initialisation, spectral norm, safetensors I/O).

pub mod autograd;
pub mod backend;
pub mod data;
pub mod error;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod optim;
pub mod pose;
pub mod synth;
pub mod tensor;
pub mod train;
pub mod train_step;
pub mod transfer;
pub mod video;

pub use autograd::Var;
pub use error::{Error, Result};
pub use tensor::{Device, Shape, Tensor};
