//! `engine train`: trains the model on one target video through the three stages of MODEL.md §5
//! (stage 1: correspondence + G + D; stage 2: temporal G1/D1; stage 3: face G2/D2) and keeps
//! a run folder (see `run_dir`): checkpoints written atomically every N iterations, a loss log and
//! its plot, sample sheets on held-out frames. Resuming continues the same data order and learning-
//! rate schedule from the last checkpoint.

pub mod checkpoint;
pub mod glyphs;
mod kernel_profile;
pub mod loss_log;
pub mod run_dir;
mod session;
pub mod sheet;
pub mod stages;

use crate::data::{load_clip, ClipOptions, Dataset};
use crate::error::{Error, Result};
use crate::model::vgg19::{Vgg19, Vgg19Spec};
use crate::model::ModelConfig;
use crate::tensor::Device;
use crate::train_step::{LossTerms, Stage1Trainer};
use checkpoint::{RunState, TargetInfo, RUN_FORMAT};
use loss_log::LossLog;
use run_dir::RunDir;
use session::Session;
pub use stages::{Stage, StagePlan};
use std::path::{Path, PathBuf};

/// The loss network: real ImageNet weights, or random weights (a weaker perceptual signal; the
/// width divisor keeps it cheap for demos and tests).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum VggChoice {
    Weights(PathBuf),
    Random { width_divisor: usize },
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub target: PathBuf,
    pub poses: PathBuf,
    pub out: PathBuf,
    /// The model config; with `resume` it must equal the checkpoint's when given.
    pub config: Option<ModelConfig>,
    /// Iterations per stage; `None` on resume keeps the run's plan (required for a fresh run).
    pub plan: Option<StagePlan>,
    pub batch: usize,
    pub checkpoint_every: u64,
    pub sample_every: u64,
    pub seed: u64,
    pub holdout: f32,
    pub clip: ClipOptions,
    pub resume: bool,
    /// The loss network; `None` on resume keeps the run's own (required for a fresh run).
    pub vgg: Option<VggChoice>,
    /// Exemplar candidates stored for transfer.
    pub exemplars: usize,
    /// Where the networks and batches live (`Cpu` or `Cuda`; resolved, not `Auto`).
    pub device: Device,
    /// Time the run's second iteration (the first warms the kernels and the memory pool) by GPU
    /// kernel into OUT/kernel_profile.md (CUDA only).
    pub profile_kernels: bool,
}

/// What the caller hears after every iteration.
pub struct Progress<'a> {
    pub iteration: u64,
    pub total: u64,
    pub stage: &'static str,
    pub terms: &'a LossTerms,
}

#[derive(Clone, Debug)]
pub struct TrainSummary {
    pub start_iteration: u64,
    pub iteration: u64,
    pub seconds: f64,
    pub checkpoint: PathBuf,
    pub last_terms: LossTerms,
}

/// The terms whose values show up in the progress line.
pub const HEADLINE_TERMS: [&str; 3] = ["reconstruction", "g_total", "d_total"];

pub(crate) fn build_vgg(choice: &VggChoice, seed: u64) -> Result<Vgg19> {
    match choice {
        VggChoice::Weights(path) => {
            let vgg = Vgg19::new(Vgg19Spec::standard(), seed)?;
            vgg.load_file(path)?;
            Ok(vgg)
        }
        VggChoice::Random { width_divisor } => {
            Vgg19::new(Vgg19Spec::scaled((*width_divisor).max(1)), seed)
        }
    }
}

/// Checks the options that do not need any file.
fn check_options(o: &TrainOptions) -> Result<()> {
    let bad = |m: String| Err(Error::invalid("train", m));
    if o.plan.is_some_and(|p| p.stage1 == 0) || o.batch == 0 {
        return bad(format!(
            "the stage-1 iterations and --batch {} must be positive",
            o.batch
        ));
    }
    if o.checkpoint_every == 0 || o.sample_every == 0 {
        return bad("--checkpoint-every and --sample-every must be positive".into());
    }
    if !(0.0..1.0).contains(&o.holdout) {
        return bad(format!("--holdout {} must be in [0, 1)", o.holdout));
    }
    if o.device == Device::Auto {
        return bad("the device must be resolved (cpu or cuda) before training".into());
    }
    if o.exemplars == 0 {
        return bad("--exemplars must be at least 1".into());
    }
    check_profile(o.profile_kernels, o.device)
}

/// `--profile-kernels` times GPU kernels: it needs the CUDA device.
pub fn check_profile(profile_kernels: bool, device: Device) -> Result<()> {
    if profile_kernels && device != Device::Cuda {
        return Err(Error::invalid(
            "train",
            format!("--profile-kernels times GPU kernels: it needs --device cuda (not {device})"),
        ));
    }
    Ok(())
}

/// Checks, before any slow preparation, that a run can start in `out`: a fresh start needs no
/// checkpoint there, a resume needs one.
pub fn check_start(out: &Path, resume: bool) -> Result<()> {
    starting_state(&RunDir::new(out), resume).map(|_| ())
}

