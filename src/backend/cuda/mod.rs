//! The CUDA side of the backend, as far as it goes without a GPU: the embedded kernel sources
//! (`kernels`), their parameter structs mirrored in Rust (`params`) and the NVRTC compile
//! (`compile`). The `Backend` implementation and the launchers come with the GPU work.

pub mod compile;
pub mod kernels;
pub mod launch;
pub mod params;
