//! The embedded default of `engine transfer`: everything from data the project generates itself.
//! Two synthetic dancers are written (a target and a source with other proportions, size and
//! position, so the pose normalisation has work to do), the `tiny` model is trained on the target
//! (or an earlier demo run is reused), and the source's motion is transferred onto the target,
//! written side by side (source | normalised label | output).

use super::{transfer, ExemplarChoice, TransferOptions, TransferSummary};
use crate::data::{ClipOptions, CropMode};
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::synth::{Proportions, SynthOptions};
use crate::tensor::Device;
use crate::train::{self, checkpoint, StagePlan, TrainOptions, VggChoice};
use crate::video::FrameRate;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Folder for the generated videos, the run and the output.
    pub dir: PathBuf,
    /// Stage-1 iterations of the demo model.
    pub iterations: u64,
    /// Iterations of each later stage (temporal, face).
    pub later_iterations: u64,
    pub seed: u64,
    /// Where training and transfer run (`Cpu` or `Cuda`).
    pub device: Device,
}

/// What the demo made.
pub struct DemoSummary {
    pub target_video: PathBuf,
    pub source_video: PathBuf,
    pub run: PathBuf,
    pub trained_iterations: u64,
    pub train_seconds: f64,
    pub transfer: TransferSummary,
}

fn video_name(stem: &str) -> String {
    if cfg!(feature = "video") {
        format!("{stem}.mp4")
    } else {
        format!("{stem}_frames")
    }
}

/// Writes a synthetic dancer into `dir/<stem>.mp4` (or a PNG folder without the video feature)
/// and `dir/<stem>_poses/`, unless both are already there.
fn dancer(dir: &Path, stem: &str, options: &SynthOptions) -> Result<(PathBuf, PathBuf)> {
    let video = dir.join(video_name(stem));
    let poses = dir.join(format!("{stem}_poses"));
    if video.exists() && poses.is_dir() {
        return Ok((video, poses));
    }
    let (v, f) = if cfg!(feature = "video") {
        (Some(video.as_path()), None)
    } else {
        (None, Some(video.as_path()))
    };
    crate::synth::write(options, v, f, &poses)?;
    Ok((video, poses))
}

fn source_options(seed: u64) -> SynthOptions {
    SynthOptions {
        width: 128,
        height: 128,
        frames: 72,
        fps: FrameRate { num: 24, den: 1 },
        seed: seed + 1,
        scale: 0.55,
        offset: (14.0, 18.0),
        proportions: Proportions {
            torso: 0.28,
            thigh: 0.29,
            shin: 0.3,
            upper_arm: 0.19,
            ..Proportions::default()
        },
    }
}

fn target_options(seed: u64) -> SynthOptions {
    SynthOptions {
        width: 128,
        height: 128,
        frames: 96,
        fps: FrameRate { num: 24, den: 1 },
        seed,
        scale: 0.8,
        offset: (0.0, 0.0),
        proportions: Proportions::default(),
    }
}

/// The `tiny` preset with learning rates for a run of minutes instead of days: the paper's
/// generator Adam (lr 1e-4, eps 1e-3) barely moves the translation generator in a few hundred
/// steps (its output is still a flat colour at 100), while lr 1e-3 with eps 1e-8 shows a figure
/// following the pose by 300 (both tried on the demo dancer).
pub fn demo_config() -> Result<ModelConfig> {
    let mut cfg = ModelConfig::preset("tiny")?;
    cfg.optim.g_lr = 1e-3;
    cfg.optim.g_eps = 1e-8;
    cfg.optim.d_lr = 1e-3;
    Ok(cfg)
}

/// Iterations of the demo run already in `run`, if it is a demo run of `cfg`.
fn existing_iterations(run: &Path, cfg: &ModelConfig) -> Option<u64> {
    let dir = checkpoint::resolve(run).ok()?;
    let state = checkpoint::read_state(&dir).ok()?;
    (state.model_config(&dir).ok()? == *cfg).then_some(state.iteration)
}

/// Runs the demo; `say` receives one line per step, `train_progress` and `transfer_progress` the
/// progress of the two long steps.
pub fn run_demo(
    o: &DemoOptions,
    say: &mut dyn FnMut(&str),
    train_progress: &mut dyn FnMut(train::Progress<'_>),
    transfer_progress: &mut dyn FnMut(usize, usize),
) -> Result<DemoSummary> {
    std::fs::create_dir_all(&o.dir).map_err(|source| Error::Io {
        path: o.dir.clone(),
        source,
    })?;
    say("writing two synthetic dancers (target and source)");
    let (target_video, target_poses) = dancer(&o.dir, "target", &target_options(o.seed))?;
    let (source_video, source_poses) = dancer(&o.dir, "source", &source_options(o.seed))?;
    let cfg = demo_config()?;
    // One run folder per plan, so a demo with other iteration counts never mixes with this one.
    let run = o
        .dir
        .join(format!("run_{}_{}", o.iterations, o.later_iterations));
    let mut trained = 0;
    let mut train_seconds = 0.0;
    let have = existing_iterations(&run, &cfg);
    let planned = o.iterations + 2 * o.later_iterations;
    if have.map_or(true, |it| it < planned) {
        say(&format!(
            "training the tiny model on the target: {} stage-1, {} temporal and {} face \
             iterations (CPU: a few minutes)",
            o.iterations, o.later_iterations, o.later_iterations
        ));
        let summary = train::train(
            &TrainOptions {
                target: target_video.clone(),
                poses: target_poses,
                out: run.clone(),
                config: Some(cfg),
                plan: Some(StagePlan {
                    stage1: o.iterations,
                    temporal: o.later_iterations,
                    face: o.later_iterations,
                }),
                batch: 1,
                checkpoint_every: o.iterations.div_ceil(2).max(1),
                sample_every: o.iterations.div_ceil(4).max(1),
                seed: o.seed,
                holdout: 0.1,
                clip: ClipOptions::default(),
                resume: have.is_some(),
                vgg: Some(VggChoice::Random { width_divisor: 8 }),
                exemplars: 4,
                device: o.device,
                profile_kernels: false,
            },
            train_progress,
        )?;
        trained = summary.iteration - summary.start_iteration;
        train_seconds = summary.seconds;
    } else {
        say(&format!("reusing the demo model in {}", run.display()));
    }
    say("transferring the source's motion onto the target");
    let transfer = transfer(
        &TransferOptions {
            source: source_video.clone(),
            source_poses,
            model: run.clone(),
            out: o.dir.join(video_name("transfer")),
            crop: CropMode::Centre,
            max_frames: None,
            allow_missing_person: false,
            normalization: None,
            exemplar: ExemplarChoice::Auto,
            side_by_side: true,
            batch: 4,
            overwrite: true,
            device: o.device,
        },
        transfer_progress,
    )?;
    Ok(DemoSummary {
        target_video,
        source_video,
        run,
        trained_iterations: trained,
        train_seconds,
        transfer,
    })
}
