//! What a run checkpoint folder holds, and reading it back.
//!
//! - `state.json`: `RunState` (format, iteration, the model config, the target clip's description);
//! - `generator.safetensors`: the generator side (`corr.*`, `gen.*`), with the config in its metadata;
//! - `discriminator.safetensors`, `g_adam.safetensors`, `d_adam.safetensors`: what resuming needs;
//! - after stage 2 and 3 start, the same four files of G1/D1 (`temporal_*`) and G2/D2 (`face_*`);
//! - `target.safetensors`: what transfer needs from the target video: exemplar frames
//!   `exemplars` [K, 3, S, S] with their poses `exemplar_poses` [K, 18, 3], and every training pose
//!   `poses` [N, 18, 3] (model pixels) for the source-pose normalisation statistics.

use super::run_dir::STATE_FILE;
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::nn::safetensors_io::{read_tensor_file, save_tensors, Metadata};
use crate::pose::{CropBox, Pose};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const RUN_FORMAT: &str = "engine-run-1";
pub const GENERATOR_FILE: &str = "generator.safetensors";
pub const DISCRIMINATOR_FILE: &str = "discriminator.safetensors";
pub const G_ADAM_FILE: &str = "g_adam.safetensors";
pub const D_ADAM_FILE: &str = "d_adam.safetensors";
pub const TARGET_FILE: &str = "target.safetensors";
pub const TEMPORAL_GENERATOR_FILE: &str = "temporal_generator.safetensors";
pub const FACE_GENERATOR_FILE: &str = "face_generator.safetensors";

/// Where the target clip came from and how it was cut.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub video: PathBuf,
    pub poses: PathBuf,
    pub crop: CropBox,
    pub source_size: (u32, u32),
    pub fps: f64,
    pub frames: usize,
}

/// `state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub format: String,
    /// Iterations completed over all stages.
    pub iteration: u64,
    /// Iterations per stage (each stage's learning-rate schedule depends on its length).
    pub plan: super::StagePlan,
    pub batch: usize,
    pub seed: u64,
    pub holdout: f32,
    pub config: serde_json::Value,
    pub target: TargetInfo,
    /// The loss network the run trains with (a resumed run keeps it).
    pub vgg: super::VggChoice,
}

impl RunState {
    pub fn model_config(&self, path: &Path) -> Result<ModelConfig> {
        ModelConfig::from_json(&self.config.to_string())
            .map_err(|e| Error::file(path, format!("the stored model config is not usable: {e}")))
    }
}

/// Writes `state.json` into `dir` (last, since it marks the folder complete).
pub fn write_state(dir: &Path, state: &RunState) -> Result<()> {
    let path = dir.join(STATE_FILE);
    let text = serde_json::to_string_pretty(state)
        .map_err(|e| Error::file(&path, format!("cannot serialise the run state: {e}")))?;
    std::fs::write(&path, text).map_err(Error::io_at(&path))
}

/// Reads `state.json` of the checkpoint folder `dir`.
pub fn read_state(dir: &Path) -> Result<RunState> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(Error::io_at(&path))?;
    let state: RunState = serde_json::from_str(&text)
        .map_err(|e| Error::file(&path, format!("not a run state file: {e}")))?;
    if state.format != RUN_FORMAT {
        return Err(Error::file(
            &path,
            format!("format `{}`, expected `{RUN_FORMAT}`", state.format),
        ));
    }
    Ok(state)
}

/// The target-side tensors transfer needs.
#[derive(Clone, Debug)]
pub struct TargetData {
    /// [K, 3, S, S] in [-1, 1].
    pub exemplars: Tensor,
    pub exemplar_poses: Vec<Pose>,
    /// Every training pose (model pixels).
    pub poses: Vec<Pose>,
}

fn poses_tensor(poses: &[Pose]) -> Result<Tensor> {
    let flat: Vec<f32> = poses.iter().flat_map(|p| p.to_flat()).collect();
    Tensor::from_vec(flat, vec![poses.len(), 18, 3])
}

fn poses_from(path: &Path, name: &str, t: &Tensor) -> Result<Vec<Pose>> {
    match t.dims() {
        [_, 18, 3] => t
            .cpu_data()?
            .chunks_exact(54)
            .map(Pose::from_flat)
            .collect(),
        d => Err(Error::file(
            path,
            format!("`{name}` is {d:?}, expected [N, 18, 3]"),
        )),
    }
}

pub fn write_target(dir: &Path, data: &TargetData) -> Result<()> {
    let tensors = vec![
        ("exemplars".to_string(), data.exemplars.clone()),
        (
            "exemplar_poses".to_string(),
            poses_tensor(&data.exemplar_poses)?,
        ),
        ("poses".to_string(), poses_tensor(&data.poses)?),
    ];
    let mut meta = Metadata::new();
    meta.insert("format".into(), "engine-target-1".into());
    save_tensors(&dir.join(TARGET_FILE), &tensors, &meta)
}

pub fn read_target(dir: &Path) -> Result<TargetData> {
    let path = dir.join(TARGET_FILE);
    let (mut t, _) = read_tensor_file(&path)?;
    let mut take = |name: &str| {
        t.remove(name)
            .ok_or_else(|| Error::file(&path, format!("missing tensor `{name}`")))
    };
    let exemplars = take("exemplars")?;
    let exemplar_poses = poses_from(&path, "exemplar_poses", &take("exemplar_poses")?)?;
    let poses = poses_from(&path, "poses", &take("poses")?)?;
    let d = exemplars.dims().to_vec();
    if d.len() != 4 || d[1] != 3 || d[0] != exemplar_poses.len() || d[0] == 0 {
        return Err(Error::file(
            &path,
            format!(
                "`exemplars` is {d:?} for {} exemplar poses; expected [K, 3, S, S] with K ≥ 1",
                exemplar_poses.len()
            ),
        ));
    }
    Ok(TargetData {
        exemplars,
        exemplar_poses,
        poses,
    })
}

/// The checkpoint folder a user named: a run folder (its latest checkpoint) or a checkpoint
/// folder itself.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.join(STATE_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    if let Some(latest) = super::run_dir::RunDir::new(path).latest() {
        return Ok(latest);
    }
    let why = if path.exists() {
        "holds no checkpoint (no state.json here or in ckpt/); train one with `engine train`"
    } else {
        "does not exist"
    };
    Err(Error::file(path, why))
}
