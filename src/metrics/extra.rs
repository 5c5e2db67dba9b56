//! The hook for sequence-level metrics beyond the per-frame ones, typically those that need
//! network weights (FID from Inception features, LPIPS). `engine eval` feeds every compared frame
//! pair to each metric `registered` returns, then prints and stores what `finish` gives.
//!
//! To add one: implement `ExtraMetric` and push it in `registered` when its weights file is in
//! the `--weights` folder.

use std::path::PathBuf;

use super::fid::FidMetric;
use crate::error::{Error, Result};
use crate::video::Frame;

/// A metric over the whole sequence of frame pairs.
pub trait ExtraMetric: Send {
    /// Short name used in the table and as the JSON key.
    fn name(&self) -> &str;
    /// One (prediction, truth) pair, both of the compared size, in order.
    fn push(&mut self, pred: &Frame, truth: &Frame) -> Result<()>;
    /// The metric's values after the last pair: (name, value) entries.
    fn finish(&mut self) -> Result<Vec<(String, f64)>>;
}

/// Where extra metrics look for their weights (`--weights DIR` of `engine eval`). Without a
/// folder no extra metric runs: they are slow on a CPU, so they are asked for explicitly.
#[derive(Clone, Debug, Default)]
pub struct ExtraOptions {
    pub weights_dir: Option<PathBuf>,
}

/// The extra metrics whose weights are in `opts.weights_dir`: FID (`inception.safetensors`,
/// `metrics::fid`); LPIPS registers here too once it exists. A folder holding none of them is an
/// error, so a mistyped path is not silently ignored.
pub fn registered(opts: &ExtraOptions) -> Result<Vec<Box<dyn ExtraMetric>>> {
    let Some(dir) = &opts.weights_dir else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Box<dyn ExtraMetric>> = Vec::new();
    if dir.join("inception.safetensors").is_file() {
        out.push(Box::new(FidMetric::new(dir)?));
    }
    if out.is_empty() {
        return Err(Error::file(
            dir,
            "holds no weights of an extra metric (inception.safetensors for FID; \
             see tools/weights/fetch.py)",
        ));
    }
    Ok(out)
}
