//! Parameters, initialisation, spectral norm, safetensors I/O.
//!
//! - `params`: `ParamStore` (named parameters and buffers, in registration order) and `Scope`.
//! - `init`: seeded initialisers (Xavier-normal with PyTorch's fans, zeros, …).
//! - `spectral_norm`: PyTorch-style spectral normalisation with persistent u and v buffers.
//! - `safetensors_io`: atomic safetensors writes, full and header-only reads.
//! - `checkpoint`: saving/loading a `ParamStore` with `format`/`engine_version`/`config` metadata.

pub mod checkpoint;
pub mod init;
pub mod params;
pub mod safetensors_io;
pub mod spectral_norm;

pub use checkpoint::{
    load, load_with, read_config, save, save_with_metadata, LoadOptions, LoadReport,
};
pub use init::Init;
pub use params::{Kind, Named, ParamStore, Scope};
pub use safetensors_io::{
    load_tensors, read_header, read_metadata, save_tensors, Header, Metadata, TensorInfo,
};
pub use spectral_norm::SpectralNorm;