/// Decides fresh start or resume, refusing to overwrite a run that already has a checkpoint.
fn starting_state(run: &RunDir, resume: bool) -> Result<Option<(PathBuf, RunState)>> {
    match (run.latest(), resume) {
        (Some(dir), false) => {
            let it = checkpoint::read_state(&dir)
                .map(|s| s.iteration)
                .unwrap_or(0);
            Err(Error::file(
                run.root(),
                format!(
                    "already holds a training run (checkpoint at iteration {it}); pass --resume \
                     to continue it, or choose another --out"
                ),
            ))
        }
        (None, true) => Err(Error::file(
            run.root(),
            "--resume: no checkpoint here to resume from",
        )),
        (None, false) => Ok(None),
        (Some(dir), true) => {
            let state = checkpoint::read_state(&dir)?;
            Ok(Some((dir, state)))
        }
    }
}

/// The config of a resumed run, checked against the one the user asked for.
fn resumed_config(o: &TrainOptions, dir: &Path, state: &RunState) -> Result<ModelConfig> {
    let stored = state.model_config(dir)?;
    if let Some(asked) = &o.config {
        if asked != &stored {
            return Err(Error::file(
                dir,
                format!(
                    "the checkpoint was trained with a different model config ({}×{}, label {:?}) \
                     than the one asked for ({}×{}, label {:?}); drop --config to resume it",
                    stored.image_size,
                    stored.image_size,
                    stored.label,
                    asked.image_size,
                    asked.image_size,
                    asked.label
                ),
            ));
        }
    }
    Ok(stored)
}

/// The plan of a resumed run: the stored one, or the one asked for if it keeps the length of
/// every stage before the one in progress (the last one, for a finished run) and does not cut
/// that stage below the iterations it already ran. Later stages may change freely.
fn resumed_plan(o: &TrainOptions, dir: &Path, state: &RunState) -> Result<StagePlan> {
    let Some(asked) = o.plan else {
        return Ok(state.plan);
    };
    let old = state.plan;
    let lens = |p: &StagePlan| [p.stage1, p.temporal, p.face];
    let (old_lens, new_lens) = (lens(&old), lens(&asked));
    let done = state.iteration;
    let (current, ran) = match old.locate(done) {
        Some((stage, local, _)) => (stage as usize, local),
        None => {
            let last = old_lens.iter().rposition(|&n| n > 0).unwrap_or(0);
            (last, old_lens[last])
        }
    };
    if old_lens[..current] != new_lens[..current] || new_lens[current] < ran {
        return Err(Error::file(
            dir,
            format!(
                "the run is at iteration {done} of the plan {old:?}; the plan {asked:?} changes \
                 a finished stage or cuts the one in progress below what it ran"
            ),
        ));
    }
    Ok(asked)
}

/// Runs (or resumes) training; `observe` hears every iteration.
pub fn train(o: &TrainOptions, observe: &mut dyn FnMut(Progress<'_>)) -> Result<TrainSummary> {
    check_options(o)?;
    let run = RunDir::new(&o.out);
    let resume = starting_state(&run, o.resume)?;
    if let Some((dir, state)) = &resume {
        if state.target.video != o.target {
            return Err(Error::file(
                dir,
                format!(
                    "the run was trained on {}; resume it with the same --target (not {})",
                    state.target.video.display(),
                    o.target.display()
                ),
            ));
        }
    }
    let cfg = match &resume {
        Some((dir, state)) => resumed_config(o, dir, state)?,
        None => o
            .config
            .clone()
            .ok_or_else(|| Error::invalid("train", "no model config given"))?,
    };
    let clip_opts = ClipOptions {
        size: cfg.image_size as u32,
        ..o.clip.clone()
    };
    let clip = load_clip(&o.target, &o.poses, &clip_opts)?;
    let info = TargetInfo {
        video: o.target.clone(),
        poses: o.poses.clone(),
        crop: clip.crop,
        source_size: clip.source_size,
        fps: clip.fps.as_f64(),
        frames: clip.frames.len(),
    };
    let data = Dataset::new(clip, cfg.label, o.holdout)?;
    let mut state = match &resume {
        Some((dir, s)) => RunState {
            plan: resumed_plan(o, dir, s)?,
            ..s.clone()
        },
        None => RunState {
            format: RUN_FORMAT.into(),
            iteration: 0,
            plan: o
                .plan
                .ok_or_else(|| Error::invalid("train", "no iteration plan given"))?,
            batch: o.batch,
            seed: o.seed,
            holdout: o.holdout,
            config: serde_json::from_str(&cfg.to_json()?)
                .map_err(|e| Error::invalid("train", format!("config JSON: {e}")))?,
            target: info,
            vgg: o
                .vgg
                .clone()
                .ok_or_else(|| Error::invalid("train", "no VGG19 choice given"))?,
        },
    };
    if let (Some(v), Some(_)) = (&o.vgg, &resume) {
        state.vgg = v.clone();
    }
    run.create()?;
    let mut stage1 = Stage1Trainer::new(
        &cfg,
        state.seed,
        build_vgg(&state.vgg, state.seed ^ 0x766767)?,
    )?;
    stage1.to_device(o.device)?;
    let start = state.iteration;
    let log = LossLog::open(&run.losses_csv(), resume.as_ref().map(|_| start))?;
    let target = session::target_data(&data, o.exemplars)?;
    let with_face = stages::face_frames(&data, cfg.face_crop);
    let mut s = Session {
        opts: o.clone(),
        run,
        cfg,
        data,
        state,
        log,
        stage1,
        temporal: None,
        face: None,
        target,
        with_face,
    };
    if let Some((dir, _)) = &resume {
        s.load_checkpoint(dir, start)?;
    }
    s.run_loop(start, observe)
}

#[cfg(test)]
mod tests;
