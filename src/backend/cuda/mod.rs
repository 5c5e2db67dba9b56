//! The CUDA backend: the embedded kernel sources (`kernels`), their parameter structs mirrored
//! in Rust (`params`), the NVRTC compile (`compile`) with its disk cache (`ptx_cache`), the
//! launchers (`launch`), the caching device allocator (`pool`) and the `Backend` implementation
//! on top of them (`backend`).

pub mod backend;
pub mod compile;
mod dense;
mod image;
pub mod kernels;
pub mod launch;
pub mod params;
pub mod pool;
pub mod ptx_cache;

pub use backend::CudaBackend;
