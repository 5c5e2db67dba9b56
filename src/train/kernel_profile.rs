//! `engine train --profile-kernels`: one iteration's GPU time by kernel, written as a markdown
//! table beside the run (the same table benches/cuda_train_step.rs prints).

use crate::error::Result;
use std::path::Path;

/// Starts recording every kernel launch on the GPU.
#[cfg(feature = "cuda")]
pub fn begin() -> Result<()> {
    crate::backend::cuda::launch::global()?.set_profiling(true);
    Ok(())
}

/// Stops recording and writes the profile of what ran since [`begin`] to `path` (atomically),
/// titled `what`, set against `wall_ms`.
#[cfg(feature = "cuda")]
pub fn finish(path: &Path, what: &str, wall_ms: f64) -> Result<()> {
    use crate::backend::cuda::launch::{global, profile_table};
    let g = global()?;
    g.set_profiling(false);
    let profile = g.take_profile()?;
    let text = format!(
        "# GPU time by kernel: {what}\n\nDevice: {} ({}); precision {}.\n\n{}",
        g.name,
        g.arch,
        crate::backend::precision(),
        profile_table(&profile, wall_ms, profile.len())
    );
    crate::nn::safetensors_io::write_atomic(path, |tmp| {
        std::fs::write(tmp, text).map_err(crate::Error::io_at(tmp))
    })
}

// Without the CUDA backend the option is refused before training (it needs --device cuda,
// which such a build cannot resolve); these keep the loop the same.
#[cfg(not(feature = "cuda"))]
pub fn begin() -> Result<()> {
    Err(crate::Error::invalid(
        "train",
        "--profile-kernels needs a build with the cuda feature",
    ))
}

#[cfg(not(feature = "cuda"))]
pub fn finish(_path: &Path, _what: &str, _wall_ms: f64) -> Result<()> {
    Ok(())
}
