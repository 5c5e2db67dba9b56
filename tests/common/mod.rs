//! Shared helpers of the integration tests: PyTorch fixtures ([`fixture`]), running them through
//! the autograd API ([`fixture_run`]), tensor comparison with explicit tolerances ([`compare`]),
//! and the GPU tests' helpers. Everything is re-exported here, so tests write `common::Tol`.
#![allow(dead_code)]

pub mod compare;
pub mod emulated;
pub mod fixture;
pub mod fixture_run;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod parity;
pub mod summary;
pub mod weights;

// Not every test binary uses each of them.
#[allow(unused_imports)]
pub use {compare::*, fixture::*, fixture_run::*};

pub type R<T> = Result<T, String>;

/// Whether the CUDA backend can run here, for the `#[ignore]`d GPU tests: without one they print
/// why and skip, unless ENGINE_REQUIRE_GPU=1 (set on the GPU machine), which makes it a failure.
pub fn gpu_ok() -> bool {
    let require = std::env::var("ENGINE_REQUIRE_GPU").is_ok_and(|v| v == "1");
    match engine::backend::cuda_backend_status() {
        Ok(()) => true,
        Err(reason) => {
            assert!(!require, "ENGINE_REQUIRE_GPU=1 but: {reason}");
            println!("no GPU: skipped ({reason})");
            false
        }
    }
}
